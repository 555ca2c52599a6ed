"""``qfarm run transcode`` and ``qfarm presets`` as users run them: real processes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from qfarm.media.probe import probe
from tests.cli.test_main import QFARM, qfarm
from tests.jobtypes.test_transcode import make_source

pytestmark = pytest.mark.integration


def test_run_transcode_writes_one_output_per_source_and_preset(tmp_path: Path) -> None:
    clips = tmp_path / "clips"
    clips.mkdir()
    make_source(clips / "a.mp4", seconds=4)
    make_source(clips / "b.mp4", seconds=2, audio=False)
    result = qfarm(
        "run", "transcode", "clips/*.mp4", "-p", "h264-480p", "-p", "aac", "-o", "out",
        "--segment-seconds", "1", "--json", data_dir=tmp_path / "data", cwd=tmp_path,
    )  # fmt: skip
    # b.mp4 has no audio: the aac job is refused before anything runs.
    assert result.returncode == 2, result.stderr
    assert "b.mp4 has no audio stream" in result.stderr
    assert not (tmp_path / "out").exists()

    result = qfarm(
        "run", "transcode", "clips/*.mp4", "-p", "h264-480p", "-o", "out",
        "--segment-seconds", "1", "--json", data_dir=tmp_path / "data", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["state"] == "done"
    # a.mp4: 4 video segments, audio, assemble; b.mp4: 2 video segments and assemble.
    assert report["segments"]["done"] == 9
    outputs = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert outputs == ["a-h264-480p.mp4", "b-h264-480p.mp4"]
    video = probe(str(tmp_path / "out" / "a-h264-480p.mp4")).video
    assert video is not None and video.frames == 100


def test_run_transcode_bad_input_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "notes.mov").write_text("not a movie")
    for args, message in [
        (["notes.mov", "-p", "h264"], "is not a media file"),
        (["missing.mov", "-p", "h264"], "missing.mov does not exist"),
        (["*.mkv", "-p", "h264"], "matches no file"),
        (["notes.mov", "-p", "nope"], "unknown preset 'nope'"),
        (["notes.mov"], "no --preset given"),
    ]:
        result = qfarm("run", "transcode", *args, data_dir=tmp_path / "data", cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_run_transcode_help_has_examples(tmp_path: Path) -> None:
    result = qfarm("run", "transcode", "--help", data_dir=tmp_path)
    assert result.returncode == 0
    assert "qfarm run transcode interview.mov --preset h264-720p" in result.stdout


def test_presets_lists_builtin_and_user_presets(tmp_path: Path) -> None:
    extra = tmp_path / "studio.toml"
    extra.write_text('[preset.web-small]\ncontainer = "mp4"\nvideo_codec = "libx264"\ncrf = 26\n')
    result = qfarm("presets", "--presets", str(extra), "--json", data_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert {"h264-720p", "hevc", "prores-422", "vp9", "aac", "mp3", "png", "remux"} <= set(rows)
    assert rows["web-small"]["source"] == str(extra)
    assert rows["h264-720p"]["available"] is True

    table = qfarm("presets", data_dir=tmp_path)
    assert table.returncode == 0
    assert "prores-422" in table.stdout

    # Readable at 80 columns: every name whole at the start of its row, no line wider than
    # the terminal, at most two lines a preset (it was about 110 lines, a word a line).
    env = {**os.environ, "QFARM_DATA_DIR": str(tmp_path), "COLUMNS": "80"}
    narrow = subprocess.run(
        [*QFARM, "presets", "--presets", str(extra)], capture_output=True, text=True, env=env
    )
    lines = narrow.stdout.splitlines()
    assert narrow.returncode == 0 and all(len(line) <= 80 for line in lines), lines
    starts = {line.split()[0] for line in lines if line and not line.startswith(" ")}
    assert set(rows) <= starts, set(rows) - starts
    assert len(lines) <= 2 * len(rows) + 1, len(lines)
    assert "web-small" in starts

    bad = tmp_path / "bad.toml"
    bad.write_text('[preset.x]\ncontainer = "mp4"\ncrf = "high"\n')
    result = qfarm("presets", "--presets", str(bad), data_dir=tmp_path)
    assert result.returncode == 2
    assert "crf must be int" in result.stderr


def test_stream_listing_for_show_and_the_run_summary(tmp_path: Path) -> None:
    """The lines ``qfarm show`` and the run summary print for a transcode job's streams."""
    from qfarm.cli.transcode import describe_streams, dropped_streams
    from qfarm.jobtypes.transcode import TRANSCODE
    from tests.jobtypes.test_transcode_fidelity import _subtitled

    source = _subtitled(tmp_path / "talk.mkv", "srt", 2)
    spec = TRANSCODE.validate({"input": str(source), "preset": "h264"})
    assert describe_streams(spec) == [
        "#0 video h264: encoded as h264",
        "#1 audio aac (fra): encoded as aac",
        "#2 subtitle subrip (eng): converted to mov_text",
    ]
    assert dropped_streams(spec) == []
    spec = TRANSCODE.validate({"input": str(source), "preset": "mp3"})
    assert dropped_streams(spec)[-1] == (
        "talk.mkv #2 subtitle subrip (eng): dropped: a mp3 file holds no subtitles"
    )
    assert describe_streams({"command": "true"}) == []


def test_run_transcode_of_an_image_sequence_at_a_rate(tmp_path: Path) -> None:
    """``qfarm run transcode 'seq/f_%04d.png' --rate 25``: one job, split on frames."""
    from tests.jobtypes.test_transcode_sequences import make_sequence

    make_sequence(tmp_path / "seq", frames=50)
    result = qfarm(
        "run", "transcode", "seq/f_%04d.png", "--rate", "25", "-p", "h264", "-o", "out",
        "--segment-seconds", "1", "--json", data_dir=tmp_path / "data", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["segments"]["done"] == 3  # two video segments and the assembly
    assert report["jobs"][0]["summary"][:2] == [
        "source: f_%04d.png, frames 1001-1050 at 25 fps, 160x90",
        "split into 2 video segments",
    ]
    video = probe(str(tmp_path / "out" / "f-h264.mp4")).video
    assert video is not None and video.frames == 50 and abs(video.duration - 2.0) < 1e-6


def test_upload_sends_every_frame_of_a_sequence(tmp_path: Path) -> None:
    """``qfarm submit transcode 'seq/f_%04d.png' --upload``: each frame goes up, and the job
    reads the uploaded pattern."""
    from typing import Any, cast

    from qfarm.cli.transcode import transcode_batch, uploaded
    from qfarm.client import Client
    from tests.jobtypes.test_transcode_sequences import make_sequence

    pattern = make_sequence(tmp_path / "seq", frames=3)
    sent: list[Path] = []

    class Stub:
        def upload(self, files: list[Path], base: Path) -> tuple[str, str]:
            sent.extend(files)
            return "u1", "/cluster/u1"

    request = transcode_batch(
        inputs=[str(pattern)], presets=["h264"], output=None, segment_seconds=None,
        preset_files=None, verify="seams", name="", priority="medium", retries=0,
        timeout=None, rate="25",
    )  # fmt: skip
    spec: dict[str, Any] = uploaded(cast(Client, Stub()), request).jobs[0].spec
    assert [p.name for p in sent] == ["f_1001.png", "f_1002.png", "f_1003.png"]
    assert spec["input"] == "/cluster/u1/f_%04d.png" and spec["rate"] == "25"
