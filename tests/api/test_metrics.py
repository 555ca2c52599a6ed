"""GET /metrics: a real embedded cluster runs a batch with a failing segment, and the
scrape (parsed with prometheus-client's own parser) counts what happened; a metrics token
opens /metrics and nothing else."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from qfarm.api.app import create_app
from qfarm.controller.metrics import failure_reason
from qfarm.security import tokens
from qfarm.store import Result, Store
from tests.helpers import embedded, wait_until

# Frame 3 fails; the others run 0.3 s, long enough for their start to be reported.
BATCH = {
    "name": "metrics",
    "jobs": [
        {
            "type": "command",
            "spec": {
                "command": ["sh", "-c", "sleep 0.3; test {frame} != 3"],
                "frames": "1-4",
                "segment_size": 1,
            },
            "retries": 0,
        }
    ],
}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, from Prometheus' text format."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


@pytest.mark.integration
def test_a_scrape_counts_segments_attempts_failures_and_nodes(tmp_path: Path) -> None:
    async def scenario() -> str:
        async with embedded(tmp_path, nodes=2, instances=2) as controller:
            transport = httpx.ASGITransport(app=create_app(controller))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
                batch = (await c.post("/api/v1/batches", json=BATCH)).json()

                async def ended() -> bool:
                    got = (await c.get(f"/api/v1/batches/{batch['id']}")).json()
                    return bool(got["state"] in ("done", "failed"))

                await wait_until(ended, timeout=60, what="the batch to end")
                scraped = await c.get("/metrics")
                assert scraped.status_code == 200
                assert scraped.headers["content-type"].startswith("text/plain")
                return scraped.text

    got = samples(asyncio.run(scenario()))
    command = (("service", "command"),)
    assert got[("qfarm_segments", (("service", "command"), ("state", "done")))] == 3
    assert got[("qfarm_segments", (("service", "command"), ("state", "failed")))] == 1
    assert got[("qfarm_attempts_ended_total", (("outcome", "done"), *command))] == 3
    assert got[("qfarm_attempts_ended_total", (("outcome", "failed"), *command))] == 1
    assert got[("qfarm_attempt_failures_total", (("reason", "failed"), *command))] == 1
    assert got[("qfarm_attempt_duration_seconds_count", command)] == 4
    # Each attempt ran about 0.3 s: the histogram's sum says so, within what a loaded
    # machine adds (no timing claim, only that the durations are the attempts' own).
    assert 4 * 0.3 <= got[("qfarm_attempt_duration_seconds_sum", command)] < 4 * 30
    assert got[("qfarm_dispatch_latency_seconds_count", command)] == 4
    assert got[("qfarm_dispatcher_tick_seconds_count", ())] >= 1
    assert got[("qfarm_nodes", (("state", "online"),))] == 2
    assert got[("qfarm_nodes", (("state", "refused"),))] == 0
    assert got[("qfarm_instances", command)] == 4
    assert ("qfarm_segments_in_flight", command) not in got  # nothing out any more


@pytest.mark.integration
def test_a_metrics_token_opens_metrics_and_nothing_else(tmp_path: Path) -> None:
    async def scenario() -> dict[str, int]:
        async with embedded(tmp_path, nodes=1, instances=1) as controller:
            _, client = tokens.create(controller.store, "wrangler")
            _, scrape = tokens.create(controller.store, "prometheus", tokens.METRICS_SCOPE)
            transport = httpx.ASGITransport(app=create_app(controller))
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:

                async def status(path: str, secret: str | None) -> int:
                    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
                    return (await c.get(path, headers=headers)).status_code

                return {
                    "metrics, none": await status("/metrics", None),
                    "metrics, scrape": await status("/metrics", scrape),
                    "metrics, client": await status("/metrics", client),
                    "api, scrape": await status("/api/v1/batches", scrape),
                    "api, client": await status("/api/v1/batches", client),
                }

    assert asyncio.run(scenario()) == {
        "metrics, none": 401,
        "metrics, scrape": 200,
        "metrics, client": 200,
        "api, scrape": 401,
        "api, client": 200,
    }


def test_an_unknown_scope_is_refused(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'qfarm.db'}")
    try:
        with pytest.raises(Exception, match="unknown token scope 'admin'"):
            tokens.create(store, "x", "admin")
        assert store.tokens() == []
    finally:
        store.close()


@pytest.mark.parametrize(
    ("result", "reason"),
    [
        (Result(1, 1, ok=False, node="n", canceled=True, error="canceled"), "canceled"),
        (Result(1, 1, ok=False, node="n", lost=True, error="node n lost it"), "lost"),
        (Result(1, 1, ok=False, node="n", error="command: no progress for 2.0 s"), "stalled"),
        (Result(1, 1, ok=False, node="n", error="ffmpeg timed out"), "timeout"),
        (Result(1, 1, ok=False, node="n", exit_code=3, error="exited with code 3"), "failed"),
    ],
)
def test_failure_reasons(result: Result, reason: str) -> None:
    assert failure_reason(result) == reason
