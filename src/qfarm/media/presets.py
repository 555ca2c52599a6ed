"""Transcode presets: what an output is (container, video and audio encoding), built in or
from users' TOML files, and the ffmpeg arguments each one turns into.

A preset is resolved on the client or controller into a plain dict that travels in the job's
spec, so nodes never need the user's preset files. The ffmpeg argument lists are built from
that dict on the node.

A user preset file holds one table per preset::

    [preset.web-small]
    description = "540p H.264 for the web"
    container = "mp4"            # mp4 mov webm mkv m4a mp3 png jpeg
    video_codec = "libx264"      # an ffmpeg encoder, or "copy"
    crf = 24                     # or bitrate = "3M" (two_pass = true for two passes)
    encoder_preset = "fast"
    height = 540                 # the width follows, keeping the aspect ratio
    frame_rate = "25"            # "30000/1001" works too; absent: the source's
    video_options = ["-tune", "film"]
    audio_codec = "aac"
    audio_bitrate = "128k"
    audio_channels = 2
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from qfarm.domain.errors import InvalidRequest

PRESETS_ENV = "QFARM_PRESETS"  # extra preset files, separated like PATH

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
# Pixel formats with subsampled chroma need even sizes (width; and height for 4:2:0).
_EVEN_BOTH = ("420",)
_EVEN_WIDTH = ("422",)


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
        return _parse(str(data.get("name") or ""), data, where, str(data.get("source") or ""))


def _builtin(name: str, container: str, description: str, **values: Any) -> Preset:
    return Preset(name=name, container=container, description=description, **values)


_X264 = {"video_codec": "libx264", "encoder_preset": "medium", "pix_fmt": "yuv420p"}
BUILTIN: dict[str, Preset] = {
    p.name: p
    for p in [
        _builtin("h264", "mp4", "H.264 MP4 at the source's size, CRF 20, AAC 192k",
                 crf=20, audio_codec="aac", audio_bitrate="192k", **_X264),
        _builtin("h264-1080p", "mp4", "H.264 MP4 1080 lines, CRF 20, AAC 192k",
                 crf=20, height=1080, audio_codec="aac", audio_bitrate="192k", **_X264),
        _builtin("h264-720p", "mp4", "H.264 MP4 720 lines, CRF 21, AAC 160k",
                 crf=21, height=720, audio_codec="aac", audio_bitrate="160k", **_X264),
        _builtin("h264-480p", "mp4", "H.264 MP4 480 lines, CRF 23, AAC 128k",
                 crf=23, height=480, audio_codec="aac", audio_bitrate="128k", **_X264),
        _builtin("h264-720p-2pass", "mp4", "H.264 MP4 720 lines, two passes at 4 Mb/s",
                 bitrate="4M", two_pass=True, height=720, audio_codec="aac",
                 audio_bitrate="160k", **_X264),
        _builtin("hevc", "mp4", "HEVC (H.265) MP4 at the source's size, CRF 26, AAC 192k",
                 video_codec="libx265", crf=26, encoder_preset="medium", pix_fmt="yuv420p",
                 video_options=("-tag:v", "hvc1", "-x265-params", "log-level=error"),
                 audio_codec="aac", audio_bitrate="192k"),
        _builtin("prores-422", "mov", "Apple ProRes 422 MOV, 16-bit PCM audio",
                 video_codec="prores_ks", pix_fmt="yuv422p10le",
                 video_options=("-profile:v", "2", "-vendor", "apl0"),
                 audio_codec="pcm_s16le"),
        _builtin("vp9", "webm", "VP9 WebM, CRF 32, Opus 128k",
                 video_codec="libvpx-vp9", crf=32, pix_fmt="yuv420p",
                 video_options=("-b:v", "0", "-row-mt", "1", "-deadline", "good",
                                "-cpu-used", "4"),
                 audio_codec="libopus", audio_bitrate="128k"),
        _builtin("av1", "webm", "AV1 WebM (libaom), CRF 34, Opus 128k",
                 video_codec="libaom-av1", crf=34, pix_fmt="yuv420p",
                 video_options=("-b:v", "0", "-cpu-used", "8", "-row-mt", "1"),
                 audio_codec="libopus", audio_bitrate="128k"),
        _builtin("aac", "m4a", "audio only: AAC 192k in M4A",
                 audio_codec="aac", audio_bitrate="192k"),
        _builtin("mp3", "mp3", "audio only: MP3, VBR quality 2, stereo",
                 audio_codec="libmp3lame", audio_quality="2", audio_channels=2),
        _builtin("png", "png", "PNG image sequence, one file per frame", video_codec="png"),
        _builtin("jpeg", "jpeg", "JPEG image sequence, one file per frame, quality 2",
                 video_codec="mjpeg", pix_fmt="yuvj420p", video_options=("-q:v", "2")),
        _builtin("remux", "mp4", "the same streams in MP4, without re-encoding",
                 video_codec="copy", audio_codec="copy"),
        _builtin("remux-mkv", "mkv", "the same streams in Matroska, without re-encoding",
                 video_codec="copy", audio_codec="copy"),
    ]
}  # fmt: skip


# ------------------------------------------------------------------ user presets

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
# Deinterlacing for progressive outputs: one frame out per frame in (its timestamps kept),
# the field order read off each frame, every frame treated.
DEINTERLACE_FILTER = "bwdif=mode=send_frame:parity=auto:deint=all"


def deinterlace_filter(parity: str = "auto") -> str:
    """The deinterlacer, told the field order (``tff``, ``bff``) where the frames' flags
    do not say it: pictures found interlaced by idet are flagged progressive."""
    return DEINTERLACE_FILTER.replace("parity=auto", f"parity={parity}")


def _parse(name: str, data: Mapping[str, Any], where: str, source: str) -> Preset:
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
    from qfarm.media import levels

    if preset.level is not None:
        if preset.video_codec not in ("libx264", "libx265"):
            raise InvalidRequest(f"{where}: level is for libx264 and libx265, not "
                                 f"{preset.video_codec}")  # fmt: skip
        if preset.video_codec == "libx264":
            try:
                levels.by_name(preset.level)
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


def load_file(path: str | Path) -> dict[str, Preset]:
    """The presets of one TOML file. Raises InvalidRequest naming the file and the key."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidRequest(f"preset file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"preset file {path} cannot be read: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidRequest(f"preset file {path} is not valid TOML: {exc}") from None
    table = data.get("preset")
    if not isinstance(table, dict) or set(data) - {"preset"}:
        raise InvalidRequest(f"preset file {path}: write each preset as [preset.NAME]")
    found: dict[str, Preset] = {}
    for name, body in table.items():
        if not isinstance(body, dict):
            raise InvalidRequest(f"preset file {path}: preset.{name} must be a table")
        found[name] = _parse(name, body, f"preset file {path}, preset {name!r}", str(path))
    return found


def user_preset_files(extra: Iterable[str | Path] = ()) -> list[Path]:
    """Preset files to read: the config dir's ``presets/*.toml``, ``QFARM_PRESETS``, then
    ``extra`` (later files win on equal names)."""
    from platformdirs import user_config_dir

    files = sorted((Path(user_config_dir("qfarm")) / "presets").glob("*.toml"))
    files += [Path(p) for p in os.environ.get(PRESETS_ENV, "").split(os.pathsep) if p]
    files += [Path(p) for p in extra]
    return files


def available(extra: Iterable[str | Path] = ()) -> dict[str, Preset]:
    """Every preset by name: built in, then users' (which may replace a built-in one)."""
    presets = dict(BUILTIN)
    for path in user_preset_files(extra):
        presets.update(load_file(path))
    return presets


def resolve(value: str | Mapping[str, Any], known: Mapping[str, Preset] | None = None) -> Preset:
    """A preset from a name or a full definition (a table in a batch file, or what a
    client resolved from its own files)."""
    if isinstance(value, Mapping):
        name = str(value.get("name") or "custom")
        return _parse(name, value, f"preset {name!r}", str(value.get("source") or "inline"))
    if not isinstance(value, str) or not value:
        raise InvalidRequest(f"preset must be a name or a table, not {value!r}")
    presets = BUILTIN if known is None else known
    if value not in presets:
        raise InvalidRequest(
            f"unknown preset {value!r}: known are {', '.join(sorted(presets))} "
            "(qfarm presets lists them)"
        )
    return presets[value]


def for_request(value: Any, extra: Iterable[str | Path] = ()) -> str | dict[str, Any]:
    """A preset as a client sends it: a built-in one by name, a user's (or an inline
    table) as its whole definition, so the controller and nodes never need the file."""
    if isinstance(value, str):
        preset = resolve(value, available(extra))
        return value if preset.source == "built in" else preset.to_dict()
    return resolve(value).to_dict()


# ------------------------------------------------------------------ ffmpeg arguments


def video_filters(preset: Preset, display_size: tuple[int, int]) -> list[str]:
    """Scale (keeping the aspect ratio, never up, to even sizes where the pixel format needs
    them) and frame rate, in that order."""
    width, height = display_size
    pix = preset.pix_fmt or ""
    even_w = any(t in pix for t in (*_EVEN_BOTH, *_EVEN_WIDTH))
    even_h = any(t in pix for t in _EVEN_BOTH)
    filters: list[str] = []
    want_w = min(preset.width, width) if preset.width else None
    want_h = min(preset.height, height) if preset.height else None
    if want_w or want_h:
        if want_w and want_h:
            filters.append(
                f"scale={want_w}:{want_h}:force_original_aspect_ratio=decrease"
                + (":force_divisible_by=2" if even_w or even_h else "")
            )
        elif want_h:
            filters.append(f"scale={-2 if even_w else -1}:{_even(want_h) if even_h else want_h}")
        elif want_w:
            filters.append(f"scale={_even(want_w) if even_w else want_w}:{-2 if even_h else -1}")
    elif (even_w and width % 2) or (even_h and height % 2):
        filters.append(
            f"scale={_even(width) if even_w else width}:{_even(height) if even_h else height}"
        )
    if preset.frame_rate:
        filters.append(f"fps={preset.frame_rate}")
    return filters


def _even(n: int) -> int:
    return max(2, n - n % 2)


def video_codec_args(preset: Preset, threads: int | None) -> list[str]:
    args = ["-c:v", str(preset.video_codec)]
    if preset.encoder_preset:
        args += ["-preset", preset.encoder_preset]
    if preset.crf is not None:
        args += ["-crf", str(preset.crf)]
    if preset.bitrate is not None:
        args += ["-b:v", preset.bitrate]
    if preset.pix_fmt:
        args += ["-pix_fmt", preset.pix_fmt]
    if preset.profile:
        args += ["-profile:v", preset.profile]
    if preset.level:
        args += ["-level:v", preset.level]
    if threads:
        args += ["-threads", str(threads)]
    return args + list(preset.video_options)


def output_size(preset: Preset, display_size: tuple[int, int]) -> tuple[int, int]:
    """The size :func:`video_filters` gives frames of ``display_size``, worked out as
    ffmpeg's scale filter does (its rounding of a computed side, and of
    ``force_divisible_by``), so the level an output needs is known before it is encoded."""
    width, height = display_size
    pix = preset.pix_fmt or ""
    step_w = 2 if any(t in pix for t in (*_EVEN_BOTH, *_EVEN_WIDTH)) else 1
    step_h = 2 if any(t in pix for t in _EVEN_BOTH) else 1
    want_w = min(preset.width, width) if preset.width else None
    want_h = min(preset.height, height) if preset.height else None
    if want_w and want_h:
        w = min(want_w, _rescale(want_h, width, height))
        h = min(want_h, _rescale(want_w, height, width))
        step = max(step_w, step_h)
        return max(step, w // step * step), max(step, h // step * step)
    if want_h:
        h = _even(want_h) if step_h == 2 else want_h
        return _rescale(h, width, height * step_w) * step_w, h
    if want_w:
        w = _even(want_w) if step_w == 2 else want_w
        return w, _rescale(w, height, width * step_h) * step_h
    w = _even(width) if step_w == 2 and width % 2 else width
    h = _even(height) if step_h == 2 and height % 2 else height
    return w, h


def _rescale(a: int, b: int, c: int) -> int:
    """ffmpeg's av_rescale: a * b / c rounded to the nearest."""
    return (a * b + c // 2) // c


def expected_level(preset: Preset, display_size: tuple[int, int], rate: Fraction) -> int | None:
    """The H.264 level_idc plain ffmpeg gives this preset's output, or None where it is not
    predicted (another codec, or encoder options that change what the level holds)."""
    from qfarm.media import levels

    if preset.video_codec != "libx264":
        return None
    if preset.level:
        return levels.by_name(preset.level).idc
    if any(option in levels.LEVEL_CHANGING_OPTIONS for option in preset.video_options):
        return None
    width, height = output_size(preset, display_size)
    if preset.frame_rate:
        rate = Fraction(preset.frame_rate)
    high = preset.profile not in ("baseline", "main")
    bitrate = levels.kbps(preset.bitrate) if preset.bitrate else None
    return levels.x264_level(
        width, height, rate, encoder_preset=preset.encoder_preset, bitrate_kbps=bitrate,
        high_profile=high,
    )  # fmt: skip


def audio_codec_args(preset: Preset) -> list[str]:
    args = ["-c:a", str(preset.audio_codec)]
    if preset.audio_bitrate:
        args += ["-b:a", preset.audio_bitrate]
    if preset.audio_quality:
        args += ["-q:a", preset.audio_quality]
    if preset.audio_channels:
        args += ["-ac", str(preset.audio_channels)]
    if preset.audio_sample_rate:
        args += ["-ar", str(preset.audio_sample_rate)]
    return args + list(preset.audio_options)


def presets_for_listing(extra: Iterable[str | Path] = ()) -> list[dict[str, Any]]:
    """Rows for ``qfarm presets``: each preset, and whether this machine's ffmpeg has its
    encoders."""
    from qfarm.media.tool import has_encoder

    rows = []
    for preset in available(extra).values():
        missing = [e for e in preset.encoders() if not has_encoder(e)]
        rows.append(
            {
                **preset.to_dict(),
                "kind": preset.kind,
                "extension": preset.extension,
                "available": not missing,
                "missing_encoders": missing,
            }
        )
    return rows
