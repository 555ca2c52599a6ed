"""What a service node does with one segment attempt: preflight, run, report.

The engine calls :func:`run_segment` in a worker thread with a plain-dict payload and sends
the plain-dict result back; neither side needs the other's classes. Nothing here imports
the engine, so the same code runs under any executor.
"""

from __future__ import annotations

import socket
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qfarm import jobtypes
from qfarm.domain.errors import QfarmError
from qfarm.jobtypes.base import SegmentContext, SegmentOutcome, describe_process_failure
from qfarm.jobtypes.supervisor import SUPERVISOR
from qfarm.node import pathmap, scratch

LOG_TAIL_LINES = 20
LOG_TAIL_CHARS = 4000

# Preflights already run in this node process, by job id; the lock makes two segments of one
# job that start together run it once.
_preflight_lock = threading.Lock()
_preflights: dict[int, SegmentOutcome] = {}


def run_segment(
    payload: dict[str, Any],
    on_start: Callable[[int], None],
    on_progress: Callable[[float], None],
    node_name: str = "",
) -> dict[str, Any]:
    """Run one attempt. Never raises: every ending is described in the returned dict."""
    key = payload["key"]
    log_path = Path(payload["log_path"])
    started_at = time.time()
    ctx = SegmentContext(
        key=key,
        log_path=log_path,
        timeout=payload.get("timeout"),
        on_start=on_start,
        on_progress=on_progress,
        threads=payload.get("threads"),
    )
    try:
        mapping = pathmap.from_environment()
        if mapping:
            payload = {
                **payload,
                "job": pathmap.map_all(payload["job"], mapping),
                "segment": pathmap.map_all(payload["segment"], mapping),
            }
        if payload["job"].get("storage"):
            with scratch.using_upload(payload, scratch.scratch_root()) as local:
                outcome = _run(local, ctx)
                if outcome.ok:
                    scratch.send_outputs(local)
        else:
            outcome = _run(payload, ctx)
    except QfarmError as exc:  # cluster storage could not be reached, say
        ctx.log(str(exc))
        outcome = SegmentOutcome(ok=False, error=str(exc))
    except Exception as exc:  # a bug in a job type must not take the node down
        ctx.log(traceback.format_exc())
        outcome = SegmentOutcome(ok=False, error=f"{type(exc).__name__}: {exc}")
    finally:
        SUPERVISOR.forget(key)
    if outcome.timed_out and payload.get("timeout"):
        outcome = SegmentOutcome(
            ok=False,
            exit_code=outcome.exit_code,
            error=f"timed out after {payload['timeout']:g} s",
            timed_out=True,
        )
    return {
        "key": key,
        "ok": outcome.ok,
        "exit_code": outcome.exit_code,
        "error": outcome.error,
        "timed_out": outcome.timed_out,
        "killed": outcome.killed,
        "node": node_name or socket.gethostname(),
        "pid": ctx.pid,
        "started_at": started_at,
        "ended_at": time.time(),
        "log_path": str(log_path),
        "log_tail": log_tail(log_path),
    }


def _run(payload: dict[str, Any], ctx: SegmentContext) -> SegmentOutcome:
    outcome = _preflight(payload, ctx)
    if outcome is None:
        job_type = jobtypes.get(payload["job_type"])
        outcome = job_type.run(payload["job"], payload["segment"], ctx)
    return outcome


def _preflight(payload: dict[str, Any], ctx: SegmentContext) -> SegmentOutcome | None:
    """Run the job's preflight once per node; return its failure, or None to go on."""
    argv = (payload.get("job") or {}).get("preflight") or []
    if not argv:
        return None
    job_id = int(payload["job_id"])
    with _preflight_lock:
        done = _preflights.get(job_id)
        if done is None:
            ctx.log(f"preflight: {' '.join(argv)}")
            result = ctx.run(argv, cwd=payload["job"].get("cwd"), env=payload["job"].get("env"))
            if result.succeeded():
                done = SegmentOutcome(ok=True)
            else:
                failure = describe_process_failure(result, "preflight")
                done = SegmentOutcome(
                    ok=False,
                    exit_code=failure.exit_code,
                    error=failure.error,
                    timed_out=failure.timed_out,
                    killed=failure.killed,
                )
            # Only a success is remembered: after a failure (a missing tool, say) the next
            # segment checks again, so fixing the node and resubmitting works.
            if done.ok:
                _preflights[job_id] = done
            ctx.pid = None
    return None if done.ok else done


def log_tail(path: Path) -> str:
    """The last lines of a log, bounded in size, for the store and for error messages."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            fh.seek(max(0, size - LOG_TAIL_CHARS * 2))
            data = fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    lines = data.splitlines()[-LOG_TAIL_LINES:]
    return "\n".join(lines)[-LOG_TAIL_CHARS:]


def kill_segment(key: str) -> bool:
    """End the processes of one segment attempt on this node."""
    return SUPERVISOR.kill(key)


def kill_all_segments() -> int:
    """End every segment process of this node (the worker is closing)."""
    return SUPERVISOR.kill_all()
