"""Client tokens: made at a controller's first start and shown once, kept as digests,
created, listed and revoked with `qfarm token`, checked on every API request."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from qfarm.domain.errors import NotFound
from qfarm.security import tokens
from qfarm.store import SCHEMA_VERSION, Store
from tests.controller.test_cluster import start_controller, stop
from tests.controller.test_reliability import record

pytestmark = pytest.mark.integration

QFARM = [sys.executable, "-m", "qfarm"]


def test_a_token_is_kept_only_as_its_digest(store: Store) -> None:
    token_id, secret = tokens.create(store, "wrangler")
    assert secret.startswith("qf_") and len(secret) > 40
    gate = tokens.Gate(store)
    assert gate.required()
    assert gate.allows(secret)
    assert not gate.allows(secret + "x") and not gate.allows("")
    listed = store.tokens()
    assert [(t.id, t.name) for t in listed] == [(token_id, "wrangler")]
    assert listed[0].last_used_at is not None
    assert secret not in repr(listed)
    store.revoke_token(token_id)
    assert not tokens.Gate(store).allows(secret)
    assert not tokens.Gate(store).required()  # no active token left: an open cluster again
    with pytest.raises(NotFound):
        store.revoke_token(token_id)


def test_a_store_of_schema_1_is_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    Store(url).close()
    engine = create_engine(url)
    with engine.begin() as conn:  # make it look like a store of the first release
        conn.execute(text("DROP TABLE tokens"))
        conn.execute(text("UPDATE qfarm_schema SET version = 1"))
    engine.dispose()
    store = Store(url)
    try:
        tokens.create(store, "after the upgrade")
        assert [t.name for t in store.tokens()] == ["after the upgrade"]
    finally:
        store.close()
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version FROM qfarm_schema")).scalar() == SCHEMA_VERSION
    engine.dispose()


def test_a_shared_token_is_compared_safely_whatever_the_request_holds(store: Store) -> None:
    gate = tokens.Gate(store, shared="s3cret")
    assert gate.required()
    assert gate.allows("s3cret")
    assert not gate.allows("s3cre\u00e9") and not gate.allows("")


def qfarm(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("QFARM_TOKEN", None)
    return subprocess.run(
        [*QFARM, *args, "--data-dir", str(data_dir)], capture_output=True, text=True, env=env,
        timeout=60,
    )  # fmt: skip


def test_first_start_makes_a_token_shown_once_and_qfarm_token_manages_them(
    tmp_path: Path,
) -> None:
    controller, url = start_controller(tmp_path, "--require-token")
    data_dir = tmp_path / "controller"
    try:
        assert controller.stdout is not None
        line = controller.stdout.readline()
        assert line.startswith("client token, shown only this once")
        first = line.split()[-1]
        api = url + "/api/v1/batches"
        refused = httpx.get(api)
        assert refused.status_code == 401 and "token" in refused.json()["error"]
        assert httpx.get(api, headers={"Authorization": f"Bearer {first}"}).status_code == 200

        made = qfarm("token", "create", "ci", "--json", data_dir=data_dir)
        assert made.returncode == 0, made.stderr
        second = json.loads(made.stdout)
        assert httpx.get(api, headers={"Authorization": f"Bearer {second['token']}"}).is_success

        listed = qfarm("token", "list", "--json", data_dir=data_dir)
        rows = json.loads(listed.stdout)
        assert [r["name"] for r in rows] == ["first", "ci"]
        assert first not in listed.stdout and second["token"] not in listed.stdout
        assert rows[0]["last_used_at"] is not None

        revoked = qfarm("token", "revoke", str(second["id"]), data_dir=data_dir)
        assert revoked.returncode == 0, revoked.stderr
        gone = httpx.get(api, headers={"Authorization": f"Bearer {second['token']}"})
        assert gone.status_code == 401
        again = qfarm("token", "revoke", str(second["id"]), data_dir=data_dir)
        assert again.returncode == 4 and "no active token" in again.stderr  # not found

        # Who did it, in the audit log: the local user for the token commands, and the
        # requests refused for want of a token (reads are not logged).
        httpx.post(api, json={"jobs": []})
        logged = subprocess.run(
            [*QFARM, "audit", "--json", "--controller", url, "--token", first],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert logged.returncode == 0, logged.stderr
        entries = [(e["action"], e["target"], e["outcome"]) for e in json.loads(logged.stdout)]
        assert entries == [
            ("batch.submit", "", 401),
            ("token.revoke", f"token {second['id']}", 200),
            ("token.create", f"token {second['id']}", 200),
        ]
        assert json.loads(logged.stdout)[1]["actor"].startswith("local ")
    finally:
        stop(controller)
    # A second start shows no token: the first was shown once.
    controller, url = start_controller(tmp_path, "--require-token")
    try:
        assert controller.stdout is not None
        os.set_blocking(controller.stdout.fileno(), False)
        assert "token" not in (controller.stdout.readline() or "")
        assert httpx.get(url + "/api/v1/batches").status_code == 401
    finally:
        stop(controller)
    record("requests without a client token, or with a revoked one",
           "401 with a JSON message; tokens kept only as SHA-256 digests, shown once",
           None, "nothing")  # fmt: skip


def test_a_store_of_schema_5_gains_token_scopes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = Store(url)
    tokens.create(store, "from before")
    store.close()
    engine = create_engine(url)
    with engine.begin() as conn:  # a store of schema 5: tokens had no scope
        conn.execute(text("ALTER TABLE tokens DROP COLUMN scope"))
        conn.execute(text("UPDATE qfarm_schema SET version = 5"))
    engine.dispose()
    store = Store(url)
    try:
        tokens.create(store, "scraper", tokens.METRICS_SCOPE)
        assert [(t.name, t.scope) for t in store.tokens()] == [
            ("from before", "client"),
            ("scraper", "metrics"),
        ]
    finally:
        store.close()


def test_token_create_takes_a_scope_and_list_shows_it(tmp_path: Path) -> None:
    made = qfarm("token", "create", "prometheus", "--scope", "metrics", "--json", data_dir=tmp_path)
    assert made.returncode == 0, made.stderr
    assert json.loads(made.stdout)["scope"] == "metrics"
    bad = qfarm("token", "create", "x", "--scope", "admin", data_dir=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines()[-1].endswith("is not one of client, metrics")
    listed = json.loads(qfarm("token", "list", "--json", data_dir=tmp_path).stdout)
    assert [(t["name"], t["scope"]) for t in listed] == [("prometheus", "metrics")]
