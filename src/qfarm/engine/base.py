"""What the controller and the engine say to each other: the :class:`Engine` protocol, nodes
as the engine sees them, and the ends and events of the tasks it runs. No Dask here, so the
dispatcher and its tests can use these (and a fake engine) without starting a cluster.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from qfarm.domain.messages import AttemptResult, SegmentTask


@dataclass(frozen=True)
class NodeSpec:
    """A local service node to start: its name, service instances and counted resources
    (``{"gpu": 2}``): both become the Dask worker's resources."""

    name: str
    services: dict[str, int]
    resources: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class EngineNode:
    """A node as the engine sees it: a live worker."""

    name: str
    address: str
    services: dict[str, int]
    host: str = ""
    facts: dict[str, Any] = field(default_factory=dict)
    resources: dict[str, int] = field(default_factory=dict)  # counted ({"gpu": 2})
    load: dict[str, float] = field(default_factory=dict)  # host CPU % and memory used, live
    silent_for: float = 0.0  # seconds since its last heartbeat reached the scheduler


@dataclass(frozen=True)
class TaskEnd:
    """A task ended: its result from the node, or the reason it has none."""

    key: str
    result: AttemptResult | None
    lost: bool = False  # the engine lost it (its worker died); no verdict on the segment
    error: str = ""


@dataclass(frozen=True)
class TaskEvent:
    """A report from a running segment: ``started`` (with pid) or ``progress``."""

    key: str
    kind: str
    at: float
    pid: int | None = None
    fraction: float = 0.0


# How long a node may go without a heartbeat before its segments are given to others. The
# dispatcher acts on it itself: Dask, whose workers have nannies, first spends half a minute
# trying to restart a silent worker through its nanny (just as silent, if its host is cut off).
NODE_TIMEOUT_SECONDS = 15
# The shortest a controller may be given (qfarm controller --node-timeout): Dask's workers
# send a heartbeat every 0.5-2 s on farms of up to 200 nodes, and a scheduler that gives up
# on a busy node between two of them would requeue work that is running well.
MIN_NODE_TIMEOUT_SECONDS = 5


class Engine(Protocol):
    """What the dispatcher and the controller ask of an engine: which nodes are live, run a
    task pinned to one of them, hand back the ends and reports of the tasks it ran, kill or
    withdraw one, close. :class:`qfarm.engine.dask.DaskEngine` is the real one; the
    controller's unit tests drive a fake (tests/controller/fake_engine.py) through the same
    members, so placement, retries and node loss are tested without a cluster.
    """

    # Start and progress reports of running tasks, taken by the dispatcher once per tick.
    events: asyncio.Queue[TaskEvent]
    # Set whenever something arrived (a report, an end) or the dispatcher was poked.
    wakeup: asyncio.Event

    @property
    def scheduler_address(self) -> str:
        """Where nodes join (what the controller tells a joining node)."""
        ...

    @property
    def dashboard_url(self) -> str | None:
        """Where the engine's own dashboard is served, if it serves one."""
        ...

    async def nodes(self) -> list[EngineNode]:
        """The live nodes, with their facts, load and time since their last heartbeat."""
        ...

    def submit(self, tasks: Sequence[tuple[SegmentTask, str, str]]) -> None:
        """Run each ``(task, address, service)`` on the node at ``address``, using one
        instance of ``service`` and the counted resources ``task.resources``; never retried
        and never moved by the engine."""
        ...

    async def collect(self) -> list[TaskEnd]:
        """The ends of the tasks that ended since the last call (lost ones included)."""
        ...

    async def kill(self, key: str, address: str) -> bool:
        """End a running task's processes on its node; its end still comes via collect."""
        ...

    async def kill_many(self, targets: Mapping[str, str]) -> set[str]:
        """:meth:`kill` of many tasks (task -> its node's address) with one call per node:
        a cancel of a batch with hundreds running. Returns the tasks whose node killed
        them."""
        ...

    async def suspend(self, key: str, address: str) -> bool:
        """Stop a running task's processes where they are (SIGSTOP); True when the node
        stopped a running process. The task stays out, holding its instance."""
        ...

    async def resume(self, key: str, address: str) -> bool:
        """Continue a suspended task's processes (SIGCONT); True when the node had it
        suspended."""
        ...

    async def withdraw(self, key: str) -> None:
        """Take back a task that will not report (its node is gone); it ends as lost."""
        ...

    def refuse(self, crl_file: str) -> None:
        """Refuse the certificates this CRL (a PEM file) revokes in every handshake from now
        on."""
        ...

    async def drop_node(self, name: str) -> int:
        """Close node ``name``'s connections now (its tasks are lost); how many."""
        ...

    async def close(self) -> None: ...


class NodeRunner(Protocol):
    """What runs segments on a node, given to the engine by whoever starts the node
    (``qfarm node``: qfarm.node.serve; an embedded cluster: qfarm.controller.local). The
    engine's worker plugin carries it, pickled, into the worker process, so the node's
    configuration travels as data, and the engine needs nothing of the node package.
    """

    def run(
        self,
        task: SegmentTask,
        on_start: Callable[[int], None],
        on_progress: Callable[[float], None],
    ) -> AttemptResult:
        """Run one attempt to its end; never raises."""
        ...

    def kill(self, key: str) -> bool:
        """End the processes of one attempt on this node."""
        ...

    def kill_many(self, keys: list[str]) -> list[bool]:
        """:meth:`kill` of many at once (one grace period for all); whether each ran."""
        ...

    def suspend(self, key: str) -> bool:
        """Stop the processes of one attempt where they are; whether one was running."""
        ...

    def resume(self, key: str) -> bool:
        """Continue the processes of one suspended attempt; whether it was suspended."""
        ...

    def kill_all(self) -> int:
        """End every segment process of this node (its worker is closing)."""
        ...

    def availability(self) -> float:
        """Whether the node takes work now: 1 yes, 0 outside its hours, -1 its user is at
        it (qfarm.node.availability); sent with every heartbeat."""
        ...

    def facts(self, services: dict[str, int]) -> dict[str, Any]:
        """What the node tells the controller of itself (version, fingerprint, cores)."""
        ...

    def host_load(self) -> dict[str, float]:
        """The node's host CPU percent and memory in use, for each heartbeat."""
        ...
