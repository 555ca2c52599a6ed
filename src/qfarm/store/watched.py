"""Files watch folders took (the ``watched_files`` table): claimed before their batch is
submitted, so that a restarted watcher, or two on one folder, never submit a file twice.

A claim is one statement, an INSERT that adds the row only when no row of that watch has
the same path, size and mtime; and the controller makes every claim from its one event
loop (API handlers and in-controller watchers alike), so no two claims interleave.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from sqlalchemy import Connection, and_, exists, literal, select, update

from qfarm.domain.errors import NotFound
from qfarm.domain.watched import (
    AlreadyTaken,
    FileVersion,
    WatchedFile,
    WatchedState,
    check_watched_change,
)
from qfarm.store.base import StoreBase
from qfarm.store.rows import Row
from qfarm.store.tables import watched_files


class Watched(StoreBase):
    def claim_watched(self, watch: str, version: FileVersion) -> WatchedFile:
        """Claim a file version for ``watch``. Raises AlreadyTaken when it was claimed
        before, whatever became of it since."""
        now = time.time()
        same = and_(
            watched_files.c.watch == watch,
            watched_files.c.path == version.path,
            watched_files.c.size == version.size,
            watched_files.c.mtime == version.mtime,
        )
        values = select(
            literal(watch),
            literal(version.path),
            literal(version.size),
            literal(version.mtime),
            literal(WatchedState.CLAIMED.value),
            literal(now),
            literal(""),
        ).where(~exists().where(same))
        columns = ["watch", "path", "size", "mtime", "state", "taken_at", "error"]
        adding = watched_files.insert().from_select(columns, values)
        with self._tx() as conn:
            # RETURNING, not the rowcount: drivers count an INSERT ... SELECT differently.
            added = conn.execute(adding.returning(watched_files.c.id)).first()
            if added is None:
                earlier = conn.execute(select(watched_files).where(same)).first()
                raise AlreadyTaken(_taken_message(watch, version, earlier))
            return _record(_one(conn, int(added[0])))

    def record_watched(
        self, file_id: int, state: WatchedState, batch_id: int | None = None, error: str = ""
    ) -> WatchedFile:
        """Move a watched file on: submitted (with its batch), done, failed or refused
        (with the error). Raises NotFound, IllegalTransition, InvalidRequest."""
        with self._tx() as conn:
            old = _one(conn, file_id)
            named = batch_id if batch_id is not None else old.batch_id
            check_watched_change(file_id, WatchedState(old.state), state, named)
            changes: dict[str, object] = {"state": state.value}
            if batch_id is not None:
                changes["batch_id"] = batch_id
            if error:
                changes["error"] = error
            conn.execute(
                update(watched_files).where(watched_files.c.id == file_id).values(**changes)
            )
            return _record(_one(conn, file_id))

    def watched_files(
        self, watch: str, states: Iterable[WatchedState] | None = None
    ) -> list[WatchedFile]:
        """The files ``watch`` took, oldest first (only those in ``states``, if given)."""
        query = select(watched_files).where(watched_files.c.watch == watch)
        if states is not None:
            query = query.where(watched_files.c.state.in_([s.value for s in states]))
        with self.engine.connect() as conn:
            return [_record(row) for row in conn.execute(query.order_by(watched_files.c.id))]


def _one(conn: Connection, file_id: int) -> Row:
    row = conn.execute(select(watched_files).where(watched_files.c.id == file_id)).first()
    if row is None:
        raise NotFound(f"no watched file {file_id}")
    return row


def _taken_message(watch: str, version: FileVersion, earlier: Row) -> str:
    what = f"watch {watch}: {version.path} ({version.size} bytes) was taken before"
    if earlier is None:
        return what
    batch = f", batch {earlier.batch_id}" if earlier.batch_id is not None else ""
    return f"{what} (watched file {earlier.id}: {earlier.state}{batch}); touch it to submit again"


def _record(row: Row) -> WatchedFile:
    return WatchedFile(
        id=row.id,
        watch=row.watch,
        version=FileVersion(row.path, int(row.size), float(row.mtime)),
        state=WatchedState(row.state),
        taken_at=row.taken_at,
        batch_id=row.batch_id,
        error=row.error or "",
    )
