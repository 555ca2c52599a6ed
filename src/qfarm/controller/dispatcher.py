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
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from qfarm import __version__, jobtypes
from qfarm.controller import placement
from qfarm.controller.fairshare import FairShare
from qfarm.controller.placement import BLOCKLIST_AFTER, Eligible, JobHistory
from qfarm.domain.lifecycle import CrashLoop, refusal
from qfarm.domain.messages import SegmentTask
from qfarm.domain.model import FINAL_JOB_STATES, BatchState, Node, NodeState, SegmentState
from qfarm.domain.requirements import NO_REQUIREMENTS, NodeOffer, Requirements
from qfarm.domain.schedule import (
    AVAILABILITY_NAMES,
    AVAILABLE,
    HoursAction,
    hours_actions,
    parse_schedule_end,
)
from qfarm.domain.steering import resume_continues, suspend_plan
from qfarm.engine.base import NODE_TIMEOUT_SECONDS, Engine, EngineNode, TaskEnd, TaskEvent
from qfarm.store import Candidate, Change, Progress, Result, Started, Store

NODE_REFRESH_SECONDS = 1.0
IDLE_TICK_SECONDS = 0.5
# On a busy farm (BUSY_IN_FLIGHT or more segments out on nodes), ticks are at least
# MIN_TICK_SECONDS apart, and at least as far apart as the last tick took: reports are then
# recorded in batches rather than a transaction per segment, and the dispatcher leaves at
# least half the event loop to the engine it shares it with. A quiet farm ticks at once.
BUSY_IN_FLIGHT = 2
MIN_TICK_SECONDS = 0.02
MAX_TICK_PAUSE_SECONDS = 0.05
# A node that goes down more than this many times in the window is taken out of service
# (Qmaster restarted a crashed service up to four times).
MAX_NODE_RESTARTS = 4
CRASH_WINDOW_SECONDS = 600.0
CRASH_LOOP = CrashLoop(MAX_NODE_RESTARTS, CRASH_WINDOW_SECONDS)

log = logging.getLogger(__name__)


@dataclass
class InFlight:
    """A segment attempt handed to the engine and not yet reported back."""

    key: str
    segment_id: int
    job_id: int
    batch_id: int
    attempt: int
    node: str
    address: str
    service: str
    resources: dict[str, int] = field(default_factory=dict)  # counted, held while it runs
    # Whether its processes are qfarm's to stop (SIGSTOP): not an OpenJD job's, whose
    # actions belong to openjd-sessions (see Dispatcher.suspend_batch).
    suspendable: bool = True
    limits: tuple[str, ...] = ()  # the farm-wide limits it holds one of (see limit_left)
    owner: str = ""  # its batch's owner (fair share)


class Dispatcher:
    def __init__(
        self,
        store: Store,
        engine: Engine,
        *,
        logs_dir: Path,
        batch_ids: Iterable[int] | None = None,
        on_changes: Callable[[list[Change]], None] | None = None,
        fair_share: bool = False,
    ) -> None:
        self.store = store
        self.engine = engine
        self.logs_dir = logs_dir
        # When set, only these batches are dispatched: an embedded `qfarm run` shares the
        # store with other runs and must not take their work.
        self.batch_ids: set[int] | None = set(batch_ids) if batch_ids is not None else None
        self.on_changes = on_changes
        # Share the farm between owners at each priority (see controller.fairshare).
        self.fair_share = fair_share
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
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.engine.wakeup.wait(), IDLE_TICK_SECONDS)
            if len(self.in_flight) >= BUSY_IN_FLIGHT:
                # A busy farm: let reports gather so the next tick records many at once.
                pause = min(max(MIN_TICK_SECONDS, ended - began), MAX_TICK_PAUSE_SECONDS)
                rest = pause - (time.monotonic() - ended)
                if rest > 0:
                    await asyncio.sleep(rest)

    async def suspend_batch(self, batch_id: int) -> list[Change]:
        """Pause a batch and stop its running segments' processes where they are (SIGSTOP
        on their nodes), recording them suspended. Each keeps its attempt and its node's
        instance; :meth:`resume_batch` continues them. Refused (InvalidRequest) for an
        ended batch and for one running OpenJD jobs (see steering.suspend_plan)."""
        batch = self.store.batch(batch_id)
        active = self.store.active_segments([batch_id])
        jobs = {job.id: job for job in self.store.jobs(batch_id)}
        unsuspendable = {
            jobs[s.job_id].name
            for s in active
            if jobtypes.get(jobs[s.job_id].job_type).keeps_sessions
        }
        running = [s.id for s in active if s.state is SegmentState.RUNNING]
        plan = suspend_plan(batch_id, batch.state, running, unsuspendable)
        changes = self.store.pause_batch(batch_id) if plan.batch is not None else []
        if batch.state is not BatchState.HELD:  # a held batch has nothing out to stop
            self.suspending.add(batch_id)
        by_segment = {f.segment_id: f for f in self.in_flight.values()}
        flights = [by_segment[s] for s in plan.segments if s in by_segment]
        changes += await self._stop_or_continue(flights, suspend=True)
        self.poke()
        return changes  # for the caller to broadcast (Controller.suspend)

    async def resume_batch(self, batch_id: int) -> list[Change]:
        """Resume a paused or held batch; a paused one's suspended segments are continued
        (SIGCONT) and run on from where they were, on the same attempt."""
        batch = self.store.batch(batch_id)
        suspended = [
            s.id
            for s in self.store.active_segments([batch_id])
            if s.state is SegmentState.SUSPENDED
        ]
        continued = resume_continues(batch.state, suspended)
        changes = self.store.resume_batch(batch_id)
        self.suspending.discard(batch_id)
        by_segment = {f.segment_id: f for f in self.in_flight.values()}
        flights = [by_segment[s] for s in continued if s in by_segment]
        changes += await self._stop_or_continue(flights, suspend=False)
        self.poke()
        return changes

    async def _stop_or_continue(self, flights: list[InFlight], *, suspend: bool) -> list[Change]:
        """Ask each flight's node to stop (or continue) its processes, and record those the
        node did: a process that had just ended, or a node that could not be reached, is
        left to report as it will (its end, or its loss)."""
        flights = [f for f in flights if f.suspendable]
        if not flights:
            return []
        act = self.engine.suspend if suspend else self.engine.resume
        answers = await asyncio.gather(*(act(f.key, f.address) for f in flights))
        reached = [f for f, ok in zip(flights, answers, strict=True) if ok]
        if suspend:
            # A resume that came while the stops were out found these still running and
            # left them: continue them now rather than leave them stopped in a running batch.
            resumed = [f for f in reached if f.batch_id not in self.suspending]
            if resumed:
                await asyncio.gather(*(self.engine.resume(f.key, f.address) for f in resumed))
                reached = [f for f in reached if f.batch_id in self.suspending]
        # A flight may have been given up (its node lost) while the calls were out.
        done = [(f.segment_id, f.attempt) for f in reached if f.key in self.in_flight]
        return self.store.record_suspended(done, suspended=suspend)

    async def cancel_batch(self, batch_id: int, reason: str = "canceled") -> None:
        """Cancel queued work at once and kill what runs (a suspended segment is continued
        by its node's kill so that it can end); kills report back as canceled."""
        self.suspending.discard(batch_id)
        canceled = self.store.cancel(batch_id, reason)
        if canceled.changes and self.on_changes is not None:
            self.on_changes(canceled.changes)  # what ended at once, for the event stream
        by_segment = {f.segment_id: f for f in self.in_flight.values()}
        kills = []
        for segment in canceled.active:
            flight = by_segment.get(segment.id)
            if flight is None:
                continue
            self.killing.add(flight.key)
            kills.append(self.engine.kill(flight.key, flight.address))
        await asyncio.gather(*kills)
        self.poke()

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
                if flight.batch_id in self.suspending:
                    self._started_while_suspending.append(flight)
            elif ev.kind == "progress":
                progress[ev.key] = Progress(flight.segment_id, flight.attempt, ev.fraction, ev.at)

        lost, self._lost = self._lost, []
        results = [result for _, result in lost]
        jobs = {job_id for job_id, _ in lost}
        for end in ends:
            flight = self.in_flight.pop(end.key, None)
            if flight is None:
                continue  # a task of a node already given up: reported as lost then
            results.append(self._result(flight, end))
            jobs.add(flight.job_id)
            self._release(flight)
        changes = self.store.record_reports(started, list(progress.values()), results)
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

    def _result(self, flight: InFlight, end: TaskEnd) -> Result:
        if end.result is None:
            return Result(
                segment_id=flight.segment_id,
                attempt=flight.attempt,
                ok=False,
                node=flight.node,
                lost=True,
                error=f"node {flight.node} lost the segment ({end.error})",
            )
        r = end.result
        canceled = r.killed and flight.key in self.killing
        return Result(
            segment_id=flight.segment_id,
            attempt=flight.attempt,
            ok=r.ok,
            node=flight.node,
            exit_code=r.exit_code,
            error="canceled" if canceled else r.error,
            canceled=canceled,
            started_at=r.started_at,
            ended_at=r.ended_at,
            pid=r.pid,
            # The store keeps the log's path chosen at dispatch, under the controller's logs
            # folder, which is the only one it reads; the node sends only its tail.
            log_tail=r.log_tail,
        )

    async def refresh_nodes(self) -> None:
        """Bring the node list up to date with the engine's live workers."""
        self._last_refresh = time.monotonic()
        # A node silent for longer than the timeout is lost, even while Dask still lists it
        # (frozen, or cut off with its connection open): its segments go elsewhere now. It
        # comes back as a new node once its heartbeats do.
        live = {
            n.name: n for n in await self.engine.nodes() if n.silent_for <= NODE_TIMEOUT_SECONDS
        }
        now = time.time()
        for name, engine_node in live.items():
            known = self.nodes.get(name)
            unknown_facts = known is not None and not known.facts
            if known is None or known.address != engine_node.address or unknown_facts:
                if known is not None and known.address != engine_node.address:
                    await self._lose_node(known)
                    self.busy[name] = Counter()
                self.busy.setdefault(name, Counter())
                version = engine_node.facts.get("version")
                looping = name in self.crash_refused or self._crash_looping(name)
                runner = bool(engine_node.facts.get("runner", True))
                why = refusal(name, version, __version__, looping, CRASH_LOOP, runner)
                if why is None:
                    self.refused.pop(name, None)
                else:
                    if looping and version == __version__:
                        self.crash_refused.add(name)  # until `qfarm node enable`
                    if why != self.refused.get(name):
                        log.warning("refusing %s", why)
                    self.refused[name] = why
                self.store.upsert_node(
                    Node(
                        name=name,
                        address=engine_node.address,
                        state=NodeState.ONLINE,
                        services=engine_node.services,
                        host=str(engine_node.facts.get("host") or engine_node.host),
                        cores=int(engine_node.facts.get("cores") or 0),
                        memory=int(engine_node.facts.get("memory") or 0),
                        fingerprint=dict(engine_node.facts.get("fingerprint") or {}),
                        last_seen=now,
                        tags=tuple(sorted(engine_node.facts.get("tags") or ())),
                        resources=dict(engine_node.resources),
                    )
                )
        for name, known in list(self.nodes.items()):
            if name not in live:
                await self._lose_node(known)
                self.busy.pop(name, None)
                self.store.mark_offline(name)
        self.nodes = live
        stored = self.store.nodes()
        self.fingerprints = {n.name: dict(n.fingerprint) for n in stored}
        self.disabled = {n.name for n in stored if n.state is NodeState.DISABLED}
        self.disabled |= set(self.refused)
        await self._follow_hours(live)
        self.disabled |= self.off

    def _crash_looping(self, name: str) -> bool:
        """Whether a node has gone down more than MAX_NODE_RESTARTS times lately: its worker
        is restarted by its nanny each time, and a node that crashes over and over would
        otherwise lose every segment it is given."""
        losses = self.losses.get(name)
        if not losses:
            return False
        while losses and losses[0] < time.monotonic() - CRASH_WINDOW_SECONDS:
            losses.popleft()
        return len(losses) > MAX_NODE_RESTARTS

    async def _lose_node(self, node: EngineNode) -> None:
        """Give up on everything out on a node that went away: each attempt is recorded as
        lost at the next tick (its segment is queued again), and its task withdrawn, so a
        late end from it is ignored.
        """
        self.losses.setdefault(node.name, deque()).append(time.monotonic())
        for flight in [f for f in self.in_flight.values() if f.address == node.address]:
            log.warning("node %s went away while running %s", node.name, flight.key)
            await self._give_up(flight, "node lost")

    async def _give_up(self, flight: InFlight, error: str) -> None:
        """Record an attempt as lost at the next tick (its segment is queued again, no
        failure counted) and withdraw its task, so a late end from it is ignored."""
        del self.in_flight[flight.key]
        self.killing.discard(flight.key)
        end = TaskEnd(flight.key, None, lost=True, error=error)
        self._lost.append((flight.job_id, self._result(flight, end)))
        await self.engine.withdraw(flight.key)

    async def _follow_hours(self, live: dict[str, EngineNode]) -> None:
        """Nodes that went off (outside their --schedule, or their user came back) take no
        new work; their running segments do as each node's --schedule-end says: run on
        (finish), stop where they are until it is back (suspend), or go to other nodes now
        (requeue, no failure counted)."""
        now = {name: float(node.load.get("availability", AVAILABLE)) for name, node in live.items()}
        ends = {
            name: parse_schedule_end(str(node.facts.get("schedule_end") or "finish"))
            for name, node in live.items()
        }
        for name, action in hours_actions(self.availability, now, ends).items():
            flights = [f for f in self.in_flight.values() if f.node == name]
            log.warning("node %s is %s: %s", name, AVAILABILITY_NAMES.get(now[name]), action)
            if action is HoursAction.REQUEUE:
                for flight in flights:
                    await self.engine.kill(flight.key, flight.address)
                    await self._give_up(flight, f"node {name}'s hours ended (schedule-end requeue)")
            else:
                await self._hold_for_hours(flights, suspend=action is HoursAction.SUSPEND)
        self.availability = now
        self.off = {name for name, state in now.items() if state < AVAILABLE}

    async def _hold_for_hours(self, flights: list[InFlight], *, suspend: bool) -> None:
        """Stop (or continue) the processes of a node's flights for its hours, whatever
        their batches' own state."""
        flights = [f for f in flights if f.suspendable]
        act = self.engine.suspend if suspend else self.engine.resume
        answers = await asyncio.gather(*(act(f.key, f.address) for f in flights))
        done = [(f.segment_id, f.attempt) for f, ok in zip(flights, answers, strict=True)
                if ok and f.key in self.in_flight]  # fmt: skip
        changes = self.store.record_suspended(done, suspended=suspend)
        if changes and self.on_changes is not None:
            self.on_changes(changes)

    def _free(self) -> dict[str, dict[str, int]]:
        """Free instances: node -> service -> count, for nodes that take work."""
        free: dict[str, dict[str, int]] = {}
        for name, node in self.nodes.items():
            if name in self.disabled:
                continue
            busy = self.busy.setdefault(name, Counter())
            free[name] = {s: n - busy[s] for s, n in node.services.items() if n - busy[s] > 0}
        return free

    def _free_resources(self) -> dict[str, dict[str, int]]:
        """Free counted resources: node -> resource -> count not held by its running
        segments (kept beside ``busy``, which counts both)."""
        free: dict[str, dict[str, int]] = {}
        for name, node in self.nodes.items():
            if node.resources and name not in self.disabled:
                busy = self.busy.setdefault(name, Counter())
                free[name] = {r: n - busy[r] for r, n in node.resources.items()}
        return free

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
        picked, changes, missing = self._dispatch_pass(free, spare, farm, left, fair)
        if missing:
            for job_id in missing:
                self.histories[job_id] = self._read_history(job_id)
            more, more_changes, _ = self._dispatch_pass(free, spare, farm, left, fair)
            picked += more
            changes += more_changes
        if fair is not None and fair.held_back_at is not None and any(free.values()):
            # Owners were held at their share and instances are still free: no instance
            # idles while work waits, so what is left goes out in the usual order.
            more, more_changes, _ = self._dispatch_pass(free, spare, farm, left, None)
            picked += more
            changes += more_changes
        keys = []
        for cand, name in picked:
            node = self.nodes[name]
            attempt = cand.attempts + 1
            key = f"qfarm-b{cand.batch_id}-s{cand.segment_id}-a{attempt}"
            held = dict(cand.requirements.amounts)
            self.in_flight[key] = InFlight(
                key, cand.segment_id, cand.job_id, cand.batch_id, attempt, name, node.address,
                cand.service, held, not jobtypes.get(cand.job_type).keeps_sessions,
                tuple(sorted(cand.requirements.limits)), cand.owner,
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
        fair: FairShare | None = None,
    ) -> tuple[list[tuple[Candidate, str]], list[Change], set[int]]:
        by_service: Counter[str] = Counter()
        for services in free.values():
            by_service.update(services)
        if not by_service:
            return [], [], set()
        missing: set[int] = set()

        def choose(cand: Candidate) -> str | None:
            # Called inside the store's transaction: reads only what was gathered before.
            tools = jobtypes.get(cand.job_type).required_tools(cand.job_spec)
            if (tools or cand.failed_nodes) and cand.job_id not in self.histories:
                missing.add(cand.job_id)
            if missing:
                return None
            if any(left.get(name, 0) <= 0 for name in cand.requirements.limits):
                return None  # a limit it holds is all in use (or not set): it waits
            if fair is not None and not fair.allows(cand.owner, cand.priority):
                return None  # its owner has its share for now (a later pass may add)
            history = self.histories.get(cand.job_id, JobHistory())
            pin = self.pins.get(cand.job_id) or placement.pin_from_history(history, tools, farm)
            choice = placement.choose(cand, tools, farm, free, pin, history, spare)
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
            log_path=lambda cand: str(self._log_path(cand, cand.attempts + 1)),
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

    def farm(self) -> placement.Farm:
        """The live nodes as placement sees them now (ETAs read them too)."""
        return self._farm()

    def _farm(self) -> placement.Farm:
        """The live nodes as placement sees them (see placement.Farm)."""
        return placement.Farm(
            nodes={
                name: placement.NodeView(
                    name,
                    dict(node.services),
                    fingerprint=dict(node.facts.get("fingerprint") or {}),
                    host=str(node.facts.get("host") or node.host),
                    cores=int(node.facts.get("cores") or 1),
                    offer=_offer(node),
                )
                for name, node in self.nodes.items()
            },
            disabled=frozenset(self.disabled),
            fingerprints=self.fingerprints,
        )

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
        history = self.histories.get(job_id) or self._read_history(job_id)
        farm = self._farm()
        pin = self.pins.get(job_id) or placement.pin_from_history(history, tools, farm)
        return placement.eligible(farm, service, tools, failed_nodes, pin, history, requirements)

    def _log_path(self, cand: Candidate, attempt: int) -> Path:
        return (
            self.logs_dir
            / f"batch-{cand.batch_id}"
            / f"job-{cand.job_id}"
            / f"segment-{cand.index:04d}-attempt-{attempt}.log"
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
            log_path=str(self._log_path(cand, attempt)),
            threads=placement.threads(farm, self.busy, node_name, cand.service),
            resources=dict(cand.requirements.amounts),
            job_queued_after=(
                queued.get(cand.job_id, 0) if jobtypes.get(cand.job_type).keeps_sessions else None
            ),
        )


def _offer(node: EngineNode) -> NodeOffer:
    """What a live node has, for requirements: its tags and host facts as it reported them,
    and its counted resources as the engine knows them (the worker's own)."""
    facts = node.facts
    return NodeOffer(
        tags=frozenset(str(t) for t in facts.get("tags") or ()),
        resources=dict(node.resources),
        os_family=str(facts.get("os_family") or ""),
        cpu_arch=str(facts.get("cpu_arch") or ""),
        cores=int(facts.get("cores") or 0),
        memory_mib=int(facts.get("memory") or 0) // 2**20,
        gpu_memory_mib=int(facts.get("gpu_memory_mib") or 0),
        scratch_gib=int(facts.get("scratch_gib") or 0),
    )
