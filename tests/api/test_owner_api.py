"""A batch that names no owner (the Batch Monitor's form sends none) is owned by who sent
it: the client token's name, or on a cluster without tokens web@ the address it came from;
one that names its owner keeps it."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from qfarm.api.app import create_app
from qfarm.controller.service import Controller
from qfarm.security.tokens import digest
from qfarm.store import Store
from tests.helpers import in_process_api

pytestmark = pytest.mark.integration

HELD: dict[str, Any] = {
    "hold": True,
    "jobs": [{"type": "command", "spec": {"command": ["true"]}}],
}


def test_an_unnamed_owner_is_the_address_on_an_open_cluster(tmp_path: Path) -> None:
    async def scenario() -> list[str]:
        async with in_process_api(tmp_path) as c:
            unnamed = (await c.post("/batches", json=HELD)).json()["owner"]
            named = (await c.post("/batches", json={**HELD, "owner": "ana@edit-3"})).json()
            return [unnamed, named["owner"]]

    assert asyncio.run(scenario()) == ["web@127.0.0.1", "ana@edit-3"]


def test_an_unnamed_owner_is_the_tokens_name(tmp_path: Path) -> None:
    async def scenario() -> str:
        store = Store(f"sqlite:///{tmp_path / 'qfarm.db'}")
        store.add_token("ana", digest("ana-secret"))
        controller = await Controller.start(store, tmp_path)
        try:
            transport = httpx.ASGITransport(app=create_app(controller))
            headers = {"Authorization": "Bearer ana-secret"}
            async with httpx.AsyncClient(
                transport=transport, base_url="http://t/api/v1", headers=headers
            ) as c:
                return str((await c.post("/batches", json=HELD)).json()["owner"])
        finally:
            await controller.close()
            store.close()

    assert asyncio.run(scenario()) == "ana"
