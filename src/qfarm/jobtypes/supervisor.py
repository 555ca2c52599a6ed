"""Process supervision on a service node: start, watch, time out and kill segment processes.

Every process starts in a new session, so it leads its own process group and a kill reaches
the whole tree it spawned (``sh -c`` and whatever that started), not only the direct child.
The supervisor keeps the running groups by segment key, which is how a cancel from the
controller finds them; it runs inside the Dask worker process, so the key table is per node.

A key's group can also be suspended (SIGSTOP) and continued (SIGCONT) where it was: a batch
paused with ``--suspend``, or a node whose schedule ends. Time spent stopped counts neither
against the attempt's wall-clock timeout nor against its stall watch.
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

# How long a process group gets between SIGTERM and SIGKILL.
KILL_GRACE_SECONDS = 2.0
# How many killed segment keys a node remembers (see Supervisor.kill).
KILLED_KEYS_KEPT = 10_000
# A process is reported as started once it has run this long (see Supervisor._wait).
START_REPORT_DELAY = 0.05
# Where a node's supervisor records the process groups it runs, one file each, so that
# `qfarm node` can end them if the worker process dies under them (see reap_leftovers).
RECORD_DIR_ENV = "QFARM_NODE_RECORDS"
# How often a process under a stall watch is looked at (its log's size, its progress).
STALL_POLL_SECONDS = 0.5

# Held while this process starts a child, by every part of a node that starts one in a
# thread of its own (the supervisor, openjd sessions). A child forked while another thread
# has a freshly written script open for writing holds a copy of that file until it execs,
# and the script's own start then fails with ETXTBSY ("Text file busy"): openjd-sessions
# writes each action's script and starts it in one call, which is made under this lock.
PROCESS_STARTS = threading.Lock()


@dataclass
class StallWatch:
    """When a segment attempt last showed it was getting on: a progress report that moved,
    or more output in its log. One per attempt, across the processes it runs (a transcode
    runs several), so a stall is measured from the attempt's last sign of life.

    A hung renderer or a decoder waiting forever on a broken network share uses no CPU and
    writes nothing; only the wall-clock timeout would end it, hours later. ``after`` seconds
    of nothing end it instead, and the segment goes to another node.
    """

    after: float  # seconds without a sign of progress that count as a stall
    last: float = field(default_factory=time.monotonic)
    _fraction: float = -1.0
    _log_size: int = -1

    def progressed(self, fraction: float) -> None:
        """A progress report: only one that moves counts (some tools repeat theirs)."""
        if fraction > self._fraction:
            self._fraction = fraction
            self.last = time.monotonic()

    def looked_at(self, log_path: Path) -> bool:
        """Note whether the log grew; True when the attempt has now stalled."""
        try:
            size = log_path.stat().st_size
        except OSError:
            size = self._log_size
        if size != self._log_size:
            self._log_size = size
            self.last = time.monotonic()
        return time.monotonic() - self.last >= self.after

    def hold(self) -> None:
        """The attempt is suspended: a stopped process cannot show progress, so the
        silence of its stopped time does not count (``last`` moves on with it)."""
        self.last = time.monotonic()


class _Stalled(Exception):
    pass


@dataclass(frozen=True)
class ProcessResult:
    exit_code: int
    timed_out: bool = False
    killed: bool = False  # ended by a cancel
    error: str = ""  # the process could not start
    stalled: bool = False  # ended by its stall watch: no progress for too long

    def succeeded(self, ok_exit: Collection[int] = (0,)) -> bool:
        """It ran to its end by itself, with an exit code that means success."""
        return (
            not (self.error or self.killed or self.timed_out or self.stalled)
            and self.exit_code in ok_exit
        )


class Supervisor:
    """Runs processes in their own groups and can end them by segment key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[str, subprocess.Popen[bytes]] = {}
        # Keys killed, oldest first. A kill can come for a segment that already reported
        # (its forget() came first), so the record is bounded rather than left to grow.
        self._killed: dict[str, None] = {}
        # Keys whose groups are stopped now, with when they were stopped (monotonic), and
        # the seconds each key spent stopped in its earlier spells: what its timeout and
        # stall watch leave out. Dropped by forget(), when the attempt has reported.
        self._suspended: dict[str, float] = {}
        self._suspended_before: dict[str, float] = {}

    def run(
        self,
        key: str,
        argv: Sequence[str],
        *,
        cwd: str | None,
        env: Mapping[str, str] | None,
        log_path: Path,
        timeout: float | None,
        on_start: Callable[[int], None] | None = None,
        stall: StallWatch | None = None,
    ) -> ProcessResult:
        """Run ``argv`` to the end, appending its stdout and stderr to ``log_path``; with
        ``stall``, end it when it shows no progress for ``stall.after`` seconds."""
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        with self._lock:
            if key in self._killed:  # canceled before it began: leave no trace
                return ProcessResult(exit_code=-signal.SIGKILL, killed=True)
        if cwd is not None and not os.path.isdir(cwd):
            return ProcessResult(
                exit_code=127, error=f"working directory {cwd} does not exist on this node"
            )
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            # Start and register under the lock, so a kill that comes meanwhile either
            # stops the start or finds the process.
            with self._lock:
                if key in self._killed:
                    return ProcessResult(exit_code=-signal.SIGKILL, killed=True)
                try:
                    with PROCESS_STARTS:
                        proc = subprocess.Popen(
                            list(argv),
                            cwd=cwd,
                            env=full_env,
                            stdin=subprocess.DEVNULL,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                            start_new_session=True,
                        )
                except FileNotFoundError:
                    return ProcessResult(exit_code=127, error=f"command not found: {argv[0]}")
                except PermissionError:
                    return ProcessResult(exit_code=126, error=f"command not executable: {argv[0]}")
                except OSError as exc:
                    return ProcessResult(exit_code=126, error=f"cannot start {argv[0]}: {exc}")
                self._running[key] = proc
                if key in self._suspended:
                    # The attempt is suspended between two of its processes: the next one
                    # stops at once too, and goes on when the attempt is continued.
                    _signal_group(proc.pid, signal.SIGSTOP)
            record = None
            try:
                record = _record(key, proc.pid)
                try:
                    code = self._wait(key, proc, timeout, on_start, stall, log_path)
                except subprocess.TimeoutExpired:
                    self._end_group(proc)
                    return ProcessResult(exit_code=proc.wait(), timed_out=True)
                except _Stalled:
                    self._end_group(proc)
                    return ProcessResult(exit_code=proc.wait(), stalled=True)
            finally:
                with self._lock:
                    self._running.pop(key, None)
                # Whatever the leader did, leave nothing of its group behind.
                _signal_group(proc.pid, signal.SIGKILL)
                if record is not None:
                    record.unlink(missing_ok=True)
        with self._lock:
            killed = key in self._killed
        return ProcessResult(exit_code=code, killed=killed)

    def _wait(
        self,
        key: str,
        proc: subprocess.Popen[bytes],
        timeout: float | None,
        on_start: Callable[[int], None] | None,
        stall: StallWatch | None = None,
        log_path: Path | None = None,
    ) -> int:
        """Wait for the process; report its start only if it outlives START_REPORT_DELAY.

        A process that ends sooner is reported by its end alone, which halves the messages
        a farm of very short segments sends. Raises subprocess.TimeoutExpired past
        ``timeout``, and _Stalled when ``stall`` says it stalled; the time ``key`` spends
        suspended counts towards neither.
        """
        began = time.monotonic()
        stopped_before = self.suspended_seconds(key)

        def used() -> float:
            return time.monotonic() - began - (self.suspended_seconds(key) - stopped_before)

        first = START_REPORT_DELAY if timeout is None else min(START_REPORT_DELAY, timeout)
        try:
            return _wait_for_exit(proc, first)
        except subprocess.TimeoutExpired:
            if timeout is not None and used() >= timeout:
                raise
        if on_start is not None:
            on_start(proc.pid)
        watched = stall is not None and log_path is not None
        if timeout is None and not watched:
            return proc.wait()
        while True:
            # Polled, not one long wait: a suspend moves the deadline on while it lasts.
            rest = None if timeout is None else timeout - used()
            if rest is not None and rest <= 0:
                raise subprocess.TimeoutExpired(proc.args, timeout or 0.0)
            try:
                return _wait_for_exit(
                    proc, STALL_POLL_SECONDS if rest is None else min(rest, STALL_POLL_SECONDS)
                )
            except subprocess.TimeoutExpired:
                if stall is None or log_path is None:
                    continue
                if self.is_suspended(key):
                    stall.hold()
                elif stall.looked_at(log_path):
                    raise _Stalled() from None

    def suspend(self, key: str) -> bool:
        """Stop the process group running for ``key`` where it is (SIGSTOP to the group),
        until :meth:`resume`. Returns whether a process was running (and is now stopped);
        a key already suspended stays so and answers True."""
        with self._lock:
            proc = self._running.get(key)
            if proc is None or key in self._killed:
                return False
            self._suspended.setdefault(key, time.monotonic())
        _signal_group(proc.pid, signal.SIGSTOP)
        return True

    def resume(self, key: str) -> bool:
        """Continue a group :meth:`suspend` stopped (SIGCONT), from where it was. Returns
        whether ``key`` was suspended."""
        with self._lock:
            since = self._suspended.pop(key, None)
            if since is None:
                return False
            self._suspended_before[key] = (
                self._suspended_before.get(key, 0.0) + time.monotonic() - since
            )
            proc = self._running.get(key)
        if proc is not None:
            _signal_group(proc.pid, signal.SIGCONT)
        return True

    def is_suspended(self, key: str) -> bool:
        with self._lock:
            return key in self._suspended

    def suspended_seconds(self, key: str) -> float:
        """How long ``key`` has been stopped in all, this spell included: what its timeout
        leaves out (see SegmentContext.remaining)."""
        with self._lock:
            total = self._suspended_before.get(key, 0.0)
            since = self._suspended.get(key)
        return total if since is None else total + time.monotonic() - since

    def suspend_all(self) -> list[str]:
        """Stop every running group (a node whose schedule ends with ``suspend``). Returns
        the keys stopped; :meth:`continue_all` continues them."""
        with self._lock:
            keys = list(self._running)
        return [key for key in keys if self.suspend(key)]

    def continue_all(self) -> list[str]:
        """Continue every suspended group. Returns the keys continued."""
        with self._lock:
            keys = list(self._suspended)
        return [key for key in keys if self.resume(key)]

    def kill(self, key: str) -> bool:
        """End the process group running for ``key``; later runs for it are refused.

        Returns whether a process was running.
        """
        return self.kill_many([key])[0]

    def kill_many(self, keys: Sequence[str]) -> list[bool]:
        """:meth:`kill` of many keys at once: every group is sent its SIGTERM first and
        given one grace period together, so a cancel of fifty segments on a node takes
        the time of one, not fifty. Returns, for each key, whether a process was running."""
        with self._lock:
            procs = []
            for key in keys:
                self._killed[key] = None
                procs.append(self._running.get(key))
            while len(self._killed) > KILLED_KEYS_KEPT:
                del self._killed[next(iter(self._killed))]
        self._end_groups([proc for proc in procs if proc is not None])
        return [proc is not None for proc in procs]

    def forget(self, key: str) -> None:
        """Drop the record that ``key`` was killed or suspended, once its segment has
        reported."""
        with self._lock:
            self._killed.pop(key, None)
            self._suspended.pop(key, None)
            self._suspended_before.pop(key, None)

    def kill_all(self) -> int:
        """End every running group (the worker is going away). Returns how many."""
        with self._lock:
            keys = list(self._running)
        return sum(self.kill_many(keys))

    def running(self) -> dict[str, int]:
        """Segment key -> pid of its process group leader."""
        with self._lock:
            return {key: proc.pid for key, proc in self._running.items()}

    @staticmethod
    def _end_group(proc: subprocess.Popen[bytes]) -> None:
        Supervisor._end_groups([proc])

    @staticmethod
    def _end_groups(procs: Sequence[subprocess.Popen[bytes]]) -> None:
        for proc in procs:
            _signal_group(proc.pid, signal.SIGTERM)
            # A stopped (suspended) group acts on SIGTERM only once continued: continue it
            # after the SIGTERM is pending, so it ends at once rather than running on. A
            # group that runs ignores the SIGCONT.
            _signal_group(proc.pid, signal.SIGCONT)
        deadline = time.monotonic() + KILL_GRACE_SECONDS
        alive = list(procs)
        # poll() reaps the leader when this thread is the one that started it (a timeout);
        # otherwise the thread in wait() does, and poll() returns at once.
        while alive and time.monotonic() < deadline:
            for proc in alive:
                proc.poll()
            alive = [proc for proc in alive if _group_alive(proc.pid)]
            if alive:
                time.sleep(0.02)
        for proc in procs:
            _signal_group(proc.pid, signal.SIGKILL)


def _wait_for_exit(proc: subprocess.Popen[bytes], timeout: float) -> int:
    """``proc.wait(timeout)``, woken by the process's end rather than by polling for it.

    Popen.wait with a timeout looks for the end between sleeps of 0.5 ms, 1, 2, 4 and so on
    up to 50 ms: a segment process that ends after 1 ms is seen about 3.5 ms later, and a
    long one under a timeout is looked at twenty times a second. A pidfd (Linux 5.3) turns
    readable when its process ends, so the wait wakes once, when it does. Where there is no
    pidfd (another system, a sandbox that refuses the call), Popen's own wait.
    """
    if proc.returncode is not None or not hasattr(os, "pidfd_open"):
        return proc.wait(timeout=timeout)
    try:
        fd = os.pidfd_open(proc.pid)
    except OSError:  # reaped already (a kill's poll() in another thread), or refused
        return proc.wait(timeout=timeout)
    try:
        # Reaped by another thread between the two looks: its pid may be another's now.
        code = proc.poll()
        if code is not None:
            return code
        waiter = select.poll()
        waiter.register(fd, select.POLLIN)
        if not waiter.poll(math.ceil(max(0.0, timeout) * 1000)):
            raise subprocess.TimeoutExpired(proc.args, timeout)
    finally:
        os.close(fd)
    return proc.wait()


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _record(key: str, pgid: int) -> Path | None:
    """Note a running process group in the node's record dir, if it has one."""
    folder = os.environ.get(RECORD_DIR_ENV)
    if not folder:
        return None
    path = Path(folder) / f"{key}.pgid"
    try:
        started = psutil.Process(pgid).create_time()
    except psutil.Error:
        started = 0.0
    path.write_text(f"{pgid} {started}\n")
    return path


def reap_leftovers(folder: Path) -> list[int]:
    """End the process groups recorded in ``folder`` by a worker process that is gone.

    A group whose leader still runs is ended only if the leader is the process recorded
    (same start time), so a reused pid is never hit; a group whose leader is gone is ended
    by its id, which the kernel does not reuse while any member of the group lives.
    Returns the groups signalled.
    """
    ended: list[int] = []
    for path in sorted(folder.glob("*.pgid")):
        try:
            pgid_text, started_text = path.read_text().split()
            pgid, started = int(pgid_text), float(started_text)
        except (OSError, ValueError):
            path.unlink(missing_ok=True)
            continue
        try:
            same = abs(psutil.Process(pgid).create_time() - started) < 0.01
        except psutil.NoSuchProcess:
            same = True  # the leader is gone; members may remain under its group id
        except psutil.Error:
            same = False
        if same and _group_alive(pgid):
            _signal_group(pgid, signal.SIGKILL)
            ended.append(pgid)
        path.unlink(missing_ok=True)
    return ended


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


# One per process: the Dask worker process that runs segments.
SUPERVISOR = Supervisor()
