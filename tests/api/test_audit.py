"""The audit log: every change made through the API is recorded with who made it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from qfarm.api import audit
from qfarm.api.app import create_app
from qfarm.controller.service import Controller
from qfarm.security import tokens
from qfarm.store import AuditEntry, Store

pytestmark = pytest.mark.integration

HELD = {"name": "held", "hold": True, "jobs": [{"type": "command", "spec": {"command": ["true"]}}]}


def test_every_route_that_changes_something_is_named_in_the_log(tmp_path: Path) -> None:
    async def routes() -> set[tuple[str, str]]:
        store = Store(f"sqlite:///{tmp_path / 'qfarm.db'}")
        controller = await Controller.start(store, tmp_path)
        try:
            paths = create_app(controller).openapi()["paths"]
            return {
                (method.upper(), path)
                for path, operations in paths.items()
                for method in operations
                if method.upper() not in audit.READING
            }
        finally:
            await controller.close()
            store.close()

    def schema_form(routes: set[tuple[str, str]]) -> set[tuple[str, str]]:
        return {(method, path.replace(":path}", "}")) for method, path in routes}

    changing = asyncio.run(routes())
    assert changing - schema_form({*audit.ACTIONS, *audit.UNRECORDED}) == set()
    assert schema_form(set(audit.ACTIONS)) - changing == set(), "actions of routes now gone"


def test_actions_are_logged_with_the_tokens_name_and_refusals_too(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[Any], list[Any], list[Any]]:
        store = Store(f"sqlite:///{tmp_path / 'qfarm.db'}")
        _, secret = tokens.create(store, "wrangler")
        controller = await Controller.start(store, tmp_path)
        try:
            transport = httpx.ASGITransport(app=create_app(controller))
            auth = {"Authorization": f"Bearer {secret}"}
            async with httpx.AsyncClient(
                transport=transport, base_url="http://t/api/v1", headers=auth
            ) as c:
                batch = (await c.post("/batches", json=HELD)).json()["id"]
                await c.put(f"/batches/{batch}/priority", json={"priority": "high"})
                await c.post(f"/batches/{batch}/cancel")
                assert (await c.post(f"/batches/{batch}/pause")).status_code == 400
                assert (await c.post("/nodes/ghost/disable")).status_code == 404
                await c.get("/batches")  # a read: not logged
                stranger = await c.post("/batches", json=HELD, headers={"Authorization": ""})
                assert stranger.status_code == 401
                everything = (await c.get("/audit")).json()
                cancels = (await c.get("/audit", params={"action": "batch.cancel"})).json()
                nodes = (await c.get("/audit", params={"action": "node"})).json()
        finally:
            await controller.close()
            store.close()
        return everything, cancels, nodes

    everything, cancels, nodes = asyncio.run(scenario())
    seen = [(e["actor"], e["action"], e["target"], e["outcome"]) for e in reversed(everything)]
    assert seen == [
        ("wrangler", "batch.submit", "batch 1", 201),
        ("wrangler", "batch.priority", "batch 1", 200),
        ("wrangler", "batch.cancel", "batch 1", 200),
        ("wrangler", "batch.pause", "batch 1", 400),  # refused: an ended batch
        ("wrangler", "node.disable", "node ghost", 404),
        ("unauthenticated", "batch.submit", "", 401),
    ]
    assert everything[-1]["detail"]["token"] is not None and everything[0]["at"] > 0
    assert [e["action"] for e in cancels] == ["batch.cancel"]
    assert [e["target"] for e in nodes] == ["node ghost"]


def test_the_log_is_filtered_by_time_actor_and_family(store: Store) -> None:
    for at, actor, action in ((10.0, "a", "batch.submit"), (20.0, "b", "batch.cancel"),
                              (30.0, "a", "node.disable"), (40.0, "a", "batches.x")):  # fmt: skip
        store.record_action(AuditEntry(actor, action, "t", 200, at=at))
    assert [e.at for e in store.audit_entries()] == [40.0, 30.0, 20.0, 10.0]
    assert [e.at for e in store.audit_entries(since=25.0)] == [40.0, 30.0]
    assert [e.at for e in store.audit_entries(actor="a", action="batch")] == [10.0]
    assert [e.at for e in store.audit_entries(limit=1)] == [40.0]
    assert store.prune_audit(before=25.0) == 2
    assert [e.at for e in store.audit_entries()] == [40.0, 30.0]
