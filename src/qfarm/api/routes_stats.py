"""The farm over time, for the Batch Monitor's charts and ``qfarm stats``: segments done
and instances busy per service, and each node's load, in buckets over a window (GET
/stats); and the durations of a batch's segments (GET /batches/{id}/durations). Reading
only: the series are worked out from the attempts (:mod:`qfarm.domain.stats`) at each
request, so there is no sampler to run and nothing to lose on a restart."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query

from qfarm.api.common import API, ObjectId, errors
from qfarm.controller.service import Controller
from qfarm.domain.errors import InvalidRequest, NotFound
from qfarm.domain.model import NodeState
from qfarm.domain.stats import (
    MAX_WINDOW,
    MIN_STEP,
    FarmStats,
    farm_stats,
    node_durations,
    segment_durations,
    window_ending,
    window_problem,
)
from qfarm.wire.stats import (
    DurationsOut,
    NodeDurationsOut,
    NodeSeriesOut,
    SegmentDurationOut,
    ServiceSeriesOut,
    StatsOut,
)


def router(controller: Controller) -> APIRouter:
    api = APIRouter(prefix=API, tags=["stats"])
    store = controller.store

    @api.get("/stats", responses=errors())
    async def stats(
        window: Annotated[
            float,
            Query(gt=0, le=MAX_WINDOW, allow_inf_nan=False, description="seconds back from now"),
        ] = 3600,
        step: Annotated[
            float,
            Query(ge=MIN_STEP, allow_inf_nan=False, description="seconds per bucket"),
        ] = 60,
    ) -> StatsOut:
        """Per service, segments done and average instances busy in each bucket of
        ``step`` seconds over the last ``window`` seconds (buckets on multiples of the
        step, the last one filling now); per node, instances busy and load (busy over its
        instances). A 400 for a window that would make too many buckets."""
        if (problem := window_problem(window, step)) is not None:
            raise InvalidRequest(problem)
        span = window_ending(time.time(), window, step)
        known = store.nodes()

        def compute() -> FarmStats:
            return farm_stats(
                store.attempt_spans(span.start, span.end),
                span,
                {n.name: n.services for n in known},
                online=[n.name for n in known if n.state is NodeState.ONLINE],
            )

        # A day of a busy farm is many thousand attempts: read and summed off the event
        # loop, which the dispatcher shares.
        found = await asyncio.to_thread(compute)
        states = {n.name: n.state.value for n in known}
        return StatsOut(
            start=span.start,
            end=span.end,
            step=span.step,
            as_of=span.as_of,
            times=span.bucket_starts(),
            instances=dict(found.instances),
            services=[
                ServiceSeriesOut(
                    service=s.service,
                    instances=s.instances,
                    done=list(s.done),
                    busy=[round(b, 4) for b in s.busy],
                    total_done=s.total_done,
                    mean_busy=round(s.mean_busy(span), 4),
                    peak_busy=s.peak,
                )
                for s in found.services
            ],
            nodes=[
                NodeSeriesOut(
                    node=n.node,
                    state=states.get(n.node),
                    instances=n.instances,
                    busy=[round(b, 4) for b in n.busy],
                    load=None if n.load is None else [round(v, 4) for v in n.load],
                )
                for n in found.nodes
            ],
        )

    @api.get("/batches/{batch_id}/durations", responses=errors(404))
    async def durations(
        batch_id: ObjectId,
        job: Annotated[int | None, Query(ge=1, le=2**53, description="one job's id")] = None,
    ) -> DurationsOut:
        """How long each tried segment of the batch (of one job of it) took: its last
        attempt, its node, its number and outcome, heavy ones marked against their job's
        median; and per node, the segments and their mean."""
        store.batch(batch_id)  # a 404 for a batch that is not there
        if job is not None and job not in {j.id for j in store.jobs(batch_id)}:
            raise NotFound(f"batch {batch_id} has no job {job}")
        now = time.time()
        shown = segment_durations(store.attempt_times(batch_id, job), now)
        return DurationsOut(
            batch_id=batch_id,
            job_id=job,
            as_of=now,
            segments=[SegmentDurationOut(**asdict(d)) for d in shown],
            nodes=[NodeDurationsOut(**asdict(n)) for n in node_durations(shown)],
        )

    return api
