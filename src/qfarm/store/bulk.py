"""Many rows written at once, past SQLAlchemy's per-row parameter work.

A tick that fills a farm writes thousands of rows of the same shape (a dispatch: one UPDATE
and one new attempt per segment; a round of results: one or two UPDATEs each). Through
``Connection.execute(statement, [params, ...])`` SQLAlchemy builds and processes every
parameter set in Python, which at 4,800 rows cost more than SQLite took to write them; and
psycopg's executemany still sends and prepares one statement per row. Here the statement is
written once per table and shape, and each value goes through its column type's bind
processor when it has one (JSON, say), as SQLAlchemy would:

- SQLite (and drivers with positional placeholders): one DBAPI executemany of plain tuples;
- PostgreSQL: one statement, the rows as one text array per column, unnested and cast back
  to each column's type (``UPDATE ... FROM unnest(...)``, ``INSERT ... SELECT``).

Drivers with named placeholders (none that qfarm supports) go the plain SQLAlchemy way.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Connection, Table, bindparam, insert, update
from sqlalchemy.engine import Dialect

Processor = Callable[[Any], Any] | None

_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


@dataclass(frozen=True)
class _Statement:
    sql: str
    processors: tuple[Processor, ...]  # per column, in order; None: passed as is
    arrays: bool = False  # one array per column (PostgreSQL's unnest), not a row per row


_STATEMENTS: dict[tuple[str, str, str, tuple[str, ...], tuple[str, ...]], _Statement] = {}


def update_many(
    conn: Connection,
    table: Table,
    keys: Sequence[str],
    names: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
) -> None:
    """``UPDATE table SET names... WHERE keys...`` once per row; each row is the values of
    ``names`` then of ``keys``, in that order."""
    if not rows:
        return
    shape = ("update", table.name, conn.dialect.name, tuple(names), tuple(keys))
    found = _STATEMENTS.get(shape)
    if found is None and _arrays(conn):
        quote = conn.dialect.identifier_preparer.quote
        columns = [*names, *keys]
        sets = ", ".join(f"{quote(n)} = {_cast(conn, table, n, i)}" for i, n in enumerate(names))
        where = " AND ".join(
            f"{quote(table.name)}.{quote(k)} = {_cast(conn, table, k, len(names) + i)}"
            for i, k in enumerate(keys)
        )
        found = _Statement(
            f"UPDATE {quote(table.name)} SET {sets} FROM {_unnest(len(columns))} WHERE {where}",
            _processors(conn.dialect, table, columns, arrays=True),
            arrays=True,
        )
        _STATEMENTS[shape] = found
    if found is None:
        mark = _PLACEHOLDERS.get(conn.dialect.paramstyle)
        if mark is None:
            _update_plainly(conn, table, keys, names, rows)
            return
        quote = conn.dialect.identifier_preparer.quote
        sets = ", ".join(f"{quote(n)} = {mark}" for n in names)
        where = " AND ".join(f"{quote(k)} = {mark}" for k in keys)
        found = _Statement(
            f"UPDATE {quote(table.name)} SET {sets} WHERE {where}",
            _processors(conn.dialect, table, [*names, *keys]),
        )
        _STATEMENTS[shape] = found
    _execute(conn, found, rows)


def insert_many(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """``INSERT INTO table`` each of ``rows``, which all name the same columns; a column
    they leave out gets the database's value, so one with a Python-side default (which
    only SQLAlchemy would fill in) sends them the plain SQLAlchemy way."""
    if not rows:
        return
    names = tuple(rows[0])
    shape = ("insert", table.name, conn.dialect.name, names, ())
    found = _STATEMENTS.get(shape)
    left = [c for c in table.columns if c.default is not None and c.name not in names]
    if found is None and _arrays(conn) and not left:
        quote = conn.dialect.identifier_preparer.quote
        typed = ", ".join(_cast(conn, table, n, i) for i, n in enumerate(names))
        found = _Statement(
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) "
            f"SELECT {typed} FROM {_unnest(len(names))}",
            _processors(conn.dialect, table, names, arrays=True),
            arrays=True,
        )
        _STATEMENTS[shape] = found
    if found is None:
        mark = _PLACEHOLDERS.get(conn.dialect.paramstyle)
        if mark is None or left:
            conn.execute(insert(table), list(rows))
            return
        quote = conn.dialect.identifier_preparer.quote
        found = _Statement(
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(n) for n in names)}) "
            f"VALUES ({', '.join(mark for _ in names)})",
            _processors(conn.dialect, table, names),
        )
        _STATEMENTS[shape] = found
    _execute(conn, found, [tuple(row[name] for name in names) for row in rows])


def _update_plainly(
    conn: Connection,
    table: Table,
    keys: Sequence[str],
    names: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
) -> None:
    """:func:`update_many` through SQLAlchemy, for a driver with named placeholders."""
    statement = update(table)
    for i, key in enumerate(keys):
        statement = statement.where(table.c[key] == bindparam(f"k{i}"))
    statement = statement.values({name: bindparam(f"v{i}") for i, name in enumerate(names)})
    params = []
    for row in rows:
        param = {f"v{i}": value for i, value in enumerate(row[: len(names)])}
        param.update({f"k{i}": value for i, value in enumerate(row[len(names) :])})
        params.append(param)
    conn.execute(statement, params)


def _arrays(conn: Connection) -> bool:
    """Whether rows go as one array per column, unnested by the database: on PostgreSQL a
    single statement, where psycopg's executemany sends (and prepares) one per row."""
    return conn.dialect.name == "postgresql" and conn.dialect.paramstyle in ("format", "pyformat")


def _unnest(count: int) -> str:
    """``count`` text arrays as rows of a derived table ``v`` with columns c0, c1..."""
    arrays = ", ".join("%s::text[]" for _ in range(count))
    return f"unnest({arrays}) AS v({', '.join(f'c{i}' for i in range(count))})"


def _cast(conn: Connection, table: Table, name: str, i: int) -> str:
    """Column ``i`` of ``v`` as the column's own type (the arrays carry text)."""
    return f"v.c{i}::{table.c[name].type.compile(dialect=conn.dialect)}"


def _execute(conn: Connection, found: _Statement, rows: Sequence[tuple[Any, ...]]) -> None:
    processed = _processed(found.processors, rows)
    if not found.arrays:
        conn.exec_driver_sql(found.sql, processed)
        return
    columns = [[_text(value) for value in column] for column in zip(*processed, strict=True)]
    conn.exec_driver_sql(found.sql, tuple(columns))


def _text(value: Any) -> str | None:
    """A value as PostgreSQL reads it back as its column's type (floats exactly: repr is
    the shortest string that reads back as the same double)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _processors(
    dialect: Dialect, table: Table, names: Sequence[str], arrays: bool = False
) -> tuple[Processor, ...]:
    """Each column's bind processor on this dialect (None where values go as they are).
    In arrays, a JSON value goes as its text: psycopg's own processor wraps it in an
    object for its adapter, which an array of text has no place for."""
    out: list[Processor] = []
    for name in names:
        kind = table.c[name].type
        if arrays and isinstance(kind, JSON):
            out.append(getattr(dialect, "_json_serializer", None) or json.dumps)
        else:
            out.append(kind.dialect_impl(dialect).bind_processor(dialect))
    return tuple(out)


def _processed(
    processors: tuple[Processor, ...], rows: Sequence[tuple[Any, ...]]
) -> Sequence[tuple[Any, ...]]:
    """The rows with each value through its column's processor, where it has one."""
    active = [(i, p) for i, p in enumerate(processors) if p is not None]
    if not active:
        return rows
    out = []
    for row in rows:
        values = list(row)
        for i, process in active:
            values[i] = process(values[i])
        out.append(tuple(values))
    return out
