"""Reading sources with PyAV, in :mod:`qfarm.media.probe`."""

from __future__ import annotations

import json
import re
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from qfarm.domain.errors import InvalidRequest
from qfarm.media.probe import probe


def test_video_facts_match_what_ffmpeg_was_told(av_mp4: Path) -> None:
    """Segment cuts and the output check rely on the exact frame list: 2 s at 25 fps is 50."""
    video = probe(str(av_mp4)).video
    assert video is not None
    assert (video.codec, video.width, video.height) == ("h264", 320, 240)
    assert video.pix_fmt == "yuv420p"
    assert video.rotation == 0
    assert video.frames == 50
    assert video.time_base == Fraction(1, 25000)
    assert video.frame_rate == 25
    assert video.constant_rate
    assert video.duration == pytest.approx(2.0)
    assert video.pts == tuple(range(video.pts[0], video.pts[0] + 50 * 1000, 1000))


def test_frame_seconds_count_from_the_first_frame(av_mp4: Path) -> None:
    video = probe(str(av_mp4)).video
    assert video is not None
    assert video.seconds(0) == 0.0
    assert video.seconds(25) == pytest.approx(1.0)
    assert video.seconds(video.frames) == pytest.approx(video.duration)


def test_audio_facts(av_mp4: Path) -> None:
    info = probe(str(av_mp4))
    audio = info.audio
    assert audio is not None
    assert audio.codec == "aac"
    assert (audio.channels, audio.layout, audio.sample_rate) == (2, "stereo", 48000)
    # AAC priming adds about a packet (1024 samples) ahead of the first sound.
    assert audio.duration == pytest.approx(2.0, abs=0.05)
    assert info.duration == pytest.approx(2.0, abs=0.05)


def test_video_only_file_has_no_audio(video_mp4: Path) -> None:
    info = probe(str(video_mp4))
    assert info.video is not None and info.video.frames == 50
    assert info.audio is None


def test_audio_only_file_has_no_video(audio_m4a: Path) -> None:
    info = probe(str(audio_m4a))
    assert info.video is None
    assert info.audio is not None
    assert info.audio.channels == 1
    assert info.duration == pytest.approx(2.0, abs=0.05)


def test_variable_frame_rate_is_seen(vfr_mp4: Path) -> None:
    """Frames kept at uneven gaps must not be taken for a constant rate: planning's exact
    frame checks depend on it."""
    video = probe(str(vfr_mp4)).video
    assert video is not None
    assert video.frames == 20  # 2 of every 5 of 50
    assert not video.constant_rate


def test_rotation_swaps_the_display_size(rotated_mp4: Path) -> None:
    """A phone video stored 320x240 but shown turned is scaled by its displayed size."""
    video = probe(str(rotated_mp4)).video
    assert video is not None
    assert video.rotation == 90
    assert (video.width, video.height) == (320, 240)
    assert video.display_size == (240, 320)


def test_missing_path(tmp_path: Path) -> None:
    path = tmp_path / "absent.mp4"
    with pytest.raises(InvalidRequest, match=re.escape(f"{path} does not exist")):
        probe(str(path))


def test_directory(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match=re.escape(f"{tmp_path} is not a file")):
        probe(str(tmp_path))


@pytest.mark.parametrize("content", [b"just some words\n", b""], ids=["text", "empty"])
def test_file_that_is_not_media(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "notes.mp4"
    path.write_bytes(content)
    with pytest.raises(
        InvalidRequest, match="^" + re.escape(f"{path} is not a media file qfarm can read")
    ):
        probe(str(path))


def test_file_with_neither_video_nor_audio(tmp_path: Path) -> None:
    """A subtitle file opens as media, but there is nothing to transcode in it."""
    path = tmp_path / "words.srt"
    path.write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    with pytest.raises(InvalidRequest, match=re.escape(f"{path} has no video or audio stream")):
        probe(str(path))


def test_summary_is_json(av_mp4: Path, rotated_mp4: Path) -> None:
    """The summary travels in a job's spec, so it must survive JSON unchanged."""
    for path in (av_mp4, rotated_mp4):
        summary = probe(str(path)).summary()
        assert json.loads(json.dumps(summary)) == summary
    summary = probe(str(rotated_mp4)).summary()
    assert summary["video"]["frames"] == 50
    assert summary["video"]["display_size"] == [240, 320]
    assert summary["video"]["frame_rate"] == "25"
    assert "audio" not in summary


def test_keyframes_are_found_by_index(tmp_path: Path) -> None:
    """A source made with a keyframe every 10 frames reports them at 0, 10, 20, ..."""
    from qfarm.media.tool import ffmpeg

    path = tmp_path / "gop10.mp4"
    subprocess.run(
        [ffmpeg().path, "-v", "error", "-y", "-f", "lavfi", "-i",
         "testsrc2=size=160x120:rate=25:duration=2", "-c:v", "libx264", "-g", "10",
         "-keyint_min", "10", "-sc_threshold", "0", str(path)],
        check=True,
    )  # fmt: skip
    video = probe(str(path)).video
    assert video is not None
    assert video.keyframes == tuple(range(0, 50, 10))
    assert probe(str(path)).summary()["video"]["keyframes"] == 5
