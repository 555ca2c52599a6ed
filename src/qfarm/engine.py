"""The engine adapter: the only module that imports Dask distributed.

Dask gives qfarm membership, heartbeats, failure detection, comms and process management.
qfarm does not let it choose placement: the dispatcher names the node of every segment and
submits it only when that node has a free instance (see docs/architecture.md, decision 2), so
each task is pinned to one worker, restricted to its service's resource, and never retried by
Dask. A node is a Dask worker under a nanny whose ``resources`` are its service instances.

Segment processes report their start and progress as Dask events on one topic; results come
back as task results. Both arrive in asyncio queues that the dispatcher drains once per tick.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Workers are spawned processes that read Dask's logging level from the environment.
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")

import dask
from distributed import Client, Nanny, Scheduler, get_worker

from qfarm import node as node_side

EVENT_TOPIC = "qfarm-segment"
PROGRESS_INTERVAL = 0.5  # seconds between progress events from one segment

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeSpec:
    """A local service node to start: its name and service instances."""

    name: str
    services: dict[str, int]


@dataclass(frozen=True)
class EngineNode:
    """A node as the engine sees it: a live worker."""

    name: str
    address: str
    services: dict[str, int]
    host: str = ""
    facts: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskEnd:
    """A task ended: its result dict from the node, or the reason it has none."""

    key: str
    result: dict[str, Any] | None
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


def _run_on_node(payload: dict[str, Any]) -> dict[str, Any]:
    """The Dask task: runs on a worker thread of the chosen node."""
    worker = get_worker()
    key = payload["key"]
    last_progress = [0.0]

    def on_start(pid: int) -> None:
        worker.log_event(
            EVENT_TOPIC, {"key": key, "kind": "started", "pid": pid, "at": time.time()}
        )

    def on_progress(fraction: float) -> None:
        now = time.monotonic()
        if now - last_progress[0] < PROGRESS_INTERVAL and fraction < 1.0:
            return
        last_progress[0] = now
        worker.log_event(
            EVENT_TOPIC,
            {"key": key, "kind": "progress", "fraction": fraction, "at": time.time()},
        )

    return node_side.run_segment(payload, on_start, on_progress, node_name=str(worker.name))


def _kill_on_node(key: str) -> bool:
    return node_side.kill_segment(key)


def _running_on_node() -> dict[str, int]:
    return node_side.running_segments()


def _facts_of_node() -> dict[str, Any]:
    return node_side.node_facts()


class Engine:
    """A connection to a Dask scheduler, and the local cluster parts it started, if any."""

    def __init__(self, client: Any, owned: Sequence[Any] = ()) -> None:
        self.client: Any = client
        self._owned = list(owned)  # scheduler and nannies we started, closed with us
        self.ends: asyncio.Queue[TaskEnd] = asyncio.Queue()
        self.events: asyncio.Queue[TaskEvent] = asyncio.Queue()
        self.wakeup = asyncio.Event()
        self._futures: dict[str, Any] = {}
        self._watchers: set[asyncio.Task[None]] = set()
        self._facts: dict[str, dict[str, Any]] = {}
        client.subscribe_topic(EVENT_TOPIC, self._on_event)

    @classmethod
    async def start_local(
        cls, nodes: Sequence[NodeSpec], *, local_directory: Path | None = None
    ) -> Engine:
        """An embedded cluster: a scheduler and one nanny-managed worker process per node."""
        with dask.config.set({"distributed.scheduler.work-stealing": False}):
            scheduler = Scheduler(host="127.0.0.1", port=0, dashboard=False)
            await scheduler
        owned: list[Any] = [scheduler]
        try:
            nannies = [
                Nanny(
                    scheduler.address,
                    host="127.0.0.1",
                    name=spec.name,
                    nthreads=max(1, sum(spec.services.values())),
                    resources=dict(spec.services),
                    local_directory=str(local_directory) if local_directory else None,
                    dashboard=False,
                )
                for spec in nodes
            ]
            await asyncio.gather(*(nanny.start() for nanny in nannies))
            owned.extend(nannies)
            client = await Client(scheduler.address, asynchronous=True)
        except BaseException:
            for part in reversed(owned):
                with contextlib.suppress(Exception):
                    await part.close()
            raise
        return cls(client, owned)

    @classmethod
    async def connect(cls, address: str) -> Engine:
        """An engine on an existing Dask scheduler, started elsewhere."""
        client = await Client(address, asynchronous=True)
        return cls(client)

    @property
    def scheduler_address(self) -> str:
        return str(self.client.scheduler.address)

    async def close(self) -> None:
        for task in list(self._watchers):
            task.cancel()
        with contextlib.suppress(Exception):
            await self.client.close()
        for part in reversed(self._owned):
            with contextlib.suppress(Exception):
                await part.close()

    async def nodes(self) -> list[EngineNode]:
        """The live workers and the service instances each offers."""
        identity = await self.client.scheduler.identity()
        found: list[EngineNode] = []
        for address, info in identity.get("workers", {}).items():
            if address not in self._facts:
                with contextlib.suppress(Exception):
                    facts = await self.client.run(_facts_of_node, workers=[address])
                    self._facts[address] = facts.get(address, {})
            found.append(
                EngineNode(
                    name=str(info.get("name", address)),
                    address=address,
                    services={k: int(v) for k, v in (info.get("resources") or {}).items()},
                    host=str(info.get("host", "")),
                    facts=self._facts.get(address, {}),
                )
            )
        return found

    def submit(self, payload: dict[str, Any], address: str, service: str) -> None:
        """Run one segment attempt on the worker at ``address``, using one ``service`` instance.

        Its end arrives in :attr:`ends`.
        """
        key = payload["key"]
        future = self.client.submit(
            _run_on_node,
            payload,
            key=key,
            workers=[address],
            allow_other_workers=False,
            resources={service: 1},
            pure=False,
            retries=0,
        )
        self._futures[key] = future
        watcher = asyncio.create_task(self._watch(key, future))
        self._watchers.add(watcher)
        watcher.add_done_callback(self._watchers.discard)

    async def _watch(self, key: str, future: Any) -> None:
        try:
            result = await future
            end = TaskEnd(key, result)
        except asyncio.CancelledError:
            if self._futures.get(key) is future:
                raise  # the engine is closing, not the task
            end = TaskEnd(key, None, lost=True, error="withdrawn")
        except Exception as exc:  # KilledWorker, a comm failure: the node went away
            end = TaskEnd(key, None, lost=True, error=f"{type(exc).__name__}: {exc}")
        self._futures.pop(key, None)
        self.ends.put_nowait(end)
        self.wakeup.set()

    def _on_event(self, event: tuple[float, dict[str, Any]]) -> None:
        _, msg = event
        self.events.put_nowait(
            TaskEvent(
                key=msg["key"],
                kind=msg["kind"],
                at=float(msg.get("at", time.time())),
                pid=msg.get("pid"),
                fraction=float(msg.get("fraction", 0.0)),
            )
        )
        self.wakeup.set()

    async def kill(self, key: str, address: str) -> bool:
        """End a running segment's process group on its node. Its task then returns
        normally with ``killed`` set, which is how the dispatcher learns it ended.
        """
        try:
            answers = await self.client.run(_kill_on_node, key, workers=[address])
        except Exception as exc:
            log.warning("could not reach %s to kill %s: %s", address, key, exc)
            return False
        return bool(answers.get(address))

    async def withdraw(self, key: str) -> None:
        """Cancel a task that has not reported back (its node is gone, or it never started)."""
        future = self._futures.pop(key, None)
        if future is not None:
            # Its watcher sees the cancellation and reports the task as lost.
            with contextlib.suppress(Exception):
                await future.cancel()

    async def running_on(self, address: str) -> dict[str, int]:
        answers = await self.client.run(_running_on_node, workers=[address])
        return dict(answers.get(address, {}))

    def in_flight(self) -> set[str]:
        return set(self._futures)
