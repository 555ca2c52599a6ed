"""The ``composite`` job type (Shake's role): an image sequence through an ffmpeg filter
graph, cut into segments by frame range, written as a new PNG sequence.

Operations, applied in this order: ``scale`` (WxH), ``lut`` (a .cube 3-D LUT: a colour grade),
``logo`` (an image overlaid in a corner), ``timecode`` (burnt in, counting from
``timecode_start`` at ``rate``), and ``filter`` (any ffmpeg filter chain of your own, last).
Each segment reads its frames through an ffconcat list and writes into a staging folder;
when ffmpeg exits every frame must be there and not empty, and the frames are then moved to
``OUTPUT/NAME_0001.png``. The logo is read by the ``movie`` source filter rather than a
second input, which ffmpeg 7.0 schedules unreliably in a filter graph.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

from qfarm.domain.errors import InvalidRequest
from qfarm.domain.frames import FrameRun, chunk_runs, format_run, parse_frames
from qfarm.domain.model import SegmentPlan
from qfarm.jobtypes.base import (
    SegmentContext,
    SegmentOutcome,
    describe_process_failure,
    job_path,
    refuse_unknown,
    segment_size,
)
from qfarm.jobtypes.frames import frame_path, frame_size, input_pattern
from qfarm.jobtypes.outputs import place, write_concat_list
from qfarm.media import timecode
from qfarm.media.progress import watch_progress
from qfarm.media.tool import ToolMissing, ffmpeg, image_pattern

CORNERS = {
    "top-left": ("{m}", "{m}"),
    "top-right": ("W-w-{m}", "{m}"),
    "bottom-left": ("{m}", "H-h-{m}"),
    "bottom-right": ("W-w-{m}", "H-h-{m}"),
}
LOGO_MARGIN = 16
_SIZE = re.compile(r"^(\d+)x(\d+)$")


class CompositeJobType:
    name = "composite"
    service = "transcode"  # ffmpeg work: the nodes that run transcodes run composites
    keeps_sessions = False
    maps_paths = False
    stall_timeout: float | None = 120.0  # ffmpeg reports progress every half second

    options = frozenset(
        {"input", "frames", "segment_size", "output", "name", "scale", "lut", "logo",
         "logo_position", "timecode", "timecode_start", "rate", "filter", "cwd"}
    )  # fmt: skip

    def required_tools(self, spec: Mapping[str, Any]) -> tuple[str, ...]:
        return ("ffmpeg",)

    def validate(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        refuse_unknown(spec, self.options, "composite job")
        cwd = os.path.abspath(str(spec.get("cwd") or os.getcwd()))

        raw = spec.get("input")
        if not isinstance(raw, str) or not raw:
            raise InvalidRequest("a composite job needs its frames' pattern, e.g. in/shot_%04d.png")
        pattern = input_pattern(job_path(cwd, raw))
        if not spec.get("frames"):
            raise InvalidRequest("a composite job needs the frame list, e.g. 1-240")
        runs = parse_frames(str(spec["frames"]))
        size = segment_size(spec, default=10)
        scale = None
        if spec.get("scale"):
            match = _SIZE.match(str(spec["scale"]))
            if not match or not all(0 < int(g) <= 16384 for g in match.groups()):
                raise InvalidRequest(f"scale {spec['scale']!r} is not a size like 1280x720")
            scale = [int(match.group(1)), int(match.group(2))]
        lut = job_path(cwd, spec["lut"]) if spec.get("lut") else None
        if lut is not None and not (os.path.isfile(lut) and lut.lower().endswith(".cube")):
            raise InvalidRequest(f"LUT {lut} is not a .cube file that exists")
        logo = job_path(cwd, spec["logo"]) if spec.get("logo") else None
        if logo is not None and not os.path.isfile(logo):
            raise InvalidRequest(f"logo {logo} does not exist")
        corner = str(spec.get("logo_position") or "top-right")
        if corner not in CORNERS:
            raise InvalidRequest(f"logo position {corner!r}: use {', '.join(CORNERS)}")
        try:
            rate = Fraction(str(spec.get("rate") or 24))
        except (ValueError, ZeroDivisionError):
            raise InvalidRequest(f"rate {spec.get('rate')!r} is not a frame rate") from None
        burn = bool(spec.get("timecode"))
        tc_start = 0
        if burn:
            if rate.denominator != 1:
                raise InvalidRequest("a timecode needs a whole frame rate (24, 25, 30)")
            try:
                tc_start = timecode.parse(str(spec.get("timecode_start") or "00:00:00:00"),
                                          int(rate))  # fmt: skip
            except ValueError as exc:
                raise InvalidRequest(str(exc)) from None
        custom = str(spec.get("filter") or "")
        if any(ch in custom for ch in ";[]"):
            raise InvalidRequest("filter takes a chain of filters (a,b,c), not a graph")
        name = str(spec.get("name") or Path(pattern).name.split("{")[0].rstrip("_-.") or "frame")
        output = job_path(cwd, spec.get("output") or "composite")
        last = max(run.end for run in runs)
        return {
            "input": pattern,
            "frames": [[r.start, r.end, r.step] for r in runs],
            "first_frame": min(run.start for run in runs),
            "segment_size": size,
            "output": output,
            "name": name,
            "padding": max(4, len(str(last))),
            "extension": ".png",
            "scale": scale,
            "lut": lut,
            "logo": logo,
            "logo_position": corner,
            "timecode": burn,
            "timecode_start": tc_start,
            "rate": str(rate),
            "filter": custom,
            "cwd": cwd,
        }

    def plan(self, spec: Mapping[str, Any]) -> list[SegmentPlan]:
        runs = [FrameRun(*r) for r in spec["frames"]]
        plans = []
        for index, chunk in enumerate(chunk_runs(runs, spec["segment_size"]), start=1):
            plans.append(
                SegmentPlan(
                    index=index,
                    spec={"start": chunk.start, "end": chunk.end, "step": chunk.step},
                    label=f"frames {format_run(chunk)}",
                    frames=len(chunk),
                    outputs=tuple(frame_path(spec, f) for f in chunk.frames),
                )
            )
        return plans

    def run(
        self, job: Mapping[str, Any], segment: Mapping[str, Any], ctx: SegmentContext
    ) -> SegmentOutcome:
        try:
            tool = ffmpeg()
        except ToolMissing as exc:
            return SegmentOutcome(ok=False, error=str(exc))
        start, end, step = int(segment["start"]), int(segment["end"]), int(segment["step"])
        numbers = list(range(start, end + 1, step))
        sources = [job["input"].format(frame=f) for f in numbers]
        missing = [s for s in sources if not os.path.isfile(s)]
        if missing:
            return SegmentOutcome(
                ok=False, error=f"{len(missing)} input frame(s) missing, the first {missing[0]}"
            )
        output = Path(job["output"])
        staging = output / f".qfarm-{ctx.key}"
        staging.mkdir(parents=True, exist_ok=True)
        links_dir = Path(tempfile.mkdtemp(prefix="qfarm-links-"))
        try:
            listing = staging / "frames.ffconcat"
            step_seconds = float(1 / Fraction(job["rate"]))
            write_concat_list(listing, [(source, step_seconds) for source in sources])
            graph = self._graph(job, sources[0], start, step, _safe_links(job, links_dir))
            progress = staging / "progress"
            argv = [
                tool.path, "-hide_banner", "-nostdin", "-y", "-v", "warning", "-nostats",
                "-progress", str(progress), "-f", "concat", "-safe", "0", "-i", str(listing),
                "-vf", graph, "-fps_mode", "passthrough", "-frames:v", str(len(numbers)),
                "-start_number", "1", "-f", "image2", image_pattern(staging, "f_%06d.png"),
            ]  # fmt: skip
            with watch_progress(progress, float(len(numbers)), "frame", ctx.on_progress):
                result = ctx.run(argv, cwd=job.get("cwd"))
            if not result.succeeded():
                return describe_process_failure(result, "ffmpeg")
            staged = {n: staging / f"f_{i:06d}.png" for i, n in enumerate(numbers, start=1)}
            for number, path in staged.items():
                if not path.is_file() or path.stat().st_size == 0:
                    return SegmentOutcome(
                        ok=False, exit_code=0, error=f"ffmpeg did not write frame {number}"
                    )
            for number, path in staged.items():
                place(path, Path(frame_path(job, number)))
            return SegmentOutcome(ok=True, exit_code=0)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(links_dir, ignore_errors=True)

    @staticmethod
    def _graph(
        job: Mapping[str, Any], first_source: str, start: int, step: int, links: dict[str, str]
    ) -> str:
        """The filter graph: scale and LUT, then the logo over them, then the timecode (on
        top of everything) and the user's own chain."""
        base: list[str] = []
        width, height = frame_size(first_source)
        if job.get("scale"):
            width, height = job["scale"]
            base.append(f"scale={width}:{height}")
        if job.get("lut"):
            base.append(f"lut3d=file={links['lut']}")
        top: list[str] = []
        if job.get("timecode"):
            frames_in = job["timecode_start"] + (start - int(job["first_frame"]))
            top += timecode.filters(width, height, frames_in, step, int(Fraction(job["rate"])))
        if job.get("filter"):
            top.append(job["filter"])
        top.append("format=rgb24")
        if not job.get("logo"):
            return ",".join(base + top)
        x, y = (v.format(m=LOGO_MARGIN) for v in CORNERS[job["logo_position"]])
        return (
            f"movie={links['logo']},format=rgba[logo];"
            f"[in]{','.join(base) or 'null'}[base];"
            f"[base][logo]overlay=x={x}:y={y}:format=rgb,{','.join(top)}[out]"
        )


def _safe_links(job: Mapping[str, Any], folder: Path) -> dict[str, str]:
    """The logo and LUT under names that need no escaping in a filter graph: links in
    ``folder``, a temporary folder whose path is made of plain characters. (A user's path can
    hold ':', quotes or commas, which ffmpeg's two levels of filter-graph parsing split on.)"""
    links = {}
    for key in ("logo", "lut"):
        if job.get(key):
            link = folder / f"{key}{Path(job[key]).suffix.lower()}"
            link.symlink_to(job[key])
            links[key] = str(link)
    return links


COMPOSITE = CompositeJobType()
