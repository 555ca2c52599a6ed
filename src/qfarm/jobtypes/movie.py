"""The ``movie`` job type: a numbered image sequence (a render's or a composite's frames)
encoded into a movie with a transcode preset.

It usually depends on the job that makes the frames, so nothing is read at planning: the
frame list and rate say what the movie must hold (N frames at R fps), the node checks every
frame is there when it starts, and the output is verified (frame count and duration) before
it takes its final name. The frames go to ffmpeg as an ffconcat list, one entry per frame,
so any frame list works, gaps and steps included. One segment: a movie of rendered frames is
short work next to rendering them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

from qfarm.domain.errors import InvalidRequest
from qfarm.domain.frames import FrameRun, parse_frames
from qfarm.domain.model import SegmentPlan
from qfarm.jobtypes.base import (
    SegmentContext,
    SegmentOutcome,
    describe_process_failure,
    job_path,
    refuse_unknown,
)
from qfarm.jobtypes.frames import frame_size, input_pattern
from qfarm.jobtypes.outputs import check_output, discard, temporary_name, write_concat_list
from qfarm.media import presets as presets_mod
from qfarm.media.presets import Preset
from qfarm.media.progress import watch_progress
from qfarm.media.tool import ToolMissing, ffmpeg


class MovieJobType:
    name = "movie"
    service = "transcode"
    keeps_sessions = False
    maps_paths = False
    stall_timeout: float | None = 120.0  # ffmpeg reports progress every half second

    options = frozenset({"input", "frames", "rate", "preset", "output", "cwd"})

    def required_tools(self, spec: Mapping[str, Any]) -> tuple[str, ...]:
        return ("ffmpeg",)

    def validate(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        refuse_unknown(spec, self.options, "movie job")
        cwd = os.path.abspath(str(spec.get("cwd") or os.getcwd()))
        raw = spec.get("input")
        if not isinstance(raw, str) or not raw:
            raise InvalidRequest("a movie job needs the frames' pattern, e.g. frames/shot_%04d.png")
        pattern = input_pattern(job_path(cwd, raw))
        if not spec.get("frames"):
            raise InvalidRequest("a movie job needs the frame list, e.g. 1-240")
        runs = parse_frames(str(spec["frames"]))
        try:
            rate = Fraction(str(spec.get("rate") or 24))
        except (ValueError, ZeroDivisionError):
            raise InvalidRequest(f"rate {spec.get('rate')!r} is not a frame rate like 24") from None
        if not 0 < rate <= 1000:
            raise InvalidRequest(f"rate {rate} is out of range")
        preset = presets_mod.resolve(spec.get("preset") or "h264")
        if preset.kind != "video":
            raise InvalidRequest(
                f"preset {preset.name!r} does not make a movie: use a video preset "
                "(h264, hevc, prores-422, vp9, ...)"
            )
        presets_mod.check_encoders(preset)
        output = spec.get("output")
        if not output:
            raise InvalidRequest("a movie job needs an output file")
        output = job_path(cwd, output)
        if not output.endswith(preset.extension):
            raise InvalidRequest(f"the movie {output} does not end in {preset.extension}")
        count = sum(len(run) for run in runs)
        return {
            "input": pattern,
            "frames": [[r.start, r.end, r.step] for r in runs],
            "count": count,
            "rate": str(rate),
            "preset": preset.to_dict(),
            "output": output,
            "cwd": cwd,
            "expected": {
                "frames": count,
                "exact_frames": True,
                "duration": float(count / rate),
                "frame_duration": float(1 / rate),
            },
        }

    def plan(self, spec: Mapping[str, Any]) -> list[SegmentPlan]:
        return [
            SegmentPlan(
                index=1,
                spec={"part": "movie"},
                label=f"movie of {spec['count']} frames",
                frames=int(spec["count"]),
                outputs=(spec["output"],),
            )
        ]

    def run(
        self, job: Mapping[str, Any], segment: Mapping[str, Any], ctx: SegmentContext
    ) -> SegmentOutcome:
        try:
            tool = ffmpeg()
        except ToolMissing as exc:
            return SegmentOutcome(ok=False, error=str(exc))
        frames = [job["input"].format(frame=f) for r in job["frames"] for f in FrameRun(*r).frames]
        missing = [f for f in frames if not os.path.isfile(f)]
        if missing:
            return SegmentOutcome(
                ok=False, error=f"{len(missing)} frame(s) missing, the first {missing[0]}"
            )
        preset = Preset.from_dict(job["preset"])
        output = job["output"]
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        temp = temporary_name(output, ctx.key)
        listing = Path(temp + ".ffconcat")
        progress = Path(temp + ".progress")
        try:
            write_concat_list(listing, [(f, float(1 / Fraction(job["rate"]))) for f in frames])
            filters = presets_mod.video_filters(preset, frame_size(frames[0]))
            threads = ["-threads", str(ctx.threads)] if ctx.threads else []
            argv = [
                tool.path, "-hide_banner", "-nostdin", "-y", "-v", "warning", "-nostats",
                "-progress", str(progress), *threads, "-f", "concat", "-safe", "0",
                "-i", str(listing), "-map", "0:v:0",
                *(["-vf", ",".join(filters)] if filters else []),
                "-fps_mode", "cfr", "-r", job["rate"], "-frames:v", str(len(frames)),
                *presets_mod.video_codec_args(preset, ctx.threads), "-an",
                "-f", preset.muxer, temp,
            ]  # fmt: skip
            with watch_progress(progress, float(len(frames)), "frame", ctx.on_progress):
                result = ctx.run(argv, cwd=job.get("cwd"))
            if not result.succeeded():
                return describe_process_failure(result, "ffmpeg")
            outcome = check_output(
                temp, job["expected"], ctx, tool.path, job.get("cwd"), seams=[], full=False
            )
            if outcome.ok:
                os.replace(temp, output)
            return outcome
        except (OSError, ValueError) as exc:  # a frame that is not an image, say
            return SegmentOutcome(ok=False, error=f"cannot make the movie: {exc}")
        finally:
            discard(temp)
            listing.unlink(missing_ok=True)
            progress.unlink(missing_ok=True)


MOVIE = MovieJobType()
