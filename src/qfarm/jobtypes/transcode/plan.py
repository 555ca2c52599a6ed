"""Cutting a transcode into segments, on the controller: how many video chunks, where
each one starts (frame accurate, a little before the frame, for ffmpeg's seek), and the
segment plans: an audio segment, the video chunks and the assembly; one ``whole`` segment;
or, for an image-sequence preset, segments of frames that need no assembly.
"""

from __future__ import annotations

import bisect
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qfarm.domain.model import SegmentKind, SegmentPlan
from qfarm.jobtypes.transcode.source import source_of
from qfarm.media.presets import Preset
from qfarm.media.probe import MediaInfo

# A default segment is at least this long: shorter ones spend more on start-up and on the
# decode from the keyframe before each cut than they gain.
MIN_SEGMENT_SECONDS = 10.0


def segment_count(duration: float, frames: int, instances: int, seconds: float | None) -> int:
    """How many video segments: one per ``seconds`` when given; else one per free instance,
    each at least :data:`MIN_SEGMENT_SECONDS` long. Never more than the frames."""
    if seconds is not None:
        wanted = math.ceil(duration / seconds)
    else:
        wanted = min(max(1, instances), int(duration // MIN_SEGMENT_SECONDS))
    return max(1, min(wanted, frames))


def cut_points(info: MediaInfo, count: int) -> list[dict[str, Any]]:
    """The video cuts: for each segment its first frame, frame count, where to seek (a
    little before the first frame, relative to the container's start) and its duration."""
    video = info.video
    assert video is not None
    duration = video.duration
    firsts = [0]
    for i in range(1, count):
        at = duration * i / count
        index = _first_frame_at(video.pts, video.time_base, at)
        if firsts[-1] < index < video.frames:
            firsts.append(index)
    cuts = []
    for i, first in enumerate(firsts):
        stop = firsts[i + 1] if i + 1 < len(firsts) else video.frames
        seek = context_seek = trim_start = None
        if first > 0:
            gap = video.pts[first] - video.pts[first - 1]
            # Half a frame early: the frame before the cut is dropped, this one kept,
            # whatever the rounding of seconds.
            target = (video.pts[first] - gap / 2) * video.time_base
            seek = round(float(target) - info.start, 6)
            trim_start = round(float(target), 6)
            # A temporal filter (deinterlacing) needs the frame before the cut too: its
            # chunk seeks a frame earlier and drops that frame after the filter.
            context_seek = 0.0
            if first > 1:
                before = video.pts[first - 1] - (video.pts[first - 1] - video.pts[first - 2]) / 2
                context_seek = round(float(before * video.time_base) - info.start, 6)
        cuts.append(
            {
                "first": first,
                # The first frame's own timestamp, which the chunk shifts to 0.
                "first_time": float(video.pts[first] * video.time_base),
                "frames": stop - first,
                "seek": seek,
                "context_seek": context_seek,
                "trim_start": trim_start,
                "duration": video.seconds(stop) - video.seconds(first),
            }
        )
    return cuts


def _first_frame_at(pts: tuple[int, ...], time_base: Any, seconds: float) -> int:
    target = pts[0] + seconds / float(time_base)
    return bisect.bisect_left(pts, math.ceil(target - 1e-6))


def parts_dir(output: str) -> str:
    """The hidden folder beside ``output`` where its chunks wait for assembly."""
    path = Path(output)
    return str(path.with_name(f".qfarm-parts-{path.name}"))


def plan_segments(spec: Mapping[str, Any]) -> list[SegmentPlan]:
    preset = Preset.from_dict(spec["preset"])
    output = spec["output"]
    source = spec["source"]
    total_frames = int((source.get("video") or {}).get("frames") or 1)
    if preset.kind == "images":
        return _plan_images(spec, preset)
    if not spec["split"]:
        return [
            SegmentPlan(
                index=1,
                spec={"part": "whole", "output": output},
                label="whole",
                frames=total_frames,
                outputs=(output,),
            )
        ]
    parts = parts_dir(output)
    plans: list[SegmentPlan] = []
    chunks: list[str] = []
    durations: list[float] = []
    audio = None
    if preset.audio_codec and source.get("audio"):
        # First in the job's order: the dispatcher takes a job's segments by index, so
        # the (short) audio runs beside the first video chunks, never after the last.
        audio = os.path.join(parts, f"audio{preset.extension}")
        plans.append(
            SegmentPlan(
                index=1,
                spec={"part": "audio", "chunk": audio},
                label="audio",
                frames=1,
                outputs=(audio,),
            )
        )
    # Labels count frames as the source does: a sequence's own numbers (from 1001, say).
    base = (spec.get("sequence") or {}).get("first") or 1
    for i, cut in enumerate(spec["cuts"], start=1):
        chunk = os.path.join(parts, f"video-{i:04d}{preset.extension}")
        chunks.append(chunk)
        durations.append(cut["duration"])
        first, count = cut["first"], cut["frames"]
        plans.append(
            SegmentPlan(
                index=len(plans) + 1,
                spec={"part": "video", "chunk": chunk, **cut},
                label=f"video frames {first + base}-{first + count - 1 + base}",
                frames=count,
                outputs=(chunk,),
            )
        )
    seams = [sum(durations[:i]) for i in range(1, len(durations))]
    plans.append(
        SegmentPlan(
            index=len(plans) + 1,
            spec={
                "part": "assemble",
                # What the assembly reads: fetched first on a node without shared storage,
                # and dropped from cluster storage once the output is made.
                "needs": [*chunks, *([audio] if audio else [])],
                "discard": [parts],
                "chunks": chunks,
                "durations": durations,
                "audio": audio,
                "seams": seams,
                "output": output,
            },
            label="assemble and verify",
            frames=1,
            outputs=(output,),
            kind=SegmentKind.ASSEMBLE,
        )
    )
    return plans


def _plan_images(spec: Mapping[str, Any], preset: Preset) -> list[SegmentPlan]:
    folder = spec["output"]
    stem = source_of(spec).stem
    plans = []
    for i, cut in enumerate(spec["cuts"], start=1):
        first, count = cut["first"], cut["frames"]
        outputs = tuple(
            os.path.join(folder, f"{stem}_{n:06d}{preset.extension}")
            for n in range(first + 1, first + count + 1)
        )
        plans.append(
            SegmentPlan(
                index=i,
                spec={"part": "images", "folder": folder, "stem": stem, **cut},
                label=f"frames {first + 1}-{first + count}",
                frames=count,
                outputs=outputs,
            )
        )
    return plans


# ------------------------------------------------------------------ node side
