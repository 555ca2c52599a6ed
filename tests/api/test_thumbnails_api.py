"""The thumbnail routes on an embedded cluster whose command job writes real PNG frames
(ffmpeg): more frames than a job keeps pictures of, so the newest are listed and the older
ones are gone; each job's newest; the bytes with cache headers; the farm's latest; and
every picture gone with its batch."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from qfarm.api.app import create_app
from qfarm.media.tool import ffmpeg_path
from qfarm.store.thumbnails import KEEP_PER_JOB
from tests.helpers import embedded, wait_until

pytestmark = pytest.mark.integration

FRAMES = KEEP_PER_JOB + 4


def frames_job(cwd: Path) -> dict[str, Any]:
    argv = [ffmpeg_path(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
            "-i", "testsrc2=s=64x36", "-frames:v", "1", "-metadata", "title={frame}",
            "{output}"]  # fmt: skip
    spec = {"command": argv, "frames": f"1-{FRAMES}", "segment_size": 1,
            "output": "f_{frame}.png", "cwd": str(cwd)}  # fmt: skip
    return {"name": "frames", "jobs": [{"name": "frames", "spec": spec, "retries": 0}]}


def test_a_job_keeps_its_newest_pictures_served_with_cache_headers(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path, nodes=1, instances=2) as controller:
            transport = httpx.ASGITransport(app=create_app(controller))
            async with httpx.AsyncClient(transport=transport, base_url="http://t/api/v1") as c:
                batch = (await c.post("/batches", json=frames_job(tmp_path))).json()
                batch_id = batch["id"]

                async def ended() -> bool:
                    got = (await c.get(f"/batches/{batch_id}")).json()
                    return bool(got["state"] in ("done", "failed", "canceled"))

                await wait_until(ended, timeout=120, what="the frames batch to end")
                assert (await c.get(f"/batches/{batch_id}")).json()["state"] == "done"
                body = (await c.get(f"/batches/{batch_id}/thumbnails")).json()
                thumbs = body["thumbnails"]
                assert body["keep_per_job"] == KEEP_PER_JOB == len(thumbs)
                ids = [t["id"] for t in thumbs]
                assert ids == sorted(ids, reverse=True)
                assert body["latest_by_job"] == {str(thumbs[0]["job_id"]): ids[0]}
                assert {(t["width"], t["height"]) for t in thumbs} == {(64, 36)}
                assert all(t["label"].startswith("frame ") for t in thumbs)
                # The oldest pictures were dropped for newer ones: gone from the API too.
                assert min(ids) > 1 and (await c.get("/thumbnails/1")).status_code == 404

                small = await c.get(f"/thumbnails/{ids[0]}")
                assert small.status_code == 200 and small.content[:2] == b"\xff\xd8"
                assert small.headers["content-type"] == "image/jpeg"
                assert "immutable" in small.headers["cache-control"]
                assert small.headers["etag"] == f'"{ids[0]}-small"'
                full = await c.get(f"/thumbnails/{ids[0]}?size=full")
                assert full.status_code == 200 and full.headers["etag"] == f'"{ids[0]}-full"'

                latest = (await c.get("/thumbnails/latest")).json()["thumbnails"]
                assert [t["id"] for t in latest] == [ids[0]]

                assert (await c.delete(f"/batches/{batch_id}")).status_code == 200
                gone = await c.get(f"/thumbnails/{ids[0]}")
                assert gone.status_code == 404 and gone.json()["error"] == f"no thumbnail {ids[0]}"
                assert (await c.get("/thumbnails/latest")).json()["thumbnails"] == []

    asyncio.run(scenario())
