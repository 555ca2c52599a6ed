"""``GET /failures`` on an embedded cluster whose command jobs really fail: two errors
grouped by exit code and last log line, by node and by job; the window and the bound;
a resubmit from the group's retryable batches adds its new failures."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from qfarm.api.app import create_app
from tests.helpers import embedded, wait_until

pytestmark = pytest.mark.integration

FINAL = ("done", "failed", "canceled")


def failing(name: str, script: str, frames: str, retries: int, cwd: Path) -> dict[str, Any]:
    spec = {"command": ["sh", "-c", script], "frames": frames, "cwd": str(cwd)}
    return {"name": name, "jobs": [{"name": name, "spec": spec, "retries": retries}]}


def test_failures_grouped_by_error_node_and_job(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path, nodes=1, instances=2) as controller:
            transport = httpx.ASGITransport(app=create_app(controller))
            async with httpx.AsyncClient(transport=transport, base_url="http://t/api/v1") as c:

                async def submit_and_end(body: dict[str, Any]) -> int:
                    batch = (await c.post("/batches", json=body)).json()

                    async def ended() -> bool:
                        got = (await c.get(f"/batches/{batch['id']}")).json()
                        return bool(got["state"] in FINAL)

                    await wait_until(ended, timeout=60, what=f"batch {body['name']} to end")
                    return int(batch["id"])

                disk_full = "echo rendering; echo 'ERROR: disk full'; exit 3"
                disk = await submit_and_end(failing("disk", disk_full, "1-2", 0, tmp_path))
                crash = await submit_and_end(
                    failing("crash", "echo 'render crashed'; echo; exit 7", "1", 2, tmp_path)
                )
                fine = await submit_and_end(failing("fine", "echo ok", "1", 0, tmp_path))

                by_error = (await c.get("/failures")).json()
                assert by_error["by"] == "error" and not by_error["truncated"]
                assert by_error["total"] == 5
                groups = {g["title"]: g for g in by_error["groups"]}
                assert set(groups) == {"exit 7: render crashed", "exit 3: ERROR: disk full"}
                crashed = groups["exit 7: render crashed"]
                assert by_error["groups"][0]["title"] == crashed["title"]  # the largest first
                assert (crashed["count"], crashed["batches"], crashed["nodes"]) == (
                    3, [crash], ["node-1"])  # fmt: skip
                assert len(crashed["segments"]) == 1
                assert [a["number"] for a in crashed["attempts"]] == [3, 2, 1]
                full = groups["exit 3: ERROR: disk full"]
                assert (full["count"], full["exit_code"]) == (2, 3)
                assert full["line"] == "ERROR: disk full"
                assert full["retryable"] == [disk]
                assert [j["name"] for j in full["jobs"]] == ["disk"]
                # Each attempt carries the address of its log, which answers.
                a = full["attempts"][0]
                log = await c.get(
                    f"/batches/{a['batch_id']}/segments/{a['segment_id']}/attempts/{a['number']}/log"
                )
                assert "ERROR: disk full" in log.text
                assert fine not in {b for g in by_error["groups"] for b in g["batches"]}

                by_node = (await c.get("/failures", params={"by": "node"})).json()
                assert [(g["node"], g["count"]) for g in by_node["groups"]] == [("node-1", 5)]
                by_job = (await c.get("/failures", params={"by": "job"})).json()
                assert sorted(g["count"] for g in by_job["groups"]) == [2, 3]

                # The window and the bound.
                later = (await c.get("/failures", params={"since": time.time() + 60})).json()
                assert later["groups"] == [] and later["total"] == 0
                one = (await c.get("/failures", params={"limit": 1})).json()
                assert one["total"] == 1 and one["truncated"] is True
                bad = await c.get("/failures", params={"by": "colour"})
                assert bad.status_code == 400 and "error" in bad.json()

                # Retry all of a group: its retryable batches resubmitted, and failing
                # again, show in the group.
                for batch_id in full["retryable"]:
                    assert (await c.post(f"/batches/{batch_id}/resubmit")).status_code == 200

                async def failed_again() -> bool:
                    got = (await c.get("/failures")).json()
                    counts = {g["title"]: g["count"] for g in got["groups"]}
                    return counts.get("exit 3: ERROR: disk full") == 4

                await wait_until(failed_again, timeout=60, what="the resubmitted batch to fail")

    asyncio.run(scenario())
