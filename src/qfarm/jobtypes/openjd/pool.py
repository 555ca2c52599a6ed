"""The open OpenJD sessions of one node process, kept between the segments of a job.

A session whose environments are entered is worth keeping: the next segment of the same job
on this node runs its task in it without entering them again, and sees what the earlier
tasks exported with ``openjd_env`` (a session is one OpenJD worker's: its actions run one
after another). So a node keeps *one* session per job (per :class:`PoolKey`): a segment
waits for its key's turn (:meth:`SessionPool.acquire`), which goes to the segments waiting
here in segment order, takes the key's session if there is one, and when its task is done
gives it back (:meth:`SessionPool.give_back`) to the next segment of the key waiting here,
or to the pool to keep idle. Two segments of one job that the dispatcher gave this node at
once (a node with two ``openjd`` instances) therefore run one after the other in one
session, not side by side in two: the second waits, its timeout not yet counting.

Sessions are ended (their environments exited) by:

* the segment that is done with its session when the job left none queued at the
  controller (``ctx.job_queued_after == 0``) and no other segment of the key waits here:
  its own session, and every idle session of the job (:meth:`SessionPool.take_job`);
* the pool's reaper thread, for a session idle longer than :func:`idle_seconds` (a node that
  gets no more of the job's segments, the rest having gone to other nodes);
* :meth:`SessionPool.close_all` when the worker process closes (the node runner's
  ``kill_all``, which the worker plugin's teardown calls, and an exit hook of the process).

Nothing here imports openjd-sessions: what the pool holds only needs :class:`Pooled`'s two
members, so the node runner can import this module cheaply.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from multiprocessing import util as mp_util
from typing import Any, Protocol

# How long an idle session is kept, in seconds, when QFARM_OPENJD_IDLE_SECONDS does not say.
IDLE_SECONDS = 30.0
IDLE_ENV = "QFARM_OPENJD_IDLE_SECONDS"
# How often a segment waiting for its job's session looks whether it was canceled meanwhile.
WAIT_POLL_SECONDS = 0.1


def idle_seconds() -> float:
    """How long an idle session waits for another segment of its job before it is ended."""
    raw = os.environ.get(IDLE_ENV, "")
    try:
        return max(0.0, float(raw)) if raw else IDLE_SECONDS
    except ValueError:
        return IDLE_SECONDS


@dataclass(frozen=True)
class PoolKey:
    """Which segments may share a session: those of one job, with the same spec (a job whose
    spec changed, or was path-mapped differently, never reuses a stale session) and the same
    attempt environment (the variables its processes were started with, GPUs say)."""

    job_id: int
    spec: str  # a digest of the job's spec
    environment: tuple[tuple[str, str], ...]

    @classmethod
    def of(cls, job_id: int, job: Mapping[str, Any], environment: Mapping[str, str]) -> PoolKey:
        text = json.dumps(job, sort_keys=True, default=str)
        return cls(
            job_id=job_id,
            spec=hashlib.sha256(text.encode("utf-8")).hexdigest(),
            environment=tuple(sorted(environment.items())),
        )


class Pooled(Protocol):
    """What the pool keeps: a session that can be ended while nobody holds it."""

    key: PoolKey

    def close_idle(self) -> None:
        """Exit the session's environments and end it, its output going to the log of the
        last segment that used it and to the node's session log."""
        ...


@dataclass(frozen=True)
class Turn:
    """What :meth:`SessionPool.acquire` gives a segment: whether it holds its key's turn
    (False: it was stopped while waiting, and gives nothing back), and the key's session
    when one was kept (None: the segment opens one)."""

    held: bool
    session: Pooled | None = None


class SessionPool:
    """Idle sessions by key, whose turn it is, and what the node knows of each job's queue."""

    def __init__(self, idle: float | None = None) -> None:
        self._idle_seconds = idle
        self._cond = threading.Condition()
        self._idle: dict[Pooled, float] = {}  # session -> when it is ended (monotonic)
        self._busy: dict[int, int] = {}  # job id -> segments of it running here
        self._drained: set[int] = set()  # jobs that left nothing queued
        self._holders: dict[PoolKey, str] = {}  # key -> the attempt holding its turn
        self._waiting: dict[PoolKey, list[int]] = {}  # segment orders waiting, lowest first
        self._handed: dict[PoolKey, Pooled] = {}  # sessions given on to the next in line
        self._reaper: threading.Thread | None = None
        self._hooked_pid: int | None = None
        self._closed = False

    @property
    def idle_seconds(self) -> float:
        return idle_seconds() if self._idle_seconds is None else self._idle_seconds

    # ------------------------------------------------------------------ segments

    def begin(self, job_id: int, queued_after: int | None) -> None:
        """A segment of ``job_id`` starts here; ``queued_after`` is how many of its job were
        still queued when it was dispatched (None: not known, so nothing is kept)."""
        with self._cond:
            self._busy[job_id] = self._busy.get(job_id, 0) + 1
            if queued_after is None or queued_after <= 0:
                self._drained.add(job_id)
            else:
                self._drained.discard(job_id)

    def end(self, job_id: int) -> None:
        """The segment that :meth:`begin` counted has ended."""
        with self._cond:
            left = self._busy.get(job_id, 0) - 1
            if left > 0:
                self._busy[job_id] = left
            else:
                self._busy.pop(job_id, None)
                if not any(s.key.job_id == job_id for s in self._idle):
                    self._drained.discard(job_id)

    def drained(self, job_id: int) -> bool:
        """True once a segment of the job left none of it queued: sessions of the job are
        ended, not kept, when their segments end (another node may have the rest)."""
        with self._cond:
            return job_id in self._drained

    def acquire(
        self,
        key: PoolKey,
        holder: str,
        order: int,
        stopped: Callable[[], bool] = lambda: False,
    ) -> Turn:
        """Wait for ``key``'s turn for the attempt ``holder`` (its key): until no segment
        holds it and no segment waiting for it here comes before ``order`` (the segment's
        number in its job), or ``stopped()`` (the segment was canceled meanwhile). The key's
        session comes with the turn when one was kept idle or given on."""
        with self._cond:
            waiting = self._waiting.setdefault(key, [])
            bisect.insort(waiting, order)
            try:
                while key in self._holders or waiting[0] != order:
                    if stopped():
                        return Turn(held=False)
                    self._cond.wait(timeout=WAIT_POLL_SECONDS)
            finally:
                waiting.remove(order)
                if not waiting:
                    del self._waiting[key]
                self._cond.notify_all()
            self._holders[key] = holder
            session = self._handed.pop(key, None)
            if session is None:
                session = next((s for s in self._idle if s.key == key), None)
                if session is not None:
                    del self._idle[session]
            return Turn(held=True, session=session)

    def give_back(self, session: Pooled, holder: str) -> bool:
        """The segment holding ``session.key``'s turn is done with ``session``, whose task
        succeeded: give it to the next segment of the key waiting here, else keep it idle
        unless the job left none queued or the worker is closing. False: nobody keeps it,
        and the caller ends it. The turn is given up either way."""
        key = session.key
        with self._cond:
            if self._holders.get(key) == holder:
                del self._holders[key]
            self._cond.notify_all()
            if self._waiting.get(key):
                self._handed[key] = session
                return True
            if self._closed or key.job_id in self._drained:
                return False
            self._idle[session] = time.monotonic() + self.idle_seconds
            self._start_reaper()
            return True

    def leave(self, key: PoolKey, holder: str) -> None:
        """``holder`` gives up ``key``'s turn, if it still holds it, with no session to give
        on (it failed or was ended): the next segment waiting for it opens a new one."""
        with self._cond:
            if self._holders.get(key) == holder:
                del self._holders[key]
            self._cond.notify_all()

    def waiting(self, job_id: int) -> int:
        """How many segments of ``job_id`` wait here for their session."""
        with self._cond:
            return sum(len(v) for k, v in self._waiting.items() if k.job_id == job_id)

    def take_job(self, job_id: int) -> list[Pooled]:
        """Every idle session of ``job_id``, now held by the caller (to end them)."""
        with self._cond:
            taken = [s for s in self._idle if s.key.job_id == job_id]
            for session in taken:
                del self._idle[session]
            return taken

    def idle_count(self) -> int:
        with self._cond:
            return len(self._idle)

    # ------------------------------------------------------------------ ending idle ones

    def _start_reaper(self) -> None:
        """Start the reaper thread and the process's exit hook, once per process (a forked
        worker starts its own: neither survives a fork)."""
        pid = os.getpid()
        if self._hooked_pid == pid and self._reaper is not None and self._reaper.is_alive():
            return
        self._hooked_pid = pid
        self._reaper = threading.Thread(target=self._reap, name="openjd-session-reaper")
        self._reaper.daemon = True
        self._reaper.start()
        # The last chance to run the onExit actions of idle sessions, while openjd-sessions
        # can still start them (its thread pools refuse work once the interpreter's threads
        # are shut down, before atexit): a multiprocessing child (a forked worker) runs its
        # finalizers first; any other process runs threading's exit callbacks, the last one
        # registered first, so after openjd-sessions' pools registered theirs ours runs
        # before them. close_all is idempotent, so both may run.
        mp_util.Finalize(self, self.close_all, kwargs={"final": True}, exitpriority=10)
        register = getattr(threading, "_register_atexit", None)
        if register is not None:
            with contextlib.suppress(RuntimeError):  # the interpreter is already exiting
                register(self.close_all, final=True)

    def _reap(self) -> None:
        while True:
            with self._cond:
                while True:
                    if self._closed:
                        return
                    now = time.monotonic()
                    expired = [s for s, at in self._idle.items() if at <= now]
                    if expired:
                        for session in expired:
                            del self._idle[session]
                        break
                    wait = min(self._idle.values(), default=now + 3600.0) - now
                    self._cond.wait(timeout=wait)
            for session in expired:
                session.close_idle()

    def close_all(self, final: bool = False) -> None:
        """End every idle session (the worker closes); ``final`` (the process exits): and
        any given back from now on, and stop the reaper."""
        with self._cond:
            self._closed = self._closed or final
            taken = list(self._idle)
            self._idle.clear()
            self._cond.notify_all()
        for session in taken:
            session.close_idle()


POOL = SessionPool()
"""This process's pool: one per worker process, shared by its worker threads."""


def close_all() -> None:
    """End this process's idle OpenJD sessions (the worker is closing)."""
    POOL.close_all()
