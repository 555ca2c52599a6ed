"""What a source holds, read with PyAV before a job is planned.

Planning needs more than a container's header: segment cuts are placed on frames, so the
probe reads every video packet's timestamp (a demux, no decoding: fast even for long
sources) and keeps the sorted list. The frame count and duration that the output is later
checked against come from the same read.
"""

from __future__ import annotations

import bisect
import itertools
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from qfarm.errors import InvalidRequest


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
    codec: str
    channels: int
    layout: str
    sample_rate: int
    start_seconds: float
    duration: float


@dataclass(frozen=True)
class MediaInfo:
    path: str
    container: str
    duration: float
    start: float  # the container's start time: where ffmpeg's -ss counts from
    video: VideoFacts | None
    audio: AudioFacts | None

    def summary(self) -> dict[str, Any]:
        """The facts a job spec carries (JSON): enough to check outputs on any node."""
        facts: dict[str, Any] = {"container": self.container, "duration": self.duration}
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
            }
        if self.audio is not None:
            a = self.audio
            facts["audio"] = {
                "codec": a.codec,
                "channels": a.channels,
                "layout": a.layout,
                "sample_rate": a.sample_rate,
                "duration": a.duration,
                "start": a.start_seconds,
            }
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
    audio_stream = next(iter(container.streams.audio), None)
    if video_stream is None and audio_stream is None:
        raise InvalidRequest(f"{path} has no video or audio stream")
    wanted = [s for s in (video_stream, audio_stream) if s is not None]
    video_pts: list[int] = []
    key_pts: list[int] = []
    video_end = None
    audio_first: int | None = None
    audio_end: int | None = None
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
            audio_first = stamp if audio_first is None else min(audio_first, stamp)
            end = stamp + (packet.duration or 0)
            audio_end = end if audio_end is None else max(audio_end, end)

    video = None
    if video_stream is not None:
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
        rotation = _rotation(container, video_stream)
        span = Fraction(end - video_pts[0]) * video_stream.time_base
        rate = Fraction(len(video_pts)) / span if span else Fraction(25)
        video = VideoFacts(
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
        )
    audio = None
    if audio_stream is not None and audio_first is not None and audio_end is not None:
        ctx = audio_stream.codec_context
        tb = audio_stream.time_base
        audio = AudioFacts(
            codec=_codec_name(ctx),
            channels=int(ctx.channels),
            layout=ctx.layout.name if ctx.layout is not None else "",
            sample_rate=int(ctx.sample_rate),
            start_seconds=float(audio_first * tb),
            duration=float((audio_end - audio_first) * tb),
        )
    if video is None and audio is None:
        raise InvalidRequest(f"{path}: its streams hold no packets")
    duration = max(
        video.duration if video else 0.0,
        audio.duration if audio else 0.0,
    )
    return MediaInfo(
        path=path,
        container=str(container.format.name),
        duration=duration,
        start=_container_start(container, video, audio),
        video=video,
        audio=audio,
    )


def _rotation(container: Any, stream: Any) -> int:
    """The display rotation, read off the first decoded frame (PyAV exposes the display
    matrix there). A source whose first frame does not decode is refused later by ffmpeg.
    """
    import av

    try:
        container.seek(0)
        for frame in container.decode(stream):
            return int(getattr(frame, "rotation", 0) or 0) % 360
    except av.FFmpegError:
        return 0
    finally:
        container.seek(0)
    return 0


def _container_start(container: Any, video: VideoFacts | None, audio: AudioFacts | None) -> float:
    if container.start_time is not None:
        return float(container.start_time) / 1_000_000
    starts = [f.start_seconds for f in (video, audio) if f is not None]
    return min(starts) if starts else 0.0


def _codec_name(ctx: Any) -> str:
    """The codec's own name ("av1"), not its decoder's ("libdav1d")."""
    return str(getattr(ctx.codec, "canonical_name", None) or ctx.name)
