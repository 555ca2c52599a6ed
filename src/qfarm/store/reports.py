"""Reports: what nodes said in one tick (processes that started, progress, attempts that
ended), recorded in one transaction, with the segments, jobs and batches that move with
them. What each ended attempt does to its segment is the domain's retry rule
(:func:`qfarm.domain.lifecycle.end_attempt`); this module persists it.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from qfarm.domain.lifecycle import (
    SegmentFacts,
    attempt_outcome,
    end_attempt,
    is_current,
    on_continued,
    on_started,
    on_suspended,
)
from qfarm.domain.model import AttemptOutcome, CancelState, SegmentKind, SegmentState
from qfarm.store.moves import Pending, move
from qfarm.store.queries import Queries
from qfarm.store.records import Change, Progress, Result, Started
from qfarm.store.rows import Row, segment_rows
from qfarm.store.settle import settle_jobs
from qfarm.store.tables import batches, jobs, segments
from qfarm.store.thumbnails import NewThumbnail, record_thumbnails

# Built once with bound parameters: every tick with results runs them.
_JOB_RETRIES = select(jobs.c.id, jobs.c.retries, jobs.c.failed_nodes).where(
    jobs.c.id.in_(bindparam("ids", expanding=True))
)

_CANCELING_BATCHES = select(batches.c.id).where(
    batches.c.id.in_(bindparam("ids", expanding=True)), batches.c.canceling.is_(True)
)

_QUEUED_ASSEMBLY = (
    select(segments.c.id, segments.c.state, segments.c.batch_id)
    .where(segments.c.job_id == bindparam("job_id"))
    .where(segments.c.kind == SegmentKind.ASSEMBLE.value)
    .where(segments.c.state == SegmentState.QUEUED.value)
)


def cancel_assembly(conn: Connection, job_id: int, reason: str, changes: list[Change]) -> None:
    """Cancel a job's queued assemble segment: a work segment of it ended without being
    done, so nothing can be assembled."""
    for seg in conn.execute(_QUEUED_ASSEMBLY, {"job_id": job_id}):
        move(conn, seg, SegmentState.CANCELED, changes, error=reason)


class Reports(Queries):
    def record_reports(
        self,
        started: Sequence[Started] = (),
        progress: Sequence[Progress] = (),
        results: Sequence[Result] = (),
    ) -> list[Change]:
        """Everything nodes reported in one tick, in one transaction: processes that started,
        progress, and attempts that ended (done, retried, failed, canceled or lost), with the
        jobs and batches that end with them. Late or stale reports are ignored.
        """
        changes: list[Change] = []
        if not (started or progress or results):
            return changes
        ids = [s.segment_id for s in started]
        ids += [p.segment_id for p in progress]
        ids += [r.segment_id for r in results]
        with self._tx() as conn:
            rows = segment_rows(conn, ids)
            pending = Pending()
            state: dict[int, SegmentState] = {i: SegmentState(r.state) for i, r in rows.items()}

            def current(segment_id: int, attempt: int) -> Row | None:
                row = rows.get(segment_id)
                if row is None or not is_current(state[row.id], row.attempts, attempt):
                    return None  # about an attempt that was already settled
                return row

            def walk(row: Row, path: Sequence[SegmentState]) -> None:
                for new in path:
                    state[row.id] = pending.move(row, new, changes, old=state[row.id])

            for s in started:
                row = current(s.segment_id, s.attempt)
                if row is None:
                    continue
                walk(row, on_started(state[row.id]))
                pending.attempt(row.id, s.attempt, pid=s.pid, started_at=s.at)
            for p in progress:
                row = current(p.segment_id, p.attempt)
                if row is None:
                    continue
                pending.segment(row.id, progress=p.fraction)
                pending.attempt(row.id, p.attempt, last_progress_at=p.at)

            job_ids = {rows[r.segment_id].job_id for r in results if r.segment_id in rows}
            result_batches = {rows[r.segment_id].batch_id for r in results if r.segment_id in rows}
            canceling = set(
                conn.execute(_CANCELING_BATCHES, {"ids": list(result_batches)}).scalars()
            )
            job_rows = {row.id: row for row in conn.execute(_JOB_RETRIES, {"ids": list(job_ids)})}
            failed_nodes: dict[int, set[str]] = defaultdict(set)
            touched_jobs: set[int] = set()
            # Jobs with a work segment that ended for good without being done: their
            # assemble segment can never run, and is canceled so the job can end.
            unassemblable: dict[int, str] = {}
            pictures: list[NewThumbnail] = []
            for r in results:
                row = current(r.segment_id, r.attempt)
                if row is None:
                    continue
                outcome = attempt_outcome(ok=r.ok, canceled=r.canceled, lost=r.lost)
                now = time.time()
                values: dict[str, Any] = {
                    "ended_at": r.ended_at or now,
                    "reported_at": now,
                    "exit_code": r.exit_code,
                    "outcome": outcome.value,
                    "error": r.error,
                }
                # A lost attempt reports no log: keep the tail and path it was given.
                if r.log_tail:
                    values["log_tail"] = r.log_tail
                if r.log_path:
                    values["log_path"] = r.log_path
                if r.started_at:
                    values["started_at"] = r.started_at
                if r.pid:
                    values["pid"] = r.pid
                pending.attempt(row.id, r.attempt, **values)
                if r.thumbnail is not None and outcome is AttemptOutcome.DONE:
                    pictures.append(
                        NewThumbnail(row.batch_id, row.job_id, row.id, r.attempt, r.thumbnail)
                    )
                facts = SegmentFacts(
                    state=state[row.id],
                    kind=SegmentKind(row.kind),
                    failures=row.failures,
                    retries=job_rows[row.job_id].retries,
                    cancel=(
                        CancelState.CANCELING
                        if row.batch_id in canceling or row.canceling
                        else CancelState.NONE
                    ),
                )
                end = end_attempt(facts, outcome, r.error)
                walk(row, end.path)
                segment_values: dict[str, Any] = {}
                if end.error is not None:
                    segment_values["error"] = end.error
                if end.progress is not None:
                    segment_values["progress"] = end.progress
                if end.failures != row.failures:
                    segment_values["failures"] = end.failures
                if segment_values:
                    pending.segment(row.id, **segment_values)
                if end.counts_node:
                    failed_nodes[row.job_id].add(r.node)
                if end.blocks_assembly:
                    unassemblable[row.job_id] = end.blocks_assembly
                touched_jobs.add(row.job_id)
            pending.flush(conn)
            record_thumbnails(conn, pictures)
            for job_id, names in failed_nodes.items():
                known = set(job_rows[job_id].failed_nodes or ())
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == job_id)
                    .values(failed_nodes=sorted(known | names))
                )
            for job_id, reason in unassemblable.items():
                cancel_assembly(conn, job_id, reason, changes)
            settle_jobs(conn, touched_jobs, changes)
        return changes

    def record_suspended(
        self, attempts: Sequence[tuple[int, int]], *, suspended: bool = True
    ) -> list[Change]:
        """Segments whose node stopped (``suspended``) or continued the processes of their
        current attempt, given as ``(segment id, attempt)``: running <-> suspended, in one
        transaction. An attempt that was settled meanwhile (it ended, its node was lost) is
        left as it is: the report that came first stands."""
        changes: list[Change] = []
        if not attempts:
            return changes
        rule = on_suspended if suspended else on_continued
        with self._tx() as conn:
            rows = segment_rows(conn, [segment_id for segment_id, _ in attempts])
            pending = Pending()
            for segment_id, attempt in attempts:
                row = rows.get(segment_id)
                if row is None:
                    continue
                state = SegmentState(row.state)
                if not is_current(state, row.attempts, attempt):
                    continue
                for new in rule(state):
                    state = pending.move(row, new, changes, old=state)
            pending.flush(conn)
        return changes

    def requeue_active(self, reason: str) -> list[Change]:
        """Requeue every dispatched or running segment, its attempt recorded as lost: a
        controller that restarts cannot know what became of them, and no finished output
        is redone.
        """
        return self.record_reports(
            results=[
                Result(s.id, s.attempts, ok=False, node=s.node or "", lost=True, error=reason)
                for s in self.active_segments()
            ]
        )
