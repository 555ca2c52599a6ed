"""Dask runs quiet between tasks on a farm: no profiler, seldom ticks (engine/settings.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import dask
import pytest

from tests.helpers import embedded

pytestmark = pytest.mark.integration


def worker_settings(dask_worker: Any) -> dict[str, Any]:
    """What a node's worker process runs with: its configuration and its timers."""
    return {
        "profile": dask.config.get("distributed.worker.profile.enabled"),
        "tick": dask.config.get("distributed.admin.tick.interval"),
        "memory": dask.config.get("distributed.worker.memory.monitor-interval"),
        "timers": sorted(dask_worker.periodic_callbacks),
    }


def test_a_nodes_worker_runs_no_profiler_and_ticks_seldom(tmp_path: Path) -> None:
    async def main() -> dict[str, Any]:
        async with embedded(tmp_path, nodes=1, instances=1) as controller:
            return dict(await controller.engine.client.run(worker_settings))

    [seen] = asyncio.run(main()).values()
    assert seen["profile"] is False
    assert seen["tick"] == "500ms" and seen["memory"] == "1s"
    # The 10 ms sampler and its 1 s cycle are not running at all; the heartbeat is.
    assert "profile" not in seen["timers"] and "profile-cycle" not in seen["timers"]
    assert "heartbeat" in seen["timers"]
