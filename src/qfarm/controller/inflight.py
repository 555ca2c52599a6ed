"""What the dispatcher's parts share: the attempts it has out, and its live state.

The dispatcher (qfarm.controller.dispatcher) is assembled from parts with one concern each,
as the store is: following the nodes (qfarm.controller.fleet), steering batches that have
work out (qfarm.controller.steer), and the ticks themselves. :class:`DispatcherState`
declares, once, the state they all read and write.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from qfarm.controller.placement import JobHistory
from qfarm.engine.base import Engine, EngineNode, TaskEnd
from qfarm.store import Change, Result, Store

if TYPE_CHECKING:
    from qfarm.controller.metrics import FarmMetrics


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
    job_type: str = ""
    dispatched_at: float = field(default_factory=time.time)


class DispatcherState:
    """The dispatcher's live state (set in Dispatcher.__init__, where each is explained)."""

    store: Store
    engine: Engine
    logs_dir: Path
    batch_ids: set[int] | None
    on_changes: Callable[[list[Change]], None] | None
    node_timeout: float
    nodes: dict[str, EngineNode]
    disabled: set[str]
    refused: dict[str, str]
    in_flight: dict[str, InFlight]
    losses: dict[str, deque[float]]
    crash_refused: set[str]
    pins: dict[int, dict[str, str]]
    histories: dict[int, JobHistory]
    fingerprints: dict[str, dict[str, str]]
    busy: dict[str, Counter[str]]
    availability: dict[str, float]
    off: set[str]
    limits: dict[str, int]
    killing: set[str]
    suspending: set[int]
    _started_while_suspending: list[InFlight]
    _lost: list[tuple[int, Result]]
    metrics: FarmMetrics
    _wakeup: asyncio.Event
    _last_refresh: float

    def poke(self) -> None:
        raise NotImplementedError

    def _result(self, flight: InFlight, end: TaskEnd) -> Result:
        """What the store records of an attempt's end: lost when the engine has no result
        (its worker died), canceled when it was killed because the dispatcher asked."""
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
            thumbnail=r.thumbnail,
        )

    async def _ask_nodes_to_stop(self, flights: list[InFlight], *, suspend: bool) -> list[InFlight]:
        """Ask each flight's node to stop (or continue) its processes; the flights whose node
        did. A process that had just ended, or a node that could not be reached, is left to
        report as it will (its end, or its loss). OpenJD flights are not ours to stop."""
        flights = [f for f in flights if f.suspendable]
        if not flights:
            return []
        act = self.engine.suspend if suspend else self.engine.resume
        answers = await asyncio.gather(*(act(f.key, f.address) for f in flights))
        return [f for f, ok in zip(flights, answers, strict=True) if ok]

    def _record_stopped(self, reached: list[InFlight], *, suspend: bool) -> list[Change]:
        """Record as suspended (or running again) what the nodes stopped (or continued);
        a flight given up meanwhile (its node lost) is left out."""
        done = [(f.segment_id, f.attempt) for f in reached if f.key in self.in_flight]
        return self.store.record_suspended(done, suspended=suspend)
