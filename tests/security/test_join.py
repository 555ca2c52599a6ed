"""Nodes join with the cluster's join token and talk to the controller over mutual TLS:
a real `qfarm controller`, `qfarm node` processes, and Dask workers started by hand that
try to get in without the cluster's keys."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qfarm.client import Client
from qfarm.security import pki
from tests.controller.test_cluster import (
    JOIN_TOKENS,
    QFARM,
    join_token,
    start_controller,
    start_node,
    stop,
)
from tests.controller.test_reliability import record
from tests.helpers import wait_until_sync

pytestmark = pytest.mark.integration

DASK = str(Path(sys.executable).parent / "dask")


def node_attempt(
    url: str, name: str, tmp_path: Path, token: str | None, data_dir: Path | None = None
) -> subprocess.Popen[str]:
    """A `qfarm node` given ``token`` (or none at all), with its own data dir unless told."""
    env = {k: v for k, v in os.environ.items() if k != "QFARM_JOIN_TOKEN"}
    if token is not None:
        env["QFARM_JOIN_TOKEN"] = token
    return subprocess.Popen(
        [*QFARM, "node", "-c", url, "--name", name, "--services", "command=1",
         "--data-dir", str(data_dir or tmp_path / name)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def refused(proc: subprocess.Popen[str]) -> tuple[int, str]:
    _, stderr = proc.communicate(timeout=60)
    return proc.returncode, stderr


def names(url: str) -> set[str]:
    return {n["name"] for n in Client(url).nodes()}


def test_a_node_with_the_join_token_joins_over_tls_and_runs_work(tmp_path: Path) -> None:
    controller, url = start_controller(tmp_path)
    node = None
    try:
        assert controller.stdout is not None
        shown = controller.stdout.readline()  # the first start shows how nodes join
        assert f"qfarm node -c {url} --join-token {JOIN_TOKENS[url]}" in shown
        scheduler = Client(url).info()["scheduler"]
        assert scheduler.startswith("tls://")
        node = start_node(tmp_path, url, "node-1")
        spec = {"command": ["sh", "-c", "echo {start} > f{start}"], "frames": "1-3",
                "cwd": str(tmp_path)}  # fmt: skip
        batch = Client(url).submit({"jobs": [{"spec": spec}]}).wait(timeout=60)
        assert batch.state == "done"
        assert [(tmp_path / f"f{i}").read_text() for i in (1, 2, 3)] == ["1\n", "2\n", "3\n"]
        tls = tmp_path / "node-1" / "node" / "node-1" / "tls"
        assert oct((tls / pki.NODE_KEY).stat().st_mode & 0o777) == "0o600"
        assert pki.fingerprint((tls / pki.CA_CERT).read_text()) == JOIN_TOKENS[url].split(".")[1]
    finally:
        if node is not None:
            stop(node)
        stop(controller)


def test_a_node_without_the_right_join_token_is_refused(tmp_path: Path) -> None:
    controller, url = start_controller(tmp_path)
    try:
        good = pki.parse_join_token(JOIN_TOKENS[url])
        wrong = str(pki.JoinToken(good.fingerprint, good.secret[:-2] + "xx"))
        # The right secret with another CA's fingerprint: what a node sees when something
        # else answers in the controller's place. It refuses the answer.
        other = pki.ClusterAuthority.open(tmp_path / "other-cluster").join_token()
        impostor = str(pki.JoinToken(other.fingerprint, good.secret))
        expected = {  # name: (token, exit code, message)
            "no-token": (None, 1, "admits only nodes with its join token"),
            "wrong-secret": (wrong, 1, "join token is wrong"),
            "other-ca": (impostor, 1, "not the one the join token names"),
            "malformed": ("qfj1.nonsense", 2, "qfj1.<fingerprint>.<secret>"),
        }
        attempts = {
            name: node_attempt(url, name, tmp_path, token)
            for name, (token, _, _) in expected.items()
        }  # started together, each refused on its own
        for name, (_, code, message) in expected.items():
            got, stderr = refused(attempts[name])
            assert got == code and message in stderr, (name, stderr)

        assert not names(url) & {"no-token", "wrong-secret", "other-ca", "malformed"}
    finally:
        stop(controller)


def test_the_scheduler_refuses_workers_without_a_cluster_certificate(tmp_path: Path) -> None:
    controller, url = start_controller(tmp_path)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        scheduler = Client(url).info()["scheduler"]
        # A certificate of a CA of its own making, as anyone could have.
        rogue = pki.ClusterAuthority.open(tmp_path / "rogue")
        key = pki.new_key()
        csr = pki.make_csr(key, "rogue")
        (tmp_path / "rogue" / "key.pem").write_text(pki.key_pem(key))
        (tmp_path / "rogue" / "cert.pem").write_text(
            rogue.admit(csr, pki.join_proof(rogue.join_token().secret, csr))
        )
        attempts = {
            "plain": [scheduler.replace("tls://", "tcp://")],
            "rogue": [scheduler, "--tls-ca-file", str(tmp_path / "rogue" / "cluster" / "ca.pem"),
                      "--tls-cert", str(tmp_path / "rogue" / "cert.pem"),
                      "--tls-key", str(tmp_path / "rogue" / "key.pem")],
        }  # fmt: skip
        started = time.monotonic()
        for name, args in attempts.items():
            worker = subprocess.Popen(
                [DASK, "worker", *args, "--name", name, "--nthreads", "1",
                 "--resources", "command=1", "--no-dashboard", "--no-nanny",
                 "--death-timeout", "5"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            workers.append(worker)
        # Each gives up once it has failed to reach the scheduler for its death timeout.
        for worker in workers:
            worker.wait(timeout=90)
        gave_up = time.monotonic() - started
        assert all(w.returncode != 0 for w in workers)
        assert not names(url) & set(attempts)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        stop(controller)
    record("a node without the join token, with a wrong one, or with another cluster's; "
           "Dask workers without a cluster certificate",
           "nodes refused with a one-line message (exit 1; exit 2 for a malformed token); the "
           "scheduler refused plain-TCP and other-CA workers in the TLS handshake, and they "
           f"gave up ({gave_up:.0f} s with a 5 s death timeout)",
           None, "nothing: none of them was listed or given work")  # fmt: skip


def test_rotating_the_join_token_shuts_out_the_old_one_only(tmp_path: Path) -> None:
    controller, url = start_controller(tmp_path)
    nodes: list[subprocess.Popen[str]] = []
    try:
        old = JOIN_TOKENS[url]
        nodes.append(start_node(tmp_path, url, "before"))
        rotated = subprocess.run(
            [*QFARM, "join-token", "--rotate", "--data-dir", str(tmp_path / "controller")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert rotated.returncode == 0, rotated.stderr
        new = rotated.stdout.strip()
        assert new != old and new == join_token(tmp_path / "controller")
        shown = subprocess.run(
            [*QFARM, "join-token", "--json", "--data-dir", str(tmp_path / "controller")],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert json.loads(shown.stdout) == {
            "join_token": new,
            "ca_fingerprint": pki.parse_join_token(new).fingerprint,
        }

        code, stderr = refused(node_attempt(url, "stale", tmp_path, old))
        assert code == 1 and "join token is wrong" in stderr, stderr

        JOIN_TOKENS[url] = new
        nodes.append(start_node(tmp_path, url, "after"))
        online = {n["name"] for n in Client(url).nodes() if n["state"] == "online"}
        assert online == {"before", "after"}  # the node that joined before stays in
        spec = {"command": ["true"], "frames": "1-4", "cwd": str(tmp_path)}
        batch = Client(url).submit({"jobs": [{"spec": spec}]}).wait(timeout=60)
        assert batch.state == "done"
        assert "stale" not in names(url)
    finally:
        for node in nodes:
            stop(node)
        stop(controller)


def test_a_node_sharing_the_controllers_data_dir_needs_no_token(tmp_path: Path) -> None:
    # All three roles on one computer, as one user: the node reads the token itself.
    controller, url = start_controller(tmp_path)
    node = node_attempt(url, "same-machine", tmp_path, None, data_dir=tmp_path / "controller")
    try:
        wait_until_sync(
            lambda: any(
                n["name"] == "same-machine" and n["state"] == "online" for n in Client(url).nodes()
            ),
            timeout=60,
            what="the node online",
        )
    finally:
        stop(node)
        stop(controller)


def test_join_token_needs_a_controller_data_dir(tmp_path: Path) -> None:
    result = subprocess.run(
        [*QFARM, "join-token", "--data-dir", str(tmp_path)], capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "start `qfarm controller` here once first" in result.stderr
