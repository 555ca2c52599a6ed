"""The job-type registry (:mod:`qfarm.jobtypes`): the farm's own options, such as cluster
storage, are carried once for every job type."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qfarm.jobtypes import JOB_TYPES, plan_job

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
