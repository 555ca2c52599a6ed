"""Interlaced pictures that are not flagged as such, found with ffmpeg's ``idet`` filter.

Cameras flag 1080i frames as two fields, and the probe reads that flag; but tapes captured
and files re-wrapped by some tools carry interlaced pictures marked progressive, which a
progressive preset would scale with the fields blended. So a video whose first frame is not
flagged is looked at: ``idet`` compares each frame's fields over its first few hundred frames
(a fraction of a second at 1080p), once per file version, and only at submit time.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from dataclasses import dataclass

# Frames idet looks at: enough for its multi-frame vote to settle, few enough to stay cheap.
IDET_FRAMES = 300
# Interlaced when at least this many frames vote for one field order, twice as many as vote
# progressive and ORDER_MARGIN times as many as vote the other order. Undetermined frames
# (still pictures) vote neither way; progressive pictures with fine moving detail (lavfi's
# testsrc2) vote both orders about evenly (42 TFF, 24 BFF), interlaced ones one order only.
MIN_FIELD_VOTES = 10
ORDER_MARGIN = 4
_MULTI = re.compile(
    r"Multi frame detection: TFF:\s*(\d+)\s+BFF:\s*(\d+)\s+Progressive:\s*(\d+)"
    r"\s+Undetermined:\s*(\d+)"
)


@dataclass(frozen=True)
class FieldReading:
    """idet's multi-frame votes over the frames it saw."""

    tff: int = 0
    bff: int = 0
    progressive: int = 0
    undetermined: int = 0

    @property
    def interlaced(self) -> bool:
        most, other = max(self.tff, self.bff), min(self.tff, self.bff)
        return (
            most >= MIN_FIELD_VOTES and most > 2 * self.progressive and most >= ORDER_MARGIN * other
        )

    @property
    def field_order(self) -> str:
        """``tff`` or ``bff`` (bwdif's parity), ``progressive`` when not interlaced."""
        if not self.interlaced:
            return "progressive"
        return "tff" if self.tff >= self.bff else "bff"


def parse_idet(stderr: str) -> FieldReading:
    """The last multi-frame line of idet's report (ffmpeg may print one per filter graph
    it configured)."""
    found = _MULTI.findall(stderr)
    if not found:
        return FieldReading()
    return FieldReading(*(int(n) for n in found[-1]))


def read_fields(ffmpeg_path: str, path: str) -> FieldReading:
    """idet's reading of ``path``'s first video stream, cached by the file's size and
    modification time. Unreadable files read as no votes: the probe refuses them."""
    stat = os.stat(path)
    return _read_fields(ffmpeg_path, path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _read_fields(ffmpeg_path: str, path: str, size: int, mtime: int) -> FieldReading:
    argv = [ffmpeg_path, "-hide_banner", "-nostdin", "-i", path, "-map", "0:v:0", "-an", "-sn",
            "-dn", "-frames:v", str(IDET_FRAMES), "-vf", "idet", "-f", "null", "-"]  # fmt: skip
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return FieldReading()
    return parse_idet(result.stderr)
