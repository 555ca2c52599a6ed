"""The store's connection: its engine, its schema check, and its transactions.

Every part of :class:`~qfarm.store.Store` (batches, dispatch, reports, nodes, tokens) builds
on this one base, so they all share one engine and one idea of a transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, create_engine, event, inspect, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError

from qfarm.domain.errors import InvalidRequest
from qfarm.store.tables import MIGRATIONS, SCHEMA_VERSION, metadata, schema


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class StoreBase:
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
