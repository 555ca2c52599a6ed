"""The specification's sample job templates (``samples/v2023-09/job_templates``), run end to
end through ``qfarm run`` on the embedded two-node cluster.

Like the conformance suite, the samples are not copied here: ``QFARM_OPENJD_SPEC`` points at
an extracted checkout of OpenJobDescription/openjd-specifications (``scripts/openjd-spec``),
and without it these tests skip, saying so. Only the samples that need what a node here has
run: ``stdout-messages`` (python) and ``ffmpeg`` (ffmpeg, from imageio-ffmpeg when there is
no system one). ``algorithmic-art`` installs packages with pip in its environment (no
network here), and ``blender-ffmpeg`` renders a scene it does not carry.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.openjd.test_conformance import ENV

pytestmark = pytest.mark.integration

RUN_TIMEOUT_S = 300


def samples() -> Path:
    value = os.environ.get(ENV)
    if not value:
        pytest.skip(f"{ENV} is unset")
    root = Path(value)
    for candidate in (root / "samples" / "v2023-09" / "job_templates", root / "v2023-09"):
        if candidate.is_dir():
            return candidate
    pytest.skip(f"{ENV}={value} holds no samples/v2023-09/job_templates")


def qfarm(*args: str, cwd: Path, path: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "QFARM_DATA_DIR": str(cwd / "data")}
    if path is not None:
        env["PATH"] = f"{path}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        [sys.executable, "-m", "qfarm", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def ffmpeg_dir(tmp_path: Path) -> Path:
    """A folder with an ``ffmpeg`` the template's bare ``ffmpeg`` command finds on PATH."""
    folder = tmp_path / "bin"
    folder.mkdir()
    found = shutil.which("ffmpeg")
    if found is None:
        imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="no ffmpeg here")
        found = imageio_ffmpeg.get_ffmpeg_exe()
    (folder / "ffmpeg").symlink_to(found)
    return folder


def test_stdout_messages_sample_reports_its_status_lines(tmp_path: Path) -> None:
    template = samples() / "stdout-messages.yaml"
    done = qfarm("openjd", "run", str(template), "--nodes", "2", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Job: ShowOffStdoutMessages" in done.stdout
    assert "openjd_status: Processing the things" in done.stdout
    assert "openjd_progress: 100" in done.stdout


def test_ffmpeg_sample_encodes_a_sequence_on_both_nodes(tmp_path: Path) -> None:
    template = samples() / "ffmpeg.yaml"
    bin_dir = ffmpeg_dir(tmp_path)
    frames = tmp_path / "frames"
    frames.mkdir()
    made = subprocess.run(
        [str(bin_dir / "ffmpeg"), "-v", "error", "-f", "lavfi", "-i",
         "testsrc=size=128x72:rate=24", "-frames:v", "12", str(frames / "img.%04d.png")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    out = tmp_path / "out"
    out.mkdir()
    params = [
        f"InputFile={frames / 'img.%04d.png'}", f"OutputDir={out}",
        "StartFrame=1", "EndFrame=12", "FPS=24",
    ]  # fmt: skip
    args = ["run", "--nodes", "2", "--json", str(template)]
    for value in params:
        args += ["-p", value]
    done = qfarm(*args, cwd=tmp_path, path=str(bin_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    # h264 first; then webm and the two prores tasks, which the two nodes share.
    assert report["state"] == "done" and report["segments"]["done"] == 4, report
    assert report["nodes"] == ["local-1", "local-2"], report
    for name in ("h264_hq_output.mp4", "webm_output.webm"):
        assert (out / name).stat().st_size > 0, name
    movies = sorted(p.name for p in out.iterdir() if p.suffix == ".mov")
    assert len(movies) == 2, movies
