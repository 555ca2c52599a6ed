"""The two things an openjd session needs from the node while a segment holds it.

* :class:`Watch`, the segment's stand-in in the node's supervisor: openjd-sessions owns the
  session's processes, so a sleeping process runs under the segment's key with what is left
  of its timeout and its stall watch. The node cancels a segment by ending that process; the
  session sees it ended and cancels its running action (see :mod:`.session`).
* :class:`SessionLogHandler`, which writes one session's openjd-sessions records (after their
  redaction) to the log of whoever holds the session, and keeps the ``openjd_fail`` and
  ``openjd_status`` lines and whether an action's script was busy when it was started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qfarm.jobtypes.base import SegmentContext
from qfarm.jobtypes.supervisor import ProcessResult

# A process that does nothing until it is ended: the segment's stand-in in the supervisor.
WATCH_ARGV = ("/bin/sh", "-c", "while :; do sleep 3600; done")
POLL_SECONDS = 0.05


class Watch:
    """The segment's stand-in in the node's supervisor (see the module's docstring)."""

    def __init__(self, ctx: SegmentContext) -> None:
        self.ctx = ctx
        self.ended = threading.Event()
        self.result: ProcessResult | None = None
        self._thread = threading.Thread(target=self._run, name=f"openjd-watch-{ctx.key}")
        self._thread.daemon = True
        self._thread.start()

    def wait_started(self, timeout: float = 30.0) -> None:
        """Return once the stand-in process has started (or could not be).

        Its start forks this process, and a fork while openjd-sessions writes an action's
        script leaves the child a copy of the script's open file until it execs: the action
        then fails to start with ETXTBSY ("Text file busy"). Starting the session's actions
        only after the stand-in runs keeps this segment's two starts apart.
        """
        deadline = time.monotonic() + timeout
        while not self.ended.is_set() and time.monotonic() < deadline:
            if self.ctx.key in self.ctx.supervisor.running():
                return
            self.ended.wait(POLL_SECONDS / 5)

    def _run(self) -> None:
        try:
            self.result = self.ctx.run(list(WATCH_ARGV))
            if self.result.error:  # no stand-in: the segment runs on, without a cancel
                self.ctx.log(f"cannot watch for a cancel: {self.result.error}")
        finally:
            self.ended.set()

    @property
    def canceled(self) -> bool:
        """The node ended the segment (a cancel), its time ran out, or its stall watch saw
        no progress for too long (the log the session writes, or openjd_progress); not
        :meth:`stop`."""
        result = self.result if self.ended.is_set() else None
        return result is not None and (result.killed or result.timed_out or result.stalled)

    @property
    def timed_out(self) -> bool:
        return self.canceled and self.result is not None and self.result.timed_out

    @property
    def killed(self) -> bool:
        """The node canceled the segment (not its timeout)."""
        return self.canceled and self.result is not None and self.result.killed

    def stop(self) -> None:
        """End the stand-in quietly: the segment ended by itself. Its process is ended by
        its group id, not by the supervisor's kill, so the result says it was not a cancel."""
        while not self.ended.wait(POLL_SECONDS):
            pid = self.ctx.supervisor.running().get(self.ctx.key)
            if pid is not None:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(pid, signal.SIGKILL)
        self._thread.join()


class SessionLogHandler(logging.Handler):
    """Writes one session's openjd-sessions records to the log of whoever holds it: the
    segment running in it, or (while the pool ends it) the last segment's log and the node's
    session log."""

    def __init__(self, session_id: str) -> None:
        super().__init__(level=logging.INFO)
        self.session_id = session_id
        self._files: list[Any] = []
        self.fail_message: str | None = None
        self.status_message: str | None = None
        # An action's process could not start because its script was busy (see
        # :data:`.session.BUSY_RETRIES`); set by the record openjd-sessions logs then.
        self.start_busy = False

    def retarget(self, paths: Sequence[Path]) -> None:
        """Write to ``paths`` from now on (none: drop records), forgetting the messages."""
        with self.lock or contextlib.nullcontext():
            self._close_files()
            for path in paths:
                path.parent.mkdir(parents=True, exist_ok=True)
                self._files.append(open(path, "a", encoding="utf-8"))  # noqa: SIM115
            self.fail_message = self.status_message = None
            self.start_busy = False

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "session_id", None) != self.session_id:
            return
        try:
            text = record.getMessage()
        except Exception:  # a message that does not format is not written at all
            text = "********"
        with self.lock or contextlib.nullcontext():
            if text.startswith("Process failed to start:") and "Text file busy" in text:
                self.start_busy = True
            for kind in ("fail", "status"):
                prefix = f"openjd_{kind}:"
                if text.startswith(prefix):
                    setattr(self, f"{kind}_message", text[len(prefix) :].strip())
            for fh in self._files:
                with contextlib.suppress(OSError, ValueError):
                    fh.write(text + "\n")
                    fh.flush()

    def _close_files(self) -> None:
        for fh in self._files:
            with contextlib.suppress(OSError):
                fh.close()
        self._files = []

    def close(self) -> None:
        with self.lock or contextlib.nullcontext():
            self._close_files()
        super().close()
