"""A node's scratch folder for cluster storage: uploads kept while used, evicted when idle.
(Uploads and outputs across real processes are in tests/test_cluster.py.)"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from qfarm.domain.messages import SegmentTask
from qfarm.node import scratch
from qfarm.node.config import NodeConfig

HOUR = 3600.0


def scratch_upload(root: Path, name: str, idle_for: float) -> Path:
    """An upload already downloaded to the node, last used ``idle_for`` seconds ago."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "clip.mov").write_bytes(b"source")
    (folder / scratch.COMPLETE_MARK).touch()
    mark = folder / scratch.USED_MARK
    mark.touch()
    then = time.time() - idle_for
    os.utime(mark, (then, then))
    return folder


def task(upload: str) -> SegmentTask:
    path = f"/controller/storage/uploads/{upload}"
    return SegmentTask(
        key="qfarm-b1-s1-a1", batch_id=1, job_id=1, segment_id=1, attempt=1,
        job_type="command", job={"storage": {"upload": upload, "path": path}, "cwd": path},
        segment={"outputs": [f"{path}/out.mp4"]}, log_path="/dev/null",
    )  # fmt: skip


def test_idle_uploads_are_evicted_and_recent_or_busy_ones_kept(tmp_path: Path) -> None:
    scratch_upload(tmp_path, "old", idle_for=7 * HOUR)
    scratch_upload(tmp_path, "recent", idle_for=1 * HOUR)
    scratch_upload(tmp_path, "old-but-busy", idle_for=9 * HOUR)
    removed = scratch.evict_idle(tmp_path, keep=6 * HOUR, busy={"old-but-busy"})
    assert removed == ["old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old-but-busy", "recent"]


def test_eviction_of_a_missing_scratch_folder_does_nothing(tmp_path: Path) -> None:
    assert scratch.evict_idle(tmp_path / "none", keep=0, busy=set()) == []


def test_an_upload_in_use_is_never_evicted_and_is_marked_used_after(tmp_path: Path) -> None:
    # A segment that runs longer than the keep time: another job's start must not take
    # its files away.
    held = scratch_upload(tmp_path, "long-render", idle_for=0)
    scratch_upload(tmp_path, "stale", idle_for=scratch.SCRATCH_KEEP_SECONDS + HOUR)
    inside = threading.Event()
    release = threading.Event()

    def long_segment() -> None:
        with scratch.using_upload(task("long-render"), NodeConfig(scratch_root=tmp_path)) as (
            local,
            folder,
        ):
            assert folder == held
            assert local.job["cwd"] == str(held)
            assert local.segment["outputs"] == [str(held / "out.mp4")]
            then = time.time() - scratch.SCRATCH_KEEP_SECONDS - HOUR
            os.utime(held / scratch.USED_MARK, (then, then))  # it has run for hours
            inside.set()
            assert release.wait(30)

    runner = threading.Thread(target=long_segment)
    runner.start()
    try:
        assert inside.wait(30)
        scratch_upload(tmp_path, "next-job", idle_for=0)
        with scratch.using_upload(task("next-job"), NodeConfig(scratch_root=tmp_path)):
            names = sorted(p.name for p in tmp_path.iterdir())
        assert names == ["long-render", "next-job"]  # the stale one went, the held one stayed
    finally:
        release.set()
        runner.join(30)
    age = time.time() - (held / scratch.USED_MARK).stat().st_mtime
    assert age < HOUR  # marked used as the segment ended
