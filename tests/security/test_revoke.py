"""One node shut out at a time: its certificate refused in the scheduler's handshake, its
work requeued, and its attempts to join again refused, while the other nodes go on."""

from __future__ import annotations

import socket
import ssl
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from qfarm.client import Client
from tests.controller.test_cluster import (
    QFARM,
    node_env,
    start,
    start_controller,
    start_node,
    stop,
)
from tests.controller.test_reliability import record
from tests.helpers import wait_until_sync

pytestmark = pytest.mark.integration


def handshake(scheduler: str, tls: Path) -> str:
    """Speak TLS to the scheduler with a node's certificate: ``ok`` when the scheduler
    takes it (it speaks first, or waits for a message), else the error it answered with."""
    host = urlsplit(scheduler).hostname or "127.0.0.1"
    port = urlsplit(scheduler).port or 0
    context = ssl.create_default_context(cafile=str(tls / "ca.pem"))
    context.check_hostname = False
    context.load_cert_chain(tls / "node.pem", tls / "node-key.pem")
    with socket.create_connection((host, port), timeout=10) as raw:
        try:
            with context.wrap_socket(raw) as conn:
                conn.settimeout(1.0)
                # TLS 1.3: the server checks the client's certificate after the client
                # thinks the handshake is done, and says so on the next read.
                return "ok" if conn.recv(1) else "closed"
        except TimeoutError:
            return "ok"
        except (ssl.SSLError, ConnectionError) as exc:
            return str(exc)


def test_a_revoked_node_is_refused_its_work_requeued_and_it_cannot_rejoin(
    tmp_path: Path,
) -> None:
    controller, url = start_controller(tmp_path)
    client = Client(url)
    nodes: dict[str, subprocess.Popen[str]] = {}
    go = tmp_path / "go"
    try:
        nodes["doomed"] = start_node(tmp_path, url, "doomed")
        waits = ["sh", "-c", f"until [ -e {go} ]; do sleep 0.05; done"]
        batch = client.submit(
            {"jobs": [{"type": "command", "retries": 0, "spec": {"command": waits}}]}
        ).id
        segment = client.segments(batch)[0]["id"]
        wait_until_sync(lambda: client.batch(batch).segments["running"] == 1, what="running")
        scheduler = client.info()["scheduler"]
        doomed_tls = tmp_path / "doomed" / "node" / "doomed" / "tls"
        assert handshake(scheduler, doomed_tls) == "ok"

        began = time.monotonic()
        revoked = subprocess.run(
            [*QFARM, "node", "revoke", "doomed", "-c", url], capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert revoked.returncode == 0, revoked.stderr
        # Its running segment is requeued (the attempt was lost, not failed: no retry used).
        wait_until_sync(
            lambda: [a["outcome"] for a in client.attempts(batch, segment)] == ["lost"],
            timeout=30,
            what="the revoked node's attempt to be lost",
        )
        lost_after = time.monotonic() - began
        assert client.batch(batch).state in ("queued", "running")
        refused = handshake(scheduler, doomed_tls)
        assert "revoked" in refused.lower(), refused

        # It tries to join again, under its name and key: refused, and it stops.
        stop(nodes.pop("doomed"))
        again = start(
            ["node", "-c", url, "--services", "command=1", "--name", "doomed",
             "--data-dir", str(tmp_path / "doomed")],
            tmp_path / "doomed-again.log",
            node_env(url),
        )  # fmt: skip
        assert again.wait(timeout=60) != 0
        assert "doomed was revoked" in (tmp_path / "doomed-again.log").read_text()

        # Another node is untouched by it: it joins, runs the requeued segment.
        nodes["spare"] = start_node(tmp_path, url, "spare")
        spare_tls = tmp_path / "spare" / "node" / "spare" / "tls"
        assert handshake(scheduler, spare_tls) == "ok"
        wait_until_sync(lambda: client.batch(batch).segments["running"] == 1, what="rerun")
        go.touch()
        wait_until_sync(lambda: client.batch(batch).state == "done", timeout=60, what="done")
        ran = [a["node"] for a in client.attempts(batch, segment)]
        assert ran == ["doomed", "spare"]
        logged = [(e["action"], e["target"]) for e in client.audit(action="node")]
        assert ("node.revoke", "node doomed") in logged
        record("a node revoked (qfarm node revoke) while it runs a segment",
               f"its running attempt was lost {lost_after:.1f} s after the command (no retry "
               "used) and reran on another node; its certificate is refused in the TLS "
               "handshake ('certificate revoked'); its rejoin was refused (403) and it stopped",
               lost_after, "nothing; the other node untouched")  # fmt: skip

        unknown = subprocess.run(
            [*QFARM, "node", "revoke", "ghost", "-c", url], capture_output=True,
            text=True, timeout=60,
        )  # fmt: skip
        assert unknown.returncode == 4 and "no node ghost ever joined" in unknown.stderr
    finally:
        go.touch()
        for proc in nodes.values():
            stop(proc)
        stop(controller)
