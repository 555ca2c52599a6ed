"""`qfarm scale slurm` against a real Slurm (a private slurmctld and slurmd on this host):
nodes submitted as Slurm jobs join a real controller, run a batch inside their jobs, and give
their allocations back once idle; with --adapt, node jobs follow the queue."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from qfarm.client import Client
from tests.controller.test_cluster import start_controller, stop
from tests.helpers import wait_until_sync
from tests.scale.slurm_cluster import missing, private_slurm

pytestmark = pytest.mark.integration

QFARM = [sys.executable, "-m", "qfarm"]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    why = missing()
    if why:
        if os.environ.get("QFARM_TEST_REQUIRE_SLURM"):  # .ci/run sets it: fail, never skip
            pytest.fail(why)
        pytest.skip(why)
    with private_slurm(tmp_path_factory.mktemp("slurm")) as env:
        yield env


def squeue(env: dict[str, str]) -> dict[str, str]:
    got = subprocess.run(
        ["squeue", "-h", "-o", "%i %T"], env={**os.environ, **env}, capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    return dict(line.split() for line in got.stdout.splitlines() if line.strip())


def scale(env: dict[str, str], *args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*QFARM, "scale", "slurm", *args], cwd=cwd, env={**os.environ, **env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def batch(out: Path, frames: str) -> dict[str, object]:
    # Each segment writes the Slurm job it ran in: the node's processes are the job's.
    return {
        "name": "on slurm",
        "jobs": [
            {
                "type": "command",
                "spec": {
                    "command": ["sh", "-c", f"echo $SLURM_JOB_ID > {out}/f{{frame}}"],
                    "frames": frames,
                    "segment_size": 1,
                },
            }
        ],
    }


def test_nodes_submitted_as_slurm_jobs_run_a_batch_and_leave_when_idle(
    slurm: dict[str, str], tmp_path: Path
) -> None:
    controller, url = start_controller(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    try:
        client = Client(url)
        handle = client.submit(batch(out, "1-6"))  # queued before any node: none is idle
        made = scale(
            slurm, "--nodes", "2", "--services", "command=1", "--partition", "debug",
            "--walltime", "00:10:00", "--memory", "500MB", "--idle-exit", "10s",
            "--controller", url, "--data-dir", str(tmp_path / "controller"),
            "--log-dir", str(tmp_path / "slurm-logs"), "--json", cwd=tmp_path,
        )  # fmt: skip
        stdout, stderr = made.communicate(timeout=120)
        assert made.returncode == 0, stderr
        jobs = json.loads(stdout)["jobs"]
        assert len(jobs) == 2 and set(jobs) <= set(squeue(slurm))
        names = {f"qfarm-slurm-{job}" for job in jobs}
        assert handle.wait(timeout=240).state == "done"
        ran_in = {p.read_text().strip() for p in out.iterdir()}
        assert len(list(out.iterdir())) == 6 and ran_in <= set(jobs) and ran_in
        used = {s["node"] for s in client.segments(handle.id)}
        assert used <= names
        # Idle for 10 s, each node leaves and its Slurm job ends: the allocation is back.
        wait_until_sync(
            lambda: not set(jobs) & set(squeue(slurm)), timeout=90, what="the node jobs to end"
        )
        wait_until_sync(
            lambda: not names & {n["name"] for n in client.nodes() if n["state"] == "online"},
            timeout=60,
            what="the Slurm nodes to be gone from the controller",
        )
    finally:
        stop(controller)


def test_adapt_submits_nodes_for_the_queue_and_cancels_them_at_the_end(
    slurm: dict[str, str], tmp_path: Path
) -> None:
    controller, url = start_controller(tmp_path)
    out = tmp_path / "out"
    out.mkdir()
    follower = None
    try:
        client = Client(url)
        handle = client.submit(batch(out, "1-4"))  # queued: no node yet
        follower = scale(
            slurm, "--adapt", "min=0,max=2", "--services", "command=2", "--idle-exit", "60s",
            "--memory", "500MB", "--interval", "1", "--controller", url,
            "--data-dir", str(tmp_path / "controller"), "--log-dir", str(tmp_path / "logs"),
            cwd=tmp_path,
        )  # fmt: skip
        # Four queued segments of a service with two instances per node: two nodes.
        wait_until_sync(lambda: len(squeue(slurm)) == 2, timeout=60, what="two node jobs")
        assert handle.wait(timeout=180).state == "done"
        assert len(list(out.iterdir())) == 4
        follower.send_signal(2)  # Ctrl-C: the scaler cancels its node jobs
        _, stderr = follower.communicate(timeout=60)
        assert follower.returncode == 0, stderr
        assert "node jobs canceled" in stderr
        wait_until_sync(lambda: not squeue(slurm), timeout=60, what="the node jobs canceled")
    finally:
        if follower is not None and follower.poll() is None:
            follower.kill()
        stop(controller)
