"""The audit log (``qfarm audit``): who did what, newest first."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query

from qfarm.api.common import API, errors
from qfarm.controller.service import Controller
from qfarm.store.audit import MOST_ENTRIES
from qfarm.wire.schemas import AuditOut


def router(controller: Controller) -> APIRouter:
    api = APIRouter(prefix=f"{API}/audit", tags=["audit"])

    @api.get("", responses=errors())
    async def entries(
        since: Annotated[float | None, Query(ge=0, description="epoch seconds")] = None,
        actor: Annotated[str | None, Query(max_length=200)] = None,
        action: Annotated[
            str | None, Query(max_length=64, description="batch.cancel, or a family: batch")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=MOST_ENTRIES)] = 1000,
    ) -> list[AuditOut]:
        """Actions taken on the cluster, newest first: submits, cancels, priorities, node
        disables and revocations, token changes, joins (refused ones too, with their 4xx
        outcome)."""
        found = controller.store.audit_entries(since=since, actor=actor, action=action, limit=limit)
        return [AuditOut(**asdict(entry)) for entry in found]

    return api
