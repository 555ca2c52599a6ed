"""``POST /batches/{id}/suspend`` and ``/resume`` on an embedded cluster with real
processes: the batch answer counts the suspended segments and offers resume; an ended batch
is refused with a 400 and a one-line JSON error."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from qfarm.api.app import create_app
from tests.helpers import embedded, wait_until

pytestmark = pytest.mark.integration

COUNTER = "i=0; while [ $i -lt 3000 ]; do echo $i; i=$((i+1)); sleep 0.1; done"


def test_suspend_and_resume_through_the_api(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path, nodes=1, instances=2) as controller:
            transport = httpx.ASGITransport(app=create_app(controller))
            async with httpx.AsyncClient(transport=transport, base_url="http://t/api/v1") as c:
                spec = {"command": ["sh", "-c", COUNTER], "frames": "1-3", "cwd": str(tmp_path)}
                job = {"type": "command", "spec": spec}
                batch = (await c.post("/batches", json={"jobs": [job]})).json()
                path = f"/batches/{batch['id']}"

                async def running() -> bool:
                    return bool((await c.get(path)).json()["segments"]["running"] == 2)

                await wait_until(running, what="two segments running")
                assert "suspend" in (await c.get(path)).json()["actions"]

                suspended = await c.post(f"{path}/suspend")
                assert suspended.status_code == 200, suspended.text
                body = suspended.json()
                assert body["state"] == "paused"
                assert (body["segments"]["suspended"], body["segments"]["running"]) == (2, 0)
                assert body["segments"]["queued"] == 1  # paused: the third waits
                assert body["actions"] == ["suspend", "resume", "cancel", "priority"]
                states = {s["state"] for s in (await c.get(f"{path}/segments")).json()}
                assert states == {"suspended", "queued"}

                resumed = (await c.post(f"{path}/resume")).json()
                assert resumed["state"] == "running"
                assert resumed["segments"]["suspended"] == 0
                assert resumed["segments"]["running"] == 2

                await c.post(f"{path}/cancel")
                await asyncio.wait_for(controller.wait(batch["id"]), 30)
                refused = await c.post(f"{path}/suspend")
                assert refused.status_code == 400
                assert refused.json() == {
                    "error": f"batch {batch['id']} is canceled: it cannot be suspended"
                }

    asyncio.run(scenario())
