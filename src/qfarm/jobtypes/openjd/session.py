"""Running ``openjd`` segments on a node: openjd-sessions ``Session`` objects kept per job.

A :class:`JobSession` is one openjd-sessions session of one job on this node. The segment
that opens it enters the step's environments in order (environment templates', the job's, the
step's: ``onEnter``, ``openjd_env`` variables); that and every later segment of the job that
takes it from the node's :mod:`pool <qfarm.jobtypes.openjd.pool>` runs its task (or chunk) in
it. The environments are exited in reverse (``onExit``, how a template cleans up) once:

* by the segment that leaves none of its job queued (``ctx.job_queued_after == 0``, or not
  known), before it returns, so the output is in its log; it also ends the idle sessions of
  its job, and a session of the job whose segment ends after that is ended too;
* by the segment whose task failed, was canceled or timed out, or whose environment failed
  (a session in doubt is never reused: a retry opens a new one);
* by the pool, when the session was idle for :func:`~qfarm.jobtypes.openjd.pool.idle_seconds`
  or the worker closes: the output goes to the log of the last segment that used the session
  and to the node's session log, ``$QFARM_OPENJD_ROOT/sessions.log``.

Each call to openjd-sessions returns at once; the thread that holds the session waits on its
callback for the action to end.

* **Log.** Every record openjd-sessions logs for the session (its banners, the actions' output,
  ``openjd_status`` and ``openjd_fail`` lines) goes to the log of the segment holding it. The
  records reach the handler after openjd-sessions' own filter has redacted them, so a value set
  with ``openjd_redacted_env`` never reaches the log; the failure reason is taken from the
  redacted ``openjd_fail`` line for the same reason.
* **Progress.** ``openjd_progress`` (0-100) of the task is qfarm's progress (0-1).
* **Environment.** ``ctx.environment`` (the attempt's devices) is given to every process of the
  session; sessions are only shared by attempts with the same environment.
* **Cancel and timeout.** The processes belong to openjd-sessions, not to qfarm's supervisor,
  so a :class:`Watch` stands in for the segment there: a sleeping process run under the
  segment's key with what is left of its timeout. The node cancels a segment by ending its
  process group; when the watch ends that way (or times out), the running action is canceled
  with the template's ``cancelation`` (NOTIFY_THEN_TERMINATE with its grace period, or
  TERMINATE), no further task or ``onEnter`` starts, and the session is ended (``onExit``
  still runs). A cancel (not a timeout) also ends the job's idle sessions on this node: it
  is how a job ends early (canceled, paused).
* **A busy script.** A process this worker forks at the moment openjd-sessions writes an
  action's script holds the script open until it execs, and the action fails to start with
  ETXTBSY. Every action is started under the node's
  :data:`~qfarm.jobtypes.supervisor.PROCESS_STARTS` lock, which the supervisor holds for its
  own starts too, and the segment's stand-in is started before the session's first action;
  a start that still meets a busy script (a fork by code outside qfarm) opens the session
  again, up to :data:`BUSY_RETRIES` times, since the action's process never ran.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from qfarm.jobtypes.base import SegmentContext, SegmentOutcome
from qfarm.jobtypes.openjd.pool import POOL, PoolKey, SessionPool
from qfarm.jobtypes.openjd.spec import decode_environments, decode_script, path_mapping_rules
from qfarm.jobtypes.openjd.watch import POLL_SECONDS, SessionLogHandler, Watch
from qfarm.jobtypes.supervisor import PROCESS_STARTS

# Where sessions' working directories go when QFARM_OPENJD_ROOT does not say.
ROOT_ENV = "QFARM_OPENJD_ROOT"
# The node's own log of what sessions did while no segment held them, under sessions_root().
NODE_LOG = "sessions.log"
# At most this long for one action run while the worker closes (an idle session's onExit).
CLOSING_SECONDS = 60.0
# How often a segment opens its session again when an action's process could not start
# because its script file was busy (ETXTBSY): another thread of this worker forked while
# openjd-sessions was writing the script, and the child held it open for a moment. The
# process never ran, so running the segment again in a new session is safe.
BUSY_RETRIES = 3


def sessions_root() -> Path:
    """The folder under which each session gets a folder, named after the segment that
    opened it (absolute)."""
    root = os.environ.get(ROOT_ENV) or os.path.join(
        tempfile.gettempdir(), "qfarm-scratch", "openjd"
    )
    return Path(root).resolve()


def _safe(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", key)[:100] or "segment"


@dataclass
class _Action:
    what: str  # for the failure reason: "task", "onEnter of Render env"
    state: str
    exit_code: int | None
    busy: bool = False  # its process could not start: the script was busy (ETXTBSY)


class JobSession:
    """One openjd-sessions session of one job on this node (see the module's docstring).

    Only the thread holding it (a segment's, or the pool's while ending it) calls it; the
    session's own threads only call :meth:`_callback` and the log handler.
    """

    def __init__(self, job: Mapping[str, Any], key: PoolKey, ctx: SegmentContext) -> None:
        # Decoded first: a spec this node cannot read raises InvalidRequest before anything
        # is started.
        self.script = decode_script(job)
        self.environments = decode_environments(job)
        self.job = job
        self.key = key
        self.session_id = _safe(ctx.key)
        self.opened_by = ctx.key
        # The worker process in the name: the same key comes from each embedded cluster on
        # a machine (their first batch is batch 1), and their sessions must not share it.
        self.folder = sessions_root() / f"{self.session_id}-{os.getpid()}"
        self.tasks = 0  # tasks run in it
        self._ctx: SegmentContext | None = ctx
        self._last_log = ctx.log_path
        self._ended = threading.Event()
        self._running_task = False
        self._session: Any = None
        self._entered: list[tuple[Any, Any, str]] = []  # (identifier, symbol table, name)
        self._closed = False
        self._handler = SessionLogHandler(self.session_id)
        self._handler.retarget([ctx.log_path])

    # ------------------------------------------------------------------ holding it

    def bind(self, ctx: SegmentContext) -> None:
        """``ctx``'s segment holds the session from now on: its log gets the records."""
        self._ctx = ctx
        self._last_log = ctx.log_path
        self._handler.retarget([ctx.log_path])

    def release(self) -> None:
        """Nobody holds it (it goes idle): records are dropped until it is held again."""
        self._ctx = None
        self._handler.retarget([])

    @property
    def fail_message(self) -> str | None:
        return self._handler.fail_message

    @property
    def status_message(self) -> str | None:
        return self._handler.status_message

    # ------------------------------------------------------------------ actions

    def _callback(self, session_id: str, status: Any) -> None:
        from openjd.sessions import ActionState

        ctx = self._ctx
        if self._running_task and ctx is not None and status.progress is not None:
            ctx.on_progress(max(0.0, min(1.0, float(status.progress) / 100.0)))
        if status.state != ActionState.RUNNING:
            self._ended.set()

    def _act(
        self,
        what: str,
        start: Callable[[], None],
        watch: Watch | None,
        deadline: float | None = None,
    ) -> _Action:
        """Start one action with ``start()`` and wait for it to end, canceling it with the
        template's cancelation when ``watch`` says the node ended the segment (no watch for
        ``onExit``), or at once when ``deadline`` (monotonic) passes."""
        from openjd.sessions import SessionState

        session = self._session
        self._ended.clear()
        self._handler.start_busy = False
        try:
            with PROCESS_STARTS:  # the action's script is written and started in this call
                start()
        except (RuntimeError, ValueError) as exc:
            self._note(f"{what} could not start: {exc}")
            return _Action(what, "failed", None)
        canceled = False
        while True:
            # The callback only wakes this loop; the session's state says whether the action
            # ended (a late callback of the action before must not end this one).
            woke = self._ended.wait(POLL_SECONDS)
            running = session.state == SessionState.RUNNING
            if not running and (woke or _terminal(session.action_status)):
                break
            if woke:
                self._ended.clear()
            if canceled or not running:
                continue
            if watch is not None and watch.canceled:
                canceled = True
                self._note(f"canceling the {what}")
                with contextlib.suppress(RuntimeError):
                    session.cancel_action()
            elif deadline is not None and time.monotonic() > deadline:
                canceled = True
                self._note(f"the worker is closing: ending the {what}")
                with contextlib.suppress(RuntimeError):
                    session.cancel_action(time_limit=timedelta(0))
        status = session.action_status
        state = getattr(getattr(status, "state", None), "value", "failed")
        return _Action(
            what, str(state), getattr(status, "exit_code", None), self._handler.start_busy
        )

    def _note(self, line: str) -> None:
        """A line of qfarm's own in the log of whoever holds the session."""
        if self._ctx is not None:
            self._ctx.log(line)
        else:
            for path in (self._last_log, sessions_root() / NODE_LOG):
                with contextlib.suppress(OSError):
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with open(path, "a", encoding="utf-8") as fh:
                        fh.write(f"[qfarm] {line}\n")

    def open(self, watch: Watch) -> _Action | None:
        """Start the session and enter its environments; the failed action, or None (also
        when the watch says the segment was canceled before all were entered)."""
        from openjd.model import RevisionExtensions, SpecificationRevision
        from openjd.sessions import LOG, Session

        job, ctx = self.job, self._ctx
        assert ctx is not None
        job_table = _symtab(job.get("job_symbol_table"))
        step_table = _symtab(job.get("step_symbol_table"))
        rules = _path_rules(job.get("path_mapping") or [], ctx.path_map)
        self.folder.mkdir(parents=True, exist_ok=True)
        LOG.addHandler(self._handler)
        try:
            self._session = Session(
                session_id=self.session_id,
                job_parameter_values=_values(job["job_parameters"]),
                job_name=job["job_name"],
                path_mapping_rules=rules or None,
                callback=self._callback,
                os_env_vars=dict(ctx.environment) or None,
                session_root_directory=self.folder,
                revision_extensions=RevisionExtensions(
                    spec_rev=SpecificationRevision.v2023_09,
                    supported_extensions=job["extensions"],
                ),
            )
        except RuntimeError as exc:
            ctx.log(f"the openjd session could not start: {exc}")
            self._finish()
            return _Action("session", "failed", None)
        session = self._session
        for origin, env in self.environments:
            if watch.canceled:
                break
            table = step_table if origin == "step" else job_table
            before = len(session.environments_entered)
            step_name = job["step"] if origin == "step" else None

            def enter(env: Any = env, table: Any = table, name: Any = step_name) -> None:
                session.enter_environment(environment=env, step_name=name, resolved_symtab=table)

            done = self._act(f"onEnter of {env.name}", enter, watch)
            self._entered += [(i, table, env.name) for i in session.environments_entered[before:]]
            if done.state != "success":
                return done
        return None

    def run_task(self, segment: Mapping[str, Any], watch: Watch) -> _Action | None:
        """Run the segment's task (or chunk); the failed action, or None."""
        job, session = self.job, self._session
        step_table = _symtab(job.get("step_symbol_table"))
        ctx = self._ctx
        environment = dict(ctx.environment) if ctx is not None else {}

        def task() -> None:
            session.run_task(
                step_script=self.script,
                task_parameter_values=_values(segment.get("parameters") or []),
                step_name=job["step"],
                resolved_symtab=step_table,
                os_env_vars=environment or None,
            )

        self.tasks += 1
        self._running_task = True
        try:
            done = self._act("task", task, watch)
        finally:
            self._running_task = False
        return None if done.state == "success" else done

    def close(self, deadline: float | None = None) -> _Action | None:
        """Exit the entered environments in reverse and end the session; the first failed
        ``onExit``, or None. Only the first call does anything."""
        if self._closed:
            return None
        self._closed = True
        failure: _Action | None = None
        try:
            for identifier, table, name in reversed(self._entered):

                def leave(identifier: Any = identifier, table: Any = table) -> None:
                    self._session.exit_environment(identifier=identifier, resolved_symtab=table)

                done = self._act(f"onExit of {name}", leave, None, deadline)
                if done.state != "success" and failure is None:
                    failure = done
        finally:
            self._finish()
        return failure

    def close_idle(self) -> None:
        """End the session while no segment holds it (the pool's call): its output goes to
        the last segment's log and to the node's session log."""
        self.release()
        node_log = sessions_root() / NODE_LOG
        self._handler.retarget([self._last_log, node_log])
        self._note(
            f"ending idle openjd session {self.session_id} of job {self.key.job_id} "
            f"(opened by {self.opened_by}, {self.tasks} task{'s' * (self.tasks != 1)})"
        )
        failure = self.close(time.monotonic() + CLOSING_SECONDS)
        if failure is not None:
            self._note(f"{failure.what} of the idle session failed ({failure.state})")

    def _finish(self) -> None:
        from openjd.sessions import LOG

        self._closed = True
        try:
            if self._session is not None:
                self._session.cleanup()
        finally:
            LOG.removeHandler(self._handler)
            self._handler.close()
            shutil.rmtree(self.folder, ignore_errors=True)


def _path_rules(job_rules: Sequence[Mapping[str, str]], node_map: Mapping[str, str]) -> list[Any]:
    """The session's path mapping rules: the job's (the submitter's paths onto the farm's),
    their destinations carried on through the node's ``--path-map``, then the node's own
    (the farm's paths onto this node's), so a path is mapped once, to where this node sees
    it."""
    from openjd.sessions import PathMappingRule

    node_rules = [PathMappingRule.from_dict(rule) for rule in path_mapping_rules(dict(node_map))]
    node_rules.sort(key=lambda rule: len(str(rule.source_path)), reverse=True)
    rules = []
    for rule in job_rules:
        destination = rule["destination_path"]
        for node_rule in node_rules:
            changed, mapped = node_rule.apply(path=destination)
            if changed:
                destination = mapped
                break
        rules.append(PathMappingRule.from_dict({**rule, "destination_path": destination}))
    return rules + node_rules


def _terminal(status: Any) -> bool:
    """An openjd-sessions action status that says the action is over."""
    from openjd.sessions import ActionState

    return status is not None and status.state != ActionState.RUNNING


def _values(items: Any) -> dict[str, Any]:
    from openjd.model import ParameterValue, ParameterValueType

    return {
        v["name"]: ParameterValue(type=ParameterValueType(v["type"]), value=v["value"])
        for v in items
    }


def _symtab(text: str | None) -> Any:
    from openjd.expr import SerializedSymbolTable

    return None if text is None else SerializedSymbolTable.from_json_str(text)


def run_segment(
    job: Mapping[str, Any],
    segment: Mapping[str, Any],
    ctx: SegmentContext,
    pool: SessionPool = POOL,
) -> SegmentOutcome:
    """Run one segment in a session of its job from ``pool`` (or a new one), and end or
    keep the session (see the module's docstring)."""
    try:
        import openjd.sessions  # noqa: F401
    except ImportError as exc:
        return SegmentOutcome(ok=False, error=f"openjd-sessions is not installed here: {exc}")
    key = PoolKey.of(ctx.job_id, job, ctx.environment)
    taken = pool.take(key)
    session = taken if isinstance(taken, JobSession) else None
    if session is None:
        session = JobSession(job, key, ctx)  # InvalidRequest for a spec it cannot read
        opened = True
    else:
        session.bind(ctx)
        opened = False
    pool.begin(ctx.job_id, ctx.job_queued_after)
    watch = Watch(ctx)
    watch.wait_started()
    failure: _Action | None = None
    kept = False
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
        if failure is None and not watch.canceled and not pool.drained(ctx.job_id):
            session.release()
            pool.put(session)
            kept = True
    finally:
        drained = pool.drained(ctx.job_id)
        if not kept:
            left = session.close()
            failure = failure or left
            if drained or watch.killed:
                for other in pool.take_job(ctx.job_id):
                    if isinstance(other, JobSession):
                        _end_other(other, ctx)
        pool.end(ctx.job_id)
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
    ctx: SegmentContext, session: JobSession, failure: _Action | None, watch: Watch
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
