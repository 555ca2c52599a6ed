"""Following the nodes: the live list from the engine, refusals and crash loops, nodes that
went away (their attempts requeued), and nodes that go off and on by their hours (the
dispatcher's part)."""

from __future__ import annotations

import logging
import time
from collections import Counter, deque

from qfarm import __version__
from qfarm.controller.inflight import DispatcherState, InFlight
from qfarm.domain.lifecycle import CrashLoop, refusal
from qfarm.domain.model import Node, NodeState
from qfarm.domain.requirements import NodeOffer
from qfarm.domain.schedule import (
    AVAILABILITY_NAMES,
    AVAILABLE,
    HoursAction,
    hours_actions,
    parse_schedule_end,
)
from qfarm.engine.base import EngineNode, TaskEnd

log = logging.getLogger("qfarm.controller.dispatcher")

# A node that goes down more than this many times in the window is taken out of service
# (Qmaster restarted a crashed service up to four times).
MAX_NODE_RESTARTS = 4
CRASH_WINDOW_SECONDS = 600.0
CRASH_LOOP = CrashLoop(MAX_NODE_RESTARTS, CRASH_WINDOW_SECONDS)


class NodeWatch(DispatcherState):
    async def refresh_nodes(self) -> None:
        """Bring the node list up to date with the engine's live workers."""
        self._last_refresh = time.monotonic()
        # A node silent for longer than the timeout is lost, even while Dask still lists it
        # (frozen, or cut off with its connection open): its segments go elsewhere now. It
        # comes back as a new node once its heartbeats do.
        live = {n.name: n for n in await self.engine.nodes() if n.silent_for <= self.node_timeout}
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
        flights = [f for f in self.in_flight.values() if f.address == node.address]
        await self._give_up_all(flights, "node lost", f"node {node.name} went away while running")

    async def give_up_node(self, name: str, why: str) -> int:
        """Record every attempt out on node ``name`` as lost now (its segments queued again,
        no retry used) and withdraw their tasks; how many there were. For a node about to
        be shut out: its worker, told to close, kills its segments' processes, and their
        ends (killed, so failed) can reach us before a tick sees the node gone, counted
        against retries for what was no fault of theirs."""
        flights = [f for f in self.in_flight.values() if f.node == name]
        await self._give_up_all(flights, why, f"node {name} is shut out while running")
        if flights:
            self.poke()
        return len(flights)

    async def _give_up_all(self, flights: list[InFlight], error: str, said: str) -> None:
        for flight in flights:
            if flight.key in self.in_flight:  # not ended while an earlier one was withdrawn
                log.warning("%s %s", said, flight.key)
                await self._give_up(flight, error)

    async def _give_up(self, flight: InFlight, error: str) -> None:
        """Record an attempt as lost at the next tick (its segment is queued again, no
        failure counted) and withdraw its task, so a late end from it is ignored. One that
        ended meanwhile (a caller awaited between choosing it and here) is left as it ended."""
        if self.in_flight.pop(flight.key, None) is None:
            return
        self.killing.discard(flight.key)
        end = TaskEnd(flight.key, None, lost=True, error=error)
        self._lost.append((flight.job_id, self._result(flight, end)))
        self.metrics.ended(flight.service, self._lost[-1][1])
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
        reached = await self._ask_nodes_to_stop(flights, suspend=suspend)
        changes = self._record_stopped(reached, suspend=suspend)
        if changes and self.on_changes is not None:
            self.on_changes(changes)


def node_offer(node: EngineNode) -> NodeOffer:
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
