"""The composite job type: an image sequence through scale, a LUT, a logo and a burnt-in
timecode, in segments on a real cluster; the frames are read back pixel by pixel."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import pytest

from qfarm.domain.errors import InvalidRequest
from qfarm.domain.model import BatchRequest, BatchState, JobRequest
from qfarm.jobtypes.composite import COMPOSITE, LOGO_MARGIN
from qfarm.media import timecode
from qfarm.media.tool import ffmpeg
from tests.helpers import embedded

pytestmark = pytest.mark.integration


class Picture:
    """An image's RGB pixels."""

    def __init__(self, path: Path) -> None:
        import av

        with av.open(str(path)) as container:
            frame = next(container.decode(video=0)).reformat(format="rgb24")
        self.width, self.height = frame.width, frame.height
        self.stride = frame.planes[0].line_size
        self.data = bytes(frame.planes[0])

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        at = y * self.stride + 3 * x
        r, g, b = self.data[at : at + 3]
        return r, g, b


def read_timecode(picture: Picture) -> str:
    """The seven-segment display read back: each segment lit or not at its box's centre."""
    layout = timecode.Layout(picture.width, picture.height)
    by_segments = {segments: str(d) for d, segments in timecode.DIGIT_SEGMENTS.items()}
    digits = ""
    for position in range(8):
        lit = "".join(
            name
            for name, (x, y, w, h) in layout.segment_boxes(position).items()
            if sum(picture.pixel(x + w // 2, y + h // 2)) > 600
        )
        digits += by_segments.get(lit, "?")
    return ":".join(digits[i : i + 2] for i in range(0, 8, 2))


def gray_frames(folder: Path, count: int) -> None:
    folder.mkdir(parents=True)
    subprocess.run(
        [ffmpeg().path, "-v", "error", "-y", "-f", "lavfi", "-i",
         f"color=c=0x404040:s=64x48:r=25:d={count / 25}", "-frames:v", str(count),
         str(folder / "plate_%04d.png")],
        check=True,
    )  # fmt: skip


def invert_lut(path: Path) -> Path:
    rows = ["LUT_3D_SIZE 2"]
    for b in (0, 1):
        for g in (0, 1):
            for r in (0, 1):
                rows.append(f"{1 - r}.0 {1 - g}.0 {1 - b}.0")
    path.write_text("\n".join(rows) + "\n")
    return path


def red_logo(path: Path) -> Path:
    subprocess.run(
        [ffmpeg().path, "-v", "error", "-y", "-f", "lavfi", "-i", "color=c=red:s=8x8:d=0.04",
         "-frames:v", "1", str(path)],
        check=True,
    )  # fmt: skip
    return path


def test_composite_scales_grades_overlays_and_burns_in_timecode(tmp_path: Path) -> None:
    gray_frames(tmp_path / "plates", 12)
    spec: dict[str, Any] = {
        "input": "plates/plate_%04d.png",
        "frames": "1-12",
        "segment_size": 5,
        "output": "comp 50%",
        "scale": "192x144",
        # Names with what filter graphs split on: they must still work.
        "lut": str(invert_lut(tmp_path / "invert, v2.cube")),
        "logo": str(red_logo(tmp_path / "logo: v1, 'final'.png")),
        "logo_position": "top-left",
        "timecode": True,
        "timecode_start": "01:00:59:20",
        "rate": 25,
        "cwd": str(tmp_path),
    }
    request = BatchRequest(jobs=(JobRequest("composite", spec, retries=0),))

    async def scenario() -> None:
        async with embedded(tmp_path, nodes=2, services={"transcode": 1}) as controller:
            batch_id = controller.submit(request)
            batch = await asyncio.wait_for(controller.wait(batch_id), 120)
            errors = [s.error for s in controller.store.segments(batch_id) if s.error]
            assert batch.state is BatchState.DONE, errors
            assert len(controller.store.segments(batch_id)) == 3

    asyncio.run(scenario())
    frames = sorted((tmp_path / "comp 50%").iterdir())
    assert [f.name for f in frames] == [f"plate_{n:04d}.png" for n in range(1, 13)]
    first, last = Picture(frames[0]), Picture(frames[-1])
    assert (first.width, first.height) == (192, 144)
    # 0x40 through an inverting LUT is 0xbf, give or take a rounding.
    assert all(abs(c - 0xBF) <= 2 for c in first.pixel(96, 50))
    logo = Picture(tmp_path / "logo: v1, 'final'.png").pixel(4, 4)
    assert logo[0] > 240 and logo[1:] == (0, 0)
    assert first.pixel(LOGO_MARGIN + 4, LOGO_MARGIN + 4) == logo
    # The timecode counts on across segments and rolls over the minute.
    assert read_timecode(first) == "01:00:59:20"
    assert read_timecode(Picture(frames[4])) == "01:00:59:24"
    assert read_timecode(Picture(frames[5])) == "01:01:00:00"
    assert read_timecode(last) == "01:01:00:06"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"frames": "1-3"}, "needs its frames' pattern"),
        ({"input": "p_%04d.png"}, "needs the frame list"),
        ({"input": "p_%04d.png", "frames": "1-3", "scale": "big"}, "not a size"),
        ({"input": "p_%04d.png", "frames": "1-3", "lut": "grade.3dl"}, "not a .cube file"),
        ({"input": "p_%04d.png", "frames": "1-3", "logo": "none.png"}, "does not exist"),
        ({"input": "p_%04d.png", "frames": "1-3", "logo_position": "middle"}, "logo position"),
        ({"input": "p_%04d.png", "frames": "1-3", "timecode": True, "rate": "30000/1001"},
         "whole frame rate"),
        ({"input": "p_%04d.png", "frames": "1-3", "timecode": True,
          "timecode_start": "00:00:00:30", "rate": 25}, "out of range"),
        ({"input": "p_%04d.png", "frames": "1-3", "filter": "[a]split[b]"}, "not a graph"),
    ],
)  # fmt: skip
def test_bad_composite_jobs_are_refused(spec: dict[str, Any], message: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match=message):
        COMPOSITE.validate({**spec, "cwd": str(tmp_path)})
