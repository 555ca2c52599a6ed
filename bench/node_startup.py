"""Node start-up benchmark: how long a `qfarm node` takes to be online, against a plain
`dask worker` joining a plain `dask scheduler`.

What a farm administrator waits for when a machine (or a Slurm job, or a pod) is added:

  qfarm node    `python -m qfarm node -c URL --services command=1` with a data dir of its
                own and the controller's join token: imports, the join over HTTPS (a CSR
                signed by the cluster's CA), its Dask worker under a nanny over mutual TLS,
                its facts reported; timed from the process's start until the controller's
                API lists it as online.
  dask worker   `dask worker tcp://ADDR --nworkers 1 --nthreads 1` with its nanny, joining
                a `dask scheduler` started once for the run; timed from the process's start
                until the scheduler counts the worker.

One `qfarm controller` and one `dask scheduler` are started before the first sample and
stay up; each sample is a fresh node or worker process, stopped (SIGTERM) after it counted.
The two alternate, so a busy moment of the machine falls on both alike. The CPU figure is
the whole life of the process and its worker (start, join, stop), as the kernel counts it
when the process is reaped.

Usage: python bench/node_startup.py [--runs 7] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

QFARM = [sys.executable, "-m", "qfarm"]
DASK = str(Path(sys.executable).parent / "dask")
DEADLINE = 120.0  # seconds a node or worker may take before the run is abandoned


@dataclass(frozen=True)
class Sample:
    online: float  # seconds from the process's start until it counted
    cpu: float  # CPU seconds of the process and its worker, start to stop


@dataclass(frozen=True)
class Figures:
    name: str
    samples: list[Sample]

    @property
    def median(self) -> float:
        return statistics.median(s.online for s in self.samples)

    @property
    def line(self) -> str:
        online = sorted(s.online for s in self.samples)
        cpu = statistics.median(s.cpu for s in self.samples)
        return (
            f"| {self.name} | {online[0]:.2f} s | **{self.median:.2f} s** | "
            f"{online[-1]:.2f} s | {cpu:.2f} s |"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], what: str) -> None:
    """Polls ``check`` until true; a quick poll, since the poll's period is in the figure."""
    deadline = time.monotonic() + DEADLINE
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not happen within {DEADLINE:.0f} s")
        time.sleep(0.02)


def lifetime(command: list[str], env: dict[str, str], counted: Callable[[], bool]) -> Sample:
    """Starts ``command``, waits until ``counted``, stops it, and reaps it."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: counted() or proc.poll() is not None, f"{command[2:4]} online")
        if proc.poll() is not None:
            assert proc.stderr is not None
            raise SystemExit(f"{command[:4]} ended ({proc.returncode}):\n{proc.stderr.read()}")
        took = time.perf_counter() - began
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Sample(took, cpu)


@contextmanager
def started(command: list[str], log: Path) -> Iterator[subprocess.Popen[str]]:
    with log.open("w") as err:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def controller_url(proc: subprocess.Popen[str], log: Path) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()  # "qfarm controller at URL (...)"
    if not line.startswith("qfarm controller at "):
        raise SystemExit(f"the controller did not start:\n{log.read_text()}")
    return line.split()[3]


def measure(runs: int) -> tuple[Figures, Figures]:
    from distributed import Client as DaskClient

    from qfarm.client import Client

    qfarm: list[Sample] = []
    plain: list[Sample] = []
    with tempfile.TemporaryDirectory(prefix="qfarm-node-startup-") as tmp:
        root = Path(tmp)
        ctl_data = root / "controller"
        ctl_log = root / "controller.log"
        scheduler = f"tcp://127.0.0.1:{free_port()}"
        ctl_cmd = [*QFARM, "controller", "--port", "0", "--no-advertise",
                   "--data-dir", str(ctl_data)]  # fmt: skip
        sched_cmd = [DASK, "scheduler", "--host", "127.0.0.1", "--port",
                     scheduler.rsplit(":", 1)[1], "--no-dashboard"]  # fmt: skip
        with (
            started(ctl_cmd, ctl_log) as ctl,
            started(sched_cmd, root / "scheduler.log"),
        ):
            url = controller_url(ctl, ctl_log)
            shown = subprocess.run(
                [*QFARM, "join-token", "--json", "--data-dir", str(ctl_data)],
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            token = json.loads(shown.stdout)["join_token"]
            api = Client(url)
            dask = DaskClient(scheduler, timeout=60)
            try:
                for i in range(runs + 1):  # the first pair warms the file cache, dropped
                    name = f"bench-{i}"
                    node_env = {**os.environ, "QFARM_JOIN_TOKEN": token}
                    q = lifetime(
                        [*QFARM, "node", "-c", url, "--name", name, "--services", "command=1",
                         "--data-dir", str(root / name)],
                        node_env,
                        lambda name=name: any(  # type: ignore[misc]
                            n["name"] == name and n["state"] == "online" for n in api.nodes()
                        ),
                    )  # fmt: skip
                    p = lifetime(
                        [DASK, "worker", scheduler, "--nworkers", "1", "--nthreads", "1",
                         "--no-dashboard", "--name", name],
                        dict(os.environ),
                        lambda name=name: any(  # type: ignore[misc]
                            w.get("name") == name
                            for w in dask.scheduler_info()["workers"].values()
                        ),
                    )  # fmt: skip
                    if i:
                        qfarm.append(q)
                        plain.append(p)
                    print(
                        f"run {i}: qfarm node {q.online:.2f} s ({q.cpu:.2f} s CPU), "
                        f"dask worker {p.online:.2f} s ({p.cpu:.2f} s CPU)",
                        file=sys.stderr,
                    )
            finally:
                dask.close()
    return Figures("`qfarm node` (join, TLS, online)", qfarm), Figures("`dask worker`", plain)


def report(figures: tuple[Figures, Figures], runs: int) -> str:
    qfarm, plain = figures
    load = os.getloadavg()[0]
    return "\n".join(
        [
            f"### Node start-up: {datetime.date.today().isoformat()}",
            "",
            f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
            f"Python {platform.python_version()}, {platform.system()} (load average "
            f"{load:.1f} at the end). Command: `python bench/node_startup.py --runs {runs}`; "
            "each sample is a fresh process timed from its start until it is counted "
            "online, the two alternating.",
            "",
            "| what | online min | median | max | CPU, start to stop (median) |",
            "| --- | ---: | ---: | ---: | ---: |",
            qfarm.line,
            plain.line,
            "",
            f"qfarm node / dask worker (medians): {qfarm.median / plain.median:.2f}.",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--write", type=Path, help="append the figures to this Markdown file")
    args = parser.parse_args()
    text = report(measure(args.runs), args.runs)
    print(text)
    if args.write:
        with args.write.open("a") as out:
            out.write("\n" + text)


if __name__ == "__main__":
    main()
