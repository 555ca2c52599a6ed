"""Planning a batch before anything is stored: every job validated and cut into segments, so
a bad batch is refused whole; and the digest that recognises the same request again (how a
re-run `qfarm run` resumes).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

from qfarm import jobtypes
from qfarm.domain.errors import InvalidRequest
from qfarm.domain.model import (
    BatchRequest,
)
from qfarm.store import PlannedJob


def plan_batch(
    request: BatchRequest, instances: Mapping[str, int] | None = None
) -> list[PlannedJob]:
    """Validate and plan every job of a batch; raise :class:`InvalidRequest` on the first
    problem, naming the job when the batch has several. ``instances`` (service -> instances
    on the farm) sizes the segments of job types that fit them to the farm.
    """
    if not request.jobs:
        raise InvalidRequest("a batch needs at least one job")
    names: dict[str, int] = {}
    for index, job in enumerate(request.jobs):
        name = job.name or f"job {index + 1}"
        if name in names:
            raise InvalidRequest(f"two jobs are named {name!r}: job names must be unique")
        names[name] = index
    claimed: dict[str, str] = {}
    planned: list[PlannedJob] = []
    for index, job in enumerate(request.jobs):
        name = job.name or f"job {index + 1}"
        prefix = f"{name}: " if len(request.jobs) > 1 else ""
        if job.retries < 0:
            raise InvalidRequest(f"{prefix}retries cannot be negative")
        if job.timeout is not None and job.timeout <= 0:
            raise InvalidRequest(f"{prefix}timeout must be a positive number of seconds")
        depends: list[int] = []
        for dep in job.depends_on:
            if dep not in names:
                raise InvalidRequest(f"{prefix}depends on {dep!r}, which is not in the batch")
            if names[dep] >= index:
                raise InvalidRequest(f"{prefix}can only depend on jobs written before it")
            depends.append(names[dep])
        if request.serialize and index > 0 and index - 1 not in depends:
            depends.append(index - 1)
        try:
            spec, plans = jobtypes.plan_job(job.job_type, job.spec, claimed, instances)
        except InvalidRequest as exc:
            raise InvalidRequest(f"{prefix}{exc}") from None
        planned.append(
            PlannedJob(
                name=name,
                job_type=job.job_type,
                service=jobtypes.get(job.job_type).service,
                spec=spec,
                retries=job.retries,
                timeout=job.timeout,
                depends_on=tuple(depends),
                plans=plans,
                requirements=job.requirements,
            )
        )
    return planned


def request_digest(request: BatchRequest, planned: Sequence[PlannedJob]) -> str:
    """What a batch asks for, as a SHA-256 of its planned form: the same command run again
    in the same place (same options, same files planned into the same segments) has the
    same digest, and anything that would change a segment's work changes it."""
    shape = {
        "name": request.name,
        "owner": request.owner,
        "priority": request.priority,
        "serialize": request.serialize,
        "jobs": [
            {
                "name": job.name,
                "job_type": job.job_type,
                "service": job.service,
                "spec": job.spec,
                "retries": job.retries,
                "timeout": job.timeout,
                "depends_on": list(job.depends_on),
                **(
                    {"requirements": job.requirements.to_dict()}
                    if not job.requirements.empty
                    else {}
                ),
                "plans": [
                    [plan.index, plan.kind.value, plan.label, plan.spec, plan.frames]
                    for plan in job.plans
                ],
            }
            for job in planned
        ],
    }
    text = json.dumps(shape, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def services_of(request: BatchRequest) -> set[str] | None:
    """The services a batch's jobs run on; None when a job type is unknown (planning then
    says so)."""
    try:
        return {jobtypes.get(job.job_type).service for job in request.jobs}
    except InvalidRequest:
        return None
