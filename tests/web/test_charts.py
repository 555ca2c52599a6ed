"""The Batch Monitor's charts in Debian's Chromium (Playwright) against a real `qfarm
controller` and two `qfarm node` processes: batches of short command jobs run, and the Stats
view shows them as the API counts them (done per service, a bar per bucket that had any, a
point per bucket, a line per node); it reads again as more work ends; the charts are
reached and stepped through by keyboard, their data tables open; the durations chart has a
bar per segment, the heavy frame marked, and a redraw keeps a keyboard user's place; at
phone width nothing overflows. `qfarm stats --json` prints the same counts. Screenshots
land in test-artifacts/web/."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import wait_until_sync
from tests.web.conftest import ARTIFACTS, Farm

pytestmark = pytest.mark.integration

HEAVY_FRAME = 4
# Every frame echoes; frame 4 also takes a few seconds: the heavy frame of its job.
SCRIPT = f"echo frame {{start}}; if [ {{start}} = {HEAVY_FRAME} ]; then sleep 3; fi"


def run_batch(farm: Farm, frames: str, cwd: Path) -> int:
    job = {"type": "command", "spec": {"command": ["sh", "-c", SCRIPT], "frames": frames,
                                       "cwd": str(cwd)}, "retries": 0}  # fmt: skip
    batch_id = farm.client.submit({"jobs": [job], "name": "charted"}).id
    wait_until_sync(lambda: farm.client.batch(batch_id).finished, 90, f"batch {batch_id} done")
    return batch_id


def done_total(farm: Farm) -> int:
    found = farm.client.stats(window=3600, step=60)
    return sum(s["total_done"] for s in found["services"])


def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def test_the_stats_view_charts_what_ran_and_follows_new_work(
    farm: Farm, page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    run_batch(farm, "1-6", tmp_path)
    page.goto(farm.url + "/#/stats")
    expect(page.locator("#connection")).to_have_text("live")
    found = farm.client.stats(window=3600, step=60)
    [command] = [s for s in found["services"] if s["service"] == "command"]
    row = page.locator("#stats-services tr[data-service='command']")
    expect(row.locator("td.done")).to_have_text(str(command["total_done"]))
    assert command["total_done"] >= 6

    buckets = len(found["times"])
    done = page.locator("#stats-done")
    expect(done.locator("svg")).to_have_attribute("data-categories", str(buckets))
    expect(done.locator("rect.bar")).to_have_count(sum(1 for d in command["done"] if d))
    expect(done.locator("table tbody tr")).to_have_count(buckets)
    cells = done.locator("table tbody tr td").all_text_contents()
    assert sum(int(c) for c in cells) == command["total_done"]
    busy = page.locator("#stats-busy polyline[data-series='command']")
    expect(busy).to_have_attribute("data-points", str(buckets))
    loaded = [n["node"] for n in found["nodes"] if n["load"] is not None]
    assert sorted(loaded) == ["node-1", "node-2"]
    expect(page.locator("#stats-nodes polyline")).to_have_count(len(loaded))
    expect(page.locator("#stats-nodes .chart-legend li")).to_have_text(loaded)

    # By keyboard: from the window's control, Tab reaches the first chart; End steps to the
    # last bucket and the readout says what is there; the data table opens from its summary.
    page.locator("#stats-window").focus()
    page.keyboard.press("Tab")
    expect(done.locator("svg")).to_be_focused()
    page.keyboard.press("Home")
    expect(done.locator(".chart-readout")).to_contain_text(f"command {command['done'][0]}")
    page.keyboard.press("End")
    expect(done.locator(".chart-readout")).to_contain_text(f"command {command['done'][-1]}")
    page.keyboard.press("Tab")
    expect(done.locator("summary")).to_be_focused()
    page.keyboard.press("Enter")
    expect(done.locator("table")).to_be_visible()
    shot(page, "stats")

    # More work ends: the view reads again from the change events (throttled), and shows
    # what the API then counts.
    run_batch(farm, "1-3", tmp_path)
    total = done_total(farm)
    expect(row.locator("td.done")).to_have_text(str(total))

    # The CLI prints the same series.
    shown = subprocess.run(
        [sys.executable, "-m", "qfarm", "stats", "--json"], capture_output=True, text=True,
        timeout=60, env={**os.environ, "QFARM_CONTROLLER": farm.url},
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    printed = json.loads(shown.stdout)
    assert sum(s["total_done"] for s in printed["services"]) == total
    assert len(printed["times"]) == 60
    table = subprocess.run(
        [sys.executable, "-m", "qfarm", "stats"], capture_output=True, text=True, timeout=60,
        env={**os.environ, "QFARM_CONTROLLER": farm.url, "COLUMNS": "200"},
    )  # fmt: skip
    assert table.returncode == 0, table.stderr
    assert "command" in table.stdout and "node-1" in table.stdout and "node-2" in table.stdout


def test_a_jobs_segment_durations_show_the_heavy_frame(
    farm: Farm, page: Any, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    batch_id = run_batch(farm, "1-6", tmp_path)
    found = farm.client.durations(batch_id)
    assert len(found["segments"]) == len(farm.client.segments(batch_id)) == 6
    heavy = [d["index"] for d in found["segments"] if d["heavy"]]
    assert len(heavy) == 1  # frame 4's segment

    page.goto(farm.url + f"/#/batch/{batch_id}")
    expect(page.locator("#connection")).to_have_text("live")
    box = page.locator("#batch-durations")  # drawn by the batch view when it shows the batch
    expect(box.locator("rect.bar")).to_have_count(len(found["segments"]))
    expect(box.locator("rect.bar.marked")).to_have_count(1)
    marked = box.locator("rect.bar.marked")
    expect(marked).to_have_attribute("data-category", str(
        [d["index"] for d in found["segments"]].index(heavy[0])))  # fmt: skip
    expect(box.locator(".chart-legend li")).to_have_count(len(found["nodes"]))
    for node in found["nodes"]:
        expect(box.locator(".chart-legend")).to_contain_text(f"{node['node']}: {node['segments']}")
    box.locator("svg").focus()
    page.keyboard.press("ArrowRight")
    first = found["segments"][0]
    expect(box.locator(".chart-readout")).to_contain_text(f"#{first['index']}")
    expect(box.locator(".chart-readout")).to_contain_text(first["node"])
    # Drawn again (as when more segments end) under a keyboard user stepping through it:
    # the cursor stays on its segment and the plot keeps the focus.
    page.keyboard.press("ArrowRight")
    second = found["segments"][1]
    expect(box.locator(".chart-readout")).to_contain_text(f"#{second['index']}")
    drawn = box.locator("svg").get_attribute("aria-labelledby")
    page.evaluate(
        """async (id) => {
            const { drawDurations } = await import("/static/js/views/durations.js");
            await drawDurations(document.getElementById("batch-durations"), id);
        }""",
        batch_id,
    )
    expect(box.locator("svg")).not_to_have_attribute("aria-labelledby", drawn or "")
    expect(box.locator("svg")).to_be_focused()
    expect(box.locator(".chart-readout")).to_contain_text(f"#{second['index']}")
    page.keyboard.press("ArrowRight")
    expect(box.locator(".chart-readout")).to_contain_text(f"#{found['segments'][2]['index']}")
    box.scroll_into_view_if_needed()
    shot(page, "durations")


def test_the_stats_view_at_phone_width(farm: Farm, browser: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    if done_total(farm) == 0:
        run_batch(farm, "1-2", tmp_path)
    context = browser.new_context(viewport={"width": 375, "height": 812}, is_mobile=True)
    phone = context.new_page()
    try:
        phone.goto(farm.url + "/#/stats")
        expect(phone.locator("#connection")).to_have_text("live")
        expect(phone.locator("#stats-done svg")).to_be_visible()
        expect(phone.locator("#stats-nodes svg")).to_be_visible()
        assert phone.evaluate("document.documentElement.scrollWidth") <= 375
        for chart in ("#stats-done", "#stats-busy", "#stats-nodes"):
            width = phone.locator(f"{chart} svg").evaluate("s => s.getBoundingClientRect().right")
            assert width <= 375, (chart, width)
        phone.get_by_role("link", name="Stats").focus()
        expect(phone.get_by_role("link", name="Stats")).to_have_attribute("aria-current", "page")
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        phone.screenshot(path=str(ARTIFACTS / "stats-phone.png"), full_page=True)
    finally:
        context.close()
