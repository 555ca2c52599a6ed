"""The watched-file routes: a claim, its refusal when made twice (409), records, and the
list a restarted watcher reads, every error a JSON body."""

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

CLAIM = {"watch": "drop", "path": "clip.mov", "size": 10, "mtime": 1700000000.5}


def test_claim_record_and_list_over_http(tmp_path: Path) -> None:
    async def scenario() -> list[tuple[int, Any]]:
        store = Store(f"sqlite:///{tmp_path / 'qfarm.db'}")
        controller = await Controller.start(store, tmp_path)
        seen: list[tuple[int, Any]] = []
        try:
            transport = httpx.ASGITransport(app=create_app(controller))
            async with httpx.AsyncClient(transport=transport, base_url="http://t/api/v1") as c:

                async def call(method: str, path: str, **kwargs: Any) -> Any:
                    answer = await c.request(method, path, **kwargs)
                    seen.append((answer.status_code, answer.json()))
                    return answer.json()

                claimed = await call("POST", "/watched", json=CLAIM)
                await call("POST", "/watched", json=CLAIM)
                await call("POST", f"/watched/{claimed['id']}", json={"state": "submitted"})
                await call(
                    "POST", f"/watched/{claimed['id']}", json={"state": "submitted", "batch_id": 4}
                )
                await call("POST", f"/watched/{claimed['id']}", json={"state": "claimed"})
                await call("POST", "/watched/999", json={"state": "done", "batch_id": 4})
                await call("POST", f"/watched/{claimed['id']}", json={"state": "gone"})
                await call("GET", "/watched", params={"watch": "drop"})
        finally:
            await controller.close()
            store.close()
        return seen

    seen = asyncio.run(scenario())
    statuses = [status for status, _ in seen]
    assert statuses == [201, 409, 400, 200, 409, 404, 400, 200]
    assert seen[0][1]["state"] == "claimed" and seen[0][1]["path"] == "clip.mov"
    assert "was taken before" in seen[1][1]["error"]
    assert "must name its batch" in seen[2][1]["error"]
    assert seen[3][1]["batch_id"] == 4
    assert "cannot go from submitted to claimed" in seen[4][1]["error"]
    assert seen[5][1] == {"error": "no watched file 999"}
    assert seen[6][1]["error"].startswith("state:")
    listed = seen[7][1]
    assert [(f["path"], f["state"], f["batch_id"]) for f in listed] == [
        ("clip.mov", "submitted", 4)
    ]
