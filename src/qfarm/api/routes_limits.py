"""Farm-wide limits: named counts (render licenses) that jobs hold one of per running segment."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as FastApiPath

from qfarm.api.common import API, errors
from qfarm.controller.service import Controller
from qfarm.wire.schemas import LimitIn, LimitOut

# A limit's name, as qfarm.domain.requirements.check_resource_name takes it.
LimitName = Annotated[str, FastApiPath(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,63}$", max_length=64)]


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
    async def set_limit(name: LimitName, body: LimitIn) -> LimitOut:
        """Set a limit (made if new): jobs that name it never run more segments at once."""
        controller.set_limit(name, body.count)
        return next(limit for limit in answer() if limit.name == name)

    @api.delete("/{name}", responses=errors(404))
    async def remove_limit(name: LimitName) -> list[LimitOut]:
        """Remove a limit; jobs that name it wait until it is set again."""
        controller.remove_limit(name)
        return answer()

    return api
