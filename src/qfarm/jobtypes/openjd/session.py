"""Running one ``openjd`` segment on a node: one openjd-sessions ``Session`` per segment.

The session enters the step's environments in order, runs the segment's task (or chunk) with
its parameter values, then exits the environments it entered, in reverse, whatever happened
before (``onExit`` is how a template cleans up). Each call to openjd-sessions returns at once;
this thread waits on the session's callback for the action to end.

* **Log.** Every record openjd-sessions logs for this session (its banners, the actions' output,
  ``openjd_status`` and ``openjd_fail`` lines) goes to the segment's log. The records reach the
  handler after openjd-sessions' own filter has redacted them, so a value set with
  ``openjd_redacted_env`` never reaches the log; the failure reason is taken from the redacted
  ``openjd_fail`` line for the same reason.
* **Progress.** ``openjd_progress`` (0-100) of the task is qfarm's progress (0-1).
* **Cancel and timeout.** The processes belong to openjd-sessions, not to qfarm's supervisor,
  so a :class:`_Watch` stands in for the segment there: a sleeping process run under the
  segment's key with what is left of its timeout. The node cancels a segment by ending its
  process group; when the watch ends that way (or times out), the running action is canceled
  with the template's ``cancelation`` (NOTIFY_THEN_TERMINATE with its grace period, or
  TERMINATE) and no further task or ``onEnter`` starts; ``onExit`` still runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qfarm.jobtypes.base import SegmentContext, SegmentOutcome
from qfarm.jobtypes.openjd.spec import decode_environments, decode_script
from qfarm.jobtypes.supervisor import ProcessResult

# Where sessions' working directories go when QFARM_OPENJD_ROOT does not say.
ROOT_ENV = "QFARM_OPENJD_ROOT"
# A process that does nothing until it is ended: the segment's stand-in in the supervisor.
WATCH_ARGV = ("/bin/sh", "-c", "while :; do sleep 3600; done")
POLL_SECONDS = 0.05


def sessions_root() -> Path:
    """The folder under which each segment gets a folder for its session (absolute)."""
    root = os.environ.get(ROOT_ENV) or os.path.join(
        tempfile.gettempdir(), "qfarm-scratch", "openjd"
    )
    return Path(root).resolve()


def _safe(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", key)[:100] or "segment"


class _Watch:
    """The segment's stand-in in the node's supervisor (see the module's docstring)."""

    def __init__(self, ctx: SegmentContext) -> None:
        self.ctx = ctx
        self.ended = threading.Event()
        self.result: ProcessResult | None = None
        self._thread = threading.Thread(target=self._run, name=f"openjd-watch-{ctx.key}")
        self._thread.daemon = True
        self._thread.start()

    def _run(self) -> None:
        try:
            self.result = self.ctx.run(list(WATCH_ARGV))
            if self.result.error:  # no stand-in: the segment runs on, without a cancel
                self.ctx.log(f"cannot watch for a cancel: {self.result.error}")
        finally:
            self.ended.set()

    @property
    def canceled(self) -> bool:
        """The node ended the segment (a cancel), or its time ran out; not :meth:`stop`."""
        result = self.result if self.ended.is_set() else None
        return result is not None and (result.killed or result.timed_out)

    @property
    def timed_out(self) -> bool:
        return self.canceled and self.result is not None and self.result.timed_out

    def stop(self) -> None:
        """End the stand-in quietly: the segment ended by itself. Its process is ended by
        its group id, not by the supervisor's kill, so the result says it was not a cancel."""
        while not self.ended.wait(POLL_SECONDS):
            pid = self.ctx.supervisor.running().get(self.ctx.key)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
        self._thread.join()


class _LogHandler(logging.Handler):
    """Writes one session's openjd-sessions records to the segment's log."""

    def __init__(self, session_id: str, path: Path) -> None:
        super().__init__(level=logging.INFO)
        self.session_id = session_id
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.fail_message: str | None = None
        self.status_message: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "session_id", None) != self.session_id:
            return
        try:
            text = record.getMessage()
        except Exception:  # a message that does not format is not written at all
            text = "********"
        for kind in ("fail", "status"):
            prefix = f"openjd_{kind}:"
            if text.startswith(prefix):
                setattr(self, f"{kind}_message", text[len(prefix) :].strip())
        with self.lock or contextlib.nullcontext():
            self._file.write(text + "\n")
            self._file.flush()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        super().close()


@dataclass
class _Action:
    what: str  # for the failure reason: "task", "onEnter of Render env"
    state: str
    exit_code: int | None


class SegmentSession:
    """One segment's run through openjd-sessions (see the module's docstring)."""

    def __init__(
        self, job: Mapping[str, Any], segment: Mapping[str, Any], ctx: SegmentContext
    ) -> None:
        self.job = job
        self.segment = segment
        self.ctx = ctx
        self.session_id = _safe(ctx.key)
        self._ended = threading.Event()
        self._running_task = False

    # ------------------------------------------------------------------ callbacks

    def _callback(self, session_id: str, status: Any) -> None:
        from openjd.sessions import ActionState

        if self._running_task and status.progress is not None:
            self.ctx.on_progress(max(0.0, min(1.0, float(status.progress) / 100.0)))
        if status.state != ActionState.RUNNING:
            self._ended.set()

    def _act(self, session: Any, what: str, start: Any, watch: _Watch, cancelable: bool) -> _Action:
        """Start one action with ``start()`` and wait for it to end, canceling it when the
        node ends the segment (``cancelable``: not for ``onExit``)."""
        from openjd.sessions import SessionState

        self._ended.clear()
        try:
            start()
        except (RuntimeError, ValueError) as exc:
            self.ctx.log(f"{what} could not start: {exc}")
            return _Action(what, "failed", None)
        canceled = False
        while not self._ended.wait(POLL_SECONDS):
            if cancelable and not canceled and watch.canceled:
                canceled = True
                if session.state == SessionState.RUNNING:
                    self.ctx.log(f"canceling the {what}")
                    with contextlib.suppress(RuntimeError):
                        session.cancel_action()
        status = session.action_status
        state = getattr(getattr(status, "state", None), "value", "failed")
        return _Action(what, str(state), getattr(status, "exit_code", None))

    # ------------------------------------------------------------------ the run

    def run(self) -> SegmentOutcome:
        try:
            from openjd.model import (
                ParameterValue,
                ParameterValueType,
                RevisionExtensions,
                SpecificationRevision,
            )
            from openjd.sessions import LOG, PathMappingRule, Session
        except ImportError as exc:
            return SegmentOutcome(ok=False, error=f"openjd-sessions is not installed here: {exc}")
        from openjd.expr import SerializedSymbolTable

        def values(items: Any) -> dict[str, Any]:
            return {
                v["name"]: ParameterValue(type=ParameterValueType(v["type"]), value=v["value"])
                for v in items
            }

        def symtab(text: str | None) -> Any:
            return None if text is None else SerializedSymbolTable.from_json_str(text)

        job, ctx = self.job, self.ctx
        script = decode_script(job)
        environments = decode_environments(job)
        job_table = symtab(job.get("job_symbol_table"))
        step_table = symtab(job.get("step_symbol_table"))
        rules = [PathMappingRule.from_dict(r) for r in job.get("path_mapping") or []]
        folder = sessions_root() / self.session_id
        folder.mkdir(parents=True, exist_ok=True)
        handler = _LogHandler(self.session_id, ctx.log_path)
        LOG.addHandler(handler)
        watch = _Watch(ctx)
        failure: _Action | None = None
        try:
            with Session(
                session_id=self.session_id,
                job_parameter_values=values(job["job_parameters"]),
                job_name=job["job_name"],
                path_mapping_rules=rules or None,
                callback=self._callback,
                session_root_directory=folder,
                revision_extensions=RevisionExtensions(
                    spec_rev=SpecificationRevision.v2023_09,
                    supported_extensions=job["extensions"],
                ),
            ) as session:
                entered: list[tuple[Any, Any, str]] = []
                for origin, env in environments:
                    if watch.canceled:
                        break
                    table = step_table if origin == "step" else job_table
                    before = len(session.environments_entered)

                    step_name = job["step"] if origin == "step" else None

                    def enter(env: Any = env, table: Any = table, name: Any = step_name) -> None:
                        session.enter_environment(
                            environment=env,
                            step_name=name,
                            resolved_symtab=table,
                        )

                    done = self._act(session, f"onEnter of {env.name}", enter, watch, True)
                    entered += [(i, table, env.name) for i in session.environments_entered[before:]]
                    if done.state != "success":
                        failure = done
                        break
                if failure is None and not watch.canceled:
                    self._running_task = True

                    def task() -> None:
                        session.run_task(
                            step_script=script,
                            task_parameter_values=values(self.segment.get("parameters") or []),
                            step_name=job["step"],
                            resolved_symtab=step_table,
                        )

                    done = self._act(session, "task", task, watch, True)
                    self._running_task = False
                    if done.state != "success":
                        failure = done
                    else:
                        ctx.on_progress(1.0)
                for identifier, table, name in reversed(entered):

                    def leave(identifier: Any = identifier, table: Any = table) -> None:
                        session.exit_environment(identifier=identifier, resolved_symtab=table)

                    done = self._act(session, f"onExit of {name}", leave, watch, False)
                    if done.state != "success" and failure is None:
                        failure = done
        finally:
            watch.stop()
            LOG.removeHandler(handler)
            handler.close()
            shutil.rmtree(folder, ignore_errors=True)
        return self._outcome(failure, watch, handler)

    def _outcome(
        self, failure: _Action | None, watch: _Watch, handler: _LogHandler
    ) -> SegmentOutcome:
        if watch.canceled:
            if watch.timed_out:
                return SegmentOutcome(ok=False, error="openjd task timed out", timed_out=True)
            if watch.result is not None and watch.result.killed:
                return SegmentOutcome(ok=False, error="canceled", killed=True)
        if failure is None:
            return SegmentOutcome(ok=True, exit_code=0)
        code = failure.exit_code
        if failure.state == "timeout":
            return SegmentOutcome(
                ok=False, exit_code=code, error=f"{failure.what} timed out", timed_out=True
            )
        reason = handler.fail_message
        if not reason:
            reason = f"{failure.what} {failure.state}"
            if code is not None:
                reason = f"{failure.what} exited with code: {code}"
        if handler.status_message and handler.status_message not in reason:
            reason += f" (status: {handler.status_message})"
        self.ctx.log(f"failed: {reason}")
        return SegmentOutcome(ok=False, exit_code=code, error=reason)
