"""POST /batches/{id}/segments/resubmit and .../cancel: chosen segments of an ended batch
run again, those of a batch still going are canceled; what cannot be is a JSON 4xx that
names it, and the audit log records who asked."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import in_process_api

pytestmark = pytest.mark.integration

HELD = {
    "name": "held",
    "hold": True,
    "jobs": [{"type": "command", "spec": {"command": ["true"], "frames": "1-3"}}],
}


def test_chosen_segments_of_a_canceled_batch_run_again(tmp_path: Path) -> None:
    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with in_process_api(tmp_path) as c:
            batch_id = (await c.post("/batches", json=HELD)).json()["id"]
            ids = [s["id"] for s in (await c.get(f"/batches/{batch_id}/segments")).json()]
            route = f"/batches/{batch_id}/segments/resubmit"

            async def ask(body: Any) -> tuple[int, Any]:
                answer = await c.post(route, json=body)
                return answer.status_code, answer.json()

            seen["held"] = await ask({"segments": ids[:1]})
            await c.post(f"/batches/{batch_id}/cancel")
            seen["empty"] = await ask({"segments": []})
            seen["unknown"] = await ask({"segments": [ids[0], 424242]})
            seen["chosen"] = await ask({"segments": ids[:1]})
            segments = (await c.get(f"/batches/{batch_id}/segments")).json()
            seen["states"] = [s["state"] for s in segments]
            seen["audit"] = [e["action"] for e in (await c.get("/audit")).json()]
        return seen

    seen = asyncio.run(scenario())
    status, body = seen["held"]
    assert status == 400 and "only a failed or canceled batch" in body["error"]
    status, body = seen["empty"]
    assert status == 400 and "segments" in body["error"]
    status, body = seen["unknown"]
    assert status == 404 and "has no segment 424242" in body["error"]
    status, body = seen["chosen"]
    assert status == 200 and body["state"] == "queued"
    assert seen["states"] == ["queued", "canceled", "canceled"]
    assert "batch.resubmit_segments" in seen["audit"]


def test_chosen_segments_of_a_held_batch_are_canceled(tmp_path: Path) -> None:
    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with in_process_api(tmp_path) as c:
            batch_id = (await c.post("/batches", json=HELD)).json()["id"]
            ids = [s["id"] for s in (await c.get(f"/batches/{batch_id}/segments")).json()]
            route = f"/batches/{batch_id}/segments/cancel"
            answer = await c.post(route, json={"segments": ids[1:]})
            seen["canceled"] = (answer.status_code, answer.json()["state"])
            again = await c.post(route, json={"segments": ids[1:2]})
            seen["again"] = (again.status_code, again.json())
            segments = (await c.get(f"/batches/{batch_id}/segments")).json()
            seen["states"] = [s["state"] for s in segments]
            seen["audit"] = [e["action"] for e in (await c.get("/audit")).json()]
        return seen

    seen = asyncio.run(scenario())
    assert seen["canceled"] == (200, "held")
    status, body = seen["again"]
    assert status == 400 and "(canceled)" in body["error"] and "has ended" in body["error"]
    assert seen["states"] == ["queued", "canceled", "canceled"]
    assert "batch.cancel_segments" in seen["audit"]
