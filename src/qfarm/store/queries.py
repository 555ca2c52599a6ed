"""Reading batches: their jobs, segments, attempts and progress, for the API, the CLI and
progress bars. Nothing here writes; reads never block the dispatcher (SQLite runs in WAL
mode)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Select, and_, func, or_, select

from qfarm.domain.errors import NotFound
from qfarm.domain.model import (
    ACTIVE_SEGMENT_STATES,
    FINAL_BATCH_STATES,
    Attempt,
    AttemptOutcome,
    Batch,
    BatchCounts,
    BatchState,
    Job,
    Segment,
    SegmentState,
)
from qfarm.store.base import StoreBase
from qfarm.store.records import ALL, Page
from qfarm.store.rows import to_attempt, to_batch, to_job, to_segment
from qfarm.store.tables import attempts, batches, jobs, segments


class Queries(StoreBase):
    def batch(self, batch_id: int) -> Batch:
        with self.engine.connect() as conn:
            row = conn.execute(select(batches).where(batches.c.id == batch_id)).first()
        if row is None:
            raise NotFound(f"no batch {batch_id}")
        return to_batch(row)

    def batches(self, states: Iterable[BatchState] | None = None, page: Page = ALL) -> list[Batch]:
        with self.engine.connect() as conn:
            return [to_batch(row) for row in conn.execute(paged(_batches(states), page))]

    def batch_total(self, states: Iterable[BatchState] | None = None) -> int:
        """How many batches :meth:`batches` lists in all pages."""
        return self._total(_batches(states))

    def _total(self, query: Select[Any]) -> int:
        with self.engine.connect() as conn:
            count = select(func.count()).select_from(query.order_by(None).subquery())
            return int(conn.execute(count).scalar_one())

    def ended_before(self, cutoff: float) -> list[int]:
        """Ids of the batches that ended (done, failed, canceled) before ``cutoff`` (epoch
        seconds), oldest first: what retention removes."""
        query = (
            select(batches.c.id)
            .where(batches.c.state.in_([s.value for s in FINAL_BATCH_STATES]))
            .where(batches.c.finished_at < cutoff)
            .order_by(batches.c.finished_at)
        )
        with self.engine.connect() as conn:
            return list(conn.execute(query).scalars())

    def job(self, job_id: int) -> Job:
        with self.engine.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        if row is None:
            raise NotFound(f"no job {job_id}")
        return to_job(row)

    def jobs(self, batch_id: int) -> list[Job]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(jobs).where(jobs.c.batch_id == batch_id).order_by(jobs.c.idx)
            )
            return [to_job(row) for row in rows]

    def segments(
        self, batch_id: int, states: Iterable[SegmentState] | None = None, page: Page = ALL
    ) -> list[Segment]:
        query = paged(_segments(batch_id, states), page)
        with self.engine.connect() as conn:
            return [to_segment(row) for row in conn.execute(query)]

    def segment_total(self, batch_id: int, states: Iterable[SegmentState] | None = None) -> int:
        return self._total(_segments(batch_id, states))

    def attempts(self, segment_id: int) -> list[Attempt]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(attempts)
                .where(attempts.c.segment_id == segment_id)
                .order_by(attempts.c.number)
            )
            return [to_attempt(row) for row in rows]

    def batch_attempts(
        self, batch_id: int, since: float | None = None, page: Page = ALL
    ) -> list[Attempt]:
        """The attempts of a batch's segments, in dispatch order: a timeline's data. With
        ``since`` (epoch seconds, the controller's clock), only those dispatched or whose
        end was reported since then, and those still going: what a monitor that has the
        rest must read again."""
        with self.engine.connect() as conn:
            rows = conn.execute(paged(_batch_attempts(batch_id, since), page))
            return [to_attempt(row) for row in rows]

    def batch_attempt_total(self, batch_id: int, since: float | None = None) -> int:
        return self._total(_batch_attempts(batch_id, since))

    def counts(self, batch_id: int) -> BatchCounts:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(segments.c.state, func.count(), *_WORK_COLUMNS)
                .where(segments.c.batch_id == batch_id)
                .group_by(segments.c.state)
            ).all()
        by_state = {SegmentState(state): int(n) for state, n, _, _ in rows}
        work_total, work_done = _work([(state, frames, part) for state, _, frames, part in rows])
        return BatchCounts(
            work_total=work_total,
            work_done=work_done,
            total=sum(by_state.values()),
            queued=by_state.get(SegmentState.QUEUED, 0),
            dispatched=by_state.get(SegmentState.DISPATCHED, 0),
            running=by_state.get(SegmentState.RUNNING, 0),
            done=by_state.get(SegmentState.DONE, 0),
            failed=by_state.get(SegmentState.FAILED, 0),
            canceled=by_state.get(SegmentState.CANCELED, 0),
            suspended=by_state.get(SegmentState.SUSPENDED, 0),
        )

    def segment_counts(self) -> dict[tuple[str, str], int]:
        """(service, state) -> segments, over the whole store (what /metrics shows)."""
        query = (
            select(jobs.c.service, segments.c.state, func.count())
            .select_from(segments.join(jobs, segments.c.job_id == jobs.c.id))
            .group_by(jobs.c.service, segments.c.state)
        )
        with self.engine.connect() as conn:
            return {(str(svc), str(state)): int(n) for svc, state, n in conn.execute(query)}

    def jobs_with_queued(self, batch_id: int) -> set[int]:
        """The jobs of a batch that have segments waiting to be dispatched."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(segments.c.job_id)
                .where(segments.c.batch_id == batch_id, segments.c.state == SegmentState.QUEUED)
                .distinct()
            ).scalars()
            return set(rows)

    def job_progress(self, batch_id: int) -> dict[int, float]:
        """Each job's work done, 0..1, counting the reported part of running segments."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(segments.c.job_id, segments.c.state, *_WORK_COLUMNS)
                .where(segments.c.batch_id == batch_id)
                .group_by(segments.c.job_id, segments.c.state)
            ).all()
        by_job: dict[int, list[tuple[str, Any, Any]]] = defaultdict(list)
        for job_id, state, frames, part in rows:
            by_job[job_id].append((state, frames, part))
        progress = {}
        for job_id, job_rows in by_job.items():
            total, done = _work(job_rows)
            progress[job_id] = done / total if total else 0.0
        return progress

    # ------------------------------------------------- for runs, retries and restarts

    def unfinished_batches(self, digest: str) -> list[Batch]:
        """The batches stored with ``digest`` that did not end done, newest first: what an
        interrupted `qfarm run` of the same request left to carry on with. Those older than
        the newest one that ended done are left out: that run did their work."""
        query = (
            select(batches).where(batches.c.request_digest == digest).order_by(batches.c.id.desc())
        )
        found: list[Batch] = []
        with self.engine.connect() as conn:
            for row in conn.execute(query):
                batch = to_batch(row)
                if batch.state is BatchState.DONE:
                    break
                found.append(batch)
        return found

    def blocklisted_nodes(self, job_id: int, after: int) -> set[str]:
        """The nodes on which some segment of the job failed ``after`` times or more."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(attempts.c.node)
                .join(segments, segments.c.id == attempts.c.segment_id)
                .where(
                    segments.c.job_id == job_id, attempts.c.outcome == AttemptOutcome.FAILED.value
                )
                .group_by(attempts.c.segment_id, attempts.c.node)
                .having(func.count() >= after)
            ).scalars()
            return set(rows)

    def queued_segments(self, job_ids: Iterable[int]) -> dict[int, int]:
        """How many segments of each of the jobs are queued now (jobs with none left out)."""
        wanted = list(set(job_ids))
        if not wanted:
            return {}
        query = (
            select(segments.c.job_id, func.count())
            .where(segments.c.job_id.in_(wanted))
            .where(segments.c.state == SegmentState.QUEUED.value)
            .group_by(segments.c.job_id)
        )
        with self.engine.connect() as conn:
            return {int(job_id): int(n) for job_id, n in conn.execute(query)}

    def job_nodes(self, job_id: int, *, done: bool = False) -> list[str]:
        """The nodes a job's attempts went to (with ``done``: only attempts that succeeded),
        first dispatched first."""
        query = (
            select(attempts.c.node)
            .join(segments, segments.c.id == attempts.c.segment_id)
            .where(segments.c.job_id == job_id)
            .order_by(attempts.c.dispatched_at, attempts.c.id)
        )
        if done:
            query = query.where(attempts.c.outcome == AttemptOutcome.DONE.value)
        with self.engine.connect() as conn:
            return list(dict.fromkeys(conn.execute(query).scalars()))

    def active_segments(self, batch_ids: Iterable[int] | None = None) -> list[Segment]:
        query = select(segments).where(
            segments.c.state.in_([s.value for s in ACTIVE_SEGMENT_STATES])
        )
        if batch_ids is not None:
            query = query.where(segments.c.batch_id.in_(list(batch_ids)))
        with self.engine.connect() as conn:
            return [to_segment(row) for row in conn.execute(query)]


# Work is counted in frames (a segment's units), so a long segment half done moves a
# progress bar as much as it should: per state, the frames, and the frames times progress.
_WORK_COLUMNS = (func.sum(segments.c.frames), func.sum(segments.c.frames * segments.c.progress))


def _work(rows: Iterable[tuple[str, Any, Any]]) -> tuple[float, float]:
    """(total, done) from (state, frames, frames x progress) rows."""
    total = done = 0.0
    for state, frames, partial in rows:
        total += float(frames or 0)
        if state == SegmentState.DONE.value:
            done += float(frames or 0)
        elif state in (SegmentState.RUNNING.value, SegmentState.SUSPENDED.value):
            done += float(partial or 0)  # a suspended segment keeps what it had done
    return total, done


def paged(query: Select[Any], page: Page) -> Select[Any]:
    """``query`` cut to ``page`` (its order must be total, or pages may overlap)."""
    if page.offset:
        query = query.offset(page.offset)
    return query if page.limit is None else query.limit(page.limit)


def _batches(states: Iterable[BatchState] | None) -> Select[Any]:
    query = select(batches).order_by(batches.c.id)
    if states is not None:
        query = query.where(batches.c.state.in_([s.value for s in states]))
    return query


def _segments(batch_id: int, states: Iterable[SegmentState] | None) -> Select[Any]:
    query = (
        select(segments)
        .where(segments.c.batch_id == batch_id)
        .order_by(segments.c.job_id, segments.c.idx)
    )
    if states is not None:
        query = query.where(segments.c.state.in_([s.value for s in states]))
    return query


def _batch_attempts(batch_id: int, since: float | None) -> Select[Any]:
    query = (
        select(attempts)
        .join(segments, segments.c.id == attempts.c.segment_id)
        .where(segments.c.batch_id == batch_id)
        .order_by(attempts.c.dispatched_at, attempts.c.id)
    )
    if since is not None:
        # By the controller's clock (dispatched_at, reported_at): a node's may be off.
        # ended_at for attempts that ended before schema 8 recorded when.
        query = query.where(
            or_(
                attempts.c.ended_at.is_(None),
                attempts.c.reported_at >= since,
                attempts.c.dispatched_at >= since,
                and_(attempts.c.reported_at.is_(None), attempts.c.ended_at >= since),
            )
        )
    return query
