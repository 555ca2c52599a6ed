"""Notifications of real batches on a real embedded cluster: an email through a real SMTP
server (STARTTLS and AUTH), signed webhooks to a real HTTP receiver, a receiver that is
down and then comes back, deliveries that outlive their controller, and the API's
refusals and settings."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from qfarm.api.app import create_app
from qfarm.controller.notify import Notifier, NotifyConfig
from qfarm.controller.notify_email import parse_smtp
from qfarm.controller.notify_webhook import verify
from qfarm.controller.service import Controller
from qfarm.store import Store
from tests.controller.notify_support import (
    SMTP_PASSWORD,
    SMTP_USER,
    WebhookReceiver,
    free_port,
    smtp_server,
)
from tests.controller.test_reliability import record
from tests.helpers import embedded, wait_until

pytestmark = pytest.mark.integration

SECRET = "test-webhook-secret"
MONITOR = "http://farm.example:8470"
# Fast retries, so a test sees several tries in a second or two.
FAST = (0.2, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3)


def failing_batch(cwd: Path, notify: list[dict[str, str]], name: str = "shot 12") -> dict[str, Any]:
    """Two segments: the first renders, the second fails after saying why."""
    script = (
        'echo "rendering frame {start}"; '
        'if [ {start} = 2 ]; then echo "boom: out of texture memory" >&2; exit 3; fi'
    )
    spec = {"command": ["sh", "-c", script], "frames": "1-2", "cwd": str(cwd)}
    job = {"type": "command", "name": "beauty", "spec": spec, "retries": 0}
    return {"name": name, "jobs": [job], "notify": notify}


@asynccontextmanager
async def notifying(
    data_dir: Path, config: NotifyConfig, nodes: int = 1
) -> AsyncIterator[tuple[Controller, httpx.AsyncClient]]:
    """An embedded controller with a notifier, and an API client of it."""
    async with embedded(data_dir, nodes=nodes, instances=2) as controller:
        controller.notifier = Notifier(controller.store, controller, config)
        await controller.notifier.start(MONITOR)
        transport = httpx.ASGITransport(app=create_app(controller))
        async with httpx.AsyncClient(transport=transport, base_url="http://t/api/v1") as api:
            yield controller, api


async def submitted(api: httpx.AsyncClient, body: dict[str, Any]) -> int:
    answer = await api.post("/batches", json=body)
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


async def deliveries(api: httpx.AsyncClient, batch_id: int) -> list[dict[str, Any]]:
    return list((await api.get(f"/batches/{batch_id}")).json()["deliveries"])


def test_a_failed_batch_is_emailed_over_starttls_with_a_login(tmp_path: Path) -> None:
    async def scenario() -> list[dict[str, Any]]:
        with smtp_server(tmp_path) as box:
            server = parse_smtp(
                f"smtp://{SMTP_USER}@127.0.0.1:{box.port}",
                password=SMTP_PASSWORD,
                ca_file=box.ca,
                sender="farm@studio.example",
            )
            config = NotifyConfig(webhook_secret=SECRET, smtp=server, retry_delays=FAST)
            async with notifying(tmp_path, config) as (_, api):
                body = failing_batch(tmp_path, [{"target": "mailto:ops@example.com"}])
                batch_id = await submitted(api, body)
                await wait_until(lambda: len(box.messages) == 1, 30, "the email")
                await wait_until(
                    lambda: _states(api, batch_id, "delivered"), 10, "delivered recorded"
                )
                rows = await deliveries(api, batch_id)
            mail = box.messages[0]
            assert box.logins and box.recipients == [["ops@example.com"]]
            assert mail["Subject"] == f"qfarm: batch {batch_id} (shot 12) failed"
            assert mail["From"] == "farm@studio.example" and mail["To"] == "ops@example.com"
            text = mail.get_payload(decode=True).decode()  # type: ignore[union-attr]
            assert f"Batch {batch_id} (shot 12) failed." in text
            assert "1 done, 1 failed, 0 canceled of 2" in text
            assert "* beauty, segment 2 (frames 2) on node-1: command sh exited with code 3" in text
            assert "| boom: out of texture memory" in text
            assert f"{MONITOR}/#/batch/{batch_id}" in text
        return rows

    [row] = asyncio.run(scenario())
    assert (row["target"], row["event"], row["state"], row["attempts"]) == (
        "mailto:ops@example.com", "failed", "delivered", 1,
    )  # fmt: skip
    assert row["delivered_at"] is not None and row["last_error"] == ""


async def _states(api: httpx.AsyncClient, batch_id: int, *states: str) -> bool:
    rows = await deliveries(api, batch_id)
    return bool(rows) and all(r["state"] in states for r in rows)


def test_webhooks_are_signed_and_say_what_failed(tmp_path: Path) -> None:
    async def scenario(receiver: WebhookReceiver) -> tuple[int, dict[str, Any]]:
        config = NotifyConfig(webhook_secret=SECRET, retry_delays=FAST)
        async with notifying(tmp_path, config) as (_, api):
            notify = [{"target": receiver.url, "on": "failed"}]
            done_only = [{"target": receiver.url + "?done", "on": "done"}]
            batch_id = await submitted(api, failing_batch(tmp_path, notify + done_only))
            await wait_until(lambda: _states(api, batch_id, "delivered"), 30, "the webhook")
            detail = (await api.get(f"/batches/{batch_id}")).json()
        return batch_id, detail

    with WebhookReceiver() as receiver:
        batch_id, detail = asyncio.run(scenario(receiver))
    # The done-only target is owed nothing for a failed batch.
    assert [d["target"] for d in detail["deliveries"]] == [receiver.url]
    assert detail["notify"] == [
        {"target": receiver.url, "on": "failed"},
        {"target": receiver.url + "?done", "on": "done"},
    ]
    [hit] = receiver.received
    assert hit.path == "/hooks/qfarm" and hit.headers["content-type"] == "application/json"
    assert verify(SECRET, hit.body, hit.headers["x-qfarm-signature"])
    assert not verify("another secret", hit.body, hit.headers["x-qfarm-signature"])
    assert hit.headers["x-qfarm-event"] == "batch.failed"
    assert hit.headers["x-qfarm-delivery"] == str(detail["deliveries"][0]["id"])
    body = json.loads(hit.body)
    assert body["event"] == "batch.failed"
    batch = body["batch"]
    assert (batch["id"], batch["name"], batch["state"]) == (batch_id, "shot 12", "failed")
    assert batch["segments"] == {"total": 2, "done": 1, "failed": 1, "canceled": 0}
    assert batch["link"] == f"{MONITOR}/#/batch/{batch_id}"
    [failed] = batch["failed_segments"]
    assert (failed["job"], failed["segment"]) == ("beauty", 2)
    assert "boom: out of texture memory" in failed["log_tail"]
    assert failed["error"]


def test_a_receiver_that_is_down_gets_it_when_it_comes_back(tmp_path: Path) -> None:
    receiver = WebhookReceiver(port=free_port())  # reserved: nothing listens yet
    waited: list[float] = []

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        config = NotifyConfig(webhook_secret=SECRET, retry_delays=FAST)
        async with notifying(tmp_path, config) as (_, api):
            batch_id = await submitted(api, failing_batch(tmp_path, [{"target": receiver.url}]))

            async def tried_twice() -> bool:
                rows = await deliveries(api, batch_id)
                return bool(rows) and rows[0]["attempts"] >= 2

            await wait_until(tried_twice, 30, "two failed tries")
            while_down = await deliveries(api, batch_id)
            receiver.start()
            back = time.monotonic()
            await wait_until(lambda: _states(api, batch_id, "delivered"), 30, "the retry")
            waited.append(time.monotonic() - back)
            return while_down, await deliveries(api, batch_id)

    try:
        [down], [up] = asyncio.run(scenario())
    finally:
        receiver.stop()
    assert down["state"] == "pending" and down["next_at"] is not None
    assert "ConnectError" in down["last_error"] or "refused" in down["last_error"].lower()
    assert up["state"] == "delivered" and up["attempts"] > down["attempts"]
    assert len(receiver.received) == 1
    record("a webhook receiver is down when the batch ends, and comes back",
           f"{down['attempts']} tries failed (connection refused, kept as the delivery's last "
           f"error, attempts counted), retried with backoff (the test's: 0.2-0.3 s); delivered "
           f"once, on try {up['attempts']}, once it was back",
           waited[0], "nothing: one delivery, never blocking the batches")  # fmt: skip


def test_pending_deliveries_outlive_their_controller(tmp_path: Path) -> None:
    receiver = WebhookReceiver(port=free_port())
    # Once the first try failed, the next is due well after the controller is gone.
    slow = NotifyConfig(webhook_secret=SECRET, retry_delays=(3600.0,))

    async def first_life() -> int:
        async with notifying(tmp_path, slow) as (_, api):
            batch_id = await submitted(api, failing_batch(tmp_path, [{"target": receiver.url}]))

            async def tried() -> bool:
                rows = await deliveries(api, batch_id)
                return bool(rows) and rows[0]["attempts"] == 1

            await wait_until(tried, 30, "the first try")
        return batch_id

    async def second_life(batch_id: int) -> list[dict[str, Any]]:
        store = Store(f"sqlite:///{tmp_path / 'qfarm.db'}")
        try:
            [row] = store.deliveries(batch_id)
            # Due now, as if the hour had passed while no controller ran.
            store.release_delivery(row.id, next_at=0.0)
        finally:
            store.close()
        fast = NotifyConfig(webhook_secret=SECRET, retry_delays=FAST)
        async with notifying(tmp_path, fast) as (_, api):
            await wait_until(lambda: _states(api, batch_id, "delivered"), 30, "after restart")
            return await deliveries(api, batch_id)

    batch_id = asyncio.run(first_life())
    try:
        receiver.start()
        [row] = asyncio.run(second_life(batch_id))
    finally:
        receiver.stop()
    assert (row["state"], row["attempts"]) == ("delivered", 2)
    assert len(receiver.received) == 1
    record("the controller stops with a webhook delivery pending",
           "the delivery was in the store; the next controller delivered it (its try 2)",
           None, "nothing")  # fmt: skip


def test_bad_targets_are_refused_and_the_defaults_are_settings(tmp_path: Path) -> None:
    async def scenario() -> dict[str, Any]:
        store = Store(f"sqlite:///{tmp_path / 'qfarm.db'}")
        controller = await Controller.start(store, tmp_path)
        controller.notifier = Notifier(store, controller, NotifyConfig(webhook_secret=SECRET))
        await controller.notifier.start(MONITOR)
        seen: dict[str, Any] = {}
        try:
            transport = httpx.ASGITransport(app=create_app(controller))
            async with httpx.AsyncClient(transport=transport, base_url="http://t/api/v1") as c:
                job = {"type": "command", "spec": {"command": ["true"]}}
                for name, target in (
                    ("ftp", "ftp://files.example/x"),
                    ("two", "mailto:a@example.com,b@example.com"),
                    ("mail", "mailto:ops@example.com"),
                ):
                    answer = await c.post(
                        "/batches", json={"jobs": [job], "notify": [{"target": target}]}
                    )
                    seen[name] = (answer.status_code, answer.json()["error"])
                answer = await c.post(
                    "/batches", json={"jobs": [job], "notify": [{"target": "x", "on": "never"}]}
                )
                seen["on"] = answer.status_code
                seen["stored"] = len((await c.get("/batches")).json())
                seen["empty"] = (await c.get("/settings/notify")).json()
                hook = {"target": "https://hooks.example/ops", "on": "failed"}
                seen["put"] = (await c.put("/settings/notify", json={"notify": [hook]})).json()
                mail = {"notify": [{"target": "mailto:ops@example.com"}]}
                seen["put_mail"] = (await c.put("/settings/notify", json=mail)).status_code
                seen["kept"] = store.notify_defaults()
        finally:
            await controller.close()
            store.close()
        return seen

    seen = asyncio.run(scenario())
    assert seen["ftp"][0] == 400 and "'ftp://files.example/x'" in seen["ftp"][1]
    assert seen["two"][0] == 400 and "one address" in seen["two"][1]
    assert seen["mail"] == (
        400,
        "notify target mailto:ops@example.com: this controller has no SMTP server configured "
        "(qfarm controller --smtp URL)",
    )
    assert seen["on"] == 400 and seen["stored"] == 0
    assert seen["empty"] == {"notify": [], "email": False}
    assert seen["put"]["notify"] == [{"target": "https://hooks.example/ops", "on": "failed"}]
    assert seen["put_mail"] == 400
    assert [n.target for n in seen["kept"]] == ["https://hooks.example/ops"]
