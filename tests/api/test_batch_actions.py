"""Every batch object the API returns names the actions the batch allows now."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from qfarm.api.app import create_app
from qfarm.controller.service import Controller
from qfarm.store import Store

pytestmark = pytest.mark.integration

HELD = {
    "name": "held",
    "hold": True,
    "jobs": [{"type": "command", "spec": {"command": ["true"], "frames": "1-2"}}],
}


def test_batch_list_and_detail_carry_the_allowed_actions(tmp_path: Path) -> None:
    async def scenario() -> list[Any]:
        store = Store(f"sqlite:///{tmp_path / 'qfarm.db'}")
        controller = await Controller.start(store, tmp_path)
        seen: list[Any] = []
        try:
            transport = httpx.ASGITransport(app=create_app(controller))
            async with httpx.AsyncClient(transport=transport, base_url="http://t/api/v1") as c:
                submitted = (await c.post("/batches", json=HELD)).json()
                seen.append(submitted["actions"])
                seen.append((await c.get("/batches")).json()[0]["actions"])
                seen.append((await c.get(f"/batches/{submitted['id']}")).json()["actions"])
                await c.post(f"/batches/{submitted['id']}/cancel")
                seen.append((await c.get(f"/batches/{submitted['id']}")).json()["actions"])
        finally:
            await controller.close()
            store.close()
        return seen

    held = ["resume", "cancel", "priority"]
    assert asyncio.run(scenario()) == [held, held, held, ["resubmit", "remove"]]
