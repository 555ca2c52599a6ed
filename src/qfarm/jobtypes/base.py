"""The job-type protocol: what every kind of work (command, transcode, render) provides.

A job type has two halves that run in different places:

* on the controller, pure planning: :meth:`JobType.validate` checks a job up front and
  :meth:`JobType.plan` cuts it into segments. Both run before anything is queued, so a bad job
  is refused whole;
* on a service node, :meth:`JobType.run` runs one segment through a :class:`SegmentContext`,
  which owns the process supervision, the log, the timeout and progress reports.

A job type may also cut its queued segments again once some have run
(:class:`ResizesSegments`, on the controller).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from qfarm.domain.errors import InvalidRequest
from qfarm.domain.model import QueuedSegment, SegmentPlan
from qfarm.jobtypes.supervisor import SUPERVISOR, ProcessResult, StallWatch, Supervisor


@dataclass(frozen=True)
class SegmentOutcome:
    """How one attempt of a segment ended, as the job type sees it."""

    ok: bool
    exit_code: int | None = None
    error: str = ""  # one line, for people: why it failed
    timed_out: bool = False
    killed: bool = False


@dataclass
class SegmentContext:
    """What a job type gets to run one segment attempt on a node.

    It runs processes under the node's supervisor with the attempt's log and what is left of
    its timeout, and passes start and progress reports on to the controller. With a
    ``stall_timeout`` it ends a process that shows no progress for that long (see
    StallWatch), and says so in ``stalled``.
    """

    key: str
    log_path: Path
    timeout: float | None
    on_start: Callable[[int], None] = lambda pid: None
    on_progress: Callable[[float], None] = lambda fraction: None
    threads: int | None = None  # cores this segment may use, for tools that thread themselves
    supervisor: Supervisor = field(default=SUPERVISOR)
    # Variables every process of the attempt gets on top of the node's own: the devices of
    # the node's counted resources it was given (CUDA_VISIBLE_DEVICES), say.
    environment: Mapping[str, str] = field(default_factory=dict)
    job_id: int = 0
    # See SegmentTask.job_queued_after.
    job_queued_after: int | None = None
    stall_timeout: float | None = None  # seconds without progress; None: not watched
    # The node's --path-map (controller prefix -> this node's), for a job type that maps
    # paths itself (JobType.maps_paths); the others get their spec already mapped.
    path_map: Mapping[str, str] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    pid: int | None = None
    stalled: bool = False  # a process of it was ended by the stall watch
    _stall: StallWatch | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.stall_timeout:
            watch = self._stall = StallWatch(self.stall_timeout)
            report = self.on_progress

            def on_progress(fraction: float) -> None:
                watch.progressed(fraction)
                report(fraction)

            self.on_progress = on_progress

    def remaining(self) -> float | None:
        if self.timeout is None:
            return None
        # The time the attempt spent suspended does not count against its timeout.
        used = time.monotonic() - self.started - self.supervisor.suspended_seconds(self.key)
        return max(0.0, self.timeout - used)

    def run(
        self,
        argv: Sequence[str],
        *,
        cwd: str | None = None,
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
    ) -> ProcessResult:
        """Run ``argv`` to its end; its output goes to the attempt's log, or to ``log_path``
        when the caller wants to read it back on its own (ffmpeg's decode errors, say)."""
        remaining = self.remaining()
        if remaining is not None and remaining <= 0:
            return ProcessResult(exit_code=-9, timed_out=True)

        if self.environment:
            env = {**(os.environ if env is None else env), **self.environment}

        def started(pid: int) -> None:
            if self.pid is None:
                self.pid = pid
                self.on_start(pid)

        result = self.supervisor.run(
            self.key,
            argv,
            cwd=cwd,
            env=env,
            log_path=log_path or self.log_path,
            timeout=remaining,
            on_start=started,
            stall=self._stall,
        )
        if result.stalled:
            self.stalled = True
        return result

    def log(self, line: str) -> None:
        """Add a line of qfarm's own to the attempt's log."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a", encoding="utf-8") as fh:
            fh.write(f"[qfarm] {line}\n")


class JobType(Protocol):
    """One kind of work. Implementations are modules' singletons, registered by name."""

    name: str  # what users type: "command"
    service: str  # which node service runs its work segments
    # True for a job type whose node keeps state from one segment of a job to the next (an
    # OpenJD session): its tasks say how many segments of the job are still queued
    # (SegmentTask.job_queued_after), which costs the dispatcher a query per tick.
    keeps_sessions: bool
    # True for a job type that applies the node's --path-map itself (SegmentContext.path_map):
    # OpenJD gives it to its sessions as path mapping rules, for the template's PATH values
    # and for what a tool reads from the rules file. The others' specs are rewritten string
    # by string before they run.
    maps_paths: bool
    # Seconds a segment attempt may show no progress (no progress report that moves, no
    # new output in its log) before its processes are ended and it is tried elsewhere;
    # None: never. A job's ``stall_timeout`` overrides it.
    stall_timeout: float | None

    def required_tools(self, spec: Mapping[str, Any]) -> tuple[str, ...]:
        """Fingerprint entries (tool versions) a node needs to run this validated job, equal
        on every node that runs one of its segments: ("ffmpeg",) for a transcode, whose
        chunks are joined; the renderer for a render."""
        ...

    def validate(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Check a job's spec and return it normalised (absolute paths, defaults filled).
        The farm's own :data:`CLUSTER_OPTIONS` are accepted (by :func:`refuse_unknown`) and
        left out: :func:`qfarm.jobtypes.plan_job` adds them to what this returns.

        Raises :class:`qfarm.errors.InvalidRequest` with a one-line message.
        """
        ...

    def plan(self, spec: Mapping[str, Any]) -> list[SegmentPlan]:
        """Cut a validated spec into segments. Pure: the same spec gives the same plan."""
        ...

    def run(
        self, job: Mapping[str, Any], segment: Mapping[str, Any], ctx: SegmentContext
    ) -> SegmentOutcome:
        """Run one segment on this node. Called in a worker thread."""
        ...


@runtime_checkable
class ResizesSegments(Protocol):
    """A job type whose segments still to run may be cut again once some of its segments
    have run: OpenJD's adaptive chunking, where a chunk's size follows from the time a task
    took and the step's target run time. The controller asks after each segment done."""

    def resizes(self, spec: Mapping[str, Any]) -> bool:
        """Whether the job's segments are ever cut again (read once per job)."""
        ...

    def resize(
        self,
        spec: Mapping[str, Any],
        seconds_per_task: float,
        queued: Sequence[QueuedSegment],
        next_index: int,
    ) -> list[SegmentPlan] | None:
        """The segments to run in place of ``queued`` (numbered from ``next_index``), or
        None to keep them as they are."""
        ...


def job_path(cwd: str, value: object) -> str:
    """A path from a job's spec, as the job means it: ``~`` expanded, relative to its
    working directory, normalised."""
    return os.path.normpath(os.path.join(cwd, os.path.expanduser(str(value))))


# Options the farm itself sets on a job of any type, which no job type reads: ``storage``
# (``{"upload": ID, "path": FOLDER}``, set by ``--upload``) says the job's files are in
# cluster storage, for the node to fetch them into its scratch folder (qfarm.node.scratch)
# and send the outputs back; ``stall_timeout`` (seconds, 0 for none) overrides the job
# type's own (JobType.stall_timeout). :func:`qfarm.jobtypes.plan_job` carries them into the
# validated spec, so job types neither list nor copy them.
CLUSTER_OPTIONS = frozenset({"storage", "stall_timeout"})


def refuse_unknown(spec: Mapping[str, Any], allowed: frozenset[str], what: str) -> None:
    """Raise InvalidRequest naming the first option of ``spec`` that ``what`` does not take
    (the :data:`CLUSTER_OPTIONS` every job takes aside)."""
    allowed = allowed | CLUSTER_OPTIONS
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise InvalidRequest(
            f"unknown option {unknown[0]!r} for a {what}: it takes " + ", ".join(sorted(allowed))
        )


def segment_size(spec: Mapping[str, Any], default: int) -> int:
    """The job's ``segment_size`` (frames per segment), checked."""
    raw = spec.get("segment_size")
    try:
        size = default if raw is None else int(raw)
    except (TypeError, ValueError):
        raise InvalidRequest(f"segment size {raw!r} is not a whole number") from None
    if size < 1:
        raise InvalidRequest(f"--segment-size must be at least 1, not {size}")
    return size


def describe_process_failure(result: ProcessResult, what: str) -> SegmentOutcome:
    """Turn a process that did not succeed into an outcome with a message."""
    if result.error:
        return SegmentOutcome(ok=False, exit_code=result.exit_code, error=result.error)
    if result.killed:
        return SegmentOutcome(ok=False, exit_code=result.exit_code, error="canceled", killed=True)
    if result.timed_out:
        return SegmentOutcome(
            ok=False, exit_code=result.exit_code, error=f"{what} timed out", timed_out=True
        )
    if result.exit_code < 0:
        return SegmentOutcome(
            ok=False,
            exit_code=result.exit_code,
            error=f"{what} was killed by signal {-result.exit_code}",
        )
    return SegmentOutcome(
        ok=False, exit_code=result.exit_code, error=f"{what} exited with code {result.exit_code}"
    )
