"""A Batch Monitor watching a batch of 10,000 segments as it runs, measured from the browser:
what tests/web/test_monitor_scale.py checks briefly and bench/monitor_scale.py runs for
minutes, writing docs/benchmarks.md.

The batch's segments run in waves of 100 that end together: each segment reads a FIFO of
its wave (``cat gate-W``), which blocks without using the CPU until the driver opens the
FIFO for writing and closes it. Opening a gate is a burst of 100 segments ending at once,
and the dispatcher then starts the next 100: the burst of events the page must keep up
with, on a farm that is otherwise idle.

The page tells its own timings (User Timing, see web/js/main.js): the mark
"qfarm:view-shown" (ms from navigation to the view read and drawn) and a measure
"qfarm:changes-shown" per round of change events (from its first event's arrival to the
frame that shows it, with the number of changes). Memory and DOM size come from Chromium
through the DevTools protocol (Performance.getMetrics).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qfarm.client import Client
from tests.helpers import wait_until_sync

WAVE = 100


@dataclass
class Gates:
    """One FIFO per wave of segments in ``folder``."""

    folder: Path
    segments: int

    def make(self) -> None:
        for wave in range(self.waves):
            os.mkfifo(self.folder / f"gate-{wave}")

    @property
    def waves(self) -> int:
        return -(-self.segments // WAVE)

    def job(self) -> dict[str, Any]:
        gate = f"cat {self.folder}/gate-$(( ({{start}} - 1) / {WAVE} )) > /dev/null"
        spec = {"command": ["sh", "-c", gate], "frames": f"1-{self.segments}",
                "segment_size": 1, "cwd": str(self.folder)}  # fmt: skip
        return {"type": "command", "name": "gated", "spec": spec, "retries": 0}

    def open(self, wave: int, hold: float = 0.3) -> bool:
        """Let the segments of ``wave`` that wait on their gate end: open it for writing,
        hold it open a moment (a reader that comes meanwhile reads its end too), close it.
        False when nobody waits on it."""
        try:
            fd = os.open(self.folder / f"gate-{wave}", os.O_WRONLY | os.O_NONBLOCK)
        except OSError:  # ENXIO: no reader yet
            return False
        try:
            time.sleep(hold)
        finally:
            os.close(fd)
        return True


def wave_states(client: Client, batch_id: int, wave: int) -> list[str]:
    """The states of one wave's segments (a page of the segment listing)."""
    return [s["state"] for s in client.segments(batch_id, offset=wave * WAVE, limit=WAVE)]


def run_wave(client: Client, gates: Gates, batch_id: int, wave: int) -> None:
    """Wait until the whole wave runs, then open its gate until all of it is done."""
    wait_until_sync(
        lambda: set(wave_states(client, batch_id, wave)) == {"running"},
        timeout=120,
        what=f"wave {wave} to run",
    )

    def ended() -> bool:
        if set(wave_states(client, batch_id, wave)) <= {"done"}:
            return True
        gates.open(wave)
        return False

    wait_until_sync(ended, timeout=120, what=f"wave {wave} to end")


@dataclass
class Figures:
    """What the browser measured."""

    loads_ms: list[float] = field(default_factory=list)  # navigation to the batch view drawn
    rounds: list[tuple[float, int]] = field(default_factory=list)  # (ms to screen, changes)
    heap_mb: list[tuple[float, float]] = field(default_factory=list)  # (s into the run, MB)
    dom_nodes: list[tuple[float, int]] = field(default_factory=list)

    def round_ms(self, at_least: int = 1) -> list[float]:
        return sorted(ms for ms, n in self.rounds if n >= at_least)

    def summary(self) -> dict[str, Any]:
        def pct(values: list[float], q: float) -> float | None:
            if not values:
                return None
            return round(values[min(len(values) - 1, int(q * len(values)))], 1)

        every, big = self.round_ms(), self.round_ms(WAVE)
        return {
            "loads_ms": [round(ms) for ms in self.loads_ms],
            "rounds": len(every),
            "round_ms_p50": pct(every, 0.5),
            "round_ms_p95": pct(every, 0.95),
            "round_ms_max": pct(every, 1.0),
            "rounds_of_100_or_more": len(big),
            "big_round_ms_median": round(statistics.median(big), 1) if big else None,
            "big_round_ms_max": pct(big, 1.0),
            "heap_mb": [(round(t), round(mb, 1)) for t, mb in self.heap_mb],
            "dom_nodes": [(round(t), n) for t, n in self.dom_nodes],
        }


class PageProbe:
    """Reads a page's timings and Chromium's metrics for it."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.cdp = page.context.new_cdp_session(page)
        self.cdp.send("Performance.enable")
        self.started = time.monotonic()
        self.figures = Figures()
        self.seen_rounds = 0

    def load(self, url: str) -> float:
        """Open ``url`` (a batch view) afresh; ms from navigation to the view drawn."""
        self.page.goto("about:blank")
        self.page.goto(url)
        self.page.wait_for_function(
            "performance.getEntriesByName('qfarm:view-shown').length > 0", timeout=60_000
        )
        ms = float(
            self.page.evaluate("performance.getEntriesByName('qfarm:view-shown')[0].startTime")
        )
        # The page reads its view once more when its change stream opens (what changed
        # before that is not in the stream): wait for that read too, so that what follows
        # measures the page kept live, not its start.
        self.page.wait_for_function(
            "performance.getEntriesByName('qfarm:view-shown').length >= 2", timeout=60_000
        )
        self.figures.loads_ms.append(ms)
        self.seen_rounds = 0
        return ms

    def collect(self) -> None:
        """The rounds measured since the last call, and one sample of memory and DOM."""
        rounds = self.page.evaluate(
            "performance.getEntriesByName('qfarm:changes-shown')"
            ".map(m => [m.duration, m.detail.changes])"
        )
        # The page drops its measures in bulk now and then: start again from its first.
        fresh = rounds[self.seen_rounds :] if len(rounds) >= self.seen_rounds else rounds
        self.seen_rounds = len(rounds)
        self.figures.rounds.extend((float(ms), int(n)) for ms, n in fresh)
        metrics = {
            m["name"]: m["value"] for m in self.cdp.send("Performance.getMetrics")["metrics"]
        }
        at = time.monotonic() - self.started
        self.figures.heap_mb.append((at, metrics["JSHeapUsedSize"] / 2**20))
        self.figures.dom_nodes.append((at, int(metrics["Nodes"])))


def drive(
    client: Client,
    gates: Gates,
    batch_id: int,
    probe: PageProbe,
    waves: range,
    every: Callable[[int], None] = lambda wave: None,
) -> None:
    """Run ``waves`` one after another, reading the page's figures after each."""
    for wave in waves:
        run_wave(client, gates, batch_id, wave)
        probe.collect()
        every(wave)
