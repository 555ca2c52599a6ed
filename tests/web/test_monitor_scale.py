"""The Batch Monitor at 10,000 segments, in Debian's Chromium against a real controller and
two nodes running the batch: the view opens with every segment in its grid (drawn for the
rows in sight only), follows bursts of 100 segments that end at once and 100 that start,
shows the states the API has, stays a stop of the Tab order that the keyboard moves through
to the last segment, and reads no whole listing again while it runs.

The page's timings and memory are written to test-artifacts/web/monitor-scale.json and
not asserted (bench/monitor_scale.py measures them over minutes for docs/benchmarks.md).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qfarm.client import Client
from tests.controller.test_cluster import start_controller, start_node, stop
from tests.helpers import wait_until_sync
from tests.web.conftest import ARTIFACTS, Farm
from tests.web.scale import WAVE, Gates, PageProbe, drive

pytestmark = pytest.mark.integration

SEGMENTS = 10_000
# How long the page may take to show what the API already says, in ms.
CATCH_UP_MS = 30_000


@pytest.fixture(scope="module")
def big_farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    """Two nodes of 50 instances each: a wave of 100 segments runs at once."""
    root = tmp_path_factory.mktemp("scale")
    controller, url = start_controller(root)
    nodes = []
    try:
        for name in ("big-1", "big-2"):
            nodes.append(start_node(root, url, name, services="command=50"))
        # A generous timeout: the farm runs 100 processes at once beside the other tests.
        yield Farm(url, Client(url, timeout=120), root, int(url.rsplit(":", 1)[1]))
    finally:
        for proc in [*nodes, controller]:
            stop(proc)


def test_a_batch_of_10000_segments_stays_live(big_farm: Farm, page: Any, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    farm = big_farm
    gates = Gates(tmp_path, SEGMENTS)
    gates.make()
    batch_id = farm.client.submit({"jobs": [gates.job()], "name": "ten thousand"}).id
    try:
        probe = PageProbe(page)
        probe.load(f"{farm.url}/#/batch/{batch_id}")
        summary = page.locator("#batch-summary")
        expect(summary).to_contain_text(f"of {SEGMENTS}")
        grid = page.locator("#segment-grid")
        drawn = page.locator("#segment-grid .cell")
        # The rows in sight are drawn, not 10,000 buttons.
        assert 0 < drawn.count() < 1000, drawn.count()

        reads: list[str] = []
        page.on("request", lambda r: reads.append(r.url) if "/api/v1/" in r.url else None)
        # A read that failed (the machine is loaded by other tests too) makes the page read
        # its view whole at the next round, as a (re)connected change stream does.
        failed: list[str] = []
        page.on("requestfailed", lambda r: failed.append(r.url))
        page.on(
            "response",
            lambda r: failed.append(r.url) if "/api/v1/" in r.url and r.status >= 400 else None,
        )
        drive(farm.client, gates, batch_id, probe, range(3))
        # The page catches up with the API (how fast is bench/monitor_scale.py's to measure:
        # on a machine loaded by other tests it has lagged more than the default 5 s).
        expect(summary).to_contain_text(f"{3 * WAVE} done", timeout=CATCH_UP_MS)
        # The cells in sight say what the API says of their segments.
        first = {s["id"]: s["state"] for s in farm.client.segments(batch_id, limit=WAVE)}
        wait_until_sync(
            lambda: all(
                page.locator(f"#segment-grid .cell[data-segment='{sid}']").get_attribute(
                    "data-state"
                )
                == state
                for sid, state in first.items()
            ),
            timeout=30,
            what="the first wave's cells to show done",
        )
        # While it ran, the events brought no whole read of the listings: the batch and
        # catch-ups only, but for a read after the stream (re)connected or a read failed.
        whole = [u for u in reads if re.search(r"/segments$", u)]
        again = [u for u in reads if "/api/v1/events" in u]
        assert len(whole) <= len(again) + len(failed), (whole, again, failed)
        assert any("/attempts?since=" in u for u in reads), reads

        # The keyboard: one Tab stop, End goes to the last segment, drawn where it scrolled.
        drawn.first.focus()
        page.keyboard.press("End")
        last = page.locator("#segment-grid .cell:focus")
        expect(last).to_have_text(str(SEGMENTS))
        assert page.locator("#segment-grid .cell[tabindex='0']").count() == 1
        page.keyboard.press("Enter")
        expect(page.locator("#segment-title")).to_contain_text(f"Segment {SEGMENTS}")
        expect(page.locator("#segment-title")).to_contain_text("queued")
        assert grid.evaluate("box => box.scrollTop") > 0
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "monitor-scale-end.png"), full_page=True)

        # At phone width the grid draws fewer columns for the same segments, and nothing
        # scrolls sideways.
        wide = drawn.count()
        page.set_viewport_size({"width": 375, "height": 800})
        page.keyboard.press("Home")
        expect(page.locator("#segment-grid .cell:focus")).to_have_text("1")
        wait_until_sync(
            lambda: page.evaluate("document.documentElement.scrollWidth") <= 375,
            timeout=10,
            what="the batch view to fit 375 px",
        )
        assert 0 < drawn.count() < wide, (drawn.count(), wide)
        page.screenshot(path=str(ARTIFACTS / "monitor-scale-phone.png"), full_page=True)
        page.set_viewport_size({"width": 1280, "height": 900})

        # The view read whole again, with attempts of 300 segments: what a reload costs.
        probe.load(f"{farm.url}/#/batch/{batch_id}")
        expect(summary).to_contain_text(f"{3 * WAVE} done", timeout=CATCH_UP_MS)
        probe.collect()
        figures = probe.figures.summary()
        (ARTIFACTS / "monitor-scale.json").write_text(json.dumps(figures, indent=2) + "\n")
        assert figures["rounds"] > 0
    finally:
        farm.client.action(batch_id, "cancel")
        for wave in range(gates.waves):  # what was running ends, reading its gate
            gates.open(wave, hold=0)
        wait_until_sync(lambda: farm.client.batch(batch_id).finished, timeout=60)
