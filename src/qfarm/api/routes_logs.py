"""An attempt's log: whole, or followed as server-sent events while it grows."""

from __future__ import annotations

import asyncio
import codecs
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, PlainTextResponse, StreamingResponse

from qfarm.api.common import API, ObjectId, errors
from qfarm.config import logs_dir
from qfarm.controller.service import Controller
from qfarm.domain.errors import NotFound
from qfarm.domain.model import Attempt

LOG_CHUNK = 64 * 1024
LOG_POLL_SECONDS = 0.5
ATTEMPT = f"{API}/batches/{{batch_id}}/segments/{{segment_id}}/attempts/{{number}}"

# What the schema says these routes answer: text, not the JSON FastAPI assumes.
TEXT: dict[int | str, dict[str, Any]] = {
    200: {"description": "the log", "content": {"text/plain": {"schema": {"type": "string"}}}}
}
EVENTS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "server-sent events",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    }
}


def router(controller: Controller) -> APIRouter:
    api = APIRouter(tags=["logs"])
    store = controller.store
    # The folder the dispatcher writes logs to (qfarm.config names it for both).
    logs_root = logs_dir(controller.data_dir).resolve()

    def attempt_of(batch_id: int, segment_id: int, number: int) -> Attempt:
        store.batch(batch_id)
        if not any(s.id == segment_id for s in store.segments(batch_id)):
            raise NotFound(f"batch {batch_id} has no segment {segment_id}")
        for attempt in store.attempts(segment_id):
            if attempt.number == number:
                return attempt
        raise NotFound(f"segment {segment_id} has no attempt {number}")

    def readable_log(attempt: Attempt) -> Path | None:
        """The attempt's log file, if it is one the controller can read where it put it:
        inside its logs folder, never elsewhere."""
        if not attempt.log_path:
            return None
        path = Path(attempt.log_path)
        if not path.resolve().is_relative_to(logs_root) or not path.is_file():
            return None
        return path

    @api.get(f"{ATTEMPT}/log", response_class=PlainTextResponse,
             responses={**TEXT, **errors(404)})  # fmt: skip
    async def attempt_log(batch_id: ObjectId, segment_id: ObjectId, number: ObjectId) -> Any:
        """The attempt's log: the whole file where the controller can read it (nodes on
        shared storage), else the tail the store keeps."""
        attempt = attempt_of(batch_id, segment_id, number)
        path = readable_log(attempt)
        if path is not None:
            return FileResponse(path, media_type="text/plain; charset=utf-8")
        return PlainTextResponse(attempt.log_tail)

    @api.get(f"{ATTEMPT}/follow", response_class=StreamingResponse,
             responses={**EVENTS, **errors(404)})  # fmt: skip
    async def follow_log(
        request: Request, batch_id: ObjectId, segment_id: ObjectId, number: ObjectId
    ) -> StreamingResponse:
        """The attempt's log as server-sent ``log`` events, as it grows, until the attempt
        ends (then an ``end`` event)."""
        attempt_of(batch_id, segment_id, number)

        async def stream() -> AsyncIterator[str]:
            offset = 0
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            while not await request.is_disconnected():
                attempt = attempt_of(batch_id, segment_id, number)
                path = readable_log(attempt)
                text = ""
                if path is not None:
                    with open(path, "rb") as fh:
                        fh.seek(offset)
                        data = fh.read(LOG_CHUNK)
                    offset += len(data)
                    text = decoder.decode(data)
                elif attempt.ended_at is not None and offset == 0:
                    text, offset = attempt.log_tail, 1
                if text:
                    yield f"event: log\ndata: {json.dumps(text)}\n\n"
                    continue
                if attempt.ended_at is not None:
                    yield f"event: end\ndata: {json.dumps(attempt.outcome or '')}\n\n"
                    return
                await asyncio.sleep(LOG_POLL_SECONDS)

        return StreamingResponse(stream(), media_type="text/event-stream")

    return api
