"""Settling: ending the jobs whose segments all ended, releasing or canceling their
dependants, and ending the batches whose jobs all ended, as
:mod:`qfarm.domain.lifecycle` decides. Run at the end of every transaction that ends
segments, inside it, so a job never stays running with all of its segments ended.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Connection, bindparam, select

from qfarm.domain.lifecycle import JobFacts, batch_end_path, job_end, settle_dependants
from qfarm.domain.model import (
    ACTIVE_SEGMENT_STATES,
    FINAL_JOB_STATES,
    BatchState,
    JobState,
    SegmentState,
)
from qfarm.store.moves import move, move_path
from qfarm.store.records import Change
from qfarm.store.tables import batches, jobs, segments

_ACTIVE_OR_QUEUED = [SegmentState.QUEUED.value, *(s.value for s in ACTIVE_SEGMENT_STATES)]

# Built once: asked for every job a tick touches. Answered from the (job_id, state, idx)
# index, which is what keeps a busy farm's ticks cheap.
_UNFINISHED_SEGMENT = (
    select(segments.c.id)
    .where(segments.c.job_id == bindparam("job_id"))
    .where(segments.c.state.in_(_ACTIVE_OR_QUEUED))
    .limit(1)
)

_JOB_STATE = select(jobs.c.id, jobs.c.state, jobs.c.batch_id)


def settle_jobs(conn: Connection, job_ids: set[int], changes: list[Change]) -> None:
    """End the jobs whose segments all ended, release or cancel their dependants, and end
    the batches whose jobs all ended.
    """
    if not job_ids:
        return
    now = time.time()
    batch_ids: set[int] = set()
    for job in conn.execute(_JOB_STATE.where(jobs.c.id.in_(job_ids))).all():
        if conn.execute(_UNFINISHED_SEGMENT, {"job_id": job.id}).first() is not None:
            continue  # the common case on a busy farm: answered from the index
        states = [
            SegmentState(state)
            for state in conn.execute(
                select(segments.c.state).where(segments.c.job_id == job.id).distinct()
            ).scalars()
        ]
        path = job_end(JobState(job.state), states)
        if not path:
            continue
        values: dict[SegmentState | JobState | BatchState, dict[str, Any]] = {
            JobState.RUNNING: {"started_at": now},
            path[-1]: {"finished_at": now},
        }
        move_path(conn, job, path, changes, values)
        # Only a job that ended can release dependants or end its batch.
        batch_ids.add(job.batch_id)
    for batch_id in sorted(batch_ids):
        _settle_batch(conn, batch_id, now, changes)


def _settle_batch(conn: Connection, batch_id: int, now: float, changes: list[Change]) -> None:
    """Release or cancel the waiting jobs of a batch, then end it if every job ended."""
    rows = conn.execute(select(jobs).where(jobs.c.batch_id == batch_id).order_by(jobs.c.id)).all()
    by_id = {row.id: row for row in rows}
    facts = [
        JobFacts(row.id, row.name, JobState(row.state), tuple(row.depends_on or ())) for row in rows
    ]
    moves, state_of = settle_dependants(facts)
    for decided in moves:
        job = by_id[decided.job_id]
        if decided.state is JobState.CANCELED:
            for seg in conn.execute(select(segments).where(segments.c.job_id == job.id)).all():
                move(conn, seg, SegmentState.CANCELED, changes, error=decided.reason)
            move(conn, job, JobState.CANCELED, changes, error=decided.reason, finished_at=now)
        else:
            move(conn, job, decided.state, changes)
    if any(state not in FINAL_JOB_STATES for state in state_of.values()):
        return  # the common case: no need to read the batch
    batch = conn.execute(select(batches).where(batches.c.id == batch_id)).one()
    path = batch_end_path(BatchState(batch.state), list(state_of.values()))
    if path:
        values: dict[SegmentState | JobState | BatchState, dict[str, Any]] = {
            BatchState.RUNNING: {"started_at": now},
            path[-1]: {"finished_at": now},
        }
        move_path(conn, batch, path, changes, values)
