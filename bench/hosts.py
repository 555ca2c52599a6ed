"""The speed-up of separate hosts: qfarm on one and two one-core hosts, against plain ffmpeg
on one core, with no shared disk.

Each host is a Linux network namespace with its own address on a bridge (10.77.0.1x), its
node pinned to its own core with taskset and working in its own folder; the controller
listens on the bridge's address in the root namespace. Sources go to the nodes through
cluster storage (`qfarm submit transcode --upload`) and the outputs come back with `qfarm
fetch`, so every byte crosses the "network" as it would between machines. The client runs
the real CLI against the real controller over HTTPS with a client token; nodes join with the
join token over mutual TLS. Needs root (ip netns, a bridge).

Figures:
  wall        submit -> batch done (qfarm), process start -> exit (plain ffmpeg, one core)
  speed-up    one-host wall / N-host wall
  vs ffmpeg   plain one-core wall / qfarm N-host wall
  split, transfer, assemble
              from the batch's own records: planning, the upload and fetch, the assemble
              segment: what an estimate for 10 and 100 hosts is made of

The plot needs matplotlib (pip install '.[bench]').

Usage: sudo python bench/hosts.py [--seconds 60] [--preset h264-720p] [--hosts 1 2] [--rounds 3]
       [--write docs/benchmarks.md] [--plot docs/hosts-speedup.png]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from dispatch import machine  # noqa: E402
from qfarm.client import Client  # noqa: E402
from qfarm.media.probe import probe  # noqa: E402
from qfarm.security.pki import ClusterAuthority  # noqa: E402
from transcode import make_source, plain_argv  # noqa: E402

QFARM = [sys.executable, "-m", "qfarm"]
BRIDGE, BRIDGE_IP, PORT = "qfbr0", "10.77.0.1", 8479


def sh(*argv: str) -> None:
    subprocess.run(argv, check=True)


@contextlib.contextmanager
def hosts(count: int) -> Iterator[list[str]]:
    """``count`` network namespaces on one bridge; their names. Removed afterwards."""
    names = [f"qf-h{i}" for i in range(1, count + 1)]
    sh("ip", "link", "add", BRIDGE, "type", "bridge")
    try:
        sh("ip", "addr", "add", f"{BRIDGE_IP}/24", "dev", BRIDGE)
        sh("ip", "link", "set", BRIDGE, "up")
        for i, name in enumerate(names, start=1):
            sh("ip", "netns", "add", name)
            sh("ip", "link", "add", f"vq{i}a", "type", "veth", "peer", "name", f"vq{i}b")
            sh("ip", "link", "set", f"vq{i}a", "master", BRIDGE, "up")
            sh("ip", "link", "set", f"vq{i}b", "netns", name)
            sh("ip", "-n", name, "addr", "add", f"10.77.0.{10 + i}/24", "dev", f"vq{i}b")
            sh("ip", "-n", name, "link", "set", f"vq{i}b", "up")
            sh("ip", "-n", name, "link", "set", "lo", "up")
        yield names
    finally:
        for i, name in enumerate(names, start=1):
            subprocess.run(["ip", "link", "del", f"vq{i}a"], capture_output=True)
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True)


def wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.2)


def qfarm_batch(source: Path, out: Path, work: Path, host_count: int, args: argparse.Namespace
                ) -> dict[str, Any]:  # fmt: skip
    """One run: a controller, ``host_count`` node hosts, one transcode batch; each in new
    folders (a controller started again on its folder shows no new client token)."""
    work = Path(tempfile.mkdtemp(prefix=f"hosts-{host_count}-", dir=work))
    data = work / f"controller-{host_count}"
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("QFARM_TOKEN", None)
    with hosts(host_count) as names:  # the bridge first: the controller listens on it
        ctl = subprocess.Popen(
            [*QFARM, "controller", "--host", BRIDGE_IP, "--port", str(PORT), "--no-advertise",
             "--data-dir", str(data)],
            stdout=subprocess.PIPE,
            stderr=open(work / f"controller-{host_count}.log", "w"),  # noqa: SIM115
            text=True, env=env,
        )  # fmt: skip
        procs = [ctl]
        try:
            assert ctl.stdout is not None
            url, token = "", ""
            while not (url and token):
                line = ctl.stdout.readline()
                if not line:
                    raise SystemExit((work / f"controller-{host_count}.log").read_text())
                if line.startswith("qfarm controller at "):
                    url = line.split()[3]
                if line.startswith("client token"):
                    token = line.split()[-1]
            authority = ClusterAuthority.existing(data)
            join = str(authority.join_token())
            # The API is HTTPS beyond loopback: the CLI and the client here trust its CA.
            env["QFARM_CA_FILE"] = str(authority.folder / "ca.pem")
            cores = os.cpu_count() or 1
            for core, name in enumerate(names):
                home = work / f"{name}-{host_count}"
                procs.append(subprocess.Popen(
                    # Its own hostname too (a UTS namespace): separate machines have
                    # their own, and the controller shares out cores per host.
                    ["ip", "netns", "exec", name, "unshare", "--uts", "sh", "-c",
                     f'hostname {name} && exec "$@"', "sh", "taskset", "-c", str(core % cores),
                     *QFARM, "node", "--controller", url, "--services", "transcode=1",
                     "--name", name, "--host", f"10.77.0.{11 + core}", "--data-dir", str(home)],
                    stdout=subprocess.DEVNULL,
                    stderr=open(home.with_suffix(".log"), "w"),  # noqa: SIM115
                    env={**env, "QFARM_JOIN_TOKEN": join, "QFARM_TOKEN": token},
                ))  # fmt: skip
            client = Client(url, token=token, ca=authority.ca_cert)
            wait_for(
                lambda: sum(n["state"] == "online" for n in client.nodes()) == host_count,
                120, f"{host_count} node(s) online",
            )  # fmt: skip
            controller = psutil.Process(ctl.pid)
            cpu_before = sum(controller.cpu_times()[:2])
            nodes_before = python_cpu(procs[1:])
            steal = steal_seconds()
            began = time.perf_counter()
            submitted = subprocess.run(
                [*QFARM, "submit", "transcode", str(source), "-p", args.preset, "--upload",
                 "--segment-seconds", str(args.segment_seconds), "--retries", "0",
                 "--controller", url, "--token", token, "--json"],
                capture_output=True, text=True, env=env, check=True,
            )  # fmt: skip
            batch_id = int(json.loads(submitted.stdout)["batch"])
            wait_for(lambda: client.batch(batch_id).state in ("done", "failed"), 1800, "the batch")
            done = time.perf_counter()
            controller_cpu = sum(controller.cpu_times()[:2]) - cpu_before
            nodes_cpu = python_cpu(procs[1:]) - nodes_before
            steal = steal_seconds() - steal
            status = client.batch(batch_id)
            if status.state != "done":
                raise SystemExit(f"batch {batch_id} {status.state}")
            out.mkdir(parents=True, exist_ok=True)
            fetched = client.fetch(batch_id, out)
            wall_fetch = time.perf_counter() - began
            segs = client.segments(batch_id)
            attempts = {s["id"]: client.attempts(batch_id, s["id"]) for s in segs}
        finally:
            for proc in reversed(procs):
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
        assemble = [a for s in segs if s["kind"] == "assemble" for a in attempts[s["id"]]]
        work_atts = [a for s in segs if s["kind"] == "work" for a in attempts[s["id"]]]
        return {
            "hosts": host_count,
            "wall": done - began,
            "wall_fetch": wall_fetch,
            "controller_cpu": controller_cpu,
            "nodes_cpu": nodes_cpu,
            "steal": steal,
            "segments": len(work_atts),
            "assemble": sum(a["ended_at"] - a["started_at"] for a in assemble),
            "work_sum": sum(a["ended_at"] - a["started_at"] for a in work_atts),
            "output": fetched[0] if fetched else None,
        }


def plain_one_core(source: Path, out: Path, preset: str) -> float:
    argv = ["taskset", "-c", "0", *plain_argv(source, out, preset)]
    began = time.perf_counter()
    subprocess.run(argv, check=True)
    return time.perf_counter() - began


def describe(path: Path) -> tuple[int, float]:
    info = probe(str(path))
    assert info.video is not None
    return info.video.frames, info.duration


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--preset", default="h264-720p")
    parser.add_argument("--hosts", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--segment-seconds", type=float, default=10.0)
    parser.add_argument("--write", type=Path)
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/hosts.py makes network namespaces: run it as root")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = work / "source.mp4"
        make_source(source, args.seconds)
        plain_out = work / "plain.mp4"
        plains, rows = [], []
        # Rounds alternate the plain tool and each host count, so a slow spell of the
        # machine (a virtual one's host taking its cores: "steal") falls on all of them.
        for number in range(1, args.rounds + 1):
            steal = steal_seconds()
            plains.append(plain_one_core(source, plain_out, args.preset))
            print(f"round {number}: plain ffmpeg, one core: {plains[-1]:.1f} s "
                  f"(steal {steal_seconds() - steal:.1f} s)")  # fmt: skip
            expected = describe(plain_out)
            for count in args.hosts:
                row = qfarm_batch(source, work / f"out-{count}-{number}", work, count, args)
                got = describe(Path(row["output"]))
                row["same_as_plain"] = got[0] == expected[0] and abs(got[1] - expected[1]) < 0.05
                row["frames"], row["duration"] = got
                row["round"] = number
                print(json.dumps({k: v for k, v in row.items() if k != "output"}, default=str))
                rows.append(row)
    plain = statistics.median(plains)
    medians = [median_row([r for r in rows if r["hosts"] == count]) for count in args.hosts]
    base = medians[0]["wall"]
    for r in medians:
        wall = r["wall"]
        print(f"{r['hosts']} host(s): median wall {wall:.1f} s, speed-up {base / wall:.2f}x, "
              f"plain 1-core / qfarm {plain / wall:.2f}x")  # fmt: skip
    if args.write:
        write_markdown(args.write, rows, medians, plains, expected, base, args)
    if args.plot:
        plot(args.plot, medians, base)


def python_cpu(nodes: list[subprocess.Popen[Any]]) -> float:
    """CPU seconds the nodes' own Python processes (each node and its Dask worker) have
    used so far, without their segments' tools."""
    total = 0.0
    for node in nodes:
        with contextlib.suppress(psutil.NoSuchProcess):
            parent = psutil.Process(node.pid)
            for proc in [parent, *parent.children(recursive=True)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    if not proc.name().startswith(("ffmpeg", "ffprobe")):
                        total += sum(proc.cpu_times()[:2])
    return total


def steal_seconds() -> float:
    """CPU time this (virtual) machine's host took from it so far, all cores: /proc/stat's
    steal column, in clock ticks."""
    with open("/proc/stat", encoding="ascii") as fh:
        fields = fh.readline().split()
    return int(fields[8]) / os.sysconf("SC_CLK_TCK")


def median_row(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The runs of one host count as one row: the median of each figure."""
    row = dict(runs[0])
    for key in ("wall", "wall_fetch", "controller_cpu", "nodes_cpu", "assemble", "work_sum",
                "steal"):  # fmt: skip
        row[key] = statistics.median(r[key] for r in runs)
    row["same_as_plain"] = all(r["same_as_plain"] for r in runs)
    return row


def estimate(rows: list[dict[str, Any]], n: int) -> float:
    """Wall on ``n`` hosts from the measured parts: the one-host run's serial part (all but
    the segments' encoding) plus its encoding spread over ``n`` hosts, or over as many as
    there are segments (a host more than segments has nothing to do)."""
    one = rows[0]
    serial = max(0.0, one["wall"] - one["work_sum"])
    return serial + one["work_sum"] / min(n, one["segments"])


def write_markdown(
    path: Path,
    rows: list[dict[str, Any]],
    medians: list[dict[str, Any]],
    plains: list[float],
    expected: tuple[int, float],
    base: float,
    args: argparse.Namespace,
) -> None:
    today = datetime.date.today().isoformat()
    plain = statistics.median(plains)
    lines = [
        f"### Separate hosts: {today}",
        "",
        f"Machine: {machine()}. Each host a network namespace with its own address on a "
        "bridge and its own hostname, its node pinned to its own core (taskset) with its "
        "own folder: no shared disk, sources sent through cluster storage (`--upload`), "
        "outputs fetched back. A "
        f"{args.seconds} s 1080p25 H.264 source (testsrc2 and a sine), preset "
        f"`{args.preset}`, {args.segment_seconds:g} s segments. The controller on the bridge "
        "address in the root namespace (not pinned: it shares the two cores). Command: "
        f"`sudo python bench/hosts.py --seconds {args.seconds} --hosts "
        f"{' '.join(map(str, args.hosts))} --rounds {args.rounds}`.",
        "",
        f"Plain ffmpeg on one core (taskset -c 0), median of {len(plains)}: **{plain:.1f} s** "
        f"({', '.join(f'{p:.1f}' for p in plains)} s), {expected[0]} frames, "
        f"{expected[1]:.3f} s.",
        "",
        "Every run (steal: CPU time the virtual machine's host took from it meanwhile):",
        "",
        "| round | hosts | qfarm wall | with fetch | summed encode | assemble | controller CPU "
        "| nodes' Python CPU | steal | output = plain (frames, duration) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['round']} | {r['hosts']} | {r['wall']:.1f} s | {r['wall_fetch']:.1f} s | "
            f"{r['work_sum']:.1f} s | {r['assemble']:.1f} s | {r['controller_cpu']:.1f} s | "
            f"{r['nodes_cpu']:.1f} s | {r['steal']:.1f} s | "
            f"{'yes' if r['same_as_plain'] else 'NO'} "
            f"({r['frames']}, {r['duration']:.3f} s) |"
        )
    lines += [
        "",
        "Medians:",
        "",
        "| hosts | qfarm wall | speed-up over 1 host | plain 1-core / qfarm | segments |",
        "| ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in medians:
        lines.append(
            f"| {r['hosts']} | {r['wall']:.1f} s | **{base / r['wall']:.2f}x** | "
            f"{plain / r['wall']:.2f}x | {r['segments']} |"
        )
    one = medians[0]
    lines += [
        "",
        f"On paper, from the one-host runs: {one['work_sum']:.1f} s of segment time, the "
        f"rest ({max(0.0, one['wall'] - one['work_sum']):.1f} s: planning, upload, dispatch, "
        "the assemble segment) serial. With those costs fixed and the same "
        f"{args.segment_seconds:g} s segments ({one['segments']} of them, so no more than "
        f"{one['segments']} hosts have work): 10 hosts {estimate(medians, 10):.1f} s "
        f"({base / estimate(medians, 10):.1f}x), 100 hosts the same. Segments of 1 s would "
        "give 100 hosts work, at a per-segment cost this run does not measure.",
        "",
    ]
    with path.open("a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


def plot(path: Path, rows: list[dict[str, Any]], base: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=120)
    counts = [r["hosts"] for r in rows]
    ax.plot(counts, [base / r["wall"] for r in rows], "o-", label="measured")
    more = [1, 2, 4, 10]
    ax.plot(more, [base / estimate(rows, n) for n in more], "--", label="estimated")
    ax.plot(more, more, ":", color="grey", label="linear")
    ax.set_xlabel("hosts (one core each)")
    ax.set_ylabel("speed-up over one host")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


if __name__ == "__main__":
    shutil.which("ip") or sys.exit("needs iproute2's ip")
    main()
