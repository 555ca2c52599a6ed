"""Requirements from the command line and batch files: `--require`, `--gpus` and
`--resource` of `qfarm submit` and `qfarm run`, the `require`/`gpus`/`resources` keys of a
batch file, and the usage errors that name a bad value. `qfarm run`'s local nodes carry no
tags or GPUs, so a job that needs them is refused there rather than left waiting."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from qfarm.cli import batchfile
from qfarm.cli.command_job import CommandJob
from qfarm.domain.errors import InvalidRequest
from qfarm.domain.requirements import NO_REQUIREMENTS
from tests.cli.test_options import option_names

pytestmark = pytest.mark.integration  # some of it runs `qfarm run` as a process

QFARM = [sys.executable, "-m", "qfarm"]


def test_submit_and_run_take_the_requirement_options() -> None:
    for command in ("run", "submit"):
        names = option_names([command])
        assert {"--require", "--gpus", "--resource"} <= set(names), names


def test_a_command_jobs_options_become_its_requirements() -> None:
    job = CommandJob(command=["true"], require=["gpu,fast-disk", "site=paris"], gpus=1,
                     resource=["license_nuke=1"])  # fmt: skip
    [request] = job.batch().jobs
    assert request.requirements.tags == {"gpu", "fast-disk", "site=paris"}
    assert request.requirements.amounts == {"gpu": 1, "license_nuke": 1}
    assert CommandJob(command=["true"]).batch().jobs[0].requirements is NO_REQUIREMENTS


def test_a_batch_files_jobs_take_require_gpus_and_resources(tmp_path: Path) -> None:
    request = batchfile.parse(
        {"jobs": [
            {"name": "a", "command": ["true"], "require": "gpu", "gpus": 2,
             "resources": {"license_nuke": 1}},
            {"name": "b", "command": ["true"], "require": ["fast-disk"]},
        ]},
        tmp_path,
    )  # fmt: skip
    a, b = request.jobs
    assert a.requirements.tags == {"gpu"} and a.requirements.amounts == {
        "gpu": 2,
        "license_nuke": 1,
    }
    assert "require" not in a.spec and "gpus" not in a.spec and "resources" not in a.spec
    assert b.requirements.tags == {"fast-disk"} and not b.requirements.amounts


@pytest.mark.parametrize(
    ("job", "message"),
    [
        ({"require": [1]}, "job a: require must be a list of tags"),
        ({"gpus": "two"}, "job a: gpus must be a whole number"),
        ({"resources": {"nuke": "x"}}, "job a: resources must be a table of NAME = N"),
        ({"require": "bad tag"}, "job a: --require 'bad tag' is not a tag"),
        ({"gpus": -2}, "job a: --gpus -2 must be a whole number"),
    ],
)
def test_bad_requirements_in_a_batch_file_name_the_job(
    tmp_path: Path, job: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        batchfile.parse({"jobs": [{"name": "a", "command": ["true"], **job}]}, tmp_path)


def qfarm(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QFARM_DATA_DIR": str(cwd / "data"), "COLUMNS": "200"}
    return subprocess.run(
        [*QFARM, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
    )


def test_qfarm_run_refuses_a_job_its_local_nodes_cannot_serve(tmp_path: Path) -> None:
    result = qfarm("run", "--require", "gpu", "--", "true", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "needs tag gpu, which the local nodes of qfarm run do not have" in result.stderr
    result = qfarm("run", "--resource", "license_nuke", "--", "true", cwd=tmp_path)
    assert result.returncode == 2
    assert "--resource 'license_nuke' is not NAME=N" in result.stderr
