"""The H.264 level an output needs (:mod:`qfarm.media.levels`), against what x264 writes."""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from qfarm.media.levels import by_name, kbps, x264_level
from qfarm.media.presets import BUILTIN, expected_level, output_size, video_filters
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
