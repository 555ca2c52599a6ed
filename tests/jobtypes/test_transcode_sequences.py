"""Image sequences and folders as transcode sources, run as ``qfarm run transcode`` builds
them (the CLI's batch, on a real embedded cluster) and compared with plain ffmpeg run on
the whole sequence.

The sequence is 48 PNG frames of 160x90 testsrc numbered from 1001, as renders are; every
form that names it (printf pattern, hash padding, folder, glob) is split into segments of
0.5 s (12 frames). A lossless preset (FFV1 in RGB) lets decoded frames be compared exactly.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from qfarm.cli.transcode import transcode_batch
from qfarm.domain.errors import InvalidRequest
from qfarm.domain.model import BatchRequest, BatchState, JobRequest
from qfarm.jobtypes.transcode import TRANSCODE
from qfarm.media.probe import probe
from qfarm.media.tool import ffmpeg
from tests.helpers import embedded
from tests.jobtypes.test_transcode import make_source, psnr
from tests.jobtypes.test_transcode_fidelity import _frame_psnrs

# Whole transcodes, split and assembled by real ffmpeg: seconds each.
pytestmark = pytest.mark.integration

LOSSLESS = '[preset.lossless]\ncontainer = "mkv"\nvideo_codec = "ffv1"\npix_fmt = "bgr0"\n'
H264_ARGS = ["-c:v", "libx264", "-preset", "medium", "-crf", "20", "-pix_fmt", "yuv420p"]
SEQUENCE_INPUT = ["-framerate", "24", "-start_number", "1001", "-i"]


def _ffmpeg(*args: str) -> str:
    result = subprocess.run(
        [ffmpeg().path, "-hide_banner", "-nostdin", "-y", *args],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return result.stderr


def make_sequence(folder: Path, frames: int = 48, first: int = 1001) -> Path:
    """``folder/f_%04d.png``: testsrc frames numbered from ``first``."""
    folder.mkdir(parents=True, exist_ok=True)
    pattern = folder / "f_%04d.png"
    _ffmpeg("-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x90:rate=24",
            "-frames:v", str(frames), "-start_number", str(first), str(pattern))  # fmt: skip
    return pattern


def frame_hashes(path: Path) -> list[str]:
    """Each decoded frame's MD5, as RGB: equal lists are the same pictures."""
    result = subprocess.run(
        [ffmpeg().path, "-v", "error", "-i", str(path), "-map", "0:v", "-pix_fmt", "bgr0",
         "-f", "framemd5", "-"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return [line.rsplit(",", 1)[1].strip() for line in result.stdout.splitlines()
            if line and not line.startswith("#")]  # fmt: skip


@dataclass(frozen=True)
class Runs:
    root: Path
    pattern: Path  # the sequence's printf pattern
    outputs: dict[str, Path]  # by form
    plain_h264: Path
    plain_lossless: Path
    movies: list[Path]  # qfarm's outputs of the folder of movies
    jobs: dict[str, int]  # jobs each form gave


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    root = tmp_path_factory.mktemp("sequences")
    pattern = make_sequence(root / "seq")
    (root / "seq" / "notes.txt").write_text("not a frame\n")
    movies = root / "movies"
    movies.mkdir()
    make_source(movies / "a.mp4", seconds=1, size="160x90")
    make_source(movies / "b.mov", seconds=1, size="160x90", audio=False)
    (movies / "notes.txt").write_text("not a movie\n")
    presets = root / "lossless.toml"
    presets.write_text(LOSSLESS)
    forms = {
        "pattern": ("seq/f_%04d.png", "h264"),
        "hash": ("seq/f_####.png", "lossless"),
        "folder": ("seq", "lossless"),
        "glob": ("seq/*.png", "lossless"),
        "movies": ("movies", "h264"),
    }
    requests: dict[str, BatchRequest] = {}
    old = Path.cwd()
    os.chdir(root)
    try:
        for form, (argument, preset) in forms.items():
            requests[form] = transcode_batch(
                inputs=[argument], presets=[preset], output=root / "out" / form,
                segment_seconds=0.5, preset_files=[presets], verify="full", name=form,
                priority="medium", retries=0, timeout=None, rate="24",
            )  # fmt: skip
    finally:
        os.chdir(old)

    async def scenario() -> None:
        farm = root / "farm"
        farm.mkdir()
        async with embedded(farm, nodes=2, services={"transcode": 1}) as controller:
            for request in requests.values():
                batch_id = controller.submit(request)
                batch = await asyncio.wait_for(controller.wait(batch_id), 120)
                segments = controller.store.segments(batch_id)
                errors = [(s.label, s.error) for s in segments if s.error]
                assert batch.state is BatchState.DONE, errors

    asyncio.run(scenario())
    plain_h264, plain_lossless = root / "plain.mp4", root / "plain.mkv"
    _ffmpeg("-v", "error", *SEQUENCE_INPUT, str(pattern), *H264_ARGS, str(plain_h264))
    _ffmpeg("-v", "error", *SEQUENCE_INPUT, str(pattern), "-c:v", "ffv1", "-pix_fmt", "bgr0",
            str(plain_lossless))  # fmt: skip
    ext = {"h264": ".mp4", "lossless": ".mkv"}
    yield Runs(
        root=root,
        pattern=pattern,
        outputs={f: root / "out" / f / f"f-{p}{ext[p]}" for f, (_, p) in forms.items()},
        plain_h264=plain_h264,
        plain_lossless=plain_lossless,
        movies=sorted((root / "out" / "movies").iterdir()),
        jobs={form: len(request.jobs) for form, request in requests.items()},
    )


def test_a_sequence_is_one_source_split_into_segments(runs: Runs) -> None:
    assert runs.jobs["pattern"] == runs.jobs["hash"] == runs.jobs["folder"] == 1
    assert runs.jobs["glob"] == 1  # not 48 one-frame movies
    spec = TRANSCODE.validate({"input": str(runs.pattern), "preset": "h264",
                               "segment_seconds": 0.5, "rate": 24})  # fmt: skip
    labels = [p.label for p in TRANSCODE.plan(spec)]
    assert labels == ["video frames 1001-1012", "video frames 1013-1024",
                      "video frames 1025-1036", "video frames 1037-1048",
                      "assemble and verify"]  # fmt: skip


def test_split_sequence_matches_plain_ffmpeg_frames_and_duration(runs: Runs) -> None:
    """48 frames lasting 2 s (frames / rate), as plain ffmpeg's output in the same container
    (Matroska counts in milliseconds: its last frame ends at 1.999 s in both)."""
    for form in ("pattern", "hash", "folder", "glob"):
        plain = probe(str(runs.plain_h264 if form == "pattern" else runs.plain_lossless)).video
        video = probe(str(runs.outputs[form])).video
        assert video is not None and plain is not None, form
        assert video.frames == plain.frames == 48
        assert video.duration == pytest.approx(plain.duration)
        assert video.duration == pytest.approx(2.0, abs=0.0011)
        assert (video.width, video.height) == (160, 90)


def test_split_h264_of_a_sequence_keeps_the_picture_as_plain_ffmpeg_does(runs: Runs) -> None:
    """Against the frames themselves, every frame of qfarm's split encode is as good as an
    encode's frame can be at CRF 20 (42-46 dB; a wrong or shifted frame gives under 20),
    and the average is within 2 dB of plain ffmpeg's whole encode (44.3 against 45.6: four
    chunks each start on a keyframe)."""
    frames = runs.plain_lossless  # the sequence's own pictures, losslessly
    split, plain = psnr(runs.outputs["pattern"], frames), psnr(runs.plain_h264, frames)
    assert split > 42.0
    assert abs(split - plain) < 2.0
    per_frame = _frame_psnrs(runs.outputs["pattern"], frames)
    assert len(per_frame) == 48 and min(per_frame) > 40.0
    split_video, plain_video = (probe(str(p)).video for p in (runs.outputs["pattern"],
                                                              runs.plain_h264))  # fmt: skip
    assert split_video and plain_video and split_video.level == plain_video.level


def test_lossless_split_sequence_decodes_to_plain_ffmpegs_frames(runs: Runs) -> None:
    """Hash, folder and glob forms, split in four: every decoded frame is the one plain
    ffmpeg gives for the whole sequence."""
    plain = frame_hashes(runs.plain_lossless)
    assert len(plain) == 48
    for form in ("hash", "folder", "glob"):
        assert frame_hashes(runs.outputs[form]) == plain, form


def test_a_folder_of_movies_is_one_job_per_movie(
    runs: Runs, capsys: pytest.CaptureFixture[str]
) -> None:
    assert runs.jobs["movies"] == 2
    assert [p.name for p in runs.movies] == ["a-h264.mp4", "b-h264.mp4"]
    for path in runs.movies:
        video = probe(str(path)).video
        assert video is not None and video.frames == 25
    old = Path.cwd()
    os.chdir(runs.root)
    try:
        transcode_batch(
            inputs=["movies"], presets=["h264"], output=None, segment_seconds=None,
            preset_files=None, verify="seams", name="", priority="medium", retries=0,
            timeout=None,
        )  # fmt: skip
    finally:
        os.chdir(old)
    assert "skipped 1 files that are not media: notes.txt" in capsys.readouterr().err


def test_a_gap_in_the_numbering_is_refused_naming_the_first_missing_frame(
    tmp_path: Path,
) -> None:
    pattern = make_sequence(tmp_path / "seq", frames=6)
    (tmp_path / "seq" / "f_1003.png").unlink()
    (tmp_path / "seq" / "f_1004.png").unlink()
    for argument in (str(pattern), str(tmp_path / "seq"), str(tmp_path / "seq" / "*.png"),
                     str(tmp_path / "seq" / "f_####.png")):  # fmt: skip
        with pytest.raises(InvalidRequest, match=r"frame 1003 \(f_1003\.png\) is missing"):
            TRANSCODE.validate({"input": argument, "preset": "h264"})


def test_rate_is_for_sequences_only(tmp_path: Path) -> None:
    pattern = make_sequence(tmp_path / "seq", frames=5)
    spec = TRANSCODE.validate({"input": str(pattern), "preset": "h264", "rate": "25"})
    assert spec["source"]["video"]["frames"] == 5
    assert spec["expected"]["duration"] == pytest.approx(0.2)
    assert spec["output"] == str(tmp_path / "f-h264.mp4")  # beside the frames' folder
    assert TRANSCODE.validate({"input": str(pattern), "preset": "h264"})["sequence"]["rate"] == (
        "24"
    )
    movie = make_source(tmp_path / "a.mp4", seconds=1, audio=False)
    with pytest.raises(InvalidRequest, match="rate is for image sequences"):
        TRANSCODE.validate({"input": str(movie), "preset": "h264", "rate": 25})


def test_a_sequence_to_frames_and_deinterlaced_keeps_every_frame(tmp_path: Path) -> None:
    """An image preset writes one frame per source frame, split in two; a sequence
    deinterlaced on request reads the frame before each cut for the filter, and its seam
    matches a whole run's."""
    pattern = make_sequence(tmp_path / "seq", frames=24)
    out = tmp_path / "out"
    jobs = [
        JobRequest("transcode", {"input": str(pattern), "preset": "png", "segment_seconds": 0.5,
                                 "output_dir": str(out)}, name="png", retries=0),
        *(
            JobRequest("transcode", {"input": str(pattern), "preset": "h264",
                                     "segment_seconds": seconds, "deinterlace": "on",
                                     "output": str(out / f"{kind}.mp4")}, name=kind, retries=0)
            for kind, seconds in (("split", 0.5), ("whole", 100))
        ),
    ]  # fmt: skip

    async def scenario() -> None:
        farm = tmp_path / "farm"
        farm.mkdir()
        async with embedded(farm, nodes=2, services={"transcode": 1}) as controller:
            batch_id = controller.submit(BatchRequest(jobs=tuple(jobs)))
            batch = await asyncio.wait_for(controller.wait(batch_id), 120)
            errors = [(s.label, s.error) for s in controller.store.segments(batch_id) if s.error]
            assert batch.state is BatchState.DONE, errors

    asyncio.run(scenario())
    frames = sorted((out / "f-png").iterdir())
    assert [f.name for f in frames[:1]] == ["f_000001.png"] and len(frames) == 24
    assert frame_hashes(frames[12]) == frame_hashes(tmp_path / "seq" / "f_1013.png")
    split, whole = out / "split.mp4", out / "whole.mp4"
    assert probe(str(split)).video.frames == 24  # type: ignore[union-attr]
    assert min(_frame_psnrs(split, whole)) > 38.0
