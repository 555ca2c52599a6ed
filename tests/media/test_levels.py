"""The H.264 and HEVC level an output needs (:mod:`qfarm.media.levels`), against what x264
and x265 write."""

from __future__ import annotations

import itertools
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from qfarm.media.levels import HEVC_LEVELS, by_name, hevc_by_name, kbps, x264_level, x265_level
from qfarm.media.presets import (
    BUILTIN,
    expected_level,
    output_size,
    video_codec_args,
    video_filters,
)
from qfarm.media.probe import probe


@pytest.mark.parametrize(
    ("size", "rate", "preset", "level"),
    [
        ((320, 180), "25", "h264", 12),
        ((1280, 720), "25", "h264", 31),
        ((1280, 720), "50", "h264", 32),
        ((320, 240), "30000/1001", "h264", 13),
        ((1920, 1080), "25", "h264-720p", 31),
        ((1920, 1080), "25", "h264-720p-2pass", 31),
    ],
)
def test_predicted_level_is_the_one_x264_writes(
    tmp_path: Path, ffmpeg_exe: str, size: tuple[int, int], rate: str, preset: str, level: int
) -> None:
    """A fifth of a second at each size and rate, encoded as the preset asks: x264's own
    choice of level is the predicted one."""
    chosen = BUILTIN[preset]
    out = tmp_path / "level.mp4"
    filters = video_filters(chosen, size)
    subprocess.run(
        [ffmpeg_exe, "-v", "error", "-y", "-f", "lavfi", "-i",
         f"color=size={size[0]}x{size[1]}:rate={rate}:duration=0.2",
         *(["-vf", ",".join(filters)] if filters else []), "-c:v", "libx264",
         "-preset", str(chosen.encoder_preset), "-pix_fmt", "yuv420p",
         *(["-b:v", chosen.bitrate] if chosen.bitrate else []), str(out)],
        check=True,
    )  # fmt: skip
    video = probe(str(out)).video
    assert video is not None
    assert (video.width, video.height) == output_size(chosen, size)
    assert video.level == level == expected_level(chosen, size, Fraction(rate))


def test_level_names() -> None:
    assert by_name("3.1").idc == 31
    assert by_name("4").idc == 40
    assert by_name("41").idc == 41
    assert by_name("1b").idc == 9
    with pytest.raises(ValueError, match=r"not an H\.264 level"):
        by_name("7")


def test_a_faster_preset_needs_a_smaller_buffer() -> None:
    """ultrafast keeps one reference frame, veryslow sixteen: 480x272 then needs Level 3.1
    (as x264 itself chooses, measured with this ffmpeg)."""
    assert x264_level(480, 272, Fraction(25), encoder_preset="ultrafast") == 21
    assert x264_level(480, 272, Fraction(25), encoder_preset="veryslow") == 31
    assert x264_level(480, 272, Fraction(25), encoder_preset="unheard-of") is None


def test_bitrates() -> None:
    assert kbps("4M") == 4000
    assert kbps("800k") == 800
    assert kbps("2500000") == 2500
    assert kbps("fast") is None


# ------------------------------------------------------------------------------ HEVC


@pytest.mark.parametrize(
    ("size", "rate", "encoder_preset", "bitrate", "level"),
    [
        ((176, 144), "15", "placebo", None, 30),  # Level 1
        ((320, 180), "25", "medium", None, 60),  # 2: past Level 1's picture size
        ((640, 360), "50", "medium", None, 90),  # 3: its size fits 2.1, its rate does not
        ((1280, 720), "25", "ultrafast", None, 93),
        ((1280, 720), "50", "ultrafast", None, 120),
        ((1920, 1080), "30000/1001", "ultrafast", None, 120),
        ((1920, 1080), "60", "ultrafast", None, 123),
        ((2048, 1080), "24", "ultrafast", None, 120),
        ((1280, 720), "25", "ultrafast", "12M", 120),  # past 3.1's 10 Mb/s: 4, Main tier
        ((1280, 720), "25", "ultrafast", "20M", 120),  # 4's High tier (x265 allows it)
        ((1280, 720), "25", "ultrafast", "40M", 123),  # past 4's High tier: 4.1
    ],
)
def test_predicted_hevc_level_is_the_one_x265_writes(
    tmp_path: Path,
    ffmpeg_exe: str,
    size: tuple[int, int],
    rate: str,
    encoder_preset: str,
    bitrate: str | None,
    level: int,
) -> None:
    """Three frames at each size, rate and bit rate, encoded by libx265 as plain ffmpeg
    would: x265's own general_level_idc is the one the HEVC table predicts."""
    import dataclasses

    chosen = dataclasses.replace(
        BUILTIN["hevc"], encoder_preset=encoder_preset, bitrate=bitrate,
        crf=None if bitrate else 26,
    )  # fmt: skip
    out = tmp_path / "level.mp4"
    rate_control = ["-b:v", bitrate] if bitrate else ["-crf", "26"]
    subprocess.run(
        [ffmpeg_exe, "-v", "error", "-y", "-f", "lavfi", "-i",
         f"color=size={size[0]}x{size[1]}:rate={rate}",
         "-frames:v", "3", "-c:v", "libx265", "-preset", encoder_preset, *rate_control,
         "-pix_fmt", "yuv420p", "-x265-params", "log-level=error", str(out)],
        check=True,
    )  # fmt: skip
    video = probe(str(out)).video
    assert video is not None and video.frames == 3
    predicted = x265_level(*size, Fraction(rate), encoder_preset=encoder_preset,
                           bitrate_kbps=kbps(bitrate) if bitrate else None)  # fmt: skip
    assert video.level == level == predicted
    assert expected_level(chosen, size, Fraction(rate)) == level


def test_a_presets_hevc_level_reaches_x265(tmp_path: Path, ffmpeg_exe: str) -> None:
    """libx265 ignores ``-level:v`` (Level 2 was written where 4.1 was asked): the preset's
    level goes into ``-x265-params``, beside the preset's own parameters."""
    import dataclasses

    chosen = dataclasses.replace(BUILTIN["hevc"], level="4.1", encoder_preset="ultrafast")
    args = video_codec_args(chosen, threads=None)
    assert "-level:v" not in args
    assert args[args.index("-x265-params") + 1] == "log-level=error:level-idc=4.1"
    assert args.count("-x265-params") == 1
    out = tmp_path / "level.mp4"
    subprocess.run(
        [ffmpeg_exe, "-v", "error", "-y", "-f", "lavfi", "-i", "color=size=320x180:rate=25",
         "-frames:v", "3", *args, str(out)],
        check=True,
    )  # fmt: skip
    video = probe(str(out)).video
    assert video is not None and video.level == 123
    assert expected_level(chosen, (320, 180), Fraction(25)) == 123


def test_hevc_level_table_and_names() -> None:
    assert [level.name for level in HEVC_LEVELS] == [
        "1", "2", "2.1", "3", "3.1", "4", "4.1", "5", "5.1", "5.2", "6", "6.1", "6.2",
    ]  # fmt: skip
    assert all(level.idc == round(float(level.name) * 30) for level in HEVC_LEVELS)
    # Each level holds at least what the one below it does.
    for lower, higher in itertools.pairwise(HEVC_LEVELS):
        assert higher.luma_samples >= lower.luma_samples
        assert higher.luma_rate >= lower.luma_rate
        assert higher.bitrate_main >= lower.bitrate_main
    assert hevc_by_name("3.1").idc == 93
    assert hevc_by_name("41").idc == 123
    assert hevc_by_name("5").idc == 150
    with pytest.raises(ValueError, match=r"not an HEVC level \(1, 2, 2.1"):
        hevc_by_name("3.2")
    with pytest.raises(ValueError, match="not an HEVC level like"):
        hevc_by_name("high")
    # Beyond 6.2's picture size x265 writes Level 8.5.
    assert x265_level(16384, 16384, Fraction(1), encoder_preset="medium") == 255
    assert x265_level(320, 180, Fraction(25), encoder_preset="unheard-of") is None


def test_x265_parameters_that_change_the_level_leave_it_unpredicted() -> None:
    import dataclasses

    hevc = BUILTIN["hevc"]
    assert expected_level(hevc, (1280, 720), Fraction(25)) == 93
    for params in ("log-level=error:ref=6", "no-high-tier", "vbv-maxrate=20000:vbv-bufsize=1"):
        changed = dataclasses.replace(hevc, video_options=("-x265-params", params))
        assert expected_level(changed, (1280, 720), Fraction(25)) is None, params
    kept = dataclasses.replace(hevc, video_options=("-x265-params", "log-level=error:aq-mode=3"))
    assert expected_level(kept, (1280, 720), Fraction(25)) == 93
