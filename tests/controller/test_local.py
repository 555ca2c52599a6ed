"""The claim of `qfarm run` on a batch: a lock that a live runner holds and a dead one drops."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from qfarm.controller.local import RunLock


def test_a_lock_is_held_once_and_free_after_release(tmp_path: Path) -> None:
    first, second = RunLock(tmp_path / "batch-1.lock"), RunLock(tmp_path / "batch-1.lock")
    assert first.acquire()
    assert not second.acquire()
    first.release()
    assert second.acquire()
    second.release()


def test_a_forked_child_does_not_keep_its_parents_lock(tmp_path: Path) -> None:
    # The embedded cluster forks its workers: a kill -9 of `qfarm run` must free the batch
    # at once, not when the last forked worker notices and ends.
    lock = RunLock(tmp_path / "batch-1.lock")
    assert lock.acquire()
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child only waits to be killed
        os.close(read_end)
        os.write(write_end, b"up")
        signal.pause()
        os._exit(0)
    try:
        os.close(write_end)
        assert os.read(read_end, 2) == b"up"  # the child lives, having forked with the lock
        assert not RunLock(tmp_path / "batch-1.lock").acquire()  # the parent still holds it
        lock.release()  # as the kernel does for a killed `qfarm run`
        again = RunLock(tmp_path / "batch-1.lock")
        assert again.acquire()
        again.release()
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        os.close(read_end)
