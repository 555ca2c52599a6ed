"""How many Slurm nodes the queue needs (pure), the --adapt and job-script edges of `qfarm
scale slurm` that need no Slurm, and a node's idle watch."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from qfarm.domain.errors import InvalidRequest
from qfarm.node.serve import idle_for
from qfarm.scale.adapt import AdaptRange, Queue, nodes_wanted, queue_from_metrics
from qfarm.scale.slurm import SlurmNodeSpec, job_script

SCRAPE = """\
# HELP qfarm_segments Segments in the store, by service and state
# TYPE qfarm_segments gauge
qfarm_segments{service="render",state="queued"} 7.0
qfarm_segments{service="render",state="running"} 2.0
qfarm_segments{service="render",state="done"} 40.0
qfarm_segments{service="command",state="dispatched"} 1.0
# HELP qfarm_nodes Nodes by state
# TYPE qfarm_nodes gauge
qfarm_nodes{state="online"} 3.0
"""


def test_the_queue_is_read_from_a_scrape() -> None:
    queue = queue_from_metrics(SCRAPE)
    assert queue == Queue(queued={"render": 7}, active={"render": 2, "command": 1})


def test_nodes_wanted_cover_queued_and_running_work_within_the_range() -> None:
    queue = Queue(queued={"render": 7}, active={"render": 2, "command": 1})
    assert nodes_wanted(queue, {"render": 2}, AdaptRange(0, 20)) == 5  # ceil(9 / 2)
    assert nodes_wanted(queue, {"render": 2}, AdaptRange(0, 3)) == 3
    assert nodes_wanted(Queue({}, {}), {"render": 2}, AdaptRange(1, 3)) == 1  # the floor
    assert nodes_wanted(queue, {"render": 4, "command": 1}, AdaptRange(0, 9)) == 3


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("min=0,max=20", AdaptRange(0, 20)),
        ("max=4", AdaptRange(0, 4)),
        ("min=2", AdaptRange(2, 10)),
    ],
)
def test_adapt_ranges(text: str, expected: AdaptRange) -> None:
    assert AdaptRange.parse(text) == expected


@pytest.mark.parametrize("text", ["min=a", "lots", "min=5,max=2", "max=0", "floor=1"])
def test_bad_adapt_ranges_are_usage_errors(text: str) -> None:
    with pytest.raises(InvalidRequest, match="--adapt"):
        AdaptRange.parse(text)


def test_the_job_script_runs_a_node_and_keeps_tokens_out_of_it() -> None:
    spec = SlurmNodeSpec(
        controller_url="http://farm:8470", services={"render": 1}, partition="gpu",
        walltime="04:00:00", cores=4, memory="8GB", idle_exit=120,
        extra_directives=("--gres=gpu:1",), environment={"QFARM_JOIN_TOKEN": "qfj1.secret"},
    )  # fmt: skip
    script = job_script(spec)
    for line in ("#SBATCH -p gpu", "#SBATCH -t 04:00:00", "#SBATCH --cpus-per-task=4",
                 "#SBATCH --gres=gpu:1", "#SBATCH -J qfarm-node"):  # fmt: skip
        assert line in script, script
    command = script.strip().splitlines()[-1]
    assert "-m qfarm node --controller http://farm:8470 --services render=1" in command
    assert "--name qfarm-slurm-$SLURM_JOB_ID" in command and "--idle-exit 120s" in command
    assert "qfj1.secret" not in script


def qfarm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qfarm", "scale", "slurm", *args, "--controller", "http://x:1"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_scale_slurm_usage_errors() -> None:
    both = qfarm("--services", "command=1", "--nodes", "2", "--adapt", "max=3")
    assert both.returncode == 2 and "one of them" in both.stderr
    bad = qfarm("--services", "command=1", "--adapt", "max=zero")
    assert bad.returncode == 2 and "--adapt 'max=zero'" in bad.stderr
    dry = qfarm("--services", "command=2", "--nodes", "1", "--dry-run")
    assert dry.returncode == 0 and "#SBATCH --cpus-per-task=2" in dry.stdout


def test_a_node_is_idle_once_no_process_started_or_ended_for_the_time(tmp_path: Path) -> None:
    records = tmp_path / "running"
    records.mkdir()

    async def scenario() -> bool:
        watch = asyncio.ensure_future(idle_for(records, 1.0))
        (records / "123").write_text("")  # a process group runs
        # Past the idle time, the watch must still be waiting: a bounded wait on it.
        done, _ = await asyncio.wait({watch}, timeout=1.5)
        still_busy = not done
        (records / "123").unlink()  # it ended
        await asyncio.wait_for(watch, timeout=10)
        return still_busy

    assert asyncio.run(scenario())
