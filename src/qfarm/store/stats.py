"""Reading what the charts draw (:mod:`qfarm.domain.stats`): the attempts that overlap a
window, each with its node and its job's service, in one query; and the attempts of a
batch's segments for its durations chart.

The window query scans the attempts table by time (only ``segment_id`` is indexed): an
index on ``ended_at`` would let a farm with months of history read its last hour without
the scan; it needs a schema step, left for when a benchmark shows the cost.
"""

from __future__ import annotations

from sqlalchemy import and_, or_, select

from qfarm.domain.stats import AttemptSpan, AttemptTime
from qfarm.store.base import StoreBase
from qfarm.store.tables import attempts, attempts_of_jobs, jobs, segments


class Stats(StoreBase):
    def attempt_spans(self, start: float, end: float) -> list[AttemptSpan]:
        """Every attempt that held an instance at some time in [start, end): dispatched
        before ``end``, and ended at ``start`` or later or not ended yet."""
        query = (
            select(
                attempts.c.node,
                jobs.c.service,
                attempts.c.dispatched_at,
                attempts.c.started_at,
                attempts.c.ended_at,
                attempts.c.outcome,
            )
            .select_from(attempts_of_jobs())
            .where(attempts.c.dispatched_at < end)
            .where(
                or_(
                    attempts.c.ended_at >= start,
                    and_(attempts.c.ended_at.is_(None), attempts.c.outcome.is_(None)),
                )
            )
            .order_by(attempts.c.dispatched_at, attempts.c.id)
        )
        with self.engine.connect() as conn:
            return [
                AttemptSpan(
                    node=row.node,
                    service=row.service,
                    dispatched_at=float(row.dispatched_at),
                    started_at=_seconds(row.started_at),
                    ended_at=_seconds(row.ended_at),
                    outcome=row.outcome,
                )
                for row in conn.execute(query)
            ]

    def attempt_times(self, batch_id: int, job_id: int | None = None) -> list[AttemptTime]:
        """Every attempt of the batch's segments (of one job of it, given ``job_id``),
        with its job and segment, by job, segment index and attempt number."""
        query = (
            select(
                jobs.c.id.label("job_id"),
                jobs.c.name.label("job_name"),
                segments.c.id.label("segment_id"),
                segments.c.idx.label("segment_index"),
                segments.c.label.label("segment_label"),
                attempts.c.number,
                attempts.c.node,
                attempts.c.dispatched_at,
                attempts.c.started_at,
                attempts.c.ended_at,
                attempts.c.outcome,
            )
            .select_from(attempts_of_jobs())
            .where(segments.c.batch_id == batch_id)
            .order_by(jobs.c.idx, segments.c.idx, attempts.c.number)
        )
        if job_id is not None:
            query = query.where(segments.c.job_id == job_id)
        with self.engine.connect() as conn:
            return [
                AttemptTime(
                    job_id=row.job_id,
                    job_name=row.job_name,
                    segment_id=row.segment_id,
                    segment_index=row.segment_index,
                    segment_label=row.segment_label,
                    number=row.number,
                    node=row.node,
                    dispatched_at=float(row.dispatched_at),
                    started_at=_seconds(row.started_at),
                    ended_at=_seconds(row.ended_at),
                    outcome=row.outcome,
                )
                for row in conn.execute(query)
            ]


def _seconds(value: float | None) -> float | None:
    return None if value is None else float(value)
