"""The transcode job type: planning against real sources, and segmented encodes on a real
embedded cluster compared with one-piece encodes of the same sources.

Sources are made by ffmpeg's lavfi generators (testsrc2 and sine) at several frame rates,
sizes and lengths, with and without audio, and one with a variable frame rate.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from qfarm.controller.planning import plan_batch
from qfarm.domain.errors import InvalidRequest
from qfarm.domain.model import BatchRequest, BatchState, JobRequest, SegmentKind
from qfarm.jobtypes.transcode import TRANSCODE, parts_dir, segment_count
from qfarm.media.probe import probe
from qfarm.media.tool import ffmpeg
from tests.helpers import embedded

pytestmark = pytest.mark.integration

# The lowest PSNR (dB, luma and chroma averaged) a segmented H.264 encode at CRF 20 may
# have against its source. testsrc2 at these sizes gives about 40 dB; a wrong frame at a
# seam drops the average far below.
PSNR_BOUND = 35.0


def make_source(
    path: Path,
    *,
    seconds: float,
    rate: str = "25",
    size: str = "320x240",
    audio: bool = True,
    vfr: bool = False,
) -> Path:
    """A test source: testsrc2 (a moving picture with a frame counter), and a sine tone."""
    argv = [ffmpeg().path, "-hide_banner", "-v", "error", "-y", "-f", "lavfi", "-i",
            f"testsrc2=size={size}:rate={rate}:duration={seconds}"]  # fmt: skip
    if audio:
        argv += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=48000:duration={seconds}"]
    if vfr:
        # Drop two frames of every five, unevenly: timestamps keep their gaps.
        argv += ["-vf", "select='not(eq(mod(n\\,5)\\,1))*not(eq(mod(n\\,5)\\,2))'",
                 "-fps_mode", "vfr"]  # fmt: skip
    argv += ["-c:v", "libx264", "-g", "48", "-pix_fmt", "yuv420p"]
    if audio:
        argv += ["-c:a", "aac", "-shortest"]
    argv.append(str(path))
    subprocess.run(argv, check=True)
    return path


def timestamps(path: Path) -> list[float]:
    """Every video frame's time from the first, in seconds."""
    video = probe(str(path)).video
    assert video is not None
    return [video.seconds(i) for i in range(video.frames)]


def psnr(output: Path, source: Path) -> float:
    """PSNR of ``output`` against ``source`` scaled to its size. The source is read by the
    movie filter, not a second -i: ffmpeg 7.0.2 aborts now and then ("Assertion best_input
    >= 0 failed") on a filter graph fed by two inputs."""
    video = probe(str(output)).video
    assert video is not None
    graph = f"movie='{source}',scale={video.width}:{video.height}[ref];[0:v][ref]psnr"
    result = subprocess.run(
        [ffmpeg().path, "-hide_banner", "-i", str(output), "-lavfi", graph, "-an",
         "-f", "null", "-"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    match = re.search(r"PSNR .*average:([0-9.]+|inf)", result.stderr)
    assert match, result.stderr[-2000:]
    return float(match.group(1))


def transcode_job(source: Path, out: Path, name: str, **spec: Any) -> JobRequest:
    return JobRequest(
        "transcode",
        {"input": str(source), "preset": "h264", "output": str(out), **spec},
        name=name,
        retries=0,
    )


def _clip(folder: Path) -> Path:
    return make_source(folder / "a.mp4", seconds=1)


def _text(path: Path) -> Path:
    path.write_text("not a movie\n")
    return path


def _audio_only(path: Path) -> Path:
    subprocess.run(
        [ffmpeg().path, "-v", "error", "-y", "-f", "lavfi", "-i", "sine=duration=1",
         "-c:a", "aac", str(path)],
        check=True,
    )  # fmt: skip
    return path


def _pcm_mov(path: Path) -> Path:
    subprocess.run(
        [ffmpeg().path, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=duration=1",
         "-f", "lavfi", "-i", "sine=duration=1", "-c:v", "libx264", "-c:a", "pcm_s16le",
         "-shortest", str(path)],
        check=True,
    )  # fmt: skip
    return path


# ------------------------------------------------------------------ planning


def test_short_source_is_one_segment(tmp_path: Path) -> None:
    source = make_source(tmp_path / "short.mp4", seconds=3)
    spec = TRANSCODE.validate({"input": str(source), "preset": "h264", "instances": 8})
    plans = TRANSCODE.plan(spec)
    assert [p.spec["part"] for p in plans] == ["whole"]
    assert plans[0].outputs == (str(tmp_path / "short-h264.mp4"),)


def test_long_source_is_cut_on_frames_with_audio_and_assembly(tmp_path: Path) -> None:
    source = make_source(tmp_path / "long.mp4", seconds=7, rate="25")
    spec = TRANSCODE.validate({"input": str(source), "preset": "h264", "segment_seconds": 2})
    plans = TRANSCODE.plan(spec)
    parts = [p.spec["part"] for p in plans]
    assert parts == ["audio"] + ["video"] * 4 + ["assemble"]  # the audio first: no tail
    assert plans[-1].kind is SegmentKind.ASSEMBLE
    video = [p.spec for p in plans if p.spec["part"] == "video"]
    # Contiguous, covering every frame once.
    assert video[0]["first"] == 0 and video[0]["seek"] is None
    for before, after in itertools.pairwise(video):
        assert after["first"] == before["first"] + before["frames"]
    assert sum(v["frames"] for v in video) == 175
    # Each seek lands between the frame before the cut and the cut.
    for v in video[1:]:
        assert (v["first"] - 1) / 25 < v["seek"] < v["first"] / 25
    assert sum(v["duration"] for v in video) == pytest.approx(7.0)
    assert all(Path(p.outputs[0]).parent == Path(parts_dir(spec["output"])) for p in plans[:5])


def test_segment_count_follows_instances_and_never_splits_short_sources() -> None:
    assert segment_count(60.0, 1500, instances=4, seconds=None) == 4
    assert segment_count(15.0, 375, instances=4, seconds=None) == 1  # under 2 x 10 s
    assert segment_count(60.0, 1500, instances=1, seconds=None) == 1
    assert segment_count(60.0, 1500, instances=4, seconds=7) == 9
    assert segment_count(1.0, 3, instances=4, seconds=0.1) == 3  # never more than the frames


def test_audio_only_and_remux_presets_are_one_segment(tmp_path: Path) -> None:
    source = make_source(tmp_path / "clip.mp4", seconds=25)
    for preset in ("aac", "remux", "mp3"):
        spec = TRANSCODE.validate({"input": str(source), "preset": preset, "instances": 4})
        assert [p.spec["part"] for p in TRANSCODE.plan(spec)] == ["whole"]


def test_image_sequence_segments_write_numbered_frames(tmp_path: Path) -> None:
    source = make_source(tmp_path / "clip.mp4", seconds=2, audio=False)
    spec = TRANSCODE.validate({"input": str(source), "preset": "png", "segment_seconds": 1})
    plans = TRANSCODE.plan(spec)
    outputs = [o for p in plans for o in p.outputs]
    assert len(outputs) == 50
    assert outputs[0].endswith("clip-png/clip_000001.png")
    assert outputs[-1].endswith("clip-png/clip_000050.png")


@pytest.mark.parametrize(
    ("make", "spec", "message"),
    [
        (lambda d: d / "absent.mov", {}, "absent.mov does not exist"),
        (lambda d: _text(d / "notes.mov"), {}, "is not a media file"),
        (_clip, {"preset": "nope"}, "unknown preset 'nope'"),
        (lambda d: make_source(d / "v.mp4", seconds=1, audio=False), {"preset": "aac"},
         "has no audio stream"),
        (lambda d: _audio_only(d / "tone.m4a"), {"preset": "h264"}, "has no video stream"),
        (lambda d: _pcm_mov(d / "pcm.mov"), {"preset": "remux"}, "pcm_s16le"),
        (_clip, {"segment_seconds": 0},
         "more than 0 seconds"),
        (_clip, {"verify": "maybe"}, "verify must be"),
        (_clip, {"output": "{input}"}, "overwrite"),
        (_clip, {"output": "x.webm"}, "does not end in .mp4"),
        (_clip, {"colour": "red"}, "unknown option"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_before_anything_is_queued(
    tmp_path: Path, make: Callable[[Path], Path], spec: dict[str, Any], message: str
) -> None:
    source = make(tmp_path)
    full = {"input": str(source), "preset": "h264", **spec}
    if full.get("output") == "{input}":
        full["output"] = str(source)
    request = BatchRequest(jobs=(JobRequest("transcode", full),))
    with pytest.raises(InvalidRequest, match=re.escape(message)):
        plan_batch(request)


# ------------------------------------------------ segmented against one-piece


@dataclass(frozen=True)
class Case:
    name: str
    seconds: float
    rate: str = "25"
    size: str = "320x240"
    audio: bool = True
    vfr: bool = False


CASES = [
    Case("24fps", 7, rate="24"),
    Case("25fps", 7, rate="25"),
    Case("2997fps", 7, rate="30000/1001"),
    Case("30fps-silent", 6.5, rate="30", audio=False),
    Case("odd-size", 5, rate="25", size="321x241"),
    Case("vfr", 7, rate="30", vfr=True),
]


@pytest.fixture(scope="module")
def encoded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    """Every case encoded twice in one batch on a real cluster: cut into segments of
    1.5 s, and in one piece. Returns paths by case name: source, split, whole."""
    root = tmp_path_factory.mktemp("transcode")
    jobs: list[JobRequest] = []
    paths: dict[str, dict[str, Path]] = {}
    for case in CASES:
        source = make_source(
            root / f"{case.name}.mp4", seconds=case.seconds, rate=case.rate, size=case.size,
            audio=case.audio, vfr=case.vfr,
        )  # fmt: skip
        split, whole = root / f"{case.name}-split.mp4", root / f"{case.name}-whole.mp4"
        jobs.append(transcode_job(source, split, f"{case.name} split", segment_seconds=1.5))
        jobs.append(transcode_job(source, whole, f"{case.name} whole", segment_seconds=1000))
        paths[case.name] = {"source": source, "split": split, "whole": whole}
    request = BatchRequest(jobs=tuple(jobs), name="segmented against one-piece")

    async def scenario() -> None:
        services = {"transcode": 1}
        farm = root / "farm"
        farm.mkdir()
        async with embedded(farm, nodes=2, services=services) as controller:
            batch_id = controller.submit(request)
            batch = await asyncio.wait_for(controller.wait(batch_id), 240)
            if batch.state is not BatchState.DONE:
                failed = [s for s in controller.store.segments(batch_id) if s.error]
                raise AssertionError(f"batch {batch.state}: {[(s.label, s.error) for s in failed]}")
            splits = [
                s for s in controller.store.segments(batch_id) if s.kind is SegmentKind.ASSEMBLE
            ]
            assert len(splits) == len(CASES)

    asyncio.run(scenario())
    return paths


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_segmented_encode_matches_the_one_piece_encode(
    encoded: dict[str, dict[str, Path]], case: Case
) -> None:
    paths = encoded[case.name]
    source, split, whole = (probe(str(paths[k])) for k in ("source", "split", "whole"))
    assert source.video and split.video and whole.video
    assert split.video.frames == whole.video.frames == source.video.frames
    frame = source.video.longest_frame  # one frame; for a variable rate, the longest
    assert abs(split.video.duration - whole.video.duration) <= frame
    assert abs(split.video.duration - source.video.duration) <= frame
    if case.audio:
        assert source.audio and split.audio and whole.audio
        assert abs(split.audio.duration - source.audio.duration) <= 0.05
    else:
        assert split.audio is None
    if case.size == "321x241":
        assert (split.video.width, split.video.height) == (320, 240)  # made even for 4:2:0


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_no_frame_is_duplicated_or_dropped_at_a_seam(
    encoded: dict[str, dict[str, Path]], case: Case
) -> None:
    """Every output frame sits at its source frame's time: a duplicated or dropped frame
    at a seam would shift every later one."""
    source = timestamps(encoded[case.name]["source"])
    split = timestamps(encoded[case.name]["split"])
    assert len(split) == len(source)
    half_frame = float(Fraction(1, 2) / Fraction(case.rate))
    worst = max(abs(a - b) for a, b in zip(split, source, strict=True))
    assert worst < half_frame


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_segmented_encode_keeps_the_picture(
    encoded: dict[str, dict[str, Path]], case: Case
) -> None:
    paths = encoded[case.name]
    assert psnr(paths["split"], paths["source"]) > PSNR_BOUND


def test_chunks_are_removed_once_assembled(encoded: dict[str, dict[str, Path]]) -> None:
    for paths in encoded.values():
        assert not Path(parts_dir(str(paths["split"]))).exists()
        assert not list(paths["split"].parent.glob(".qfarm-*"))


def test_failures_leave_nothing_at_the_final_path(tmp_path: Path) -> None:
    """A source gone before its segments run, and an assembly whose check fails: both jobs
    fail with a message saying why, and nothing sits at the output's final name. The chunks
    of the one that failed its check stay for a resubmit."""
    gone_source = make_source(tmp_path / "gone.mp4", seconds=3)
    kept_source = make_source(tmp_path / "kept.mp4", seconds=3)
    gone_out, bad_out = tmp_path / "gone-out.mp4", tmp_path / "bad-out.mp4"
    request = BatchRequest(
        jobs=(
            transcode_job(gone_source, gone_out, "gone", segment_seconds=1),
            transcode_job(kept_source, bad_out, "bad check", segment_seconds=1),
        ),
        hold=True,
    )
    planned = plan_batch(request, {"transcode": 2})
    # The check expects one frame more than the source has.
    planned[1].spec["expected"]["frames"] += 1
    gone_source.unlink()

    async def scenario() -> None:
        farm = tmp_path / "farm"
        farm.mkdir()
        async with embedded(farm, nodes=2, services={"transcode": 1}) as controller:
            batch_id = controller.submit(request, planned)
            await controller.resume(batch_id)
            batch = await asyncio.wait_for(controller.wait(batch_id), 120)
            assert batch.state is BatchState.FAILED
            jobs = controller.store.jobs(batch_id)
            segments = controller.store.segments(batch_id)
            gone_job = [s for s in segments if s.job_id == jobs[0].id]
            assert all(s.state.value in ("failed", "canceled") for s in gone_job)
            assembly = [s for s in segments if s.kind is SegmentKind.ASSEMBLE]
            assert "not assembled" in assembly[0].error
            assert assembly[1].error.startswith("verification: the output has 75 video frames")

    asyncio.run(scenario())
    assert not gone_out.exists() and not bad_out.exists()
    assert not [p for p in tmp_path.glob(".qfarm-*") if p.is_file()]
    assert len(list(Path(parts_dir(str(bad_out))).glob("video-*.mp4"))) == 3


def test_every_builtin_preset_gives_a_checked_output(tmp_path: Path) -> None:
    """Each built-in preset whose encoders this ffmpeg has, on a 3 s source cut into
    segments where the preset is split: every job ends done, which means its output passed
    the checks, and the output holds the preset's codecs."""
    from qfarm.media.presets import BUILTIN, ENCODER_CODECS
    from qfarm.media.tool import has_encoder

    source = make_source(tmp_path / "src.mp4", seconds=3, size="320x180")
    usable = [p for p in BUILTIN.values() if all(has_encoder(e) for e in p.encoders())]
    assert {"h264", "hevc", "prores-422", "vp9", "aac", "mp3", "png", "remux"} <= {
        p.name for p in usable
    }
    out = str(tmp_path / "out")
    jobs = tuple(
        JobRequest(
            "transcode",
            {"input": str(source), "preset": p.name, "output_dir": out, "segment_seconds": 1.5},
            name=p.name,
            retries=0,
        )
        for p in usable
    )

    async def scenario() -> None:
        farm = tmp_path / "farm"
        farm.mkdir()
        async with embedded(farm, nodes=2, services={"transcode": 1}) as controller:
            batch_id = controller.submit(BatchRequest(jobs=jobs))
            batch = await asyncio.wait_for(controller.wait(batch_id), 240)
            errors = [(s.label, s.error) for s in controller.store.segments(batch_id) if s.error]
            assert batch.state is BatchState.DONE, errors

    asyncio.run(scenario())
    for preset in usable:
        if preset.kind == "images":
            frames = sorted((tmp_path / "out" / f"src-{preset.name}").iterdir())
            assert len(frames) == 75 and frames[0].name == f"src_000001{preset.extension}"
            continue
        info = probe(str(tmp_path / "out" / f"src-{preset.name}{preset.extension}"))
        if preset.kind == "audio":
            assert info.video is None and info.audio is not None
            continue
        assert info.video is not None and info.video.frames == 75
        if preset.video_codec != "copy":
            assert info.video.codec == ENCODER_CODECS[str(preset.video_codec)]
        if preset.name == "h264-720p-2pass":  # two passes in each of two segments
            assert info.video.height == 180  # never scaled up


def test_source_the_clusters_ffmpeg_cannot_read_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PyAV plans with its own FFmpeg; the nodes run another. A source the nodes' ffmpeg
    fails on (here a stand-in ffmpeg that refuses every input) is refused up front."""
    source = make_source(tmp_path / "clip.mp4", seconds=1)
    fake = tmp_path / "ffmpeg"
    fake.write_text(
        "#!/bin/sh\n"
        'case "$*" in\n'
        '  *-version*) echo "ffmpeg version 0.0-fake";;\n'
        '  *-encoders*) echo " V....D libx264 H.264"; echo " A....D aac AAC";;\n'
        '  *) echo "clip.mp4: Invalid data found when processing input" >&2; exit 1;;\n'
        "esac\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("QFARM_FFMPEG", str(fake))
    with pytest.raises(InvalidRequest, match=r"ffmpeg 0\.0-fake cannot read .*: .*Invalid data"):
        TRANSCODE.validate({"input": str(source), "preset": "h264"})
