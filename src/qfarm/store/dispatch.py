"""Dispatching: picking queued segments for free instances, in the dispatch order the domain
sets (:func:`qfarm.domain.steering.dispatch_order`), and recording their dispatch.

The order is walked through indexes rather than sorted in Python: batches by priority, then
their jobs, then each job's queued segments through the (job_id, state, idx) index, so a tick
costs a few indexed lookups however long the queue is.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence

from sqlalchemy import Connection, bindparam, func, select

from qfarm.domain.model import BatchState, JobState, SegmentKind, SegmentState
from qfarm.domain.requirements import Requirements
from qfarm.domain.steering import (
    DISPATCHING_BATCH_STATES,
    DISPATCHING_JOB_STATES,
    batch_on_dispatch,
    job_on_dispatch,
    segment_dispatches,
)
from qfarm.store.base import StoreBase
from qfarm.store.bulk import insert_many
from qfarm.store.moves import Moved, Pending, move
from qfarm.store.records import Candidate, Change, Dispatch
from qfarm.store.rows import Row, segment_rows
from qfarm.store.tables import attempts, batches, jobs, segments


class Dispatching(StoreBase):
    def dispatch(
        self,
        free: dict[str, int],
        now: float,
        batch_ids: Iterable[int] | None,
        choose: Callable[[Candidate], str | None],
        log_path: Callable[[Candidate], str] = lambda cand: "",
        most: int | None = None,
    ) -> tuple[list[tuple[Candidate, str]], list[Change]]:
        """Pick queued segments for free instances and record their dispatch, in one
        transaction.

        ``free`` is how many instances of each service are free in all; ``choose`` names the
        node for a candidate, or None to leave it queued this time. Order: batch priority
        (high first), then submission order, then job and segment order. Held, paused and
        not-yet-started (start_at) batches and waiting jobs give none. An assemble segment is
        given only once every work segment of its job is done. ``most``: stop after that
        many (a bounded round; the rest waits for the next).
        """
        wanted = {service: n for service, n in free.items() if n > 0}
        if not wanted or (most is not None and most <= 0):
            return [], []
        picked: list[tuple[Candidate, str]] = []
        with self._tx() as conn:
            for cand in candidates(conn, wanted, now, batch_ids):
                node = choose(cand)
                if node is None:
                    continue
                wanted[cand.service] -= 1
                picked.append((cand, node))
                if most is not None and len(picked) >= most:
                    break
            changes = record_dispatches(
                conn, [Dispatch(c.segment_id, n, now, log_path(c)) for c, n in picked]
            )
        return picked, changes

    def waiting_owners(self, now: float) -> dict[int, set[str]]:
        """By batch priority, the owners whose batches that give out work now have queued
        segments: who shares the farm at each priority (fair share)."""
        query = (
            select(batches.c.priority, batches.c.owner)
            .distinct()
            .join(segments, segments.c.batch_id == batches.c.id)
            .where(batches.c.state.in_([s.value for s in DISPATCHING_BATCH_STATES]))
            .where((batches.c.start_at.is_(None)) | (batches.c.start_at <= now))
            .where(segments.c.state == SegmentState.QUEUED.value)
        )
        found: dict[int, set[str]] = {}
        with self.engine.connect() as conn:
            for priority, owner in conn.execute(query):
                found.setdefault(int(priority), set()).add(str(owner))
        return found

    def mark_dispatched(self, dispatches: Sequence[Dispatch]) -> list[Change]:
        """Segments handed to nodes: queued -> dispatched, a new attempt each."""
        with self._tx() as conn:
            return record_dispatches(conn, dispatches)


# Built once with bound parameters: the dispatcher runs them many times a second, and
# building a statement costs SQLAlchemy more than SQLite takes to run it.

# Batches that give out work now, in dispatch order (steering.batch_dispatches, batch_order).
_READY_BATCHES = (
    select(batches.c.id, batches.c.owner, batches.c.priority)
    .where(batches.c.state.in_([s.value for s in DISPATCHING_BATCH_STATES]))
    .where((batches.c.start_at.is_(None)) | (batches.c.start_at <= bindparam("now")))
    .order_by(batches.c.priority.desc(), batches.c.id)
)
_READY_BATCHES_OF = _READY_BATCHES.where(batches.c.id.in_(bindparam("batch_ids", expanding=True)))

_READY_JOBS = (
    select(
        jobs.c.id,
        jobs.c.service,
        jobs.c.job_type,
        jobs.c.spec,
        jobs.c.timeout,
        jobs.c.failed_nodes,
        jobs.c.requirements,
    )
    .where(jobs.c.batch_id == bindparam("batch_id"))
    .where(jobs.c.state.in_([s.value for s in DISPATCHING_JOB_STATES]))
    .where(jobs.c.service.in_(bindparam("services", expanding=True)))
    .order_by(jobs.c.idx)
)

_QUEUED_SEGMENTS = (
    select(segments.c.id, segments.c.idx, segments.c.kind, segments.c.spec, segments.c.attempts)
    .where(segments.c.job_id == bindparam("job_id"))
    .where(segments.c.state == SegmentState.QUEUED.value)
    .order_by(segments.c.idx)
    .limit(bindparam("limit"))
)

_JOBS_OF = (
    select(jobs.c.id, jobs.c.state, jobs.c.batch_id)
    .where(jobs.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(jobs.c.id)
)

_BATCHES_OF = (
    select(batches.c.id, batches.c.state)
    .where(batches.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(batches.c.id)
)


def candidates(
    conn: Connection, wanted: dict[str, int], now: float, batch_ids: Iterable[int] | None
) -> Iterator[Candidate]:
    """Queued segments in dispatch order, while ``wanted`` (updated by the caller as it
    takes them) still asks for their service. Walks batches, then their jobs, then each
    job's queued segments through the (job_id, state, idx) index, so a tick costs a few
    indexed lookups however long the queue is.
    """
    if batch_ids is None:
        ready = conn.execute(_READY_BATCHES, {"now": now})
    else:
        ready = conn.execute(_READY_BATCHES_OF, {"now": now, "batch_ids": list(batch_ids)})
    for batch_id, owner, priority in ready.all():
        services = [s for s, n in wanted.items() if n > 0]
        job_rows = conn.execute(_READY_JOBS, {"batch_id": batch_id, "services": services}).all()
        for job in job_rows:
            if wanted.get(job.service, 0) <= 0:
                continue
            # One more than wanted, in case the assemble segment must wait.
            queued = conn.execute(
                _QUEUED_SEGMENTS, {"job_id": job.id, "limit": wanted[job.service] + 1}
            ).all()
            failed_nodes = tuple(job.failed_nodes or ())
            requirements = Requirements.from_dict(job.requirements)
            for seg in queued:
                if wanted.get(job.service, 0) <= 0:
                    break
                kind = SegmentKind(seg.kind)
                # Only an assemble segment needs the (counting) work-done lookup.
                work_done = kind is SegmentKind.ASSEMBLE and _work_done(conn, job.id)
                if not segment_dispatches(kind, work_done):
                    continue
                yield Candidate(
                    segment_id=seg.id,
                    job_id=job.id,
                    batch_id=batch_id,
                    index=seg.idx,
                    service=job.service,
                    job_type=job.job_type,
                    job_spec=job.spec,
                    segment_spec=seg.spec,
                    timeout=job.timeout,
                    attempts=seg.attempts,
                    failed_nodes=failed_nodes,
                    requirements=requirements,
                    owner=owner,
                    priority=priority,
                )
            if not any(n > 0 for n in wanted.values()):
                return


def record_dispatches(conn: Connection, dispatches: Sequence[Dispatch]) -> list[Change]:
    if not dispatches:
        return []
    changes: list[Change] = []
    rows = segment_rows(conn, [d.segment_id for d in dispatches])
    pending = Pending()
    for d in dispatches:
        row = rows[d.segment_id]
        pending.move(row, SegmentState.DISPATCHED, changes, node=d.node)
        pending.segment(row.id, node=d.node, attempts=row.attempts + 1, error="", progress=0.0)
    pending.flush(conn)
    insert_many(
        conn,
        attempts,
        [
            {
                "segment_id": d.segment_id,
                "number": rows[d.segment_id].attempts + 1,
                "node": d.node,
                "dispatched_at": d.at,
                "error": "",
                "log_tail": "",
                "log_path": d.log_path,
            }
            for d in dispatches
        ],
    )
    now = max(d.at for d in dispatches)
    kinds: dict[int, set[SegmentKind]] = defaultdict(set)
    for d in dispatches:
        kinds[rows[d.segment_id].job_id].add(SegmentKind(rows[d.segment_id].kind))
    paths: dict[int, tuple[Row | Moved, tuple[JobState, ...]]] = {
        job.id: (job, job_on_dispatch(JobState(job.state), kinds[job.id]))
        for job in conn.execute(_JOBS_OF, {"ids": list(kinds)})
    }
    # Every job that starts, then every job that assembles: the order the event stream has
    # always had.
    for step in (JobState.RUNNING, JobState.ASSEMBLING):
        for job_id, (job, path) in paths.items():
            if step in path:
                values = {"started_at": now} if step is JobState.RUNNING else {}
                move(conn, job, step, changes, **values)
                paths[job_id] = (Moved(job.id, step.value, job.batch_id), path)
    batch_ids = {rows[d.segment_id].batch_id for d in dispatches}
    for batch in conn.execute(_BATCHES_OF, {"ids": list(batch_ids)}):
        new = batch_on_dispatch(BatchState(batch.state))
        if new is not None:
            move(conn, batch, new, changes, started_at=now)
    return changes


def _work_done(conn: Connection, job_id: int) -> bool:
    pending = conn.execute(
        select(func.count())
        .select_from(segments)
        .where(segments.c.job_id == job_id)
        .where(segments.c.kind == SegmentKind.WORK.value)
        .where(segments.c.state != SegmentState.DONE.value)
    ).scalar_one()
    return int(pending) == 0
