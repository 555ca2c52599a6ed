"""``qfarm resubmit|cancel BATCH --segment N`` against a real `qfarm controller` and
`qfarm node` processes: only the chosen failed segments run again, only the chosen running
one is canceled; a segment the batch lacks is a usage error (exit 2), and a done one is
refused with the API's message."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.controller.test_cluster import Cluster, cluster  # noqa: F401 (the fixture)
from tests.helpers import wait_until_sync

pytestmark = pytest.mark.integration


def test_resubmit_only_the_chosen_segments(
    cluster: Cluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    # Odd frames fail until their file exists.
    script = f"test $(({{start}} % 2)) -eq 0 || test -e {tmp_path}/ok-{{start}}"
    batch_id = cluster.submit(script, tmp_path, spec={"frames": "1-4"})
    wait_until_sync(lambda: cluster.client.batch(batch_id).finished, what="the batch to end")
    assert cluster.client.batch(batch_id).state == "failed"

    missing = cluster.cli("resubmit", str(batch_id), "--segment", "9")
    assert missing.returncode == 2
    assert f"batch {batch_id} has no segment 9" in missing.stderr
    done = cluster.cli("resubmit", str(batch_id), "--segment", "2")
    assert done.returncode != 0 and "(done)" in done.stderr, done.stderr

    (tmp_path / "ok-3").touch()
    again = cluster.cli("resubmit", str(batch_id), "-s", "3", "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["state"] == "queued"
    wait_until_sync(lambda: cluster.client.batch(batch_id).finished, what="the rerun to end")
    states = {s["index"]: s["state"] for s in cluster.client.segments(batch_id)}
    assert states == {1: "failed", 2: "done", 3: "done", 4: "done"}
    assert cluster.client.batch(batch_id).state == "failed"  # segment 1 still failed


def test_cancel_only_the_chosen_segment(
    cluster: Cluster,  # noqa: F811
    tmp_path: Path,
) -> None:
    script = f"while [ ! -e {tmp_path}/go-{{start}} ]; do sleep 0.05; done"
    batch_id = cluster.submit(script, tmp_path, spec={"frames": "1-2"})
    try:
        wait_until_sync(
            lambda: {s["state"] for s in cluster.client.segments(batch_id)} == {"running"},
            what="both segments to run",
        )
        canceled = cluster.cli("cancel", str(batch_id), "--segment", "1")
        assert canceled.returncode == 0, canceled.stderr
        assert canceled.stdout.strip() == f"batch {batch_id}: 1 segment(s) canceled (running)"
    finally:
        (tmp_path / "go-2").touch()
    wait_until_sync(lambda: cluster.client.batch(batch_id).finished, what="the batch to end")
    states = {s["index"]: s["state"] for s in cluster.client.segments(batch_id)}
    assert states == {1: "canceled", 2: "done"}
    assert cluster.client.batch(batch_id).state == "canceled"
