"""An attempt's log through the API, on an embedded cluster with a real process: downloaded
whole as a named file (``?download=1``), and summed up (``.../log/summary``: its lines and
the first that looks like an error, by qfarm.domain.loglines), over the file the controller
reads or, where it cannot, the tail the store keeps."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from qfarm.api.app import create_app
from tests.helpers import embedded

pytestmark = pytest.mark.integration

# 300 lines of progress, a count of none that is no error (line 11), and an error after
# the 150th: line 152 of 302. The command then fails.
NOISY = (
    "i=1; while [ $i -le 300 ]; do echo progress $i; "
    "[ $i -eq 10 ] && echo 'checked: 0 errors'; "
    "[ $i -eq 150 ] && echo 'Error: frame 150 is missing'; "
    "i=$((i+1)); done; exit 3"
)


async def ended_attempt(c: httpx.AsyncClient, controller: Any, cwd: Path) -> tuple[str, Any]:
    job = {"type": "command", "retries": 0,
           "spec": {"command": ["sh", "-c", NOISY], "cwd": str(cwd)}}  # fmt: skip
    batch = (await c.post("/batches", json={"jobs": [job]})).json()
    await asyncio.wait_for(controller.wait(batch["id"]), 60)
    [segment] = (await c.get(f"/batches/{batch['id']}/segments")).json()
    [attempt] = (await c.get(f"/batches/{batch['id']}/segments/{segment['id']}/attempts")).json()
    base = f"/batches/{batch['id']}/segments/{segment['id']}/attempts/{attempt['number']}"
    return base, {"batch": batch, "segment": segment, "attempt": attempt}


def test_a_log_downloads_whole_under_a_name_that_says_whose_it_is(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path, nodes=1, instances=1) as controller:
            transport = httpx.ASGITransport(app=create_app(controller))
            async with httpx.AsyncClient(transport=transport, base_url="http://t/api/v1") as c:
                base, seen = await ended_attempt(c, controller, tmp_path)
                on_disk = Path(seen["attempt"]["log_path"]).read_bytes()

                saved = await c.get(f"{base}/log", params={"download": "1"})
                assert saved.status_code == 200
                name = (
                    f"batch-{seen['batch']['id']}-segment-{seen['segment']['index']}"
                    f"-attempt-{seen['attempt']['number']}.log"
                )
                assert saved.headers["content-disposition"] == f'attachment; filename="{name}"'
                assert saved.headers["content-type"].startswith("text/plain")
                assert saved.content == on_disk
                # Read in the page, it is the same text with no attachment.
                shown = await c.get(f"{base}/log")
                assert "content-disposition" not in shown.headers
                assert shown.content == on_disk

    asyncio.run(scenario())


def test_the_summary_names_the_first_error_line_of_the_file_or_of_the_kept_tail(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path, nodes=1, instances=1) as controller:
            transport = httpx.ASGITransport(app=create_app(controller))
            async with httpx.AsyncClient(transport=transport, base_url="http://t/api/v1") as c:
                base, seen = await ended_attempt(c, controller, tmp_path)
                log = Path(seen["attempt"]["log_path"])
                size = log.stat().st_size

                summary = (await c.get(f"{base}/log/summary")).json()
                assert summary == {
                    "lines": 302,
                    "bytes": size,
                    "first_error_line": 152,  # after line 10's "0 errors", which is none
                    "first_error": "Error: frame 150 is missing",
                    "whole": True,
                }
                lines = log.read_text().split("\n")
                assert lines[summary["first_error_line"] - 1] == summary["first_error"]

                # Where the controller cannot read the file, the tail the store keeps is
                # what the page shows, and what the summary counts.
                log.unlink()
                tail = seen["attempt"]["log_tail"]
                kept = (await c.get(f"{base}/log/summary")).json()
                assert tail.splitlines()[-1] == "progress 300"  # the last 20 lines: no error
                assert kept == {
                    "lines": 20,
                    "bytes": len(tail.encode()),
                    "first_error_line": None,
                    "first_error": "",
                    "whole": False,
                }
                downloaded = await c.get(f"{base}/log", params={"download": "true"})
                assert downloaded.text == tail
                assert downloaded.headers["content-disposition"].startswith("attachment;")

                missing = await c.get(base.rsplit("/", 1)[0] + "/9/log/summary")
                assert missing.status_code == 404
                assert "has no attempt 9" in missing.json()["error"]

    asyncio.run(scenario())
