"""State changes as server-sent events: what the page and ``qfarm watch`` listen to."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import asdict

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from qfarm.api.common import API, errors
from qfarm.api.routes_logs import EVENTS
from qfarm.controller.service import Controller
from qfarm.waits import get_within

KEEP_ALIVE_SECONDS = 15


def router(controller: Controller) -> APIRouter:
    api = APIRouter(tags=["events"])

    @api.get(f"{API}/events", response_class=StreamingResponse,
             responses={**EVENTS, **errors()})  # fmt: skip
    async def events(request: Request) -> StreamingResponse:
        """State changes as server-sent events: one ``change`` event per changed object."""
        queue = controller.subscribe()

        async def stream() -> AsyncIterator[str]:
            try:
                yield ": connected\n\n"
                # A listener dropped for falling behind is disconnected, so that it
                # reconnects and reloads rather than going silently stale.
                while controller.listening(queue) and not await request.is_disconnected():
                    try:
                        changes = await get_within(queue, KEEP_ALIVE_SECONDS)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    for change in changes:
                        yield f"event: change\ndata: {json.dumps(asdict(change))}\n\n"
            finally:
                controller.unsubscribe(queue)

        return StreamingResponse(stream(), media_type="text/event-stream")

    return api
