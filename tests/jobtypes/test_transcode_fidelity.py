"""Transcodes keep what users' files carry: every audio sample, the audio-to-video offset
across seams, the H.264 level plain ffmpeg gives, and (in the streams section) every
track, subtitle, chapter, timecode and colour tag.

Each source is made by ffmpeg's lavfi, shaped like a file a user hands the farm, encoded
split (segments of about 1.3 s) and in one piece on a real embedded cluster in one batch,
and compared with plain ffmpeg run on the whole file.
"""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from qfarm.media.probe import MediaInfo, probe
from qfarm.media.tool import ffmpeg
from qfarm.model import BatchRequest, BatchState, JobRequest
from tests.helpers import embedded
from tests.media.markers import make_sync_source, read_markers

SYNC_TOLERANCE = 0.001  # seconds: what issue 14 asks of split outputs
PRESET_ARGS = {
    # What each built-in preset asks of ffmpeg, for the plain runs compared against.
    "h264": ["-c:v", "libx264", "-preset", "medium", "-crf", "20", "-pix_fmt", "yuv420p",
             "-c:a", "aac", "-b:a", "192k"],
    "prores-422": ["-c:v", "prores_ks", "-pix_fmt", "yuv422p10le", "-profile:v", "2",
                   "-vendor", "apl0", "-c:a", "pcm_s16le"],
    "vp9": ["-c:v", "libvpx-vp9", "-crf", "32", "-pix_fmt", "yuv420p", "-b:v", "0",
            "-row-mt", "1", "-deadline", "good", "-cpu-used", "4", "-c:a", "libopus",
            "-b:a", "128k"],
}  # fmt: skip
EXTENSIONS = {"h264": ".mp4", "prores-422": ".mov", "vp9": ".webm"}


@dataclass(frozen=True)
class Source:
    name: str
    make: Any  # (path) -> path
    preset: str = "h264"
    suffix: str = ".mp4"
    spec: dict[str, Any] = field(default_factory=dict)


def _run(*args: str) -> None:
    subprocess.run([ffmpeg().path, "-hide_banner", "-v", "error", "-y", *args], check=True)


def _pcm_mov(path: Path) -> Path:
    """4 s of 48 kHz PCM: 192,000 samples exactly, as a MOV master holds them."""
    _run("-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=4",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=4",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le", str(path))  # fmt: skip
    return path


def _720p(path: Path) -> Path:
    """720p25 H.264 (Level 3.1 from plain ffmpeg), 3 s, no audio."""
    _run("-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25:duration=3",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path))  # fmt: skip
    return path


SOURCES = [
    Source("sync", lambda p: make_sync_source(p)),
    Source("sync-late-video", lambda p: make_sync_source(p, video_delay=0.5, rate="30")),
    Source("sync-webm", lambda p: make_sync_source(p), preset="vp9"),
    Source("pcm-prores", _pcm_mov, preset="prores-422", suffix=".mov"),
    Source("pcm-h264", _pcm_mov, suffix=".mov"),
    Source("720p", _720p),
]


@dataclass(frozen=True)
class Outputs:
    source: Path
    split: Path
    whole: Path
    plain: Path


@pytest.fixture(scope="module")
def outputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outputs]:
    root = tmp_path_factory.mktemp("fidelity")
    jobs: list[JobRequest] = []
    found: dict[str, Outputs] = {}
    for src in SOURCES:
        source = src.make(root / f"{src.name}{src.suffix}")
        ext = EXTENSIONS[src.preset]
        paths = Outputs(
            source, *(root / f"{src.name}-{k}{ext}" for k in ("split", "whole", "plain"))
        )
        for kind, seconds in (("split", 1.3), ("whole", 1000)):
            spec = {"input": str(source), "preset": src.preset, "segment_seconds": seconds,
                    "output": str(getattr(paths, kind)), **src.spec}  # fmt: skip
            jobs.append(JobRequest("transcode", spec, name=f"{src.name} {kind}", retries=0))
        _run("-i", str(source), *PRESET_ARGS[src.preset], str(paths.plain))
        found[src.name] = paths

    async def scenario() -> None:
        farm = root / "farm"
        farm.mkdir()
        async with embedded(farm, nodes=2, services={"transcode": 1}) as controller:
            batch_id = controller.submit(BatchRequest(jobs=tuple(jobs), name="fidelity"))
            batch = await asyncio.wait_for(controller.wait(batch_id), 240)
            errors = [(s.label, s.error) for s in controller.store.segments(batch_id) if s.error]
            assert batch.state is BatchState.DONE, errors

    asyncio.run(scenario())
    return found


def _sync_cases() -> list[str]:
    return [s.name for s in SOURCES if s.name.startswith("sync")]


@pytest.mark.parametrize("name", _sync_cases())
def test_split_output_keeps_the_sources_audio_to_video_offset(
    outputs: dict[str, Outputs], name: str
) -> None:
    """Each flash and its beep stay together within 1 ms, split or not, as in the source and
    in plain ffmpeg's output; a source whose video starts late keeps its lead-in."""
    paths = outputs[name]
    source = read_markers(paths.source)
    assert len(source.flashes) == 3
    for path in (paths.split, paths.whole, paths.plain):
        got = read_markers(path)
        assert got.flashes == pytest.approx(source.flashes, abs=SYNC_TOLERANCE)
        assert got.beeps == pytest.approx(source.beeps, abs=SYNC_TOLERANCE), path.name
    src, split = probe(str(paths.source)), probe(str(paths.split))
    assert src.video and split.video
    assert split.video.start_seconds == pytest.approx(src.video.start_seconds, abs=1e-3)


def test_late_video_keeps_its_half_second_lead_in(outputs: dict[str, Outputs]) -> None:
    paths = outputs["sync-late-video"]
    for path in (paths.source, paths.split, paths.whole):
        info = probe(str(path))
        assert info.video and info.audio
        assert info.video.start_seconds - info.audio.start_seconds == pytest.approx(0.5, abs=1e-3)


def _samples(info: MediaInfo) -> int:
    assert info.audio is not None
    return info.audio.samples


@pytest.mark.parametrize("name", ["sync", "sync-webm", "pcm-prores", "pcm-h264"])
def test_no_audio_sample_is_lost(outputs: dict[str, Outputs], name: str) -> None:
    """The split output holds every sample the source presents: as many as plain ffmpeg's
    output within the last codec frame the encoder pads, exactly for PCM to PCM."""
    paths = outputs[name]
    source, split, whole, plain = (
        _samples(probe(str(p))) for p in (paths.source, paths.split, paths.whole, paths.plain)
    )
    assert source == 192000
    if name == "pcm-prores":
        assert split == whole == plain == source
    else:
        frame = 1024 if name != "sync-webm" else 960
        assert source <= split <= source + 2 * frame
        assert abs(split - plain) <= frame


@pytest.mark.parametrize("name", ["720p", "sync", "pcm-h264"])
def test_split_h264_has_the_level_plain_ffmpeg_gives(
    outputs: dict[str, Outputs], name: str
) -> None:
    paths = outputs[name]
    split, whole, plain = (probe(str(p)).video for p in (paths.split, paths.whole, paths.plain))
    assert split and whole and plain
    assert split.level == whole.level == plain.level
    if name == "720p":
        assert split.level == 31
