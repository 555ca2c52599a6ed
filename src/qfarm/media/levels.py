"""The H.264 and HEVC level an output needs, as x264 and x265 pick it when left to choose.

A split transcode must give the same level as plain ffmpeg on the whole file: players check
the level before playing, and a chunk encoded without its frame rate used to be labelled
Level 6.2. The assembly checks the output's level against :func:`x264_level`, which
follows x264's own choice: the lowest level of the standard's Table A-1 whose frame size,
decoded picture buffer, macroblock rate and (for a bitrate target) bit rate the stream fits;
and against :func:`x265_level`, x265's choice from H.265's Tables A.8 and A.9 (picture
size, luma sample rate, bit rate and tier).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Level:
    idc: int  # level_idc: 31 is Level 3.1, 9 is Level 1b
    mbps: int  # macroblocks a second
    frame_size: int  # macroblocks a frame
    dpb: int  # macroblocks of the decoded picture buffer
    bitrate: int  # kbit/s of the Main profile (High allows 1.25 times as much)

    @property
    def name(self) -> str:
        return "1b" if self.idc == 9 else f"{self.idc // 10}.{self.idc % 10}"


# H.264 Table A-1, in the order x264 tries the levels.
LEVELS: Sequence[Level] = (
    Level(10, 1485, 99, 396, 64),
    Level(9, 1485, 99, 396, 128),
    Level(11, 3000, 396, 900, 192),
    Level(12, 6000, 396, 2376, 384),
    Level(13, 11880, 396, 2376, 768),
    Level(20, 11880, 396, 2376, 2000),
    Level(21, 19800, 792, 4752, 4000),
    Level(22, 20250, 1620, 8100, 4000),
    Level(30, 40500, 1620, 8100, 10000),
    Level(31, 108000, 3600, 18000, 14000),
    Level(32, 216000, 5120, 20480, 20000),
    Level(40, 245760, 8192, 32768, 20000),
    Level(41, 245760, 8192, 32768, 50000),
    Level(42, 522240, 8704, 34816, 50000),
    Level(50, 589824, 22080, 110400, 135000),
    Level(51, 983040, 36864, 184320, 240000),
    Level(52, 2073600, 36864, 184320, 240000),
    Level(60, 4177920, 139264, 696320, 240000),
    Level(61, 8355840, 139264, 696320, 480000),
    Level(62, 16711680, 139264, 696320, 800000),
)

# Frames x264 keeps for reference at each of its presets (--ref, and the b-pyramid's
# four where B-frames are on): the decoded picture buffer the level must hold.
X264_DPB_FRAMES = {
    "ultrafast": 1, "superfast": 4, "veryfast": 4, "faster": 4, "fast": 4, "medium": 4,
    "slow": 5, "slower": 8, "veryslow": 16, "placebo": 16,
}  # fmt: skip

# Encoder options that change what the level must hold: with any of them the level is not
# predicted (and not checked) unless the preset names one.
LEVEL_CHANGING_OPTIONS = frozenset(
    {"-refs", "-bf", "-x264-params", "-x264opts", "-level", "-level:v", "-tune", "-tune:v",
     "-maxrate", "-bufsize", "-profile", "-profile:v", "-flags"}
)  # fmt: skip


def by_name(text: str) -> Level:
    """A level from its name: "3.1", "31", "4", "1b". Raises ValueError."""
    cleaned = text.strip().lower()
    if cleaned == "1b":
        return LEVELS[1]
    try:
        number = float(cleaned)
    except ValueError:
        raise ValueError(f"{text!r} is not an H.264 level like 3.1 or 4") from None
    idc = round(number * 10) if "." in cleaned or number < 10 else round(number)
    for level in LEVELS:
        if level.idc == idc:
            return level
    raise ValueError(f"{text!r} is not an H.264 level (1 to 6.2)")


def x264_level(
    width: int,
    height: int,
    rate: Fraction,
    *,
    encoder_preset: str | None,
    bitrate_kbps: int | None = None,
    high_profile: bool = True,
) -> int | None:
    """The level_idc x264 writes for frames of ``width`` x ``height`` at ``rate``, or None
    where it cannot be told (an encoder preset whose references are not known)."""
    dpb_frames = X264_DPB_FRAMES.get(encoder_preset or "medium")
    if dpb_frames is None or rate <= 0:
        return None
    mb_width, mb_height = math.ceil(width / 16), math.ceil(height / 16)
    mbs = mb_width * mb_height
    mb_rate = mbs * rate.numerator // rate.denominator
    # x264 checks a bitrate target's VBV at twice the average rate.
    peak = 2 * bitrate_kbps if bitrate_kbps else 0
    factor = 1.25 if high_profile else 1.0
    for level in LEVELS:
        fits = (
            mbs <= level.frame_size
            and max(mb_width, mb_height) ** 2 <= 8 * level.frame_size
            and mbs * dpb_frames <= level.dpb
            and mb_rate <= level.mbps
            and peak <= level.bitrate * factor
        )
        if fits:
            return level.idc
    return LEVELS[-1].idc


def kbps(bitrate: str) -> int | None:
    """ "4M", "800k", "2500000" in kbit/s; None when it is not such a number."""
    text = bitrate.strip().lower()
    scale = {"k": 1, "m": 1000, "g": 1_000_000}.get(text[-1:], 0)
    try:
        return round(float(text[:-1]) * scale) if scale else round(float(text) / 1000)
    except ValueError:
        return None


@dataclass(frozen=True)
class HevcLevel:
    idc: int  # general_level_idc: 30 times the level, 93 is Level 3.1
    luma_samples: int  # MaxLumaPs: luma samples a picture
    luma_rate: int  # MaxLumaSr: luma samples a second
    bitrate_main: int  # MaxBR of the Main tier, kbit/s
    bitrate_high: int | None  # of the High tier; None below Level 4, which has none

    @property
    def name(self) -> str:
        whole, tenths = divmod(self.idc // 3, 10)
        return f"{whole}.{tenths}" if tenths else str(whole)


# H.265 Tables A.8 and A.9, as x265 (3.5, the one ffmpeg 7.0 links) holds them, in the
# order it tries them; 8.5 is what it writes for a stream beyond every level.
HEVC_LEVELS: Sequence[HevcLevel] = (
    HevcLevel(30, 36864, 552960, 128, None),
    HevcLevel(60, 122880, 3686400, 1500, None),
    HevcLevel(63, 245760, 7372800, 3000, None),
    HevcLevel(90, 552960, 16588800, 6000, None),
    HevcLevel(93, 983040, 33177600, 10000, None),
    HevcLevel(120, 2228224, 66846720, 12000, 30000),
    HevcLevel(123, 2228224, 133693440, 20000, 50000),
    HevcLevel(150, 8912896, 267386880, 25000, 100000),
    HevcLevel(153, 8912896, 534773760, 40000, 160000),
    HevcLevel(156, 8912896, 1069547520, 60000, 240000),
    HevcLevel(180, 35651584, 1069547520, 60000, 240000),
    HevcLevel(183, 35651584, 2139095040, 120000, 480000),
    HevcLevel(186, 35651584, 4278190080, 240000, 800000),
)
HEVC_BEYOND = 255  # Level 8.5
X265_PRESETS = frozenset(
    {"ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
     "veryslow", "placebo"}
)  # fmt: skip
# x265 parameters (-x265-params key=value:...) that change what the level must hold or set
# it: with any of them the level is not predicted unless the preset names one. (The
# references and B-frames of x265's presets fit the smallest decoded picture buffer, six
# pictures; ``ref``, ``bframes`` and ``b-pyramid`` can outgrow it.)
X265_LEVEL_PARAMS = frozenset(
    {"level-idc", "level", "high-tier", "ref", "bframes", "b-pyramid", "vbv-maxrate",
     "vbv-bufsize", "bitrate", "uhd-bd", "lossless", "ctu", "fps", "input-res",
     "allow-non-conformance", "temporal-layers", "interlace", "field", "preset", "tune"}
)  # fmt: skip


def hevc_by_name(text: str) -> HevcLevel:
    """An HEVC level from its name: "3.1", "31", "4". Raises ValueError."""
    cleaned = text.strip().lower()
    try:
        number = float(cleaned)
    except ValueError:
        raise ValueError(f"{text!r} is not an HEVC level like 3.1 or 4") from None
    tenths = round(number * 10) if "." in cleaned or number < 10 else round(number)
    for level in HEVC_LEVELS:
        if level.idc == tenths * 3:
            return level
    raise ValueError(f"{text!r} is not an HEVC level (1, 2, 2.1, 3, 3.1, 4, 4.1, 5 to 6.2)")


def x265_level(
    width: int,
    height: int,
    rate: Fraction,
    *,
    encoder_preset: str | None,
    bitrate_kbps: int | None = None,
) -> int | None:
    """The general_level_idc x265 writes for pictures of ``width`` x ``height`` at
    ``rate`` (its ``determineLevel``), or None where it cannot be told. A bit rate past a
    level's Main tier and within its High tier gives that level (x265 allows the High tier
    by default); a constant-quality encode has no bit rate to fit."""
    if (encoder_preset or "medium") not in X265_PRESETS or rate <= 0:
        return None
    samples = width * height
    per_second = samples * rate.numerator // rate.denominator
    bitrate = bitrate_kbps or 0
    for level in HEVC_LEVELS:
        side = math.sqrt(level.luma_samples * 8)
        fits = (
            samples <= level.luma_samples
            and per_second <= level.luma_rate
            and bitrate <= (level.bitrate_high or level.bitrate_main)
            and width <= side
            and height <= side
        )
        if fits:
            return level.idc
    return HEVC_BEYOND


def x265_params(options: Sequence[str]) -> dict[str, str]:
    """The ``-x265-params`` of encoder options, by key (``no-`` dropped): ffmpeg takes the
    last one given."""
    params: dict[str, str] = {}
    for at, option in enumerate(options[:-1]):
        if option == "-x265-params":
            params = {}
            for item in options[at + 1].split(":"):
                key, _, value = item.partition("=")
                key = key.strip().lower()
                params[key.removeprefix("no-")] = value
    return params
