"""The dispatcher: decides which segment runs next and on which service node.

It works in ticks, each a handful of store transactions whatever the number of segments:

1. take every task end and every start/progress report the engine collected since last tick,
   and record them together (results, retries, job and batch endings);
2. every second or so, refresh the node list: new workers become nodes, vanished ones go
   offline and their segments are requeued;
3. ask the store for as many queued segments as there are free instances of each service,
   in priority order, pick a node for each (qfarm.controller.placement, pure functions over
   what was read before the store's transaction), record the dispatch, then hand them to
   the engine (any that keeps the qfarm.engine.base.Engine protocol).

Queued work never leaves the store before an instance is free for it, so a priority change,
a pause or a cancel acts on everything not yet running at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from pathlib import Path

from qfarm import jobtypes
from qfarm.controller import placement
from qfarm.controller.capacity import Capacity
from qfarm.controller.fairshare import FairShare
from qfarm.controller.fleet import NodeWatch
from qfarm.controller.freeslots import FreeSlots
from qfarm.controller.inflight import InFlight
from qfarm.controller.metrics import FarmMetrics
from qfarm.controller.placement import BLOCKLIST_AFTER, Eligible, JobHistory
from qfarm.controller.resizing import Resizer
from qfarm.controller.steer import BatchSteering
from qfarm.domain.messages import SegmentTask
from qfarm.domain.model import FINAL_JOB_STATES
from qfarm.domain.requirements import NO_REQUIREMENTS, Requirements
from qfarm.engine.base import NODE_TIMEOUT_SECONDS, Engine, EngineNode, TaskEvent
from qfarm.store import Candidate, Change, Progress, Result, Started, Store
from qfarm.waits import wait_set

NODE_REFRESH_SECONDS = 1.0
IDLE_TICK_SECONDS = 0.5
# On a busy farm (BUSY_IN_FLIGHT or more segments out on nodes), ticks are at least
# MIN_TICK_SECONDS apart, and at least as far apart as the last tick took: reports are then
# recorded in batches rather than a transaction per segment, and the dispatcher leaves at
# least half the event loop to the engine it shares it with. A quiet farm ticks at once.
BUSY_IN_FLIGHT = 2
MIN_TICK_SECONDS = 0.02
MAX_TICK_PAUSE_SECONDS = 0.05
# At most this many segments are booked in one tick: a tick holds the event loop it shares
# with the engine (Dask's heartbeats) while it books, about 0.3 ms a segment, so a farm of
# tens of thousands of slots is filled in rounds of about a second and a half each, with the
# results that came in recorded between them. Rounds are not what makes a farm fill or
# refill faster: at 4,800 slots, rounds of 1,000 filled it at 1,800 segments/s against
# 2,700-3,500 in one round (the round's start reports are then recorded inside the fill),
# with the same makespan, since the least busy node first gives a slot freed on a busy host
# its next segment last anyway (docs/benchmarks.md, dispatch at farm scale).
DISPATCH_ROUND = 5000

log = logging.getLogger(__name__)


class Dispatcher(Capacity, NodeWatch, BatchSteering):
    """The ticks, and what they dispatch; what the farm offers (Capacity), following the
    nodes (NodeWatch) and steering batches with work out (BatchSteering) are its parts of
    their own."""

    def __init__(
        self,
        store: Store,
        engine: Engine,
        *,
        logs_dir: Path,
        batch_ids: Iterable[int] | None = None,
        on_changes: Callable[[list[Change]], None] | None = None,
        fair_share: bool = False,
        dispatch_round: int = DISPATCH_ROUND,
        node_timeout: float = NODE_TIMEOUT_SECONDS,
    ) -> None:
        self.store = store
        self.dispatch_round = dispatch_round  # most segments booked per tick
        self.engine = engine
        self.logs_dir = logs_dir
        # When set, only these batches are dispatched: an embedded `qfarm run` shares the
        # store with other runs and must not take their work.
        self.batch_ids: set[int] | None = set(batch_ids) if batch_ids is not None else None
        self.on_changes = on_changes
        # Share the farm between owners at each priority (see controller.fairshare).
        self.fair_share = fair_share
        # A node silent this long (no heartbeat) is given up: its segments go elsewhere.
        self.node_timeout = node_timeout
        self.nodes: dict[str, EngineNode] = {}
        self.disabled: set[str] = set()  # drained or refused: given no new work
        self.refused: dict[str, str] = {}  # node name -> why it is refused
        self.in_flight: dict[str, InFlight] = {}
        # When each node went down lately: a node that keeps crashing is taken out of service.
        self.losses: dict[str, deque[float]] = {}
        self.crash_refused: set[str] = set()  # out of service until enabled again
        # Tool versions each job is pinned to (job id -> tool -> version), so the segments
        # of one job, which are joined together, all come from the same ffmpeg.
        self.pins: dict[int, dict[str, str]] = {}
        # What placement needs of each job's past (see placement.JobHistory), read from the
        # store outside its dispatch transaction and again after each result of the job.
        self.histories: dict[int, JobHistory] = {}
        self.resizer = Resizer(store)  # cuts adaptive jobs' untried segments again
        self.metrics = FarmMetrics()  # what GET /metrics shows
        # Fingerprints of every node the store knows, offline ones too (for pins).
        self.fingerprints: dict[str, dict[str, str]] = {}
        self.busy: dict[str, Counter[str]] = {}
        # Each live node's availability as its heartbeats say (qfarm.domain.schedule:
        # AVAILABLE, OFF_HOURS, USER_ACTIVE), and the nodes that take no new work by it.
        self.availability: dict[str, float] = {}
        self.off: set[str] = set()
        # Farm-wide limits, name -> count (qfarm limit set): kept here as the store has them.
        self.limits: dict[str, int] = store.limits()
        self.killing: set[str] = set()
        # Batches paused with --suspend: a segment of theirs reported started after the
        # suspend (it was dispatched, not yet running) is stopped as soon as it is.
        self.suspending: set[int] = set()
        self._started_while_suspending: list[InFlight] = []
        # Attempts of lost nodes (with their job ids), recorded at the next tick.
        self._lost: list[tuple[int, Result]] = []
        self._stopping = False
        self._last_refresh = 0.0

    # ------------------------------------------------------------------ control

    def poke(self) -> None:
        """Wake the loop now (a batch was submitted, released or reprioritised)."""
        self.engine.wakeup.set()

    def watch(self, batch_id: int) -> None:
        if self.batch_ids is not None:
            self.batch_ids.add(batch_id)
        self.poke()

    def set_disabled(self, name: str, disabled: bool) -> None:
        """Give a node no new work (its running segments finish), or take it back. Taking it
        back also forgives the crashes that took it out of service."""
        if disabled:
            self.disabled.add(name)
        else:
            if name in self.crash_refused:
                self.crash_refused.discard(name)
                self.losses.pop(name, None)
                self.refused.pop(name, None)
            if name not in self.refused:
                self.disabled.discard(name)
        self.poke()

    def stop(self) -> None:
        self._stopping = True
        self.poke()

    async def run(self) -> None:
        """Tick until :meth:`stop`."""
        await self.refresh_nodes()
        failures = 0
        while not self._stopping:
            began = time.monotonic()
            try:
                await self.tick()
                failures = 0
            except Exception:
                # One bad tick (a locked database, a node that vanished mid-call) must not
                # stop the farm: log it, back off, and try again.
                failures += 1
                log.exception("dispatcher tick failed (%d in a row)", failures)
                await asyncio.sleep(min(0.1 * 2**failures, 5.0))
            ended = time.monotonic()
            self.metrics.tick(ended - began)
            await wait_set(self.engine.wakeup, IDLE_TICK_SECONDS)
            if len(self.in_flight) >= BUSY_IN_FLIGHT:
                # A busy farm: let reports gather so the next tick records many at once.
                pause = min(max(MIN_TICK_SECONDS, ended - began), MAX_TICK_PAUSE_SECONDS)
                rest = pause - (time.monotonic() - ended)
                if rest > 0:
                    await asyncio.sleep(rest)

    # --------------------------------------------------------------------- tick

    async def tick(self) -> None:
        """One round of record, refresh and dispatch."""
        self.engine.wakeup.clear()
        changes: list[Change] = []
        changes += await self._record_reports()
        if self._started_while_suspending:
            # Dispatched before a --suspend and started after it: stopped now.
            started, self._started_while_suspending = self._started_while_suspending, []
            live = [f for f in started if f.key in self.in_flight]
            changes += await self._stop_or_continue(live, suspend=True)
        if time.monotonic() - self._last_refresh >= NODE_REFRESH_SECONDS:
            await self.refresh_nodes()
        changes += self._dispatch()
        for change in changes:
            if change.kind == "job" and change.state in FINAL_JOB_STATES:
                self.pins.pop(change.id, None)
                self.histories.pop(change.id, None)
                self.resizer.forget(change.id)
        if changes and self.on_changes is not None:
            self.on_changes(changes)

    async def _record_reports(self) -> list[Change]:
        ends = await self.engine.collect()
        # Events after ends: a start report that was sent before its task ended is here too.
        events: list[TaskEvent] = []
        while not self.engine.events.empty():
            events.append(self.engine.events.get_nowait())

        started: list[Started] = []
        progress: dict[str, Progress] = {}  # the latest report of each attempt is enough
        for ev in events:
            flight = self.in_flight.get(ev.key)
            if flight is None:
                continue
            if ev.kind == "started":
                started.append(Started(flight.segment_id, flight.attempt, ev.pid, ev.at))
                self.metrics.started(flight.service, flight.dispatched_at, ev.at)
                if flight.batch_id in self.suspending:
                    self._started_while_suspending.append(flight)
            elif ev.kind == "progress":
                progress[ev.key] = Progress(flight.segment_id, flight.attempt, ev.fraction, ev.at)

        lost, self._lost = self._lost, []
        results = [result for _, result in lost]
        jobs = {job_id for job_id, _ in lost}
        done: list[tuple[int, str]] = []  # (job id, job type) of segments done
        for end in ends:
            flight = self.in_flight.pop(end.key, None)
            if flight is None:
                continue  # a task of a node already given up: reported as lost then
            results.append(self._result(flight, end))
            self.metrics.ended(flight.service, results[-1])
            jobs.add(flight.job_id)
            self._release(flight)
            if end.result is not None and end.result.ok:
                done.append((flight.job_id, flight.job_type))
        changes = self.store.record_reports(started, list(progress.values()), results)
        changes += self.resizer.after_done(done)
        # A result may blocklist a node for its job or confirm its pin: the histories of the
        # jobs that had results are read again, before the next dispatch transaction.
        for job_id in jobs & set(self.histories):
            self.histories[job_id] = self._read_history(job_id)
        return changes

    def _release(self, flight: InFlight) -> None:
        busy = self.busy.get(flight.node)
        node = self.nodes.get(flight.node)
        if busy is not None and node is not None and node.address == flight.address:
            busy[flight.service] -= 1
            for name, count in flight.resources.items():
                busy[name] -= count
        self.killing.discard(flight.key)

    def _dispatch(self) -> list[Change]:
        """Hand out queued segments for the free instances, in one dispatch transaction;
        in two when some candidate's job has no history read yet (a new job): placement
        reads nothing inside the transaction, so the first stops at that candidate (the
        order of priority holds), the histories are read, and the second goes on."""
        free = self._free()
        spare = self._free_resources()
        left = self.limit_left()
        farm = self._farm()
        fair = self._fair_share(free)
        index = FreeSlots(free)  # kept in step with ``free`` as the passes book
        most = self.dispatch_round
        picked, changes, missing = self._dispatch_pass(free, spare, farm, left, index, most, fair)
        if missing and len(picked) < most:
            for job_id in missing:
                self.histories[job_id] = self._read_history(job_id)
            more, more_changes, _ = self._dispatch_pass(
                free, spare, farm, left, index, most - len(picked), fair
            )
            picked += more
            changes += more_changes
        held_back = fair is not None and fair.held_back_at is not None
        if held_back and len(picked) < most and any(free.values()):
            # Owners were held at their share and instances are still free: no instance
            # idles while work waits, so what is left goes out in the usual order.
            more, more_changes, _ = self._dispatch_pass(
                free, spare, farm, left, index, most - len(picked), None
            )
            picked += more
            changes += more_changes
        if len(picked) >= most:
            self.poke()  # a full round: the next comes after this tick's results
        keys = []
        for cand, name in picked:
            node = self.nodes[name]
            attempt = cand.attempts + 1
            key = f"qfarm-b{cand.batch_id}-s{cand.segment_id}-a{attempt}"
            held = dict(cand.requirements.amounts)
            self.in_flight[key] = InFlight(
                key, cand.segment_id, cand.job_id, cand.batch_id, attempt, name, node.address,
                cand.service, held, not jobtypes.get(cand.job_type).keeps_sessions,
                tuple(sorted(cand.requirements.limits)), cand.owner, cand.job_type,
            )  # fmt: skip
            busy = self.busy[name]
            busy[cand.service] += 1
            for resource, count in held.items():
                busy[resource] += count
            keys.append(key)
        # Payloads once every pick of this tick is counted busy: each segment's share of its
        # host's cores counts the segments that start beside it.
        queued = self.store.queued_segments(
            cand.job_id for cand, _ in picked if jobtypes.get(cand.job_type).keeps_sessions
        )
        self.engine.submit(
            [
                (self._task(cand, key, cand.attempts + 1, name, farm, queued),
                 self.nodes[name].address, cand.service)
                for (cand, name), key in zip(picked, keys, strict=True)
            ]
        )  # fmt: skip
        return changes

    def _dispatch_pass(
        self,
        free: dict[str, dict[str, int]],
        spare: dict[str, dict[str, int]],
        farm: placement.Farm,
        left: dict[str, int],
        index: FreeSlots,
        most: int,
        fair: FairShare | None = None,
    ) -> tuple[list[tuple[Candidate, str]], list[Change], set[int]]:
        by_service: Counter[str] = Counter()
        for services in free.values():
            by_service.update(services)
        if not by_service:
            return [], [], set()
        missing: set[int] = set()
        # Which nodes may run a job's segments is the same for all of them within a pass,
        # while its pin stays: worked out once per job and pin (placement.eligible).
        found: dict[tuple[int, tuple[tuple[str, str], ...] | None], placement.Eligible] = {}

        def choose(cand: Candidate) -> str | None:
            # Called inside the store's transaction: reads only what was gathered before.
            tools = jobtypes.get(cand.job_type).required_tools(cand.job_spec)
            unread = cand.job_id not in self.histories
            if unread and placement.history_matters(tools, cand.failed_nodes):
                missing.add(cand.job_id)
            if missing:
                return None
            if any(left.get(name, 0) <= 0 for name in cand.requirements.limits):
                return None  # a limit it holds is all in use (or not set): it waits
            if fair is not None and not fair.allows(cand.owner, cand.priority):
                return None  # its owner has its share for now (a later pass may add)
            history = self.histories.get(cand.job_id, JobHistory())
            pin = self.pins.get(cand.job_id) or placement.pin_from_history(history, tools, farm)
            memo = (cand.job_id, tuple(sorted(pin.items())) if pin else None)
            if memo not in found:
                found[memo] = placement.eligible(
                    farm, cand.service, tools, cand.failed_nodes, pin, history, cand.requirements
                )
            choice = placement.choose(
                cand, tools, farm, free, pin, history, spare, found[memo], index
            )
            if choice.pin is None:
                self.pins.pop(cand.job_id, None)
            else:
                self.pins[cand.job_id] = choice.pin
            if choice.node is not None:
                free[choice.node][cand.service] -= 1
                for resource, count in cand.requirements.amounts.items():
                    spare[choice.node][resource] -= count
                for name in cand.requirements.limits:
                    left[name] -= 1
                if fair is not None:
                    fair.took(cand.owner)
            return choice.node

        picked, changes = self.store.dispatch(
            dict(by_service),
            time.time(),
            self.batch_ids,
            choose,
            log_path=lambda cand: self._log_path(cand, cand.attempts + 1),
            most=most,
        )
        return picked, changes, missing

    def _fair_share(self, free: dict[str, dict[str, int]]) -> FairShare | None:
        """This tick's fair share (None when it is off, or nobody waits)."""
        if not self.fair_share:
            return None
        waiting = self.store.waiting_owners(time.time())
        if not waiting:
            return None
        instances = sum(
            count
            for name, node in self.nodes.items()
            if name not in self.disabled
            for count in node.services.values()
        )
        held = Counter(flight.owner for flight in self.in_flight.values())
        return FairShare(instances, held, waiting)

    def limit_left(self) -> dict[str, int]:
        """How many more segments each limit lets run now: its count less the attempts out
        that hold it, farm-wide. Limits are few and segments out at most the farm's
        instances, so this is counted afresh rather than kept in step with every report."""
        if not self.limits:
            return {}
        held = Counter(name for flight in self.in_flight.values() for name in flight.limits)
        return {name: count - held[name] for name, count in self.limits.items()}

    def set_limit(self, name: str, count: int | None) -> None:
        """A limit changed (None: removed); queued work may go out now."""
        if count is None:
            self.limits.pop(name, None)
        else:
            self.limits[name] = count
        self.poke()

    def _read_history(self, job_id: int) -> JobHistory:
        """What the store knows of a job's past that placement needs (outside any
        transaction of the dispatcher's)."""
        done = self.store.job_nodes(job_id, done=True)
        return JobHistory(
            nodes=tuple(done or self.store.job_nodes(job_id)),
            done=bool(done),
            blocklisted=frozenset(self.store.blocklisted_nodes(job_id, BLOCKLIST_AFTER)),
        )

    def eligible(
        self,
        job_id: int,
        service: str,
        tools: tuple[str, ...],
        failed_nodes: tuple[str, ...],
        requirements: Requirements = NO_REQUIREMENTS,
    ) -> Eligible:
        """The nodes that may run a segment of a job, busy or not, or none and why not (see
        placement.eligible), from what is known now. Changes nothing."""
        history = self.histories.get(job_id)
        if history is None:
            # Read only where it matters, as a dispatch pass does: it is a query over all
            # the job's attempts, too much for every poll of a large batch.
            matters = placement.history_matters(tools, failed_nodes)
            history = self._read_history(job_id) if matters else JobHistory()
        farm = self._farm()
        pin = self.pins.get(job_id) or placement.pin_from_history(history, tools, farm)
        return placement.eligible(farm, service, tools, failed_nodes, pin, history, requirements)

    def _log_path(self, cand: Candidate, attempt: int) -> str:
        # Joined as strings: pathlib's joins were a tenth of a farm-filling tick.
        return os.path.join(
            self.logs_dir,
            f"batch-{cand.batch_id}",
            f"job-{cand.job_id}",
            f"segment-{cand.index:04d}-attempt-{attempt}.log",
        )

    def _task(
        self,
        cand: Candidate,
        key: str,
        attempt: int,
        node_name: str,
        farm: placement.Farm,
        queued: dict[int, int],
    ) -> SegmentTask:
        return SegmentTask(
            key=key,
            batch_id=cand.batch_id,
            job_id=cand.job_id,
            segment_id=cand.segment_id,
            attempt=attempt,
            job_type=cand.job_type,
            job=cand.job_spec,
            segment=cand.segment_spec,
            timeout=cand.timeout,
            log_path=self._log_path(cand, attempt),
            threads=placement.threads(farm, self.busy, node_name, cand.service),
            resources=dict(cand.requirements.amounts),
            job_queued_after=(
                queued.get(cand.job_id, 0) if jobtypes.get(cand.job_type).keeps_sessions else None
            ),
        )
