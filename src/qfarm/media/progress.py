"""ffmpeg's progress, read while it runs from the key=value blocks it writes with
``-progress FILE``, and reported as a fraction of a segment."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from qfarm.jobtypes.base import SegmentContext

PROGRESS_POLL_SECONDS = 0.5


@contextlib.contextmanager
def watch_progress(
    path: Path,
    total: float,
    unit: str,
    ctx: SegmentContext,
    share: tuple[float, float] = (0.0, 1.0),
) -> Iterator[None]:
    """Report progress while ffmpeg runs, from the key=value blocks it writes to ``path``
    with ``-progress``: ``frame=`` against a frame count, or ``out_time_us=`` against
    seconds, as the ``share`` (start, size) of the segment's whole progress.
    """
    stop = threading.Event()
    path.unlink(missing_ok=True)

    def watch() -> None:
        last = -1.0
        while not stop.wait(PROGRESS_POLL_SECONDS):
            done = read_progress(path, unit)
            if done is None or total <= 0:
                continue
            fraction = share[0] + share[1] * min(1.0, done / total)
            if fraction > last:
                last = fraction
                ctx.on_progress(fraction)

    thread = threading.Thread(target=watch, name=f"progress-{ctx.key}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def read_progress(path: Path, unit: str) -> float | None:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 2048))
            tail = fh.read().decode("ascii", errors="replace")
    except FileNotFoundError:
        return None
    key = "frame=" if unit == "frame" else "out_time_us="
    for line in reversed(tail.splitlines()):
        if line.startswith(key):
            try:
                value = float(line[len(key) :])
            except ValueError:
                return None
            return value if unit == "frame" else value / 1e6
    return None
