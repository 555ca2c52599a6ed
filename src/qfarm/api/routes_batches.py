"""Batches: submit, list and show them, steer them (the verbs of qfarm.domain.actions),
and read their segments and attempts."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from qfarm.api.audit import ANONYMOUS
from qfarm.api.common import API, Limit, ObjectId, Offset, batch_out, errors, paging
from qfarm.api.routes_notify import delivery_out, notification_out, notifications_of
from qfarm.controller.service import Controller
from qfarm.domain.errors import InvalidRequest
from qfarm.domain.model import (
    BatchRequest,
    Job,
    JobRequest,
    JobState,
    Segment,
    failure_summary,
    parse_priority,
)
from qfarm.domain.requirements import (
    NO_REQUIREMENTS,
    Requirements,
    job_requirements,
)
from qfarm.jobtypes import job_summary
from qfarm.security.tokens import SHARED_ACTOR
from qfarm.wire.requests import ChosenSegmentsIn
from qfarm.wire.schemas import (
    AttemptOut,
    BatchDetailOut,
    BatchIn,
    BatchOut,
    JobOut,
    PriorityIn,
    RemovedManyOut,
    RemovedOut,
    RequirementsIn,
    SegmentOut,
)

# A job's spec never changes once stored, nor so its summary; clients poll a batch often,
# and a job of thousands of frames is not described anew each time. Bounded over a
# long-lived controller.
SUMMARIES_KEPT = 10_000

CLOCK_HEADER = "X-Qfarm-Time"
SINCE = (
    "Epoch seconds on the controller's clock: only the attempts dispatched or whose end "
    "was recorded since then, and those still going (a monitor's catch-up read; take the "
    "X-Qfarm-Time of the last answer, less a few seconds for reports written meanwhile)."
)


def batch_request(body: BatchIn) -> BatchRequest:
    """The domain's request for a batch body (InvalidRequest for a bad priority)."""
    try:
        priority = parse_priority(body.priority)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    return BatchRequest(
        jobs=tuple(
            JobRequest(
                job_type=job.type,
                spec=job.spec,
                name=job.name,
                retries=job.retries,
                timeout=job.timeout,
                depends_on=tuple(job.depends_on),
                requirements=requirements_of(job.requirements),
            )
            for job in body.jobs
        ),
        name=body.name,
        owner=body.owner,
        priority=priority,
        hold=body.hold,
        start_at=body.start_at,
        serialize=body.serialize,
        notify=notifications_of(body.notify),
    )


def requirements_of(body: RequirementsIn | None) -> Requirements:
    """The domain's requirements for a job body's (InvalidRequest naming a bad value)."""
    if body is None:
        return NO_REQUIREMENTS
    req = job_requirements(body.tags, body.gpus, body.resources, body.limits)
    if not body.host_amounts and not body.host_attributes:
        return req
    # The body's host constraints have the stored form's shape (Requirements.to_dict).
    stored = body.model_dump(include={"host_amounts", "host_attributes"})
    return dataclasses.replace(req, host=Requirements.from_dict(stored).host)


def segment_out(segment: Segment) -> SegmentOut:
    return SegmentOut(
        id=segment.id,
        job_id=segment.job_id,
        index=segment.index,
        label=segment.label,
        kind=segment.kind.value,
        state=segment.state.value,
        node=segment.node,
        attempts=segment.attempts,
        failures=segment.failures,
        progress=segment.progress,
        error=segment.error,
    )


def submitter(http: Request) -> str:
    """Who submitted, for a batch that names no owner: the token's name, as the audit log
    names the actor, else the address the request came from."""
    actor = getattr(http.state, "actor", None)
    if actor and actor not in (ANONYMOUS, SHARED_ACTOR):  # those name no one
        return str(actor)
    return f"web@{http.client.host if http.client else 'unknown'}"


def router(controller: Controller) -> APIRouter:
    """The batch routes of ``controller``."""
    api = APIRouter(prefix=f"{API}/batches", tags=["batches"])
    store = controller.store

    @api.post("", status_code=201, responses=errors())
    async def submit(body: BatchIn, http: Request) -> BatchOut:
        """Submit a batch; it is planned (400 for what cannot run) and queued, or held. A
        batch that names no owner (the Batch Monitor's form) is owned by the client token's
        name, or on a cluster without tokens by ``web@`` the address it came from."""
        if not body.owner.strip():
            body = body.model_copy(update={"owner": submitter(http)})
        request = batch_request(body)
        # Planning reads media files (a transcode's source): off the event loop.
        planned = await asyncio.to_thread(controller.plan, request)
        batch_id = controller.submit(request, planned)
        http.state.audit_target = f"batch {batch_id}"
        return batch_out(controller, store.batch(batch_id))

    @api.get("", responses=errors())
    async def batches(
        response: Response, offset: Offset = 0, limit: Limit = None
    ) -> list[BatchOut]:
        """The batches, oldest first (paged with offset and limit)."""
        total = store.batch_total() if limit is not None or offset else None
        page = paging(response, offset, limit, total)
        return [batch_out(controller, b) for b in store.batches(page=page)]

    summaries: dict[int, list[str]] = {}

    def summary_of(job: Job) -> list[str]:
        if job.id not in summaries:
            if len(summaries) >= SUMMARIES_KEPT:
                summaries.clear()
            summaries[job.id] = job_summary(job.job_type, job.spec)
        return summaries[job.id]

    @api.get("/{batch_id}", responses=errors(404))
    async def batch(batch_id: ObjectId) -> BatchDetailOut:
        """A batch with its jobs: their progress, errors and why they wait."""
        head = batch_out(controller, store.batch(batch_id))
        progress = store.job_progress(batch_id)
        waiting = controller.waiting(batch_id)
        jobs = store.jobs(batch_id)
        # A failed job without an error of its own is told by its failed segments; only then
        # are they read (a batch of thousands of segments is polled by every client).
        by_job: dict[int, list[Segment]] = {}
        if any(job.state is JobState.FAILED and not job.error for job in jobs):
            for seg in store.segments(batch_id):
                by_job.setdefault(seg.job_id, []).append(seg)
        return BatchDetailOut(
            **head.model_dump(),
            jobs=[
                JobOut(
                    id=job.id,
                    name=job.name,
                    type=job.job_type,
                    state=job.state.value,
                    progress=round(progress.get(job.id, 0.0), 4),
                    error=job.error or failure_summary(by_job.get(job.id, ())),
                    depends_on=list(job.depends_on),
                    failed_nodes=list(job.failed_nodes),
                    requirements=job.requirements.to_dict(),
                    # Why its queued segments do not run, beyond waiting for an instance.
                    waiting=waiting.get(job.id),
                    # What the job does, as its job type tells it (describe), for people.
                    summary=summary_of(job),
                    eta=controller.estimates.job(job.id) if controller.estimates else None,
                )
                for job in jobs
            ],
            notify=[notification_out(n) for n in store.batch_notifications(batch_id)],
            deliveries=[delivery_out(d) for d in store.deliveries(batch_id)],
        )

    @api.delete("/{batch_id}", responses=errors(404))
    async def remove(batch_id: ObjectId) -> RemovedOut:
        """Remove an ended batch, with its logs, outputs in cluster storage and the uploads
        only it used (400 while it still runs: cancel it first)."""
        await controller.remove(batch_id)
        return RemovedOut(removed=batch_id)

    @api.delete("", responses=errors())
    async def remove_older(
        older_than: Annotated[float, Query(ge=0, description="seconds since the batches ended")],
        dry_run: bool = False,
    ) -> RemovedManyOut:
        """Remove every batch that ended more than ``older_than`` seconds ago, as DELETE of
        each would (never one still going); ``dry_run``: only say which."""
        cutoff = time.time() - older_than
        removed = await controller.remove_ended_before(cutoff, dry_run=dry_run)
        return RemovedManyOut(removed=removed, dry_run=dry_run)

    def steering(verb: str, act: Callable[[int], Awaitable[None] | None], doc: str) -> None:
        # One route per verb, not /{action}: a path that is no verb is then a 404, and a
        # method a path lacks a 405, as the schema says.
        async def steer(batch_id: ObjectId) -> BatchOut:
            done = act(batch_id)
            if done is not None:
                await done
            return batch_out(controller, store.batch(batch_id))

        steer.__doc__ = doc + " Returns the batch after."
        api.post(f"/{{batch_id}}/{verb}", name=verb, responses=errors(404, 409))(steer)

    steering("cancel", controller.cancel, "Cancel a batch: queued work now, running killed.")
    steering("pause", controller.pause, "Pause a batch: no new segments; running ones finish.")
    steering(
        "suspend",
        controller.suspend,
        "Pause a batch and stop its running processes where they are (SIGSTOP) until it is "
        "resumed; 400 for an ended batch or one running OpenJD jobs.",
    )
    steering(
        "resume",
        controller.resume,
        "Resume a paused batch (its suspended processes go on, SIGCONT), or release a held one.",
    )
    steering("resubmit", controller.resubmit, "Rerun a failed or canceled batch's unfinished.")

    @api.post("/{batch_id}/segments/resubmit", responses=errors(404, 409))
    async def resubmit_chosen(batch_id: ObjectId, body: ChosenSegmentsIn) -> BatchOut:
        """Rerun the chosen failed or canceled segments of a failed or canceled batch (and
        only their jobs); 400 naming any chosen segment that is neither. Returns the
        batch after."""
        controller.resubmit(batch_id, body.segments)
        return batch_out(controller, store.batch(batch_id))

    @api.post("/{batch_id}/segments/cancel", responses=errors(404, 409))
    async def cancel_chosen(batch_id: ObjectId, body: ChosenSegmentsIn) -> BatchOut:
        """Cancel the chosen segments of a batch still going: queued ones at once, running
        ones killed; the rest of the batch runs on, and the jobs of the canceled ones end
        canceled. 400 naming any chosen segment that has ended. Returns the batch after."""
        await controller.cancel_segments(batch_id, body.segments)
        return batch_out(controller, store.batch(batch_id))

    @api.put("/{batch_id}/priority", responses=errors(404))
    async def priority(batch_id: ObjectId, body: PriorityIn) -> BatchOut:
        try:
            level = parse_priority(body.priority)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        controller.set_priority(batch_id, level)
        return batch_out(controller, store.batch(batch_id))

    @api.get("/{batch_id}/segments", responses=errors(404))
    async def segments(
        batch_id: ObjectId, response: Response, offset: Offset = 0, limit: Limit = None
    ) -> list[SegmentOut]:
        """The batch's segments, by job and index (paged with offset and limit)."""
        store.batch(batch_id)
        total = store.segment_total(batch_id) if limit is not None or offset else None
        page = paging(response, offset, limit, total)
        return [segment_out(s) for s in store.segments(batch_id, page=page)]

    @api.get("/{batch_id}/segments/{segment_id}/attempts", responses=errors(404))
    async def attempts(batch_id: ObjectId, segment_id: ObjectId) -> list[AttemptOut]:
        store.batch(batch_id)
        return [AttemptOut(**asdict(a)) for a in store.attempts(segment_id)]

    @api.get("/{batch_id}/attempts", responses=errors(404))
    async def batch_attempts(
        batch_id: ObjectId,
        response: Response,
        since: Annotated[float | None, Query(ge=0, le=2**53, description=SINCE)] = None,
        offset: Offset = 0,
        limit: Limit = None,
    ) -> list[AttemptOut]:
        """The batch's attempts, in dispatch order (what a timeline draws); with ``since``,
        only those that moved since then or are still going. X-Qfarm-Time is the
        controller's clock when it read them: the next ``since``."""
        store.batch(batch_id)
        response.headers[CLOCK_HEADER] = f"{time.time():.3f}"
        paged = limit is not None or offset
        total = store.batch_attempt_total(batch_id, since) if paged else None
        page = paging(response, offset, limit, total)
        return [AttemptOut(**asdict(a)) for a in store.batch_attempts(batch_id, since, page)]

    return api
