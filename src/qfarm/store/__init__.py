"""The store: the only code that speaks SQL, and the source of truth for every state.

Every state change happens in one transaction and is checked against the model's tables
first, so a crash leaves either the old state or the new one, never half of each. The
dispatcher calls in with lists (all results of a tick, all dispatches of a tick) so a busy
farm costs a few transactions per tick rather than a few per segment.

SQLite runs in WAL mode, so readers (a progress bar, the API) never block the dispatcher.
"""

from __future__ import annotations

import enum
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Table,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    inspect,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from qfarm.domain.errors import InvalidRequest, NotFound
from qfarm.domain.model import (
    ACTIVE_SEGMENT_STATES,
    FINAL_BATCH_STATES,
    Attempt,
    Batch,
    BatchCounts,
    BatchRequest,
    BatchState,
    Job,
    JobState,
    Node,
    NodeState,
    Segment,
    SegmentKind,
    SegmentState,
    batch_outcome,
    check_transition,
    job_outcome,
)
from qfarm.store.records import (
    Candidate,
    Change,
    Dispatch,
    PlannedJob,
    Progress,
    Result,
    Started,
    TokenInfo,
)
from qfarm.store.tables import (
    MIGRATIONS,
    SCHEMA_VERSION,
    attempts,
    batches,
    jobs,
    metadata,
    nodes,
    schema,
    segments,
    tokens,
)

__all__ = [
    "SCHEMA_VERSION",
    "Candidate",
    "Change",
    "Dispatch",
    "PlannedJob",
    "Progress",
    "Result",
    "Started",
    "Store",
    "TokenInfo",
    "attempts",
]

# A result row; SQLAlchemy's typed rows add nothing where columns are picked per query.
_Row = Any


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        try:
            self.engine: Engine = create_engine(url)
        except (ArgumentError, NoSuchModuleError, ImportError) as exc:
            raise InvalidRequest(f"cannot use database URL {url!r}: {exc}") from None
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            self._open_schema()
        except OperationalError as exc:
            self.engine.dispose()
            raise InvalidRequest(f"cannot open database {url!r}: {exc.orig}") from None
        except InvalidRequest:
            self.engine.dispose()
            raise

    def _open_schema(self) -> None:
        """Create the tables in a new database; refuse one of another schema version
        rather than misread it. (Migrations come with the first schema change after a
        release.)
        """
        existing = set(inspect(self.engine).get_table_names())
        with self._tx() as conn:
            found = None
            if "batches" in existing:
                if "qfarm_schema" in existing:
                    found = conn.execute(select(schema.c.version)).scalar()
                if found not in MIGRATIONS and found != SCHEMA_VERSION:
                    raise InvalidRequest(
                        f"the store {self.url} was made by another qfarm (schema "
                        f"{found or 'unknown'}, this one needs {SCHEMA_VERSION}): use another "
                        "--data-dir or --db, or move that one away"
                    )
            # New tables (a new store, or one a migration adds them to) are made here.
            metadata.create_all(conn)
            while found in MIGRATIONS:
                found = MIGRATIONS[found](conn)
                conn.execute(update(schema).values(version=found))
            if conn.execute(select(schema.c.version)).first() is None:
                conn.execute(schema.insert().values(version=SCHEMA_VERSION))

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    # ----------------------------------------------------------------- batches

    def add_batch(
        self, request: BatchRequest, planned: Sequence[PlannedJob], digest: str | None = None
    ) -> int:
        """Store a validated batch with its jobs and segments, in one transaction.
        ``digest`` names what was asked for, so that the same request can find it again
        (:meth:`unfinished_batches`)."""
        now = time.time()
        state = BatchState.HELD if request.hold else BatchState.QUEUED
        with self._tx() as conn:
            batch_id = _insert(
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
                ),
            )
            job_ids: list[int] = []
            for idx, job in enumerate(planned):
                depends = [job_ids[i] for i in job.depends_on]
                job_id = _insert(
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
                    ),
                )
                job_ids.append(job_id)
                conn.execute(
                    segments.insert(),
                    [
                        {
                            "job_id": job_id,
                            "batch_id": batch_id,
                            "idx": plan.index,
                            "kind": plan.kind.value,
                            "state": SegmentState.QUEUED.value,
                            "label": plan.label,
                            "spec": plan.spec,
                            "frames": plan.frames,
                            "attempts": 0,
                            "failures": 0,
                            "error": "",
                            "progress": 0.0,
                        }
                        for plan in job.plans
                    ],
                )
        return batch_id

    def batch(self, batch_id: int) -> Batch:
        with self.engine.connect() as conn:
            row = conn.execute(select(batches).where(batches.c.id == batch_id)).first()
        if row is None:
            raise NotFound(f"no batch {batch_id}")
        return _batch(row)

    def batches(self, states: Iterable[BatchState] | None = None) -> list[Batch]:
        query = select(batches).order_by(batches.c.id)
        if states is not None:
            query = query.where(batches.c.state.in_([s.value for s in states]))
        with self.engine.connect() as conn:
            return [_batch(row) for row in conn.execute(query)]

    def jobs(self, batch_id: int) -> list[Job]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(jobs).where(jobs.c.batch_id == batch_id).order_by(jobs.c.idx)
            )
            return [_job(row) for row in rows]

    def segments(
        self, batch_id: int, states: Iterable[SegmentState] | None = None
    ) -> list[Segment]:
        query = (
            select(segments)
            .where(segments.c.batch_id == batch_id)
            .order_by(segments.c.job_id, segments.c.idx)
        )
        if states is not None:
            query = query.where(segments.c.state.in_([s.value for s in states]))
        with self.engine.connect() as conn:
            return [_segment(row) for row in conn.execute(query)]

    def attempts(self, segment_id: int) -> list[Attempt]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(attempts)
                .where(attempts.c.segment_id == segment_id)
                .order_by(attempts.c.number)
            )
            return [_attempt(row) for row in rows]

    def batch_attempts(self, batch_id: int) -> list[Attempt]:
        """Every attempt of a batch's segments, in dispatch order: a timeline's data."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(attempts)
                .join(segments, segments.c.id == attempts.c.segment_id)
                .where(segments.c.batch_id == batch_id)
                .order_by(attempts.c.dispatched_at, attempts.c.id)
            )
            return [_attempt(row) for row in rows]

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
        )

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

    # -------------------------------------------------------------- dispatching

    def dispatch(
        self,
        free: dict[str, int],
        now: float,
        batch_ids: Iterable[int] | None,
        choose: Callable[[Candidate], str | None],
        log_path: Callable[[Candidate], str] = lambda cand: "",
    ) -> tuple[list[tuple[Candidate, str]], list[Change]]:
        """Pick queued segments for free instances and record their dispatch, in one
        transaction.

        ``free`` is how many instances of each service are free in all; ``choose`` names the
        node for a candidate, or None to leave it queued this time. Order: batch priority
        (high first), then submission order, then job and segment order. Held, paused and
        not-yet-started (start_at) batches and waiting jobs give none. An assemble segment is
        given only once every work segment of its job is done.
        """
        wanted = {service: n for service, n in free.items() if n > 0}
        if not wanted:
            return [], []
        picked: list[tuple[Candidate, str]] = []
        with self._tx() as conn:
            for cand in _candidates(conn, wanted, now, batch_ids):
                node = choose(cand)
                if node is None:
                    continue
                wanted[cand.service] -= 1
                picked.append((cand, node))
            changes = _mark_dispatched(
                conn, [Dispatch(c.segment_id, n, now, log_path(c)) for c, n in picked]
            )
        return picked, changes

    def mark_dispatched(self, dispatches: Sequence[Dispatch]) -> list[Change]:
        """Segments handed to nodes: queued -> dispatched, a new attempt each."""
        with self._tx() as conn:
            return _mark_dispatched(conn, dispatches)

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
            rows = _segment_rows(conn, ids)
            pending = _Pending()
            state: dict[int, SegmentState] = {i: SegmentState(r.state) for i, r in rows.items()}

            def current(segment_id: int, attempt: int) -> _Row | None:
                row = rows.get(segment_id)
                if row is None or row.attempts != attempt:
                    return None  # about an attempt that was already settled
                if state[segment_id] not in ACTIVE_SEGMENT_STATES:
                    return None
                return row

            for s in started:
                row = current(s.segment_id, s.attempt)
                if row is None:
                    continue
                if state[row.id] is SegmentState.DISPATCHED:
                    state[row.id] = pending.move(row, SegmentState.RUNNING, changes)
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
            for r in results:
                row = current(r.segment_id, r.attempt)
                if row is None:
                    continue
                outcome = _attempt_outcome(r)
                values: dict[str, Any] = {
                    "ended_at": r.ended_at or time.time(),
                    "exit_code": r.exit_code,
                    "outcome": outcome,
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
                if state[row.id] is SegmentState.DISPATCHED and outcome in ("done", "failed"):
                    state[row.id] = pending.move(row, SegmentState.RUNNING, changes)

                def move(new: SegmentState, row: _Row = row) -> None:
                    state[row.id] = pending.move(row, new, changes, old=state[row.id])

                if outcome == "done":
                    move(SegmentState.DONE)
                    pending.segment(row.id, progress=1.0)
                elif outcome == "canceled":
                    move(SegmentState.CANCELED)
                    pending.segment(row.id, error=r.error)
                elif outcome == "lost" and row.batch_id in canceling:
                    move(SegmentState.CANCELED)
                    pending.segment(row.id, error="canceled")
                elif outcome == "lost":
                    move(SegmentState.QUEUED)
                    pending.segment(row.id, error=r.error, progress=0.0)
                else:
                    move(SegmentState.FAILED)
                    failures = row.failures + 1
                    pending.segment(row.id, error=r.error, failures=failures)
                    failed_nodes[row.job_id].add(r.node)
                    retry = failures <= job_rows[row.job_id].retries
                    if retry and row.batch_id not in canceling:
                        move(SegmentState.QUEUED)
                if state[row.id] in (SegmentState.FAILED, SegmentState.CANCELED) and (
                    row.kind == SegmentKind.WORK.value
                ):
                    unassemblable[row.job_id] = f"not assembled: a work segment {state[row.id]}"
                touched_jobs.add(row.job_id)
            pending.flush(conn)
            for job_id, names in failed_nodes.items():
                known = set(job_rows[job_id].failed_nodes or ())
                conn.execute(
                    update(jobs)
                    .where(jobs.c.id == job_id)
                    .values(failed_nodes=sorted(known | names))
                )
            for job_id, reason in unassemblable.items():
                for seg in conn.execute(_QUEUED_ASSEMBLY, {"job_id": job_id}):
                    _move(conn, seg, SegmentState.CANCELED, changes, error=reason)
            self._settle_jobs(conn, touched_jobs, changes)
        return changes

    # ------------------------------------------------------------ batch actions

    def pause_batch(self, batch_id: int) -> list[Change]:
        """Stop dispatching a batch's segments; those running finish."""
        batch = self.batch(batch_id)
        if batch.state in (BatchState.PAUSED, BatchState.HELD):
            return []  # already not dispatched
        _refuse_if_ended(batch, "paused")
        return self._set_batch_state(batch_id, BatchState.PAUSED)

    def resume_batch(self, batch_id: int) -> list[Change]:
        """Dispatch a paused or held batch again."""
        batch = self.batch(batch_id)
        if batch.state in (BatchState.QUEUED, BatchState.RUNNING):
            return []  # nothing to resume
        _refuse_if_ended(batch, "resumed (resubmit reruns what failed)")
        started = batch.started_at is not None and batch.state is BatchState.PAUSED
        return self._set_batch_state(batch_id, BatchState.RUNNING if started else BatchState.QUEUED)

    def _set_batch_state(self, batch_id: int, new: BatchState) -> list[Change]:
        changes: list[Change] = []
        with self._tx() as conn:
            row = _one_batch(conn, batch_id)
            if row.state != new.value:
                _move(conn, row, new, changes)
        return changes

    def set_priority(self, batch_id: int, priority: int) -> None:
        with self._tx() as conn:
            _one_batch(conn, batch_id)
            conn.execute(update(batches).where(batches.c.id == batch_id).values(priority=priority))

    def resubmit_batch(self, batch_id: int) -> list[Change]:
        """Queue a finished batch's failed and canceled segments again, with fresh retries.

        Done segments are kept: only what did not finish runs again.
        """
        changes: list[Change] = []
        with self._tx() as conn:
            batch = _one_batch(conn, batch_id)
            state = BatchState(batch.state)
            if state not in (BatchState.FAILED, BatchState.CANCELED):
                raise InvalidRequest(
                    f"batch {batch_id} is {state.value}: only a failed or canceled batch "
                    "can be resubmitted"
                )
            _requeue_unfinished(conn, batch_id, changes)
            _move(conn, batch, BatchState.QUEUED, changes, finished_at=None, canceling=False)
        return changes

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
                batch = _batch(row)
                if batch.state is BatchState.DONE:
                    break
                found.append(batch)
        return found

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
            conn.execute(update(batches).where(batches.c.id == batch_id).values(canceling=False))
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
        """
        changes: list[Change] = []
        with self._tx() as conn:
            if BatchState(_one_batch(conn, batch_id).state) in FINAL_BATCH_STATES:
                return []
            queued = conn.execute(
                select(segments)
                .where(segments.c.batch_id == batch_id)
                .where(segments.c.state == SegmentState.QUEUED.value)
            ).all()
            for row in queued:
                _move(conn, row, SegmentState.CANCELED, changes, error=reason)
            for job in conn.execute(select(jobs).where(jobs.c.batch_id == batch_id)):
                if job.state in (JobState.WAITING.value, JobState.QUEUED.value):
                    _move(conn, job, JobState.CANCELED, changes, error=reason)
            active = conn.execute(
                select(segments)
                .where(segments.c.batch_id == batch_id)
                .where(segments.c.state.in_([s.value for s in ACTIVE_SEGMENT_STATES]))
            ).all()
            conn.execute(update(batches).where(batches.c.id == batch_id).values(canceling=True))
            if not active:
                job_ids = {
                    row.id
                    for row in conn.execute(select(jobs.c.id).where(jobs.c.batch_id == batch_id))
                }
                self._settle_jobs(conn, job_ids, changes)
                batch = _one_batch(conn, batch_id)
                if BatchState(batch.state) not in FINAL_BATCH_STATES:
                    _move(conn, batch, BatchState.CANCELED, changes, finished_at=time.time())
            return [_segment(row) for row in active]

    def remove_batch(self, batch_id: int) -> set[str]:
        """Delete an ended batch with its jobs, segments and attempts, in one transaction.
        Returns the cluster-storage uploads its jobs used that no other batch's job uses
        (the caller may delete their files). A batch still going cannot be removed."""
        with self._tx() as conn:
            state = BatchState(_one_batch(conn, batch_id).state)
            if state not in FINAL_BATCH_STATES:
                raise InvalidRequest(
                    f"batch {batch_id} is {state.value}: cancel it before removing it"
                )
            uploads = {
                upload
                for (spec,) in conn.execute(select(jobs.c.spec).where(jobs.c.batch_id == batch_id))
                if (upload := ((spec or {}).get("storage") or {}).get("upload"))
            }
            segment_ids = select(segments.c.id).where(segments.c.batch_id == batch_id)
            conn.execute(delete(attempts).where(attempts.c.segment_id.in_(segment_ids)))
            conn.execute(delete(segments).where(segments.c.batch_id == batch_id))
            conn.execute(delete(jobs).where(jobs.c.batch_id == batch_id))
            conn.execute(delete(batches).where(batches.c.id == batch_id))
            if uploads:
                # Uploads are named by random ids: a spec that mentions one uses it.
                for (spec,) in conn.execute(select(jobs.c.spec)):
                    uploads.discard(((spec or {}).get("storage") or {}).get("upload"))
            return uploads

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

    # -------------------------------------------------------------- tokens

    def add_token(self, name: str, digest: str) -> int:
        with self._tx() as conn:
            return _insert(
                conn, tokens.insert().values(name=name, digest=digest, created_at=time.time())
            )

    def tokens(self) -> list[TokenInfo]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(tokens).order_by(tokens.c.id)).all()
        return [TokenInfo(r.id, r.name, r.created_at, r.last_used_at, r.revoked_at) for r in rows]

    def has_active_tokens(self) -> bool:
        with self.engine.connect() as conn:
            found = conn.execute(
                select(tokens.c.id).where(tokens.c.revoked_at.is_(None)).limit(1)
            ).first()
        return found is not None

    def token_for(self, digest: str) -> TokenInfo | None:
        """The active token with this digest, if there is one."""
        with self.engine.connect() as conn:
            r = conn.execute(
                select(tokens).where(tokens.c.digest == digest, tokens.c.revoked_at.is_(None))
            ).first()
        return None if r is None else TokenInfo(r.id, r.name, r.created_at, r.last_used_at, None)

    def token_used(self, token_id: int, at: float) -> None:
        with self._tx() as conn:
            conn.execute(update(tokens).where(tokens.c.id == token_id).values(last_used_at=at))

    def revoke_token(self, token_id: int) -> TokenInfo:
        with self._tx() as conn:
            done = conn.execute(
                update(tokens)
                .where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None))
                .values(revoked_at=time.time())
            )
            if done.rowcount == 0:
                raise NotFound(f"no active token {token_id}")
        return next(t for t in self.tokens() if t.id == token_id)

    def blocklisted_nodes(self, job_id: int, after: int) -> set[str]:
        """The nodes on which some segment of the job failed ``after`` times or more."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(attempts.c.node)
                .join(segments, segments.c.id == attempts.c.segment_id)
                .where(segments.c.job_id == job_id, attempts.c.outcome == "failed")
                .group_by(attempts.c.segment_id, attempts.c.node)
                .having(func.count() >= after)
            ).scalars()
            return set(rows)

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
            query = query.where(attempts.c.outcome == "done")
        with self.engine.connect() as conn:
            return list(dict.fromkeys(conn.execute(query).scalars()))

    def active_segments(self, batch_ids: Iterable[int] | None = None) -> list[Segment]:
        query = select(segments).where(
            segments.c.state.in_([s.value for s in ACTIVE_SEGMENT_STATES])
        )
        if batch_ids is not None:
            query = query.where(segments.c.batch_id.in_(list(batch_ids)))
        with self.engine.connect() as conn:
            return [_segment(row) for row in conn.execute(query)]

    def _settle_jobs(self, conn: Connection, job_ids: set[int], changes: list[Change]) -> None:
        """End the jobs whose segments all ended, release or cancel their dependents, and
        end the batches whose jobs all ended.
        """
        if not job_ids:
            return
        now = time.time()
        batch_ids: set[int] = set()
        job_state = select(jobs.c.id, jobs.c.state, jobs.c.batch_id)
        for job in conn.execute(job_state.where(jobs.c.id.in_(job_ids))).all():
            unfinished = conn.execute(_UNFINISHED_SEGMENT, {"job_id": job.id}).first()
            if unfinished is not None:
                continue  # the common case on a busy farm: answered from the index
            states = [
                SegmentState(state)
                for state in conn.execute(
                    select(segments.c.state).where(segments.c.job_id == job.id).distinct()
                ).scalars()
            ]
            outcome = job_outcome(states)
            if outcome is None or job.state == outcome.value:
                continue
            if JobState(job.state) in (JobState.WAITING, JobState.QUEUED) and (
                outcome is not JobState.CANCELED
            ):
                _move(conn, job, JobState.RUNNING, changes, started_at=now)
                job = conn.execute(job_state.where(jobs.c.id == job.id)).one()
            _move(conn, job, outcome, changes, finished_at=now)
            # Only a job that ended can release dependents or end its batch.
            batch_ids.add(job.batch_id)
        # Dependents: released when everything they wait for is done, canceled otherwise.
        for batch_id in batch_ids:
            all_jobs = conn.execute(select(jobs).where(jobs.c.batch_id == batch_id)).all()
            state_of = {job.id: JobState(job.state) for job in all_jobs}
            names = {job.id: job.name for job in all_jobs}
            for job in all_jobs:
                if job.state != JobState.WAITING.value:
                    continue
                deps = list(job.depends_on or ())
                bad = [d for d in deps if state_of[d] in (JobState.FAILED, JobState.CANCELED)]
                if bad:
                    reason = f"{names[bad[0]]} {state_of[bad[0]].value}"
                    for seg in conn.execute(
                        select(segments).where(segments.c.job_id == job.id)
                    ).all():
                        _move(conn, seg, SegmentState.CANCELED, changes, error=reason)
                    _move(conn, job, JobState.CANCELED, changes, error=reason, finished_at=now)
                    state_of[job.id] = JobState.CANCELED
                elif all(state_of[d] is JobState.DONE for d in deps):
                    _move(conn, job, JobState.QUEUED, changes)
                    state_of[job.id] = JobState.QUEUED
            outcome_b = batch_outcome(list(state_of.values()))
            if outcome_b is None:
                continue
            batch = conn.execute(select(batches).where(batches.c.id == batch_id)).one()
            if batch.state != outcome_b.value and BatchState(batch.state) not in (
                BatchState.DONE,
                BatchState.FAILED,
                BatchState.CANCELED,
            ):
                _move(conn, batch, outcome_b, changes, finished_at=now)

    # -------------------------------------------------------------------- nodes

    def upsert_node(self, node: Node) -> None:
        values = {
            "address": node.address,
            "services": node.services,
            "host": node.host,
            "cores": node.cores,
            "memory": node.memory,
            "fingerprint": node.fingerprint,
            "last_seen": node.last_seen,
        }
        with self._tx() as conn:
            row = conn.execute(select(nodes).where(nodes.c.name == node.name)).first()
            if row is None:
                conn.execute(
                    nodes.insert().values(name=node.name, state=node.state.value, **values)
                )
                return
            state = NodeState(row.state)
            # A node that comes back keeps being disabled if it was drained.
            if state is NodeState.OFFLINE and node.state is NodeState.ONLINE:
                check_transition(node.name, state, NodeState.ONLINE)
                values["state"] = NodeState.ONLINE.value
            conn.execute(update(nodes).where(nodes.c.name == node.name).values(**values))

    def mark_offline(self, name: str) -> None:
        """A node went away. A drained node stays drained (disabled) for when it returns."""
        with self._tx() as conn:
            conn.execute(
                update(nodes)
                .where(nodes.c.name == name)
                .where(nodes.c.state == NodeState.ONLINE.value)
                .values(state=NodeState.OFFLINE.value)
            )

    def set_node_state(self, name: str, new: NodeState) -> None:
        with self._tx() as conn:
            row = conn.execute(select(nodes).where(nodes.c.name == name)).first()
            if row is None:
                raise NotFound(f"no node {name}")
            if row.state == new.value:
                return
            check_transition(name, NodeState(row.state), new)
            conn.execute(update(nodes).where(nodes.c.name == name).values(state=new.value))

    def nodes(self) -> list[Node]:
        with self.engine.connect() as conn:
            return [_node(row) for row in conn.execute(select(nodes).order_by(nodes.c.name))]


# ------------------------------------------------------- statements of every tick
# Built once with bound parameters: the dispatcher runs them many times a second, and
# building a statement costs SQLAlchemy more than SQLite takes to run it.

_ACTIVE_OR_QUEUED = [SegmentState.QUEUED.value, *(s.value for s in ACTIVE_SEGMENT_STATES)]

_SEGMENT_STATES = select(
    segments.c.id,
    segments.c.state,
    segments.c.attempts,
    segments.c.failures,
    segments.c.job_id,
    segments.c.batch_id,
    segments.c.kind,
).where(segments.c.id.in_(bindparam("ids", expanding=True)))

_READY_BATCHES = (
    select(batches.c.id)
    .where(batches.c.state.in_([BatchState.QUEUED.value, BatchState.RUNNING.value]))
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
    )
    .where(jobs.c.batch_id == bindparam("batch_id"))
    .where(
        jobs.c.state.in_([JobState.QUEUED.value, JobState.RUNNING.value, JobState.ASSEMBLING.value])
    )
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

_UNFINISHED_SEGMENT = (
    select(segments.c.id)
    .where(segments.c.job_id == bindparam("job_id"))
    .where(segments.c.state.in_(_ACTIVE_OR_QUEUED))
    .limit(1)
)

_JOB_RETRIES = select(jobs.c.id, jobs.c.retries, jobs.c.failed_nodes).where(
    jobs.c.id.in_(bindparam("ids", expanding=True))
)

_NEW_ATTEMPT = attempts.insert()

_CANCELING_BATCHES = select(batches.c.id).where(
    batches.c.id.in_(bindparam("ids", expanding=True)), batches.c.canceling.is_(True)
)

_QUEUED_ASSEMBLY = (
    select(segments.c.id, segments.c.state, segments.c.batch_id)
    .where(segments.c.job_id == bindparam("job_id"))
    .where(segments.c.kind == SegmentKind.ASSEMBLE.value)
    .where(segments.c.state == SegmentState.QUEUED.value)
)

_RUNNING_JOBS_OF = (
    select(jobs.c.id, jobs.c.state, jobs.c.batch_id)
    .where(jobs.c.id.in_(bindparam("ids", expanding=True)))
    .where(jobs.c.state == JobState.RUNNING.value)
)

_QUEUED_JOBS_OF = (
    select(jobs.c.id, jobs.c.state, jobs.c.batch_id)
    .where(jobs.c.id.in_(bindparam("ids", expanding=True)))
    .where(jobs.c.state == JobState.QUEUED.value)
)

_QUEUED_BATCHES_OF = (
    select(batches.c.id, batches.c.state)
    .where(batches.c.id.in_(bindparam("ids", expanding=True)))
    .where(batches.c.state == BatchState.QUEUED.value)
)


# --------------------------------------------------------------------- helpers


def _refuse_if_ended(batch: Batch, action: str) -> None:
    if batch.state in FINAL_BATCH_STATES:
        raise InvalidRequest(f"batch {batch.id} is {batch.state.value}: it cannot be {action}")


def _requeue_unfinished(conn: Connection, batch_id: int, changes: list[Change]) -> None:
    """Queue a batch's failed and canceled segments and jobs again (fresh retries), jobs
    waiting again where what they depend on must rerun too. The batch's state is left as
    it is: only an ended batch moves (a resubmit does that)."""
    rerun = conn.execute(
        select(segments.c.id, segments.c.state, segments.c.batch_id)
        .where(segments.c.batch_id == batch_id)
        .where(segments.c.state.in_([SegmentState.FAILED.value, SegmentState.CANCELED.value]))
    ).all()
    for row in rerun:
        _move(conn, row, SegmentState.QUEUED, changes, failures=0, error="")
    job_rows = conn.execute(
        select(jobs.c.id, jobs.c.state, jobs.c.batch_id, jobs.c.depends_on)
        .where(jobs.c.batch_id == batch_id)
        .order_by(jobs.c.idx)
    ).all()
    state_of = {job.id: JobState(job.state) for job in job_rows}
    for job in job_rows:
        if state_of[job.id] not in (JobState.FAILED, JobState.CANCELED):
            continue
        # Jobs come in order, so what this one depends on is already settled.
        deps_done = all(state_of[d] is JobState.DONE for d in job.depends_on or ())
        new = JobState.QUEUED if deps_done else JobState.WAITING
        _move(conn, job, new, changes, failed_nodes=[], error="", finished_at=None)
        state_of[job.id] = new


def _one_batch(conn: Connection, batch_id: int) -> _Row:
    row = conn.execute(
        select(batches.c.id, batches.c.state, batches.c.started_at).where(batches.c.id == batch_id)
    ).first()
    if row is None:
        raise NotFound(f"no batch {batch_id}")
    return row


def _insert(conn: Connection, statement: Any) -> int:
    key = conn.execute(statement).inserted_primary_key
    assert key is not None
    return int(key[0])


def _candidates(
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
    for batch_id in ready.scalars().all():
        services = [s for s, n in wanted.items() if n > 0]
        job_rows = conn.execute(_READY_JOBS, {"batch_id": batch_id, "services": services}).all()
        for job in job_rows:
            if wanted.get(job.service, 0) <= 0:
                continue
            # One more than wanted, in case the assemble segment must wait.
            segment_rows = conn.execute(
                _QUEUED_SEGMENTS, {"job_id": job.id, "limit": wanted[job.service] + 1}
            ).all()
            failed_nodes = tuple(job.failed_nodes or ())
            for seg in segment_rows:
                if wanted.get(job.service, 0) <= 0:
                    break
                if seg.kind == SegmentKind.ASSEMBLE.value and not _work_done(conn, job.id):
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
                )
            if not any(n > 0 for n in wanted.values()):
                return


def _mark_dispatched(conn: Connection, dispatches: Sequence[Dispatch]) -> list[Change]:
    if not dispatches:
        return []
    changes: list[Change] = []
    rows = _segment_rows(conn, [d.segment_id for d in dispatches])
    pending = _Pending()
    for d in dispatches:
        row = rows[d.segment_id]
        pending.move(row, SegmentState.DISPATCHED, changes)
        pending.segment(row.id, node=d.node, attempts=row.attempts + 1, error="", progress=0.0)
    pending.flush(conn)
    conn.execute(
        _NEW_ATTEMPT,
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
    job_ids = {rows[d.segment_id].job_id for d in dispatches}
    for job in conn.execute(_QUEUED_JOBS_OF, {"ids": list(job_ids)}):
        _move(conn, job, JobState.RUNNING, changes, started_at=now)
    assembling = [
        rows[d.segment_id].job_id
        for d in dispatches
        if rows[d.segment_id].kind == SegmentKind.ASSEMBLE.value
    ]
    if assembling:
        for job in conn.execute(_RUNNING_JOBS_OF, {"ids": assembling}):
            _move(conn, job, JobState.ASSEMBLING, changes)
    batch_ids = {rows[d.segment_id].batch_id for d in dispatches}
    for batch in conn.execute(_QUEUED_BATCHES_OF, {"ids": list(batch_ids)}):
        _move(conn, batch, BatchState.RUNNING, changes, started_at=now)
    return changes


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
        elif state == SegmentState.RUNNING.value:
            done += float(partial or 0)
    return total, done


def _work_done(conn: Connection, job_id: int) -> bool:
    pending = conn.execute(
        select(func.count())
        .select_from(segments)
        .where(segments.c.job_id == job_id)
        .where(segments.c.kind == SegmentKind.WORK.value)
        .where(segments.c.state != SegmentState.DONE.value)
    ).scalar_one()
    return int(pending) == 0


def _segment_rows(conn: Connection, ids: Sequence[int]) -> dict[int, _Row]:
    """The state-keeping columns of segments by id (not their specs: those are not needed
    to move a segment, and decoding them is most of the cost of reading a row).
    """
    rows: dict[int, _Row] = {}
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        for row in conn.execute(_SEGMENT_STATES, {"ids": chunk}):
            rows[row.id] = row
    return rows


def _attempt_outcome(r: Result) -> str:
    if r.lost:
        return "lost"
    if r.canceled:
        return "canceled"
    return "done" if r.ok else "failed"


class _Pending:
    """Segment and attempt updates gathered during one transaction, written with one
    executemany per shape of update: a tick of hundreds of reports costs a few statements.
    """

    def __init__(self) -> None:
        self.segments: dict[int, dict[str, Any]] = {}
        self.attempts: dict[tuple[int, int], dict[str, Any]] = {}

    def move(
        self,
        row: _Row,
        new: SegmentState,
        changes: list[Change],
        *,
        old: SegmentState | None = None,
    ) -> SegmentState:
        """Move a segment to ``new``, checked by the model. ``old`` overrides the row's state
        when the segment already moved earlier in the same transaction. Returns ``new``.
        """
        current = SegmentState(row.state) if old is None else old
        check_transition(row.id, current, new)
        self.segment(row.id, state=new.value)
        changes.append(Change("segment", row.id, new.value, row.batch_id))
        return new

    def segment(self, segment_id: int, **values: Any) -> None:
        self.segments.setdefault(segment_id, {}).update(values)

    def attempt(self, segment_id: int, number: int, **values: Any) -> None:
        self.attempts.setdefault((segment_id, number), {}).update(values)

    def flush(self, conn: Connection) -> None:
        _bulk(
            conn,
            segments,
            [segments.c.id],
            [((sid,), values) for sid, values in self.segments.items()],
        )
        _bulk(
            conn,
            attempts,
            [attempts.c.segment_id, attempts.c.number],
            [(key, values) for key, values in self.attempts.items()],
        )
        self.segments.clear()
        self.attempts.clear()


# Bulk UPDATE statements by (table, key columns, updated columns): built once, so SQLAlchemy
# need not rebuild and re-key them every tick.
_BULK_UPDATES: dict[tuple[str, tuple[str, ...], tuple[str, ...]], Any] = {}


def _bulk(
    conn: Connection,
    table: Table,
    keys: list[Column[Any]],
    rows: list[tuple[tuple[Any, ...], dict[str, Any]]],
) -> None:
    """UPDATE many rows by key, one executemany per set of updated columns."""
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for key, values in rows:
        params = {f"k_{col.name}": value for col, value in zip(keys, key, strict=True)}
        params.update({f"v_{name}": value for name, value in values.items()})
        shapes[tuple(sorted(values))].append(params)
    for names, batch in shapes.items():
        cache_key = (table.name, tuple(col.name for col in keys), names)
        statement = _BULK_UPDATES.get(cache_key)
        if statement is None:
            statement = update(table)
            for col in keys:
                statement = statement.where(col == bindparam(f"k_{col.name}"))
            statement = statement.values({name: bindparam(f"v_{name}") for name in names})
            _BULK_UPDATES[cache_key] = statement
        conn.execute(statement, batch)


_STATE_TABLES: dict[type[enum.Enum], tuple[Table, str]] = {
    SegmentState: (segments, "segment"),
    JobState: (jobs, "job"),
    BatchState: (batches, "batch"),
}


def _move(
    conn: Connection,
    row: _Row,
    new: SegmentState | JobState | BatchState,
    changes: list[Change],
    **values: Any,
) -> None:
    """Move one segment, job or batch to ``new`` at once, checked by the model."""
    table, kind = _STATE_TABLES[type(new)]
    check_transition(row.id, type(new)(row.state), new)
    conn.execute(update(table).where(table.c.id == row.id).values(state=new.value, **values))
    batch_id = row.id if kind == "batch" else row.batch_id
    changes.append(Change(kind, row.id, new.value, batch_id))


def _batch(row: _Row) -> Batch:
    return Batch(
        id=row.id,
        name=row.name,
        owner=row.owner,
        priority=row.priority,
        state=BatchState(row.state),
        submitted_at=row.submitted_at,
        start_at=row.start_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        serialize=bool(row.serialize),
    )


def _job(row: _Row) -> Job:
    return Job(
        id=row.id,
        batch_id=row.batch_id,
        index=row.idx,
        name=row.name,
        job_type=row.job_type,
        service=row.service,
        state=JobState(row.state),
        spec=row.spec,
        retries=row.retries,
        timeout=row.timeout,
        depends_on=tuple(row.depends_on or ()),
        error=row.error,
        failed_nodes=tuple(row.failed_nodes or ()),
    )


def _segment(row: _Row) -> Segment:
    return Segment(
        id=row.id,
        job_id=row.job_id,
        batch_id=row.batch_id,
        index=row.idx,
        kind=SegmentKind(row.kind),
        state=SegmentState(row.state),
        label=row.label,
        spec=row.spec,
        frames=row.frames,
        attempts=row.attempts,
        failures=row.failures,
        node=row.node,
        error=row.error,
        progress=row.progress,
    )


def _attempt(row: _Row) -> Attempt:
    return Attempt(
        segment_id=row.segment_id,
        number=row.number,
        node=row.node,
        dispatched_at=row.dispatched_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        exit_code=row.exit_code,
        outcome=row.outcome,
        error=row.error,
        log_tail=row.log_tail,
        log_path=row.log_path,
        pid=row.pid,
        last_progress_at=row.last_progress_at,
    )


def _node(row: _Row) -> Node:
    return Node(
        name=row.name,
        address=row.address,
        state=NodeState(row.state),
        services=dict(row.services or {}),
        host=row.host,
        cores=row.cores,
        memory=row.memory,
        fingerprint=dict(row.fingerprint or {}),
        last_seen=row.last_seen,
    )
