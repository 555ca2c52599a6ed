"""Many batches at once on the Batch Monitor's list: filters by name, owner, state and age,
and actions on the selected batches, in Debian's Chromium against a real controller and
nodes (the fixtures of tests/web/test_monitor.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_until_sync

# The monitor tests' fixtures (a controller with two nodes, Chromium, a page), used by name.
from tests.web.conftest import Farm

pytestmark = pytest.mark.integration


def held(on: Farm, name: str, owner: str, cwd: Path) -> int:
    job = {"type": "command", "spec": {"command": ["true"], "cwd": str(cwd)}}
    return on.client.submit({"jobs": [job], "name": name, "owner": owner, "hold": True}).id


def test_filter_select_and_act_on_many_batches(
    farm: Farm,
    page: Any,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    ana = [held(farm, f"bulk shot {n}", "ana@edit-3", tmp_path) for n in range(3)]
    ben = held(farm, "bulk promo", "ben@edit-1", tmp_path)
    page.goto(farm.url + "/#/batches")
    for batch_id in (*ana, ben):
        expect(page.locator(f"tr[data-batch='{batch_id}']")).to_be_visible()

    # Search by owner: only ana's three rows are shown.
    page.locator("#filter-text").fill("ana@edit-3")
    expect(page.locator("#batches-table tbody tr:visible")).to_have_count(3)
    expect(page.locator(f"tr[data-batch='{ben}']")).to_be_hidden()

    # Tick every row shown (ben's is hidden, so not ticked), then cancel them together.
    page.get_by_label("Select every batch shown").check()
    expect(page.locator("#bulk-count")).to_have_text("3 selected")
    page.locator("#bulk-bar").get_by_role("button", name="Cancel").click()
    expect(page.locator("#message")).to_contain_text("3 canceled")
    assert {farm.client.batch(i).state for i in ana} == {"canceled"}
    assert farm.client.batch(ben).state == "held"

    # By state: the canceled ones; a priority change asked of them is skipped (ended
    # batches have none), and said so rather than sent.
    page.locator("#filter-text").fill("bulk")
    page.locator("#filter-state").select_option("canceled")
    expect(page.locator("#batches-table tbody tr:visible")).to_have_count(3)
    page.locator(f"input[data-select='{ana[0]}']").check()
    page.locator("#bulk-bar").get_by_role("button", name="Set priority").click()
    expect(page.locator("#message")).to_contain_text("can be reprioritised")

    # Two of them resubmitted at once (held again? no: a resubmit queues their segments).
    page.locator(f"input[data-select='{ana[1]}']").check()
    expect(page.locator("#bulk-count")).to_have_text("2 selected")
    page.locator("#bulk-bar").get_by_role("button", name="Resubmit failed").click()
    expect(page.locator("#message")).to_contain_text("2 resubmitted")
    assert farm.client.batch(ana[2]).state == "canceled"
    for batch_id in ana[:2]:
        assert farm.client.batch(batch_id).state != "canceled"

    # Nothing matches: the list says so.
    page.locator("#filter-state").select_option("")
    page.locator("#filter-text").fill("no batch is called this")
    expect(page.locator("#batches-filtered")).to_be_visible()
    page.locator("#filter-text").fill("")


def test_the_segment_grid_filters_by_state_and_node(
    farm: Farm,
    page: Any,
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect

    odd_fails = ["sh", "-c", "test $(({start} % 2)) -eq 0"]
    job = {"type": "command", "retries": 0, "spec": {"command": odd_fails, "frames": "1-6",
                                                     "cwd": str(tmp_path)}}  # fmt: skip
    batch_id = farm.client.submit({"jobs": [job], "name": "odd frames fail"}).id
    wait_until_sync(lambda: farm.client.batch(batch_id).finished, timeout=60, what="the batch")
    segments = farm.client.segments(batch_id)
    page.goto(f"{farm.url}/#/batch/{batch_id}")
    expect(page.locator("#segment-grid .cell")).to_have_count(6)
    page.locator("#grid-state").select_option("failed")
    expect(page.locator("#segment-grid .cell:visible")).to_have_count(3)
    expect(page.locator("#segment-grid .cell.done:visible")).to_have_count(0)
    node = segments[0]["node"]
    page.locator("#grid-state").select_option("")
    page.locator("#grid-node").select_option(node)
    on_node = sum(s["node"] == node for s in segments)
    expect(page.locator("#segment-grid .cell:visible")).to_have_count(on_node)
