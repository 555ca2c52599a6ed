"""Dispatch benchmark: no-op segments per second and submit-to-start latency.

Runs N segments of the command `true` through the whole path (planning, store, dispatcher,
engine, node, subprocess, results back into the store) on an embedded cluster, and in the
same run the same N `true` subprocesses through plain Dask (`client.map`, all submitted at
once) on an identical cluster, as the engine's own ceiling.

Figures:
  segments/s        N / (first dispatch -> last segment recorded done)
  start latency     attempt started_at - dispatched_at: from the dispatcher handing a segment
                    to the engine to its process running on the node (p50, p95)
  refill gap        per instance, from one segment's end to the next one's start on the
                    same node (p50, p95): what the dispatcher's tick costs a busy farm

  idle latency      one single-segment batch at a time on an idle farm: from submit to the
                    process starting on its node (p50, p95)

  over HTTP         the same batches submitted with the Python client to a `qfarm controller`
                    process, run by `qfarm node` processes (--api-nodes, 0 to skip)

Usage: python bench/dispatch.py [--segments 1000 10000] [--nodes 2] [--instances 16]
       [--idle-samples 200] [--api-nodes 3] [--api-instances 10] [--repeat 3]
       [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from qfarm.client import Client  # noqa: E402
from qfarm.controller.service import Controller  # noqa: E402
from qfarm.domain.model import BatchRequest, BatchState, JobRequest  # noqa: E402
from qfarm.engine.base import NodeSpec  # noqa: E402
from qfarm.engine.dask import DaskEngine as Engine  # noqa: E402
from qfarm.security import pki  # noqa: E402
from qfarm.store import Store, attempts  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median rate (its other figures come with it)."""
    return sorted(runs, key=lambda r: r["rate"])[len(runs) // 2]


def run_true() -> int:
    return subprocess.run(["true"], check=False).returncode


async def bench_qfarm(count: int, specs: list[NodeSpec], work: Path) -> dict[str, Any]:
    store = Store(f"sqlite:///{work / f'bench-{count}-{time.monotonic_ns()}.db'}")
    controller = await Controller.embedded(store, work, specs)
    try:
        request = BatchRequest(
            jobs=(
                JobRequest(
                    job_type="command",
                    spec={"command": ["true"], "frames": f"1-{count}", "cwd": str(work)},
                    retries=0,
                ),
            )
        )
        t_submit = time.perf_counter()
        batch_id = controller.submit(request)
        submit_s = time.perf_counter() - t_submit
        batch = await controller.wait(batch_id, poll=0.02)
        assert batch.state is BatchState.DONE, batch.state
        with store.engine.connect() as conn:
            rows = conn.execute(
                attempts.select().order_by(attempts.c.node, attempts.c.started_at)
            ).all()
    finally:
        await controller.close()
        store.close()
    assert len(rows) == count
    first = min(r.dispatched_at for r in rows)
    last = max(r.ended_at for r in rows)
    latency = [(r.started_at - r.dispatched_at) * 1000 for r in rows]
    # Refill gap: on each node, sort by start; with k instances, the segment that starts
    # next after an end is the one whose start follows that end most closely.
    gaps: list[float] = []
    by_node: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        by_node.setdefault(r.node, []).append((r.started_at, r.ended_at))
    for spans in by_node.values():
        starts = sorted(s for s, _ in spans)
        ends = sorted(e for _, e in spans)
        for end in ends:
            i = bisect.bisect_left(starts, end)
            if i < len(starts):
                gaps.append((starts[i] - end) * 1000)
    return {
        "segments": count,
        "submit_s": submit_s,
        "wall_s": last - first,
        "rate": count / (last - first),
        "lat_p50": percentile(latency, 0.5),
        "lat_p95": percentile(latency, 0.95),
        "gap_p50": percentile(gaps, 0.5),
        "gap_p95": percentile(gaps, 0.95),
    }


async def bench_idle_latency(samples: int, specs: list[NodeSpec], work: Path) -> dict[str, Any]:
    """Submit one single-segment batch at a time to an idle farm: submit -> process start."""
    store = Store(f"sqlite:///{work / 'bench-idle.db'}")
    controller = await Controller.embedded(store, work, specs)
    latency: list[float] = []
    try:
        request = BatchRequest(
            jobs=(JobRequest(job_type="command", spec={"command": ["true"], "cwd": str(work)}),)
        )
        for _ in range(samples):
            t_submit = time.time()
            batch_id = controller.submit(request)
            await controller.wait(batch_id, poll=0.005)
            [segment] = store.segments(batch_id)
            [attempt] = store.attempts(segment.id)
            assert attempt.started_at is not None
            latency.append((attempt.started_at - t_submit) * 1000)
    finally:
        await controller.close()
        store.close()
    return {"samples": samples, "p50": percentile(latency, 0.5), "p95": percentile(latency, 0.95)}


class ApiCluster:
    """A `qfarm controller` and node processes, as a studio runs them, on loopback."""

    def __init__(self, work: Path, nodes: int, instances: int) -> None:
        self.procs: list[subprocess.Popen[str]] = []
        qfarm = [sys.executable, "-m", "qfarm"]
        ctl = subprocess.Popen(
            [*qfarm, "controller", "--port", "0", "--data-dir", str(work / "api-ctl")],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.procs.append(ctl)
        assert ctl.stdout is not None
        self.url = ctl.stdout.readline().split()[3]
        join = subprocess.run(
            [*qfarm, "join-token", "--data-dir", str(work / "api-ctl")],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        for i in range(nodes):
            name = f"api-{i + 1}"
            args = ["node", "-c", self.url, "--services", f"command={instances}", "--name", name]
            self.procs.append(
                subprocess.Popen(
                    [*qfarm, *args, "--data-dir", str(work / name), "--join-token", join],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        self.client = Client(self.url)
        deadline = time.monotonic() + 60
        while len([n for n in self.client.nodes() if n["state"] == "online"]) < nodes:
            if time.monotonic() > deadline:
                raise RuntimeError("nodes did not join")
            time.sleep(0.1)

    def close(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
            proc.wait(timeout=30)


def bench_api(count: int, cluster: ApiCluster, work: Path) -> dict[str, Any]:
    """N no-op segments submitted over HTTP and run by node processes."""
    spec = {"command": ["true"], "frames": f"1-{count}", "cwd": str(work)}
    t_submit = time.perf_counter()
    handle = cluster.client.submit({"jobs": [{"type": "command", "spec": spec, "retries": 0}]})
    submit_s = time.perf_counter() - t_submit
    # Polled at the client's own pace: the rate comes from the batch's recorded start and
    # end, so polling faster gains no precision and costs the controller CPU it measures.
    status = handle.wait()
    assert status.state == "done", status.state
    wall = status.raw["finished_at"] - status.raw["started_at"]
    sample = cluster.client.segments(handle.id)
    latency = []
    for seg in sample[:: max(1, len(sample) // 200)]:
        [attempt] = cluster.client.attempts(handle.id, seg["id"])
        latency.append((attempt["started_at"] - attempt["dispatched_at"]) * 1000)
    return {
        "segments": count,
        "rate": count / wall,
        "submit_s": submit_s,
        "lat_p50": percentile(latency, 0.5),
        "lat_p95": percentile(latency, 0.95),
    }


async def bench_dask(
    count: int, specs: list[NodeSpec], work: Path, tls: bool = True
) -> dict[str, Any]:
    """The engine's ceiling: the same `true` subprocesses through plain Dask on an identical
    cluster, over the same mutual TLS as qfarm's (or over plain TCP, to show its cost)."""
    engine = await Engine.start_local(
        specs, local_directory=work / "dask-bench", tls=pki.ephemeral() if tls else None
    )
    try:
        client = engine.client
        t0 = time.perf_counter()
        futures = client.map(
            lambda i: run_true(), range(count), resources={"command": 1}, pure=False
        )
        await client.gather(futures)
        wall = time.perf_counter() - t0
    finally:
        await engine.close()
    return {"segments": count, "wall_s": wall, "rate": count / wall}


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {platform.system()}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--instances", type=int, default=16)
    parser.add_argument("--idle-samples", type=int, default=200)
    parser.add_argument("--api-nodes", type=int, default=3, help="node processes (0: skip)")
    parser.add_argument("--api-instances", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="runs per size; the median counts")
    parser.add_argument("--write", type=Path, help="append the figures to this Markdown file")
    args = parser.parse_args()
    specs = [NodeSpec(f"bench-{i + 1}", {"command": args.instances}) for i in range(args.nodes)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        idle = await bench_idle_latency(args.idle_samples, specs, work)
        print(
            f"idle farm, {idle['samples']} single-segment batches one at a time: "
            f"submit -> start p50 {idle['p50']:.1f} ms, p95 {idle['p95']:.1f} ms",
            flush=True,
        )
        for count in args.segments:
            # Alternate the two so that a noisy neighbour hurts both alike; keep the median.
            runs = []
            for _ in range(args.repeat):
                runs.append(
                    (
                        await bench_qfarm(count, specs, work),
                        await bench_dask(count, specs, work),
                        await bench_dask(count, specs, work, tls=False),
                    )
                )
            q = median_run([r[0] for r in runs])
            d = median_run([r[1] for r in runs])
            t = median_run([r[2] for r in runs])
            q["rates"] = [r[0]["rate"] for r in runs]
            d["rates"] = [r[1]["rate"] for r in runs]
            rows.append((q, d, t))
            print(
                f"{count:>6} segments: qfarm {q['rate']:7.1f}/s "
                f"(start latency p50 {q['lat_p50']:.1f} ms p95 {q['lat_p95']:.1f} ms, "
                f"refill gap p50 {q['gap_p50']:.1f} ms p95 {q['gap_p95']:.1f} ms, "
                f"planning+store {q['submit_s'] * 1000:.0f} ms) | "
                f"plain Dask client.map {d['rate']:7.1f}/s (over plain TCP {t['rate']:7.1f}/s)",
                flush=True,
            )
    api_rows = []
    if args.api_nodes:
        with tempfile.TemporaryDirectory() as tmp:
            cluster = ApiCluster(Path(tmp), args.api_nodes, args.api_instances)
            try:
                for count in args.segments:
                    runs = [bench_api(count, cluster, Path(tmp)) for _ in range(args.repeat)]
                    a = median_run(runs)
                    a["rates"] = [r["rate"] for r in runs]
                    api_rows.append(a)
                    print(
                        f"{count:>6} segments over HTTP, {args.api_nodes} node processes: "
                        f"{a['rate']:7.1f}/s (dispatch -> start p50 {a['lat_p50']:.1f} ms, "
                        f"p95 {a['lat_p95']:.1f} ms; submit request {a['submit_s'] * 1000:.0f} ms)",
                        flush=True,
                    )
            finally:
                cluster.close()
    if args.write:
        write_markdown(args.write, rows, idle, args, api_rows)


def write_markdown(
    path: Path,
    rows: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]],
    idle: dict[str, Any],
    args: argparse.Namespace,
    api_rows: list[dict[str, Any]],
) -> None:
    today = datetime.date.today().isoformat()
    lines = [
        f"### Dispatch: {today}",
        "",
        f"Machine: {machine()}. Embedded cluster of {args.nodes} nodes with "
        f"{args.instances} command instances each; every segment runs the `true` command "
        "as a real subprocess. Command: "
        f"`python bench/dispatch.py --segments {' '.join(map(str, args.segments))} "
        f"--nodes {args.nodes} --instances {args.instances}`.",
        "",
        f"Each size ran {args.repeat} times, alternating qfarm and plain Dask; the table shows "
        "the median run, and the rates of every run in brackets. qfarm and the first plain "
        "Dask column run over mutual TLS (as every qfarm cluster does); the last column is "
        "plain Dask over unencrypted TCP, the cost of TLS.",
        "",
        "| segments | qfarm segments/s | dispatch -> start p50 | p95 | refill gap p50 | p95 "
        "| planning + store insert | plain Dask `client.map`/s | qfarm / Dask "
        "| plain Dask over TCP/s |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for q, d, t in rows:
        q_rates = ", ".join(f"{r:.0f}" for r in q["rates"])
        d_rates = ", ".join(f"{r:.0f}" for r in d["rates"])
        lines.append(
            f"| {q['segments']:,} | **{q['rate']:.0f}** ({q_rates}) | {q['lat_p50']:.1f} ms | "
            f"{q['lat_p95']:.1f} ms | {q['gap_p50']:.1f} ms | {q['gap_p95']:.1f} ms | "
            f"{q['submit_s'] * 1000:.0f} ms | {d['rate']:.0f} ({d_rates}) | "
            f"{q['rate'] / d['rate']:.2f} | {t['rate']:.0f} |"
        )
    lines += [
        "",
        f"Idle farm, {idle['samples']:.0f} single-segment batches submitted one at a time: "
        f"submit -> process start p50 **{idle['p50']:.1f} ms**, p95 {idle['p95']:.1f} ms.",
        "",
    ]
    if api_rows:
        lines += [
            f"Through the HTTP API: a `qfarm controller` process and {args.api_nodes} "
            f"`qfarm node` processes of {args.api_instances} command instances each; the "
            "batch submitted with the Python client, the rate taken from the batch's own "
            "start and end times.",
            "",
            "| segments | segments/s | dispatch -> start p50 | p95 | submit request |",
            "| ---: | ---: | ---: | ---: | ---: |",
        ]
        for a in api_rows:
            rates = ", ".join(f"{r:.0f}" for r in a["rates"])
            lines.append(
                f"| {a['segments']:,} | **{a['rate']:.0f}** ({rates}) | {a['lat_p50']:.1f} ms "
                f"| {a['lat_p95']:.1f} ms | {a['submit_s'] * 1000:.0f} ms |"
            )
        lines.append("")
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
