"""Faults with real processes: a `qfarm controller` and `qfarm node` processes on loopback,
killed, stopped, starved of disk and restarted while they work. Each test checks that the
batch still ends with every output right and nothing run twice that had finished, and
records what happened and how long recovery took in test-artifacts/reliability.json, from
which bench/reliability_table.py writes docs/reliability.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from qfarm.client import Client
from tests.controller.test_cluster import start_controller, start_node, stop
from tests.helpers import wait_until_sync

pytestmark = pytest.mark.integration

RESULTS = Path(
    os.environ.get("QFARM_TEST_ARTIFACTS") or Path(__file__).parents[2] / "test-artifacts"
)
RECORD = RESULTS / "reliability.json"
PART = "out/part-{start}.txt"
TIMEOUT = 6  # the frozen node's controller's --node-timeout, seconds (15 by default)


def record(fault: str, happened: str, recovered_s: float | None, lost: str) -> None:
    """Add one row to the reliability record (kept across tests of one run)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    # Tests run in parallel processes (pytest-xdist): one writer at a time.
    with open(RESULTS / "reliability.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        rows = json.loads(RECORD.read_text()) if RECORD.exists() else {}
        rows[fault] = {
            "happened": happened,
            "recovered_s": None if recovered_s is None else round(recovered_s, 1),
            "lost": lost,
        }
        RECORD.write_text(json.dumps(rows, indent=1))


def free_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return str(sock.getsockname()[1])


def process_tree(proc: subprocess.Popen[str]) -> list[psutil.Process]:
    parent = psutil.Process(proc.pid)
    return [parent, *parent.children(recursive=True)]


def signal_tree(proc: subprocess.Popen[str], sig: int) -> None:
    """Send ``sig`` to a node process and its worker (not the segment processes, which run
    in their own process groups: a dead worker leaves them, as a crash would)."""
    for p in process_tree(proc):
        with contextlib.suppress(psutil.NoSuchProcess):
            if p.pid == proc.pid or "qfarm" in " ".join(p.cmdline()) or "python" in p.name():
                p.send_signal(sig)


def segment_job(cwd: Path, frames: str, seconds: float, **extra: Any) -> dict[str, Any]:
    """Each segment sleeps, then writes out/part-N.txt (renamed into place on success) and
    appends its number to runs.log, so a rerun of a finished segment shows twice."""
    script = f"sleep {seconds}; echo {{start}} > {{output}}; echo {{start}} >> runs.log"
    return {
        "type": "command",
        "spec": {"command": ["sh", "-c", script], "frames": frames, "output": PART,
                 "cwd": str(cwd), **extra.pop("spec", {})},
        "retries": extra.pop("retries", 3),
        **extra,
    }  # fmt: skip


def check_outputs(cwd: Path, frames: int) -> None:
    for n in range(1, frames + 1):
        assert (cwd / "out" / f"part-{n}.txt").read_text().strip() == str(n)
    assert not [p for p in (cwd / "out").iterdir() if p.name.startswith(".qfarm-")]


@contextlib.contextmanager
def farm(tmp_path: Path, nodes: int, *options: str, port: str = "0") -> Iterator[dict[str, Any]]:
    procs: dict[str, Any] = {}
    controller, url = start_controller(tmp_path, *options, port=port)
    procs["controller"] = controller
    try:
        for i in range(nodes):
            procs[f"node-{i + 1}"] = start_node(tmp_path, url, f"node-{i + 1}")
        yield {"url": url, "client": Client(url), "procs": procs}
    finally:
        for proc in reversed(list(procs.values())):
            with contextlib.suppress(Exception):
                for p in process_tree(proc):
                    with contextlib.suppress(psutil.NoSuchProcess):
                        p.send_signal(signal.SIGCONT)
            stop(proc)


def test_kill_9_a_node_while_it_runs_segments(tmp_path: Path) -> None:
    with farm(tmp_path, 3) as f:
        client: Client = f["client"]
        batch = client.submit({"jobs": [segment_job(tmp_path, "1-6", 2)]}).id
        wait_until_sync(lambda: client.batch(batch).segments["running"] == 3, what="3 running")
        victim = next(s["node"] for s in client.segments(batch) if s["state"] == "running")
        killed_at = time.monotonic()
        signal_tree(f["procs"][victim], signal.SIGKILL)
        wait_until_sync(lambda: client.batch(batch).finished, timeout=120, what="batch to end")
        took = time.monotonic() - killed_at
        assert client.batch(batch).state == "done"
        nodes = {n["name"]: n["state"] for n in client.nodes()}
        assert nodes[victim] == "offline"
        lost = [a for s in client.segments(batch) for a in client.attempts(batch, s["id"])
                if a["outcome"] == "lost"]  # fmt: skip
        assert lost and all(a["node"] == victim for a in lost)
    check_outputs(tmp_path, 6)
    record("kill -9 a node running segments",
           f"its {len(lost)} segment(s) reran on the other nodes; the batch completed",
           took, "nothing")  # fmt: skip


@pytest.mark.parametrize("signalled", ["node", "unit"])
def test_a_node_stopped_mid_segment_gives_its_work_back_without_a_failure(
    tmp_path: Path, signalled: str
) -> None:
    """`qfarm node` stopped as a service manager stops it (SIGTERM) while it runs segments,
    the node process alone (Kubernetes: the container's first process), or every process of
    the unit, segments included (systemd's KillMode=control-group, Slurm's job step): either
    way the segments' ends are no failures of theirs (retries 0 here), nothing goes on
    writing, and they run again on the other node."""
    with farm(tmp_path, 2) as f:
        client: Client = f["client"]
        batch = client.submit({"jobs": [segment_job(tmp_path, "1-4", 3, retries=0)]}).id
        wait_until_sync(lambda: client.batch(batch).segments["running"] == 2, what="2 running")
        victim = next(s["node"] for s in client.segments(batch) if s["state"] == "running")
        node = f["procs"][victim]
        stopped_at = time.monotonic()
        for proc in process_tree(node) if signalled == "unit" else [psutil.Process(node.pid)]:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGTERM)
        assert node.wait(timeout=60) == 0
        wait_until_sync(lambda: client.batch(batch).finished, timeout=120, what="batch to end")
        took = time.monotonic() - stopped_at
        outcomes = [(a["node"], a["outcome"]) for s in client.segments(batch)
                    for a in client.attempts(batch, s["id"])]  # fmt: skip
        assert client.batch(batch).state == "done", outcomes
        assert (victim, "lost") in outcomes
        assert all(outcome in ("done", "lost") for _, outcome in outcomes), outcomes
        assert all(outcome == "lost" for node, outcome in outcomes if node == victim), outcomes
    check_outputs(tmp_path, 4)
    # Each segment wrote once: none of the stopped node's went on after it was requeued.
    assert sorted((tmp_path / "runs.log").read_text().split()) == ["1", "2", "3", "4"]
    whom = "the node process" if signalled == "node" else "every process of the node"
    record(f"{whom} sent SIGTERM while it runs segments",
           "their processes ended with it; they were lost, not failed (no retry used), and "
           "reran on the other node; the batch completed", took, "nothing")  # fmt: skip


def test_kill_9_the_controller_mid_batch_and_start_it_again(tmp_path: Path) -> None:
    port = free_port()
    with farm(tmp_path, 2, port=port) as f:
        client: Client = f["client"]
        batch = client.submit({"jobs": [segment_job(tmp_path, "1-8", 1)]}).id
        wait_until_sync(lambda: client.batch(batch).segments["done"] >= 3, what="3 done")
        done_before = {s["id"]: s["index"] for s in client.segments(batch) if s["state"] == "done"}
        f["procs"]["controller"].kill()
        f["procs"]["controller"].wait()
        killed_at = time.monotonic()
        controller, url = start_controller(tmp_path, port=port)
        f["procs"]["controller"] = controller
        client = Client(url)
        wait_until_sync(lambda: client.batch(batch).finished, timeout=120, what="batch to end")
        took = time.monotonic() - killed_at
        assert client.batch(batch).state == "done"
        for seg in client.segments(batch):
            if seg["id"] in done_before:
                assert len(client.attempts(batch, seg["id"])) == 1  # finished: not run again
    check_outputs(tmp_path, 8)
    # What the store had as done ran once. One that finished on its node in the moment the
    # controller died, with its report lost, runs again: its output is renamed into place
    # once more, whole.
    runs = (tmp_path / "runs.log").read_text().split()
    assert set(runs) == {str(n) for n in range(1, 9)}
    assert all(runs.count(str(index)) == 1 for index in done_before.values())
    record("kill -9 the controller mid-batch, start it again",
           f"the batch resumed from the store; {len(done_before)} finished segments were not "
           "run again", took, "nothing")  # fmt: skip


def test_a_node_that_stops_answering_is_given_up_and_rejoins(tmp_path: Path) -> None:
    with farm(tmp_path, 2, "--node-timeout", f"{TIMEOUT}s") as f:
        client: Client = f["client"]
        batch = client.submit({"jobs": [segment_job(tmp_path, "1-4", 3)]}).id
        wait_until_sync(lambda: client.batch(batch).segments["running"] == 2, what="2 running")
        frozen = f["procs"]["node-1"]
        signal_tree(frozen, signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            wait_until_sync(
                lambda: {n["name"]: n["state"] for n in client.nodes()}["node-1"] == "offline",
                timeout=90, what="node-1 offline",
            )  # fmt: skip
            noticed = time.monotonic() - stopped_at
            assert noticed >= TIMEOUT  # not before its --node-timeout
            wait_until_sync(lambda: client.batch(batch).finished, timeout=120, what="batch end")
            assert client.batch(batch).state == "done"
        finally:
            signal_tree(frozen, signal.SIGCONT)
        wait_until_sync(
            lambda: {n["name"]: n["state"] for n in client.nodes()}["node-1"] == "online",
            timeout=120, what="node-1 back online",
        )  # fmt: skip
        rejoined = time.monotonic() - stopped_at
    check_outputs(tmp_path, 4)
    record("a node stops answering (SIGSTOP), then comes back",
           f"shown offline after {noticed:.0f} s (--node-timeout {TIMEOUT}s), its segments "
           f"ran elsewhere; it rejoined "
           f"by itself {rejoined - noticed:.0f} s after it was let go",
           noticed, "nothing")  # fmt: skip


def failed_once_then_done_elsewhere(
    tmp_path: Path, job: dict[str, Any]
) -> tuple[list[dict[str, Any]], float]:
    """Run a one-segment ``job`` on two nodes; check that its first attempt failed and a
    second, on the other node, was done. Its attempts, and how long the batch took."""
    with farm(tmp_path, 2) as f:
        client: Client = f["client"]
        started = time.monotonic()
        batch = client.submit({"jobs": [job]}).id
        wait_until_sync(lambda: client.batch(batch).finished, timeout=60, what="batch to end")
        took = time.monotonic() - started
        assert client.batch(batch).state == "done"
        segment = client.segments(batch)[0]
        attempts = client.attempts(batch, segment["id"])
    assert [a["outcome"] for a in attempts] == ["failed", "done"]
    assert attempts[0]["node"] != attempts[1]["node"]
    return attempts, took


def test_a_hanging_segment_is_killed_at_its_timeout_and_retried(tmp_path: Path) -> None:
    marker = tmp_path / "hung-once"
    script = (f"if [ ! -e {marker} ]; then touch {marker}; exec sleep 600; fi; "
              "echo {start} > {output}; echo {start} >> runs.log")  # fmt: skip
    job = {"type": "command", "timeout": 2, "retries": 2,
           "spec": {"command": ["sh", "-c", script], "frames": "1", "output": PART,
                    "cwd": str(tmp_path)}}  # fmt: skip
    attempts, took = failed_once_then_done_elsewhere(tmp_path, job)
    assert "timed out after 2 s" in attempts[0]["error"]
    check_outputs(tmp_path, 1)
    record("a segment hangs", "killed at its 2 s timeout, retried on the other node, done",
           took, "nothing")  # fmt: skip


def test_a_segment_that_stops_making_progress_is_ended_and_retried(tmp_path: Path) -> None:
    # It prints progress for a while, then hangs without a word: no wall-clock timeout
    # would end it, its stall timeout does, and the other node runs it.
    marker = tmp_path / "stalled-once"
    script = (f"for i in 1 2 3 4 5; do echo working $i; sleep 0.3; done; "
              f"if [ ! -e {marker} ]; then touch {marker}; exec sleep 600; fi; "
              "echo {start} > {output}; echo {start} >> runs.log")  # fmt: skip
    job = {"type": "command", "retries": 2,
           "spec": {"command": ["sh", "-c", script], "frames": "1", "output": PART,
                    "cwd": str(tmp_path), "stall_timeout": 2}}  # fmt: skip
    attempts, took = failed_once_then_done_elsewhere(tmp_path, job)
    assert attempts[0]["error"] == "no progress for 2.0 s"
    # Its log is kept: the progress it made, then the reason.
    log = attempts[0]["log_tail"]
    assert "working 5" in log
    assert log.rstrip().endswith("[qfarm] ended: no progress for 2.0 s (its stall timeout)")
    check_outputs(tmp_path, 1)
    happened = "ended 2 s after its last output, retried on the other node, done"
    record("a segment stops making progress", happened, took, "nothing")


def test_a_full_output_disk_fails_clearly_and_leaves_no_corrupt_file(tmp_path: Path) -> None:
    disk = tmp_path / "small-disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(disk)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.strip()}")
    try:
        job = {"type": "command", "retries": 0,
               "spec": {"command": ["sh", "-c", "head -c 2000000 /dev/zero > {output}"],
                        "output": str(disk / "big.bin"), "cwd": str(tmp_path)}}  # fmt: skip
        with farm(tmp_path, 1) as f:
            client: Client = f["client"]
            batch = client.submit({"jobs": [job]}).id
            wait_until_sync(lambda: client.batch(batch).finished, timeout=60, what="batch end")
            assert client.batch(batch).state == "failed"
            segment = client.segments(batch)[0]
            attempt = client.attempts(batch, segment["id"])[-1]
            assert "No space left on device" in attempt["log_tail"]
            assert segment["error"].startswith("command sh exited with code")
        assert list(disk.iterdir()) == []  # no big.bin, not even a partial one
    finally:
        subprocess.run(["umount", str(disk)], check=False)
    record("the output disk fills up (a 512 KiB tmpfs)",
           "the segment failed with the tool's 'No space left on device' in its log",
           None, "nothing: no file at the final path, not even a partial one")  # fmt: skip


def test_soak_with_random_failures_and_two_controller_restarts(tmp_path: Path) -> None:
    """2,000 segments on 3 nodes; a fifth of first attempts fail at random; the controller
    is killed and started again twice. Every segment ends done, each output is right."""
    frames = 2000
    script = ('[ ! -e tried/{start} ] && touch tried/{start} && [ $(( $$ % 5 )) -eq 0 ] && exit 3; '
              "echo {start} > {output}")  # fmt: skip
    (tmp_path / "tried").mkdir()
    job = {"type": "command", "retries": 3,
           "spec": {"command": ["sh", "-c", script], "frames": f"1-{frames}",
                    "output": "out/part-{start}.txt", "cwd": str(tmp_path)}}  # fmt: skip
    port = free_port()
    with farm(tmp_path, 3, port=port) as f:
        client: Client = f["client"]
        started = time.monotonic()
        batch = client.submit({"jobs": [job]}).id
        for threshold in (frames // 4, frames // 2):
            wait_until_sync(lambda t=threshold, c=client: c.batch(batch).segments["done"] >= t,
                            timeout=240, what=f"{threshold} done")  # fmt: skip
            f["procs"]["controller"].kill()
            f["procs"]["controller"].wait()
            controller, url = start_controller(tmp_path, port=port)
            f["procs"]["controller"] = controller
            client = Client(url)
        wait_until_sync(lambda: client.batch(batch).finished, timeout=240, what="batch end")
        took = time.monotonic() - started
        status = client.batch(batch)
        assert status.state == "done", status.segments
        assert status.segments["done"] == frames
        failed = sum(1 for s in client.segments(batch) if s["failures"])
    check_outputs(tmp_path, frames)
    record("soak: 2,000 segments, 3 nodes, random failures, the controller killed twice",
           f"every segment done, every output right; {failed} segments failed once and were "
           f"retried; whole run {took:.0f} s", None, "nothing")  # fmt: skip


def worker_of(node: subprocess.Popen[str]) -> psutil.Process | None:
    """The Dask worker process a node's nanny runs: a child of the node process, forked
    (the first one: the node's own command line) or spawned (a restart)."""
    parent = psutil.Process(node.pid)
    own = parent.cmdline()
    for child in parent.children():
        with contextlib.suppress(psutil.NoSuchProcess):
            line = child.cmdline()
            if "spawn_main" in " ".join(line) or line == own:
                return child
    return None


def test_a_crashed_worker_is_restarted_and_a_crash_loop_takes_the_node_out(
    tmp_path: Path,
) -> None:
    with farm(tmp_path, 1) as f:
        client: Client = f["client"]
        node = f["procs"]["node-1"]

        def node_address() -> tuple[str, str]:
            entry = {n["name"]: n for n in client.nodes()}["node-1"]
            return entry["address"], entry["state"]

        for crash in range(1, 6):
            before, _ = node_address()
            worker = worker_of(node)
            assert worker is not None
            crashed_at = time.monotonic()
            worker.kill()
            # The nanny starts a new worker, which joins again under the node's name.
            wait_until_sync(
                lambda b=before: (a := node_address())[0] != b and a[1] == "online",
                timeout=60, what=f"the worker back after crash {crash}",
            )  # fmt: skip
            if crash == 1:
                restarted = time.monotonic() - crashed_at
        wait_until_sync(
            lambda: "out of service" in {n["name"]: n for n in client.nodes()}["node-1"]["refused"],
            timeout=60, what="the node taken out of service",
        )  # fmt: skip
        batch = client.submit({"jobs": [segment_job(tmp_path, "1", 0.1)]}).id
        assert client.batch(batch).segments["running"] == 0
        enabled = subprocess.run(
            [sys.executable, "-m", "qfarm", "node", "enable", "node-1", "-c", f["url"]],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert enabled.returncode == 0, enabled.stderr
        wait_until_sync(lambda: client.batch(batch).finished, timeout=60, what="batch end")
        assert client.batch(batch).state == "done"
    record("a node's worker process crashes (kill -9 of the worker)",
           "its nanny started a new worker, which rejoined; after the fifth crash in 10 "
           "minutes the node was taken out of service, with the reason shown, until "
           "`qfarm node enable`", restarted, "nothing")  # fmt: skip
