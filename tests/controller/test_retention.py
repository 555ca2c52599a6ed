"""Retention: ended batches go once kept long enough, in the background or by hand, and
never one that is still going."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from qfarm.api.app import create_app
from qfarm.config import logs_dir
from qfarm.controller.retention import LONGEST_SWEEP, SHORTEST_SWEEP, sweep_interval
from qfarm.controller.service import Controller
from qfarm.store import Store
from tests.controller.test_reliability import record
from tests.helpers import wait_until

HELD = {"hold": True, "jobs": [{"type": "command", "spec": {"command": ["true"]}}]}


def test_the_sweep_runs_at_a_tenth_of_the_time_kept_within_bounds() -> None:
    assert sweep_interval(3600) == 360
    assert sweep_interval(2) == SHORTEST_SWEEP
    assert sweep_interval(30 * 86400) == sweep_interval(None) == LONGEST_SWEEP


@pytest.mark.integration
def test_ended_batches_are_removed_by_hand_and_once_kept_long_enough(tmp_path: Path) -> None:
    async def scenario() -> dict[str, Any]:
        store = Store(f"sqlite:///{tmp_path / 'qfarm.db'}")
        controller = await Controller.start(store, tmp_path)
        seen: dict[str, Any] = {}
        try:
            transport = httpx.ASGITransport(app=create_app(controller))
            async with httpx.AsyncClient(transport=transport, base_url="http://t/api/v1") as c:
                ids = [(await c.post("/batches", json=HELD)).json()["id"] for _ in range(4)]
                for batch_id in ids[:3]:
                    await c.post(f"/batches/{batch_id}/cancel")
                    logs = logs_dir(tmp_path) / f"batch-{batch_id}"
                    logs.mkdir(parents=True, exist_ok=True)
                    (logs / "attempt.log").write_text("kept until the batch goes\n")
                for key, dry in (("dry", True), ("by_hand", False)):
                    asked = {"older_than": 0, "dry_run": dry}
                    seen[key] = (await c.delete("/batches", params=asked)).json()
                # ids[3] is held: still going, so neither way takes it.
                new = [(await c.post("/batches", json=HELD)).json()["id"] for _ in range(2)]
                await c.post(f"/batches/{new[0]}/cancel")
                seen["no_setting"] = (await c.get("/settings/retention")).json()
                seen["set"] = (await c.put("/settings/retention", json={"keep": 1})).json()
                seen["refused"] = (await c.put("/settings/retention", json={"keep": 0})).status_code

                async def swept() -> bool:
                    listed = (await c.get("/batches")).json()
                    return [b["id"] for b in listed] == [ids[3], new[1]]

                await wait_until(swept, timeout=30, what="the sweep to remove the ended batch")
                seen["logs"] = sorted(p.name for p in logs_dir(tmp_path).glob("batch-*"))
                seen["audit"] = [(e["actor"], e["action"]) for e in (await c.get("/audit")).json()]
        finally:
            await controller.close()
            store.close()
        seen["ids"], seen["new"] = ids, new
        return seen

    seen = asyncio.run(scenario())
    ids, new = seen["ids"], seen["new"]
    assert seen["dry"] == {"removed": ids[:3], "dry_run": True}
    assert seen["by_hand"] == {"removed": ids[:3], "dry_run": False}
    assert seen["no_setting"] == {"keep": None} and seen["set"] == {"keep": 1.0}
    assert seen["refused"] == 400
    assert seen["logs"] == []
    record("ended batches past their time (--keep; PUT /api/v1/settings/retention)",
           "removed with their logs by the background sweep, or by DELETE /batches?older_than; "
           "a held batch, still going, left alone by both",
           None, "nothing still going")  # fmt: skip
    # By hand through the API, and by the sweep, whose actor is retention itself.
    assert seen["audit"][:2] == [("retention", "batch.remove"), ("anonymous", "setting.retention")]
    assert ("anonymous", "batch.remove") in seen["audit"]
    del new


def qfarm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "qfarm", *args], capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["remove"], "name the batches to remove, or give --older-than"),
        (["remove", "3", "--older-than", "1d"], "not both"),
        (["remove", "--dry-run", "3"], "--dry-run goes with --older-than"),
        (["remove", "--older-than", "soon", "-c", "http://127.0.0.1:9"], "not a duration"),
        (["controller", "--keep", "0.5s", "--port", "0"], "under a second"),
        (["controller", "--node-timeout", "2s", "--port", "0"], "'2s' is under 5 s"),
        (["controller", "--node-timeout", "soon", "--port", "0"], "not a duration"),
    ],
)
def test_retention_usage_errors_exit_2_naming_the_problem(args: list[str], message: str) -> None:
    done = qfarm(*args)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
