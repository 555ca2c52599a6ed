"""Reading rows: the model's objects from result rows, and the few lookups every part of
the store makes (one batch's state, segments' state-keeping columns, a new row's id), and
the values of a new segment row."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, bindparam, select

from qfarm.domain.errors import NotFound
from qfarm.domain.model import (
    Attempt,
    AttemptOutcome,
    Batch,
    BatchState,
    Job,
    JobState,
    Node,
    NodeState,
    Segment,
    SegmentKind,
    SegmentPlan,
    SegmentState,
)
from qfarm.domain.requirements import Requirements
from qfarm.store.tables import batches, segments

# A result row; SQLAlchemy's typed rows add nothing where columns are picked per query.
Row = Any

# Built once with bound parameters: the dispatcher runs it many times a second, and
# building a statement costs SQLAlchemy more than SQLite takes to run it.
SEGMENT_STATES = select(
    segments.c.id,
    segments.c.state,
    segments.c.attempts,
    segments.c.failures,
    segments.c.job_id,
    segments.c.batch_id,
    segments.c.kind,
    segments.c.canceling,
).where(segments.c.id.in_(bindparam("ids", expanding=True)))


def one_batch(conn: Connection, batch_id: int) -> Row:
    """A batch's id, state, start time and cancel flag; NotFound if there is none."""
    row = conn.execute(
        select(batches.c.id, batches.c.state, batches.c.started_at, batches.c.canceling).where(
            batches.c.id == batch_id
        )
    ).first()
    if row is None:
        raise NotFound(f"no batch {batch_id}")
    return row


def insert(conn: Connection, statement: Any) -> int:
    key = conn.execute(statement).inserted_primary_key
    assert key is not None
    return int(key[0])


def segment_rows(conn: Connection, ids: Sequence[int]) -> dict[int, Row]:
    """The state-keeping columns of segments by id (not their specs: those are not needed
    to move a segment, and decoding them is most of the cost of reading a row).
    """
    rows: dict[int, Row] = {}
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        for row in conn.execute(SEGMENT_STATES, {"ids": chunk}):
            rows[row.id] = row
    return rows


def to_batch(row: Row) -> Batch:
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


def to_job(row: Row) -> Job:
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
        requirements=Requirements.from_dict(row.requirements),
    )


def to_segment(row: Row) -> Segment:
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


def to_attempt(row: Row) -> Attempt:
    return Attempt(
        segment_id=row.segment_id,
        number=row.number,
        node=row.node,
        dispatched_at=row.dispatched_at,
        started_at=row.started_at,
        ended_at=row.ended_at,
        exit_code=row.exit_code,
        outcome=None if row.outcome is None else AttemptOutcome(row.outcome),
        error=row.error,
        log_tail=row.log_tail,
        log_path=row.log_path,
        pid=row.pid,
        last_progress_at=row.last_progress_at,
    )


def to_node(row: Row) -> Node:
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
        tags=tuple(row.tags or ()),
        resources={str(k): int(v) for k, v in (row.resources or {}).items()},
    )


def new_segment(job_id: int, batch_id: int, plan: SegmentPlan) -> dict[str, Any]:
    """The values of a queued, untried segment row for ``plan``."""
    return {
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
