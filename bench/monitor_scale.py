"""Batch Monitor benchmark: a batch view of 10,000 segments kept live for minutes, measured
from the browser (Debian's Chromium through Playwright), against a real `qfarm controller`
and two `qfarm node` processes of 50 instances each on loopback.

The batch runs in waves of 100 segments that end together (tests/web/scale.py): each wave
is a burst of 100 segments done and 100 more dispatched and started. Reported:

  load          ms from navigation to the batch view read and drawn (the page's mark
                "qfarm:view-shown"), at the start, halfway and at the end of the run
  rounds        ms from the arrival of a round of change events to the frame that shows
                it (the page's measure "qfarm:changes-shown"): every round, and those of
                100 changes or more
  memory        the page's JS heap and DOM node count (Chromium's Performance.getMetrics)
                sampled after every wave
  plain read    what the page would pay to read the view whole on every round instead (a
                monitor that refetches): GET .../segments and .../attempts with httpx,
                timed in the same run, after the same wave

Usage: python bench/monitor_scale.py [--segments 10000] [--minutes 5]
       [--write docs/benchmarks.md] [--plot docs/monitor-scale.png]
The plot needs matplotlib (pip install '.[bench]').
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from tests.controller.test_cluster import start_controller, start_node, stop
from tests.web.conftest import CHROMIUM
from tests.web.scale import WAVE, Gates, PageProbe, drive

from qfarm.client import Client


def plain_read(url: str, batch_id: int) -> float:
    """Seconds to read the batch view whole over HTTP, as a refetching monitor would."""
    began = time.perf_counter()
    with httpx.Client(base_url=url + "/api/v1", timeout=120) as http:
        for path in ("", "/segments", "/attempts"):
            http.get(f"/batches/{batch_id}{path}").raise_for_status()
    return time.perf_counter() - began


def run(segments: int, minutes: float) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    root = Path(tempfile.mkdtemp(prefix="qfarm-monitor-bench-"))
    controller, url = start_controller(root)
    nodes = [start_node(root, url, f"big-{i}", services="command=50") for i in (1, 2)]
    plain: list[float] = []
    try:
        client = Client(url)
        gates = Gates(root, segments)
        gates.make()
        batch_id = client.submit({"jobs": [gates.job()], "name": "bench"}).id
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            probe = PageProbe(page)
            view = f"{url}/#/batch/{batch_id}"
            probe.load(view)
            # Waves spaced to last the run: the page is watched for `minutes` however fast
            # the farm goes through a wave.
            pace = minutes * 60 / gates.waves
            halfway = gates.waves // 2
            began = time.monotonic()

            def between(wave: int) -> None:
                plain.append(plain_read(url, batch_id))
                if wave == halfway:
                    probe.load(view)
                rest = began + (wave + 1) * pace - time.monotonic()
                if rest > 0:
                    page.wait_for_timeout(rest * 1000)  # the page runs on, watched

            drive(client, gates, batch_id, probe, range(gates.waves), between)
            probe.load(view)
            probe.collect()
            browser.close()
        return {"figures": probe.figures, "plain": plain, "segments": segments,
                "seconds": time.monotonic() - began}  # fmt: skip
    finally:
        for proc in [*nodes, controller]:
            stop(proc)


def report(result: dict[str, Any]) -> str:
    figures = result["figures"]
    every, big = figures.round_ms(), figures.round_ms(WAVE)
    plain_ms = sorted(s * 1000 for s in result["plain"])
    heap = [mb for _, mb in figures.heap_mb]
    dom = [n for _, n in figures.dom_nodes]

    def q(values: list[float], p: float) -> str:
        return f"{values[min(len(values) - 1, int(p * len(values)))]:.0f}" if values else "-"

    when = datetime.date.today().isoformat()
    machine = f"{platform.node()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"
    loads = ", ".join(f"{ms:.0f}" for ms in figures.loads_ms)
    return "\n".join(
        [
            "## Batch Monitor at 10,000 segments (`bench/monitor_scale.py`)",
            "",
            f"{when}, {machine}. One batch of {result['segments']:,} command segments in "
            f"waves of {WAVE} that end together, watched for {result['seconds'] / 60:.1f} "
            "min in Debian's Chromium (headless), with the controller and two nodes of 50 "
            "instances on the same machine. Figures from the page's own User Timing marks "
            "and Chromium's Performance.getMetrics; not asserted in tests.",
            "",
            "| what | p50 | p95 | max | count |",
            "| --- | ---: | ---: | ---: | ---: |",
            f"| a round of changes, arrival to on screen (ms) | {q(every, 0.5)} | "
            f"{q(every, 0.95)} | {q(every, 1.0)} | {len(every)} |",
            f"| a round of {WAVE} changes or more (ms) | {q(big, 0.5)} | {q(big, 0.95)} | "
            f"{q(big, 1.0)} | {len(big)} |",
            f"| plain whole read of the view, GET batch + segments + attempts (ms) | "
            f"{q(plain_ms, 0.5)} | {q(plain_ms, 0.95)} | {q(plain_ms, 1.0)} | {len(plain_ms)} |",
            "",
            f"Batch view load, navigation to drawn (ms), at the start, halfway and at the end: "
            f"{loads}.",
            "",
            f"Page memory over the run: JS heap {min(heap):.1f} to {max(heap):.1f} MB "
            f"(last {heap[-1]:.1f} MB, median {statistics.median(heap):.1f}); DOM nodes "
            f"{min(dom):,} to {max(dom):,} (last {dom[-1]:,}).",
            "",
            "A round's time includes the page's 40 ms gathering of events. The plain read is "
            "what a monitor that refetched the view on each round would wait for before "
            "drawing anything, and it grows with the batch's attempts.",
            "",
        ]
    )


def plot(path: Path, result: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = result["figures"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    t = [at for at, _ in figures.heap_mb]
    top.plot(t, [mb for _, mb in figures.heap_mb], label="JS heap (MB)")
    top.set_ylabel("JS heap (MB)", color="tab:blue")
    twin = top.twinx()
    twin.plot(t, [n for _, n in figures.dom_nodes], color="tab:orange", label="DOM nodes")
    twin.set_ylabel("DOM nodes", color="tab:orange")
    top.set_title("Batch Monitor, 10,000 segments: memory over the run")
    plain_ms = [s * 1000 for s in result["plain"]]
    bottom.plot(t[: len(plain_ms)], plain_ms, label="plain whole read (ms)")
    bottom.set_ylabel("ms")
    bottom.set_xlabel("seconds into the run")
    bottom.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=10_000)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--write", type=Path, help="append the figures to this Markdown file")
    parser.add_argument("--plot", type=Path, help="draw memory and plain reads to this PNG")
    args = parser.parse_args()
    result = run(args.segments, args.minutes)
    text = report(result)
    print(text)
    if args.write:
        with args.write.open("a") as out:
            out.write("\n" + text)
    if args.plot:
        plot(args.plot, result)


if __name__ == "__main__":
    main()
