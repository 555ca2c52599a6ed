"""The domain model: batches, jobs, segments and nodes, their states, and the legal moves.

This module is pure: no I/O, no clock, no database. The store asks it before every state
change, so a bug elsewhere cannot move a segment from ``done`` back to ``running`` or finish a
batch twice; it raises :class:`IllegalTransition` instead, which names the object and both states.

The tables below are the whole contract. Adding a state means adding it here first.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from qfarm.domain.notify import Notification
from qfarm.domain.requirements import NO_REQUIREMENTS, Requirements


class IllegalTransition(Exception):
    """A state change that the tables below do not allow."""

    def __init__(self, kind: str, ident: object, old: enum.Enum, new: enum.Enum) -> None:
        self.kind = kind
        self.ident = ident
        self.old = old
        self.new = new
        super().__init__(f"{kind} {ident}: cannot go from {old.value} to {new.value}")


class SegmentState(enum.StrEnum):
    QUEUED = "queued"  # waiting in the controller's queue
    DISPATCHED = "dispatched"  # handed to the engine for one node; not started yet
    RUNNING = "running"  # the node started its process
    # Its processes are stopped where they are (SIGSTOP) and hold their node's instance,
    # until they are continued (SIGCONT), canceled, or their node is lost.
    SUSPENDED = "suspended"
    DONE = "done"
    FAILED = "failed"  # the last attempt failed; retried (-> queued) while retries are left
    CANCELED = "canceled"


class JobState(enum.StrEnum):
    WAITING = "waiting"  # for the jobs it depends on
    QUEUED = "queued"
    RUNNING = "running"
    ASSEMBLING = "assembling"  # its assemble segment runs
    DONE = "done"
    FAILED = "failed"
    CANCELED = "canceled"


class BatchState(enum.StrEnum):
    HELD = "held"  # submitted on hold: nothing is dispatched until it is released
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"  # no new segments are dispatched; running ones finish (or are suspended)
    DONE = "done"
    FAILED = "failed"
    CANCELED = "canceled"


class NodeState(enum.StrEnum):
    ONLINE = "online"
    DISABLED = "disabled"  # drained: running segments finish, no new ones are given
    OFFLINE = "offline"


class CancelState(enum.StrEnum):
    """Whether a batch's cancel is under way: beside its :class:`BatchState`, not one of them.

    A cancel ends queued work at once but must wait for the kills of running segments to
    report back; meanwhile the batch keeps the state people see (running, paused) and no
    report may requeue one of its segments. Stored as ``batches.canceling``.
    """

    NONE = "none"
    CANCELING = "canceling"


class NodeAdmission(enum.StrEnum):
    """Whether the dispatcher gives a live node work, beside its :class:`NodeState`.

    A node is refused while it runs another qfarm version, has not told its version, or
    keeps crashing; it is admitted again when that is no longer so (or it is enabled).
    """

    ADMITTED = "admitted"
    REFUSED = "refused"


class AttemptOutcome(enum.StrEnum):
    """How an attempt ended. The values are what ``attempts.outcome`` stores."""

    DONE = "done"
    FAILED = "failed"  # counts against the job's retries
    CANCELED = "canceled"  # killed on purpose: never retried
    LOST = "lost"  # its node went away: requeued, not counted against retries


class SegmentKind(enum.StrEnum):
    WORK = "work"
    ASSEMBLE = "assemble"  # runs once every work segment of its job is done


S, J, B, N = SegmentState, JobState, BatchState, NodeState

SEGMENT_TRANSITIONS: Mapping[SegmentState, frozenset[SegmentState]] = {
    S.QUEUED: frozenset({S.DISPATCHED, S.CANCELED}),
    # dispatched -> queued: the node was lost or the engine gave the segment back before it began.
    S.DISPATCHED: frozenset({S.RUNNING, S.QUEUED, S.FAILED, S.CANCELED}),
    # running -> queued: its node was lost; the attempt does not count against its retries.
    S.RUNNING: frozenset({S.DONE, S.FAILED, S.CANCELED, S.QUEUED, S.SUSPENDED}),
    # suspended -> running: continued; -> queued: its node was lost or restarted (not a
    # failure); -> canceled: a cancel continues then kills it. -> done | failed: a process
    # that ended just as it was stopped, or was killed while stopped (by the system, say),
    # still reports how it ended.
    S.SUSPENDED: frozenset({S.RUNNING, S.QUEUED, S.CANCELED, S.DONE, S.FAILED}),
    S.DONE: frozenset(),
    S.FAILED: frozenset({S.QUEUED}),  # a retry, or a resubmit
    S.CANCELED: frozenset({S.QUEUED}),  # a resubmit
}

JOB_TRANSITIONS: Mapping[JobState, frozenset[JobState]] = {
    J.WAITING: frozenset({J.QUEUED, J.CANCELED}),
    J.QUEUED: frozenset({J.RUNNING, J.CANCELED}),
    # running -> queued: every running segment was given back (a lost node, a restart).
    J.RUNNING: frozenset({J.ASSEMBLING, J.DONE, J.FAILED, J.CANCELED, J.QUEUED}),
    J.ASSEMBLING: frozenset({J.DONE, J.FAILED, J.CANCELED}),
    J.DONE: frozenset(),
    # A resubmit: queued, or waiting again when what it depends on must rerun too.
    J.FAILED: frozenset({J.QUEUED, J.WAITING}),
    J.CANCELED: frozenset({J.QUEUED, J.WAITING}),
}

BATCH_TRANSITIONS: Mapping[BatchState, frozenset[BatchState]] = {
    B.HELD: frozenset({B.QUEUED, B.CANCELED}),
    B.QUEUED: frozenset({B.RUNNING, B.HELD, B.PAUSED, B.CANCELED}),
    B.RUNNING: frozenset({B.PAUSED, B.DONE, B.FAILED, B.CANCELED}),
    # A paused batch resumes to queued when nothing of it had started, to running otherwise.
    # Its last running segments may finish while it is paused, which ends it.
    B.PAUSED: frozenset({B.RUNNING, B.QUEUED, B.DONE, B.FAILED, B.CANCELED}),
    B.DONE: frozenset(),
    B.FAILED: frozenset({B.QUEUED}),  # a resubmit
    B.CANCELED: frozenset({B.QUEUED}),  # a resubmit
}

NODE_TRANSITIONS: Mapping[NodeState, frozenset[NodeState]] = {
    N.ONLINE: frozenset({N.DISABLED, N.OFFLINE}),
    N.DISABLED: frozenset({N.ONLINE, N.OFFLINE}),
    N.OFFLINE: frozenset({N.ONLINE, N.DISABLED}),
}

# Cancel while canceling is no move: the cancel is repeated (its kills sent again) instead.
CANCEL_TRANSITIONS: Mapping[CancelState, frozenset[CancelState]] = {
    CancelState.NONE: frozenset({CancelState.CANCELING}),
    # canceling -> none: a resubmit, or a reopen that forgets a cancel its process did not
    # live to finish.
    CancelState.CANCELING: frozenset({CancelState.NONE}),
}

NODE_ADMISSION_TRANSITIONS: Mapping[NodeAdmission, frozenset[NodeAdmission]] = {
    NodeAdmission.ADMITTED: frozenset({NodeAdmission.REFUSED}),
    NodeAdmission.REFUSED: frozenset({NodeAdmission.ADMITTED}),
}

FINAL_SEGMENT_STATES = frozenset({S.DONE, S.FAILED, S.CANCELED})
FINAL_JOB_STATES = frozenset({J.DONE, J.FAILED, J.CANCELED})
FINAL_BATCH_STATES = frozenset({B.DONE, B.FAILED, B.CANCELED})
# Out on a node: its attempt is current, holds an instance, and is what a lost node requeues.
ACTIVE_SEGMENT_STATES = frozenset({S.DISPATCHED, S.RUNNING, S.SUSPENDED})

_TABLES: dict[type[enum.Enum], tuple[str, Mapping[Any, frozenset[Any]]]] = {
    SegmentState: ("segment", SEGMENT_TRANSITIONS),
    JobState: ("job", JOB_TRANSITIONS),
    BatchState: ("batch", BATCH_TRANSITIONS),
    NodeState: ("node", NODE_TRANSITIONS),
    CancelState: ("batch cancel", CANCEL_TRANSITIONS),
    NodeAdmission: ("node admission", NODE_ADMISSION_TRANSITIONS),
}


def can_transition(old: enum.Enum, new: enum.Enum) -> bool:
    """Whether the tables allow ``old -> new`` (both of one state type)."""
    if type(old) is not type(new):
        return False
    _, table = _TABLES[type(old)]
    return new in table[old]


def check_transition(ident: object, old: enum.Enum, new: enum.Enum) -> None:
    """Raise :class:`IllegalTransition` unless ``old -> new`` is allowed."""
    kind, _ = _TABLES[type(old)]
    if not can_transition(old, new):
        raise IllegalTransition(kind, ident, old, new)


def job_outcome(segment_states: list[SegmentState]) -> JobState | None:
    """The state a job reaches from its segments' states, or None while it is not finished.

    A failed segment does not stop its job's other segments: they run to the end, so a
    resubmit only has to redo what failed. The job ends when every segment has ended.
    """
    if not segment_states or any(s not in FINAL_SEGMENT_STATES for s in segment_states):
        return None
    if all(s is S.DONE for s in segment_states):
        return J.DONE
    if any(s is S.FAILED for s in segment_states):
        return J.FAILED
    return J.CANCELED


def batch_outcome(job_states: list[JobState]) -> BatchState | None:
    """The state a batch reaches from its jobs' states, or None while any job is unfinished."""
    if not job_states or any(s not in FINAL_JOB_STATES for s in job_states):
        return None
    if all(s is J.DONE for s in job_states):
        return B.DONE
    if any(s is J.FAILED for s in job_states):
        return B.FAILED
    return B.CANCELED


# Priorities: higher runs first. Named levels map onto numbers so both can be stored.
PRIORITY_NAMES: Mapping[str, int] = {"low": 25, "medium": 50, "high": 75}
DEFAULT_PRIORITY = PRIORITY_NAMES["medium"]


def priority_label(value: int) -> str:
    """How a priority reads to people: its name where it is one of the named levels, else
    the number (``75`` reads ``high``, ``60`` reads ``60``)."""
    for name, number in PRIORITY_NAMES.items():
        if number == value:
            return name
    return str(value)


def parse_priority(text: str | int) -> int:
    """``high``/``medium``/``low`` or a whole number from 0 to 100."""
    if isinstance(text, bool) or not isinstance(text, int | str):
        raise ValueError(f"priority {text!r} is not high, medium, low or a number from 0 to 100")
    if isinstance(text, int):
        value = text
    elif text.strip().lower() in PRIORITY_NAMES:
        return PRIORITY_NAMES[text.strip().lower()]
    else:
        try:
            value = int(text)
        except ValueError:
            raise ValueError(
                f"priority {text!r} is not high, medium, low or a number from 0 to 100"
            ) from None
    if not 0 <= value <= 100:
        raise ValueError(f"priority {value} is out of range: use 0 to 100")
    return value


@dataclass(frozen=True)
class SegmentPlan:
    """One segment as a job type plans it: what to run, before any state exists.

    ``spec`` is JSON-serialisable and is what the node receives; ``frames`` and ``outputs``
    let the controller show progress and refuse two segments that write one file.
    """

    index: int  # 1-based within its job
    spec: dict[str, Any]
    label: str  # what people see: "frames 1-10", "clip.mov"
    frames: int = 1  # units of work, for progress
    outputs: tuple[str, ...] = ()
    kind: SegmentKind = SegmentKind.WORK


@dataclass(frozen=True)
class QueuedSegment:
    """A work segment of a job that was never tried, as its job type may cut it again
    (OpenJD's adaptive chunking): its row, its index in the job and what it runs."""

    id: int
    index: int
    spec: dict[str, Any]
    frames: int


@dataclass(frozen=True)
class JobRequest:
    """A job as a client asks for it, before validation."""

    job_type: str
    spec: dict[str, Any]
    name: str = ""
    retries: int = 2
    timeout: float | None = None  # seconds per segment attempt
    depends_on: tuple[str, ...] = ()  # names of jobs in the same batch
    # Tags, counted resources and host constraints its nodes must meet (NO_REQUIREMENTS:
    # any node that offers its service).
    requirements: Requirements = NO_REQUIREMENTS


@dataclass(frozen=True)
class BatchRequest:
    """A batch as a client submits it."""

    jobs: tuple[JobRequest, ...]
    name: str = ""
    owner: str = ""
    priority: int = DEFAULT_PRIORITY
    hold: bool = False
    start_at: float | None = None  # epoch seconds; nothing is dispatched before it
    serialize: bool = False  # run jobs strictly in the order written
    # Who hears of its end (besides the farm-wide defaults): domain.notify.
    notify: tuple[Notification, ...] = ()


@dataclass(frozen=True)
class Attempt:
    segment_id: int
    number: int  # 1-based
    node: str
    dispatched_at: float
    started_at: float | None = None
    ended_at: float | None = None
    exit_code: int | None = None
    outcome: AttemptOutcome | None = None
    error: str = ""
    log_tail: str = ""
    log_path: str = ""
    pid: int | None = None
    last_progress_at: float | None = None


@dataclass(frozen=True)
class Segment:
    id: int
    job_id: int
    batch_id: int
    index: int
    kind: SegmentKind
    state: SegmentState
    label: str
    spec: dict[str, Any]
    frames: int
    attempts: int  # attempts made so far, lost ones included
    failures: int = 0  # failed attempts: what retries count against
    node: str | None = None
    error: str = ""
    progress: float = 0.0  # 0..1 of the running attempt


@dataclass(frozen=True)
class Job:
    id: int
    batch_id: int
    index: int
    name: str
    job_type: str
    service: str
    state: JobState
    spec: dict[str, Any]
    retries: int
    timeout: float | None
    depends_on: tuple[int, ...] = ()
    error: str = ""
    failed_nodes: tuple[str, ...] = ()
    requirements: Requirements = NO_REQUIREMENTS


@dataclass(frozen=True)
class Batch:
    id: int
    name: str
    owner: str
    priority: int
    state: BatchState
    submitted_at: float
    start_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    serialize: bool = False


@dataclass(frozen=True)
class Node:
    name: str
    address: str
    state: NodeState
    services: dict[str, int] = field(default_factory=dict)  # service -> instances
    host: str = ""
    cores: int = 0
    memory: int = 0
    fingerprint: dict[str, str] = field(default_factory=dict)
    last_seen: float | None = None
    tags: tuple[str, ...] = ()  # what jobs may require of it (qfarm node --tags)
    resources: dict[str, int] = field(default_factory=dict)  # counted: {"gpu": 2}


@dataclass(frozen=True)
class BatchCounts:
    """How many segments of a batch are in each state: what progress bars show."""

    total: int
    queued: int
    dispatched: int
    running: int
    done: int
    failed: int
    canceled: int
    suspended: int = 0  # stopped where they were (pause --suspend), until resumed
    work_total: float = 0.0  # frames (units of work) of every segment
    work_done: float = 0.0  # of done segments, and the reported part of running ones

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.canceled


def failure_summary(segments: Iterable[Segment]) -> str:
    """Why a job failed, told by its failed segments: how many, and the first one's error
    (a job whose segments failed carries no error of its own)."""
    failed = sorted((s for s in segments if s.state is SegmentState.FAILED), key=lambda s: s.index)
    if not failed:
        return ""
    first = failed[0]
    what = f"segment {first.index} ({first.label})"
    more = f"{len(failed)} segments failed; " if len(failed) > 1 else ""
    return f"{more}{what} failed" + (f": {first.error}" if first.error else "")
