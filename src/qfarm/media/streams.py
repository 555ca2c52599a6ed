"""Which of a source's streams an output keeps, converts or drops, and why.

Users hand the farm masters with several audio tracks, subtitles, fonts and timecode
tracks; an output that silently keeps one video and one audio track loses their work. So
every stream is kept by default, converted where the output's container cannot hold it
as it is (text subtitles become mov_text in MP4 and MOV, WebVTT in WebM, SubRip in
Matroska when they were mov_text), and dropped only where the container has no place for
it, with a reason that names it. Bitmap subtitles cannot be converted (ffmpeg encodes
bitmap subtitles only from bitmaps), so they are copied where the container holds them:
Matroska holds every kind; ffmpeg 7.0's MP4 muxer holds VobSub (``dvd_subtitle``, as
``mp4s``) but not PGS or DVB, and its MOV muxer none (each tried by the tests). The plan
is made once, at validation: it travels in the job's spec (``streams``, for ``qfarm show``
and the run summary) and drives the ffmpeg maps of every segment.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from qfarm.media.presets import ENCODER_CODECS, Preset
from qfarm.media.probe import AudioFacts, MediaInfo, StreamFacts

TEXT_SUBTITLES = frozenset({"subrip", "srt", "ass", "ssa", "mov_text", "webvtt", "text"})
BITMAP_SUBTITLES = frozenset({"dvd_subtitle", "hdmv_pgs_subtitle", "dvb_subtitle", "xsub"})
# The text subtitle codec each container takes, and the ones it holds as they are.
SUBTITLE_TARGET = {"mp4": "mov_text", "mov": "mov_text", "webm": "webvtt", "mkv": "subrip"}
SUBTITLE_KEPT = {
    "mp4": frozenset({"mov_text", "dvd_subtitle"}),
    "mov": frozenset({"mov_text"}),
    "webm": frozenset({"webvtt"}),
    "mkv": frozenset({"subrip", "srt", "ass", "ssa", "webvtt", *BITMAP_SUBTITLES}),
}
# Containers that hold one audio track only.
SINGLE_AUDIO = frozenset({"mp3"})


@dataclass(frozen=True)
class StreamPlan:
    """One source stream's fate in the output."""

    index: int  # in the source
    kind: str  # video, audio, subtitle, attachment, data
    codec: str  # the source's codec
    action: str  # "encoded as h264", "copied", "converted to mov_text", "dropped: why"
    output_codec: str | None = None  # the encoder, "copy", or None when dropped
    language: str = ""

    @property
    def kept(self) -> bool:
        return self.output_codec is not None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StreamPlan:
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})

    def describe(self) -> str:
        """One line for people: ``#2 subtitle subrip (eng): converted to mov_text``."""
        language = f" ({self.language})" if self.language and self.language != "und" else ""
        return f"#{self.index} {self.kind} {self.codec or '?'}{language}: {self.action}"


def plan_streams(preset: Preset, info: MediaInfo, kept_audio: list[AudioFacts]) -> list[StreamPlan]:
    """Every stream of ``info``, in the source's order, with what the output does with it."""
    video = info.video
    first_video = next(
        (s.index for s in info.streams if s.kind == "video" and not s.attached_pic), None
    )
    kept_audio_indexes = [t.index for t in kept_audio]
    plans = []
    for stream in info.streams:
        if stream.kind == "video":
            plans.append(_video(preset, stream, stream.index == first_video and video is not None))
        elif stream.kind == "audio":
            plans.append(_audio(preset, stream, kept_audio_indexes))
        elif stream.kind == "subtitle":
            plans.append(_subtitle(preset, stream))
        elif stream.kind == "attachment":
            plans.append(_attachment(preset, stream))
        else:
            plans.append(_data(preset, stream, info))
    return plans


def _plan(stream: StreamFacts, action: str, output: str | None = None) -> StreamPlan:
    return StreamPlan(
        index=stream.index, kind=stream.kind, codec=stream.codec, action=action,
        output_codec=output, language=stream.language,
    )  # fmt: skip


def _encoded(encoder: str) -> str:
    return "copied" if encoder == "copy" else f"encoded as {ENCODER_CODECS.get(encoder, encoder)}"


def _video(preset: Preset, stream: StreamFacts, first: bool) -> StreamPlan:
    if preset.video_codec is None:
        return _plan(stream, f"dropped: a {preset.container} file holds no video")
    if first:
        return _plan(stream, _encoded(preset.video_codec), preset.video_codec)
    if stream.attached_pic:
        return _plan(stream, "dropped: a cover picture, which the output does not carry")
    return _plan(stream, "dropped: only the first video stream is transcoded")


def _audio(preset: Preset, stream: StreamFacts, kept: list[int]) -> StreamPlan:
    if preset.audio_codec is None or preset.kind == "images":
        return _plan(stream, f"dropped: preset {preset.name!r} has no audio")
    if stream.index not in kept:
        if preset.container in SINGLE_AUDIO and kept:
            return _plan(stream, f"dropped: a {preset.container} file holds one audio track")
        return _plan(stream, f"dropped: not in the preset's audio_tracks {preset.audio_tracks}")
    return _plan(stream, _encoded(preset.audio_codec), preset.audio_codec)


def _subtitle(preset: Preset, stream: StreamFacts) -> StreamPlan:
    container = preset.container
    if preset.subtitles == "none":
        return _plan(stream, f"dropped: preset {preset.name!r} takes no subtitles")
    if container not in SUBTITLE_TARGET:
        return _plan(stream, f"dropped: a {container} file holds no subtitles")
    if stream.codec in SUBTITLE_KEPT[container]:
        return _plan(stream, "copied", "copy")
    if stream.codec in TEXT_SUBTITLES:
        target = SUBTITLE_TARGET[container]
        return _plan(stream, f"converted to {target}", target)
    if stream.codec in BITMAP_SUBTITLES:
        held = sorted(SUBTITLE_KEPT[container] & BITMAP_SUBTITLES)
        if held:
            return _plan(stream, f"dropped: a {container} file holds no {stream.codec} "
                                 f"subtitles (of bitmap ones, only {', '.join(held)})")  # fmt: skip
        return _plan(stream, f"dropped: a {container} file holds no bitmap subtitles")
    return _plan(stream, f"dropped: ffmpeg cannot put {stream.codec or 'this'} subtitle in a "
                         f"{container} file")  # fmt: skip


def _attachment(preset: Preset, stream: StreamFacts) -> StreamPlan:
    if preset.container == "mkv":
        return _plan(stream, "copied", "copy")
    return _plan(stream, f"dropped: a {preset.container} file holds no attachments")


def _data(preset: Preset, stream: StreamFacts, info: MediaInfo) -> StreamPlan:
    video_out = preset.kind in ("video", "remux")
    timecode = info.tags.get("timecode")
    if stream.role == "timecode" and timecode and video_out:
        return _plan(stream, f"carried as the output's timecode ({timecode})")
    if stream.role == "chapters" and info.chapters and preset.kind != "images":
        return _plan(stream, f"carried as the output's {info.chapters} chapters")
    return _plan(stream, f"dropped: ffmpeg cannot carry a {stream.codec or 'data'} stream into "
                         f"a {preset.container} file")  # fmt: skip


def output_args(plans: list[StreamPlan], input_index: int) -> list[str]:
    """Maps and codecs for the subtitle and attachment streams kept, read from input
    ``input_index`` (the source): one ``-c:s:N`` per output subtitle, so a container can
    take one stream as it is and convert another."""
    args: list[str] = []
    subtitle = 0
    for plan in plans:
        if not plan.kept or plan.kind not in ("subtitle", "attachment"):
            continue
        args += ["-map", f"{input_index}:{plan.index}"]
        if plan.kind == "subtitle":
            args += [f"-c:s:{subtitle}", str(plan.output_codec)]
            subtitle += 1
    if any(p.kept and p.kind == "attachment" for p in plans):
        args += ["-c:t", "copy"]
    return args


def dropped(plans: list[StreamPlan]) -> list[StreamPlan]:
    """The streams the output goes without (a timecode or chapter track is not lost: its
    content is carried otherwise)."""
    return [p for p in plans if not p.kept and p.action.startswith("dropped")]


def describe_listed(listed: Iterable[Mapping[str, Any]] | None) -> list[str]:
    """A line per stream of a job spec's ``streams`` (plans as dicts): what ``qfarm show``
    and the run summary print. Empty for a spec planned before streams were listed."""
    return [StreamPlan.from_dict(s).describe() for s in listed or []]
