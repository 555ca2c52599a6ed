"""The open OpenJD sessions of one node process, kept between the segments of a job.

A session whose environments are entered is worth keeping: the next segment of the same job
on this node runs its task in it without entering them again. A segment takes an idle session
of its job (:meth:`SessionPool.take`), or opens one; when its task is done it gives the session
back (:meth:`SessionPool.put`) or ends it. Segments run in worker threads, and a session runs
one action at a time, so a session is either idle here or held by exactly one segment, never
both; two segments of one job running at once have a session each.

Sessions are ended (their environments exited) by:

* the segment that leaves none of its job queued (``ctx.job_queued_after == 0``): its own
  session, and every idle session of the job (:meth:`SessionPool.take_job`);
* the pool's reaper thread, for a session idle longer than :func:`idle_seconds`;
* :meth:`SessionPool.close_all` when the worker process closes (the node runner's
  ``kill_all``, which the worker plugin's teardown calls, and an exit hook of the process).

Nothing here imports openjd-sessions: what the pool holds only needs :class:`Pooled`'s two
members, so the node runner can import this module cheaply.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing import util as mp_util
from typing import Any, Protocol

# How long an idle session is kept, in seconds, when QFARM_OPENJD_IDLE_SECONDS does not say.
IDLE_SECONDS = 30.0
IDLE_ENV = "QFARM_OPENJD_IDLE_SECONDS"


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


class SessionPool:
    """Idle sessions by key, and what the node knows of each job's queue."""

    def __init__(self, idle: float | None = None) -> None:
        self._idle_seconds = idle
        self._cond = threading.Condition()
        self._idle: dict[Pooled, float] = {}  # session -> when it is ended (monotonic)
        self._busy: dict[int, int] = {}  # job id -> segments of it running here
        self._drained: set[int] = set()  # jobs that left nothing queued
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

    def take(self, key: PoolKey) -> Pooled | None:
        """An idle session for ``key``, now held by the caller, or None."""
        with self._cond:
            for session in self._idle:
                if session.key == key:
                    del self._idle[session]
                    return session
        return None

    def put(self, session: Pooled) -> None:
        """Keep ``session`` idle until a segment takes it or it has waited too long."""
        with self._cond:
            if self._closed:
                closing = True
            else:
                closing = False
                self._idle[session] = time.monotonic() + self.idle_seconds
                self._start_reaper()
                self._cond.notify_all()
        if closing:  # the worker is closing: nothing more will take it
            session.close_idle()

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
