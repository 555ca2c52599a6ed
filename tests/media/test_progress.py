"""Reading ffmpeg's -progress blocks while it runs."""

from __future__ import annotations

from pathlib import Path

import pytest

from qfarm.jobtypes.base import SegmentContext
from qfarm.media.progress import read_progress, watch_progress
from tests.helpers import wait_until_sync


def test_progress_is_read_from_ffmpegs_progress_blocks(tmp_path: Path) -> None:
    progress = tmp_path / "p"
    assert read_progress(progress, "frame") is None
    progress.write_text(
        "frame=10\nout_time_us=400000\nprogress=continue\n"
        "frame=25\nout_time_us=1000000\nprogress=continue\n"
    )
    assert read_progress(progress, "frame") == 25
    assert read_progress(progress, "time") == pytest.approx(1.0)


def test_progress_watcher_reports_growing_fractions_of_its_share(tmp_path: Path) -> None:
    """While ffmpeg runs, its -progress file is read and reported as a fraction of the
    segment; a second pass reports in the second half."""
    reports: list[float] = []
    ctx = SegmentContext(
        key="k", log_path=tmp_path / "log", timeout=None, on_progress=reports.append
    )
    progress = tmp_path / "progress"
    with watch_progress(progress, 100.0, "frame", ctx.on_progress, share=(0.5, 0.5)):
        progress.write_text("frame=50\nprogress=continue\n")
        wait_until_sync(lambda: reports[-1:] == [0.75], timeout=10, what="a report of frame 50")
        with progress.open("a") as fh:
            fh.write("frame=100\nprogress=end\n")
        wait_until_sync(lambda: reports[-1:] == [1.0], timeout=10, what="a report of frame 100")
    assert reports == sorted(reports)
