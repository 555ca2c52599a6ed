"""Writing state: every move of a segment, job or batch goes through here, checked against
the model's tables first, and is recorded as a :class:`~qfarm.store.records.Change`.

:class:`Pending` gathers a tick's segment and attempt updates and writes them with one
executemany per shape of update; :func:`move` writes one move at once.
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Column, Connection, Table, update

from qfarm.domain.model import BatchState, JobState, SegmentState, check_transition
from qfarm.store.bulk import update_many
from qfarm.store.records import Change
from qfarm.store.rows import Row
from qfarm.store.tables import attempts, batches, jobs, segments


class Pending:
    """Segment and attempt updates gathered during one transaction, written with one
    executemany per shape of update: a tick of hundreds of reports costs a few statements.
    """

    def __init__(self) -> None:
        self.segments: dict[int, dict[str, Any]] = {}
        self.attempts: dict[tuple[int, int], dict[str, Any]] = {}

    def move(
        self,
        row: Row,
        new: SegmentState,
        changes: list[Change],
        *,
        old: SegmentState | None = None,
        node: str | None = None,
    ) -> SegmentState:
        """Move a segment to ``new``, checked by the model. ``old`` overrides the row's state
        when the segment already moved earlier in the same transaction; ``node`` is the node
        it was dispatched to, for its change. Returns ``new``.
        """
        current = SegmentState(row.state) if old is None else old
        check_transition(row.id, current, new)
        self.segment(row.id, state=new.value)
        changes.append(Change("segment", row.id, new.value, row.batch_id, node))
        return new

    def move_all(
        self, rows: Sequence[Row], new: SegmentState, changes: list[Change], **values: Any
    ) -> None:
        """:meth:`move` each of ``rows`` to ``new``, writing ``values`` with it."""
        for row in rows:
            self.move(row, new, changes)
            self.segment(row.id, **values)

    def segment(self, segment_id: int, **values: Any) -> None:
        self.segments.setdefault(segment_id, {}).update(values)

    def attempt(self, segment_id: int, number: int, **values: Any) -> None:
        self.attempts.setdefault((segment_id, number), {}).update(values)

    def flush(self, conn: Connection) -> None:
        bulk(
            conn,
            segments,
            [segments.c.id],
            [((sid,), values) for sid, values in self.segments.items()],
        )
        bulk(
            conn,
            attempts,
            [attempts.c.segment_id, attempts.c.number],
            [(key, values) for key, values in self.attempts.items()],
        )
        self.segments.clear()
        self.attempts.clear()


def bulk(
    conn: Connection,
    table: Table,
    keys: list[Column[Any]],
    rows: list[tuple[tuple[Any, ...], dict[str, Any]]],
) -> None:
    """UPDATE many rows by key, one executemany per set of updated columns."""
    shapes: dict[tuple[str, ...], list[tuple[Any, ...]]] = defaultdict(list)
    for key, values in rows:
        names = tuple(sorted(values))
        shapes[names].append((*(values[name] for name in names), *key))
    key_names = [col.name for col in keys]
    for names, params in shapes.items():
        update_many(conn, table, key_names, names, params)


_STATE_TABLES: dict[type[enum.Enum], tuple[Table, str]] = {
    SegmentState: (segments, "segment"),
    JobState: (jobs, "job"),
    BatchState: (batches, "batch"),
}


def move(
    conn: Connection,
    row: Row,
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


def move_path(
    conn: Connection,
    row: Row,
    path: Sequence[SegmentState | JobState | BatchState],
    changes: list[Change],
    values: dict[SegmentState | JobState | BatchState, dict[str, Any]] | None = None,
) -> Row:
    """Move one row through ``path`` (what a lifecycle rule decided), step by step, each
    checked and recorded; ``values`` are written with the step they are keyed by. Returns
    the row as it stands after the last step (only its id, state and batch_id are kept)."""
    for new in path:
        move(conn, row, new, changes, **(values or {}).get(new, {}))
        row = Moved(row.id, new.value, row.id if isinstance(new, BatchState) else row.batch_id)
    return row


class Moved:
    """What :func:`move` needs of a row that already moved in this transaction."""

    def __init__(self, id: int, state: str, batch_id: int) -> None:
        self.id = id
        self.state = state
        self.batch_id = batch_id
