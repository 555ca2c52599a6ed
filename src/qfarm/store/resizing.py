"""Cutting a job's untried segments again (OpenJD adaptive chunking): what it is cut from
(the job's measured time per task, its segments nobody has tried) and the swap itself, in
one transaction that does nothing if any of those segments moved meanwhile."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select

from qfarm.domain.model import AttemptOutcome, QueuedSegment, SegmentKind, SegmentPlan, SegmentState
from qfarm.store.base import StoreBase
from qfarm.store.records import Change
from qfarm.store.rows import new_segment
from qfarm.store.tables import attempts, jobs, segments


@dataclass(frozen=True)
class ResizeFacts:
    """What a job's untried segments are cut again from."""

    seconds_per_task: float | None  # over its done attempts; None before one is done
    queued: list[QueuedSegment]  # queued, never tried, in index order
    next_index: int  # above every index the job has used


class Resizing(StoreBase):
    def resize_facts(self, job_id: int) -> ResizeFacts:
        with self.engine.connect() as conn:
            done = conn.execute(
                select(
                    func.sum(attempts.c.ended_at - attempts.c.started_at),
                    func.sum(segments.c.frames),
                )
                .select_from(attempts.join(segments, attempts.c.segment_id == segments.c.id))
                .where(segments.c.job_id == job_id)
                .where(segments.c.kind == SegmentKind.WORK.value)
                .where(attempts.c.outcome == AttemptOutcome.DONE.value)
                .where(attempts.c.started_at.is_not(None), attempts.c.ended_at.is_not(None))
            ).one()
            seconds, tasks = done
            rows = conn.execute(
                select(segments.c.id, segments.c.idx, segments.c.spec, segments.c.frames)
                .where(segments.c.job_id == job_id)
                .where(segments.c.kind == SegmentKind.WORK.value)
                .where(segments.c.state == SegmentState.QUEUED.value)
                .where(segments.c.attempts == 0)
                .order_by(segments.c.idx)
            ).all()
            top = conn.execute(
                select(func.max(segments.c.idx)).where(segments.c.job_id == job_id)
            ).scalar()
        return ResizeFacts(
            seconds_per_task=float(seconds) / float(tasks) if tasks else None,
            queued=[QueuedSegment(r.id, r.idx, dict(r.spec), r.frames) for r in rows],
            next_index=int(top or 0) + 1,
        )

    def replace_segments(
        self, job_id: int, old: Sequence[int], plans: Sequence[SegmentPlan]
    ) -> list[Change]:
        """Put ``plans`` in place of the segments ``old`` of the job, if every one of them is
        still queued and untried; otherwise change nothing and return no changes."""
        with self._tx() as conn:
            job = conn.execute(
                select(jobs.c.batch_id, jobs.c.state).where(jobs.c.id == job_id)
            ).one()
            still = conn.execute(
                select(func.count())
                .select_from(segments)
                .where(segments.c.id.in_(list(old)))
                .where(segments.c.job_id == job_id)
                .where(segments.c.state == SegmentState.QUEUED.value)
                .where(segments.c.attempts == 0)
            ).scalar()
            if still != len(old) or not plans:
                return []
            conn.execute(delete(segments).where(segments.c.id.in_(list(old))))
            conn.execute(segments.insert(), [new_segment(job_id, job.batch_id, p) for p in plans])
        return [Change("job", job_id, job.state, job.batch_id)]
