"""What the routers share: the path prefix, the id type, the batch answer and the error
answers each operation documents."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import Path as FastApiPath
from fastapi import Query, Response

from qfarm.controller.service import Controller
from qfarm.domain.actions import batch_actions
from qfarm.domain.model import Batch
from qfarm.store import Page
from qfarm.wire.errors import ERRORS, UNAUTHORIZED
from qfarm.wire.schemas import BatchOut, ErrorOut, SegmentCountsOut

API = "/api/v1"
# Ids in paths: positive and small enough for every database (a larger number is a 400, not
# an overflow deep in the driver).
ObjectId = Annotated[int, FastApiPath(ge=1, le=2**53)]

# Paged listings: ?offset=N&limit=M, and the count of every page in X-Total-Count, so that a
# monitor of a batch of 10,000 segments can read it in parts, and a script knows when it
# has read them all. Without a limit a listing is whole, as before paging came.
Offset = Annotated[int, Query(ge=0, le=2**53, description="Rows to skip.")]
Limit = Annotated[
    int | None, Query(ge=1, le=100_000, description="At most this many rows (all if unset).")
]
TOTAL_HEADER = "X-Total-Count"


def paging(response: Response, offset: int, limit: int | None, total: int | None) -> Page:
    """The page asked for; ``total`` (rows in every page), when known, goes in the answer's
    X-Total-Count header."""
    if total is not None:
        response.headers[TOTAL_HEADER] = str(total)
    return Page(offset, limit)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error answers of an operation for its OpenAPI schema: ``statuses`` (from the
    error table), and the 400 of a malformed request and the 401 of a missing token, which
    every operation under /api/v1 may answer."""
    described = {row.status: row.description for row in (*ERRORS, UNAUTHORIZED)}
    wanted = sorted({400, 401, *statuses})
    return {code: {"model": ErrorOut, "description": described[code]} for code in wanted}


def batch_out(controller: Controller, batch: Batch) -> BatchOut:
    """A batch as the API answers it, with its segment counts and allowed actions."""
    return BatchOut(
        id=batch.id,
        name=batch.name,
        owner=batch.owner,
        priority=batch.priority,
        state=batch.state.value,
        submitted_at=batch.submitted_at,
        start_at=batch.start_at,
        started_at=batch.started_at,
        finished_at=batch.finished_at,
        segments=SegmentCountsOut(**asdict(controller.store.counts(batch.id))),
        # What the batch allows now (qfarm.domain.actions): the page shows only these.
        actions=batch_actions(batch),
        eta=controller.estimates.batch(batch.id) if controller.estimates else None,
    )
