"""The transcode job type's summary lines (``describe``), which ``qfarm show``, the run
summary and the API's batch JSON print for each job."""

from __future__ import annotations

from pathlib import Path

from qfarm.jobtypes import job_summary
from qfarm.jobtypes.transcode import TRANSCODE
from tests.jobtypes.test_transcode import make_source
from tests.jobtypes.test_transcode_fidelity import _interlaced, _master_mov, _subtitled
from tests.jobtypes.test_transcode_sequences import make_sequence


def _describe(source: Path, **spec: object) -> list[str]:
    return TRANSCODE.describe(TRANSCODE.validate({"input": str(source), "preset": "h264", **spec}))


def test_a_master_lists_its_shape_cut_and_every_stream(tmp_path: Path) -> None:
    master = _master_mov(tmp_path / "master.mov")
    assert _describe(master, segment_seconds=1.5, output_dir=str(tmp_path / "out")) == [
        "source: master.mov, 320x180 25 fps, 4 audio tracks",
        "split into 3 video segments",
        "deinterlace: off",
        f"output: {tmp_path / 'out' / 'master-h264.mp4'} (preset h264)",
        "#0 video h264: encoded as h264",
        *[f"#{i} audio pcm_s24le: encoded as aac" for i in range(1, 5)],
        "#5 data ? (eng): carried as the output's 2 chapters",
        "#6 data ? (eng): carried as the output's timecode (10:00:00:00)",
    ]


def test_subtitles_one_segment_and_a_dropped_stream(tmp_path: Path) -> None:
    talk = _subtitled(tmp_path / "talk.mkv", "srt", 2)
    lines = _describe(talk)
    assert lines[:3] == [
        "source: talk.mkv, 320x180 25 fps, 1 audio track, 1 subtitle",
        "one segment",
        "deinterlace: off",
    ]
    assert lines[-1] == "#2 subtitle subrip (eng): converted to mov_text"
    audio_only = _describe(talk, preset="aac")
    assert "deinterlace: off" not in audio_only  # no picture to deinterlace
    assert audio_only[-1] == "#2 subtitle subrip (eng): dropped: a m4a file holds no subtitles"


def test_an_interlaced_source_and_a_sequence(tmp_path: Path) -> None:
    interlaced = _interlaced(tmp_path / "i.mp4")
    lines = _describe(interlaced)
    assert lines[0] == "source: i.mp4, 320x180 25 fps interlaced"
    assert lines[2] == "deinterlace: on (bwdif)"
    pattern = make_sequence(tmp_path / "seq", frames=12)
    lines = _describe(pattern, segment_seconds=0.25, rate="24")
    assert lines[:3] == [
        "source: f_%04d.png, frames 1001-1012 at 24 fps, 160x90",
        "split into 2 video segments",
        "deinterlace: off",
    ]
    assert lines[-1] == "#0 video png: encoded as h264"


def test_the_summary_reaches_qfarm_show_through_the_job_type(tmp_path: Path) -> None:
    clip = make_source(tmp_path / "clip.mp4", seconds=1, rate="30000/1001")
    spec = TRANSCODE.validate({"input": str(clip), "preset": "h264"})
    assert job_summary("transcode", spec)[0] == "source: clip.mp4, 320x240 29.97 fps, 1 audio track"
