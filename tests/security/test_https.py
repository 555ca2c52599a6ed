"""The API over HTTPS: a certificate of the cluster CA, trusted by clients and nodes through
the fingerprint their token carries, and refused when it is another CA's."""

from __future__ import annotations

import json
import os
import ssl
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from qfarm.client import Client
from qfarm.domain.errors import InvalidRequest
from qfarm.login import CA_FILE_ENV, LOGIN_FILE_ENV
from qfarm.security.pki import fingerprint, issue, key_pem, make_ca, make_csr, new_key
from tests.controller.test_cluster import start_controller, start_node, stop
from tests.controller.test_reliability import record
from tests.helpers import wait_until_sync

QFARM = [sys.executable, "-m", "qfarm"]


def qfarm(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("QFARM_")}
    return subprocess.run(
        [*QFARM, *args], capture_output=True, text=True, timeout=120,
        env={**clean, "COLUMNS": "200", **env},
    )  # fmt: skip


@pytest.mark.integration
def test_over_https_clients_log_in_by_fingerprint_and_nodes_join(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    controller, url = start_controller(tmp_path, "--https", "--require-token")
    node = None
    try:
        assert url.startswith("https://127.0.0.1:")
        assert controller.stdout is not None
        token = controller.stdout.readline().split()[-1]
        login_line = controller.stdout.readline().strip()
        assert login_line.startswith(f"clients log in with: qfarm login {url} qfc1.")
        connection = login_line.split()[-1]
        # A client that knows no CA of this cluster refuses the certificate.
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(url + "/api/v1/info")
        saved = {LOGIN_FILE_ENV: str(tmp_path / "login.json")}
        unknown = qfarm("batches", "--controller", url, "--token", token, env=saved)
        assert unknown.returncode == 3 and "qfarm login" in unknown.stderr

        # A connection string of another cluster's CA: refused, nothing saved.
        other = f"qfc1.{fingerprint(make_ca()[0])}.{token}"
        refused = qfarm("login", url, other, env=saved)
        assert refused.returncode == 1 and "another cluster" in refused.stderr
        assert not (tmp_path / "login.json").exists()
        record("a client shown a certificate of another CA than its connection string names",
               "qfarm login refused it before the token was sent (exit 1, nothing saved); a "
               "client that knows no cluster CA refuses the connection, saying to log in",
               None, "nothing: no token sent")  # fmt: skip

        logged = qfarm("login", url, connection, env=saved)
        assert logged.returncode == 0, logged.stderr
        assert stat.S_IMODE((tmp_path / "login.json").stat().st_mode) == 0o600
        # Later commands need neither --controller nor --token.
        listed = qfarm("batches", "--json", env=saved)
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout) == []

        # A node joins with the join token alone (it checks the CA by its fingerprint) and
        # runs work; the client here trusts the CA through QFARM_CA_FILE.
        monkeypatch.setenv(CA_FILE_ENV, str(tmp_path / "controller" / "cluster" / "ca.pem"))
        monkeypatch.setenv("QFARM_TOKEN", token)
        node = start_node(tmp_path, url, "tls-node")
        client = Client(url)
        batch = client.submit(
            {"jobs": [{"type": "command", "spec": {"command": ["true"], "frames": "1-2"}}]}
        ).id
        wait_until_sync(lambda: client.batch(batch).state == "done", timeout=60, what="done")
    finally:
        if node is not None:
            stop(node)
        stop(controller)


def test_an_https_controller_stops_on_sigterm_with_a_client_connection_open(
    tmp_path: Path,
) -> None:
    """A client that keeps its connection alive and reads nothing (a Batch Monitor tab, a
    script holding a Client) never answers the TLS close at a stop; the controller stopped
    anyway, instead of waiting asyncio's 30 s SSL shutdown timeout or being killed."""
    controller, url = start_controller(tmp_path, "--https")
    try:
        ca = tmp_path / "controller" / "cluster" / "ca.pem"
        with httpx.Client(verify=ssl.create_default_context(cafile=str(ca))) as idle:
            assert idle.get(url + "/api/v1/info").status_code == 200
            controller.terminate()
            try:
                code = controller.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pytest.fail("the controller did not stop on SIGTERM while a client was connected")
        assert code in (0, -15), code  # its own stop, not a kill
    finally:
        stop(controller)


def test_a_token_is_never_sent_over_plain_http_beyond_loopback() -> None:
    with pytest.raises(InvalidRequest, match="plain HTTP"):
        Client("http://10.20.30.40:8765", token="qf_secret")
    Client("http://127.0.0.1:8765", token="qf_secret").close()  # loopback: allowed
    Client("http://10.20.30.40:8765").close()  # no token, nothing to leak


def test_half_of_a_certificate_pair_is_a_usage_error(tmp_path: Path) -> None:
    done = qfarm("controller", "--port", "0", "--tls-cert", str(tmp_path / "c.pem"), env={})
    assert done.returncode == 2 and "--tls-cert and --tls-key go together" in done.stderr


@pytest.mark.integration
def test_a_certificate_of_your_own_is_served_and_trusted_through_its_ca_file(
    tmp_path: Path,
) -> None:
    # A studio's own CA and a certificate it issued for this host: not the cluster CA's.
    ca, ca_key = make_ca()
    key = new_key()
    cert = issue(ca, ca_key, make_csr(key, "farm.example"), names=["127.0.0.1", "localhost"])
    for name, text in (("studio-ca.pem", ca), ("api.pem", cert), ("api-key.pem", key_pem(key))):
        (tmp_path / name).write_text(text)
    controller, url = start_controller(
        tmp_path, "--require-token", "--tls-cert", str(tmp_path / "api.pem"),
        "--tls-key", str(tmp_path / "api-key.pem"),
    )  # fmt: skip
    try:
        assert url.startswith("https://") and controller.stdout is not None
        token = controller.stdout.readline().split()[-1]
        saved = {LOGIN_FILE_ENV: str(tmp_path / "login.json")}
        # The cluster CA's fingerprint is not what signs this certificate: refused.
        pinned = qfarm("login", url, f"qfc1.{fingerprint(make_ca()[0])}.{token}", env=saved)
        assert pinned.returncode != 0
        logged = qfarm("login", url, token, "--ca-file", str(tmp_path / "studio-ca.pem"), env=saved)
        assert logged.returncode == 0, logged.stderr
        listed = qfarm("batches", "--json", env=saved)
        assert listed.returncode == 0 and json.loads(listed.stdout) == []
    finally:
        stop(controller)
