"""The job-type registry (:mod:`qfarm.jobtypes`): the farm's own options, such as cluster
storage, are carried once for every job type."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qfarm.domain.errors import InvalidRequest
from qfarm.jobtypes import JOB_TYPES, plan_job, stall_timeout

STORAGE = {"upload": "u-1234", "path": "/home/ann/shots"}


def _specs(cwd: Path) -> dict[str, dict[str, Any]]:
    """A small valid job of each type that plans without a source file or renderer."""
    return {
        "command": {"command": ["echo", "hi"], "cwd": str(cwd)},
        "movie": {"input": "f_%04d.png", "frames": "1-3", "output": "m.mp4", "cwd": str(cwd)},
        "composite": {"input": "f_%04d.png", "frames": "1-3", "cwd": str(cwd)},
    }


@pytest.mark.parametrize("job_type", ["command", "movie", "composite"])
def test_storage_reaches_the_stored_spec_of_every_job_type(tmp_path: Path, job_type: str) -> None:
    spec = _specs(tmp_path)[job_type]
    assert plan_job(job_type, {**spec, "storage": STORAGE})[0]["storage"] == STORAGE
    assert plan_job(job_type, spec)[0]["storage"] is None
    # The job type itself neither lists nor copies it.
    assert "storage" not in JOB_TYPES[job_type].validate({**spec, "storage": STORAGE})


@pytest.mark.parametrize("job_type", ["command", "movie", "composite"])
def test_a_jobs_stall_timeout_is_kept_and_overrides_its_types(
    tmp_path: Path, job_type: str
) -> None:
    spec = _specs(tmp_path)[job_type]
    planned = plan_job(job_type, {**spec, "stall_timeout": 45})[0]
    assert stall_timeout(job_type, planned) == 45.0
    assert stall_timeout(job_type, plan_job(job_type, {**spec, "stall_timeout": 0})[0]) is None
    own = stall_timeout(job_type, plan_job(job_type, spec)[0])
    assert own == JOB_TYPES[job_type].stall_timeout


def test_stall_timeouts_by_job_type() -> None:
    # Renders can be silent for minutes on one frame; ffmpeg reports every half second; a
    # command may be quiet for hours by design.
    assert JOB_TYPES["render"].stall_timeout == 600.0
    assert JOB_TYPES["transcode"].stall_timeout == 120.0
    assert JOB_TYPES["command"].stall_timeout is None


@pytest.mark.parametrize("value", [-1, "2m", True])
def test_a_bad_stall_timeout_is_refused_naming_it(tmp_path: Path, value: object) -> None:
    with pytest.raises(InvalidRequest, match="stall_timeout must be a number of seconds"):
        plan_job("command", {**_specs(tmp_path)["command"], "stall_timeout": value})
