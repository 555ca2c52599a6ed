"""Dispatch at farm scale: the real store and dispatcher booking work onto 1,200 simulated hosts.

In the manner of a scheduler stress test: the store (SQLite, or PostgreSQL with --pg) and
the dispatcher are qfarm's own and run as in a controller (`Dispatcher.run`); only the engine
is simulated: hosts that exist because the harness says so, and tasks that report started at
once and end after a duration drawn for each (seeded), as a node would report them. No
process is started and no Dask runs, so what is measured is the controller's own booking work:
placement, the store's dispatch transaction, result recording.

Figures (per database):
  fill bookings/s    segments booked from submission until every slot is taken: how fast
                     an idle farm of this size is filled
  bookings/s         all segments booked over the run, / from submission to the last booking
  refill p50/95/99   from a slot's task ending (as the engine reported it) to the next
                     segment booked onto that host: what a busy farm waits per freed slot
  makespan           submission to the last segment recorded done, against the ideal (the
                     drawn durations packed onto the slots with no dispatch cost at all)

Usage: python bench/dispatch_scale.py [--hosts 1200] [--slots 4] [--segments 6000]
       [--min-s 0.5] [--max-s 3.0] [--pg URL] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import heapq
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from dispatch import machine, percentile  # noqa: E402
from qfarm import __version__  # noqa: E402
from qfarm.controller.dispatcher import Dispatcher  # noqa: E402
from qfarm.controller.planning import plan_batch  # noqa: E402
from qfarm.domain.messages import AttemptResult, SegmentTask  # noqa: E402
from qfarm.domain.model import BatchRequest, JobRequest  # noqa: E402
from qfarm.engine.base import EngineNode, TaskEnd, TaskEvent  # noqa: E402
from qfarm.store import Store  # noqa: E402


@dataclass
class SimEngine:
    """The Engine protocol over simulated hosts: each task starts at once and ends after
    its drawn duration, reported as a node's worker would report it."""

    hosts: int
    slots: int
    durations: list[float]  # by segment id (a fresh store numbers them from 1)
    events: asyncio.Queue[TaskEvent] = field(default_factory=asyncio.Queue)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    scheduler_address: str = "sim://scheduler"
    dashboard_url: str | None = None
    booked: list[tuple[float, str]] = field(default_factory=list)  # (when, host) per booking
    freed: dict[str, list[float]] = field(default_factory=dict)  # host -> when slots freed
    _ends: list[TaskEnd] = field(default_factory=list)
    _live: list[EngineNode] = field(default_factory=list)

    def __post_init__(self) -> None:
        for i in range(self.hosts):
            name = f"host-{i:04d}"
            facts = {
                "host": name, "cores": self.slots, "memory": 1 << 34, "version": __version__,
                "fingerprint": {"qfarm": __version__}, "tags": [], "resources": {},
            }  # fmt: skip
            self._live.append(
                EngineNode(name, f"sim://{name}", {"command": self.slots}, host=name, facts=facts)
            )

    async def nodes(self) -> list[EngineNode]:
        return list(self._live)

    def submit(self, tasks: Sequence[tuple[SegmentTask, str, str]]) -> None:
        loop = asyncio.get_running_loop()
        now = time.time()
        for task, address, _service in tasks:
            host = address.removeprefix("sim://")
            self.booked.append((now, host))
            self.events.put_nowait(TaskEvent(task.key, "started", now, pid=1))
            seconds = self.durations[(task.segment_id - 1) % len(self.durations)]
            loop.call_later(seconds, self._end, task.key, host, now)
        if tasks:
            # Only when there is something to report, as a node's start report would: a
            # wakeup set by every (empty) submit made each tick start the next at once, so
            # the dispatcher never yielded and no task's end could ever fire.
            self.wakeup.set()

    def _end(self, key: str, host: str, started: float) -> None:
        now = time.time()
        self.freed.setdefault(host, []).append(now)
        result = AttemptResult(key=key, ok=True, exit_code=0, pid=1, started_at=started,
                               ended_at=now)  # fmt: skip
        self._ends.append(TaskEnd(key, result))
        self.wakeup.set()

    async def collect(self) -> list[TaskEnd]:
        ends, self._ends = self._ends, []
        return ends

    async def kill(self, key: str, address: str) -> bool:
        return False

    async def suspend(self, key: str, address: str) -> bool:
        return False

    async def resume(self, key: str, address: str) -> bool:
        return False

    async def withdraw(self, key: str) -> None:
        return None

    async def close(self) -> None:
        return None


def ideal_makespan(durations: list[float], slots: int) -> float:
    """The drawn durations packed greedily onto ``slots`` free slots (no dispatch cost)."""
    free = [0.0] * slots
    for seconds in durations:  # in submission order, as the dispatcher takes them
        heapq.heapreplace(free, free[0] + seconds)
    return max(free)


async def run_once(url: str, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    durations = [rng.uniform(args.min_s, args.max_s) for _ in range(args.segments)]
    store = Store(url)
    engine = SimEngine(args.hosts, args.slots, durations)
    dispatcher = Dispatcher(store, engine, logs_dir=work / "logs")
    loop_task = asyncio.create_task(dispatcher.run())
    try:
        await dispatcher.refresh_nodes()
        request = BatchRequest(
            jobs=(
                JobRequest(
                    "command",
                    {
                        "command": ["true"],
                        "frames": f"1-{args.segments}",
                        "segment_size": 1,
                        "cwd": str(work),
                    },
                    retries=0,
                ),
            )
        )
        planned = plan_batch(request)
        t0 = time.time()
        batch_id = store.add_batch(request, planned)
        dispatcher.poke()
        while store.batch(batch_id).state.value not in ("done", "failed", "canceled"):
            await asyncio.sleep(0.05)  # a harness polling its own run, not a test
        t_end = time.time()
        state = store.batch(batch_id).state.value
    finally:
        dispatcher.stop()
        await loop_task
        store.close()
    capacity = args.hosts * args.slots
    times = sorted(at for at, _ in engine.booked)
    fill = times[min(capacity, len(times)) - 1] - t0
    # Refill: each booking after the first wave, against the latest freed slot of its host
    # that it could have taken.
    refill: list[float] = []
    used: dict[str, int] = {}
    for at, host in sorted(engine.booked)[capacity:]:
        freed = sorted(engine.freed.get(host, []))
        n = used.get(host, 0)
        if n < len(freed) and freed[n] <= at:
            refill.append((at - freed[n]) * 1000)
            used[host] = n + 1
    return {
        "state": state,
        "bookings": len(engine.booked),
        "fill_rate": min(capacity, len(times)) / fill,
        "rate": len(times) / (times[-1] - t0),
        "refill_p50": percentile(refill, 0.5),
        "refill_p95": percentile(refill, 0.95),
        "refill_p99": percentile(refill, 0.99),
        "makespan": t_end - t0,
        "ideal": ideal_makespan(durations, capacity),
    }


def write_markdown(
    path: Path, rows: list[tuple[str, dict[str, Any]]], args: argparse.Namespace
) -> None:
    today = datetime.date.today().isoformat()
    lines = [
        "",  # the file's last paragraph may not end with a blank line
        f"### Dispatch at farm scale: {today}",
        "",
        f"Machine: {machine()}. The real store and dispatcher (`Dispatcher.run`, as in a "
        f"controller) booking {args.segments:,} segments queued at once onto {args.hosts:,} "
        f"simulated hosts of {args.slots} slots each ({args.hosts * args.slots:,} slots); each "
        f"task starts at once and ends after a duration drawn uniformly from {args.min_s}-"
        f"{args.max_s} s (seed {args.seed}). No process, no Dask: the controller's own booking "
        "work. Command: `python bench/dispatch_scale.py "
        f"--hosts {args.hosts} --slots {args.slots} --segments {args.segments}"
        + (" --pg URL" if args.pg else "")
        + "`.",
        "",
        "| store | fill bookings/s | bookings/s (whole run) | refill p50 | p95 | p99 "
        "| makespan | ideal makespan |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, r in rows:
        lines.append(
            f"| {name} | **{r['fill_rate']:,.0f}** | {r['rate']:,.0f} | "
            f"{r['refill_p50']:.0f} ms | {r['refill_p95']:.0f} ms | {r['refill_p99']:.0f} ms | "
            f"{r['makespan']:.1f} s | {r['ideal']:.1f} s |"
        )
    lines.append("")
    with path.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1200)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--segments", type=int, default=6000)
    parser.add_argument("--min-s", type=float, default=0.5)
    parser.add_argument("--max-s", type=float, default=3.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pg", help="also on this PostgreSQL URL (an empty database)")
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        targets = [("SQLite", f"sqlite:///{work / 'scale.db'}")]
        if args.pg:
            targets.append(("PostgreSQL", args.pg))
        for name, url in targets:
            result = await run_once(url, args, work)
            print(name, {k: round(v, 2) if isinstance(v, float) else v for k, v in result.items()})
            rows.append((name, result))
    if args.write:
        write_markdown(args.write, rows, args)


if __name__ == "__main__":
    asyncio.run(main())
