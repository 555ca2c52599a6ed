"""What a transcode's validation reads and checks on the controller before anything is
queued: the source (a movie, or an image sequence at a rate), that the cluster's ffmpeg has the
preset's encoders and decodes the source, that the preset can take its streams, the output's
path, deinterlacing, and which audio tracks the output keeps.
"""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

from qfarm.domain.errors import InvalidRequest
from qfarm.jobtypes.base import job_path
from qfarm.media import presets as presets_mod
from qfarm.media import sources as sources_mod
from qfarm.media.interlace import FieldReading, read_fields
from qfarm.media.presets import Preset
from qfarm.media.probe import AudioFacts, MediaInfo
from qfarm.media.sources import MediaSource
from qfarm.media.tool import ToolMissing, ffmpeg


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


def media_source(raw_input: str, cwd: str, rate: Any) -> MediaSource:
    """The job's source: a file, or a pattern, folder or glob of frames at ``rate`` (which
    only a sequence takes: a movie has its own)."""
    media = sources_mod.resolve(raw_input, Path(cwd), sources_mod.parse_rate(rate))
    if rate is not None and not media.is_sequence:
        raise InvalidRequest(
            f"rate is for image sequences; {media.name} has its own (a preset's frame_rate "
            "changes it)"
        )
    return media


def output_path(spec: Mapping[str, Any], cwd: str, media: MediaSource, preset: Preset) -> str:
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


def deinterlace_choice(
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


def positive_float(value: Any, what: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidRequest(f"{what} {value!r} is not a number of seconds") from None
    if not number > 0:
        raise InvalidRequest(f"{what} must be more than 0 seconds, not {value!r}")
    return number


def check_ffmpeg_reads(media: MediaSource) -> None:
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


def check_streams(preset: Preset, info: MediaInfo) -> None:
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
