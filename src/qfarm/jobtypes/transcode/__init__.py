"""The ``transcode`` job type: one source through one preset, split across service nodes.

Planning (controller) reads the source with PyAV and cuts its video on frames: segment *i*
encodes frames ``[first_i, first_i + count_i)``, seeking to just before the first one (ffmpeg
decodes from the keyframe before and drops what precedes the cut, so cuts are frame
accurate) and starting its chunk on a keyframe; chunks keep the source's timestamps
(shifted so each starts at 0) and so its frame rate, which the encoder's level follows. The
audio is encoded once, whole, as a segment of its own, so no seam can click or gap; it is the
job's first segment (the dispatcher takes segments by index), so it runs beside the video.
Every source stream is planned by :mod:`qfarm.media.streams`: the spec's ``streams`` says
what the output keeps, converts or drops, and the assembly maps the subtitles, attachments,
chapters, metadata and timecode from the source itself. The assemble segment joins the chunks by
stream copy with ffmpeg's concat demuxer, giving each chunk its exact source duration (so
timestamps across seams are the source's), muxes the audio, verifies the result against
the source (:mod:`qfarm.media.verify`) and only then renames it to its final name.

Sources shorter than two segments, audio-only and remux presets, and presets that change the
frame rate run as one segment (frames are then resampled on one continuous timeline). Image
sequence presets are cut like video but need no assembly: each segment writes its frames.

Parts of a job, by the ``part`` of each segment's spec: ``video``, ``audio``, ``assemble``,
``whole`` and ``images``. Chunks live in a hidden folder beside the output until the
assembly succeeds, so a resubmit redoes only the chunks that failed.

The package's modules: :mod:`.plan` (cutting into segments), :mod:`.source` (checking the
source and the preset), :mod:`.check` (what the output must measure, which
:func:`qfarm.jobtypes.outputs.check_output` verifies),
:mod:`.runner` (what every segment's ffmpeg shares), :mod:`.chunk` (the encoding segments)
and :mod:`.assemble` (joining a split output).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from qfarm.domain.errors import InvalidRequest
from qfarm.domain.model import SegmentPlan
from qfarm.jobtypes.base import SegmentContext, SegmentOutcome, refuse_unknown
from qfarm.jobtypes.outputs import check_output, write_concat_list
from qfarm.jobtypes.transcode.assemble import Assembler
from qfarm.jobtypes.transcode.check import VERIFY_MODES, expected_of
from qfarm.jobtypes.transcode.chunk import ChunkRunner
from qfarm.jobtypes.transcode.plan import cut_points, parts_dir, plan_segments, segment_count
from qfarm.jobtypes.transcode.source import (
    check_ffmpeg_reads,
    check_streams,
    deinterlace_choice,
    kept_tracks,
    media_source,
    output_path,
    positive_float,
    source_shape,
)
from qfarm.media import presets as presets_mod
from qfarm.media import sources as sources_mod
from qfarm.media import streams as streams_mod
from qfarm.media.presets import Preset, check_encoders
from qfarm.media.tool import ToolMissing, ffmpeg


class TranscodeJobType:
    name = "transcode"
    service = "transcode"
    keeps_sessions = False
    maps_paths = False
    stall_timeout: float | None = 120.0  # ffmpeg reports progress every half second
    wants_farm_size = True

    options = frozenset(
        {"input", "preset", "output", "output_dir", "cwd", "segment_seconds", "instances",
         "verify", "deinterlace", "rate"}
    )  # fmt: skip

    def required_tools(self, spec: Mapping[str, Any]) -> tuple[str, ...]:
        return ("ffmpeg",)

    # ------------------------------------------------------------ controller side

    def validate(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        refuse_unknown(spec, self.options, "transcode job")
        cwd = os.path.abspath(str(spec.get("cwd") or os.getcwd()))
        raw_input = spec.get("input")
        if not isinstance(raw_input, str) or not raw_input:
            raise InvalidRequest("a transcode job needs an input file")
        media = media_source(raw_input, cwd, spec.get("rate"))
        source = media.path
        raw_preset = spec.get("preset")
        if raw_preset is None:
            raise InvalidRequest("a transcode job needs a preset (qfarm presets lists them)")
        preset = presets_mod.resolve(raw_preset)
        check_encoders(preset)
        info = sources_mod.probe_source(media)
        check_streams(preset, info)
        stream_plans = streams_mod.plan_streams(preset, info, kept_tracks(preset, info))
        check_ffmpeg_reads(media)

        deinterlace, field_order = deinterlace_choice(spec.get("deinterlace"), preset, info, media)
        seconds = positive_float(spec.get("segment_seconds"), "segment length")
        instances = spec.get("instances") or 1
        if not isinstance(instances, int) or isinstance(instances, bool) or instances < 1:
            raise InvalidRequest(f"instances must be a whole number from 1, not {instances!r}")
        verify = str(spec.get("verify") or "seams")
        if verify not in VERIFY_MODES:
            raise InvalidRequest(f"verify must be one of {', '.join(VERIFY_MODES)}, not {verify!r}")

        output = output_path(spec, cwd, media, preset)
        if os.path.abspath(output) == os.path.abspath(source):
            raise InvalidRequest(f"the output {output} would overwrite its source")
        video = info.video
        splittable = preset.kind in ("video", "images") and video is not None
        if preset.kind == "video" and preset.frame_rate:
            splittable = False
        count = 1
        if splittable and video is not None:
            count = segment_count(video.duration, video.frames, instances, seconds)
        cuts = cut_points(info, count) if video is not None and preset.kind != "audio" else []
        return {
            "input": source,
            "preset": preset.to_dict(),
            "output": output,
            "cwd": cwd,
            "source": info.summary(),
            "cuts": cuts if count > 1 or preset.kind == "images" else [],
            "split": count > 1,
            "expected": expected_of(preset, info),
            "audio_streams": [t.index for t in kept_tracks(preset, info)],
            "streams": [p.to_dict() for p in stream_plans],
            "warnings": [
                f"{os.path.basename(source)} {p.describe()}"
                for p in streams_mod.dropped(stream_plans)
            ],
            "verify": verify,
            "segment_seconds": seconds,
            "deinterlace": deinterlace,
            # Where idet found interlaced pictures that are not flagged: their field order.
            "field_order": field_order,
            # An image sequence's pattern, first frame, frame count and rate: how every
            # segment reads its frames (None for a movie).
            "sequence": media.to_dict() if media.is_sequence else None,
        }

    def describe(self, spec: Mapping[str, Any]) -> list[str]:
        """A validated job in a few lines, for ``qfarm show`` and the run summary: the source
        and its shape, how it is cut, whether it is deinterlaced, and each stream's fate."""
        preset = Preset.from_dict(spec["preset"])
        lines = [f"source: {source_shape(spec)}"]
        cuts = len(spec.get("cuts") or [])
        if spec.get("split"):
            lines.append(f"split into {cuts} video segments")
        elif preset.kind == "images" and cuts > 1:
            lines.append(f"split into {cuts} segments of frames")
        else:
            lines.append("one segment")
        if preset.kind in ("video", "images"):
            deinterlacer = presets_mod.DEINTERLACE_FILTER.split("=", 1)[0]
            found = spec.get("field_order")
            how = f"{deinterlacer}, {found} fields found by idet" if found else deinterlacer
            state = f"on ({how})" if spec.get("deinterlace") else "off"
            lines.append(f"deinterlace: {state}")
        lines.append(f"output: {spec['output']} (preset {preset.name})")
        return lines + streams_mod.describe_listed(spec.get("streams"))

    def plan(self, spec: Mapping[str, Any]) -> list[SegmentPlan]:
        return plan_segments(spec)

    # ------------------------------------------------------------------ node side

    def run(
        self, job: Mapping[str, Any], segment: Mapping[str, Any], ctx: SegmentContext
    ) -> SegmentOutcome:
        try:
            tool = ffmpeg()
        except ToolMissing as exc:
            return SegmentOutcome(ok=False, error=str(exc))
        part = segment["part"]
        if part == "assemble":
            return Assembler(tool.path, job, ctx).assemble(segment)
        runner = ChunkRunner(tool.path, job, ctx)
        if part == "video":
            return runner.video_chunk(segment)
        if part == "audio":
            return runner.audio_chunk(segment)
        if part == "images":
            return runner.images(segment)
        if part == "whole":
            return runner.whole(segment)
        return SegmentOutcome(ok=False, error=f"unknown transcode part {part!r}")


TRANSCODE = TranscodeJobType()

# What other modules import from here (check_encoders, check_output and write_concat_list
# now live in qfarm.media.presets and qfarm.jobtypes.outputs, shared with movie jobs).
__all__ = [
    "TRANSCODE",
    "TranscodeJobType",
    "check_encoders",
    "check_output",
    "parts_dir",
    "segment_count",
    "write_concat_list",
]
