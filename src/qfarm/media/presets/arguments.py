"""The ffmpeg arguments a preset turns into, built on the node from the preset in the job's
spec: scaling and frame rate filters, the deinterlacer, video and audio codec options; and
the size and H.264 or HEVC level an output will have, worked out before it is encoded.
"""

from __future__ import annotations

from fractions import Fraction

from qfarm.media import levels
from qfarm.media.presets.definition import Preset

# Pixel formats with subsampled chroma need even sizes (width; and height for 4:2:0).
_EVEN_BOTH = ("420",)
_EVEN_WIDTH = ("422",)


# Deinterlacing for progressive outputs: one frame out per frame in (its timestamps kept),
# the field order read off each frame, every frame treated.
DEINTERLACE_FILTER = "bwdif=mode=send_frame:parity=auto:deint=all"


def deinterlace_filter(parity: str = "auto") -> str:
    """The deinterlacer, told the field order (``tff``, ``bff``) where the frames' flags
    do not say it: pictures found interlaced by idet are flagged progressive."""
    return DEINTERLACE_FILTER.replace("parity=auto", f"parity={parity}")


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
    options = list(preset.video_options)
    if preset.level and preset.video_codec == "libx265":
        options = _with_x265_level(options, levels.hevc_by_name(preset.level).name)
    elif preset.level:
        args += ["-level:v", preset.level]
    if threads:
        args += ["-threads", str(threads)]
    return args + options


def _with_x265_level(options: list[str], name: str) -> list[str]:
    """libx265 takes no ``-level``: ffmpeg drops it without a word (measured: Level 2 written
    where 4.1 was asked). The level goes into ``-x265-params``, the last of which ffmpeg
    keeps, so it joins the preset's own."""
    for at in range(len(options) - 2, -1, -1):
        if options[at] == "-x265-params":
            return [*options[: at + 1], f"{options[at + 1]}:level-idc={name}",
                    *options[at + 2 :]]  # fmt: skip
    return [*options, "-x265-params", f"level-idc={name}"]


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
    """The H.264 level_idc or HEVC general_level_idc plain ffmpeg gives this preset's
    output, or None where it is not predicted (another codec, or encoder options that change
    what the level holds)."""
    if preset.video_codec == "libx265":
        return _expected_hevc_level(preset, display_size, rate)
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


def _expected_hevc_level(
    preset: Preset, display_size: tuple[int, int], rate: Fraction
) -> int | None:
    if preset.level:
        return levels.hevc_by_name(preset.level).idc
    if set(levels.x265_params(preset.video_options)) & levels.X265_LEVEL_PARAMS:
        return None
    if any(option in levels.LEVEL_CHANGING_OPTIONS for option in preset.video_options):
        return None
    width, height = output_size(preset, display_size)
    if preset.frame_rate:
        rate = Fraction(preset.frame_rate)
    bitrate = levels.kbps(preset.bitrate) if preset.bitrate else None
    return levels.x265_level(
        width, height, rate, encoder_preset=preset.encoder_preset, bitrate_kbps=bitrate
    )


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
