"""The submitter of ``qfarm watch``: the controller's HTTP API through
:class:`qfarm.client.Client`, on any machine that sees the folder.

The client is synchronous (httpx); each call runs in a thread so that the watcher's loop
(and watchdog's wake-ups) go on while a request waits.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from qfarm.client import Client, ControllerUnreachable
from qfarm.domain.errors import NotFound
from qfarm.domain.model import BatchRequest
from qfarm.domain.watched import (
    AlreadyRecorded,
    BatchEnd,
    FileVersion,
    WatchedFile,
    WatchedState,
)
from qfarm.watch.submitter import SubmitterUnavailable
from qfarm.wire.errors import Conflict

T = TypeVar("T")
P = ParamSpec("P")


class HttpSubmitter:
    def __init__(self, client: Client) -> None:
        self.client = client

    async def claim(self, watch: str, version: FileVersion) -> WatchedFile | None:
        try:
            return await _off_loop(self.client.claim_watched, watch, version)
        except Conflict:
            return None

    async def record(
        self,
        file_id: int,
        state: WatchedState,
        *,
        batch_id: int | None = None,
        error: str = "",
    ) -> WatchedFile:
        try:
            return await _off_loop(self.client.record_watched, file_id, state, batch_id, error)
        except Conflict as exc:
            raise AlreadyRecorded(str(exc)) from None

    async def taken(self, watch: str) -> list[WatchedFile]:
        return await _off_loop(self.client.watched, watch)

    async def submit(self, request: BatchRequest) -> int:
        handle = await _off_loop(self.client.submit, request)
        return handle.id

    async def batch_end(self, batch_id: int) -> BatchEnd | None:
        try:
            status = await _off_loop(self.client.batch, batch_id)
        except NotFound:
            return BatchEnd(batch_id, "removed", f"batch {batch_id} is no longer on the controller")
        if not status.finished:
            return None
        errors = [str(job.get("error") or "") for job in status.raw.get("jobs", [])]
        first = next((e for e in errors if e), "" if status.state == "done" else status.state)
        return BatchEnd(batch_id, status.state, first)


async def _off_loop(call: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """``call`` in a thread; a controller out of reach is SubmitterUnavailable, which the
    watcher rides out."""
    try:
        return await asyncio.to_thread(call, *args, **kwargs)
    except ControllerUnreachable as exc:
        raise SubmitterUnavailable(str(exc)) from None
