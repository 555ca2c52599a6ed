"""Open Job Description: a job template, its parameter values and environment templates, as
JSON, submitted as a batch of one job per step (``POST /api/v1/openjd``).

The template is validated by the loader of ``qfarm run TEMPLATE`` (openjd-model): an invalid
template or parameter value is a 400 naming the field, and nothing is queued.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from fastapi import APIRouter
from fastapi import Request as HttpRequest
from pydantic import Field

from qfarm.api.common import API, batch_out, errors
from qfarm.controller.service import Controller
from qfarm.domain.errors import InvalidRequest
from qfarm.domain.model import BatchRequest, parse_priority
from qfarm.wire.schemas import BatchOut, Priority, Request


class OpenJDIn(Request):
    template: dict[str, Any] = Field(
        description="an OpenJD job template (specificationVersion: jobtemplate-2023-09)"
    )
    parameters: dict[str, Any] = Field(
        default={}, description='job parameter values by name, e.g. {"Frames": "1-240"}'
    )
    environments: list[dict[str, Any]] = Field(
        default=[], description="environment templates (environment-2023-09), entered in order"
    )
    step: str | None = Field(default=None, description="run only this step, without its deps")
    path_mapping: dict[str, str] = Field(
        default={}, description="path mapping rules for the tasks: source prefix -> node prefix"
    )
    name: str = Field(default="", description="the batch's name [default: the job's name]")
    owner: str = ""
    priority: Priority = "medium"
    hold: bool = False
    start_at: float | None = Field(default=None, description="epoch seconds")
    retries: int = Field(default=2, ge=0, description="retries of each failed task")
    timeout: float | None = Field(default=None, gt=0, description="seconds per task attempt")


def openjd_request(body: OpenJDIn) -> BatchRequest:
    """The batch of a body: its template loaded and validated (InvalidRequest otherwise)."""
    from qfarm.jobtypes.openjd import jobs_from_plan
    from qfarm.openjd import load_plan_from_documents

    try:
        priority = parse_priority(body.priority)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    plan = load_plan_from_documents(body.template, body.parameters, body.environments)
    jobs = jobs_from_plan(
        plan, path_mapping=body.path_mapping, retries=body.retries, timeout=body.timeout
    )
    if body.step is not None:
        chosen = [job for job in jobs if job.name == body.step]
        if not chosen:
            names = ", ".join(job.name for job in jobs)
            raise InvalidRequest(f"step: the template has no step {body.step!r} ({names})")
        jobs = [dataclasses.replace(chosen[0], depends_on=())]
    return BatchRequest(
        jobs=tuple(jobs),
        name=body.name or plan.name,
        owner=body.owner,
        priority=priority,
        hold=body.hold,
        start_at=body.start_at,
    )


def router(controller: Controller) -> APIRouter:
    """The OpenJD route of ``controller``."""
    api = APIRouter(prefix=f"{API}/openjd", tags=["openjd"])
    store = controller.store

    @api.post("", status_code=201, responses=errors())
    async def submit_openjd(body: OpenJDIn, http: HttpRequest) -> BatchOut:
        """Submit an OpenJD job template as a batch: one job per step, dependencies by step
        name, one segment per task (or TASK_CHUNKING chunk). 400 for an invalid template,
        environment template or parameter value, naming the field; nothing is queued then."""
        # openjd-model's validation and the planning are CPU work: off the event loop.
        request = await asyncio.to_thread(openjd_request, body)
        planned = await asyncio.to_thread(controller.plan, request)
        batch_id = controller.submit(request, planned)
        http.state.audit_target = f"batch {batch_id}"
        return batch_out(controller, store.batch(batch_id))

    return api
