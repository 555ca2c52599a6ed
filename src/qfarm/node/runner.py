"""What a service node does with one segment attempt: preflight, run, report.

The engine's worker plugin carries a :class:`SegmentRunner` (the node's configuration with
it) into each worker process and calls :meth:`SegmentRunner.run` in a worker thread with the
attempt's :class:`SegmentTask`; the :class:`AttemptResult` goes back. Nothing here imports
the engine, so the same code runs under any executor.
"""

from __future__ import annotations

import functools
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from qfarm import jobtypes
from qfarm.domain.errors import QfarmError
from qfarm.domain.messages import AttemptResult, SegmentTask
from qfarm.domain.requirements import GPU
from qfarm.domain.schedule import parse_schedule
from qfarm.domain.units import duration
from qfarm.jobtypes.base import SegmentContext, SegmentOutcome, describe_process_failure
from qfarm.jobtypes.openjd import pool as openjd_pool
from qfarm.jobtypes.supervisor import SUPERVISOR
from qfarm.node import facts as node_facts
from qfarm.node import pathmap, scratch
from qfarm.node.availability import Availability
from qfarm.node.config import NodeConfig
from qfarm.node.thumbs import make_thumbnail

LOG_TAIL_LINES = 20
LOG_TAIL_CHARS = 4000


class GpuPool:
    """The GPU devices of this worker process's node, handed to segments as they start and
    taken back when their attempt ends, however it ends. The dispatcher never gives a node
    more gpu-holding segments than it has GPUs, so two segments that run at once always
    get different devices."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: dict[str, tuple[str, ...]] = {}  # attempt key -> its devices

    def take(self, key: str, count: int, devices: tuple[str, ...]) -> tuple[str, ...]:
        with self._lock:
            busy = {d for held in self._held.values() for d in held}
            free = [d for d in devices if d not in busy]
            if len(free) < count:
                raise QfarmError(
                    f"the segment holds {count} gpu but {len(free)} of this node's "
                    f"{len(devices)} are free"
                )
            self._held[key] = tuple(free[:count])
            return self._held[key]

    def give_back(self, key: str) -> None:
        with self._lock:
            self._held.pop(key, None)

    def held(self) -> dict[str, tuple[str, ...]]:
        with self._lock:
            return dict(self._held)


GPUS = GpuPool()  # one per worker process: a node's segments run in its one worker


@functools.cache
def _availability(schedule: str | None, when_idle: float | None) -> Availability:
    """The node's hours, read once per worker process (`qfarm node` checked them)."""
    return Availability(parse_schedule(schedule) if schedule else None, when_idle)


# Preflights already run in this node process, by job id; the lock makes two segments of one
# job that start together run it once.
_preflight_lock = threading.Lock()
_preflights: dict[int, SegmentOutcome] = {}


@dataclass(frozen=True)
class SegmentRunner:
    """A node's runner (see qfarm.engine.base.NodeRunner): picklable, it is all a worker
    process needs to know of its node."""

    config: NodeConfig = field(default_factory=NodeConfig)

    def run(
        self,
        task: SegmentTask,
        on_start: Callable[[int], None],
        on_progress: Callable[[float], None],
    ) -> AttemptResult:
        return run_segment(task, on_start, on_progress, self.config)

    def kill(self, key: str) -> bool:
        return SUPERVISOR.kill(key)

    def kill_many(self, keys: list[str]) -> list[bool]:
        return SUPERVISOR.kill_many(keys)

    def suspend(self, key: str) -> bool:
        return SUPERVISOR.suspend(key)

    def resume(self, key: str) -> bool:
        return SUPERVISOR.resume(key)

    def suspend_all(self) -> list[str]:
        """Stop every segment process of this node where it is (a schedule that ends with
        ``suspend``); :meth:`continue_all` continues them."""
        return SUPERVISOR.suspend_all()

    def continue_all(self) -> list[str]:
        return SUPERVISOR.continue_all()

    def kill_all(self) -> int:
        killed = SUPERVISOR.kill_all()
        openjd_pool.close_all()  # the worker closes: end the OpenJD sessions kept idle here
        return killed

    def facts(self, services: dict[str, int]) -> dict[str, Any]:
        # Only the tools its services need: no job it can run looks at the others, and
        # asking Blender its version costs half a second of CPU at every worker start.
        facts = node_facts.node_facts(node_facts.tools_for(services))
        config = self.config
        # What jobs' requirements are matched against (qfarm.domain.requirements.NodeOffer);
        # "resources" also tells the engine which of the worker's resources are counted
        # ones rather than services.
        facts.update(
            tags=list(config.tags),
            resources={k: v for k, v in config.resources.items() if v > 0},
            os_family=node_facts.os_family(),
            cpu_arch=node_facts.cpu_arch(),
            gpus=int(config.resources.get(GPU, 0)),
            gpu_memory_mib=config.gpu_memory_mib,
            scratch_gib=node_facts.scratch_gib(str(config.scratch_root)),
            schedule=config.schedule,
            schedule_end=config.schedule_end,
            when_idle=config.when_idle,
        )
        return facts

    def host_load(self) -> dict[str, float]:
        return node_facts.host_load()

    def availability(self) -> float:
        """Whether the node takes work now (qfarm.node.availability: AVAILABLE, OFF_HOURS
        or USER_ACTIVE), for its heartbeats."""
        return _availability(self.config.schedule, self.config.when_idle).state()


def run_segment(
    task: SegmentTask,
    on_start: Callable[[int], None],
    on_progress: Callable[[float], None],
    config: NodeConfig | None = None,
) -> AttemptResult:
    """Run one attempt. Never raises: every ending is described in the result."""
    config = config or NodeConfig()
    started_at = time.time()
    try:
        environment = _devices(task, config)
    except QfarmError as exc:
        return AttemptResult(
            key=task.key, ok=False, error=str(exc), started_at=started_at, ended_at=time.time()
        )
    try:
        return _run_attempt(task, on_start, on_progress, config, environment, started_at)
    finally:
        GPUS.give_back(task.key)


def _devices(task: SegmentTask, config: NodeConfig) -> dict[str, str]:
    """The variables that give an attempt its devices: CUDA_VISIBLE_DEVICES with the GPUs
    it holds, taken from the node's pool; nothing for an attempt that holds no gpu."""
    count = int(task.resources.get(GPU, 0))
    if count <= 0:
        return {}
    devices = GPUS.take(task.key, count, config.gpu_devices)
    return {"CUDA_VISIBLE_DEVICES": ",".join(devices)}


def _run_attempt(
    task: SegmentTask,
    on_start: Callable[[int], None],
    on_progress: Callable[[float], None],
    config: NodeConfig,
    environment: dict[str, str],
    started_at: float,
) -> AttemptResult:
    log_path = Path(task.log_path)
    ctx = SegmentContext(
        key=task.key,
        log_path=log_path,
        timeout=task.timeout,
        on_start=on_start,
        on_progress=on_progress,
        threads=task.threads,
        environment=environment,
        job_id=task.job_id,
        job_queued_after=task.job_queued_after,
        stall_timeout=_stall_timeout(task),
        path_map=config.path_map,
    )
    thumb = None
    try:
        if config.path_map and not jobtypes.get(task.job_type).maps_paths:
            task = replace(
                task,
                job=pathmap.map_all(task.job, config.path_map),
                segment=pathmap.map_all(task.segment, config.path_map),
            )
        if task.job.get("storage"):
            with scratch.using_upload(task, config) as (local, folder):
                outcome = _run(local, ctx)
                if outcome.ok:
                    # Before the outputs are sent: sending removes them from scratch.
                    thumb = make_thumbnail(local, ctx)
                    scratch.send_outputs(local, folder, config)
        else:
            outcome = _run(task, ctx)
            if outcome.ok:
                thumb = make_thumbnail(task, ctx)
    except QfarmError as exc:  # cluster storage could not be reached, say
        ctx.log(str(exc))
        outcome = SegmentOutcome(ok=False, error=str(exc))
    except Exception as exc:  # a bug in a job type must not take the node down
        ctx.log(traceback.format_exc())
        outcome = SegmentOutcome(ok=False, error=f"{type(exc).__name__}: {exc}")
    finally:
        SUPERVISOR.forget(task.key)
    if ctx.stalled and not outcome.ok:
        # Its log is kept, with the reason last; the attempt counts as failed, so the
        # segment is tried again on another node (placement prefers one it did not fail on).
        error = f"no progress for {duration(ctx.stall_timeout)}"
        ctx.log(f"ended: {error} (its stall timeout)")
        outcome = SegmentOutcome(ok=False, exit_code=outcome.exit_code, error=error)
    if outcome.timed_out and task.timeout:
        outcome = SegmentOutcome(
            ok=False,
            exit_code=outcome.exit_code,
            error=f"timed out after {task.timeout:g} s",
            timed_out=True,
        )
    return AttemptResult(
        key=task.key,
        ok=outcome.ok,
        exit_code=outcome.exit_code,
        error=outcome.error,
        killed=outcome.killed,
        pid=ctx.pid,
        started_at=started_at,
        ended_at=time.time(),
        log_tail=log_tail(log_path),
        thumbnail=thumb if outcome.ok else None,
    )


def _stall_timeout(task: SegmentTask) -> float | None:
    try:
        return jobtypes.stall_timeout(task.job_type, task.job)
    except QfarmError:  # a job type this node does not know: _preflight says so
        return None


def _run(task: SegmentTask, ctx: SegmentContext) -> SegmentOutcome:
    outcome = _preflight(task, ctx)
    if outcome is None:
        outcome = jobtypes.get(task.job_type).run(task.job, task.segment, ctx)
    return outcome


def _preflight(task: SegmentTask, ctx: SegmentContext) -> SegmentOutcome | None:
    """Run the job's preflight once per node; return its failure, or None to go on."""
    argv = task.job.get("preflight") or []
    if not argv:
        return None
    job_id = task.job_id
    with _preflight_lock:
        done = _preflights.get(job_id)
        if done is None:
            ctx.log(f"preflight: {' '.join(argv)}")
            result = ctx.run(argv, cwd=task.job.get("cwd"), env=task.job.get("env"))
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
