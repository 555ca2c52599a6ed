"""Transcode benchmark: one source, plain ffmpeg on every core against qfarm on the same cores.

Makes a 1080p source (testsrc2 and a sine tone, 60 s by default), encodes it once with plain
ffmpeg using every core (the same arguments the preset gives a one-piece encode), then with
qfarm on an embedded cluster of N nodes of one transcode instance each, at several segment
counts, alternating so machine load drifts evenly.

Figures:
  wall              submit -> batch done for qfarm (the cluster is started beforehand and not
                    counted; its start-up is shown apart), process start -> exit for ffmpeg
  ratio             qfarm wall / ffmpeg wall: at most 1.0 is the goal
  efficiency        the video segments' encode time / (busy instances x qfarm wall): how much
                    of the instances' time went to encoding video, rather than waiting on the
                    longest segment, the audio or the assembly
  split             planning: reading the source with PyAV and cutting it
  assemble          the assemble segment: concat by stream copy, mux, verify
  overhead          (split + assemble) / the sum of the video segments' encode times

Usage: python bench/transcode.py [--seconds 60] [--preset h264-720p] [--nodes 2]
       [--segments 1 2 4 8] [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from dispatch import machine  # noqa: E402
from qfarm.controller.planning import plan_batch  # noqa: E402
from qfarm.controller.service import Controller  # noqa: E402
from qfarm.domain.model import BatchRequest, BatchState, JobRequest, SegmentKind  # noqa: E402
from qfarm.engine.base import NodeSpec  # noqa: E402
from qfarm.media import presets  # noqa: E402
from qfarm.media.probe import probe  # noqa: E402
from qfarm.media.tool import ffmpeg  # noqa: E402
from qfarm.store import Store  # noqa: E402


def make_source(path: Path, seconds: int, size: str = "1920x1080") -> None:
    subprocess.run(
        [ffmpeg().path, "-hide_banner", "-v", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:duration={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}",
         "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-g", "50",
         "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)],
        check=True,
    )  # fmt: skip


def plain_argv(source: Path, out: Path, preset_name: str) -> list[str]:
    """The one-piece encode as a user would run it: the preset's arguments, ffmpeg's own
    threading over every core."""
    preset = presets.BUILTIN[preset_name]
    info = probe(str(source))
    assert info.video is not None
    filters = presets.video_filters(preset, info.video.display_size)
    return [ffmpeg().path, "-hide_banner", "-v", "error", "-y", "-i", str(source),
            *(["-vf", ",".join(filters)] if filters else []),
            *presets.video_codec_args(preset, None), *presets.audio_codec_args(preset),
            "-movflags", "+faststart", str(out)]  # fmt: skip


async def plain_ffmpeg(source: Path, out: Path, preset_name: str) -> float:
    argv = plain_argv(source, out, preset_name)
    began = time.perf_counter()
    # Run without blocking the event loop: the embedded cluster shares it, and a loop held
    # for the whole encode misses the workers' heartbeats (Dask then restarts them, and the
    # next qfarm row is measured on a disturbed cluster).
    proc = await asyncio.create_subprocess_exec(*argv)
    if await proc.wait() != 0:
        raise SystemExit(f"plain ffmpeg exited {proc.returncode}")
    return time.perf_counter() - began


def workers(controller: Controller) -> dict[str, str]:
    """Each node's worker address: a worker that Dask restarts comes back on another port."""
    return {node.name: node.address for node in controller.store.nodes()}


async def qfarm_run(
    controller: Controller, source: Path, out: Path, preset: str, segments: int
) -> dict[str, Any]:
    duration = probe(str(source)).duration
    spec = {"input": str(source), "preset": preset, "output": str(out),
            "segment_seconds": duration / segments * 1.0001}  # fmt: skip
    request = BatchRequest(jobs=(JobRequest("transcode", spec, retries=0),))
    began = time.perf_counter()
    planned = plan_batch(request, controller.farm_instances())
    split = time.perf_counter() - began
    batch_id = controller.submit(request, planned)
    batch = await controller.wait(batch_id)
    wall = time.perf_counter() - began
    if batch.state is not BatchState.DONE:
        errors = [s.error for s in controller.store.segments(batch_id) if s.error]
        raise SystemExit(f"qfarm batch {batch.state}: {errors}")
    store = controller.store
    video, assemble, audio = [], 0.0, 0.0
    for seg in store.segments(batch_id):
        last = store.attempts(seg.id)[-1]
        took = (last.ended_at or 0) - (last.started_at or 0)
        part = seg.spec.get("part")
        if seg.kind is SegmentKind.ASSEMBLE:
            assemble = took
        elif part == "audio":
            audio = took
        else:
            video.append(took)
    return {
        "segments": len(video),
        "wall": wall,
        "split": split,
        "assemble": assemble,
        "audio": audio,
        "encode_sum": sum(video),
        "longest": max(video),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--preset", default="h264-720p")
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--segments", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--write", type=Path, help="append the figures to this Markdown file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = work / "source.mp4"
        print(f"making a {args.seconds} s 1080p source ...", flush=True)
        make_source(source, args.seconds)
        store = Store(f"sqlite:///{work / 'qfarm.db'}")
        specs = [NodeSpec(f"bench-{i + 1}", {"transcode": 1}) for i in range(args.nodes)]
        began = time.perf_counter()
        controller = await Controller.embedded(store, work, specs)
        startup = time.perf_counter() - began
        rows = []
        try:
            for count in args.segments:
                for attempt in range(1, 4):
                    before = workers(controller)
                    plain = await plain_ffmpeg(source, work / f"plain-{count}.mp4", args.preset)
                    print(f"plain ffmpeg: {plain:.1f} s", flush=True)
                    out = work / f"qfarm-{count}-{attempt}.mp4"
                    run = await qfarm_run(controller, source, out, args.preset, count)
                    if workers(controller) == before:
                        break
                    # No row is taken while a worker restarts: measure it again.
                    print("a worker restarted during this row: measuring it again", flush=True)
                else:
                    raise SystemExit("workers kept restarting: the figures would be disturbed")
                run["plain"] = plain
                print(
                    f"qfarm, {run['segments']} segments: {run['wall']:.1f} s "
                    f"(split {run['split']:.2f} s, assemble {run['assemble']:.2f} s)",
                    flush=True,
                )
                rows.append(run)
        finally:
            await controller.close()
            store.close()
    lines = table(rows, args.nodes)
    print("\n".join(lines))
    if args.write:
        header = [
            f"### Transcode: {datetime.date.today().isoformat()}",
            "",
            f"Machine: {machine()}. Source: {args.seconds} s of 1920x1080 at 25 fps "
            f"(testsrc2) with AAC audio; preset `{args.preset}`; ffmpeg {ffmpeg().version}. "
            f"qfarm: an embedded cluster of {args.nodes} nodes with one transcode instance "
            f"each (started in {startup:.1f} s, not counted). Command: `python "
            f"bench/transcode.py --seconds {args.seconds} --preset {args.preset} --nodes "
            f"{args.nodes} --segments {' '.join(map(str, args.segments))}`.",
            "",
            "Plain ffmpeg ran before each qfarm run, so both saw the same machine load, as a "
            "subprocess the cluster's event loop does not wait on; a row during which a "
            "worker restarted (a new worker address) is measured again.",
            "",
        ]
        with open(args.write, "a", encoding="utf-8") as fh:
            fh.write("\n" + "\n".join(header + lines) + "\n")


def table(rows: list[dict[str, Any]], nodes: int) -> list[str]:
    lines = [
        "| video segments | plain ffmpeg | qfarm | ratio | efficiency | longest segment "
        "| audio | split | assemble | split + assemble / encode |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        efficiency = r["encode_sum"] / (min(nodes, r["segments"]) * r["wall"])
        overhead = (r["split"] + r["assemble"]) / r["encode_sum"]
        lines.append(
            f"| {r['segments']} | {r['plain']:.1f} s | {r['wall']:.1f} s | "
            f"**{r['wall'] / r['plain']:.2f}** | {efficiency:.0%} | "
            f"{r['longest']:.1f} s | {r['audio']:.2f} s | {r['split']:.2f} s | "
            f"{r['assemble']:.2f} s | {overhead:.1%} |"
        )
    return lines


if __name__ == "__main__":
    asyncio.run(main())
