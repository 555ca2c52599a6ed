"""What the dispatcher's parts share: the attempts it has out, and its live state.

The dispatcher (qfarm.controller.dispatcher) is assembled from parts with one concern each,
as the store is: following the nodes (qfarm.controller.fleet), steering batches that have
work out (qfarm.controller.steer), and the ticks themselves. :class:`DispatcherState`
declares, once, the state they all read and write.
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from qfarm.controller.placement import JobHistory
from qfarm.engine.base import Engine, EngineNode, TaskEnd
from qfarm.store import Change, Result, Store


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


class DispatcherState:
    """The dispatcher's live state (set in Dispatcher.__init__, where each is explained)."""

    store: Store
    engine: Engine
    logs_dir: Path
    batch_ids: set[int] | None
    on_changes: Callable[[list[Change]], None] | None
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
    _wakeup: asyncio.Event
    _last_refresh: float

    def poke(self) -> None:
        raise NotImplementedError

    def _result(self, flight: InFlight, end: TaskEnd) -> Result:
        raise NotImplementedError
