"""Cluster mode across processes: a `qfarm controller` and three `qfarm node` processes on
loopback, driven by the CLI and by the Python client.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from qfarm.client import Client, ControllerError
from tests.helpers import gone, wait_until_sync

pytestmark = pytest.mark.integration

QFARM = [sys.executable, "-m", "qfarm"]
NODES = ("node-1", "node-2", "node-3")


@dataclass
class Cluster:
    url: str
    client: Client
    root: Path
    processes: dict[str, subprocess.Popen[str]]

    def cli(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "QFARM_CONTROLLER": self.url, "COLUMNS": "200"}
        return subprocess.run(
            [*QFARM, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=120
        )

    def submit(self, script: str, cwd: Path, **fields: Any) -> int:
        spec = {"command": ["sh", "-c", script], "cwd": str(cwd), **fields.pop("spec", {})}
        job = {"type": "command", "spec": spec, "retries": fields.pop("retries", 0)}
        return self.client.submit({"jobs": [job], **fields}).id

    def attempts(self, batch_id: int) -> list[dict[str, Any]]:
        segments = self.client.segments(batch_id)
        return [a for s in segments for a in self.client.attempts(batch_id, s["id"])]


# The join tokens of the controllers started here, by URL: a node started for a URL is
# given its controller's token.
JOIN_TOKENS: dict[str, str] = {}


def start(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*QFARM, *args],
        stdout=subprocess.PIPE,
        stderr=open(log, "w"),
        text=True,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def join_token(data_dir: Path) -> str:
    """The join token of the controller whose data dir this is (what `qfarm join-token`
    prints, read here without starting a process: tests/test_join.py runs the command)."""
    from qfarm.security.pki import ClusterAuthority

    return str(ClusterAuthority.existing(data_dir).join_token())


def node_env(url: str) -> dict[str, str]:
    token = JOIN_TOKENS.get(url)
    return {"QFARM_JOIN_TOKEN": token} if token else {}


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_controller(
    tmp_path: Path, *options: str, port: str = "0", name: str = "controller"
) -> tuple[subprocess.Popen[str], str]:
    """A `qfarm controller` (not announced by mDNS) with its data under ``tmp_path``; returns
    the process and the URL it printed.
    """
    proc = start(
        ["controller", "--port", port, "--no-advertise", "--data-dir", str(tmp_path / name),
         *options],
        tmp_path / f"{name}.log",
    )  # fmt: skip
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "qfarm controller at URL (...)", or "" if it died
    if not line.startswith("qfarm controller at "):
        stop(proc)
        raise AssertionError((tmp_path / f"{name}.log").read_text())
    url = line.split()[3]
    if "--scheduler" not in options:  # a scheduler of our own admits joined nodes only
        JOIN_TOKENS[url] = join_token(tmp_path / name)
    return proc, url


def start_node(
    tmp_path: Path, url: str, name: str, *options: str, services: str = "command=1"
) -> subprocess.Popen[str]:
    """A `qfarm node` of the controller at ``url``, online before this returns."""
    proc = start(
        ["node", "-c", url, "--services", services, "--name", name,
         "--data-dir", str(tmp_path / name), *options],
        tmp_path / f"{name}.log",
        node_env(url),
    )  # fmt: skip
    client = Client(url)
    wait_until_sync(
        lambda: any(n["name"] == name and n["state"] == "online" for n in client.nodes()),
        timeout=60,
        what=f"node {name} online",
    )
    return proc


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    processes: dict[str, subprocess.Popen[str]] = {}
    try:
        ctl = start(
            ["controller", "--port", "0", "--data-dir", str(root / "controller")],
            root / "controller.log",
        )
        processes["controller"] = ctl
        assert ctl.stdout is not None
        line = ctl.stdout.readline()  # "qfarm controller at URL (...)", or "" if it died
        assert line.startswith("qfarm controller at "), (root / "controller.log").read_text()
        url = line.split()[3]
        join = {"QFARM_JOIN_TOKEN": join_token(root / "controller")}
        for name in NODES:
            processes[name] = start(
                ["node", "-c", url, "--services", "command=1", "--name", name,
                 "--data-dir", str(root / name)],
                root / f"{name}.log",
                join,
            )  # fmt: skip
        client = Client(url)
        wait_until_sync(
            lambda: (
                sorted(n["name"] for n in client.nodes() if n["state"] == "online") == list(NODES)
            ),
            timeout=60,
            what="three nodes online",
        )
        yield Cluster(url, client, root, processes)
    finally:
        for name, proc in reversed(processes.items()):
            stop(proc)
            del name


@contextlib.contextmanager
def blocking_all_nodes(cluster: Cluster, cwd: Path) -> Iterator[Path]:
    """A batch that holds every instance until the yielded go-file exists."""
    go = cwd / "go-blocker"
    blocker = cluster.submit(
        f"while [ ! -e {go} ]; do sleep 0.02; done", cwd, spec={"frames": "1-3"}
    )
    wait_until_sync(
        lambda: cluster.client.batch(blocker).segments["running"] == 3,
        what="the blocker to hold every node",
    )
    try:
        yield go
    finally:
        go.touch()


def test_nodes_register_with_facts(cluster: Cluster) -> None:
    nodes = {n["name"]: n for n in cluster.client.nodes()}
    assert set(nodes) == set(NODES)
    for node in nodes.values():
        assert node["services"] == {"command": 1}
        assert node["cores"] >= 1 and node["memory"] > 0
        assert node["fingerprint"]["qfarm"] == cluster.client.info()["version"]


def test_cli_submit_wait_show_and_batches(cluster: Cluster, tmp_path: Path) -> None:
    submitted = cluster.cli(
        "submit", "--json", "--frames", "1-9", "--segment-size", "3", "--",
        "sh", "-c", "echo {start}-{end} > part-{segment}.txt", cwd=tmp_path,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    batch_id = json.loads(submitted.stdout)["batch"]

    waited = cluster.cli("wait", str(batch_id))
    assert waited.returncode == 0, waited.stderr
    assert f"batch {batch_id} done" in waited.stderr
    assert sorted(p.read_text() for p in tmp_path.glob("part-*.txt")) == [
        "1-3\n",
        "4-6\n",
        "7-9\n",
    ]

    shown = json.loads(cluster.cli("show", "--json", str(batch_id)).stdout)
    assert [s["state"] for s in shown["segments_list"]] == ["done"] * 3
    assert {s["node"] for s in shown["segments_list"]} <= set(NODES)
    listed = json.loads(cluster.cli("batches", "--json").stdout)
    assert any(b["id"] == batch_id and b["state"] == "done" for b in listed)
    # A batch names who submitted it, unless the submitter names an owner of its own.
    assert shown["owner"] == f"{getpass.getuser()}@{socket.gethostname()}"
    # People read the priority's name, and each segment row names its job.
    table = cluster.cli("batches").stdout
    assert re.search(rf"^\S*\s*{batch_id}\b.*\bmedium\b", table, re.M), table
    job = shown["jobs"][0]["name"]
    rows = [
        line for line in cluster.cli("show", str(batch_id)).stdout.splitlines() if job[:8] in line
    ]
    assert len([r for r in rows if "done" in r]) >= 3, rows
    # Nothing is left to cancel in a batch that is done, and the command says so.
    canceled = cluster.cli("cancel", str(batch_id))
    assert canceled.returncode == 0, canceled.stderr
    assert f"batch {batch_id} is already done: nothing was canceled" in canceled.stdout
    assert cluster.client.batch(batch_id).state == "done"


def test_a_jobs_summary_is_in_the_api_and_in_qfarm_show(cluster: Cluster, tmp_path: Path) -> None:
    batch_id = cluster.submit(
        "echo {start}", tmp_path, spec={"frames": "1-4", "segment_size": 2}, hold=True
    )
    [job] = cluster.client.batch(batch_id).raw["jobs"]
    assert job["summary"] == [
        "2 segments of 2 frames (4 frames: 1-4)",
        "runs: sh -c 'echo {start}'",
    ]
    shown = cluster.cli("show", str(batch_id))
    assert shown.returncode == 0, shown.stderr
    after_jobs = shown.stdout.split(job["type"], 1)[1]  # below the jobs table
    assert f"{job['name']}: 2 segments of 2 frames (4 frames: 1-4)" in after_jobs
    assert f"{job['name']}: runs: sh -c 'echo {{start}}'" in after_jobs
    cluster.cli("cancel", str(batch_id))


def test_python_client_submit_and_wait(cluster: Cluster, tmp_path: Path) -> None:
    handle = cluster.client.submit(
        {
            "name": "from python",
            "jobs": [
                {
                    "type": "command",
                    "spec": {"command": ["true"], "frames": "1-6", "cwd": str(tmp_path)},
                }
            ],
        }
    )
    status = handle.wait(timeout=60)
    assert (status.state, status.segments["done"]) == ("done", 6)


def test_bad_batch_is_refused_with_a_400_and_a_message(cluster: Cluster, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="malformed frame range"):
        cluster.client.submit(
            {"jobs": [{"spec": {"command": ["true"], "frames": "1-x", "cwd": str(tmp_path)}}]}
        )
    result = cluster.cli("show", "999999")
    assert result.returncode == 4  # not found
    assert "no batch 999999" in result.stderr


@pytest.mark.parametrize("args", [["batches"], ["wait", "1"], ["show", "1"]])
def test_a_controller_that_cannot_be_reached_exits_3(tmp_path: Path, args: list[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    unreachable = Cluster(url, Client(url), tmp_path, {})
    result = unreachable.cli(*args)
    assert result.returncode == 3, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"qfarm: error: cannot reach the controller at {url}")


def test_a_missing_segment_exits_4_as_a_missing_batch_does(
    cluster: Cluster, tmp_path: Path
) -> None:
    batch_id = cluster.submit("true", tmp_path)
    cluster.client.batch(batch_id)
    missing = cluster.cli("logs", str(batch_id), "--segment", "99")
    assert missing.returncode == 4, missing.stderr
    assert f"batch {batch_id} has no segment 99" in missing.stderr
    assert cluster.cli("logs", "999999").returncode == 4


def test_priority_decides_what_runs_when_nodes_free_up(cluster: Cluster, tmp_path: Path) -> None:
    order = tmp_path / "order.txt"
    with blocking_all_nodes(cluster, tmp_path):
        # Both wait behind the blocker; the low one was submitted first and is raised to
        # medium, the other lowered and then raised to high: only priority may decide.
        low = cluster.submit(f"echo low >> {order}", tmp_path, spec={"frames": "1-3"})
        high = cluster.submit(
            f"echo high >> {order}", tmp_path, spec={"frames": "1-3"}, priority="low"
        )
        raised = cluster.cli("priority", str(high), "high")
        assert raised.returncode == 0, raised.stderr
        assert f"batch {high} priority high" in raised.stdout
    wait_until_sync(lambda: all(cluster.client.batch(b).finished for b in (low, high)))
    # Every high segment was handed to a node before any low one. (The order they *ran* in
    # may differ by a process start, so the dispatch times are what is compared.)
    high_times = [a["dispatched_at"] for a in cluster.attempts(high)]
    low_times = [a["dispatched_at"] for a in cluster.attempts(low)]
    assert max(high_times) <= min(low_times)
    assert sorted(order.read_text().split()) == ["high"] * 3 + ["low"] * 3


def test_pause_stops_dispatch_and_resume_finishes(cluster: Cluster, tmp_path: Path) -> None:
    go = tmp_path / "go"
    batch_id = cluster.submit(
        f"while [ ! -e {go} ]; do sleep 0.02; done", tmp_path, spec={"frames": "1-6"}
    )
    wait_until_sync(lambda: cluster.client.batch(batch_id).segments["running"] == 3)
    assert cluster.client.action(batch_id, "pause").state == "paused"
    go.touch()  # the three running segments finish; none of the other three may start
    wait_until_sync(lambda: cluster.client.batch(batch_id).segments["done"] == 3)
    status = cluster.client.batch(batch_id)
    assert (status.state, status.segments["queued"]) == ("paused", 3)
    assert len(cluster.attempts(batch_id)) == 3
    cluster.client.action(batch_id, "resume")
    wait_until_sync(lambda: cluster.client.batch(batch_id).finished)
    assert cluster.client.batch(batch_id).state == "done"


def test_cancel_kills_running_processes(cluster: Cluster, tmp_path: Path) -> None:
    batch_id = cluster.submit(
        "echo $$ > {segment}.pid; exec sleep 300", tmp_path, spec={"frames": "1-5"}
    )
    wait_until_sync(lambda: len(list(tmp_path.glob("*.pid"))) == 3, what="three started")
    wait_until_sync(lambda: all(p.read_text().strip() for p in tmp_path.glob("*.pid")))
    pids = [int(p.read_text()) for p in tmp_path.glob("*.pid")]
    cluster.cli("cancel", str(batch_id))
    wait_until_sync(lambda: cluster.client.batch(batch_id).finished, what="canceled")
    status = cluster.client.batch(batch_id)
    assert (status.state, status.segments["canceled"]) == ("canceled", 5)
    wait_until_sync(lambda: all(gone(pid) for pid in pids), timeout=10, what="processes gone")


def test_resubmit_reruns_only_what_failed(cluster: Cluster, tmp_path: Path) -> None:
    # Segment 2 fails until a marker exists; the others succeed the first time.
    script = "[ {start} -ne 2 ] || [ -e marker ] || {{ echo no marker yet >&2; false; }}"
    batch_id = cluster.submit(script, tmp_path, spec={"frames": "1-4"})
    wait_until_sync(lambda: cluster.client.batch(batch_id).finished)
    assert cluster.client.batch(batch_id).state == "failed"
    # qfarm wait on a failed batch shows what failed, where, and the end of its log.
    script_fail = cluster.cli("wait", str(batch_id))
    assert script_fail.returncode == 1
    assert re.search(
        r"segment 2 \(.*\) failed on \S+ after \d+ attempt\(s\)", script_fail.stderr
    ), script_fail.stderr
    assert "3 done, 1 failed, 0 canceled of 4" in script_fail.stderr
    assert "    no marker yet" in script_fail.stderr
    # The job says why it failed, in the API and so in qfarm show and the Batch Monitor.
    (job,) = cluster.client.batch(batch_id).raw["jobs"]
    assert job["error"].startswith("segment 2 (frames 2) failed: "), job
    (tmp_path / "marker").touch()
    result = cluster.cli("resubmit", str(batch_id))
    assert result.returncode == 0, result.stderr
    wait_until_sync(lambda: cluster.client.batch(batch_id).finished)
    assert cluster.client.batch(batch_id).state == "done"
    segments = cluster.client.segments(batch_id)
    assert [s["attempts"] for s in segments] == [1, 2, 1, 1]


def test_a_drained_node_gets_no_new_segments(cluster: Cluster, tmp_path: Path) -> None:
    go = tmp_path / "go"
    batch_id = cluster.submit(
        f"while [ ! -e {go} ]; do sleep 0.02; done", tmp_path, spec={"frames": "1-9"}
    )
    wait_until_sync(lambda: cluster.client.batch(batch_id).segments["running"] == 3)
    drained = cluster.cli("node", "disable", "node-2")
    assert drained.returncode == 0, drained.stderr
    drained_at = time.time()
    try:
        go.touch()
        wait_until_sync(lambda: cluster.client.batch(batch_id).finished)
    finally:
        cluster.cli("node", "enable", "node-2")
    assert cluster.client.batch(batch_id).state == "done"
    later = [a for a in cluster.attempts(batch_id) if a["dispatched_at"] > drained_at]
    assert later and all(a["node"] != "node-2" for a in later)
    nodes = {n["name"]: n["state"] for n in cluster.client.nodes()}
    assert nodes["node-2"] == "online"


def test_a_node_of_another_version_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    code = (
        "import sys, qfarm; qfarm.__version__ = '0.0.0-other'\n"
        "from qfarm.cli.main import main\n"
        "sys.argv = ['qfarm', 'node', '-c', sys.argv[1], '--name', 'impostor']\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, cluster.url], capture_output=True, text=True, timeout=60,
        env={**os.environ, "QFARM_JOIN_TOKEN": join_token(cluster.root / "controller")},
    )  # fmt: skip
    assert result.returncode != 0
    assert "runs qfarm 0.0.0-other but the controller" in result.stderr
    assert "impostor" not in {n["name"] for n in cluster.client.nodes()}


def test_logs_show_each_segments_output(cluster: Cluster, tmp_path: Path) -> None:
    batch_id = cluster.submit("echo hello from {start}", tmp_path, spec={"frames": "1-2"})
    wait_until_sync(lambda: cluster.client.batch(batch_id).finished)
    result = cluster.cli("logs", str(batch_id), "--segment", "2")
    assert result.returncode == 0, result.stderr
    assert "hello from 2" in result.stdout
    assert "hello from 1" not in result.stdout


def test_events_stream_state_changes(cluster: Cluster, tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    with httpx.stream("GET", f"{cluster.url}/api/v1/events", timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.iter_lines()
        assert next(lines) == ": connected"
        batch_id = cluster.submit("true", tmp_path)
        for line in lines:
            if line.startswith("data: "):
                seen.append(json.loads(line[len("data: ") :]))
                if {"kind": "batch", "id": batch_id, "state": "done"}.items() <= seen[-1].items():
                    break
    kinds = {(c["kind"], c["state"]) for c in seen if c["batch_id"] == batch_id}
    assert {("batch", "queued"), ("segment", "dispatched"), ("segment", "done")} <= kinds


def test_the_controller_is_found_by_mdns_on_loopback(cluster: Cluster) -> None:
    env = {**os.environ, "QFARM_DISCOVERY_INTERFACES": "127.0.0.1"}
    env.pop("QFARM_CONTROLLER", None)
    found: dict[str, Any] = {}

    def listed_by_mdns() -> bool:
        # mDNS answers come when they come: on a busy machine, or with other controllers
        # answering on loopback too, one listen may end before this one's answer.
        listed = subprocess.run(
            [*QFARM, "clusters", "--json"], capture_output=True, text=True, env=env, timeout=60
        )
        assert listed.returncode == 0, listed.stderr
        found.update({c["url"]: c for c in json.loads(listed.stdout)})
        return cluster.url in found

    wait_until_sync(listed_by_mdns, timeout=60, what="the controller to answer over mDNS")
    assert found[cluster.url]["version"] == cluster.client.info()["version"]
    if len(found) == 1:  # no other controller on this machine: clients find it unaided
        batches = subprocess.run(
            [*QFARM, "batches", "--json"], capture_output=True, text=True, env=env, timeout=60
        )
        assert batches.returncode == 0, batches.stderr
        assert isinstance(json.loads(batches.stdout), list)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_node_outlives_its_controller_ends_leftovers_and_rejoins(tmp_path: Path) -> None:
    port = str(free_port())
    ctl, url = start_controller(tmp_path, port=port)
    node = None
    try:
        node = start_node(tmp_path, url, "survivor")
        client = Client(url)
        client.submit(
            {"jobs": [{"spec": {"command": ["sh", "-c", "echo $$ > pid; exec sleep 300"],
                                "cwd": str(tmp_path)}}]}
        )  # fmt: skip
        pid_file = tmp_path / "pid"
        wait_until_sync(lambda: pid_file.exists() and pid_file.read_text().strip() != "")
        pid = int(pid_file.read_text())

        ctl.kill()  # the controller dies at once; its scheduler with it
        ctl.wait()
        wait_until_sync(lambda: gone(pid), timeout=30, what="the left-over segment to end")
        assert node.poll() is None, "the node must outlive its controller"

        ctl, url_again = start_controller(tmp_path, port=port)
        assert url_again == url
        wait_until_sync(
            lambda: [n["state"] for n in Client(url).nodes()] == ["online"],
            timeout=60,
            what="the node to rejoin",
        )
    finally:
        if node is not None:
            stop(node)
        stop(ctl)


def test_a_node_waiting_for_its_controller_says_why_on_one_line(tmp_path: Path) -> None:
    from qfarm.security.pki import ClusterAuthority

    token = str(ClusterAuthority.open(tmp_path / "controller").join_token())
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    log = tmp_path / "node.log"
    node = start(
        ["node", "-c", url, "--join-token", token, "--services", "command=1",
         "--data-dir", str(tmp_path / "node")],
        log,
        {**os.environ, "COLUMNS": "60"},
    )  # fmt: skip
    try:
        wait_until_sync(lambda: "waiting for the controller" in log.read_text(), timeout=60)
        waits = [line for line in log.read_text().splitlines() if "qfarm node:" in line]
        # One whole line a message, never wrapped mid-way (as "[Errno 111] \nConnection").
        assert waits and all(
            line.endswith(f"waiting for the controller at {url}") for line in waits
        )
    finally:
        stop(node)


def test_a_node_maps_shared_paths(tmp_path: Path) -> None:
    seen_by_controller = tmp_path / "Volumes" / "media"
    seen_by_node = tmp_path / "mnt" / "media"
    seen_by_controller.mkdir(parents=True)
    seen_by_node.mkdir(parents=True)
    ctl, url = start_controller(tmp_path)
    node = None
    try:
        node = start_node(
            tmp_path, url, "mapped", "--path-map", f"{seen_by_controller}={seen_by_node}"
        )
        client = Client(url)
        handle = client.submit(
            {"jobs": [{"spec": {"command": ["sh", "-c", "pwd > where.txt"],
                                "cwd": str(seen_by_controller)}}]}
        )  # fmt: skip
        assert handle.wait(timeout=60).state == "done"
        assert (seen_by_node / "where.txt").read_text().strip() == str(seen_by_node)
        assert not (seen_by_controller / "where.txt").exists()
    finally:
        if node is not None:
            stop(node)
        stop(ctl)


def test_cluster_storage_round_trip(cluster: Cluster, tmp_path: Path) -> None:
    work = tmp_path / "client"
    work.mkdir()
    clips = {"a clip.txt": b"x" * 10, "b.txt": bytes(range(256)) * 40}
    for name, data in clips.items():
        (work / name).write_bytes(data)
    submitted = cluster.cli(
        "submit", "--upload", "--json", "--each", "*.txt", "-o", "out/{stem}.copy", "--",
        "sh", "-c", 'cp "$1" "$2"', "sh", "{input}", "{output}", cwd=work,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    batch_id = json.loads(submitted.stdout)["batch"]
    assert cluster.cli("wait", "-q", str(batch_id)).returncode == 0
    assert not (work / "out").exists(), "outputs go to cluster storage, not the client's disk"

    fetched = cluster.cli("fetch", str(batch_id), "-o", str(tmp_path / "fetched"))
    assert fetched.returncode == 0, fetched.stderr
    for name, data in clips.items():
        copy = tmp_path / "fetched" / "out" / (Path(name).stem + ".copy")
        assert copy.read_bytes() == data  # the bytes made the whole round trip

    # Removing the batch removes what the controller kept of it.
    stored = cluster.root / "controller" / "storage"
    logs = cluster.root / "controller" / "logs" / f"batch-{batch_id}"
    assert logs.is_dir() and (stored / "outputs" / f"batch-{batch_id}").is_dir()
    uploads_before = {p.name for p in (stored / "uploads").iterdir()}
    removed = cluster.cli("remove", str(batch_id), "--json")
    assert removed.returncode == 0, removed.stderr
    assert json.loads(removed.stdout) == {"removed": [batch_id]}
    assert not logs.exists() and not (stored / "outputs" / f"batch-{batch_id}").exists()
    assert len(uploads_before - {p.name for p in (stored / "uploads").iterdir()}) == 1
    assert batch_id not in {b.id for b in cluster.client.batches()}
    again = cluster.cli("remove", str(batch_id))
    assert again.returncode == 4 and f"no batch {batch_id}" in again.stderr


def test_a_batch_still_going_cannot_be_removed(cluster: Cluster, tmp_path: Path) -> None:
    with blocking_all_nodes(cluster, tmp_path):
        batch_id = cluster.submit("true", tmp_path)
        refused = cluster.cli("remove", str(batch_id))
        assert refused.returncode == 2
        assert f"batch {batch_id} is queued: cancel it before removing it" in refused.stderr
        response = httpx.delete(f"{cluster.url}/api/v1/batches/{batch_id}")
        assert response.status_code == 400 and "cancel it" in response.json()["error"]
    assert httpx.delete(f"{cluster.url}/api/v1/batches/999999").status_code == 404


def test_upload_without_inputs_is_a_usage_error(cluster: Cluster, tmp_path: Path) -> None:
    result = cluster.cli("submit", "--upload", "--", "true", cwd=tmp_path)
    assert result.returncode == 2
    assert "--upload found no input files" in result.stderr


def test_a_controller_with_a_token_refuses_requests_without_it(tmp_path: Path) -> None:
    ctl, url = start_controller(tmp_path, "--token", "s3cret")
    try:
        response = httpx.get(f"{url}/api/v1/batches")
        assert response.status_code == 401
        assert "needs a token" in response.json()["error"]
        with pytest.raises(ControllerError, match="needs a token"):
            Client(url, token="wrong").batches()
        assert Client(url, token="s3cret").batches() == []
        env = {**os.environ, "QFARM_CONTROLLER": url, "QFARM_TOKEN": "s3cret"}
        listed = subprocess.run(
            [*QFARM, "batches", "--json"], capture_output=True, text=True, env=env, timeout=60
        )
        assert listed.returncode == 0, listed.stderr
    finally:
        stop(ctl)


def test_a_controller_on_an_existing_dask_scheduler(tmp_path: Path) -> None:
    # As with a scheduler deployed by dask-kubernetes or dask-jobqueue.
    log = tmp_path / "scheduler.log"
    scheduler = subprocess.Popen(
        [str(Path(sys.executable).parent / "dask"), "scheduler", "--host", "127.0.0.1",
         "--port", "0", "--no-dashboard"],
        stdout=subprocess.DEVNULL, stderr=open(log, "w"),  # noqa: SIM115
        # It prints its address at INFO; our own processes quieten Dask to warnings.
        env={k: v for k, v in os.environ.items() if k != "DASK_LOGGING__DISTRIBUTED"},
    )  # fmt: skip
    processes = [scheduler]
    try:
        wait_until_sync(lambda: "tcp://" in log.read_text(), what="the scheduler")
        address = re.search(r"tcp://[0-9.]+:\d+", log.read_text())
        assert address is not None
        ctl, url = start_controller(tmp_path, "--scheduler", address.group(0))
        processes.append(ctl)
        client = Client(url)
        assert client.info()["scheduler"] == address.group(0)
        processes.append(start_node(tmp_path, url, "external"))
        spec = {"command": ["true"], "frames": "1-3", "cwd": str(tmp_path)}
        assert client.submit({"jobs": [{"spec": spec}]}).wait(timeout=60).state == "done"
    finally:
        for proc in reversed(processes):
            stop(proc)


def test_logs_follow_streams_output_until_the_batch_ends(cluster: Cluster, tmp_path: Path) -> None:
    go = tmp_path / "go"
    script = f"echo before {{start}}; while [ ! -e {go} ]; do sleep 0.02; done; echo after"
    batch_id = cluster.submit(script, tmp_path, spec={"frames": "1-2"})
    env = {**os.environ, "QFARM_CONTROLLER": cluster.url}
    follower = subprocess.Popen(
        [*QFARM, "logs", "--follow", str(batch_id)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # Unbuffered: communicate() reads the pipe itself, so lines that a buffered
        # readline() had taken in past the first one would be lost to it.
        bufsize=0,
        env=env,
    )
    try:
        assert follower.stdout is not None
        first = follower.stdout.readline().decode()  # printed while the segments still run
        assert first.strip().endswith(("before 1", "before 2")), first
        go.touch()
        rest, _ = follower.communicate(timeout=60)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 0
    text = first + rest.decode()
    for index in (1, 2):
        assert f"   {index} | before {index}" in text
        assert f"   {index} | after" in text
        assert f"   {index} | == attempt 1 on node-" in text


def test_a_controller_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    ctl, url = start_controller(tmp_path, "--db", postgres_url)
    node = None
    try:
        node = start_node(tmp_path, url, "pg-node", services="command=2")
        client = Client(url)
        spec = {"command": ["sh", "-c", "exit {start}"], "frames": "0-3", "cwd": str(tmp_path)}
        status = client.submit({"jobs": [{"spec": spec, "retries": 0}]}).wait(timeout=60)
        assert (status.state, status.segments["done"], status.segments["failed"]) == (
            "failed", 1, 3,
        )  # fmt: skip
        # The API describes itself.
        assert httpx.get(f"{url}/docs").status_code == 200
        assert f"{'/api/v1'}/batches" in httpx.get(f"{url}/openapi.json").json()["paths"]
    finally:
        if node is not None:
            stop(node)
        stop(ctl)


def test_the_controller_gives_no_work_to_a_worker_of_another_version(
    cluster: Cluster, tmp_path: Path
) -> None:
    # A Dask worker started by hand, past `qfarm node`'s own check (with node-1's cluster
    # certificate), that reports another qfarm version: the controller must list it as
    # refused and never use it.
    (tmp_path / "sitecustomize.py").write_text("import qfarm\nqfarm.__version__ = '0.0.0-other'\n")
    scheduler = cluster.client.info()["scheduler"]
    tls = cluster.root / "node-1" / "node" / "node-1" / "tls"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "dask"), "worker", scheduler, "--name", "impostor",
         "--nthreads", "1", "--resources", "command=1", "--no-dashboard",
         "--tls-ca-file", str(tls / "ca.pem"), "--tls-cert", str(tls / "node.pem"),
         "--tls-key", str(tls / "node-key.pem")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, text=True,
    )  # fmt: skip
    try:

        def impostor() -> dict[str, Any] | None:
            return next((n for n in cluster.client.nodes() if n["name"] == "impostor"), None)

        wait_until_sync(lambda: bool((impostor() or {}).get("refused")), timeout=60)
        assert "runs qfarm 0.0.0-other" in (impostor() or {})["refused"]
        batch_id = cluster.submit("true", tmp_path, spec={"frames": "1-6"})
        wait_until_sync(lambda: cluster.client.batch(batch_id).finished)
        assert all(a["node"] != "impostor" for a in cluster.attempts(batch_id))
    finally:
        stop(worker)


def test_submit_transcode_splits_across_transcode_nodes(tmp_path: Path) -> None:
    """`qfarm submit transcode` on a controller and two node processes sharing a folder:
    the chunks run on both nodes, each of which offers transcode because its ffmpeg runs and
    says which ffmpeg it has."""
    from qfarm.media.probe import probe
    from qfarm.media.tool import ffmpeg
    from tests.jobtypes.test_transcode import make_source

    controller, url = start_controller(tmp_path)
    nodes = []
    try:
        for name in ("enc-1", "enc-2"):
            nodes.append(start_node(tmp_path, url, name, services="transcode=1"))
        cluster = Cluster(url, Client(url), tmp_path, {})
        listed = {n["name"]: n for n in cluster.client.nodes()}
        assert {n["fingerprint"]["ffmpeg"] for n in listed.values()} == {ffmpeg().version}
        shown = cluster.cli("nodes")
        assert ffmpeg().version in shown.stdout

        make_source(tmp_path / "clip.mp4", seconds=6)
        submitted = cluster.cli(
            "submit", "transcode", "clip.mp4", "-p", "h264", "-o", "out",
            "--segment-seconds", "1", "--json", cwd=tmp_path,
        )  # fmt: skip
        assert submitted.returncode == 0, submitted.stderr
        batch_id = json.loads(submitted.stdout)["batch"]
        waited = cluster.cli("wait", str(batch_id))
        assert waited.returncode == 0, waited.stderr + str(cluster.client.segments(batch_id))

        segments = cluster.client.segments(batch_id)
        assert len(segments) == 8  # 6 video, audio, assemble
        assert {s["node"] for s in segments} == {"enc-1", "enc-2"}
        video = probe(str(tmp_path / "out" / "clip-h264.mp4")).video
        assert video is not None and video.frames == 150

        refused = cluster.cli("submit", "transcode", "clip.mp4", "-p", "nope", cwd=tmp_path)
        assert refused.returncode == 2
        assert "unknown preset 'nope'" in refused.stderr

        # Without shared storage: the source goes to the controller, each node works in its
        # own scratch folder, the assembly fetches the other node's chunks, and only the
        # output comes back with fetch.
        submitted = cluster.cli(
            "submit", "transcode", "clip.mp4", "-p", "h264", "--upload",
            "--segment-seconds", "1", "--json", cwd=tmp_path,
        )  # fmt: skip
        assert submitted.returncode == 0, submitted.stderr
        batch_id = json.loads(submitted.stdout)["batch"]
        waited = cluster.cli("wait", str(batch_id))
        assert waited.returncode == 0, waited.stderr + str(cluster.client.segments(batch_id))
        assert {s["node"] for s in cluster.client.segments(batch_id)} == {"enc-1", "enc-2"}
        fetched = cluster.cli("fetch", str(batch_id), "-o", str(tmp_path / "fetched"))
        assert fetched.returncode == 0, fetched.stderr
        files = [p for p in (tmp_path / "fetched").rglob("*") if p.is_file()]
        assert [p.name for p in files] == ["clip-h264.mp4"]
        video = probe(str(files[0])).video
        assert video is not None and video.frames == 150
        # The chunks the nodes sent for the assembly are gone from cluster storage.
        kept = tmp_path / "controller" / "storage" / "outputs" / f"batch-{batch_id}"
        assert [p.name for p in kept.iterdir()] == ["clip-h264.mp4"]
        # And from the nodes' scratch folders: each keeps the source it downloaded, for
        # later jobs of the upload, and none of the outputs it sent.
        for name in ("enc-1", "enc-2"):
            scratch = cluster.root / name / "node" / name / "scratch"
            left = [
                p.name for p in scratch.rglob("*") if p.is_file() and p.name != ".qfarm-complete"
                and p.name != ".qfarm-used"
            ]  # fmt: skip
            assert left == ["clip.mp4"], (name, left)
    finally:
        for proc in [*nodes, controller]:
            stop(proc)
