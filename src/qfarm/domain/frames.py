"""Frame ranges: ``1-240``, ``1-240x2`` (every second frame), ``1,5,10-20`` and mixes of them.

A frame list is parsed into *runs*: each comma-separated part is one arithmetic run with its own
step. Segments never span two runs, so a segment's ``{start}``, ``{end}`` and ``{step}`` always
describe exactly the frames it holds, whichever renderer reads them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qfarm.domain.errors import InvalidRequest

# More frames than any job renders; a typo like 1-10000000000 must not exhaust memory.
MAX_FRAMES = 1_000_000

_PART = re.compile(r"^(?P<start>\d+)(?:-(?P<end>\d+)(?:x(?P<step>\d+))?)?$")


@dataclass(frozen=True)
class FrameRun:
    """Frames ``start, start+step, ... <= end``."""

    start: int
    end: int
    step: int = 1

    @property
    def frames(self) -> list[int]:
        return list(range(self.start, self.end + 1, self.step))

    def __len__(self) -> int:
        return (self.end - self.start) // self.step + 1


def parse_frames(text: str) -> list[FrameRun]:
    """Parse a frame list; raise :class:`InvalidRequest` naming the bad part."""
    if not text or not text.strip():
        raise InvalidRequest("frame range is empty: use a form like 1-240, 1-240x2 or 1,5,10-20")
    runs: list[FrameRun] = []
    seen: set[int] = set()
    total = 0
    for raw in text.split(","):
        # Spaces may stand around "-" and "x", never inside a number: "1 0" is not 10.
        part = re.sub(r"\s*([-x])\s*", r"\1", raw.strip())
        match = _PART.match(part)
        if not match:
            raise InvalidRequest(
                f"malformed frame range {part or raw!r} in {text!r}: "
                "use a form like 1-240, 1-240x2 or 1,5,10-20"
            )
        start = int(match["start"])
        end = int(match["end"]) if match["end"] is not None else start
        step = int(match["step"]) if match["step"] is not None else 1
        if end < start:
            raise InvalidRequest(f"frame range {part!r} ends before it starts")
        if step < 1:
            raise InvalidRequest(f"frame range {part!r} has a step of 0")
        # Trim the end to the last frame the step reaches, so `end` is a real frame.
        end = start + (end - start) // step * step
        run = FrameRun(start, end, step)
        total += len(run)
        if total > MAX_FRAMES:
            raise InvalidRequest(
                f"frame range {text!r} holds more than {MAX_FRAMES:,} frames, "
                "the most one job takes"
            )
        frames = set(run.frames)
        overlap = seen & frames
        if overlap:
            raise InvalidRequest(f"frame {min(overlap)} appears twice in frame range {text!r}")
        seen |= frames
        runs.append(run)
    return runs


def chunk_runs(runs: list[FrameRun], segment_size: int) -> list[FrameRun]:
    """Cut runs into pieces of at most ``segment_size`` frames, in order."""
    if segment_size < 1:
        raise InvalidRequest(f"segment size must be at least 1, not {segment_size}")
    chunks: list[FrameRun] = []
    for run in runs:
        first = run.start
        while first <= run.end:
            last = min(run.end, first + (segment_size - 1) * run.step)
            chunks.append(FrameRun(first, last, run.step))
            first = last + run.step
    return chunks


def format_run(run: FrameRun) -> str:
    """``1-10``, ``7`` or ``1-19x2``: the form people type."""
    if run.start == run.end:
        return str(run.start)
    if run.step == 1:
        return f"{run.start}-{run.end}"
    return f"{run.start}-{run.end}x{run.step}"
