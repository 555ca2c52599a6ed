"""``GET /stats`` and ``GET /batches/{id}/durations`` on an embedded cluster whose command
jobs really run on two nodes: the done counts and busy instances agree with the attempts
the store holds, every node and the farm's instances are there, one duration per segment
(of one job with ?job=), and bad windows are a 400 with a one-line error."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from qfarm.api.app import create_app
from tests.helpers import embedded, wait_until

pytestmark = pytest.mark.integration


def command(name: str, frames: str, cwd: Path) -> dict[str, Any]:
    spec = {"command": ["sh", "-c", "echo frame {start}"], "frames": frames, "cwd": str(cwd)}
    return {"name": name, "jobs": [{"spec": spec}]}


def test_stats_and_durations_of_batches_that_ran(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path, nodes=2, instances=2) as controller:
            transport = httpx.ASGITransport(app=create_app(controller))
            async with httpx.AsyncClient(transport=transport, base_url="http://t/api/v1") as c:
                body = command("six", "1-6", tmp_path)
                body["jobs"].append({"name": "two", "spec": command("", "1-2", tmp_path)
                                     ["jobs"][0]["spec"]})  # fmt: skip
                batch = (await c.post("/batches", json=body)).json()["id"]

                async def ended() -> bool:
                    return bool((await c.get(f"/batches/{batch}")).json()["state"] == "done")

                await wait_until(ended, timeout=60, what="the batch to end")
                times = controller.store.attempt_times(batch)

                found = (await c.get("/stats", params={"window": 600, "step": 10})).json()
                assert len(found["times"]) == 60 == round((found["end"] - found["start"]) / 10)
                assert found["instances"] == {"command": 4}
                [service] = found["services"]
                assert service["service"] == "command" and service["instances"] == 4
                done = [t for t in times if t.outcome == "done"]
                assert service["total_done"] == sum(service["done"]) == len(done) == 8
                assert len(service["busy"]) == 60
                assert 1 <= service["peak_busy"] <= 4
                # Busy instance-seconds: what the attempts held, per service and per node.
                held = sum(t.ended_at - t.dispatched_at for t in times if t.ended_at)
                passed = [min(10.0, max(0.0, found["as_of"] - t)) for t in found["times"]]
                by_service = sum(b * p for b, p in zip(service["busy"], passed, strict=True))
                assert by_service == pytest.approx(held, rel=1e-3, abs=1e-2)
                nodes = {n["node"]: n for n in found["nodes"]}
                assert set(nodes) == {"node-1", "node-2"}
                for name, node in nodes.items():
                    assert (node["state"], node["instances"]) == ("online", 2)
                    on_it = sum(t.ended_at - t.dispatched_at for t in times
                                if t.ended_at and t.node == name)  # fmt: skip
                    busy = sum(b * p for b, p in zip(node["busy"], passed, strict=True))
                    assert busy == pytest.approx(on_it, rel=1e-3, abs=1e-2)
                    assert node["load"] == [pytest.approx(b / 2, abs=1e-4) for b in node["busy"]]

                durations = (await c.get(f"/batches/{batch}/durations")).json()
                segments = (await c.get(f"/batches/{batch}/segments")).json()
                assert len(durations["segments"]) == len(segments) == 8
                assert {d["outcome"] for d in durations["segments"]} == {"done"}
                assert sum(n["segments"] for n in durations["nodes"]) == 8
                by_id = {t.segment_id: t for t in times}
                for d in durations["segments"]:
                    t = by_id[d["segment_id"]]
                    assert d["node"] == t.node and d["attempt"] == t.number
                    assert d["seconds"] == pytest.approx(t.ended_at - (t.started_at or 0))
                jobs = (await c.get(f"/batches/{batch}")).json()["jobs"]
                second = jobs[1]["id"]
                one = (await c.get(f"/batches/{batch}/durations", params={"job": second})).json()
                assert one["job_id"] == second
                assert [d["index"] for d in one["segments"]] == [1, 2]

                missing = await c.get("/batches/999/durations")
                assert missing.status_code == 404 and "999" in missing.json()["error"]
                other = await c.get(f"/batches/{batch}/durations", params={"job": 999})
                assert other.status_code == 404 and "no job 999" in other.json()["error"]

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("params", "said"),
    [
        ({"window": 0}, "window"),
        ({"step": 0.5}, "step"),
        ({"window": "an hour"}, "window"),
        ({"window": 86400, "step": 1}, "buckets"),
        ({"window": 30, "step": 60}, "shorter than its step"),
        ({"window": 30 * 86400, "step": 3600}, "window"),
    ],
)
def test_windows_that_cannot_be_read_are_a_400(
    tmp_path: Path, params: dict[str, Any], said: str
) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path, nodes=1, instances=1) as controller:
            transport = httpx.ASGITransport(app=create_app(controller))
            async with httpx.AsyncClient(transport=transport, base_url="http://t/api/v1") as c:
                answer = await c.get("/stats", params=params)
                assert answer.status_code == 400, answer.text
                assert said in answer.json()["error"]
                assert "\n" not in answer.json()["error"]

    asyncio.run(scenario())
