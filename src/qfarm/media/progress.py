"""Progress of tools that say how far they are only in files (ffmpeg's -progress file, a
renderer's finished frames), read while they run and reported as a fraction of a segment."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

PROGRESS_POLL_SECONDS = 0.5


@contextlib.contextmanager
def reporting_progress(
    measure: Callable[[], float | None],
    report: Callable[[float], None],
    poll: float = PROGRESS_POLL_SECONDS,
) -> Iterator[None]:
    """While the block runs, report ``measure()`` (a fraction of the segment, or None when
    not known yet) every ``poll`` seconds, when it has grown. For tools that say how far they
    are only in files: ffmpeg's -progress file, a renderer's finished frames."""
    stop = threading.Event()

    def watch() -> None:
        last = -1.0
        while not stop.wait(poll):
            fraction = measure()
            if fraction is not None and fraction > last:
                last = fraction
                report(min(1.0, fraction))

    thread = threading.Thread(target=watch, name="qfarm-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def watch_progress(
    path: Path,
    total: float,
    unit: str,
    report: Callable[[float], None],
    share: tuple[float, float] = (0.0, 1.0),
) -> contextlib.AbstractContextManager[None]:
    """Report progress while ffmpeg runs, from the key=value blocks it writes to ``path``
    with ``-progress``: ``frame=`` against a frame count, or ``out_time_us=`` against
    seconds, as the ``share`` (start, size) of the segment's whole progress.
    """
    path.unlink(missing_ok=True)

    def measure() -> float | None:
        done = read_progress(path, unit)
        if done is None or total <= 0:
            return None
        return share[0] + share[1] * min(1.0, done / total)

    return reporting_progress(measure, report)


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
