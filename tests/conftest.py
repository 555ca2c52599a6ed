"""Shared fixtures: real stores, on an SQLite file and on a PostgreSQL server.

The ``store`` fixture runs each test twice, ``test_x[sqlite]`` and ``test_x[postgresql]``.
The PostgreSQL run needs a server named by ``QFARM_TEST_POSTGRES_URL`` (a SQLAlchemy URL,
``postgresql+psycopg://...``; ``scripts/pg-test-server`` starts a throwaway one). Without it
the PostgreSQL run is skipped, except under CI (``CI`` set), where it fails: CI must never
skip PostgreSQL silently. Each PostgreSQL test gets an empty schema of its own, dropped after.
Tests named ``test_sqlite_*`` are about SQLite itself and run on SQLite only.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy.engine import URL, Engine, make_url

from qfarm.store import Store

POSTGRES_URL_VAR = "QFARM_TEST_POSTGRES_URL"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[tuple[URL, Engine]]:
    """The server of QFARM_TEST_POSTGRES_URL, and an engine on it that makes the schemas."""
    raw = os.environ.get(POSTGRES_URL_VAR, "").strip()
    if not raw:
        if _in_ci():
            pytest.fail(
                f"{POSTGRES_URL_VAR} is not set, and CI is: the store tests must run on "
                "PostgreSQL in CI (.ci/run starts a server with scripts/pg-test-server)",
                pytrace=False,
            )
        pytest.skip(
            f"PostgreSQL store tests need {POSTGRES_URL_VAR}, e.g. "
            'eval "$(scripts/pg-test-server start)"'
        )
    url = make_url(raw)
    admin = create_engine(url)
    try:
        with admin.connect():
            pass
    except Exception as exc:
        admin.dispose()
        pytest.fail(
            f"cannot connect to {POSTGRES_URL_VAR}={url.render_as_string()}: {exc}", pytrace=False
        )
    try:
        yield url, admin
    finally:
        admin.dispose()


@pytest.fixture
def postgres_url(postgres_server: tuple[URL, Engine]) -> Iterator[str]:
    """A URL whose connections see only a new, empty schema (``search_path``)."""
    url, admin = postgres_server
    schema = f"t_{uuid.uuid4().hex[:16]}"
    with admin.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    options = url.query.get("options", "")
    if not isinstance(options, str):
        options = " ".join(options)
    options = f"{options} -csearch_path={schema}".strip()
    try:
        yield url.update_query_dict({"options": options}).render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            # A connection the test left open would hold locks: fail rather than hang.
            conn.exec_driver_sql("SET LOCAL lock_timeout = '10s'")
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'qfarm.db'}"
    else:
        if request.node.originalname.startswith("test_sqlite_"):
            pytest.skip("SQLite only: test_sqlite_* tests are about SQLite itself")
        url = request.getfixturevalue("postgres_url")
    s = Store(url)
    try:
        yield s
    finally:
        s.close()
