"""Helpers for tests that start real clusters: an embedded controller and condition waits."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import psutil

from qfarm.api.app import create_app
from qfarm.controller.service import Controller
from qfarm.engine.base import NodeSpec
from qfarm.store import Store


@contextlib.asynccontextmanager
async def embedded(
    data_dir: Path, nodes: int = 2, instances: int = 2, services: dict[str, int] | None = None
) -> AsyncIterator[Controller]:
    """A controller with its own scheduler and ``nodes`` worker processes, always closed.
    Each node offers ``services`` (by default ``instances`` of ``command``)."""
    store = Store(f"sqlite:///{data_dir / 'qfarm.db'}")
    offered = services or {"command": instances}
    specs = [NodeSpec(f"node-{i + 1}", dict(offered)) for i in range(nodes)]
    controller = await Controller.embedded(store, data_dir, specs)
    try:
        yield controller
    finally:
        await controller.close()
        store.close()


async def wait_until(
    condition: Callable[[], bool | Awaitable[bool]], timeout: float = 30.0, what: str = ""
) -> None:
    """Poll ``condition`` until it holds; fail the test at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        await asyncio.sleep(0.05)


def wait_until_sync(condition: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(0.05)


def gone(pid: int) -> bool:
    """A process that no longer runs (a zombie waiting for its reaper counts as gone)."""
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


@contextlib.asynccontextmanager
async def in_process_api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A controller on a SQLite store in ``tmp_path``, with no nodes, and an HTTP client of
    its API in this process (base URL ``http://t/api/v1``); both closed afterwards."""
    store = Store(f"sqlite:///{tmp_path / 'qfarm.db'}")
    controller = await Controller.start(store, tmp_path)
    try:
        transport = httpx.ASGITransport(app=create_app(controller))
        async with httpx.AsyncClient(transport=transport, base_url="http://t/api/v1") as client:
            yield client
    finally:
        await controller.close()
        store.close()


def process_group(leader: int) -> list[psutil.Process]:
    """A segment's process and every process under it ([] once it is gone)."""
    try:
        proc = psutil.Process(leader)
        return [proc, *proc.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def group_stopped(leader: int) -> bool:
    """Every live process of the leader's group is stopped (state T, SIGSTOP), or waits on
    one that is: a shell that forks with vfork sleeps uninterruptibly (state D) until its
    child runs its program, and a child stopped before that holds its parent there, which
    cannot run either until the group is continued."""
    try:
        states = [p.status() for p in process_group(leader)]
    except psutil.NoSuchProcess:
        return False
    live = [s for s in states if s != psutil.STATUS_ZOMBIE]
    if psutil.STATUS_STOPPED not in live:
        return False
    return all(s in (psutil.STATUS_STOPPED, psutil.STATUS_DISK_SLEEP) for s in live)
