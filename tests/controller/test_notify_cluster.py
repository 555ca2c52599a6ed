"""Notifications through the command line, across processes: a `qfarm controller` given an
SMTP server, farm-wide defaults and a webhook secret, a `qfarm node`, batches submitted with
`qfarm submit --notify`, and `qfarm show` listing how each delivery went."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qfarm.client import Client
from qfarm.controller.notify_webhook import verify
from tests.controller.notify_support import (
    SMTP_PASSWORD,
    SMTP_USER,
    WebhookReceiver,
    smtp_server,
)
from tests.controller.test_cluster import start_controller, start_node, stop
from tests.helpers import wait_until_sync

pytestmark = pytest.mark.integration

QFARM = [sys.executable, "-m", "qfarm"]
SECRET = "cluster-webhook-secret"


def qfarm(url: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "250"}
    if url:
        env["QFARM_CONTROLLER"] = url
    return subprocess.run([*QFARM, *args], capture_output=True, text=True, env=env, timeout=120)


def test_submit_notify_and_show_with_a_real_controller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QFARM_SMTP_PASSWORD", SMTP_PASSWORD)
    with smtp_server(tmp_path) as box, WebhookReceiver() as receiver:
        controller, url = start_controller(
            tmp_path,
            "--smtp", f"smtp://{SMTP_USER}@127.0.0.1:{box.port}",
            "--smtp-ca", str(box.ca),
            "--notify", "mailto:wrangler@example.com",
            "--notify-on", "failed",
            "--webhook-secret", SECRET,
        )  # fmt: skip
        node = None
        try:
            node = start_node(tmp_path, url, "node-1", services="command=2")
            failing = qfarm(
                url, "submit", "--name", "comp", "--retries", "0",
                "--notify", receiver.url, "--",
                "sh", "-c", "echo 'nuke: license server down' >&2; exit 7",
            )  # fmt: skip
            assert failing.returncode == 0, failing.stderr
            batch_id = int(failing.stdout.strip())
            client = Client(url)

            def delivered() -> bool:
                rows = client.batch(batch_id).raw["deliveries"]
                return len(rows) == 2 and all(r["state"] == "delivered" for r in rows)

            wait_until_sync(delivered, 60, "the email and the webhook")
            shown = qfarm(url, "show", str(batch_id))
            as_json = json.loads(qfarm(url, "show", str(batch_id), "--json").stdout)
            defaults = json.loads(qfarm(url, "notify", "show", "--json").stdout)
        finally:
            if node is not None:
                stop(node)
            stop(controller)
    assert shown.returncode == 0, shown.stderr
    assert receiver.url in shown.stdout and "mailto:wrangler@example.com" in shown.stdout
    assert shown.stdout.count("delivered") >= 2
    targets = {row["target"]: row for row in as_json["deliveries"]}
    assert set(targets) == {receiver.url, "mailto:wrangler@example.com"}
    assert {row["event"] for row in targets.values()} == {"failed"}
    assert as_json["notify"] == [{"target": receiver.url, "on": "ended"}]
    assert defaults == {
        "notify": [{"target": "mailto:wrangler@example.com", "on": "failed"}],
        "email": True,
    }
    [hit] = receiver.received
    assert verify(SECRET, hit.body, hit.headers["x-qfarm-signature"])
    [mail] = box.messages
    assert mail["Subject"] == f"qfarm: batch {batch_id} (comp) failed"
    text = mail.get_payload(decode=True).decode()  # type: ignore[union-attr]
    assert "nuke: license server down" in text and f"{url}/#/batch/{batch_id}" in text


def test_bad_notify_options_are_usage_errors(tmp_path: Path) -> None:
    bad = qfarm("http://127.0.0.1:9", "submit", "--notify", "ftp://files.example/x", "--", "true")
    assert bad.returncode == 2 and "'ftp://files.example/x'" in bad.stderr
    on = qfarm("http://127.0.0.1:9", "submit", "--notify", "https://h.example/x",
               "--notify-on", "sometimes", "--", "true")  # fmt: skip
    assert on.returncode == 2 and "done, failed or ended" in on.stderr
    data = str(tmp_path / "controller")
    no_smtp = qfarm(None, "controller", "--port", "0", "--no-advertise", "--data-dir", data,
                    "--notify", "mailto:ops@example.com")  # fmt: skip
    assert no_smtp.returncode == 2 and "--smtp" in no_smtp.stderr
    secret = qfarm(None, "webhook-secret", "--data-dir", data)
    again = qfarm(None, "webhook-secret", "--data-dir", data)
    assert secret.returncode == 0 and secret.stdout == again.stdout and len(secret.stdout) > 30
    kept = Path(data) / "cluster" / "webhook-secret"
    assert kept.stat().st_mode & 0o777 == 0o600
    assert kept.read_text().strip() == secret.stdout.strip()
