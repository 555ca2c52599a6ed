"""The dispatcher: decides which segment runs next and on which service node.

It works in ticks, each a handful of store transactions whatever the number of segments:

1. take every task end and every start/progress report the engine collected since last tick,
   and record them together (results, retries, job and batch endings);
2. every second or so, refresh the node list: new workers become nodes, vanished ones go
   offline and their segments are requeued;
3. ask the store for as many queued segments as there are free instances of each service,
   in priority order, pick a node for each, record the dispatch, then hand them to the engine.

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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qfarm import __version__, jobtypes
from qfarm.domain.model import FINAL_JOB_STATES, Node, NodeState
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
# A node on which one segment failed this many times is blocklisted for the segment's job.
BLOCKLIST_AFTER = 3
# A node that goes down more than this many times in the window is taken out of service
# (Qmaster restarted a crashed service up to four times).
MAX_NODE_RESTARTS = 4
CRASH_WINDOW_SECONDS = 600.0

log = logging.getLogger(__name__)


@dataclass
class InFlight:
    """A segment attempt handed to the engine and not yet reported back."""

    key: str
    segment_id: int
    batch_id: int
    attempt: int
    node: str
    address: str
    service: str


@dataclass(frozen=True)
class Eligible:
    """The nodes that may run a job's segments, or, when there are none, why."""

    nodes: list[str]
    why_not: str = ""
    repin: bool = False  # the job's tool pin is to be dropped: no node with it may run it


class Dispatcher:
    def __init__(
        self,
        store: Store,
        engine: Engine,
        *,
        logs_dir: Path,
        batch_ids: Iterable[int] | None = None,
        on_changes: Callable[[list[Change]], None] | None = None,
    ) -> None:
        self.store = store
        self.engine = engine
        self.logs_dir = logs_dir
        # When set, only these batches are dispatched: an embedded `qfarm run` shares the
        # store with other runs and must not take their work.
        self.batch_ids: set[int] | None = set(batch_ids) if batch_ids is not None else None
        self.on_changes = on_changes
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
        self.confirmed_pins: set[int] = set()
        self.busy: dict[str, Counter[str]] = {}
        self.killing: set[str] = set()
        self._lost: list[Result] = []  # attempts of lost nodes, recorded at the next tick
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

    async def cancel_batch(self, batch_id: int, reason: str = "canceled") -> None:
        """Cancel queued work at once and kill what runs; kills report back as canceled."""
        active = self.store.cancel_batch(batch_id, reason)
        by_segment = {f.segment_id: f for f in self.in_flight.values()}
        kills = []
        for segment in active:
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
        if time.monotonic() - self._last_refresh >= NODE_REFRESH_SECONDS:
            await self.refresh_nodes()
        changes += self._dispatch()
        for change in changes:
            if change.kind == "job" and change.state in FINAL_JOB_STATES:
                self.pins.pop(change.id, None)
                self.confirmed_pins.discard(change.id)
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
            elif ev.kind == "progress":
                progress[ev.key] = Progress(flight.segment_id, flight.attempt, ev.fraction, ev.at)

        results, self._lost = self._lost, []
        for end in ends:
            flight = self.in_flight.pop(end.key, None)
            if flight is None:
                continue  # a task of a node already given up: reported as lost then
            results.append(self._result(flight, end))
            self._release(flight)
        return self.store.record_reports(started, list(progress.values()), results)

    def _release(self, flight: InFlight) -> None:
        busy = self.busy.get(flight.node)
        node = self.nodes.get(flight.node)
        if busy is not None and node is not None and node.address == flight.address:
            busy[flight.service] -= 1
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
        canceled = bool(r.get("killed")) and flight.key in self.killing
        return Result(
            segment_id=flight.segment_id,
            attempt=flight.attempt,
            ok=bool(r["ok"]),
            node=flight.node,
            exit_code=r.get("exit_code"),
            error="canceled" if canceled else str(r.get("error") or ""),
            canceled=canceled,
            started_at=r.get("started_at"),
            ended_at=r.get("ended_at"),
            pid=r.get("pid"),
            # Not the node's word for where the log is: the store keeps the path chosen at
            # dispatch, under the controller's logs folder, which is the only one it reads.
            log_tail=str(r.get("log_tail") or ""),
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
                if version is None:
                    # Its facts could not be read (yet): no work until they can.
                    self.refused[name] = f"node {name} has not told its version yet"
                elif version != __version__:
                    # The brief's rule: every node runs the controller's version, so the
                    # chunks of one job join seamlessly. Such a node gets no work.
                    self.refused[name] = (
                        f"node {name} runs qfarm {version}, the controller {__version__}"
                    )
                    log.warning("refusing %s", self.refused[name])
                elif name in self.crash_refused or self._crash_looping(name):
                    self.crash_refused.add(name)
                    self.refused[name] = (
                        f"node {name} went down more than {MAX_NODE_RESTARTS} times in "
                        f"{CRASH_WINDOW_SECONDS // 60:.0f} minutes: out of service until "
                        f"`qfarm node enable {name}`"
                    )
                    log.warning("taking a node out of service: %s", self.refused[name])
                else:
                    self.refused.pop(name, None)
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
                    )
                )
        for name, known in list(self.nodes.items()):
            if name not in live:
                await self._lose_node(known)
                self.busy.pop(name, None)
                self.store.mark_offline(name)
        self.nodes = live
        self.disabled = {n.name for n in self.store.nodes() if n.state is NodeState.DISABLED}
        self.disabled |= set(self.refused)

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
            del self.in_flight[flight.key]
            self.killing.discard(flight.key)
            self._lost.append(
                self._result(flight, TaskEnd(flight.key, None, lost=True, error="node lost"))
            )
            await self.engine.withdraw(flight.key)

    def _free(self) -> dict[str, dict[str, int]]:
        """Free instances: node -> service -> count, for nodes that take work."""
        free: dict[str, dict[str, int]] = {}
        for name, node in self.nodes.items():
            if name in self.disabled:
                continue
            busy = self.busy.setdefault(name, Counter())
            free[name] = {s: n - busy[s] for s, n in node.services.items() if n - busy[s] > 0}
        return free

    def _dispatch(self) -> list[Change]:
        free = self._free()
        by_service: Counter[str] = Counter()
        for services in free.values():
            by_service.update(services)
        if not by_service:
            return []

        def choose(cand: Candidate) -> str | None:
            name = self._pick_node(cand, free)
            if name is not None:
                free[name][cand.service] -= 1
            return name

        picked, changes = self.store.dispatch(
            dict(by_service),
            time.time(),
            self.batch_ids,
            choose,
            log_path=lambda cand: str(self._log_path(cand, cand.attempts + 1)),
        )
        keys = []
        for cand, name in picked:
            node = self.nodes[name]
            attempt = cand.attempts + 1
            key = f"qfarm-b{cand.batch_id}-s{cand.segment_id}-a{attempt}"
            self.in_flight[key] = InFlight(
                key, cand.segment_id, cand.batch_id, attempt, name, node.address, cand.service
            )
            self.busy[name][cand.service] += 1
            keys.append(key)
        # Payloads once every pick of this tick is counted busy: each segment's share of its
        # host's cores counts the segments that start beside it.
        self.engine.submit(
            [
                (self._payload(cand, key, cand.attempts + 1, name), self.nodes[name].address,
                 cand.service)
                for (cand, name), key in zip(picked, keys, strict=True)
            ]
        )  # fmt: skip
        return changes

    def _pick_node(self, cand: Candidate, free: dict[str, dict[str, int]]) -> str | None:
        """The least busy free node for a segment, among those that may run it (see
        :meth:`eligible`): while some node that has not failed the job may, the segment
        waits for it rather than going back to a node that failed.
        """
        tools = jobtypes.get(cand.job_type).required_tools(cand.job_spec)
        found = self.eligible(cand.job_id, cand.service, tools, cand.failed_nodes)
        if found.repin:
            # Nothing of the job is done yet, and every node with the pinned versions
            # failed it (a build without an encoder, say): pin anew.
            del self.pins[cand.job_id]
        fresh = [name for name in found.nodes if name not in cand.failed_nodes]
        pool = fresh if fresh else found.nodes
        ready = [name for name in pool if free.get(name, {}).get(cand.service, 0) > 0]
        if not ready:
            return None
        chosen = max(ready, key=lambda name: (free[name][cand.service], name))
        if tools and cand.job_id not in self.pins:
            self.pins[cand.job_id] = self._versions(chosen, tools)
        return chosen

    def eligible(
        self, job_id: int, service: str, tools: tuple[str, ...], failed_nodes: tuple[str, ...]
    ) -> Eligible:
        """The nodes that may run a segment of a job, busy or not, or none and why not.

        A node may if it takes work and offers the service; if it has the job's tools, in
        the versions the job is pinned to; and unless one segment of the job failed on it
        BLOCKLIST_AFTER times. Nothing here changes state: a pin that is to be dropped is
        only reported (``repin``).
        """
        offering = [name for name, node in self.nodes.items() if node.services.get(service, 0) > 0]
        if not offering:
            return Eligible([], f"no online node offers the {service} service")
        offering = [name for name in offering if name not in self.disabled]
        if not offering:
            return Eligible([], f"every node that offers {service} is disabled or refused")
        repin = False
        if tools:
            offering = [n for n in offering if all(self._versions(n, tools).values())]
            if not offering:
                return Eligible([], f"no online {service} node has {' and '.join(tools)}")
            pin = self._pin(job_id, tools)
            if pin:
                matching = [n for n in offering if self._versions(n, tools) == pin]
                if self._pin_confirmed(job_id) or any(n not in failed_nodes for n in matching):
                    offering = matching
                else:
                    repin = True
                if not offering:
                    versions = ", ".join(f"{tool} {version}" for tool, version in pin.items())
                    return Eligible(
                        [],
                        f"waits for a node with {versions}, the version its first segments "
                        "ran with (every segment of a job runs with the same tools)",
                    )
        if failed_nodes:
            blocked = self.store.blocklisted_nodes(job_id, BLOCKLIST_AFTER)
            offering = [n for n in offering if n not in blocked]
            if not offering:
                return Eligible(
                    [],
                    f"every node that could run it is blocklisted for this job (a segment "
                    f"failed {BLOCKLIST_AFTER} times on each)",
                    repin,
                )
        return Eligible(offering, "", repin)

    def _versions(self, name: str, tools: tuple[str, ...]) -> dict[str, str]:
        node = self.nodes.get(name)
        fingerprint = (node.facts.get("fingerprint") or {}) if node is not None else {}
        return {tool: str(fingerprint.get(tool, "")) for tool in tools}

    def _pin(self, job_id: int, tools: tuple[str, ...]) -> dict[str, str] | None:
        """The tool versions a job's segments must run with: those of the node its first
        done attempt ran on, else of the first node it went to (read back from the store,
        so a restarted controller keeps the pin)."""
        if job_id not in self.pins:
            fingerprints = {n.name: n.fingerprint for n in self.store.nodes()}
            names = self.store.job_nodes(job_id, done=True) or self.store.job_nodes(job_id)
            for name in names:
                if name in fingerprints:
                    known = fingerprints[name]
                    self.pins[job_id] = {tool: str(known.get(tool, "")) for tool in tools}
                    break
        return self.pins.get(job_id)

    def _pin_confirmed(self, job_id: int) -> bool:
        """Whether some segment of the job is done: from then on its pin holds for good."""
        if job_id not in self.confirmed_pins and self.store.job_nodes(job_id, done=True):
            self.confirmed_pins.add(job_id)
        return job_id in self.confirmed_pins

    def _log_path(self, cand: Candidate, attempt: int) -> Path:
        return (
            self.logs_dir
            / f"batch-{cand.batch_id}"
            / f"job-{cand.job_id}"
            / f"segment-{cand.index:04d}-attempt-{attempt}.log"
        )

    def _payload(self, cand: Candidate, key: str, attempt: int, node_name: str) -> dict[str, Any]:
        log_path = self._log_path(cand, attempt)
        return {
            "key": key,
            "batch_id": cand.batch_id,
            "job_id": cand.job_id,
            "segment_id": cand.segment_id,
            "attempt": attempt,
            "job_type": cand.job_type,
            "job": cand.job_spec,
            "segment": cand.segment_spec,
            "timeout": cand.timeout,
            "log_path": str(log_path),
            "threads": self._threads(node_name, cand.service),
        }

    def _threads(self, name: str, service: str) -> int:
        """Cores a segment of ``service`` starting on node ``name`` may use, for tools that
        thread themselves (ffmpeg): its host's cores shared among the segments of that
        service running there now, this one included. Local nodes of an embedded cluster
        share one host. A lone segment gets every core; segments that start together split
        them, as independent single-threaded encodes use cores better than threads do.
        """
        node = self.nodes.get(name)
        if node is None:
            return 1
        host = node.facts.get("host") or node.host
        cores = int(node.facts.get("cores") or 1)
        running = sum(
            self.busy.get(other, Counter())[service]
            for other, other_node in self.nodes.items()
            if (other_node.facts.get("host") or other_node.host) == host
        )
        return max(1, cores // max(1, running))
