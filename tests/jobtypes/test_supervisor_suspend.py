"""Suspend and resume of segment process groups (issue 18), with real processes: a counter
stopped mid-count goes on from where it was, not from the start; a stopped group's timeout
and stall watch leave out the stopped time; a cancel ends a stopped group at once."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import psutil

from qfarm.jobtypes.supervisor import ProcessResult, StallWatch, Supervisor
from tests.helpers import gone, group_stopped, process_group, wait_until_sync


def counter(n: int) -> list[str]:
    return ["sh", "-c", f"i=0; while [ $i -lt {n} ]; do echo $i; i=$((i+1)); sleep 0.1; done"]


def start(
    sup: Supervisor,
    argv: list[str],
    log: Path,
    key: str,
    timeout: float | None = 60.0,
    stall: StallWatch | None = None,
) -> tuple[threading.Thread, list[ProcessResult]]:
    results: list[ProcessResult] = []

    def target() -> None:
        results.append(
            sup.run(key, argv, cwd=None, env=None, log_path=log, timeout=timeout, stall=stall)
        )

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    wait_until_sync(lambda: key in sup.running(), timeout=10, what="process to start")
    return thread, results


def lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def none_stopped(leader: int) -> bool:
    try:
        return all(p.status() != psutil.STATUS_STOPPED for p in process_group(leader))
    except psutil.NoSuchProcess:
        return True


def test_a_suspended_counter_is_continued_not_restarted(tmp_path: Path) -> None:
    sup, log = Supervisor(), tmp_path / "count.log"
    thread, results = start(sup, counter(20), log, "seg-c")
    leader = sup.running()["seg-c"]
    wait_until_sync(lambda: len(lines(log)) >= 3, timeout=10, what="the count to begin")

    assert sup.suspend("seg-c") is True
    assert sup.is_suspended("seg-c")
    wait_until_sync(lambda: group_stopped(leader), timeout=30, what="the group to stop (state T)")
    frozen = lines(log)
    # Stopped, every process of the group: nothing can write. Still so, and the log the same.
    assert group_stopped(leader)
    assert lines(log) == frozen
    assert len(frozen) < 20
    assert thread.is_alive()

    assert sup.resume("seg-c") is True
    assert not sup.is_suspended("seg-c")
    wait_until_sync(lambda: none_stopped(leader), timeout=10, what="the group to go on")
    thread.join(timeout=30)
    [result] = results
    assert result.succeeded()
    # One uninterrupted count from 0: it went on where it was stopped, and was not rerun.
    assert lines(log) == [str(i) for i in range(20)]
    assert sup.suspended_seconds("seg-c") > 0
    sup.forget("seg-c")
    assert sup.suspended_seconds("seg-c") == 0


def test_the_time_suspended_does_not_count_against_the_timeout(tmp_path: Path) -> None:
    sup, log = Supervisor(), tmp_path / "count.log"
    # About 1 s of counting under a 2.5 s timeout, stopped for longer than the timeout.
    thread, results = start(sup, counter(10), log, "seg-t", timeout=2.5)
    wait_until_sync(lambda: len(lines(log)) >= 2, timeout=10, what="the count to begin")
    assert sup.suspend("seg-t")
    wait_until_sync(
        lambda: sup.suspended_seconds("seg-t") >= 3.0, timeout=10, what="3 s spent stopped"
    )
    assert thread.is_alive()  # its timeout did not fire while it was stopped
    assert sup.resume("seg-t")
    thread.join(timeout=30)
    [result] = results
    assert not result.timed_out
    assert result.succeeded()
    assert lines(log) == [str(i) for i in range(10)]


def test_the_time_suspended_does_not_count_as_a_stall(tmp_path: Path) -> None:
    sup, log = Supervisor(), tmp_path / "count.log"
    watch = StallWatch(after=1.0)
    thread, results = start(sup, counter(10), log, "seg-s", timeout=None, stall=watch)
    wait_until_sync(lambda: len(lines(log)) >= 2, timeout=10, what="the count to begin")
    assert sup.suspend("seg-s")
    wait_until_sync(
        lambda: sup.suspended_seconds("seg-s") >= 2.0, timeout=10, what="2 s spent stopped"
    )
    assert thread.is_alive()  # a silent, stopped process is not a stalled one
    assert sup.resume("seg-s")
    thread.join(timeout=30)
    [result] = results
    assert not result.stalled
    assert result.succeeded()


def test_a_stopped_group_ends_on_sigterm_when_killed(tmp_path: Path) -> None:
    sup, log = Supervisor(), tmp_path / "count.log"
    thread, results = start(sup, counter(600), log, "seg-k")
    leader = sup.running()["seg-k"]
    wait_until_sync(lambda: len(lines(log)) >= 1, timeout=10, what="the count to begin")
    members = [p.pid for p in process_group(leader)]
    assert sup.suspend("seg-k")
    wait_until_sync(lambda: group_stopped(leader), timeout=30, what="the group to stop")

    assert sup.kill("seg-k") is True
    thread.join(timeout=30)
    [result] = results
    assert result.killed
    # Ended by the SIGTERM (continued so it could act on it), not by the grace's SIGKILL.
    assert result.exit_code == -signal.SIGTERM
    wait_until_sync(lambda: all(gone(pid) for pid in members), timeout=10, what="group to end")


def test_suspend_all_and_continue_all_reach_every_running_group(tmp_path: Path) -> None:
    sup = Supervisor()
    runs = {key: start(sup, counter(15), tmp_path / f"{key}.log", key) for key in ("a", "b")}
    leaders = sup.running()
    assert sorted(sup.suspend_all()) == ["a", "b"]
    for key in ("a", "b"):
        wait_until_sync(lambda k=key: group_stopped(leaders[k]), timeout=30, what=f"{key} stops")
    assert sorted(sup.continue_all()) == ["a", "b"]
    assert sup.continue_all() == []
    for key, (thread, results) in runs.items():
        thread.join(timeout=30)
        assert results[0].succeeded()
        assert lines(tmp_path / f"{key}.log") == [str(i) for i in range(15)]


def test_suspend_or_resume_of_a_key_not_running_answers_false() -> None:
    sup = Supervisor()
    assert sup.suspend("nothing") is False
    assert sup.resume("nothing") is False
    assert not sup.is_suspended("nothing")


def test_an_attempts_later_processes_get_the_time_it_spent_suspended(tmp_path: Path) -> None:
    """The timeout is the attempt's, across its processes (SegmentContext.remaining): the
    time the first one spent stopped is left to the ones after it."""
    from qfarm.jobtypes.base import SegmentContext

    sup = Supervisor()
    ctx = SegmentContext(key="seg-m", log_path=tmp_path / "m.log", timeout=2.0, supervisor=sup)
    results: list[ProcessResult] = []
    thread = threading.Thread(target=lambda: results.append(ctx.run(counter(5))), daemon=True)
    thread.start()
    wait_until_sync(lambda: "seg-m" in sup.running(), timeout=10, what="process to start")
    assert sup.suspend("seg-m")
    wait_until_sync(lambda: sup.suspended_seconds("seg-m") >= 2.5, timeout=10)
    assert sup.resume("seg-m")
    thread.join(timeout=30)
    assert results[0].succeeded()
    remaining = ctx.remaining()
    assert remaining is not None and remaining > 0  # 2.5 s stopped of a 2 s timeout
    second = ctx.run(["true"])
    assert second.succeeded() and not second.timed_out
