"""`qfarm limit` and `--limit` against a real controller process, through its API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qfarm.cli import batchfile
from qfarm.cli.command_job import CommandJob
from qfarm.domain.errors import InvalidRequest
from tests.controller.test_cluster import start_controller, stop

pytestmark = pytest.mark.integration

QFARM = [sys.executable, "-m", "qfarm"]


def qfarm(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([*QFARM, *args], cwd=cwd, env=env, text=True, capture_output=True,
                          timeout=120, check=False)  # fmt: skip


def test_limit_set_list_remove_and_a_job_that_names_one(tmp_path: Path) -> None:
    controller, url = start_controller(tmp_path)
    try:
        made = qfarm("limit", "set", "nuke", "4", "--controller", url, cwd=tmp_path)
        assert made.returncode == 0, made.stderr
        assert made.stdout.strip() == "limit nuke = 4 (0 in use)"
        listed = qfarm("limit", "list", "--json", "--controller", url, cwd=tmp_path)
        assert json.loads(listed.stdout) == [{"name": "nuke", "count": 4, "in_use": 0}]

        sent = qfarm("submit", "--json", "--limit", "nuke", "--controller", url, "--", "true",
                     cwd=tmp_path)  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        batch = json.loads(sent.stdout)["batch"]
        shown = qfarm("show", str(batch), "--json", "--controller", url, cwd=tmp_path)
        [job] = json.loads(shown.stdout)["jobs"]
        assert job["requirements"]["limits"] == ["nuke"]

        bad = qfarm("limit", "set", "nuke", "-1", "--controller", url, cwd=tmp_path)
        assert bad.returncode != 0
        gone = qfarm("limit", "remove", "nuke", "--controller", url, cwd=tmp_path)
        assert gone.returncode == 0 and gone.stdout.strip() == "limit nuke removed"
        again = qfarm("limit", "remove", "nuke", "--controller", url, cwd=tmp_path)
        assert again.returncode == 4
        assert "no limit 'nuke'" in again.stderr
    finally:
        stop(controller)


def test_limit_options_and_batch_file_keys(tmp_path: Path) -> None:
    [job] = CommandJob(command=["true"], limit=["nuke"]).batch().jobs
    assert job.requirements.limits == {"nuke"}
    request = batchfile.parse({"jobs": [{"command": ["true"], "limits": ["nuke"]}]}, tmp_path)
    assert request.jobs[0].requirements.limits == {"nuke"}
    assert "limits" not in request.jobs[0].spec
    with pytest.raises(InvalidRequest, match="limits must be a list"):
        batchfile.parse({"jobs": [{"command": ["true"], "limits": 3}]}, tmp_path)
