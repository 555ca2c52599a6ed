"""Bitmap subtitles as DVD and Blu-ray rips carry them, made for tests.

ffmpeg encodes bitmap subtitles only from bitmaps (never from text), and no bitmap source
ships with it, so this writes a PGS stream (a Blu-ray ``.sup``: display sets of
presentation, window, palette and object segments) of its own; ffmpeg then copies it as
``hdmv_pgs_subtitle`` and encodes it into VobSub (``dvd_subtitle``) or DVB.
"""

from __future__ import annotations

import struct
import subprocess
from collections.abc import Sequence
from pathlib import Path

from qfarm.media.tool import ffmpeg

# Two subtitles, (start, end) in seconds, as in the text-subtitle sources.
EVENTS = ((0.5, 1.5), (2.0, 3.0))


def _segment(kind: int, at: float, data: bytes) -> bytes:
    ticks = round(at * 90000)
    return b"PG" + struct.pack(">IIBH", ticks, ticks, kind, len(data)) + data


def _rle(rows: Sequence[Sequence[int]]) -> bytes:
    """PGS's run-length coding of palette indexes, a line at a time."""
    out = bytearray()
    for row in rows:
        x = 0
        while x < len(row):
            colour, run = row[x], 1
            while x + run < len(row) and row[x + run] == colour and run < 16383:
                run += 1
            if colour and run < 3:
                out += bytes([colour]) * run
            elif not colour:
                out += bytes([0, run]) if run < 64 else bytes([0, 0x40 | run >> 8, run & 0xFF])
            elif run < 64:
                out += bytes([0, 0x80 | run, colour])
            else:
                out += bytes([0, 0xC0 | run >> 8, run & 0xFF, colour])
            x += run
        out += b"\x00\x00"
    return bytes(out)


def write_sup(path: Path, size: tuple[int, int], events: Sequence[tuple[float, float]]) -> Path:
    """A PGS file: each event a boxed, striped bitmap shown at start and cleared at end."""
    screen_w, screen_h = size
    out = bytearray()
    number = 0
    for event, (start, end) in enumerate(events):
        w, h = 96, 16
        x, y = (screen_w - w) // 2, screen_h - h - 10
        rows = [
            [2 if r in (0, h - 1) or c in (0, w - 1) else (c // 8 + event) % 2 for c in range(w)]
            for r in range(h)
        ]
        rle = _rle(rows)
        window = struct.pack(">BBHHHH", 1, 0, x, y, w, h)
        shown = struct.pack(">HHBHBBBB", screen_w, screen_h, 0x10, number, 0x80, 0, 0, 1)
        out += _segment(0x16, start, shown + struct.pack(">HBBHH", 0, 0, 0, x, y))
        out += _segment(0x17, start, window)
        palette = bytes([0, 0, 1, 235, 128, 128, 255, 2, 16, 128, 128, 255])
        out += _segment(0x14, start, palette)
        body = struct.pack(">HH", w, h) + rle
        header = struct.pack(">HBB", 0, 0, 0xC0) + len(body).to_bytes(3, "big")
        out += _segment(0x15, start, header + body)
        out += _segment(0x80, start, b"")
        cleared = struct.pack(">HHBHBBBB", screen_w, screen_h, 0x10, number + 1, 0, 0, 0, 0)
        out += _segment(0x16, end, cleared)
        out += _segment(0x17, end, window)
        out += _segment(0x80, end, b"")
        number += 2
    path.write_bytes(bytes(out))
    return path


def make_bitmap_subtitled(path: Path) -> Path:
    """A disc rip in Matroska: 4 s of 320x180 H.264 and mono AAC, a VobSub stream (English,
    default and forced, as a DVD's forced subtitles are flagged) and a PGS stream (French),
    both with the same two subtitles."""
    sup = write_sup(path.with_suffix(".sup"), (320, 180), EVENTS)
    subprocess.run(
        [ffmpeg().path, "-hide_banner", "-v", "error", "-y", "-copyts",
         "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=4",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=4",
         "-fix_sub_duration", "-i", str(sup),
         "-map", "0", "-map", "1", "-map", "2", "-map", "2",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac",
         "-c:s:0", "dvdsub", "-c:s:1", "copy",
         "-metadata:s:s:0", "language=eng", "-disposition:s:0", "default+forced",
         "-metadata:s:s:1", "language=fra", "-disposition:s:1", "0",
         str(path)],
        check=True,
    )  # fmt: skip
    return path
