"""What a service node does with one segment attempt: preflight, run, report.

The engine calls :func:`run_segment` in a worker thread with a plain-dict payload and sends
the plain-dict result back; neither side needs the other's classes. Nothing here imports
the engine, so the same code runs under any executor.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qfarm import jobtypes, pathmap, storage
from qfarm.errors import QfarmError
from qfarm.jobtypes.base import SegmentContext, SegmentOutcome, describe_process_failure
from qfarm.supervisor import SUPERVISOR

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
            with storage.using_upload(payload, storage.scratch_root()) as local:
                outcome = _run(local, ctx)
                if outcome.ok:
                    storage.send_outputs(local)
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


def node_facts() -> dict[str, Any]:
    """What a node tells the controller about itself, its tools' versions included."""
    import platform

    import psutil

    from qfarm import __version__

    return {
        "host": socket.gethostname(),
        "cores": os.cpu_count() or 1,
        "memory": int(psutil.virtual_memory().total),
        "version": __version__,
        "fingerprint": {
            "qfarm": __version__,
            "python": platform.python_version(),
            **tool_versions(),
        },
    }


def host_load() -> dict[str, float]:
    """This machine's CPU use (percent of all cores, since the last call) and memory in use."""
    import psutil

    return {
        "cpu_percent": float(psutil.cpu_percent(interval=None)),
        "memory_used": float(psutil.virtual_memory().used),
    }


def tool_versions() -> dict[str, str]:
    """The versions of the tools this node's job types run, for its fingerprint."""
    from qfarm import renderers
    from qfarm.media.tool import ToolMissing, ffmpeg

    versions: dict[str, str] = {}
    with contextlib.suppress(ToolMissing):
        versions["ffmpeg"] = ffmpeg().version
    versions.update(renderers.fingerprint())  # versions, and features (blender+gpu)
    return versions


# Services that need a tool: the fingerprint entries of which at least one must be here.
SERVICE_TOOLS = {"transcode": ("ffmpeg",), "render": ("blender", "povray")}


def offerable_services(requested: dict[str, int] | None) -> tuple[dict[str, int], list[str]]:
    """The services this node can offer, and why any asked for are dropped. ``None`` asks
    for the defaults: ``command`` with one instance per core, and ``transcode`` and
    ``render`` with one each (ffmpeg and renderers use every core themselves) when their
    tools run here.
    """
    tools = tool_versions()
    if requested is None:
        requested = {"command": os.cpu_count() or 1, "transcode": 1, "render": 1}
        quiet = True
    else:
        quiet = False
    offered: dict[str, int] = {}
    dropped: list[str] = []
    for service, count in requested.items():
        needed = SERVICE_TOOLS.get(service, ())
        if needed and not any(tool in tools for tool in needed):
            if not quiet:
                names = " or ".join(needed)
                dropped.append(f"{service} is not offered: {names} does not run on this node")
            continue
        offered[service] = count
    return offered, dropped
