"""``qfarm pause --suspend`` and ``qfarm resume`` against a real `qfarm controller` and
`qfarm node` processes: the counter a segment runs stops where it is on its node and, resumed,
counts on to the end in one attempt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.controller.test_cluster import Cluster, cluster  # noqa: F401 (the fixture)
from tests.helpers import group_stopped, wait_until_sync

pytestmark = pytest.mark.integration


def numbers(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def test_pause_suspend_then_resume_continues_the_count(
    cluster: Cluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    count = tmp_path / "count.txt"
    gate = tmp_path / "gate"
    # After 3 the counter waits for the gate, so however slowly the pause below comes (a
    # loaded machine takes seconds to start a CLI process), the batch is still running.
    script = (
        f"i=0; while [ $i -lt 25 ]; do echo $i >> {count}; i=$((i+1)); "
        f"if [ $i -eq 3 ]; then while [ ! -e {gate} ]; do sleep 0.05; done; fi; sleep 0.1; done"
    )
    batch_id = cluster.submit(script, tmp_path, spec={"frames": "1"})
    wait_until_sync(lambda: len(numbers(count)) >= 3, what="the count to reach the gate")

    paused = cluster.cli("pause", "--suspend", "--json", str(batch_id))
    assert paused.returncode == 0, paused.stderr
    body = json.loads(paused.stdout)
    assert (body["state"], body["segments"]["suspended"]) == ("paused", 1)
    [attempt] = cluster.attempts(batch_id)
    wait_until_sync(lambda: group_stopped(attempt["pid"]), timeout=30, what="the counter stopped")
    gate.touch()  # open: only the suspension holds the counter now
    frozen = numbers(count)
    assert group_stopped(attempt["pid"]) and numbers(count) == frozen
    shown = cluster.cli("batches")
    assert "1 (1 suspended)" in shown.stdout, shown.stdout

    resumed = cluster.cli("resume", str(batch_id))
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == f"batch {batch_id} resumed (running)"
    wait_until_sync(lambda: cluster.client.batch(batch_id).finished, what="the batch to end")
    assert cluster.client.batch(batch_id).state == "done"
    assert numbers(count) == [str(i) for i in range(25)]  # one count, never restarted
    assert len(cluster.attempts(batch_id)) == 1

    again = cluster.cli("pause", "--suspend", str(batch_id))
    assert again.returncode == 0
    assert again.stdout.strip() == f"batch {batch_id} is already done: nothing was suspended"


def test_pause_help_shows_suspend_with_an_example(cluster: Cluster) -> None:  # noqa: F811
    shown = cluster.cli("pause", "--help")
    assert shown.returncode == 0
    assert "--suspend" in shown.stdout
    assert "qfarm pause --suspend 12" in shown.stdout
