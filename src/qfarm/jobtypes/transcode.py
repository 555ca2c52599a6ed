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
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

from qfarm.domain.errors import InvalidRequest
from qfarm.domain.model import SegmentKind, SegmentPlan
from qfarm.jobtypes.base import (
    SegmentContext,
    SegmentOutcome,
    describe_process_failure,
    job_path,
    refuse_unknown,
)
from qfarm.jobtypes.outputs import discard, temporary_name, write_concat_list
from qfarm.jobtypes.supervisor import ProcessResult
from qfarm.media import presets as presets_mod
from qfarm.media import sources as sources_mod
from qfarm.media import streams as streams_mod
from qfarm.media import verify as verify_mod
from qfarm.media.interlace import FieldReading, read_fields
from qfarm.media.presets import Preset
from qfarm.media.probe import AudioFacts, MediaInfo, probe
from qfarm.media.progress import watch_progress
from qfarm.media.sources import MediaSource
from qfarm.media.tool import ToolMissing, ffmpeg, image_pattern

# A default segment is at least this long: shorter ones spend more on start-up and on the
# decode from the keyframe before each cut than they gain.
MIN_SEGMENT_SECONDS = 10.0
VERIFY_MODES = ("seams", "full", "none")
# The colour tags an encoder is told, as ffmpeg's options name them (the probe's tags).
COLOUR_OPTIONS = ("color_primaries", "color_trc", "colorspace", "color_range")
# Encoders of codecs without frame reordering: every frame a keyframe.
INTRA_ONLY = frozenset({"prores_ks", "prores", "mjpeg", "png", "dnxhd", "ffv1"})


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
    import bisect

    target = pts[0] + seconds / float(time_base)
    return bisect.bisect_left(pts, math.ceil(target - 1e-6))


class TranscodeJobType:
    name = "transcode"
    service = "transcode"
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
        media = _media_source(raw_input, cwd, spec.get("rate"))
        source = media.path
        raw_preset = spec.get("preset")
        if raw_preset is None:
            raise InvalidRequest("a transcode job needs a preset (qfarm presets lists them)")
        preset = presets_mod.resolve(raw_preset)
        check_encoders(preset)
        info = sources_mod.probe_source(media)
        _check_streams(preset, info)
        stream_plans = streams_mod.plan_streams(preset, info, kept_tracks(preset, info))
        _check_ffmpeg_reads(media)

        deinterlace, field_order = _deinterlace(spec.get("deinterlace"), preset, info, media)
        seconds = _positive_float(spec.get("segment_seconds"), "segment length")
        instances = spec.get("instances") or 1
        if not isinstance(instances, int) or isinstance(instances, bool) or instances < 1:
            raise InvalidRequest(f"instances must be a whole number from 1, not {instances!r}")
        verify = str(spec.get("verify") or "seams")
        if verify not in VERIFY_MODES:
            raise InvalidRequest(f"verify must be one of {', '.join(VERIFY_MODES)}, not {verify!r}")

        output = _output_path(spec, cwd, media, preset)
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
            "expected": _expected(preset, info),
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
        preset = Preset.from_dict(spec["preset"])
        output = spec["output"]
        source = spec["source"]
        total_frames = int((source.get("video") or {}).get("frames") or 1)
        if preset.kind == "images":
            return self._plan_images(spec, preset)
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

    def _plan_images(self, spec: Mapping[str, Any], preset: Preset) -> list[SegmentPlan]:
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

    def run(
        self, job: Mapping[str, Any], segment: Mapping[str, Any], ctx: SegmentContext
    ) -> SegmentOutcome:
        try:
            tool = ffmpeg()
        except ToolMissing as exc:
            return SegmentOutcome(ok=False, error=str(exc))
        runner = _Runner(tool.path, job, ctx)
        part = segment["part"]
        if part == "video":
            return runner.video_chunk(segment)
        if part == "audio":
            return runner.audio_chunk(segment)
        if part == "assemble":
            return runner.assemble(segment)
        if part == "images":
            return runner.images(segment)
        if part == "whole":
            return runner.whole(segment)
        return SegmentOutcome(ok=False, error=f"unknown transcode part {part!r}")


def parts_dir(output: str) -> str:
    """The hidden folder beside ``output`` where its chunks wait for assembly."""
    path = Path(output)
    return str(path.with_name(f".qfarm-parts-{path.name}"))


def source_shape(spec: Mapping[str, Any]) -> str:
    """``interview.mov, 1920x1080 25 fps, 4 audio tracks, 1 subtitle``; a sequence by its
    frame numbers: ``f_%04d.png, frames 1001-1048 at 24 fps, 160x90``."""
    facts = spec.get("source") or {}
    video = facts.get("video") or {}
    size = f"{video['width']}x{video['height']}" if video else ""
    if spec.get("sequence"):
        return f"{source_of(spec).describe()}, {size}"
    parts = [os.path.basename(str(spec["input"]))]
    if video:
        rate = sources_mod.rate_text(Fraction(str(video.get("frame_rate") or 0)))
        parts.append(f"{size} {rate} fps" + (" interlaced" if video.get("interlaced") else ""))
    tracks = len(facts.get("audio_tracks") or [])
    if tracks:
        parts.append(f"{tracks} audio track{'s' * (tracks != 1)}")
    subtitles = sum(1 for s in facts.get("streams") or [] if s.get("kind") == "subtitle")
    if subtitles:
        parts.append(f"{subtitles} subtitle{'s' * (subtitles != 1)}")
    return ", ".join(parts)


def source_of(job: Mapping[str, Any]) -> MediaSource:
    """The source a validated job reads: its image sequence, or its file."""
    sequence = job.get("sequence")
    return MediaSource.from_dict(sequence) if sequence else MediaSource(str(job["input"]))


def _media_source(raw_input: str, cwd: str, rate: Any) -> MediaSource:
    """The job's source: a file, or a pattern, folder or glob of frames at ``rate`` (which
    only a sequence takes: a movie has its own)."""
    media = sources_mod.resolve(raw_input, Path(cwd), sources_mod.parse_rate(rate))
    if rate is not None and not media.is_sequence:
        raise InvalidRequest(
            f"rate is for image sequences; {media.name} has its own (a preset's frame_rate "
            "changes it)"
        )
    return media


def _output_path(spec: Mapping[str, Any], cwd: str, media: MediaSource, preset: Preset) -> str:
    explicit = spec.get("output")
    if explicit:
        path = job_path(cwd, explicit)
        if preset.kind != "images" and not path.endswith(preset.extension):
            raise InvalidRequest(
                f"the output {path} does not end in {preset.extension}, the extension of a "
                f"{preset.container} file"
            )
        return path
    # Without a folder, beside the source (as Compressor did); beside a sequence's folder,
    # which a later glob of its frames would otherwise pick up.
    raw_dir = spec.get("output_dir")
    beside = os.path.dirname(media.path)
    if media.is_sequence:
        beside = os.path.dirname(beside)
    folder = os.path.join(cwd, os.path.expanduser(str(raw_dir))) if raw_dir else beside
    folder = os.path.normpath(folder)
    stem = media.stem
    if preset.kind == "images":
        return os.path.join(folder, f"{stem}-{preset.name}")
    return os.path.join(folder, f"{stem}-{preset.name}{preset.extension}")


def _deinterlace(
    value: Any, preset: Preset, info: MediaInfo, media: MediaSource
) -> tuple[bool, str | None]:
    """Whether the video is deinterlaced, and the field order to tell the deinterlacer
    (None: each frame's flags say it). ``auto`` (the preset's default) deinterlaces a
    source going to a video or image preset (all progressive) whose frames are flagged
    interlaced, or whose unflagged pictures idet finds interlaced."""
    choice = str(value or preset.deinterlace)
    if choice not in presets_mod.DEINTERLACE_CHOICES:
        raise InvalidRequest(f"deinterlace must be auto, on or off, not {value!r}")
    if preset.kind not in ("video", "images") or info.video is None or choice == "off":
        return False, None
    if info.video.interlaced:
        return True, None
    reading = None if media.is_sequence else _read_fields(media.path)
    if reading is not None and reading.interlaced:
        return True, reading.field_order
    return choice == "on", None


def _read_fields(path: str) -> FieldReading | None:
    """idet's reading of a movie whose frames are not flagged interlaced (cached per file
    version); None without an ffmpeg to run it."""
    try:
        tool = ffmpeg()
    except ToolMissing:
        return None
    return read_fields(tool.path, path)


def _positive_float(value: Any, what: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidRequest(f"{what} {value!r} is not a number of seconds") from None
    if not number > 0:
        raise InvalidRequest(f"{what} must be more than 0 seconds, not {value!r}")
    return number


def check_encoders(preset: Preset) -> None:
    """Refuse a preset whose encoders this cluster's ffmpeg lacks (every node runs the same
    one). A controller without a working ffmpeg leaves the check to the nodes."""
    try:
        tool = ffmpeg()
    except ToolMissing:
        return
    missing = [e for e in preset.encoders() if e not in tool.encoders]
    if missing:
        raise InvalidRequest(
            f"preset {preset.name!r} needs the {missing[0]} encoder, which ffmpeg "
            f"{tool.version} does not have"
        )


def _check_ffmpeg_reads(media: MediaSource) -> None:
    """Refuse a source the cluster's ffmpeg cannot decode (PyAV, which planned it, links
    its own FFmpeg): a tenth of a second of every stream is decoded, once per file version
    (a sequence's version: its first frame's)."""
    try:
        tool = ffmpeg()
    except ToolMissing:
        return
    stat = os.stat(media.frame_path(int(media.first or 0)) if media.is_sequence else media.path)
    inputs = tuple(media.input_args())
    problem = _ffmpeg_read_problem(tool.path, inputs, stat.st_size, stat.st_mtime_ns)
    if problem:
        raise InvalidRequest(f"ffmpeg {tool.version} cannot read {media.path}: {problem}")


@functools.lru_cache(maxsize=256)
def _ffmpeg_read_problem(ffmpeg_path: str, inputs: tuple[str, ...], size: int, mtime: int) -> str:
    # Pictures and sound are decoded; subtitles, attachments and data need no decoder (the
    # null muxer has no subtitle encoder: mapping them made every subtitled file "cannot
    # read ... Encoder not found").
    argv = [ffmpeg_path, "-hide_banner", "-nostdin", "-v", "error", *inputs,
            "-t", "0.1", "-map", "0:v?", "-map", "0:a?", "-f", "null", "-"]  # fmt: skip
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "decoding its first frames took more than 60 s"
    if result.returncode < 0:
        return f"ffmpeg crashed (signal {-result.returncode})"
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        return lines[-1] if lines else f"ffmpeg exited {result.returncode}"
    return ""


def _check_streams(preset: Preset, info: MediaInfo) -> None:
    """Refuse a source the preset cannot take, naming the stream."""
    name = os.path.basename(info.path)
    kind = preset.kind
    if kind in ("video", "images", "remux") and info.video is None:
        raise InvalidRequest(f"{name} has no video stream, which preset {preset.name!r} needs")
    if kind == "audio" and info.audio is None:
        raise InvalidRequest(f"{name} has no audio stream, which preset {preset.name!r} needs")
    allowed = presets_mod.CONTAINER_CODECS[preset.container]
    if kind == "remux" and allowed is not None:
        for what, facts in (("video", info.video), ("audio", info.audio)):
            if facts is not None and facts.codec not in allowed:
                raise InvalidRequest(
                    f"{name}'s {what} is {facts.codec}, which a {preset.container} file cannot "
                    "hold without re-encoding: use preset remux-mkv, or an encoding preset"
                )
    choice = preset.audio_tracks
    if isinstance(choice, tuple) and preset.audio_codec:
        count = len(info.tracks)
        beyond = [n for n in choice if n > count]
        if beyond:
            raise InvalidRequest(
                f"{name} has {count} audio track{'s' if count != 1 else ''}, so preset "
                f"{preset.name!r} cannot take audio track {beyond[0]}"
            )
    for number, track in enumerate(kept_tracks(preset, info), start=1):
        channels = preset.audio_channels or track.channels
        if preset.audio_codec in ("libmp3lame",) and channels > 2:
            raise InvalidRequest(
                f"{name}'s audio track {number} (stream #{track.index}) has {track.channels} "
                "channels and MP3 takes at most 2: set audio_channels = 2 in the preset"
            )


def _expected(preset: Preset, info: MediaInfo) -> dict[str, Any]:
    """What the output must measure, for :func:`qfarm.media.verify.compare`."""
    expected: dict[str, Any] = {}
    video = info.video
    if video is not None and preset.kind in ("video", "remux"):
        rate = preset.rate
        if rate is not None and preset.kind == "video":
            expected["frames"] = max(1, round(video.duration * rate))
            expected["exact_frames"] = False
            expected["frame_duration"] = float(1 / rate)
        else:
            expected["frames"] = video.frames
            expected["exact_frames"] = True
            expected["frame_duration"] = video.longest_frame
        expected["duration"] = video.duration
    elif video is not None:
        expected["frame_duration"] = video.longest_frame
    if info.audio is not None and preset.audio_codec:
        expected["audio_duration"] = info.audio.duration
        expected["audio_tracks"] = [_expected_track(preset, t) for t in kept_tracks(preset, info)]
        if video is not None and preset.kind in ("video", "remux"):
            expected["av_offset"] = info.audio.start_seconds - video.start_seconds
    kept = [p for p in streams_mod.plan_streams(preset, info, kept_tracks(preset, info)) if p.kept]
    expected["subtitles"] = sum(1 for p in kept if p.kind == "subtitle")
    timecode = info.tags.get("timecode")
    if timecode and preset.kind in ("video", "remux"):
        expected["timecode"] = timecode
    if info.chapters and preset.kind != "images":
        expected["chapters"] = info.chapters
    if video is not None and preset.kind == "video":
        rate = video.guessed_rate or video.frame_rate
        expected["level"] = presets_mod.expected_level(preset, video.display_size, rate)
    return expected


def kept_tracks(preset: Preset, info: MediaInfo) -> list[AudioFacts]:
    """The source's audio tracks the output carries, by the preset's ``audio_tracks``."""
    tracks = list(info.tracks)
    if not preset.audio_codec or not tracks:
        return []
    choice = preset.audio_tracks
    if choice == "all":
        return tracks
    if isinstance(choice, tuple):
        return [tracks[n - 1] for n in choice if n <= len(tracks)]
    return tracks[:1]


def _expected_track(preset: Preset, track: AudioFacts) -> dict[str, Any]:
    """What one output track must measure: the source's samples (at its rate), and its
    channels and layout unless the preset sets the channels."""
    encoder = str(preset.audio_codec)
    copied = encoder == "copy"
    channels = track.channels if copied else preset.audio_channels or track.channels
    # "1 channels": the source names no layout, and ffmpeg's encoder picks the usual one.
    named = not track.layout.endswith(" channels")
    return {
        "channels": channels,
        "layout": track.layout if channels == track.channels and named else "",
        "samples": track.samples,
        "sample_rate": track.sample_rate,
        # The source's decoder gives its last frame whole (ffmpeg does not cut the padding
        # a container marks at the end), so the output may hold up to a frame more.
        "source_padding": verify_mod.CODEC_FRAME_SAMPLES.get(track.codec, 0),
        # The priming written ahead of the first sample: the source's own when copied.
        "delay": track.priming if copied else verify_mod.ENCODER_DELAY.get(encoder, 0),
        "copied": copied,
    }


class _Runner:
    """Runs the ffmpeg of one segment under the node's supervisor, with progress."""

    def __init__(self, ffmpeg_path: str, job: Mapping[str, Any], ctx: SegmentContext) -> None:
        self.ffmpeg = ffmpeg_path
        self.job = job
        self.ctx = ctx
        self.preset = Preset.from_dict(job["preset"])
        self.source = job["source"]
        self.media = source_of(job)
        self.threads = ctx.threads

    def _base(self, progress: Path) -> list[str]:
        # -threads here is the decoder's (an input option); the encoder's is in
        # video_codec_args. Both get the cores this instance has.
        threads = ["-threads", str(self.threads)] if self.threads else []
        return [
            self.ffmpeg, "-hide_banner", "-nostdin", "-y", "-v", "warning", "-nostats",
            "-progress", str(progress), *threads,
        ]  # fmt: skip

    def _audio_maps(self) -> list[str]:
        """A -map for each audio track the output keeps, by its index in the source."""
        indexes = self.job.get("audio_streams")
        if indexes is None:  # a job planned before tracks were chosen: the first
            return ["-map", "0:a:0"]
        return [arg for index in indexes for arg in ("-map", f"0:{int(index)}")]

    def _display_size(self) -> tuple[int, int]:
        size = (self.source.get("video") or {}).get("display_size") or [0, 0]
        return int(size[0]), int(size[1])

    def _video_args(self, extra_filters: list[str]) -> list[str]:
        if self.job.get("deinterlace") and not extra_filters:
            extra_filters = [self._deinterlacer()]
        filters = extra_filters + presets_mod.video_filters(self.preset, self._display_size())
        args = ["-vf", ",".join(filters)] if filters else []
        if not self.preset.frame_rate:
            # Frames pass through one to one: the output has the source's timestamps, to
            # the tick (the encoder's default time base, a frame, would round a video
            # that starts 21 ms after its audio to 40 ms).
            args += ["-fps_mode", "passthrough", "-enc_time_base:v", "demux"]
        codec = presets_mod.video_codec_args(self.preset, self.threads)
        return args + codec + self._colour_args()

    def _deinterlacer(self) -> str:
        return presets_mod.deinterlace_filter(self.job.get("field_order") or "auto")

    def _mux_args(self, source_input: int = 0) -> list[str]:
        """The container, and the source's metadata, chapters and timecode (read from
        input ``source_input``): a split output's first input is the chunk list, which has
        none of them."""
        args = ["-map_metadata", str(source_input), "-map_chapters", str(source_input)]
        timecode = (self.source.get("tags") or {}).get("timecode")
        if timecode and self.preset.kind in ("video", "remux"):
            args += ["-timecode", str(timecode)]
        if self.preset.container in ("mp4", "mov", "m4a"):
            args += ["-movflags", "+faststart"]
        return [*args, "-f", self.preset.muxer]

    def _chunk_mux_args_plain(self) -> list[str]:
        """A chunk's container: no chapters, timecode or metadata (the assembly writes
        them from the source)."""
        return ["-map_metadata", "-1", "-map_chapters", "-1", "-f", self.preset.muxer]

    def _stream_metadata(self, source_input: int, audio: bool) -> list[str]:
        """The source's own stream tags (language, title, handler) for the joined video and
        each audio track: the chunks were written without them."""
        plans = [streams_mod.StreamPlan.from_dict(p) for p in self.job.get("streams") or []]
        video = next((p.index for p in plans if p.kind == "video" and p.kept), None)
        args = [] if video is None else ["-map_metadata:s:v:0", f"{source_input}:s:{video}"]
        if audio:
            for number, index in enumerate(self.job.get("audio_streams") or []):
                args += [f"-map_metadata:s:a:{number}", f"{source_input}:s:{int(index)}"]
        subtitles = [p.index for p in plans if p.kind == "subtitle" and p.kept]
        for number, index in enumerate(subtitles):
            args += [f"-map_metadata:s:s:{number}", f"{source_input}:s:{index}"]
        return args

    def _side_streams(self, source_input: int) -> list[str]:
        """Maps and codecs of the subtitles and attachments the output keeps."""
        plans = [streams_mod.StreamPlan.from_dict(p) for p in self.job.get("streams") or []]
        return streams_mod.output_args(plans, source_input)

    def _colour_args(self) -> list[str]:
        """The source's colour tags, told to the encoder: a scale or a chunk boundary must
        not leave the output untagged (players then guess BT.601 for HD)."""
        tags = self.source.get("tags") or {}
        return [arg for name in COLOUR_OPTIONS if name in tags
                for arg in (f"-{name}", str(tags[name]))]  # fmt: skip

    def _chunk_mux_args(self) -> list[str]:
        """A chunk of an intra-only codec in MOV/MP4 is written without an edit list: it needs
        none (no frame reordering), and ffmpeg 7.0's MOV muxer cuts the last frame of a
        ProRes chunk ended by -frames:v out of the edit list it writes."""
        if self.preset.container in ("mp4", "mov") and self.preset.video_codec in INTRA_ONLY:
            return ["-use_editlist", "0"]
        return []

    def _run(
        self,
        argv: list[str],
        progress: Path,
        total: float,
        unit: str,
        share: tuple[float, float] = (0.0, 1.0),
    ) -> ProcessResult:
        """Run ffmpeg, reporting its progress as the ``share`` (start, size) of the segment."""
        with watch_progress(progress, total, unit, self.ctx.on_progress, share):
            return self.ctx.run(argv, cwd=self.job.get("cwd"))

    def _encode(
        self,
        argv_for_pass: Callable[[int, str], list[str]],
        target: str,
        progress: Path,
        total: float,
        unit: str,
    ) -> SegmentOutcome:
        """Run one pass, or two (each half the progress), writing ``target``."""
        passes = [1, 2] if self.preset.two_pass else [0]
        passlog = str(progress.with_suffix(".pass"))
        try:
            for number in passes:
                share = (0.5 * (number - 1), 0.5) if number else (0.0, 1.0)
                result = self._run(argv_for_pass(number, passlog), progress, total, unit, share)
                if not result.succeeded():
                    break
        finally:
            for leftover in Path(passlog).parent.glob(Path(passlog).name + "*"):
                leftover.unlink(missing_ok=True)
        return _outcome(result, target)

    def _pass_args(self, number: int, passlog: str) -> list[str]:
        if number == 0:
            return []
        return ["-pass", str(number), "-passlogfile", passlog]

    def video_chunk(self, seg: Mapping[str, Any]) -> SegmentOutcome:
        chunk = seg["chunk"]
        temp = temporary_name(chunk, self.ctx.key)
        Path(chunk).parent.mkdir(parents=True, exist_ok=True)
        progress = Path(temp + ".progress")
        seek = ["-ss", f"{seg['seek']:.6f}"] if seg.get("seek") is not None else []
        # The first kept frame becomes time 0, so chunks join on their own durations. The
        # source's timestamps are kept and shifted on output (not rewritten by setpts, which
        # leaves the encoder without a frame rate: x264 then labels 720p25 Level 6.2).
        first = seg.get("first_time")
        inputs = self.media.input_args()
        if self.media.is_sequence:
            inputs, shift, video = self._sequence_chunk(int(seg["first"]))
        elif first is None:  # planned before chunks kept their timestamps
            shift, video = seek, self._video_args(["setpts=PTS-STARTPTS"])
        else:
            shift = ["-copyts", *seek]
            head_filters: list[str] = []
            if self.job.get("deinterlace") and seg.get("trim_start") is not None:
                # The frame before the cut is decoded and filtered (the deinterlacer looks
                # at it), then dropped: the seam's frames are those of a whole-file run.
                shift = ["-copyts", "-ss", f"{float(seg.get('context_seek') or 0.0):.6f}"]
                head_filters = [self._deinterlacer(),
                                f"trim=start={float(seg['trim_start']):.6f}"]  # fmt: skip
            video = [*self._video_args(head_filters), "-output_ts_offset", f"{-float(first):.9f}"]

        def argv(number: int, passlog: str) -> list[str]:
            head = [*self._base(progress), *shift, *inputs, "-map", "0:v:0"]
            tail = ["-an", "-sn", "-dn", "-frames:v", str(seg["frames"])]
            out = [*self._chunk_mux_args_plain(), *self._chunk_mux_args(), temp]
            if number == 1:
                out = ["-f", "null", os.devnull]
            return [*head, *video, *self._pass_args(number, passlog), *tail, *out]

        outcome = self._encode(argv, temp, progress, float(seg["frames"]), "frame")
        return self._finish(outcome, temp, chunk, progress)

    def _sequence_chunk(self, first: int) -> tuple[list[str], list[str], list[str]]:
        """Input, seek and video options of a sequence's chunk: it reads its own frames by
        number, from 0 (no seek); a deinterlaced one reads the frame before its cut too, for
        the filter, and drops it."""
        if not (self.job.get("deinterlace") and first > 0):
            return self.media.input_args(first), [], self._video_args([])
        head = [self._deinterlacer(), "trim=start_frame=1"]
        shift = ["-output_ts_offset", f"{-float(1 / self.media.rate):.9f}"]
        return self.media.input_args(first - 1), [], [*self._video_args(head), *shift]

    def audio_chunk(self, seg: Mapping[str, Any]) -> SegmentOutcome:
        chunk = seg["chunk"]
        temp = temporary_name(chunk, self.ctx.key)
        Path(chunk).parent.mkdir(parents=True, exist_ok=True)
        progress = Path(temp + ".progress")
        argv = [
            *self._base(progress), *self.media.input_args(), *self._audio_maps(), "-vn", "-sn",
            "-dn", *presets_mod.audio_codec_args(self.preset), *self._chunk_mux_args_plain(),
            temp,
        ]  # fmt: skip
        duration = float((self.source.get("audio") or {}).get("duration") or 1.0)
        result = self._run(argv, progress, duration, "time")
        outcome = _outcome(result, temp)
        return self._finish(outcome, temp, chunk, progress)

    def assemble(self, seg: Mapping[str, Any]) -> SegmentOutcome:
        output = seg["output"]
        temp = temporary_name(output, self.ctx.key)
        progress = Path(temp + ".progress")
        parts = Path(parts_dir(output))
        missing = [c for c in [*seg["chunks"], seg.get("audio")] if c and not os.path.exists(c)]
        if missing:
            return SegmentOutcome(ok=False, error=f"a chunk is missing: {missing[0]}")
        listing = parts / f".qfarm-{self.ctx.key}.ffconcat"
        write_concat_list(listing, list(zip(seg["chunks"], seg["durations"], strict=True)))
        inputs = ["-f", "concat", "-safe", "0", "-i", str(listing)]
        maps = ["-map", "0:v:0"]
        audio = seg.get("audio")
        video_at = self._video_offset()
        if video_at:
            inputs[:0] = ["-itsoffset", f"{video_at:.6f}"]
        if audio:
            # The chunk's own timestamps, unchanged: ffmpeg counts an input from its start
            # time, which this gives back.
            audio_at = probe(audio).start
            if audio_at:
                inputs += ["-itsoffset", f"{audio_at:.6f}"]
            inputs += ["-i", audio]
            maps += ["-map", "1:a"]
        source_input = 2 if audio else 1
        inputs += self.media.input_args()
        maps += self._side_streams(source_input)
        maps += self._stream_metadata(source_input, bool(audio))
        argv = [*self._base(progress), *inputs, *maps, "-c:v", "copy", "-c:a", "copy",
                *self._mux_args(source_input), temp]  # fmt: skip
        total = float((self.source.get("video") or {}).get("duration") or 1.0)
        try:
            result = self._run(argv, progress, total, "time")
        finally:
            listing.unlink(missing_ok=True)
        outcome = _outcome(result, temp)
        if outcome.ok:
            outcome = self._verify(temp, seg.get("seams") or [])
        outcome = self._finish(outcome, temp, output, progress)
        if outcome.ok:
            shutil.rmtree(parts, ignore_errors=True)
        return outcome

    def _video_offset(self) -> float:
        """Where the joined video starts in the output. The audio chunk was encoded on the
        source's own timeline (ffmpeg counts it from the source's start time, priming
        aside), so the video goes where it started on that timeline: a video 0.5 s after
        its audio keeps its lead-in, and the audio keeps its offset to the sample."""
        if not self.source.get("audio") or not self.preset.audio_codec:
            return 0.0
        video_start = float((self.source.get("video") or {}).get("start") or 0.0)
        return max(0.0, video_start - float(self.source.get("start") or 0.0))

    def images(self, seg: Mapping[str, Any]) -> SegmentOutcome:
        folder = Path(seg["folder"])
        staging = folder / f".qfarm-{self.ctx.key}"
        staging.mkdir(parents=True, exist_ok=True)
        progress = staging / "progress"
        first, count = int(seg["first"]), int(seg["frames"])
        stem = str(seg["stem"]).replace("%", "%%")
        pattern = image_pattern(staging, f"{stem}_%06d{self.preset.extension}")
        seek = ["-ss", f"{seg['seek']:.6f}"] if seg.get("seek") is not None else []
        inputs = self.media.input_args()
        if self.media.is_sequence:
            seek, inputs = [], self.media.input_args(first)
        argv = [
            *self._base(progress), *seek, *inputs, "-map", "0:v:0",
            *self._video_args([]), "-frames:v", str(count), "-start_number", str(first + 1),
            "-f", "image2", pattern,
        ]  # fmt: skip
        try:
            result = self._run(argv, progress, float(count), "frame")
            if not result.succeeded():
                return describe_process_failure(result, "ffmpeg")
            names = [
                f"{seg['stem']}_{n:06d}{self.preset.extension}"
                for n in range(first + 1, first + count + 1)
            ]
            absent = [
                n for n in names if not (staging / n).is_file() or not (staging / n).stat().st_size
            ]
            if absent:
                return SegmentOutcome(
                    ok=False, exit_code=0, error=f"ffmpeg did not write frame {absent[0]}"
                )
            for name in names:
                os.replace(staging / name, folder / name)
            return SegmentOutcome(ok=True, exit_code=0)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def whole(self, seg: Mapping[str, Any]) -> SegmentOutcome:
        output = seg["output"]
        temp = temporary_name(output, self.ctx.key)
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        progress = Path(temp + ".progress")
        preset = self.preset
        has_audio = bool(self.source.get("audio")) and preset.audio_codec is not None
        has_video = bool(self.source.get("video")) and preset.video_codec is not None
        if preset.kind == "remux":
            # Every stream the container takes, copied.
            codec = ["-map", "0:v:0", *(self._audio_maps() if has_audio else []), "-c", "copy"]
            codec += self._side_streams(0)
        else:
            codec = []
            if has_video:
                codec += ["-map", "0:v:0", *self._video_args([])]
            if has_audio:
                codec += [*self._audio_maps(), *presets_mod.audio_codec_args(preset)]
            if preset.kind == "video":
                codec += self._side_streams(0)
        if has_video:
            codec += self._stream_metadata(0, has_audio)
        if not has_video:
            codec.append("-vn")
        if not has_audio:
            codec.append("-an")

        def argv(number: int, passlog: str) -> list[str]:
            if number == 1:
                return [
                    *self._base(progress), *self.media.input_args(), "-map", "0:v:0",
                    *self._video_args([]), *self._pass_args(1, passlog), "-an",
                    "-f", "null", os.devnull,
                ]  # fmt: skip
            return [
                *self._base(progress), *self.media.input_args(), *codec,
                *self._pass_args(number, passlog), "-dn", *self._mux_args(), temp,
            ]  # fmt: skip

        if has_video:
            total, unit = float((self.source.get("video") or {}).get("frames") or 1), "frame"
        else:
            total, unit = float((self.source.get("audio") or {}).get("duration") or 1), "time"
        outcome = self._encode(argv, temp, progress, total, unit)
        if outcome.ok:
            outcome = self._verify(temp, [])
        return self._finish(outcome, temp, output, progress)

    def _verify(self, temp: str, seams: list[float]) -> SegmentOutcome:
        mode = self.job.get("verify") or "seams"
        if mode == "none":
            return SegmentOutcome(ok=True, exit_code=0)
        self.ctx.log(f"verifying {os.path.basename(temp)} ({mode})")
        return check_output(
            temp, self.job["expected"], self.ctx, self.ffmpeg, self.job.get("cwd"),
            seams=seams, full=mode == "full",
        )  # fmt: skip

    @staticmethod
    def _finish(outcome: SegmentOutcome, temp: str, final: str, progress: Path) -> SegmentOutcome:
        """Rename the temporary file into place on success; leave nothing otherwise."""
        progress.unlink(missing_ok=True)
        if outcome.ok:
            os.replace(temp, final)
        else:
            discard(temp)
        return outcome


class _Stopped(Exception):
    def __init__(self, outcome: SegmentOutcome) -> None:
        self.outcome = outcome


def check_output(
    path: str,
    expected: Mapping[str, Any],
    ctx: SegmentContext,
    ffmpeg_path: str,
    cwd: str | None,
    *,
    seams: list[float],
    full: bool,
) -> SegmentOutcome:
    """Verify an output before it takes its final name, its decodes run under the node's
    supervisor (a cancel or the timeout ends them, and the segment says so)."""

    def decode(argv: list[str], log: Path) -> int:
        result = ctx.run(argv, cwd=cwd, log_path=log)
        if result.killed or result.timed_out:
            raise _Stopped(describe_process_failure(result, "verification"))
        return result.exit_code

    try:
        problems = verify_mod.verify(
            path, expected, seams=seams, full=full, decode=decode, ffmpeg=ffmpeg_path,
            error_log=Path(path + ".verify"),
        )  # fmt: skip
    except _Stopped as stop:
        return stop.outcome
    except InvalidRequest as exc:  # the output cannot even be read
        problems = [str(exc)]
    if problems:
        for problem in problems:
            ctx.log(f"verification failed: {problem}")
        return SegmentOutcome(ok=False, exit_code=0, error=f"verification: {problems[0]}")
    return SegmentOutcome(ok=True, exit_code=0)


def _outcome(result: ProcessResult, target: str) -> SegmentOutcome:
    if not result.succeeded():
        return describe_process_failure(result, "ffmpeg")
    if not os.path.exists(target):
        return SegmentOutcome(ok=False, exit_code=0, error=f"ffmpeg exited 0 but wrote no {target}")
    return SegmentOutcome(ok=True, exit_code=0)


TRANSCODE = TranscodeJobType()
