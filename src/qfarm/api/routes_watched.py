"""Watch folders' files: a watcher on any machine claims a file here before it submits the
file's batch, records what became of it, and reads back what it took when it restarts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from qfarm.api.common import API, ObjectId, errors
from qfarm.controller.service import Controller
from qfarm.domain.watched import FileVersion, WatchedFile, WatchedState
from qfarm.wire.schemas import WatchedIn, WatchedOut, WatchedUpdateIn


def watched_out(record: WatchedFile) -> WatchedOut:
    return WatchedOut(
        id=record.id,
        watch=record.watch,
        path=record.path,
        size=record.version.size,
        mtime=record.version.mtime,
        state=record.state.value,
        taken_at=record.taken_at,
        batch_id=record.batch_id,
        error=record.error,
    )


def router(controller: Controller) -> APIRouter:
    api = APIRouter(prefix=f"{API}/watched", tags=["watch folders"])
    store = controller.store

    @api.post("", status_code=201, responses=errors(409))
    async def claim(body: WatchedIn) -> WatchedOut:
        """Claim a file version for a watch (409 if it was claimed before)."""
        version = FileVersion(body.path, body.size, body.mtime)
        return watched_out(store.claim_watched(body.watch, version))

    @api.post("/{file_id}", responses=errors(404, 409))
    async def record(file_id: ObjectId, body: WatchedUpdateIn) -> WatchedOut:
        """Record what became of a claimed file: its batch, its outcome, its error."""
        changed = store.record_watched(file_id, WatchedState(body.state), body.batch_id, body.error)
        return watched_out(changed)

    @api.get("", responses=errors())
    async def files(
        watch: Annotated[
            str, Query(min_length=1, max_length=200, pattern=r"^[^\x00]*$", description="its name")
        ],
    ) -> list[WatchedOut]:
        """The files a watch took, oldest first."""
        return [watched_out(f) for f in store.watched_files(watch)]

    return api
