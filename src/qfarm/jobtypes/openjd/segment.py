"""One ``openjd`` segment attempt on a node: its turn in its job's session, its task, its end.

A node keeps one session per job (:mod:`.pool`), so a segment first waits for its job's
turn there: another segment of the job that this node was given at the same time may hold
the session. The wait is not the segment's time (``ctx.waited``: neither its timeout nor its
stall watch counts it), and a cancel that comes meanwhile ends the wait. With the turn it
takes the session kept for the job, or opens one (entering the environments), runs its task,
and then gives the session on to the next segment of the job waiting here, keeps it idle for
one still to come, or ends it (see :mod:`.session` for when).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from qfarm.domain.units import duration
from qfarm.jobtypes.base import SegmentContext, SegmentOutcome
from qfarm.jobtypes.openjd.pool import POOL, PoolKey, SessionPool
from qfarm.jobtypes.openjd.session import BUSY_RETRIES, Action, JobSession
from qfarm.jobtypes.openjd.watch import Watch


def run_segment(
    job: Mapping[str, Any],
    segment: Mapping[str, Any],
    ctx: SegmentContext,
    pool: SessionPool = POOL,
) -> SegmentOutcome:
    """Run one segment in its job's session from ``pool`` (or a new one), after the
    segments of the job before it on this node, and end or keep the session."""
    try:
        import openjd.sessions  # noqa: F401
    except ImportError as exc:
        return SegmentOutcome(ok=False, error=f"openjd-sessions is not installed here: {exc}")
    key = PoolKey.of(ctx.job_id, job, ctx.environment)
    pool.begin(ctx.job_id, ctx.job_queued_after)
    try:
        since = time.monotonic()
        order = int(segment.get("segment") or 0)
        turn = pool.acquire(key, ctx.key, order, lambda: ctx.supervisor.was_killed(ctx.key))
        waited = time.monotonic() - since
        if not turn.held:
            ctx.log("canceled while waiting for this job's openjd session on this node")
            for other in pool.take_job(ctx.job_id):
                if isinstance(other, JobSession):
                    _end_other(other, ctx)
            return SegmentOutcome(ok=False, error="canceled", killed=True)
        if waited >= 0.5:
            ctx.log(
                f"waited {duration(waited)} for this job's openjd session: another segment "
                "of the job held it on this node"
            )
        ctx.waited()
        session = turn.session if isinstance(turn.session, JobSession) else None
        try:
            return _run_held(job, segment, ctx, pool, key, session)
        finally:
            pool.leave(key, ctx.key)  # the turn, unless the session was given back
    finally:
        pool.end(ctx.job_id)


def _run_held(
    job: Mapping[str, Any],
    segment: Mapping[str, Any],
    ctx: SegmentContext,
    pool: SessionPool,
    key: PoolKey,
    kept: JobSession | None,
) -> SegmentOutcome:
    """The segment's run once it holds its key's turn, with the session kept for the key
    (None: it opens one)."""
    if kept is None:
        session, opened = JobSession(job, key, ctx), True  # InvalidRequest: unreadable spec
    else:
        kept.bind(ctx)
        session, opened = kept, False
    watch = Watch(ctx)
    watch.wait_started()
    failure: Action | None = None
    given = False
    try:
        if not opened:
            ctx.log(
                f"openjd session {session.session_id} reused: its environments were entered "
                f"by {session.opened_by}"
            )
        for retry in range(BUSY_RETRIES + 1):
            if opened:
                failure = session.open(watch)
            if failure is None and not watch.canceled:
                failure = session.run_task(segment, watch)
            if failure is None or not failure.busy or watch.canceled or retry == BUSY_RETRIES:
                break
            ctx.log(
                f"the {failure.what}'s process could not start (its script was busy: another "
                "process of this node was starting); opening the session again"
            )
            session.close()
            session, opened, failure = JobSession(job, key, ctx), True, None
        if failure is None and not watch.canceled:
            ctx.on_progress(1.0)
            session.release()  # before it is given on: the next holder binds it
            given = pool.give_back(session, ctx.key)
            if not given:
                session.bind(ctx)  # ended here: its onExit output goes to this log
    finally:
        if not given:
            left = session.close()
            failure = failure or left
            if pool.drained(ctx.job_id) or watch.killed:
                for other in pool.take_job(ctx.job_id):
                    if isinstance(other, JobSession):
                        _end_other(other, ctx)
        watch.stop()
    return _outcome(ctx, session, failure, watch)


def _end_other(other: JobSession, ctx: SegmentContext) -> None:
    """End an idle session of the job in ``ctx``'s segment, whose log gets its output; a
    failed ``onExit`` there is logged, not the segment's failure (its own task is done)."""
    other.bind(ctx)
    ctx.log(f"ending idle openjd session {other.session_id} of this job")
    left = other.close()
    if left is not None:
        ctx.log(f"{left.what} of openjd session {other.session_id} failed ({left.state})")


def _outcome(
    ctx: SegmentContext, session: JobSession, failure: Action | None, watch: Watch
) -> SegmentOutcome:
    if watch.canceled:
        if watch.timed_out:
            return SegmentOutcome(ok=False, error="openjd task timed out", timed_out=True)
        if watch.result is not None and watch.result.killed:
            return SegmentOutcome(ok=False, error="canceled", killed=True)
        return SegmentOutcome(ok=False, error="openjd task stalled")  # the runner says more
    if failure is None:
        return SegmentOutcome(ok=True, exit_code=0)
    code = failure.exit_code
    if failure.state == "timeout":
        return SegmentOutcome(
            ok=False, exit_code=code, error=f"{failure.what} timed out", timed_out=True
        )
    reason = session.fail_message
    if not reason:
        reason = f"{failure.what} {failure.state}"
        if code is not None:
            reason = f"{failure.what} exited with code: {code}"
    if session.status_message and session.status_message not in reason:
        reason += f" (status: {session.status_message})"
    ctx.log(f"failed: {reason}")
    return SegmentOutcome(ok=False, exit_code=code, error=reason)
