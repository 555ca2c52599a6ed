"""Open Job Description: a job template, its parameter values and environment templates, as
JSON, submitted as a batch of one job per step (``POST /api/v1/openjd``), and a template's
outline, its steps and parameter definitions (``POST /api/v1/openjd/outline``), which the
Batch Monitor's form shows as fields, so that no page parses a template itself.

Each template is a JSON object, or the text of its ``.yaml``/``.json`` file (a page sends the
file it was given as it is). It is validated by the loader of ``qfarm run TEMPLATE``
(openjd-model): an invalid template or parameter value is a 400 naming the field, and
nothing is queued.
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
from qfarm.wire.openjd import OpenJDOutlineOut, OpenJDParameterOut
from qfarm.wire.schemas import BatchOut, Priority, Request

# A template as a JSON object, or the text of its YAML or JSON file.
Document = dict[str, Any] | str


class OpenJDOutlineIn(Request):
    template: Document = Field(
        description="an OpenJD job template (jobtemplate-2023-09): an object or its file's text"
    )
    environments: list[Document] = Field(
        default=[], description="environment templates (environment-2023-09), entered in order"
    )


class OpenJDIn(Request):
    template: Document = Field(
        description="an OpenJD job template (jobtemplate-2023-09): an object or its file's text"
    )
    parameters: dict[str, Any] = Field(
        default={}, description='job parameter values by name, e.g. {"Frames": "1-240"}'
    )
    environments: list[Document] = Field(
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
    from qfarm.openjd.outline import document

    try:
        priority = parse_priority(body.priority)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    environments = [
        document(env, f"environments[{index}]") for index, env in enumerate(body.environments)
    ]
    template = document(body.template, "template")
    plan = load_plan_from_documents(template, body.parameters, environments)
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


def outline_answer(body: OpenJDOutlineIn) -> OpenJDOutlineOut:
    """The outline of a body's templates (InvalidRequest naming the field otherwise)."""
    from qfarm.openjd.outline import outline

    found = outline(body.template, body.environments)
    return OpenJDOutlineOut(
        name=found.name,
        steps=list(found.steps),
        parameters=[
            OpenJDParameterOut(
                **{**dataclasses.asdict(p), "allowed_values": list(p.allowed_values)},
                required=p.required,
            )
            for p in found.parameters
        ],
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

    @api.post("/outline", responses=errors())
    async def openjd_outline(body: OpenJDOutlineIn) -> OpenJDOutlineOut:
        """Read a job template's name, steps and parameter definitions (with those of its
        environment templates), to ask for the values before submitting it. Changes
        nothing. 400 for an invalid template or environment template, naming the field."""
        return await asyncio.to_thread(outline_answer, body)

    return api
