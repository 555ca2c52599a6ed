"""The Batch Monitor's Suspend action, in a real browser against a real `qfarm controller`
and `qfarm node` processes: Suspend beside Pause stops the batch's running processes, the
page shows them suspended (summary and grid), and Resume lets them count on to the end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_until_sync
from tests.web.conftest import Farm

pytestmark = pytest.mark.integration


def test_suspend_from_the_page_and_resume(farm: Farm, page: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    count = tmp_path / "count-{start}.txt"
    script = f"i=0; while [ $i -lt 40 ]; do echo $i >> {count}; i=$((i+1)); sleep 0.1; done"
    job = {"type": "command", "spec": {"command": ["sh", "-c", script], "frames": "1-2",
                                       "cwd": str(tmp_path)}, "retries": 0}  # fmt: skip
    batch_id = farm.client.submit({"jobs": [job], "name": "counters"}).id
    page.goto(f"{farm.url}/#/batch/{batch_id}")
    expect(page.locator("#segment-grid .cell.running")).to_have_count(2)  # one per node
    expect(page.get_by_role("button", name="Pause")).to_be_visible()
    page.get_by_role("button", name="Suspend").click()  # the dialog is accepted

    expect(page.locator("#batch-summary")).to_contain_text("2 suspended")
    expect(page.locator("#batch-summary")).to_contain_text("paused")
    expect(page.locator("#segment-grid .cell.suspended")).to_have_count(2)
    expect(page.get_by_role("button", name="Pause")).to_have_count(0)
    status = farm.client.batch(batch_id)
    assert (status.state, status.segments["suspended"]) == ("paused", 2)

    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#segment-grid .cell.done")).to_have_count(2)
    wait_until_sync(lambda: farm.client.batch(batch_id).finished, timeout=60)
    assert farm.client.batch(batch_id).state == "done"
    for frame in (1, 2):  # each counted once from 0: continued, not restarted
        numbers = (tmp_path / f"count-{frame}.txt").read_text().split()
        assert numbers == [str(i) for i in range(40)]
