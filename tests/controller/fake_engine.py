"""A fake engine for the controller's unit tests: nodes that exist because a test says so,
tasks that start, progress and end when the test says so, nodes that vanish, go silent or
come back at a new address. It keeps the :class:`qfarm.engine.base.Engine` protocol, so the
dispatcher under test is the real one, on a real store: only Dask is left out, which makes
placement, retries, blocklists, pins, node loss and cancel tests take milliseconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from qfarm import __version__
from qfarm.controller.dispatcher import Dispatcher
from qfarm.domain.messages import AttemptResult, SegmentTask
from qfarm.engine.base import EngineNode, TaskEnd, TaskEvent
from qfarm.store import Store


@dataclass
class FakeTask:
    """A task handed to the fake engine: what the dispatcher sent, and where."""

    task: SegmentTask
    address: str
    service: str
    node: str


@dataclass
class FakeEngine:
    """Satisfies the Engine protocol; every change of state is a call from the test."""

    events: asyncio.Queue[TaskEvent] = field(default_factory=asyncio.Queue)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    scheduler_address: str = "fake://scheduler"
    dashboard_url: str | None = None
    live: dict[str, EngineNode] = field(default_factory=dict)
    running: dict[str, FakeTask] = field(default_factory=dict)  # key -> task still out
    submitted: list[FakeTask] = field(default_factory=list)  # every task, in order
    killed: list[str] = field(default_factory=list)
    suspended: set[str] = field(default_factory=set)  # keys whose processes are stopped
    withdrawn: list[str] = field(default_factory=list)
    closed: bool = False
    _ends: list[TaskEnd] = field(default_factory=list)
    _restarts: int = 0

    # ------------------------------------------------------------ the test's side

    def add_node(
        self,
        name: str,
        services: dict[str, int] | None = None,
        *,
        version: str | None = __version__,
        fingerprint: dict[str, str] | None = None,
        host: str | None = None,
        cores: int = 4,
        tags: tuple[str, ...] = (),
        resources: dict[str, int] | None = None,
        facts: dict[str, Any] | None = None,
    ) -> EngineNode:
        """A node joins (``version=None``: one whose facts could not be read), with tags,
        counted resources ({"gpu": 2}) and more facts (os_family...) if given."""
        extra = facts
        facts: dict[str, Any] = {}
        if version is not None:
            facts = {
                "host": host or name,
                "cores": cores,
                "memory": 1 << 30,
                "version": version,
                "fingerprint": {"qfarm": version, **(fingerprint or {})},
                "tags": list(tags),
                "resources": dict(resources or {}),
                **(extra or {}),
            }
        node = EngineNode(
            name, f"fake://{name}/{self._restarts}", dict(services or {"command": 1}),
            host=host or name, facts=facts, resources=dict(resources or {}),
        )  # fmt: skip
        self.live[name] = node
        return node

    def lose_node(self, name: str) -> None:
        """The node's worker dies: it leaves the node list; its tasks stay out until the
        dispatcher withdraws them, as with Dask."""
        del self.live[name]

    def restart_node(self, name: str) -> None:
        """The node's nanny restarts its worker: the same node at a new address."""
        self._restarts += 1
        node = self.live[name]
        self.live[name] = replace(node, address=f"fake://{name}/{self._restarts}")

    def silence(self, name: str, seconds: float) -> None:
        """No heartbeat from the node for ``seconds`` (frozen, or cut off)."""
        self.live[name] = replace(self.live[name], silent_for=seconds)

    def out(self, node: str | None = None) -> list[str]:
        """The keys of the tasks out now (on ``node``), in the order they were sent."""
        return [k for k, t in self.running.items() if node is None or t.node == node]

    def start(self, key: str, pid: int = 4242) -> None:
        self._event(TaskEvent(key, "started", time.time(), pid=pid))

    def progress(self, key: str, fraction: float) -> None:
        self._event(TaskEvent(key, "progress", time.time(), fraction=fraction))

    def finish(
        self,
        key: str,
        ok: bool = True,
        *,
        exit_code: int | None = None,
        error: str = "",
        killed: bool = False,
        log_tail: str = "",
        late: bool = False,
    ) -> None:
        """The task's segment ended on its node, with this result (``late``: a task the
        dispatcher withdrew already, whose end still comes, as a closing worker's does)."""
        if late:
            assert key in self.withdrawn, f"{key} was never withdrawn"
        else:
            self.running.pop(key)
        now = time.time()
        result = AttemptResult(
            key=key,
            ok=ok,
            exit_code=(0 if ok else 1) if exit_code is None else exit_code,
            error=error,
            killed=killed,
            pid=4242,
            started_at=now,
            ended_at=now,
            log_tail=log_tail,
        )
        self._ends.append(TaskEnd(key, result))
        self.wakeup.set()

    def finish_all(self, ok: bool = True, **result: Any) -> None:
        for key in self.out():
            self.finish(key, ok, **result)

    def _event(self, event: TaskEvent) -> None:
        self.events.put_nowait(event)
        self.wakeup.set()

    # ------------------------------------------------------ the dispatcher's side

    async def nodes(self) -> list[EngineNode]:
        return list(self.live.values())

    def submit(self, tasks: Sequence[tuple[SegmentTask, str, str]]) -> None:
        by_address = {n.address: n.name for n in self.live.values()}
        for task, address, service in tasks:
            sent = FakeTask(task, address, service, by_address[address])
            self.running[task.key] = sent
            self.submitted.append(sent)

    async def collect(self) -> list[TaskEnd]:
        ends, self._ends = self._ends, []
        return ends

    async def kill(self, key: str, address: str) -> bool:
        """As on a node: the segment's processes end, and its task returns ``killed``."""
        if key not in self.running or self.running[key].address != address:
            return False
        self.killed.append(key)
        self.finish(key, ok=False, exit_code=-15, error="killed", killed=True)
        return True

    async def kill_many(self, targets: Mapping[str, str]) -> set[str]:
        return {key for key, address in targets.items() if await self.kill(key, address)}

    async def suspend(self, key: str, address: str) -> bool:
        """As on a node: a running task's processes stop; the task stays out."""
        if key not in self.running or self.running[key].address != address:
            return False
        self.suspended.add(key)
        return True

    async def resume(self, key: str, address: str) -> bool:
        if key not in self.suspended or self.running[key].address != address:
            return False
        self.suspended.discard(key)
        return True

    async def withdraw(self, key: str) -> None:
        if self.running.pop(key, None) is not None:
            self.withdrawn.append(key)
            self._ends.append(TaskEnd(key, None, lost=True, error="withdrawn"))
            self.wakeup.set()

    async def close(self) -> None:
        self.closed = True


class Farm:
    """A real dispatcher on a real SQLite store in ``folder``, over a fake engine."""

    def __init__(self, folder: Path, batch_ids: set[int] | None = None) -> None:
        self.store = Store(f"sqlite:///{folder / 'qfarm.db'}")
        self.engine = FakeEngine()
        self.dispatcher = Dispatcher(
            self.store, self.engine, logs_dir=folder / "logs", batch_ids=batch_ids
        )

    async def tick(self) -> None:
        """One dispatcher tick that sees the engine's nodes as they are now."""
        await self.dispatcher.refresh_nodes()
        await self.dispatcher.tick()

    def close(self) -> None:
        self.store.close()
