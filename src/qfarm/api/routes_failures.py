"""Failures at a glance: the failed and lost attempts of every batch over a window,
grouped by error, node or job (:mod:`qfarm.domain.failures`), for the Batch Monitor's
Failures view and ``qfarm failures``. Reading only: its actions (retry, disable a node)
are the existing resubmit and node routes."""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query

from qfarm.api.common import API, errors
from qfarm.controller.service import Controller
from qfarm.domain.failures import FailedAttempt, FailureGroup, Grouping, group_failures
from qfarm.wire.schemas import FailedAttemptOut, FailureGroupOut, FailuresOut, JobRefOut

DAY = 24 * 3600.0
# Attempts read at most: a farm that failed more than this in the window shows the newest.
MOST_ATTEMPTS = 10_000


def router(controller: Controller) -> APIRouter:
    api = APIRouter(prefix=f"{API}/failures", tags=["failures"])

    @api.get("", responses=errors())
    async def failures(
        since: Annotated[
            float | None,
            Query(ge=0, allow_inf_nan=False, description="epoch seconds; default: a day ago"),
        ] = None,
        by: Annotated[Grouping, Query(description="error, node or job")] = "error",
        limit: Annotated[
            int, Query(ge=1, le=MOST_ATTEMPTS, description="attempts read, newest first")
        ] = 1000,
    ) -> FailuresOut:
        """The attempts that failed (an exit code, a timeout, a stall) or were lost since
        ``since``, grouped ``by`` error (the exit code and the log's last non-empty line),
        node or job: the largest group first, each with its attempts newest first."""
        start = time.time() - DAY if since is None else since
        found = controller.store.failed_attempts(start, limit + 1)
        kept = found[:limit]
        return FailuresOut(
            by=by,
            since=start,
            total=len(kept),
            truncated=len(found) > limit,
            groups=[group_out(g) for g in group_failures(kept, by)],
        )

    return api


def attempt_out(attempt: FailedAttempt) -> FailedAttemptOut:
    fields = asdict(attempt)
    for unsent in ("batch_state", "log_tail"):
        fields.pop(unsent)
    fields["outcome"] = attempt.outcome.value
    return FailedAttemptOut(**fields, last_line=attempt.last_line)


def group_out(group: FailureGroup) -> FailureGroupOut:
    return FailureGroupOut(
        key=group.key,
        title=group.title,
        exit_code=group.exit_code,
        line=group.line,
        node=group.node,
        count=group.count,
        nodes=list(group.nodes),
        jobs=[JobRefOut(**asdict(job)) for job in group.jobs],
        batches=list(group.batches),
        segments=list(group.segments),
        latest=group.latest,
        retryable=list(group.retryable),
        attempts=[attempt_out(a) for a in group.attempts],
    )
