"""The ``openjd`` job type: one Open Job Description step, its tasks run by openjd-sessions.

:func:`jobs_from_plan` turns a plan from :func:`qfarm.openjd.load_plan` into one job per step
(step dependencies are job dependencies); each task, or TASK_CHUNKING chunk, of the step is
one segment, labelled with its parameter values (``Frame=1-5``). On a node the segments of a
job run in openjd-sessions sessions kept between them, entering the environments once per
session (:mod:`qfarm.jobtypes.openjd.session`, :mod:`qfarm.jobtypes.openjd.pool`). The
spec's fields are listed in :mod:`qfarm.jobtypes.openjd.spec`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from qfarm.domain.errors import InvalidRequest
from qfarm.domain.model import QueuedSegment, SegmentPlan
from qfarm.jobtypes.base import SegmentContext, SegmentOutcome
from qfarm.jobtypes.openjd.spec import (
    JOB_TYPE,
    batch_from_plan,
    check,
    jobs_from_plan,
    label,
    path_mapping_rules,
    step_spec,
)

# The node fingerprint entry a node has when openjd-sessions imports there (see fingerprint).
TOOL = "openjd-sessions"

__all__ = [
    "OPENJD",
    "TOOL",
    "OpenJDJobType",
    "batch_from_plan",
    "fingerprint",
    "jobs_from_plan",
    "path_mapping_rules",
    "step_spec",
]


def fingerprint() -> dict[str, str]:
    """``{"openjd-sessions": VERSION}`` when openjd-sessions imports on this node, else
    ``{}``: what a node adds to its tool versions so that it is offered ``openjd`` jobs."""
    try:
        from openjd.sessions import version
    except ImportError:
        return {}
    return {TOOL: str(version)}


class OpenJDJobType:
    name = JOB_TYPE
    service = JOB_TYPE
    keeps_sessions = True  # its segments say how many of the job are still queued
    maps_paths = True  # the node's --path-map becomes its sessions' path mapping rules
    stall_timeout: float | None = None  # openjd-sessions runs its actions: no stall watch

    def required_tools(self, spec: Mapping[str, Any]) -> tuple[str, ...]:
        # Every segment of a step runs with one openjd-sessions version (placement pins it).
        return (TOOL,)

    def validate(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        return check(spec)

    def plan(self, spec: Mapping[str, Any]) -> list[SegmentPlan]:
        plans: list[SegmentPlan] = []
        for number, seg in enumerate(spec["segments"], start=1):
            parameters = list(seg["parameters"])
            plans.append(
                SegmentPlan(
                    index=number,
                    spec={"segment": number, "task": seg["index"], "parameters": parameters},
                    label=label(parameters),
                    frames=max(1, int(seg["task_count"])),
                )
            )
        return plans

    def resizes(self, spec: Mapping[str, Any]) -> bool:
        return bool(spec.get("chunking"))

    def resize(
        self,
        spec: Mapping[str, Any],
        seconds_per_task: float,
        queued: Sequence[QueuedSegment],
        next_index: int,
    ) -> list[SegmentPlan] | None:
        from qfarm.jobtypes.openjd.chunks import recut

        chunking = spec.get("chunking")
        return recut(chunking, seconds_per_task, queued, next_index) if chunking else None

    def describe(self, spec: Mapping[str, Any]) -> list[str]:
        segments = spec["segments"]
        tasks = sum(int(s["task_count"]) for s in segments)
        lines = [
            f"OpenJD step {spec['step']!r} of {spec['job_name']!r}: "
            f"{tasks} task{'s' * (tasks != 1)} in {len(segments)} "
            f"segment{'s' * (len(segments) != 1)}"
        ]
        if spec["environments"]:
            names = ", ".join(e["name"] or e["origin"] for e in spec["environments"])
            lines.append(f"environments: {names}")
        if spec.get("source"):
            lines.append(f"template: {spec['source']}")
        return lines

    def run(
        self, job: Mapping[str, Any], segment: Mapping[str, Any], ctx: SegmentContext
    ) -> SegmentOutcome:
        from qfarm.jobtypes.openjd.session import run_segment

        try:
            return run_segment(job, segment, ctx)
        except InvalidRequest as exc:  # a spec this node's openjd-model does not read
            ctx.log(str(exc))
            return SegmentOutcome(ok=False, error=str(exc))


OPENJD = OpenJDJobType()
