"""A real node outside its hours: it joins, says so, and is given no work."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from qfarm.client import Client
from qfarm.domain.schedule import DAYS
from tests.cli.test_limits import qfarm
from tests.controller.test_cluster import start_controller, start_node, stop
from tests.helpers import wait_until_sync

pytestmark = pytest.mark.integration


def test_a_node_outside_its_schedule_takes_no_work_and_says_so(tmp_path: Path) -> None:
    # Its one day of work is three days away, whatever day this runs.
    day = DAYS[(dt.datetime.now().weekday() + 3) % 7]
    controller, url = start_controller(tmp_path)
    node = None
    try:
        node = start_node(tmp_path, url, "night", "--schedule", day, "--schedule-end", "suspend")
        client = Client(url)
        batch = client.submit(
            {"jobs": [{"type": "command", "spec": {"command": ["true"], "cwd": str(tmp_path)}}]}
        ).id

        def says_why() -> bool:
            [job] = client.batch(batch).raw["jobs"]
            return "off by its hours" in (job.get("waiting") or "")

        wait_until_sync(says_why, timeout=60, what="the job to wait, saying why")
        [row] = json.loads(qfarm("nodes", "--json", "--controller", url, cwd=tmp_path).stdout)
        assert row["hours"] == f"off: outside its hours ({day}; then suspend)"
        shown = qfarm("nodes", "--controller", url, cwd=tmp_path).stdout
        assert "outside its hours" in shown
        assert client.batch(batch).segments["queued"] == 1  # nothing was given to it
    finally:
        if node is not None:
            stop(node)
        stop(controller)
