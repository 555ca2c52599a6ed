"""Which ffmpeg a node runs, in :mod:`qfarm.media.tool`."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import imageio_ffmpeg
import pytest

from qfarm.media.tool import FFMPEG_ENV, ToolMissing, ffmpeg, has_encoder


@pytest.fixture(autouse=True)
def _no_configured_ffmpeg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(FFMPEG_ENV, raising=False)


def test_default_is_the_wheels_ffmpeg() -> None:
    """Without QFARM_FFMPEG every node runs the same pinned build."""
    assert ffmpeg().path == imageio_ffmpeg.get_ffmpeg_exe()


def test_version_is_read_from_the_binary() -> None:
    """The version goes into node fingerprints, so it must be the real one, not 'unknown'."""
    found = ffmpeg()
    first_line = subprocess.run(
        [found.path, "-version"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[0]
    assert found.version != "unknown"
    assert first_line.startswith(f"ffmpeg version {found.version} ")


def test_encoders_hold_the_ones_presets_need() -> None:
    found = ffmpeg()
    assert {"libx264", "aac"} <= found.encoders
    assert has_encoder("libx264")
    assert not has_encoder("no-such-encoder")


def test_decoder_only_names_are_not_encoders() -> None:
    """Only ``-encoders`` rows count: h264 is a decoder name, libx264 its encoder."""
    assert "h264" not in ffmpeg().encoders


def test_legend_rows_are_not_encoders() -> None:
    assert "=" not in ffmpeg().encoders


def test_configured_path_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """QFARM_FFMPEG points a node at another build; here the same one under another name."""
    link = tmp_path / "my-ffmpeg"
    link.symlink_to(imageio_ffmpeg.get_ffmpeg_exe())
    monkeypatch.setenv(FFMPEG_ENV, str(link))
    found = ffmpeg()
    assert found.path == str(link)
    assert "libx264" in found.encoders


def test_missing_configured_ffmpeg(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A wrong QFARM_FFMPEG is a ToolMissing naming the path, and no encoder is available."""
    missing = tmp_path / "nowhere" / "ffmpeg"
    monkeypatch.setenv(FFMPEG_ENV, str(missing))
    with pytest.raises(ToolMissing, match=re.escape(str(missing))):
        ffmpeg()
    assert not has_encoder("libx264")
    assert not has_encoder("aac")


def test_configured_ffmpeg_that_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A program that runs but fails on -version is not taken for an ffmpeg."""
    fake = tmp_path / "ffmpeg"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv(FFMPEG_ENV, str(fake))
    with pytest.raises(ToolMissing, match="exited 3 on -version"):
        ffmpeg()
    assert not has_encoder("libx264")
