"""Render benchmark: Blender and POV-Ray through qfarm against the same renderer run directly
on the same cores, with frames of about 0.2 s and about 3 s.

For each renderer and frame time the scene is first calibrated (POV-Ray by its size, Blender
by its Cycles samples) so one frame on every core takes about that long. Then, alternating so
machine load drifts evenly, ``--repeat`` times:

  direct        the renderer run once on every frame, on every core (``+WT N`` / ``-t N``)
  qfarm         the same frames as one render job on an embedded cluster of ``--nodes`` nodes
                with one render instance each, already started (submit -> batch done)
  qfarm run     ``qfarm run render ...`` as a user types it: a process, start-up included

The renderers are run through a small wrapper that records, for every call, how long the
renderer itself ran and the cores qfarm told it to use, so the bench checks that each segment
got its share of the cores (the host's cores over the segments running there) and measures
qfarm's own cost per segment: the segment's time from dispatch to its end, less the renderer's.

Figures (min and median of the runs): the three walls, qfarm / direct, and per-segment
overhead. Goals: per-segment overhead <= 0.5 s; qfarm <= 1.1x direct for 3 s frames.

Usage: python bench/render.py [--repeat 3] [--nodes 2] [--renderers povray blender]
       [--write docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from dispatch import machine  # noqa: E402
from qfarm.controller.service import Controller  # noqa: E402
from qfarm.domain.model import BatchRequest, BatchState, JobRequest  # noqa: E402
from qfarm.engine.base import NodeSpec  # noqa: E402
from qfarm.store import Store  # noqa: E402

CORES = os.cpu_count() or 1

# Reflective spheres over a checker: POV-Ray's time grows with the pixels.
POV_SCENE = """#version 3.7;
global_settings { assumed_gamma 1.0 max_trace_level 8 }
camera { location <0, 3, -9> look_at <0, 0, 0> }
light_source { <10, 12, -10> color rgb 1 }
light_source { <-8, 6, -4> color rgb 0.5 }
background { color rgb <0.1, 0.2, 0.4> }
#declare I = 0;
#while (I < 40)
  sphere { <mod(I, 8) - 3.5 + clock, 0.4 * div(I, 8), div(I, 8) * 1.2>, 0.45
    pigment { color rgb <mod(I, 3) / 2, clock, 0.5> } finish { reflection 0.4 phong 0.8 } }
  #declare I = I + 1;
#end
plane { y, -0.5 pigment { checker color rgb 1 color rgb 0.2 } finish { reflection 0.2 } }
"""

BLEND_MAKER = """
import sys
import bpy

bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
for i in range(12):
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.5, location=(i % 4 - 1.5, i // 4 - 1, 0))
    obj = bpy.context.object
    obj.keyframe_insert("location", frame=1)
    obj.location.z = 1.0
    obj.keyframe_insert("location", frame=40)
bpy.ops.mesh.primitive_plane_add(size=20, location=(0, 0, -0.6))
bpy.ops.object.camera_add(location=(6, -6, 5), rotation=(1.0, 0, 0.785))
scene.camera = bpy.context.object
bpy.ops.object.light_add(type="SUN", location=(4, 4, 6))
scene.world = bpy.data.worlds.new("sky")
scene.world.color = (0.2, 0.3, 0.5)
scene.render.engine = "CYCLES"
scene.cycles.samples = int(sys.argv[sys.argv.index("--") + 2])
scene.cycles.use_denoising = False
scene.cycles.use_adaptive_sampling = False
scene.render.resolution_x, scene.render.resolution_y = 160, 120
scene.render.resolution_percentage = 100
scene.render.image_settings.file_format = "PNG"
scene.frame_start, scene.frame_end = 1, 40
bpy.ops.wm.save_as_mainfile(filepath=sys.argv[sys.argv.index("--") + 1])
"""

# Runs the real renderer and records: start, end, the cores it was told, its first frame.
WRAPPER = """#!/bin/sh
t0=$(date +%s.%N)
"{real}" "$@"
rc=$?
t1=$(date +%s.%N)
threads=-; first=-; prev=
for a in "$@"; do
  case "$a" in +WT*) threads="${{a#+WT}}";; +SF*) first="${{a#+SF}}";; esac
  [ "$prev" = "-t" ] && threads="$a"
  [ "$prev" = "-s" ] && first="$a"
  prev="$a"
done
case "$*" in *--version*|*QFARM-JSON*) ;; *) echo "$t0 $t1 $threads $first" >> "{log}";; esac
exit $rc
"""


@dataclass(frozen=True)
class Case:
    renderer: str  # povray or blender
    target: float  # seconds a frame should take on every core
    frames: int
    segment_size: int


@dataclass
class Runs:
    direct: list[float] = field(default_factory=list)
    qfarm: list[float] = field(default_factory=list)
    cli: list[float] = field(default_factory=list)
    overhead: list[float] = field(default_factory=list)  # per segment, every run
    threads_ok: bool = True
    threads_seen: set[str] = field(default_factory=set)


@dataclass
class Calls:
    """The renderer calls the wrapper recorded: (start, end, threads, first frame)."""

    log: Path

    def take(self) -> list[tuple[float, float, str, str]]:
        if not self.log.exists():
            return []
        rows = []
        for line in self.log.read_text().splitlines():
            t0, t1, threads, first = line.split()
            rows.append((float(t0), float(t1), threads, first))
        self.log.unlink()
        return rows


def wrap(real: str, work: Path, name: str) -> tuple[Path, Calls]:
    log = work / f"{name}-calls.log"
    script = work / f"{name}-wrapper"
    script.write_text(WRAPPER.format(real=real, log=log))
    script.chmod(0o755)
    return script, Calls(log)


# ------------------------------------------------------------------ scenes and direct runs


def pov_scene(work: Path, case: Case) -> tuple[Path, dict[str, int]]:
    scene = work / "spheres.pov"
    scene.write_text(POV_SCENE)
    width = 160
    took = pov_direct(scene, work / "cal", 1, {"width": width, "height": width * 3 // 4})
    start = pov_direct(scene, work / "cal", 1, {"width": 8, "height": 6})
    per_pixel = max(took - start, 0.01) / (width * width * 3 // 4)
    pixels = max(case.target - start, 0.05) / per_pixel
    width = max(16, int((pixels * 4 / 3) ** 0.5) // 4 * 4)
    return scene, {"width": width, "height": width * 3 // 4}


def pov_direct(scene: Path, out: Path, frames: int, size: dict[str, int]) -> float:
    out.mkdir(exist_ok=True)
    argv = [os.environ.get("QFARM_POVRAY", "povray"), f"+I{scene.name}", f"+O{out}/d.png",
            "+FN", "+KFI1", f"+KFF{max(frames, 2)}", "+SF1", f"+EF{frames}",
            f"+W{size['width']}", f"+H{size['height']}", "+A0.3", f"+WT{CORES}",
            "-D", "-V", "-P"]  # fmt: skip
    began = time.perf_counter()
    subprocess.run(argv, cwd=scene.parent, check=True, capture_output=True)
    return time.perf_counter() - began


def blend_scene(work: Path, case: Case) -> tuple[Path, dict[str, int]]:
    probe_samples = 8
    scene = make_blend(work, probe_samples)
    per_frame = blender_frame_seconds(scene, work / "cal")
    samples = max(1, round(probe_samples * case.target / per_frame))
    return make_blend(work, samples), {"samples": samples}


def make_blend(work: Path, samples: int) -> Path:
    maker = work / "make_blend.py"
    maker.write_text(BLEND_MAKER)
    path = work / "spheres.blend"
    subprocess.run(
        ["blender", "-b", "--factory-startup", "--python", str(maker), "--", str(path),
         str(samples)],
        check=True, capture_output=True,
    )  # fmt: skip
    return path


def blender_frame_seconds(scene: Path, out: Path) -> float:
    """A frame's render time on every core, as Blender reports it for frames 2 and 3 (its
    start-up and the first frame's set-up left out; a wall-clock difference of two runs
    was too noisy on a shared machine)."""
    out.mkdir(exist_ok=True)
    result = subprocess.run(
        ["blender", "-b", str(scene), "-o", f"{out}/c_####", "-t", str(CORES),
         "-s", "1", "-e", "3", "-a"],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    times = [
        int(m[0]) * 60 + float(m[1])
        for m in re.findall(r"Saved: .*?\n\s*Time: (\d+):(\d+\.\d+)", result.stdout)
    ]
    return statistics.mean(times[1:] or times)


def blend_direct(scene: Path, out: Path, frames: int) -> float:
    out.mkdir(exist_ok=True)
    argv = [os.environ.get("QFARM_BLENDER", "blender"), "-b", str(scene), "-o",
            f"{out}/d_####", "-t", str(CORES), "-s", "1", "-e", str(frames), "-a"]  # fmt: skip
    began = time.perf_counter()
    subprocess.run(argv, cwd=scene.parent, check=True, capture_output=True)
    return time.perf_counter() - began


# ------------------------------------------------------------------------- qfarm runs


def job_spec(case: Case, scene: Path, out: Path, options: dict[str, int]) -> dict[str, object]:
    spec: dict[str, object] = {
        "scene": str(scene), "frames": f"1-{case.frames}", "segment_size": case.segment_size,
        "output": str(out), "cwd": str(scene.parent),
    }  # fmt: skip
    if case.renderer == "povray":
        spec.update(width=options["width"], height=options["height"], antialias=0.3)
        spec["animation"] = f"1-{max(case.frames, 2)}"
    return spec


async def qfarm_batch(
    controller: Controller, spec: dict[str, object], calls: Calls, runs: Runs
) -> None:
    request = BatchRequest(jobs=(JobRequest("render", spec, retries=0),))
    began = time.perf_counter()
    batch_id = controller.submit(request)
    batch = await controller.wait(batch_id)
    runs.qfarm.append(time.perf_counter() - began)
    if batch.state is not BatchState.DONE:
        errors = [s.error for s in controller.store.segments(batch_id) if s.error]
        raise SystemExit(f"qfarm batch {batch.state}: {errors}")
    recorded = {first: (t0, t1, threads) for t0, t1, threads, first in calls.take()}
    segments = controller.store.segments(batch_id)
    for seg in segments:
        attempt = controller.store.attempts(seg.id)[-1]
        t0, t1, threads = recorded[str(seg.spec["start"])]
        runs.overhead.append((attempt.ended_at or 0) - attempt.dispatched_at - (t1 - t0))
        runs.threads_seen.add(threads)
        # Segments that run side by side share the cores; a lone one gets them all.
        if threads == "-" or not 1 <= int(threads) <= CORES:
            runs.threads_ok = False


def qfarm_cli(spec: dict[str, object], work: Path, nodes: int) -> float:
    argv = [sys.executable, "-m", "qfarm", "run", "render", str(spec["scene"]),
            "--frames", str(spec["frames"]), "--segment-size", str(spec["segment_size"]),
            "-o", str(spec["output"]), "--nodes", str(nodes), "--quiet",
            "--data-dir", str(work / "cli-data")]  # fmt: skip
    for key in ("width", "height", "antialias", "animation"):
        if key in spec:
            argv += [f"--{key}", str(spec[key])]
    began = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, cwd=work)
    return time.perf_counter() - began


async def bench_case(
    case: Case, work: Path, controller: Controller, calls: Calls, repeat: int, nodes: int
) -> tuple[Runs, dict[str, int]]:
    folder = work / f"{case.renderer}-{case.target:g}"
    folder.mkdir()
    maker = pov_scene if case.renderer == "povray" else blend_scene
    scene, options = maker(folder, case)
    calls.take()
    runs = Runs()
    for index in range(repeat):
        if case.renderer == "povray":
            runs.direct.append(pov_direct(scene, folder / f"direct-{index}", case.frames, options))
        else:
            runs.direct.append(blend_direct(scene, folder / f"direct-{index}", case.frames))
        calls.take()
        spec = job_spec(case, scene, folder / f"qfarm-{index}", options)
        await qfarm_batch(controller, spec, calls, runs)
        cli_spec = {**spec, "output": str(folder / f"cli-{index}")}
        runs.cli.append(qfarm_cli(cli_spec, folder, nodes))
        calls.take()
        print(
            f"{case.renderer} {case.target:g} s frames: direct {runs.direct[-1]:.2f} s, "
            f"qfarm {runs.qfarm[-1]:.2f} s, qfarm run {runs.cli[-1]:.2f} s",
            flush=True,
        )
    return runs, options


def load_average() -> str:
    try:
        return ", ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def table(rows: list[tuple[Case, Runs, dict[str, int]]]) -> list[str]:
    lines = [
        "| renderer | frame aimed at / measured | frames / segments | direct | qfarm "
        "| qfarm / direct | `qfarm run` | per-segment overhead | cores told |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for case, runs, options in rows:
        segments = -(-case.frames // case.segment_size)
        ratios = [q / d for q, d in zip(runs.qfarm, runs.direct, strict=True)]
        setting = ", ".join(f"{k} {v}" for k, v in options.items())
        told = "/".join(sorted(runs.threads_seen)) + (" ok" if runs.threads_ok else " WRONG")
        lines.append(
            f"| {case.renderer} ({setting}) | {case.target:g} s / "
            f"{statistics.median(runs.direct) / case.frames:.2f} s | {case.frames} / {segments} "
            f"| {fmt(runs.direct)} | {fmt(runs.qfarm)} | **{fmt(ratios, 'x')}** "
            f"| {fmt(runs.cli)} | {fmt(runs.overhead)} | {told} |"
        )
    return lines


def fmt(values: list[float], unit: str = " s") -> str:
    """min / median."""
    return f"{min(values):.2f} / {statistics.median(values):.2f}{unit}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--nodes", type=int, default=2)
    parser.add_argument("--renderers", nargs="+", default=["povray", "blender"])
    parser.add_argument("--write", type=Path, help="append the figures to this Markdown file")
    args = parser.parse_args()
    cases = [
        Case(renderer, target, frames, size)
        for renderer in args.renderers
        for target, frames, size in ((0.2, 20, 5), (3.0, 8, 4))
    ]
    load_before = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        wrapped = {}
        for name, env in (("povray", "QFARM_POVRAY"), ("blender", "QFARM_BLENDER")):
            real = shutil.which(name)
            if real is None:
                raise SystemExit(f"{name} is not installed")
            wrapped[name] = wrap(real, work, name)
            os.environ[env] = str(wrapped[name][0])
        # Each node asks its renderers' versions and features when it joins; ask once here
        # first, so that answer is cached (the first ask of a build starts Blender).
        versions = renderer_versions()
        store = Store(f"sqlite:///{work / 'qfarm.db'}")
        specs = [NodeSpec(f"bench-{i + 1}", {"render": 1}) for i in range(args.nodes)]
        began = time.perf_counter()
        controller = await Controller.embedded(store, work, specs)
        startup = time.perf_counter() - began
        rows = []
        try:
            for case in cases:
                calls = wrapped[case.renderer][1]
                runs, options = await bench_case(
                    case, work, controller, calls, args.repeat, args.nodes
                )
                rows.append((case, runs, options))
        finally:
            await controller.close()
            store.close()
    lines = table(rows)
    print("\n".join(lines))
    if args.write:
        header = [
            f"### Render: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
            "",
            f"Machine: {machine()}; load average before {load_before}, after "
            f"{load_average()}. Renderers: "
            f"{versions}. qfarm: an embedded cluster of {args.nodes} nodes with one "
            f"render instance each (started in {startup:.1f} s, not counted in `qfarm`); "
            "`qfarm run` is the whole command, start-up included. Direct: the renderer once "
            f"on all frames with every core (`+WT{CORES}`, `-t {CORES}`). Figures are min / "
            f"median of {args.repeat} runs, alternating. Per-segment overhead: a segment's "
            "dispatch to its end, less the renderer's own run (timed by a wrapper, which also "
            "recorded the cores each segment was told: `cores told`). Command: `python "
            f"bench/render.py --repeat {args.repeat} --nodes {args.nodes} --renderers "
            f"{' '.join(args.renderers)}`.",
            "",
        ]
        with open(args.write, "a", encoding="utf-8") as fh:
            fh.write("\n" + "\n".join(header + lines) + "\n")


def renderer_versions() -> str:
    from qfarm import renderers

    found = renderers.fingerprint()
    return ", ".join(f"{name} {version}" for name, version in found.items() if "+" not in name)


if __name__ == "__main__":
    asyncio.run(main())
