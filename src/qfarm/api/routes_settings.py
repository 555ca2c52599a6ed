"""Farm-wide settings the API changes while the controller runs: how long ended batches
are kept (retention)."""

from __future__ import annotations

from fastapi import APIRouter

from qfarm.api.common import API, errors
from qfarm.controller.retention import kept_for
from qfarm.controller.service import Controller
from qfarm.wire.schemas import RetentionIn, RetentionOut


def router(controller: Controller) -> APIRouter:
    api = APIRouter(prefix=f"{API}/settings", tags=["settings"])

    @api.get("/retention", responses=errors())
    async def retention() -> RetentionOut:
        """How long ended batches are kept before they are removed (null: for ever)."""
        return RetentionOut(keep=kept_for(controller.store))

    @api.put("/retention", responses=errors())
    async def set_retention(body: RetentionIn) -> RetentionOut:
        """Keep ended batches, with their logs and stored outputs, this many seconds (null:
        for ever); batches already older go at once."""
        controller.set_retention(body.keep)
        return RetentionOut(keep=kept_for(controller.store))

    return api
