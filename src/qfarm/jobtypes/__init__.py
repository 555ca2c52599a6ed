"""Job types by name, and the planning every batch goes through before it is queued."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from qfarm.domain.errors import InvalidRequest
from qfarm.domain.model import SegmentPlan
from qfarm.jobtypes.base import CLUSTER_OPTIONS, JobType, SegmentContext, SegmentOutcome
from qfarm.jobtypes.command import COMMAND
from qfarm.jobtypes.composite import COMPOSITE
from qfarm.jobtypes.movie import MOVIE
from qfarm.jobtypes.openjd import OPENJD
from qfarm.jobtypes.render import RENDER
from qfarm.jobtypes.transcode import TRANSCODE

JOB_TYPES: dict[str, JobType] = {
    job_type.name: job_type for job_type in (COMMAND, TRANSCODE, RENDER, MOVIE, COMPOSITE, OPENJD)
}

__all__ = [
    "JOB_TYPES",
    "JobType",
    "SegmentContext",
    "SegmentOutcome",
    "get",
    "job_summary",
    "plan_job",
    "stall_timeout",
]


def get(name: str) -> JobType:
    try:
        return JOB_TYPES[name]
    except KeyError:
        known = ", ".join(sorted(JOB_TYPES))
        raise InvalidRequest(f"unknown job type {name!r}: known are {known}") from None


def plan_job(
    name: str,
    spec: Mapping[str, Any],
    claimed: dict[str, str] | None = None,
    instances: Mapping[str, int] | None = None,
) -> tuple[dict[str, Any], list[SegmentPlan]]:
    """Validate and plan one job. ``claimed`` maps output paths to who writes them, across a
    batch, so two segments that would write the same file are refused before anything runs.
    ``instances`` (service -> instances on the farm) lets a job type that sizes its
    segments to the farm (``wants_farm_size``) do so when the job does not say.
    """
    job_type = get(name)
    if getattr(job_type, "wants_farm_size", False) and not spec.get("instances"):
        spec = {**spec, "instances": (instances or {}).get(job_type.service, 1)}
    normalised = job_type.validate(spec)
    # Options of the farm's own (cluster storage), the same for every job type: carried
    # here, where nodes find them in the job's spec, rather than by each job type.
    for option in sorted(CLUSTER_OPTIONS):
        normalised[option] = spec.get(option)
    _check_stall_timeout(normalised["stall_timeout"])
    plans = job_type.plan(normalised)
    if not plans:
        raise InvalidRequest(f"{name} job plans no segments")
    claimed = {} if claimed is None else claimed
    for plan in plans:
        # Nodes read a segment's outputs from its spec (cluster storage sends them back).
        plan.spec.setdefault("outputs", list(plan.outputs))
        for path in plan.outputs:
            owner = f"segment {plan.index} ({plan.label})"
            if path in claimed:
                raise InvalidRequest(
                    f"{claimed[path]} and {owner} would both write {path}: give each segment "
                    "its own output, e.g. with {segment}, {start} or {stem} in the pattern"
                )
            claimed[path] = owner
    return normalised, plans


def _check_stall_timeout(value: object) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise InvalidRequest(
            f"stall_timeout must be a number of seconds, 0 for none (not {value!r})"
        )


def stall_timeout(job_type: str, spec: Mapping[str, Any]) -> float | None:
    """Seconds a segment of the job may show no progress before it is ended as stalled:
    the job's own ``stall_timeout`` (0: never), else its job type's; None: never."""
    value = spec.get("stall_timeout")
    if value is None:
        value = get(job_type).stall_timeout
    return float(value) if value else None


def job_summary(job_type: str, spec: dict[str, Any]) -> list[str]:
    """A job's summary lines (``qfarm show``, the run summary, the API's batch): what its
    job type's optional ``describe(spec)`` says, else nothing. A spec that it cannot read
    (stored by another version, say) gives a note, never a failed listing."""
    describe = getattr(JOB_TYPES.get(job_type), "describe", None)
    if describe is None:
        return []
    try:
        return [str(line) for line in describe(spec)]
    except (KeyError, TypeError, ValueError) as exc:
        return [f"(no summary: {type(exc).__name__}: {exc})"]
