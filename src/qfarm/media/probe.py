"""What a source holds, read with PyAV before a job is planned.

Planning needs more than a container's header: segment cuts are placed on frames, so the
probe reads every video packet's timestamp (a demux, no decoding: fast even for long
sources) and keeps the sorted list. The frame count and duration that the output is later
checked against come from the same read.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from qfarm.domain.errors import InvalidRequest


@dataclass(frozen=True)
class VideoFacts:
    codec: str
    width: int
    height: int
    rotation: int  # degrees, from the display matrix; ffmpeg applies it when encoding
    pix_fmt: str
    time_base: Fraction
    frame_rate: Fraction  # average, for people and for the duration tolerance
    pts: tuple[int, ...]  # every frame's timestamp in presentation order, in time_base
    end: int  # where the last frame ends, in time_base
    keyframes: tuple[int, ...] = ()  # indexes (into pts) of the keyframes
    guessed_rate: Fraction | None = None  # the rate ffmpeg tells an encoder of these frames
    level: int = 0  # H.264 level_idc (31 is Level 3.1), HEVC general_level_idc; 0 unknown
    interlaced: bool = False  # its frames are flagged as two fields (1080i)

    @property
    def frames(self) -> int:
        return len(self.pts)

    @property
    def start_seconds(self) -> float:
        return float(self.pts[0] * self.time_base)

    @property
    def duration(self) -> float:
        return float((self.end - self.pts[0]) * self.time_base)

    @property
    def longest_frame(self) -> float:
        """The longest time one frame is shown, in seconds: "within one frame" for sources
        of variable frame rate."""
        stamps = (*self.pts, self.end)
        gaps = [b - a for a, b in itertools.pairwise(stamps)]
        return float(max(gaps) * self.time_base) if gaps else self.duration

    @property
    def constant_rate(self) -> bool:
        """Whether every frame lasts as long as the others (within one tick)."""
        gaps = {b - a for a, b in itertools.pairwise(self.pts)}
        return not gaps or max(gaps) - min(gaps) <= 1

    def seconds(self, index: int) -> float:
        """When frame ``index`` starts, in seconds from the first frame; the end for
        ``index == frames``."""
        pts = self.end if index >= len(self.pts) else self.pts[index]
        return float((pts - self.pts[0]) * self.time_base)

    @property
    def display_size(self) -> tuple[int, int]:
        if self.rotation % 180:
            return self.height, self.width
        return self.width, self.height


@dataclass(frozen=True)
class AudioFacts:
    """One audio track. Its start and length are what a player presents: the encoder's
    priming (the samples an edit list or a skip tells the decoder to drop, 1024 for ffmpeg's
    AAC) is counted apart, so a stream that starts with the video reads ``start_seconds`` 0
    though its first packet is stamped a frame earlier."""

    codec: str
    channels: int
    layout: str
    sample_rate: int
    start_seconds: float
    duration: float
    index: int = 0  # the stream's index in its file (ffmpeg's -map 0:INDEX)
    samples: int = 0  # samples presented, priming dropped and the end trimmed as marked
    priming: int = 0  # samples before the start that the decoder drops

    def summary(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "codec": self.codec,
            "channels": self.channels,
            "layout": self.layout,
            "sample_rate": self.sample_rate,
            "duration": self.duration,
            "start": self.start_seconds,
            "samples": self.samples,
            "priming": self.priming,
        }


@dataclass(frozen=True)
class StreamFacts:
    """Any stream of a file, as far as deciding whether an output keeps it needs."""

    index: int
    kind: str  # video, audio, subtitle, attachment, data
    codec: str
    language: str = ""
    title: str = ""
    attached_pic: bool = False  # a cover picture, not a moving video
    role: str = ""  # of a data stream: "timecode" (a tmcd track), "chapters" (MOV's text)

    def summary(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class MediaInfo:
    path: str
    container: str
    duration: float
    start: float  # the container's start time: where ffmpeg's -ss counts from
    video: VideoFacts | None
    audio: AudioFacts | None  # the first track
    audio_tracks: tuple[AudioFacts, ...] = ()  # every track, the first included
    streams: tuple[StreamFacts, ...] = ()  # every stream, in the file's order
    tags: Mapping[str, str] = dataclasses.field(default_factory=dict)  # timecode, colour
    chapters: int = 0

    @property
    def tracks(self) -> tuple[AudioFacts, ...]:
        """Every audio track (records made by hand may give only ``audio``)."""
        if self.audio_tracks:
            return self.audio_tracks
        return (self.audio,) if self.audio is not None else ()

    def summary(self) -> dict[str, Any]:
        """The facts a job spec carries (JSON): enough to check outputs on any node."""
        facts: dict[str, Any] = {
            "container": self.container,
            "duration": self.duration,
            "start": self.start,
        }
        if self.video is not None:
            v = self.video
            facts["video"] = {
                "codec": v.codec,
                "width": v.width,
                "height": v.height,
                "display_size": list(v.display_size),
                "rotation": v.rotation,
                "pix_fmt": v.pix_fmt,
                "frames": v.frames,
                "frame_rate": str(v.frame_rate),
                "duration": v.duration,
                "start": v.start_seconds,
                "constant_rate": v.constant_rate,
                "keyframes": len(v.keyframes),
                "rate": str(v.guessed_rate or v.frame_rate),
                "interlaced": v.interlaced,
            }
        if self.audio is not None:
            facts["audio"] = self.audio.summary()
            facts["audio_tracks"] = [a.summary() for a in self.tracks]
        facts["streams"] = [s.summary() for s in self.streams]
        facts["tags"] = dict(self.tags)
        facts["chapters"] = self.chapters
        return facts


def probe(path: str) -> MediaInfo:
    """Read ``path``'s streams. Raises :class:`InvalidRequest` for a missing file or one
    that is not media PyAV can read.
    """
    import av

    if not os.path.exists(path):
        raise InvalidRequest(f"{path} does not exist")
    if not os.path.isfile(path):
        raise InvalidRequest(f"{path} is not a file")
    try:
        container = av.open(path, metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidRequest(
            f"{path} is not a media file qfarm can read ({_reason(exc)})"
        ) from None
    try:
        return _read(path, container)
    except (av.FFmpegError, ValueError, ZeroDivisionError) as exc:
        raise InvalidRequest(f"{path} cannot be read to its end ({_reason(exc)})") from None
    finally:
        container.close()


def _reason(exc: Exception) -> str:
    """FFmpeg's own words without the path, which the message names already."""
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).strip() or type(exc).__name__


def _read(path: str, container: Any) -> MediaInfo:
    import av

    video_stream = next(
        (
            s
            for s in container.streams.video
            if not s.disposition & av.stream.Disposition.attached_pic
        ),
        None,
    )
    audio_streams = list(container.streams.audio)
    if video_stream is None and not audio_streams:
        raise InvalidRequest(f"{path} has no video or audio stream")
    wanted = [s for s in (video_stream, *audio_streams) if s is not None]
    video_pts: list[int] = []
    key_pts: list[int] = []
    video_end = None
    spans: dict[int, _Span] = {s.index: _Span() for s in audio_streams}
    for packet in container.demux(wanted):
        stamp = packet.pts if packet.pts is not None else packet.dts
        if stamp is None or packet.size == 0:
            continue
        if packet.stream is video_stream:
            video_pts.append(stamp)
            if packet.is_keyframe:
                key_pts.append(stamp)
            if packet.duration:
                end = stamp + packet.duration
                video_end = end if video_end is None else max(video_end, end)
        else:
            spans[packet.stream.index].add(stamp, packet.duration or 0)

    video = None
    if video_stream is not None:
        video = _video_facts(path, container, video_stream, video_pts, key_pts, video_end)
    tracks = tuple(
        _audio_facts(s, spans[s.index]) for s in audio_streams if spans[s.index].first is not None
    )
    audio = tracks[0] if tracks else None
    if video is None and audio is None:
        raise InvalidRequest(f"{path}: its streams hold no packets")
    duration = max(
        video.duration if video else 0.0,
        max((a.duration for a in tracks), default=0.0),
    )
    return MediaInfo(
        path=path,
        container=str(container.format.name),
        duration=duration,
        start=_container_start(container, video, audio),
        video=video,
        audio=audio,
        audio_tracks=tracks,
        streams=tuple(_stream_facts(s) for s in container.streams),
        tags=_tags(container, video_stream),
        chapters=len(_chapters(container)),
    )


@dataclasses.dataclass
class _Span:
    """First timestamp and end of one audio stream's packets, gathered while demuxing."""

    first: int | None = None
    end: int | None = None

    def add(self, stamp: int, duration: int) -> None:
        self.first = stamp if self.first is None else min(self.first, stamp)
        end = stamp + duration
        self.end = end if self.end is None else max(self.end, end)


def _video_facts(
    path: str,
    container: Any,
    video_stream: Any,
    video_pts: list[int],
    key_pts: list[int],
    video_end: int | None,
) -> VideoFacts:
    if not video_pts:
        raise InvalidRequest(f"{path}: its video stream holds no frames")
    video_pts.sort()
    gaps = sorted(b - a for a, b in itertools.pairwise(video_pts) if b > a)
    typical = gaps[len(gaps) // 2] if gaps else 0
    last = video_pts[-1]
    end = video_end if video_end is not None and video_end > last else last + typical
    if end <= last:
        # One frame and no duration: give it one frame at the stream's nominal rate.
        rate = video_stream.average_rate or video_stream.guessed_rate or Fraction(25)
        end = last + max(1, round(1 / (rate * video_stream.time_base)))
    ctx = video_stream.codec_context
    rotation, interlaced = _first_frame(container, video_stream)
    span = Fraction(end - video_pts[0]) * video_stream.time_base
    rate = Fraction(len(video_pts)) / span if span else Fraction(25)
    return VideoFacts(
        codec=_codec_name(ctx),
        width=int(ctx.width),
        height=int(ctx.height),
        rotation=rotation,
        pix_fmt=ctx.format.name if ctx.format is not None else "",
        time_base=Fraction(video_stream.time_base),
        frame_rate=Fraction(video_stream.average_rate or rate).limit_denominator(1001000),
        pts=tuple(video_pts),
        keyframes=tuple(bisect.bisect_left(video_pts, k) for k in sorted(key_pts)),
        end=int(end),
        guessed_rate=_guessed_rate(video_stream, rate),
        level=codec_level(_codec_name(ctx), bytes(ctx.extradata or b"")),
        interlaced=interlaced,
    )


def codec_level(codec: str, extradata: bytes) -> int:
    """The level a stream's header declares: from an avcC or hvcC record, or from the
    sequence parameter set of an Annex B header. 0 when it says none."""
    if codec == "h264":
        if len(extradata) > 3 and extradata[0] == 1:  # avcC: version, profile, compat, level
            return extradata[3]
        at = extradata.find(b"\x00\x00\x01\x67")
        if at >= 0 and len(extradata) > at + 6:
            return extradata[at + 6]
    if codec == "hevc" and len(extradata) > 12 and extradata[0] == 1:
        return extradata[12]  # hvcC general_level_idc (30 x the level)
    return 0


def _guessed_rate(stream: Any, measured: Fraction) -> Fraction:
    """The rate ffmpeg itself gives the stream's frames when it encodes them (its
    ``av_guess_frame_rate``): what an encoder is told, and so what its level follows."""
    rate = stream.guessed_rate or stream.average_rate or measured
    return Fraction(rate).limit_denominator(1001000)


def _audio_facts(stream: Any, span: _Span) -> AudioFacts:
    """A track's presented start and length. The demuxer's start time is where playback
    begins (after the priming an edit list skips); without one, the first packet."""
    assert span.first is not None and span.end is not None
    ctx = stream.codec_context
    tb = Fraction(stream.time_base)
    marked = stream.start_time if stream.start_time is not None else span.first
    start = Fraction(min(max(marked, span.first), span.end)) * tb
    first, end = span.first * tb, span.end * tb
    rate = int(ctx.sample_rate)
    padding = int(getattr(ctx, "delay", 0) or 0)
    if start == first and padding and rate and _codec_name(ctx) == "opus":
        # Matroska marks Opus's pre-skip as a codec delay, its timestamps left as they are.
        # (It marks AAC's priming so too, but ffmpeg's AAC decoder plays it: those
        # samples are then part of what the track presents.)
        start = min(end, first + Fraction(padding, rate))
    return AudioFacts(
        codec=_codec_name(ctx),
        channels=int(ctx.channels),
        layout=ctx.layout.name if ctx.layout is not None else "",
        sample_rate=rate,
        start_seconds=float(start),
        duration=float(end - start),
        index=int(stream.index),
        samples=round((end - start) * rate),
        priming=round((start - first) * rate),
    )


def _stream_facts(stream: Any) -> StreamFacts:
    import av

    metadata = dict(stream.metadata or {})
    codec = ""
    try:
        codec = _codec_name(stream.codec_context) if stream.codec_context else ""
    except (AttributeError, av.FFmpegError):
        codec = ""
    if not codec:
        codec = str(getattr(getattr(stream, "codec", None), "name", "") or "")
    return StreamFacts(
        index=int(stream.index),
        kind=str(stream.type),
        codec=codec,
        language=str(metadata.get("language") or ""),
        title=str(metadata.get("title") or ""),
        attached_pic=bool(stream.disposition & av.stream.Disposition.attached_pic),
        role=_role(stream, metadata),
    )


def _role(stream: Any, metadata: dict[str, str]) -> str:
    """What a data stream holds, where MOV says so: a timecode track, or the text track
    that holds its chapters (ffmpeg reads both as data; their content is carried as the
    output's timecode and chapters)."""
    if str(stream.type) != "data":
        return ""
    handler = str(metadata.get("handler_name") or "")
    if "timecode" in metadata or handler == "TimeCodeHandler":
        return "timecode"
    if handler == "SubtitleHandler":
        return "chapters"
    return ""


# The colour tags an output must carry as the source has them.
COLOUR_TAGS = ("color_primaries", "color_trc", "colorspace", "color_range")


def _tags(container: Any, video_stream: Any) -> dict[str, str]:
    """The source's timecode and colour tags (numbers as ffmpeg's enums), by name."""
    tags: dict[str, str] = {}
    timecode = (container.metadata or {}).get("timecode")
    for stream in container.streams:
        timecode = timecode or (stream.metadata or {}).get("timecode")
    if timecode:
        tags["timecode"] = str(timecode)
    if video_stream is not None:
        ctx = video_stream.codec_context
        for name in COLOUR_TAGS:
            value = int(getattr(ctx, name, 0) or 0)
            # 2 is "unspecified" for primaries, transfer and matrix; 0 for the range.
            if value and not (name != "color_range" and value == 2):
                tags[name] = str(value)
    return tags


def _chapters(container: Any) -> list[Any]:
    try:
        return list(container.chapters() or [])
    except (AttributeError, TypeError):
        return []


def _first_frame(container: Any, stream: Any) -> tuple[int, bool]:
    """The display rotation and whether the picture is interlaced, read off the first
    decoded frame (PyAV exposes the display matrix and the field flags there). A source whose
    first frame does not decode is refused later by ffmpeg.
    """
    import av

    try:
        container.seek(0)
        for frame in container.decode(stream):
            rotation = int(getattr(frame, "rotation", 0) or 0) % 360
            return rotation, bool(getattr(frame, "interlaced_frame", False))
    except av.FFmpegError:
        return 0, False
    finally:
        container.seek(0)
    return 0, False


def _container_start(container: Any, video: VideoFacts | None, audio: AudioFacts | None) -> float:
    if container.start_time is not None:
        return float(container.start_time) / 1_000_000
    starts = [f.start_seconds for f in (video, audio) if f is not None]
    return min(starts) if starts else 0.0


def _codec_name(ctx: Any) -> str:
    """The codec's own name ("av1"), not its decoder's ("libdav1d")."""
    return str(getattr(ctx.codec, "canonical_name", None) or ctx.name)
