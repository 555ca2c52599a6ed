"""`qfarm run transcode` end to end against plain ffmpeg: what a user waits for.

Both are timed as whole processes, from start to exit, alternating run by run so machine
load drifts evenly: `qfarm run transcode SOURCE -p PRESET -o DIR --quiet` (its embedded
cluster's start-up, planning, the segments, the assembly and its checks, and shutdown,
all counted) against plain ffmpeg with the preset's arguments on every core.

    python bench/transcode_run.py [--seconds 40] [--size 1280x720] [--preset h264]
        [--runs 3] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from dispatch import machine
from qfarm.media.tool import ffmpeg
from transcode import make_source, plain_argv


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    began = time.perf_counter()
    subprocess.run(argv, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - began


def spread(values: list[float]) -> str:
    return f"{min(values):.1f} / {statistics.median(values):.1f} / {max(values):.1f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=40)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--preset", default="h264")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write", type=Path, help="append the figures to this Markdown file")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    plain: list[float] = []
    qfarm: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = work / "source.mp4"
        print(f"making a {args.seconds} s {args.size} source ...", flush=True)
        make_source(source, args.seconds, args.size)
        for run in range(1, args.runs + 1):
            plain.append(timed(plain_argv(source, work / "plain.mp4", args.preset)))
            out = work / f"qfarm-{run}"
            env = {**os.environ, "QFARM_DATA_DIR": str(work / f"data-{run}")}
            argv = [sys.executable, "-m", "qfarm", "run", "transcode", str(source),
                    "-p", args.preset, "-o", str(out), "--quiet"]  # fmt: skip
            qfarm.append(timed(argv, env))
            print(f"run {run}: plain ffmpeg {plain[-1]:.1f} s, qfarm {qfarm[-1]:.1f} s", flush=True)
    ratio = statistics.median(qfarm) / statistics.median(plain)
    lines = [
        "| | min / median / max |",
        "| --- | ---: |",
        f"| plain ffmpeg, every core | {spread(plain)} |",
        f"| `qfarm run transcode`, start-up included | {spread(qfarm)} |",
        f"| ratio of the medians | **{ratio:.2f}** |",
    ]
    print("\n".join(lines))
    if args.write:
        header = [
            f"### `qfarm run transcode` end to end: {datetime.date.today().isoformat()}",
            "",
            f"Machine: {machine()}; load average before the run "
            f"{load_before:.1f}. Source: {args.seconds} s of {args.size} at 25 fps "
            f"(testsrc2) with AAC audio; preset `{args.preset}`; ffmpeg {ffmpeg().version}; "
            f"{args.runs} runs of each, alternating. Command: `python bench/transcode_run.py "
            f"--seconds {args.seconds} --size {args.size} --preset {args.preset} "
            f"--runs {args.runs}`.",
            "",
        ]
        with open(args.write, "a", encoding="utf-8") as fh:
            fh.write("\n" + "\n".join(header + lines) + "\n")


if __name__ == "__main__":
    main()
