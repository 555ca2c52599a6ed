"""Interlaced pictures whose frames are not flagged (a capture re-wrapped as progressive):
found by idet at submit time, deinterlaced with the field order it reads, and compared with
the true progressive pictures they were made of."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import pytest

from qfarm.domain.model import BatchRequest, BatchState, JobRequest
from qfarm.jobtypes.transcode import TRANSCODE
from qfarm.media import interlace
from qfarm.media.interlace import FieldReading, parse_idet, read_fields
from qfarm.media.probe import probe
from qfarm.media.tool import ffmpeg
from tests.helpers import embedded
from tests.jobtypes.test_transcode import make_source
from tests.jobtypes.test_transcode_fidelity import _frame_psnrs, _true_frames

# Whole transcodes, split and assembled by real ffmpeg: seconds each.
pytestmark = pytest.mark.integration


def _untagged(path: Path, order: str = "top") -> Path:
    """25i from 50p testsrc2 (fields woven ``order`` first), its frames flagged progressive:
    3 s of 320x180."""
    subprocess.run(
        [ffmpeg().path, "-hide_banner", "-v", "error", "-y", "-f", "lavfi",
         "-i", "testsrc2=size=320x180:rate=50:duration=3",
         "-vf", f"tinterlace=mode=interleave_{order},setfield=prog", "-c:v", "libx264",
         "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    return path


def test_idet_votes_are_read_from_its_last_report() -> None:
    stderr = (
        "[Parsed_idet_0 @ 0x1] Multi frame detection: TFF:     0 BFF:     0 Progressive:     0"
        " Undetermined:     0\n"
        "[Parsed_idet_0 @ 0x2] Multi frame detection: TFF:    70 BFF:     2 Progressive:     3"
        " Undetermined:     0\n"
    )
    reading = parse_idet(stderr)
    assert reading == FieldReading(70, 2, 3, 0)
    assert reading.interlaced and reading.field_order == "tff"
    assert not FieldReading(0, 0, 0, 48).interlaced  # a still picture: undetermined
    assert not FieldReading(30, 0, 40, 0).interlaced
    assert FieldReading(1, 40, 0, 0).field_order == "bff"
    assert not FieldReading(42, 24, 9, 0).interlaced  # testsrc2 25p: both orders
    assert parse_idet("no report") == FieldReading()


def test_unflagged_interlaced_sources_are_found_with_their_field_order(tmp_path: Path) -> None:
    top, bottom = _untagged(tmp_path / "top.mp4"), _untagged(tmp_path / "bottom.mp4", "bottom")
    progressive = make_source(tmp_path / "p.mp4", seconds=3, size="320x180", audio=False)
    assert not probe(str(top)).video.interlaced  # type: ignore[union-attr]
    assert read_fields(ffmpeg().path, str(top)).field_order == "tff"
    assert read_fields(ffmpeg().path, str(bottom)).field_order == "bff"
    assert not read_fields(ffmpeg().path, str(progressive)).interlaced
    spec = TRANSCODE.validate({"input": str(top), "preset": "h264"})
    assert (spec["deinterlace"], spec["field_order"]) == (True, "tff")
    assert "deinterlace: on (bwdif, tff fields found by idet)" in TRANSCODE.describe(spec)
    spec = TRANSCODE.validate({"input": str(top), "preset": "h264", "deinterlace": "off"})
    assert (spec["deinterlace"], spec["field_order"]) == (False, None)
    spec = TRANSCODE.validate({"input": str(progressive), "preset": "h264"})
    assert (spec["deinterlace"], spec["field_order"]) == (False, None)
    assert (
        TRANSCODE.validate({"input": str(top), "preset": "remux"})["field_order"] is None
    )  # a remux keeps the fields; idet is not even run


def test_idet_runs_once_per_file_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    top = _untagged(tmp_path / "top.mp4")
    calls: list[list[str]] = []
    real = subprocess.run

    def counting(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        if "idet" in argv:
            calls.append(argv)
        return real(argv, **kwargs)  # type: ignore[call-overload,no-any-return]

    monkeypatch.setattr(subprocess, "run", counting)
    interlace._read_fields.cache_clear()
    for _ in range(3):
        TRANSCODE.validate({"input": str(top), "preset": "h264"})
    assert len(calls) == 1
    assert calls[0][calls[0].index("-frames:v") + 1] == str(interlace.IDET_FRAMES)


def test_unflagged_interlaced_source_is_deinterlaced_split_and_whole(tmp_path: Path) -> None:
    """Split (1.3 s segments) and whole, the output comes closer to the true pictures than
    the same job with deinterlacing off (32.0 dB against 29.7 here), and the seams match."""
    source = _untagged(tmp_path / "top.mp4")
    outputs = {k: tmp_path / f"{k}.mp4" for k in ("split", "whole", "kept")}
    specs: dict[str, dict[str, Any]] = {
        "split": {"segment_seconds": 1.3},
        "whole": {"segment_seconds": 1000},
        "kept": {"segment_seconds": 1000, "deinterlace": "off"},
    }
    jobs = tuple(
        JobRequest("transcode", {"input": str(source), "preset": "h264",
                                 "output": str(outputs[k]), **specs[k]}, name=k, retries=0)
        for k in outputs
    )  # fmt: skip

    async def scenario() -> None:
        farm = tmp_path / "farm"
        farm.mkdir()
        async with embedded(farm, nodes=2, services={"transcode": 1}) as controller:
            batch_id = controller.submit(BatchRequest(jobs=jobs))
            batch = await asyncio.wait_for(controller.wait(batch_id), 120)
            errors = [(s.label, s.error) for s in controller.store.segments(batch_id) if s.error]
            assert batch.state is BatchState.DONE, errors

    asyncio.run(scenario())
    truth = _true_frames(tmp_path / "truth.mp4")
    treated = {k: sum(_frame_psnrs(outputs[k], truth)) / 75 for k in outputs}
    assert treated["split"] > treated["kept"] + 1.5
    assert treated["whole"] > treated["kept"] + 1.5
    assert min(_frame_psnrs(outputs["split"], outputs["whole"])) > 38.0
