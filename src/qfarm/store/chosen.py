"""Chosen segments of a batch canceled while it runs: the queued ones at once, the ones out
on nodes returned for the dispatcher to kill (their attempts then report as canceled), and
their jobs, and the batch, ended when nothing of them is left to run. Which segments may be
canceled is the domain's (:func:`qfarm.domain.steering.check_cancel_chosen`).

(Running chosen segments again is :meth:`Batches.resubmit_batch` with ``chosen``.)
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import select

from qfarm.domain.model import ACTIVE_SEGMENT_STATES, BatchState, SegmentKind, SegmentState
from qfarm.domain.steering import check_cancel_chosen
from qfarm.store.base import StoreBase
from qfarm.store.moves import Pending
from qfarm.store.records import Canceled, Change
from qfarm.store.reports import cancel_assembly
from qfarm.store.rows import one_batch, to_segment
from qfarm.store.settle import settle_jobs
from qfarm.store.tables import segments

NOT_ASSEMBLED = "not assembled: a work segment canceled"


class ChosenSegments(StoreBase):
    def cancel_segments(
        self, batch_id: int, chosen: Collection[int], reason: str = "canceled"
    ) -> Canceled:
        """Cancel the ``chosen`` segments (ids) of a batch still going; returns the active
        ones, which the dispatcher must kill, and the changes made at once."""
        changes: list[Change] = []
        wanted = set(chosen)
        with self._tx() as conn:
            batch = one_batch(conn, batch_id)
            rows = conn.execute(select(segments).where(segments.c.batch_id == batch_id)).all()
            states = {row.id: SegmentState(row.state) for row in rows}
            check_cancel_chosen(batch_id, BatchState(batch.state), states, wanted)
            mine = [row for row in rows if row.id in wanted]
            queued = [row for row in mine if states[row.id] is SegmentState.QUEUED]
            pending = Pending()
            pending.move_all(queued, SegmentState.CANCELED, changes, error=reason)
            active = [row for row in mine if states[row.id] in ACTIVE_SEGMENT_STATES]
            for row in active:  # whatever their attempts report now, they end canceled
                pending.segment(row.id, canceling=True)
            pending.flush(conn)
            # A job's assemble segment cannot run without every work segment done.
            for job_id in {row.job_id for row in queued if row.kind == SegmentKind.WORK.value}:
                cancel_assembly(conn, job_id, NOT_ASSEMBLED, changes)
            settle_jobs(conn, {row.job_id for row in queued}, changes)
        return Canceled([to_segment(row) for row in active], changes)
