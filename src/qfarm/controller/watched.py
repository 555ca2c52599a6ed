"""The submitter of watch folders that run inside the controller (``qfarm controller
--watch``): the controller's own store and submit path, in its own event loop, no HTTP.

It meets :class:`qfarm.watch.submitter.Submitter` structurally, so the controller imports
nothing of the watch package; a claim made before is None, as the protocol says, and a
record that its state no longer allows is the domain's AlreadyRecorded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket

from qfarm.controller.service import Controller
from qfarm.domain.errors import NotFound
from qfarm.domain.model import (
    FINAL_BATCH_STATES,
    BatchRequest,
    IllegalTransition,
    JobState,
    failure_summary,
)
from qfarm.domain.watched import (
    AlreadyRecorded,
    AlreadyTaken,
    BatchEnd,
    FileVersion,
    WatchedFile,
    WatchedState,
)


@dataclasses.dataclass
class InControllerSubmitter:
    controller: Controller
    # Who the batches are from, when their template names no one.
    owner: str = dataclasses.field(default_factory=lambda: f"watch@{socket.gethostname()}")

    async def claim(self, watch: str, version: FileVersion) -> WatchedFile | None:
        try:
            return self.controller.store.claim_watched(watch, version)
        except AlreadyTaken:
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
            return self.controller.store.record_watched(file_id, state, batch_id, error)
        except IllegalTransition as exc:
            raise AlreadyRecorded(str(exc)) from None

    async def taken(self, watch: str) -> list[WatchedFile]:
        return self.controller.store.watched_files(watch)

    async def submit(self, request: BatchRequest) -> int:
        if not request.owner:
            request = dataclasses.replace(request, owner=self.owner)
        # Planning reads media files (a transcode's source): off the event loop.
        planned = await asyncio.to_thread(self.controller.plan, request)
        return self.controller.submit(request, planned)

    async def batch_end(self, batch_id: int) -> BatchEnd | None:
        store = self.controller.store
        try:
            batch = store.batch(batch_id)
        except NotFound:
            return BatchEnd(batch_id, "removed", f"batch {batch_id} is no longer on the controller")
        if batch.state not in FINAL_BATCH_STATES:
            return None
        error = ""
        unfinished = [job for job in store.jobs(batch_id) if job.state is not JobState.DONE]
        # A job without an error of its own is told by its failed segments: read once.
        segments = store.segments(batch_id) if any(not j.error for j in unfinished) else []
        for job in unfinished:
            error = job.error or failure_summary([s for s in segments if s.job_id == job.id])
            if error:
                break
        if not error and batch.state.value != "done":
            error = batch.state.value
        return BatchEnd(batch_id, batch.state.value, error)
