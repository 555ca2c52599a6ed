"""What a preset is: the containers and codecs it may name, the :class:`Preset` itself, and
reading one from a table (a user's TOML file, a batch file, or a job's spec), every key and
every combination checked so a preset that cannot make a file is refused before any source
is looked at.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from qfarm.domain.errors import InvalidRequest
from qfarm.media import levels

# container -> (ffmpeg muxer, file extension)
CONTAINERS: Mapping[str, tuple[str, str]] = {
    "mp4": ("mp4", ".mp4"),
    "mov": ("mov", ".mov"),
    "webm": ("webm", ".webm"),
    "mkv": ("matroska", ".mkv"),
    "m4a": ("ipod", ".m4a"),
    "mp3": ("mp3", ".mp3"),
    "png": ("image2", ".png"),
    "jpeg": ("image2", ".jpg"),
}
IMAGE_CONTAINERS = frozenset({"png", "jpeg"})
AUDIO_CONTAINERS = frozenset({"m4a", "mp3"})

# What each container takes, by codec name (None: anything).
CONTAINER_CODECS: Mapping[str, frozenset[str] | None] = {
    "mp4": frozenset({"h264", "hevc", "av1", "vp9", "mpeg4", "aac", "mp3", "opus", "flac",
                      "alac", "ac3", "eac3"}),
    "mov": frozenset({"h264", "hevc", "prores", "mjpeg", "png", "mpeg4", "dnxhd", "aac", "mp3",
                      "alac", "pcm_s16le", "pcm_s24le", "pcm_s16be", "pcm_s24be", "ac3"}),
    "webm": frozenset({"vp8", "vp9", "av1", "opus", "vorbis"}),
    "mkv": None,
    "m4a": frozenset({"aac", "alac"}),
    "mp3": frozenset({"mp3"}),
    "png": frozenset({"png"}),
    "jpeg": frozenset({"mjpeg"}),
}  # fmt: skip

# ffmpeg encoder -> the codec it writes
ENCODER_CODECS: Mapping[str, str] = {
    "libx264": "h264",
    "libx265": "hevc",
    "prores_ks": "prores",
    "prores": "prores",
    "libvpx-vp9": "vp9",
    "libaom-av1": "av1",
    "libsvtav1": "av1",
    "librav1e": "av1",
    "mpeg4": "mpeg4",
    "png": "png",
    "mjpeg": "mjpeg",
    "aac": "aac",
    "libmp3lame": "mp3",
    "libopus": "opus",
    "libvorbis": "vorbis",
    "flac": "flac",
    "alac": "alac",
    "pcm_s16le": "pcm_s16le",
    "pcm_s24le": "pcm_s24le",
}
# Encoders whose ffmpeg wrapper runs two passes with -pass 1 / -pass 2.
TWO_PASS_ENCODERS = frozenset({"libx264", "libvpx-vp9", "libaom-av1", "mpeg4"})


@dataclass(frozen=True)
class Preset:
    name: str
    container: str
    description: str = ""
    video_codec: str | None = None  # an encoder name, or "copy" (a remux)
    crf: int | None = None
    bitrate: str | None = None  # "4M"
    two_pass: bool = False
    encoder_preset: str | None = None  # -preset for x264/x265
    width: int | None = None
    height: int | None = None
    frame_rate: str | None = None  # "25", "30000/1001"
    pix_fmt: str | None = None
    video_options: tuple[str, ...] = ()
    audio_codec: str | None = None  # an encoder name, "copy", or None for no audio
    audio_bitrate: str | None = None
    audio_quality: str | None = None  # -q:a, for VBR encoders (mp3)
    audio_channels: int | None = None
    audio_sample_rate: int | None = None
    audio_options: tuple[str, ...] = ()
    level: str | None = None  # H.264/HEVC level: "4.1"; absent, the encoder picks it
    profile: str | None = None  # "high", "main", ...; absent, the encoder's choice
    audio_tracks: str | tuple[int, ...] = "all"  # "all", "first", or track numbers from 1
    subtitles: str = "all"  # "all" (converted to what the container holds) or "none"
    deinterlace: str = "auto"  # "auto" (interlaced sources only), "on" or "off"
    source: str = "built in"  # or the file it came from

    @property
    def kind(self) -> str:
        """``video``, ``audio`` (no picture), ``images`` (a numbered sequence) or ``remux``."""
        if self.container in IMAGE_CONTAINERS:
            return "images"
        if self.video_codec == "copy":
            return "remux"
        if self.video_codec is None:
            return "audio"
        return "video"

    @property
    def extension(self) -> str:
        return CONTAINERS[self.container][1]

    @property
    def muxer(self) -> str:
        return CONTAINERS[self.container][0]

    @property
    def rate(self) -> Fraction | None:
        return Fraction(self.frame_rate) if self.frame_rate else None

    def encoders(self) -> list[str]:
        return [c for c in (self.video_codec, self.audio_codec) if c and c != "copy"]

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["video_options"] = list(self.video_options)
        data["audio_options"] = list(self.audio_options)
        if isinstance(self.audio_tracks, tuple):
            data["audio_tracks"] = list(self.audio_tracks)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "preset") -> Preset:
        return parse(str(data.get("name") or ""), data, where, str(data.get("source") or ""))


_STR = (str,)
_FIELDS: Mapping[str, tuple[type, ...]] = {
    "description": _STR,
    "container": _STR,
    "video_codec": _STR,
    "crf": (int,),
    "bitrate": _STR,
    "two_pass": (bool,),
    "encoder_preset": _STR,
    "width": (int,),
    "height": (int,),
    "frame_rate": (str, int),
    "pix_fmt": _STR,
    "video_options": (list, tuple),
    "audio_codec": _STR,
    "audio_bitrate": _STR,
    "audio_quality": (str, int),
    "audio_channels": (int,),
    "audio_sample_rate": (int,),
    "audio_options": (list, tuple),
    "level": (str, int, float),
    "profile": _STR,
    "audio_tracks": (str, list, tuple),
    "subtitles": _STR,
    "deinterlace": _STR,
}
# Profiles libx264 takes with -profile:v.
X264_PROFILES = frozenset({"baseline", "main", "high", "high10", "high422", "high444"})
AUDIO_TRACK_CHOICES = ("all", "first")
SUBTITLE_CHOICES = ("all", "none")
DEINTERLACE_CHOICES = ("auto", "on", "off")


def parse(name: str, data: Mapping[str, Any], where: str, source: str) -> Preset:
    """A preset from a table, every key checked; raises InvalidRequest naming ``where``."""
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in ("name", "source") or value is None:
            continue
        if key not in _FIELDS:
            raise InvalidRequest(
                f"{where}: unknown key {key!r}; a preset takes " + ", ".join(sorted(_FIELDS))
            )
        types = _FIELDS[key]
        bad_bool = isinstance(value, bool) and bool not in types
        if not isinstance(value, types) or bad_bool:
            kinds = " or ".join(t.__name__ for t in types)
            raise InvalidRequest(f"{where}: {key} must be {kinds}, not {value!r}")
        if key == "audio_tracks":
            value = _audio_tracks(value, where)
        elif isinstance(value, list | tuple):
            if not all(isinstance(v, str | int | float) for v in value):
                raise InvalidRequest(f"{where}: {key} must be a list of strings")
            value = tuple(str(v) for v in value)
        elif key in ("frame_rate", "audio_quality", "level"):
            value = str(value)
        values[key] = value
    if not name:
        raise InvalidRequest(f"{where}: a preset needs a name")
    if "container" not in values:
        raise InvalidRequest(f"{where}: a preset needs a container ({', '.join(CONTAINERS)})")
    preset = Preset(name=name, source=source, **values)
    check(preset, where)
    return preset


def _audio_tracks(value: Any, where: str) -> str | tuple[int, ...]:
    """ "all", "first", or a list of track numbers counted from 1 (as people count them)."""
    if isinstance(value, str):
        if value not in AUDIO_TRACK_CHOICES:
            raise InvalidRequest(
                f'{where}: audio_tracks must be "all", "first" or a list of track '
                f"numbers like [1, 3], not {value!r}"
            )
        return value
    numbers = list(value)
    if not numbers or not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers):
        raise InvalidRequest(f"{where}: audio_tracks must list track numbers, not {value!r}")
    if any(n < 1 for n in numbers) or len(set(numbers)) != len(numbers):
        raise InvalidRequest(
            f"{where}: audio_tracks counts tracks from 1, each once, not {value!r}"
        )
    return tuple(numbers)


def _check_level_and_profile(preset: Preset, where: str) -> None:
    if preset.level is not None:
        if preset.video_codec not in ("libx264", "libx265"):
            raise InvalidRequest(f"{where}: level is for libx264 and libx265, not "
                                 f"{preset.video_codec}")  # fmt: skip
        try:
            if preset.video_codec == "libx264":
                levels.by_name(preset.level)
            else:
                levels.hevc_by_name(preset.level)
        except ValueError as exc:
            raise InvalidRequest(f"{where}: level {exc}") from None
    if preset.profile is not None:
        if preset.video_codec in (None, "copy"):
            raise InvalidRequest(f"{where}: profile needs a video_codec that encodes")
        if preset.video_codec == "libx264" and preset.profile not in X264_PROFILES:
            raise InvalidRequest(
                f"{where}: libx264 has no profile {preset.profile!r}; it has "
                + ", ".join(sorted(X264_PROFILES))
            )
    if preset.deinterlace not in DEINTERLACE_CHOICES:
        raise InvalidRequest(
            f"{where}: deinterlace must be auto, on or off, not {preset.deinterlace!r}"
        )
    if preset.subtitles not in SUBTITLE_CHOICES:
        raise InvalidRequest(
            f'{where}: subtitles must be "all" or "none", not {preset.subtitles!r}'
        )


def check(preset: Preset, where: str) -> None:
    """Refuse a preset that cannot make a file, before any source is looked at."""
    if preset.container not in CONTAINERS:
        raise InvalidRequest(
            f"{where}: unknown container {preset.container!r}; known are {', '.join(CONTAINERS)}"
        )
    kind = preset.kind
    if kind == "audio" and preset.audio_codec is None:
        raise InvalidRequest(f"{where}: a preset needs a video_codec or an audio_codec")
    if preset.container in AUDIO_CONTAINERS and preset.video_codec is not None:
        raise InvalidRequest(f"{where}: a {preset.container} file holds audio only")
    if kind == "images" and preset.video_codec is None:
        raise InvalidRequest(f"{where}: an image sequence needs a video_codec (png or mjpeg)")
    if kind == "images" and preset.frame_rate is not None:
        raise InvalidRequest(f"{where}: an image sequence keeps the source's frames: no frame_rate")
    if kind == "images" and preset.audio_codec is not None:
        raise InvalidRequest(f"{where}: an image sequence has no audio")
    if (preset.audio_codec == "copy") != (preset.video_codec == "copy") and kind != "audio":
        raise InvalidRequest(f"{where}: a remux copies both streams (video_codec and "
                             "audio_codec both \"copy\")")  # fmt: skip
    if preset.crf is not None and preset.bitrate is not None:
        raise InvalidRequest(f"{where}: give crf or bitrate, not both")
    if preset.two_pass:
        if preset.video_codec not in TWO_PASS_ENCODERS:
            raise InvalidRequest(
                f"{where}: two_pass works with {', '.join(sorted(TWO_PASS_ENCODERS))}, "
                f"not {preset.video_codec}"
            )
        if preset.bitrate is None:
            raise InvalidRequest(f"{where}: two_pass needs a bitrate")
    for size in ("width", "height"):
        value = getattr(preset, size)
        if value is not None and not 2 <= value <= 16384:
            raise InvalidRequest(f"{where}: {size} {value} is out of range (2-16384)")
    if preset.frame_rate is not None:
        try:
            rate = Fraction(preset.frame_rate)
        except (ValueError, ZeroDivisionError):
            raise InvalidRequest(
                f"{where}: frame_rate {preset.frame_rate!r} is not a number like 25 or 30000/1001"
            ) from None
        if not 0 < rate <= 1000:
            raise InvalidRequest(f"{where}: frame_rate {preset.frame_rate} is out of range")
    _check_level_and_profile(preset, where)
    allowed = CONTAINER_CODECS[preset.container]
    for encoder in (preset.video_codec, preset.audio_codec):
        if encoder is None or encoder == "copy":
            continue
        codec = ENCODER_CODECS.get(encoder, encoder)
        if allowed is not None and codec not in allowed:
            raise InvalidRequest(
                f"{where}: a {preset.container} file cannot hold {codec} (from {encoder}); "
                f"it takes {', '.join(sorted(allowed))}"
            )
