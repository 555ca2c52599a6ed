"""Many at once on the Batch Monitor: the list's filters by name, owner, state and age and
actions on the selected batches, and in a batch's grid segments chosen by the keyboard and
resubmitted together, in Debian's Chromium against a real controller and nodes (the
fixtures of tests/web/conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_until_sync
from tests.web.conftest import ARTIFACTS, Farm

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


def test_choose_failed_segments_and_resubmit_only_those(
    farm: Farm, page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    # Odd frames fail until their retry file exists: a rerun of a chosen one succeeds.
    flaky = ["sh", "-c", f"test $(({{start}} % 2)) -eq 0 || test -e {tmp_path}/ok-{{start}}"]
    job = {"type": "command", "retries": 0, "spec": {"command": flaky, "frames": "1-6",
                                                     "cwd": str(tmp_path)}}  # fmt: skip
    batch_id = farm.client.submit({"jobs": [job], "name": "some odd frames fail"}).id
    wait_until_sync(lambda: farm.client.batch(batch_id).finished, timeout=60, what="the batch")
    by_index = {s["index"]: s for s in farm.client.segments(batch_id)}
    page.goto(f"{farm.url}/#/batch/{batch_id}")
    expect(page.locator("#segment-grid .cell.failed")).to_have_count(3)
    expect(page.locator("#pick-bar")).to_be_hidden()
    page.get_by_label("Choose several").check()
    expect(page.locator("#pick-count")).to_have_text("none chosen")
    resubmit = page.get_by_role("button", name="Resubmit chosen")
    expect(resubmit).to_be_disabled()

    # By keyboard: segment 1 (failed) ticked with Enter, then segment 2 (done) with Space.
    cell = page.locator("#segment-grid .cell").first
    cell.focus()
    page.keyboard.press("Enter")
    expect(cell).to_have_attribute("aria-pressed", "true")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("Space")
    expect(page.locator("#pick-count")).to_have_text("2 chosen")
    expect(resubmit).to_be_disabled()  # a done segment cannot run again
    assert "neither failed" in (resubmit.get_attribute("title") or "")
    page.keyboard.press("Space")  # untick it
    # Segment 3 by click; the attempts of no segment open while choosing.
    page.locator(f"#segment-grid .cell[data-segment='{by_index[3]['id']}']").click()
    expect(page.locator("#pick-count")).to_have_text("2 chosen")
    expect(page.locator("#segment-detail")).to_be_hidden()
    for index in (1, 3):
        (tmp_path / f"ok-{index}").touch()
    expect(resubmit).to_be_enabled()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "segments-chosen.png"), full_page=True)
    resubmit.click()

    # Those two ran again and are done; segment 5, not chosen, is still failed.
    for index in (1, 3):
        cell = page.locator(f"#segment-grid .cell[data-segment='{by_index[index]['id']}']")
        expect(cell).to_have_attribute("data-state", "done")
    expect(page.locator("#batch-summary")).to_contain_text("failed")
    expect(page.locator("#pick-count")).to_have_text("none chosen")
    wait_until_sync(lambda: farm.client.batch(batch_id).finished, timeout=60, what="the rerun")
    states = {s["index"]: s["state"] for s in farm.client.segments(batch_id)}
    assert states == {1: "done", 2: "done", 3: "done", 4: "done", 5: "failed", 6: "done"}
    assert [a["number"] for a in farm.client.attempts(batch_id, by_index[1]["id"])] == [1, 2]
    assert len(farm.client.attempts(batch_id, by_index[5]["id"])) == 1


def test_cancel_chosen_segments_and_the_rest_runs_on(farm: Farm, page: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    gate = f"while [ ! -e {tmp_path}/go ]; do sleep 0.05; done"
    spec = {"command": ["sh", "-c", gate], "frames": "1-4", "cwd": str(tmp_path)}
    job = {"type": "command", "retries": 0, "spec": spec}
    batch_id = farm.client.submit({"jobs": [job], "name": "cancel two of four"}).id
    try:
        page.goto(f"{farm.url}/#/batch/{batch_id}")
        expect(page.locator("#segment-grid .cell.running")).to_have_count(2)
        by_index = {s["index"]: s for s in farm.client.segments(batch_id)}
        running = next(i for i, s in by_index.items() if s["state"] == "running")
        queued = next(i for i, s in by_index.items() if s["state"] == "queued")
        page.get_by_label("Choose several").check()
        cancel = page.get_by_role("button", name="Cancel chosen")
        for index in (running, queued):
            page.locator(f"#segment-grid .cell[data-segment='{by_index[index]['id']}']").click()
        expect(page.locator("#pick-count")).to_have_text("2 chosen")
        expect(page.get_by_role("button", name="Resubmit chosen")).to_be_disabled()
        expect(cancel).to_be_enabled()
        cancel.click()
        for index in (running, queued):
            cell = page.locator(f"#segment-grid .cell[data-segment='{by_index[index]['id']}']")
            expect(cell).to_have_attribute("data-state", "canceled")
        expect(page.locator("#batch-summary")).to_contain_text("running")
    finally:
        (tmp_path / "go").touch()
    wait_until_sync(lambda: farm.client.batch(batch_id).finished, timeout=60, what="the rest")
    states = {s["index"]: s["state"] for s in farm.client.segments(batch_id)}
    assert sorted(states.values()) == ["canceled", "canceled", "done", "done"]
    assert states[running] == states[queued] == "canceled"
    expect(page.locator("#batch-summary")).to_contain_text("canceled")
