"""Checking an assembled output against its source, in :mod:`qfarm.media.verify`."""

from __future__ import annotations

import dataclasses
import itertools
import subprocess
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qfarm.media.probe import AudioFacts, MediaInfo, VideoFacts, probe
from qfarm.media.verify import (
    SEAM_NUDGE_SECONDS,
    SEAM_WINDOW_SECONDS,
    compare,
    decode_windows,
    verify,
)

TICKS = 512  # one frame at 25 fps in 1/12800


def video(frames: int = 50, extra_ticks: int = 0) -> VideoFacts:
    """``frames`` frames at 25 fps; ``extra_ticks`` lengthens the last one."""
    return VideoFacts(
        codec="h264",
        width=320,
        height=240,
        rotation=0,
        pix_fmt="yuv420p",
        time_base=Fraction(1, 12800),
        frame_rate=Fraction(25),
        pts=tuple(i * TICKS for i in range(frames)),
        end=frames * TICKS + extra_ticks,
    )


def audio(duration: float = 2.0) -> AudioFacts:
    return AudioFacts(
        codec="aac", channels=2, layout="stereo", sample_rate=48000, start_seconds=0.0,
        duration=duration,
    )  # fmt: skip


def info(v: VideoFacts | None = None, a: AudioFacts | None = None) -> MediaInfo:
    return MediaInfo(path="out.mp4", container="mp4", duration=2.0, start=0.0, video=v, audio=a)


EXPECTED: dict[str, Any] = {
    "frames": 50,
    "exact_frames": True,
    "duration": 2.0,
    "frame_duration": 0.04,
    "audio_duration": 2.0,
}


# --- compare ---------------------------------------------------------------------------------


def test_matching_facts_have_no_problems() -> None:
    assert compare(info(video(), audio()), EXPECTED) == []


@pytest.mark.parametrize("frames", [49, 51])
def test_one_frame_more_or_less_is_a_problem(frames: int) -> None:
    """A seam that duplicates or drops one frame is the error this check exists for."""
    assert compare(info(video(frames), audio()), EXPECTED) == [
        f"the output has {frames} video frames, the source 50"
    ]


def test_frame_slack_when_frames_are_not_exact() -> None:
    expected = {"frames": 50, "exact_frames": False}
    assert compare(info(video(51)), expected) == []
    assert compare(info(video(52)), expected) == ["the output has 52 video frames, the source 50"]
    assert compare(info(video(52)), {**expected, "frame_slack": 2}) == []


def test_duration_within_one_frame_is_fine() -> None:
    assert compare(info(video(extra_ticks=TICKS), audio()), EXPECTED) == []


def test_duration_off_by_more_than_a_frame() -> None:
    late = video(extra_ticks=1280)  # 0.1 s
    assert compare(info(late, audio()), EXPECTED) == [
        "the output's video lasts 2.100 s, the source's 2.000 s"
    ]


def test_duration_tolerance_follows_the_frame_duration() -> None:
    """At 10 fps a frame lasts 0.1 s, so 0.1 s more is within bounds; at the default 25 fps
    it is not."""
    late = info(video(extra_ticks=1280), audio())
    assert compare(late, {**EXPECTED, "frame_duration": 0.1}) == []
    assert compare(late, {k: v for k, v in EXPECTED.items() if k != "frame_duration"}) != []


def test_no_audio_stream() -> None:
    assert compare(info(video()), EXPECTED) == ["the output has no audio stream"]


def test_audio_too_short() -> None:
    assert compare(info(video(), audio(1.5)), EXPECTED) == [
        "the output's audio lasts 1.500 s, the source's 2.000 s"
    ]


def test_audio_within_two_packets_is_fine() -> None:
    """AAC priming and padding move the audio's end by up to a packet or two."""
    assert compare(info(video(), audio(2.06)), EXPECTED) == []


def test_no_video_stream() -> None:
    assert compare(info(None, audio()), EXPECTED) == ["the output has no video stream"]


def test_audio_only_output_is_not_asked_for_video() -> None:
    assert compare(info(None, audio()), {"audio_duration": 2.0}) == []


# --- decode_windows --------------------------------------------------------------------------


def test_full_decode_is_one_window() -> None:
    assert decode_windows(100.0, [30.0, 60.0], full=True) == [(0.0, 101.0)]


def test_short_output_is_one_window() -> None:
    assert decode_windows(1.0, [0.5], full=False) == [(0.0, 2.0)]


def test_windows_start_at_the_beginning_and_just_after_each_seam() -> None:
    """A window starting at a seam decodes from the keyframe that starts its chunk."""
    assert decode_windows(10.0, [5.0], full=False) == [
        (0.0, SEAM_WINDOW_SECONDS),
        (5.0 + SEAM_NUDGE_SECONDS, SEAM_WINDOW_SECONDS),
    ]


def test_overlapping_windows_merge() -> None:
    """Seams closer than a window, and one near the start, are decoded in one go each."""
    windows = decode_windows(20.0, [9.8, 0.3, 10.0], full=False)
    assert [round(start, 3) for start, _ in windows] == [0.0, 9.801]
    assert windows[0][1] == pytest.approx(0.801, abs=1e-9)
    assert windows[1][1] == pytest.approx(0.7, abs=1e-9)


@settings(max_examples=300, deadline=None)
@given(
    duration=st.floats(min_value=1.01, max_value=10_000),
    fractions=st.lists(st.floats(min_value=0, max_value=1), max_size=20),
)
def test_windows_are_disjoint_and_cover_the_start_and_every_seam(
    duration: float, fractions: list[float]
) -> None:
    seams = [f * duration for f in fractions]
    windows = decode_windows(duration, seams, full=False)
    ends = [(start, start + length) for start, length in windows]
    assert ends[0][0] == 0.0
    assert all(a_end < b_start for (_, a_end), (b_start, _) in itertools.pairwise(ends))
    eps = 1e-6
    for point in [0.0, *(s + SEAM_NUDGE_SECONDS for s in seams if 0 < s < duration)]:
        hi = point + SEAM_WINDOW_SECONDS
        assert any(s <= point + eps and hi - eps <= e for s, e in ends), (point, windows)


# --- verify, on real files -------------------------------------------------------------------


class Decoder:
    """A decode runner like a node's: ffmpeg with its stderr in the log; it keeps each argv."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, argv: list[str], log: Path) -> int:
        self.calls.append(argv)
        with log.open("wb") as err:
            return subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=err).returncode


def expected_of(path: Path) -> dict[str, Any]:
    """What planning records about a source, here the output's own good twin."""
    facts = probe(str(path))
    assert facts.video is not None and facts.audio is not None
    return {
        "frames": facts.video.frames,
        "exact_frames": True,
        "duration": facts.video.duration,
        "frame_duration": float(1 / facts.video.frame_rate),
        "audio_duration": facts.audio.duration,
    }


def test_good_file_verifies(av_mp4: Path, ffmpeg_exe: str, tmp_path: Path) -> None:
    decode = Decoder()
    log = tmp_path / "decode.log"
    problems = verify(
        str(av_mp4), expected_of(av_mp4), seams=[1.0], full=False, decode=decode,
        ffmpeg=ffmpeg_exe, error_log=log,
    )  # fmt: skip
    assert problems == []
    # The first half second, and half a second from the seam on.
    assert [call[call.index("-ss") + 1] for call in decode.calls] == ["0.000000", "1.001000"]
    assert decode.calls[0][0] == ffmpeg_exe and str(av_mp4) in decode.calls[0]
    assert not log.exists()


def test_file_that_does_not_decode(
    av_mp4: Path, corrupt_mp4: Path, ffmpeg_exe: str, tmp_path: Path
) -> None:
    """Timestamps intact, pictures broken mid-file: only a full decode catches it, by
    ffmpeg's log (the default decodes near the seams, where joining could break a file)."""
    problems = verify(
        str(corrupt_mp4), expected_of(av_mp4), seams=[], full=True, decode=Decoder(),
        ffmpeg=ffmpeg_exe, error_log=tmp_path / "decode.log",
    )  # fmt: skip
    assert len(problems) == 1
    assert problems[0].startswith("the output does not decode cleanly near 0.00 s: [h264")


def test_decode_exit_code_without_log(av_mp4: Path, tmp_path: Path) -> None:
    """A decoder killed before it wrote anything still fails the check."""

    def killed(argv: list[str], log: Path) -> int:
        return -9

    problems = verify(
        str(av_mp4), expected_of(av_mp4), seams=[], full=True, decode=killed,
        ffmpeg="ffmpeg", error_log=tmp_path / "decode.log",
    )  # fmt: skip
    assert problems == ["the output does not decode cleanly near 0.00 s: exit code -9"]


def test_truncated_file_has_too_few_frames(
    whole_ts: Path, truncated_ts: Path, tmp_path: Path
) -> None:
    """Half a file probes fine but falls short; nothing is decoded once facts disagree."""
    expected = expected_of(whole_ts)
    decode = Decoder()
    problems = verify(
        str(truncated_ts), expected, seams=[], full=False, decode=decode, ffmpeg="ffmpeg",
        error_log=tmp_path / "decode.log",
    )  # fmt: skip
    assert expected["frames"] == 75
    assert problems
    assert problems[0].startswith("the output has ")
    assert problems[0].endswith(" video frames, the source 75")
    assert decode.calls == []


# --- samples, offset and level -----------------------------------------------------------


def _track(samples: int, *, priming: int = 1024, start: float = 0.0) -> AudioFacts:
    return AudioFacts(
        codec="aac", channels=2, layout="stereo", sample_rate=48000, start_seconds=start,
        duration=samples / 48000, samples=samples, priming=priming,
    )  # fmt: skip


def _tracks_expected(samples: int = 96000, **extra: Any) -> dict[str, Any]:
    track = {"channels": 2, "layout": "stereo", "samples": samples, "sample_rate": 48000,
             "source_padding": 0, "delay": 1024, **extra}  # fmt: skip
    return {"audio_tracks": [track]}


def test_one_aac_frame_short_is_a_problem() -> None:
    """Issue 15: every split output was 1024 samples short, within a frame of duration."""
    found = info(video(), _track(96000 - 1024))
    assert compare(found, _tracks_expected()) == [
        "audio track 1 has 94976 samples, 1024 fewer than the source's 96000"
    ]


def test_the_encoders_padding_of_its_last_frame_is_no_problem() -> None:
    assert compare(info(video(), _track(96000 + 1000)), _tracks_expected()) == []
    assert compare(info(video(), _track(96000 + 1025)), _tracks_expected()) == [
        "audio track 1 has 97025 samples, 1025 more than the source's 96000"
    ]


def test_priming_counted_twice_is_a_problem() -> None:
    found = info(video(), _track(96000, priming=2048))
    assert compare(found, _tracks_expected()) == [
        "audio track 1 has 2048 samples of priming, its encoder writes 1024"
    ]


def test_a_missing_track_or_a_changed_layout_is_a_problem() -> None:
    expected = _tracks_expected()
    expected["audio_tracks"] *= 2
    assert compare(info(video(), _track(96000)), expected) == [
        "the output has 1 audio tracks, 2 expected"
    ]
    mono = {**_tracks_expected()["audio_tracks"][0], "channels": 1, "layout": "mono"}
    assert compare(info(video(), _track(96000)), {"audio_tracks": [mono]}) == [
        "audio track 1 has 2 channels, 1 expected"
    ]


def test_audio_a_frame_early_is_out_of_sync() -> None:
    """Issue 14: split outputs put the audio one AAC frame (21 ms) early."""
    early = info(video(), _track(96000, start=-1024 / 48000))
    expected = {**_tracks_expected(), "av_offset": 0.0}
    assert compare(early, expected) == [
        "the output's audio starts -21.3 ms from its video, the source's +0.0 ms"
    ]
    assert compare(info(video(), _track(96000, start=0.0005)), expected) == []


def test_unmarked_priming_counts_as_a_later_start() -> None:
    """AAC in Matroska: the 1024 priming samples are played, so the sound starts later."""
    unmarked = info(video(), _track(96000 + 1024, priming=0, start=-1024 / 48000))
    assert compare(unmarked, {**_tracks_expected(), "av_offset": 0.0}) == []


def test_a_level_other_than_plain_ffmpegs_is_a_problem() -> None:
    labelled = dataclasses.replace(video(), level=62)
    assert compare(info(labelled), {"level": 12}) == [
        "the output is labelled level_idc 62, plain ffmpeg gives 12"
    ]
    assert compare(info(dataclasses.replace(video(), level=12)), {"level": 12}) == []
