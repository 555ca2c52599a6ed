"""Process supervision: exit codes, logs, timeouts and kills of whole process groups."""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from qfarm.jobtypes import supervisor as supervisor_module
from qfarm.jobtypes.supervisor import ProcessResult, StallWatch, Supervisor
from tests.helpers import gone, wait_until_sync


def read_pid(path: Path) -> int:
    return int(path.read_text().strip())


def has_pid(path: Path) -> bool:
    try:
        return path.read_text().endswith("\n")
    except FileNotFoundError:
        return False


def shell(script: str) -> list[str]:
    return ["sh", "-c", script]


def run(
    sup: Supervisor,
    argv: list[str],
    tmp_path: Path,
    *,
    key: str = "seg-1",
    env: dict[str, str] | None = None,
    timeout: float | None = 30.0,
    on_start: Callable[[int], None] | None = None,
) -> ProcessResult:
    return sup.run(
        key,
        argv,
        cwd=str(tmp_path),
        env=env,
        log_path=tmp_path / "logs" / f"{key}.log",
        timeout=timeout,
        on_start=on_start,
    )


def start_in_thread(
    sup: Supervisor, argv: list[str], tmp_path: Path, key: str, timeout: float = 30.0
) -> tuple[threading.Thread, list[ProcessResult]]:
    results: list[ProcessResult] = []

    def target() -> None:
        results.append(run(sup, argv, tmp_path, key=key, timeout=timeout))

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, results


# ---------------------------------------------------------------- exit codes


@pytest.mark.parametrize("code", [0, 1, 3, 42])
def test_exit_code_passes_through(tmp_path: Path, code: int) -> None:
    result = run(Supervisor(), shell(f"exit {code}"), tmp_path)

    assert result == ProcessResult(exit_code=code)


def test_process_killed_by_a_signal_reports_the_negative_signal(tmp_path: Path) -> None:
    result = run(Supervisor(), shell("kill -TERM $$"), tmp_path)

    assert result.exit_code == -signal.SIGTERM
    assert not result.killed and not result.timed_out


def test_command_not_found_gives_127_and_names_it(tmp_path: Path) -> None:
    result = run(Supervisor(), ["qfarm-no-such-command-xyz", "arg"], tmp_path)

    assert result.exit_code == 127
    assert "qfarm-no-such-command-xyz" in result.error
    assert not result.killed and not result.timed_out


def test_missing_working_directory_is_reported_as_such(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"

    result = Supervisor().run(
        "seg-1",
        ["sh", "-c", "exit 0"],
        cwd=str(missing),
        env=None,
        log_path=tmp_path / "seg.log",
        timeout=30.0,
    )

    assert result.exit_code != 0
    assert str(missing) in result.error
    assert "command not found" not in result.error


def test_env_is_added_to_the_inherited_environment(tmp_path: Path) -> None:
    out = tmp_path / "env.txt"
    script = f'printf "%s|%s" "$QFARM_TEST_VAR" "${{PATH:+has-path}}" > {out}'

    result = run(Supervisor(), shell(script), tmp_path, env={"QFARM_TEST_VAR": "hello"})

    assert result.exit_code == 0
    assert out.read_text() == "hello|has-path"


# ---------------------------------------------------------------------- logs


def test_stdout_and_stderr_both_land_in_the_log(tmp_path: Path) -> None:
    result = run(Supervisor(), shell("echo to-stdout; echo to-stderr >&2; exit 2"), tmp_path)

    assert result.exit_code == 2
    log = (tmp_path / "logs" / "seg-1.log").read_text()
    assert "to-stdout" in log
    assert "to-stderr" in log


def test_log_is_appended_to_and_its_directory_created(tmp_path: Path) -> None:
    sup = Supervisor()
    run(sup, ["echo", "first"], tmp_path)
    run(sup, ["echo", "second"], tmp_path)

    assert (tmp_path / "logs" / "seg-1.log").read_text() == "first\nsecond\n"


# ------------------------------------------------------------------ timeouts


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    child_file = tmp_path / "child.pid"
    leader_pids: list[int] = []

    result = run(
        Supervisor(),
        shell(f"sleep 300 & echo $! > {child_file}; wait"),
        tmp_path,
        timeout=2.0,
        on_start=leader_pids.append,
    )

    assert result.timed_out
    assert not result.killed
    assert result.exit_code < 0
    [leader] = leader_pids
    assert has_pid(child_file), "the shell did not start its child before the timeout"
    child = read_pid(child_file)
    wait_until_sync(lambda: gone(leader) and gone(child), timeout=10, what="group to end")


def test_timeout_does_not_wait_the_kill_grace_for_a_group_that_ends_on_sigterm(
    tmp_path: Path,
) -> None:
    started = time.monotonic()

    result = run(Supervisor(), ["sleep", "300"], tmp_path, timeout=0.5)

    elapsed = time.monotonic() - started
    assert result.timed_out
    assert result.exit_code == -signal.SIGTERM
    assert elapsed < 0.5 + supervisor_module.KILL_GRACE_SECONDS * 0.75


def test_background_child_of_a_finished_leader_is_killed(tmp_path: Path) -> None:
    child_file = tmp_path / "child.pid"

    # The leader exits at once, leaving a background child behind in its group.
    result = run(Supervisor(), shell(f"sleep 300 & echo $! > {child_file}"), tmp_path)

    assert result == ProcessResult(exit_code=0)
    child = read_pid(child_file)
    wait_until_sync(lambda: gone(child), timeout=10, what="left-behind child to end")


# --------------------------------------------------------------------- kills


def test_kill_from_another_thread_ends_the_running_group(tmp_path: Path) -> None:
    sup = Supervisor()
    child_file = tmp_path / "child.pid"
    thread, results = start_in_thread(
        sup, shell(f"sleep 300 & echo $! > {child_file}; wait"), tmp_path, key="seg-k"
    )
    wait_until_sync(lambda: "seg-k" in sup.running(), timeout=10, what="process to start")
    leader = sup.running()["seg-k"]
    wait_until_sync(lambda: has_pid(child_file), timeout=10, what="child to start")
    child = read_pid(child_file)

    assert sup.kill("seg-k") is True

    thread.join(timeout=20)
    assert not thread.is_alive()
    [result] = results
    assert result.killed
    assert not result.timed_out
    assert result.exit_code < 0
    assert "seg-k" not in sup.running()
    wait_until_sync(lambda: gone(leader) and gone(child), timeout=10, what="group to end")


def test_kill_of_a_key_that_is_not_running_returns_false() -> None:
    assert Supervisor().kill("nothing-here") is False


def test_kill_before_run_makes_run_return_killed_without_starting(tmp_path: Path) -> None:
    sup = Supervisor()
    marker = tmp_path / "started"
    sup.kill("seg-early")

    result = run(sup, ["touch", str(marker)], tmp_path, key="seg-early")

    assert result.killed
    assert result.exit_code == -signal.SIGKILL
    assert not marker.exists()
    assert not (tmp_path / "logs" / "seg-early.log").exists()


def test_forget_lets_a_killed_key_run_again(tmp_path: Path) -> None:
    sup = Supervisor()
    sup.kill("seg-1")
    sup.forget("seg-1")

    assert run(sup, ["true"], tmp_path, key="seg-1") == ProcessResult(exit_code=0)


def test_kill_of_one_key_leaves_other_keys_alone(tmp_path: Path) -> None:
    sup = Supervisor()
    sup.kill("seg-other")

    assert run(sup, ["true"], tmp_path, key="seg-1") == ProcessResult(exit_code=0)


def test_kill_while_the_process_is_being_started_ends_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sup = Supervisor()
    real_popen = subprocess.Popen

    killer = threading.Thread(target=sup.kill, args=("seg-race",))

    def popen_with_a_kill_in_between(*args: object, **kwargs: object) -> object:
        # Another thread kills while run() is starting the process. Whether the kill lands
        # before the process is registered or after, it must end it.
        killer.start()
        return real_popen(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(supervisor_module.subprocess, "Popen", popen_with_a_kill_in_between)

    result = run(sup, ["sleep", "300"], tmp_path, key="seg-race", timeout=1.0)

    killer.join(timeout=10)
    assert result.killed
    assert not result.timed_out


# ----------------------------------------------------------- start reports


def test_on_start_gets_the_pid_of_a_process_that_keeps_running(tmp_path: Path) -> None:
    sup = Supervisor()
    go = tmp_path / "go"
    pid_file = tmp_path / "leader.pid"
    seen: list[tuple[int, dict[str, int]]] = []

    def on_start(pid: int) -> None:
        seen.append((pid, sup.running()))
        go.touch()  # lets the process finish: it only ends once it was reported

    script = f"echo $$ > {pid_file}; while [ ! -e {go} ]; do sleep 0.01; done"
    result = run(sup, shell(script), tmp_path, key="seg-s", timeout=20.0, on_start=on_start)

    assert result == ProcessResult(exit_code=0)
    [(pid, running)] = seen
    assert pid == read_pid(pid_file)
    assert running == {"seg-s": pid}
    assert sup.running() == {}


def test_on_start_is_not_called_for_a_process_that_exits_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A generous delay, so that a slow machine cannot make "at once" look long-running.
    monkeypatch.setattr(supervisor_module, "START_REPORT_DELAY", 5.0)
    seen: list[int] = []

    started = time.monotonic()
    result = run(Supervisor(), ["true"], tmp_path, on_start=seen.append)

    assert result == ProcessResult(exit_code=0)
    assert seen == []
    assert time.monotonic() - started < 5.0


# ------------------------------------------------------------------ running


def test_running_lists_a_running_key_with_its_leader_pid(tmp_path: Path) -> None:
    sup = Supervisor()
    pid_file = tmp_path / "leader.pid"
    thread, results = start_in_thread(
        sup, shell(f"echo $$ > {pid_file}; exec sleep 300"), tmp_path, key="seg-r"
    )
    wait_until_sync(lambda: "seg-r" in sup.running(), timeout=10, what="process to start")
    wait_until_sync(lambda: has_pid(pid_file), timeout=10, what="pid file")

    assert sup.running() == {"seg-r": read_pid(pid_file)}

    assert sup.kill_all() == 1
    thread.join(timeout=20)
    assert not thread.is_alive()
    assert results[0].killed
    assert sup.running() == {}


def test_kills_of_finished_segments_are_not_kept_forever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(supervisor_module, "KILLED_KEYS_KEPT", 3)
    sup = Supervisor()
    for i in range(5):
        assert sup.kill(f"late-{i}") is False  # nothing runs under these keys any more
    # Only the newest three are remembered: an old key may run again.
    assert not run(sup, ["true"], tmp_path, key="late-0").killed
    assert run(sup, ["true"], tmp_path, key="late-4").killed


# ---------------------------------------------------------------- stalls


def test_a_process_that_stops_writing_is_ended_as_stalled(tmp_path: Path) -> None:
    child_file = tmp_path / "child.pid"
    watch = StallWatch(1.0)
    result = Supervisor().run(
        "seg-1",
        shell(f"echo one; echo two; sleep 300 & echo $! > {child_file}; wait"),
        cwd=str(tmp_path),
        env=None,
        log_path=tmp_path / "seg.log",
        timeout=60.0,
        stall=watch,
    )
    assert result.stalled and not result.timed_out and not result.killed
    assert not result.succeeded()
    assert (tmp_path / "seg.log").read_text() == "one\ntwo\n"  # its log is kept
    wait_until_sync(lambda: gone(read_pid(child_file)), timeout=10, what="group to end")


def test_a_process_that_keeps_writing_is_not_stalled(tmp_path: Path) -> None:
    # Each line comes well within the stall timeout, the whole run takes longer than it.
    result = Supervisor().run(
        "seg-1",
        shell("for i in 1 2 3 4 5 6 7 8 9 10; do echo $i; sleep 0.25; done"),
        cwd=str(tmp_path),
        env=None,
        log_path=tmp_path / "seg.log",
        timeout=60.0,
        stall=StallWatch(1.5),
    )
    assert result.succeeded(), result
    assert (tmp_path / "seg.log").read_text().split() == [str(i) for i in range(1, 11)]


def test_progress_reports_count_only_when_they_move() -> None:
    watch = StallWatch(60.0)
    watch.last = 0.0  # long ago
    watch.progressed(0.0)
    moved = watch.last
    assert moved > 0.0
    watch.last = 0.0
    watch.progressed(0.0)  # the same fraction again: no sign of life
    assert watch.last == 0.0
    watch.progressed(0.1)
    assert watch.last > 0.0


def test_a_stalled_process_still_times_out_at_its_wall_clock_limit(tmp_path: Path) -> None:
    result = Supervisor().run(
        "seg-1",
        shell("sleep 300"),
        cwd=str(tmp_path),
        env=None,
        log_path=tmp_path / "seg.log",
        timeout=1.0,
        stall=StallWatch(120.0),
    )
    assert result.timed_out and not result.stalled


# ---------------------------------------------------------------- waiting for the end


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "without-pidfd"])
def test_the_end_of_a_process_is_waited_for_with_and_without_a_pidfd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pidfd: bool
) -> None:
    if not pidfd:  # another system, or a sandbox that refuses the call: Popen's own wait

        def refused(pid: int, flags: int = 0) -> int:
            raise PermissionError("pidfd_open refused")

        monkeypatch.setattr(supervisor_module.os, "pidfd_open", refused, raising=False)
    # Ends before the start report, and after it under a timeout (the polled wait).
    assert run(Supervisor(), shell("exit 4"), tmp_path).exit_code == 4
    assert run(Supervisor(), shell("sleep 0.2; exit 5"), tmp_path, timeout=30).exit_code == 5
    proc = subprocess.Popen(["sleep", "30"])
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            supervisor_module._wait_for_exit(proc, 0.05)
        proc.kill()
        assert supervisor_module._wait_for_exit(proc, 30) == -signal.SIGKILL
        # Reaped already: the code it ended with, at once.
        assert supervisor_module._wait_for_exit(proc, 30) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()
