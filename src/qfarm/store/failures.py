"""Reading the failed and lost attempts of every batch over a window: what the Failures
view groups (:mod:`qfarm.domain.failures`). One query, newest first and bounded, so a farm
with a bad week costs the page one read, not one per batch. Schema 8's index on the
attempts' outcome and :data:`_WHEN` (``ix_attempts_outcome_when``) answers it without
scanning the attempts table; keep the two expressions the same."""

from __future__ import annotations

from sqlalchemy import func, select

from qfarm.domain.failures import FAILURE_OUTCOMES, FailedAttempt
from qfarm.domain.model import AttemptOutcome, BatchState
from qfarm.store.base import StoreBase
from qfarm.store.tables import attempts, attempts_of_jobs, batches, jobs, segments

# When an attempt failed: its end, or its dispatch for one whose end was never recorded.
_WHEN = func.coalesce(attempts.c.ended_at, attempts.c.dispatched_at)


class Failures(StoreBase):
    def failed_attempts(self, since: float, limit: int) -> list[FailedAttempt]:
        """The attempts that failed or were lost at ``since`` (epoch seconds) or later, at
        most ``limit`` of them, newest first, with their batch, job and segment."""
        query = (
            select(
                attempts.c.number,
                attempts.c.node,
                attempts.c.outcome,
                attempts.c.exit_code,
                attempts.c.error,
                attempts.c.log_tail,
                _WHEN.label("at"),
                segments.c.id.label("segment_id"),
                segments.c.idx.label("segment_index"),
                segments.c.label.label("segment_label"),
                jobs.c.id.label("job_id"),
                jobs.c.name.label("job_name"),
                batches.c.id.label("batch_id"),
                batches.c.name.label("batch_name"),
                batches.c.state.label("batch_state"),
            )
            .select_from(attempts_of_jobs().join(batches, batches.c.id == segments.c.batch_id))
            .where(attempts.c.outcome.in_([o.value for o in FAILURE_OUTCOMES]))
            .where(since <= _WHEN)
            .order_by(_WHEN.desc(), attempts.c.id.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [
                FailedAttempt(
                    batch_id=row.batch_id,
                    batch_name=row.batch_name,
                    batch_state=BatchState(row.batch_state),
                    job_id=row.job_id,
                    job_name=row.job_name,
                    segment_id=row.segment_id,
                    segment_index=row.segment_index,
                    segment_label=row.segment_label,
                    number=row.number,
                    node=row.node,
                    outcome=AttemptOutcome(row.outcome),
                    ended_at=float(row.at),
                    exit_code=row.exit_code,
                    error=row.error or "",
                    log_tail=row.log_tail or "",
                )
                for row in conn.execute(query)
            ]
