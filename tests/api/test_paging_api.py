"""The API pages its listings: ?offset&limit, X-Total-Count for every page, bad paging a
JSON 400, and a timeline's catch-up read of attempts with ?since and the controller's clock
in X-Qfarm-Time."""

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
    "jobs": [{"type": "command", "spec": {"command": ["true"], "frames": "1-25"}}],
}


def test_segments_batches_and_attempts_are_paged(tmp_path: Path) -> None:
    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with in_process_api(tmp_path) as c:
            batch_id = (await c.post("/batches", json=HELD)).json()["id"]
            await c.post("/batches", json=HELD)
            base = f"/batches/{batch_id}/segments"
            whole = (await c.get(base)).json()
            seen["whole"] = [s["id"] for s in whole]
            seen["no total unpaged"] = (await c.get(base)).headers.get("X-Total-Count")
            pages, totals = [], set()
            for offset in (0, 10, 20):
                answer = await c.get(base, params={"offset": offset, "limit": 10})
                pages.append([s["id"] for s in answer.json()])
                totals.add(answer.headers["X-Total-Count"])
            seen["pages"], seen["totals"] = pages, totals
            listed = await c.get("/batches", params={"offset": 1, "limit": 5})
            seen["batches"] = (
                [b["id"] for b in listed.json()],
                listed.headers["X-Total-Count"],
            )
            bad = await c.get(base, params={"limit": 0})
            seen["bad"] = (bad.status_code, bad.json())
            attempts = await c.get(f"/batches/{batch_id}/attempts", params={"since": 0})
            seen["attempts"] = (attempts.json(), float(attempts.headers["X-Qfarm-Time"]))
        return seen

    seen = asyncio.run(scenario())
    assert len(seen["whole"]) == 25 and seen["no total unpaged"] is None
    assert [len(p) for p in seen["pages"]] == [10, 10, 5]
    assert [sid for page in seen["pages"] for sid in page] == seen["whole"]
    assert seen["totals"] == {"25"}
    assert seen["batches"][1] == "2" and len(seen["batches"][0]) == 1
    status, body = seen["bad"]
    assert status == 400 and "limit" in body["error"]
    attempts, clock = seen["attempts"]
    assert attempts == [] and clock > 1.7e9
