"""Start-up benchmark: the wall time of `qfarm run --frames 1 -- true` against Dask's floor.

Each sample is a fresh process, timed from its start to its exit, as a user at a terminal
waits for it:

  qfarm run     `python -m qfarm run --frames 1 -- true` with a data dir of its own (so no
                run resumes another), two local nodes: imports, planning, the store, an
                embedded cluster over mutual TLS, one segment, the report, the close.
  Dask floor    a plain Python process that imports distributed, starts a LocalCluster of
                two worker processes (no dashboard), runs one task that runs `true` as a
                subprocess, and closes the cluster: what any Dask-based tool pays.

The two alternate, so a busy moment of the machine falls on both alike. Prints the min,
median and max of each, and with --write appends them to docs/benchmarks.md.

Usage: python bench/startup.py [--runs 7] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

DASK_FLOOR = """
import subprocess
from distributed import Client, LocalCluster

def run_true() -> int:
    return subprocess.run(["true"]).returncode

if __name__ == "__main__":
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        assert client.submit(run_true).result() == 0
"""


@dataclass(frozen=True)
class Sample:
    wall: float  # seconds from start to exit
    cpu: float  # CPU seconds of the process and every process it waited for


@dataclass(frozen=True)
class Figures:
    """The samples of one contender."""

    name: str
    samples: list[Sample]

    @property
    def median_wall(self) -> float:
        return statistics.median(s.wall for s in self.samples)

    @property
    def line(self) -> str:
        wall = sorted(s.wall for s in self.samples)
        cpu = statistics.median(s.cpu for s in self.samples)
        return (
            f"| {self.name} | {wall[0]:.2f} s | **{self.median_wall:.2f} s** | "
            f"{wall[-1]:.2f} s | {cpu:.2f} s |"
        )


def timed(command: list[str], env: dict[str, str], cwd: Path) -> Sample:
    """One process, which must succeed. The CPU time counts its worker processes too
    (their parent reaps them), and is what a busy machine changes least."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True)
    took = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{command[:4]} failed ({done.returncode}):\n{done.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Sample(took, cpu)


def measure(runs: int) -> tuple[Figures, Figures]:
    qfarm: list[Sample] = []
    floor: list[Sample] = []
    with tempfile.TemporaryDirectory(prefix="qfarm-startup-") as tmp:
        root = Path(tmp)
        script = root / "dask_floor.py"
        script.write_text(DASK_FLOOR)
        for i in range(runs + 1):  # the first pair warms the file cache and is dropped
            data = root / f"data-{i}"
            env = {**os.environ, "QFARM_DATA_DIR": str(data)}
            q = timed([sys.executable, "-m", "qfarm", "run", "-q", "--frames", "1", "--",
                       "true"], env, root)  # fmt: skip
            d = timed([sys.executable, str(script)], dict(os.environ), root)
            if i:
                qfarm.append(q)
                floor.append(d)
            print(f"run {i}: qfarm run {q.wall:.2f} s, Dask floor {d.wall:.2f} s", file=sys.stderr)
    return Figures("`qfarm run --frames 1 -- true`", qfarm), Figures("Dask floor", floor)


def report(figures: tuple[Figures, Figures], runs: int) -> str:
    qfarm, floor = figures
    ratio = qfarm.median_wall / floor.median_wall
    load = os.getloadavg()[0]
    return "\n".join(
        [
            f"### Start-up: {datetime.date.today().isoformat()}",
            "",
            f"Machine: {os.cpu_count()} cores, {platform.processor() or platform.machine()}, "
            f"Python {platform.python_version()}, {platform.system()} (load average "
            f"{load:.1f} at the end). Command: `python bench/startup.py --runs {runs}`; "
            "each sample is a fresh process timed from start to exit, the two alternating.",
            "",
            "| what | wall min | median | max | CPU (median) |",
            "| --- | ---: | ---: | ---: | ---: |",
            qfarm.line,
            floor.line,
            "",
            f"qfarm / Dask floor (medians): {ratio:.2f}.",
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
