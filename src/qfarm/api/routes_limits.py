"""Farm-wide limits: named counts (render licenses) that jobs hold one of per running segment."""

from __future__ import annotations

from fastapi import APIRouter

from qfarm.api.common import API, errors
from qfarm.controller.service import Controller
from qfarm.wire.schemas import LimitIn, LimitOut


def router(controller: Controller) -> APIRouter:
    api = APIRouter(prefix=f"{API}/limits", tags=["limits"])

    def answer() -> list[LimitOut]:
        left = controller.dispatcher.limit_left()
        return [
            LimitOut(name=name, count=count, in_use=count - left.get(name, count))
            for name, count in controller.limits().items()
        ]

    @api.get("", responses=errors())
    async def limits() -> list[LimitOut]:
        """Every limit, with how many segments hold it now."""
        return answer()

    @api.put("/{name}", responses=errors())
    async def set_limit(name: str, body: LimitIn) -> LimitOut:
        """Set a limit (made if new): jobs that name it never run more segments at once."""
        controller.set_limit(name, body.count)
        return next(limit for limit in answer() if limit.name == name)

    @api.delete("/{name}", responses=errors(404))
    async def remove_limit(name: str) -> list[LimitOut]:
        """Remove a limit; jobs that name it wait until it is set again."""
        controller.remove_limit(name)
        return answer()

    return api
