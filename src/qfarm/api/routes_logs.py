"""An attempt's log: whole (to read, or to download as a file), in numbers (its lines and
the first that looks like an error), or followed as server-sent events while it grows."""

from __future__ import annotations

import asyncio
import codecs
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, PlainTextResponse, StreamingResponse

from qfarm.api.common import API, ObjectId, errors
from qfarm.config import logs_dir
from qfarm.controller.service import Controller
from qfarm.domain.errors import NotFound
from qfarm.domain.loglines import LogSummary, split_lines, summarize
from qfarm.domain.model import Attempt
from qfarm.wire.schemas import LogSummaryOut

LOG_CHUNK = 64 * 1024
LOG_POLL_SECONDS = 0.5
ATTEMPT = f"{API}/batches/{{batch_id}}/segments/{{segment_id}}/attempts/{{number}}"

# What the schema says these routes answer: text, not the JSON FastAPI assumes.
TEXT: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the log; with download=1, as an attachment named "
        "batch-B-segment-S-attempt-N.log (S: the segment's number in its batch)",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
}
Download = Annotated[
    bool, Query(description="answer the log as a file to save (Content-Disposition: attachment)")
]
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

    def segment_number(batch_id: int, segment_id: int) -> int:
        """The segment's number in its batch (its index, as the page and CLI show it)."""
        store.batch(batch_id)
        for segment in store.segments(batch_id):
            if segment.id == segment_id:
                return segment.index
        raise NotFound(f"batch {batch_id} has no segment {segment_id}")

    def attempt_of(batch_id: int, segment_id: int, number: int) -> Attempt:
        segment_number(batch_id, segment_id)
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
    async def attempt_log(
        batch_id: ObjectId, segment_id: ObjectId, number: ObjectId, download: Download = False
    ) -> Any:
        """The attempt's log: the whole file where the controller can read it (nodes on
        shared storage), else the tail the store keeps. ``download=1`` names it as a file
        to save, so a browser's link or ``qfarm logs -o`` keeps it under a name that says
        whose log it is."""
        attempt = attempt_of(batch_id, segment_id, number)
        headers = {}
        if download:
            index = segment_number(batch_id, segment_id)
            name = f"batch-{batch_id}-segment-{index}-attempt-{number}.log"
            headers["Content-Disposition"] = f'attachment; filename="{name}"'
        path = readable_log(attempt)
        if path is not None:
            return FileResponse(path, media_type="text/plain; charset=utf-8", headers=headers)
        return PlainTextResponse(attempt.log_tail, headers=headers)

    @api.get(f"{ATTEMPT}/log/summary", responses=errors(404))
    async def log_summary(
        batch_id: ObjectId, segment_id: ObjectId, number: ObjectId
    ) -> LogSummaryOut:
        """The attempt's log in numbers: its lines, and the first line that looks like an
        error (qfarm.domain.loglines decides), over the same text GET .../log answers."""
        attempt = attempt_of(batch_id, segment_id, number)
        path = readable_log(attempt)
        if path is not None:
            # A log can be large: read it beside the event loop, not in it.
            summary, size = await asyncio.to_thread(summarize_file, path)
            whole = True
        else:
            summary = summarize(split_lines(attempt.log_tail))
            size, whole = len(attempt.log_tail.encode()), False
        return LogSummaryOut(
            lines=summary.lines,
            bytes=size,
            first_error_line=summary.first_error_line,
            first_error=summary.first_error,
            whole=whole,
        )

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


def summarize_file(path: Path) -> tuple[LogSummary, int]:
    """The summary of the log file at ``path``, and its size in bytes as it was read (a
    followed log may still grow). Lines are split on ``\\n`` only, as the page splits them."""
    size = 0

    def lines() -> Iterator[str]:
        nonlocal size
        with open(path, "rb") as fh:
            for raw in fh:
                size += len(raw)
                yield raw.decode("utf-8", errors="replace")

    return summarize(lines()), size
