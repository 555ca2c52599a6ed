"""Batches: adding them, and what people do to them (pause, resume, reprioritise, cancel,
resubmit, reopen, remove). Whether each is allowed in a batch's state, and what it moves,
is the domain's (:mod:`qfarm.domain.steering`, :mod:`qfarm.domain.lifecycle`); this module
persists it, each action in one transaction.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence

from sqlalchemy import Connection, delete, select, update

from qfarm.domain.errors import InvalidRequest
from qfarm.domain.lifecycle import CANCELED_AT_ONCE, cancel_begins, cancel_ends_batch, requeued_job
from qfarm.domain.model import (
    ACTIVE_SEGMENT_STATES,
    FINAL_BATCH_STATES,
    BatchRequest,
    BatchState,
    CancelState,
    JobState,
    Segment,
    SegmentKind,
    SegmentState,
    check_transition,
)
from qfarm.domain.steering import (
    RERUN_JOB_STATES,
    RERUN_SEGMENT_STATES,
    check_priority_change,
    check_remove,
    check_rerun_chosen,
    check_resubmit,
    pause_target,
    resume_target,
)
from qfarm.store.moves import Pending, move
from qfarm.store.records import Canceled, Change, PlannedJob, Result
from qfarm.store.reports import Reports
from qfarm.store.rows import Row, insert, new_segment, one_batch, to_segment
from qfarm.store.settle import settle_jobs
from qfarm.store.tables import attempts, batches, deliveries, jobs, segments
from qfarm.store.thumbnails import delete_batch_thumbnails


class Batches(Reports):
    def add_batch(
        self, request: BatchRequest, planned: Sequence[PlannedJob], digest: str | None = None
    ) -> int:
        """Store a validated batch with its jobs and segments, in one transaction.
        ``digest`` names what was asked for, so that the same request can find it again
        (:meth:`unfinished_batches`)."""
        now = time.time()
        state = BatchState.HELD if request.hold else BatchState.QUEUED
        with self._tx() as conn:
            batch_id = insert(
                conn,
                batches.insert().values(
                    name=request.name,
                    owner=request.owner,
                    priority=request.priority,
                    state=state.value,
                    serialize=request.serialize,
                    canceling=False,
                    submitted_at=now,
                    start_at=request.start_at,
                    request_digest=digest,
                    notify=[n.to_dict() for n in request.notify] or None,
                ),
            )
            job_ids: list[int] = []
            for idx, job in enumerate(planned):
                depends = [job_ids[i] for i in job.depends_on]
                job_id = insert(
                    conn,
                    jobs.insert().values(
                        batch_id=batch_id,
                        idx=idx,
                        name=job.name or f"job {idx + 1}",
                        job_type=job.job_type,
                        service=job.service,
                        state=(JobState.WAITING if depends else JobState.QUEUED).value,
                        spec=job.spec,
                        retries=job.retries,
                        timeout=job.timeout,
                        depends_on=depends,
                        failed_nodes=[],
                        error="",
                        requirements=job.requirements.to_dict() or None,
                    ),
                )
                job_ids.append(job_id)
                conn.execute(
                    segments.insert(), [new_segment(job_id, batch_id, p) for p in job.plans]
                )
        return batch_id

    def pause_batch(self, batch_id: int) -> list[Change]:
        """Stop dispatching a batch's segments; those running finish."""
        new = pause_target(batch_id, self.batch(batch_id).state)
        return [] if new is None else self._set_batch_state(batch_id, new)

    def resume_batch(self, batch_id: int) -> list[Change]:
        """Dispatch a paused or held batch again."""
        batch = self.batch(batch_id)
        new = resume_target(batch_id, batch.state, started=batch.started_at is not None)
        return [] if new is None else self._set_batch_state(batch_id, new)

    def _set_batch_state(self, batch_id: int, new: BatchState) -> list[Change]:
        changes: list[Change] = []
        with self._tx() as conn:
            row = one_batch(conn, batch_id)
            if row.state != new.value:
                move(conn, row, new, changes)
        return changes

    def set_priority(self, batch_id: int, priority: int) -> None:
        """Reorder what of a batch is still to be dispatched; an ended batch is refused."""
        with self._tx() as conn:
            check_priority_change(batch_id, BatchState(one_batch(conn, batch_id).state))
            conn.execute(update(batches).where(batches.c.id == batch_id).values(priority=priority))

    def resubmit_batch(self, batch_id: int, chosen: Collection[int] | None = None) -> list[Change]:
        """Queue a finished batch's failed and canceled segments again, with fresh retries;
        with ``chosen`` (segment ids), only those, each of which must have failed or been
        canceled, and only their jobs run again.

        Done segments are kept: only what did not finish runs again.
        """
        changes: list[Change] = []
        chosen = None if chosen is None else set(chosen)
        with self._tx() as conn:
            batch = one_batch(conn, batch_id)
            check_resubmit(batch_id, BatchState(batch.state))
            if chosen is not None:
                rows = conn.execute(
                    select(segments.c.id, segments.c.state).where(segments.c.batch_id == batch_id)
                )
                states = {row.id: SegmentState(row.state) for row in rows}
                check_rerun_chosen(batch_id, states, chosen)
            _requeue_unfinished(conn, batch_id, changes, chosen)
            _end_cancel(batch)
            move(conn, batch, BatchState.QUEUED, changes, finished_at=None, canceling=False)
        return changes

    def reopen_batch(self, batch_id: int, reason: str) -> list[Change]:
        """Make an unfinished batch run again, keeping its done segments: what was out on
        nodes is given back (its attempt recorded as lost, ``reason``), and failed and
        canceled segments are queued with fresh retries. For a batch whose runner is gone:
        ended (failed, canceled: a resubmit), or left queued or running by a killed process.
        """
        state = self.batch(batch_id).state
        if state is BatchState.DONE:
            return []
        if state in FINAL_BATCH_STATES:
            return self.resubmit_batch(batch_id)
        changes: list[Change] = []
        with self._tx() as conn:
            # A cancel that its process did not live to finish is forgotten.
            if _end_cancel(one_batch(conn, batch_id)):
                conn.execute(
                    update(batches).where(batches.c.id == batch_id).values(canceling=False)
                )
        lost = [
            Result(s.id, s.attempts, ok=False, node=s.node or "", lost=True, error=reason)
            for s in self.active_segments([batch_id])
        ]
        changes += self.record_reports(results=lost)
        with self._tx() as conn:
            _requeue_unfinished(conn, batch_id, changes)
        return changes

    def cancel_batch(self, batch_id: int, reason: str = "canceled") -> list[Segment]:
        """Cancel a batch: queued segments and unstarted jobs now; returns the active segments,
        which the dispatcher must kill; they are canceled when their attempts report back.
        Cancel while canceling cancels again: the active segments are returned once more.
        """
        return self.cancel(batch_id, reason).active

    def cancel(self, batch_id: int, reason: str = "canceled") -> Canceled:
        """:meth:`cancel_batch`, with the changes it made (for the event stream)."""
        changes: list[Change] = []
        with self._tx() as conn:
            batch = one_batch(conn, batch_id)
            cancel = CancelState.CANCELING if batch.canceling else CancelState.NONE
            new = cancel_begins(BatchState(batch.state), cancel)
            if new is None:
                return Canceled([], [])
            queued = conn.execute(
                select(segments)
                .where(segments.c.batch_id == batch_id)
                .where(segments.c.state == SegmentState.QUEUED.value)
            ).all()
            # One executemany for them all: a batch of 10,000 queued segments cancels in a
            # fraction of a second, not one UPDATE each.
            pending = Pending()
            pending.move_all(queued, SegmentState.CANCELED, changes, error=reason)
            pending.flush(conn)
            for job in conn.execute(select(jobs).where(jobs.c.batch_id == batch_id)):
                if JobState(job.state) in CANCELED_AT_ONCE:
                    move(conn, job, JobState.CANCELED, changes, error=reason)
            active = conn.execute(
                select(segments)
                .where(segments.c.batch_id == batch_id)
                .where(segments.c.state.in_([s.value for s in ACTIVE_SEGMENT_STATES]))
            ).all()
            if new is not cancel:
                check_transition(batch_id, cancel, new)
                conn.execute(update(batches).where(batches.c.id == batch_id).values(canceling=True))
            if not active:
                job_ids = {
                    row.id
                    for row in conn.execute(select(jobs.c.id).where(jobs.c.batch_id == batch_id))
                }
                settle_jobs(conn, job_ids, changes)
                batch = one_batch(conn, batch_id)
                if cancel_ends_batch(BatchState(batch.state), len(active)):
                    move(conn, batch, BatchState.CANCELED, changes, finished_at=time.time())
            return Canceled([to_segment(row) for row in active], changes)

    def remove_batch(self, batch_id: int) -> set[str]:
        """Delete an ended batch with its jobs, segments and attempts, in one transaction.
        Returns the cluster-storage uploads its jobs used that no other batch's job uses
        (the caller may delete their files). A batch still going cannot be removed."""
        with self._tx() as conn:
            check_remove(batch_id, BatchState(one_batch(conn, batch_id).state))
            uploads = {
                upload
                for (spec,) in conn.execute(select(jobs.c.spec).where(jobs.c.batch_id == batch_id))
                if (upload := ((spec or {}).get("storage") or {}).get("upload"))
            }
            segment_ids = select(segments.c.id).where(segments.c.batch_id == batch_id)
            conn.execute(delete(attempts).where(attempts.c.segment_id.in_(segment_ids)))
            conn.execute(delete(segments).where(segments.c.batch_id == batch_id))
            conn.execute(delete(jobs).where(jobs.c.batch_id == batch_id))
            # Its notifications go with it (ids may be used again by a new batch).
            conn.execute(delete(deliveries).where(deliveries.c.batch_id == batch_id))
            delete_batch_thumbnails(conn, batch_id)
            conn.execute(delete(batches).where(batches.c.id == batch_id))
            if uploads:
                # Uploads are named by random ids: a spec that mentions one uses it.
                for (spec,) in conn.execute(select(jobs.c.spec)):
                    uploads.discard(((spec or {}).get("storage") or {}).get("upload"))
            return uploads


def _end_cancel(batch: Row) -> bool:
    """Check that a batch may leave its cancel (a resubmit, a reopen); whether it was in one."""
    if not batch.canceling:
        return False
    check_transition(batch.id, CancelState.CANCELING, CancelState.NONE)
    return True


def _requeue_unfinished(
    conn: Connection,
    batch_id: int,
    changes: list[Change],
    chosen: Collection[int] | None = None,
) -> None:
    """Queue a batch's failed and canceled segments and jobs again (fresh retries), jobs
    waiting again where what they depend on must rerun too; with ``chosen``, only those
    segments and the jobs they belong to. The batch's state is left as it is: only an ended
    batch moves (a resubmit does that)."""
    query = (
        select(
            segments.c.id, segments.c.state, segments.c.batch_id, segments.c.job_id, segments.c.kind
        )
        .where(segments.c.batch_id == batch_id)
        .where(segments.c.state.in_([s.value for s in RERUN_SEGMENT_STATES]))
    )
    unfinished = conn.execute(query).all()
    if chosen is None:
        rerun = unfinished
    else:
        # And the assemble segment of each job chosen: it was canceled with the work.
        chosen_jobs = {row.job_id for row in unfinished if row.id in chosen}
        rerun = [
            row
            for row in unfinished
            if row.id in chosen
            or (row.kind == SegmentKind.ASSEMBLE.value and row.job_id in chosen_jobs)
        ]
    pending = Pending()
    pending.move_all(rerun, SegmentState.QUEUED, changes, failures=0, error="", canceling=False)
    pending.flush(conn)
    rerun_jobs = {row.job_id for row in rerun}
    job_rows = conn.execute(
        select(jobs.c.id, jobs.c.state, jobs.c.batch_id, jobs.c.depends_on)
        .where(jobs.c.batch_id == batch_id)
        .order_by(jobs.c.idx)
    ).all()
    state_of = {job.id: JobState(job.state) for job in job_rows}
    for job in job_rows:
        if state_of[job.id] not in RERUN_JOB_STATES:
            continue
        if chosen is not None and job.id not in rerun_jobs:
            continue  # none of its segments was chosen: it stays as it ended
        # Jobs come in order, so what this one depends on is already settled.
        deps = job.depends_on or ()
        stuck = [d for d in deps if state_of[d] in RERUN_JOB_STATES]
        if stuck:  # only when chosen: a whole resubmit reruns those too
            raise InvalidRequest(
                f"job {job.id} depends on job {stuck[0]}, which stays "
                f"{state_of[stuck[0]].value}: choose its failed segments too, or resubmit "
                "the whole batch"
            )
        new = requeued_job(state_of[d] for d in deps)
        move(conn, job, new, changes, failed_nodes=[], error="", finished_at=None)
        state_of[job.id] = new
