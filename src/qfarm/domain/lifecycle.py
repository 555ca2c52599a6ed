"""The lifecycle rules: what a segment, job, batch or node becomes when something happens.

The transition tables in :mod:`qfarm.domain.model` say which moves are legal; the functions
here say which legal move a given event makes: an attempt that ended, a job whose segments
all ended, dependants whose jobs ended, a node that went away. They are pure (no I/O, no
clock, no database) so that they can be tested by the thousand without a store, and the
store only persists what they decide.

A rule that moves something through several states at once (a segment reported done before
its start report: dispatched -> running -> done) returns the whole path, so the store can
check and record every step and the event stream sees each of them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from qfarm.domain.model import (
    ACTIVE_SEGMENT_STATES,
    FINAL_BATCH_STATES,
    AttemptOutcome,
    BatchState,
    CancelState,
    JobState,
    NodeAdmission,
    NodeState,
    SegmentKind,
    SegmentState,
    batch_outcome,
    job_outcome,
)

S, J, B = SegmentState, JobState, BatchState

# ------------------------------------------------------------------------- attempts


def attempt_outcome(*, ok: bool, canceled: bool = False, lost: bool = False) -> AttemptOutcome:
    """How an attempt ended, from what its report says. A lost attempt says nothing true
    about its process, so ``lost`` wins over the rest; a kill on purpose wins over its
    exit code."""
    if lost:
        return AttemptOutcome.LOST
    if canceled:
        return AttemptOutcome.CANCELED
    return AttemptOutcome.DONE if ok else AttemptOutcome.FAILED


def is_current(state: SegmentState, attempts: int, attempt: int) -> bool:
    """Whether a report about ``attempt`` concerns what the segment is doing now. Reports
    arrive late (a kill's result after a lost node's requeue) and must not move a segment
    that has moved on: only the latest attempt of an active segment counts."""
    return attempt == attempts and state in ACTIVE_SEGMENT_STATES


def on_started(state: SegmentState) -> tuple[SegmentState, ...]:
    """A node started the process: a dispatched segment runs (a running one already does)."""
    return (S.RUNNING,) if state is S.DISPATCHED else ()


def on_suspended(state: SegmentState) -> tuple[SegmentState, ...]:
    """Its node stopped the processes (SIGSTOP): a running segment is suspended. Any other
    state is no move: a segment that ended or was given back meanwhile stays where the
    report that came first put it, and a suspended one is suspended already."""
    return (S.SUSPENDED,) if state is S.RUNNING else ()


def on_continued(state: SegmentState) -> tuple[SegmentState, ...]:
    """Its node continued the processes (SIGCONT): a suspended segment runs again, on the
    same attempt, from where it was stopped."""
    return (S.RUNNING,) if state is S.SUSPENDED else ()


@dataclass(frozen=True)
class SegmentFacts:
    """What the retry rule needs to know of a segment whose attempt ended."""

    state: SegmentState
    kind: SegmentKind
    failures: int  # failed attempts before this one
    retries: int  # its job's retry limit: how many failed attempts are retried
    cancel: CancelState = CancelState.NONE  # whether its batch is being canceled


@dataclass(frozen=True)
class AttemptEnd:
    """What a segment becomes when an attempt ends.

    ``error`` and ``progress`` are None where the segment keeps its own. ``blocks_assembly``
    is the reason its job's queued assemble segment must be canceled (a work segment ended
    for good without being done, so the assembly can never run), or "".
    """

    path: tuple[SegmentState, ...]
    failures: int
    error: str | None = None
    progress: float | None = None
    counts_node: bool = False  # the attempt's node goes on its job's failed nodes
    blocks_assembly: str = ""

    @property
    def state(self) -> SegmentState | None:
        """Where the segment ends up, or None where it does not move."""
        return self.path[-1] if self.path else None


def end_attempt(segment: SegmentFacts, outcome: AttemptOutcome, error: str = "") -> AttemptEnd:
    """The retry rule, and what a lost or canceled attempt does.

    - done: done (through running, when the start report never came);
    - canceled: canceled, never retried;
    - lost: queued again, not counted against retries, unless the batch is being canceled:
      then it is canceled, as its kill would have done;
    - failed: failed, counted; queued again while failures stay within the job's retries,
      unless the batch is being canceled.
    """
    start: tuple[SegmentState, ...] = ()
    if segment.state is S.DISPATCHED and outcome in (AttemptOutcome.DONE, AttemptOutcome.FAILED):
        start = (S.RUNNING,)
    canceling = segment.cancel is CancelState.CANCELING
    failures = segment.failures
    if outcome is AttemptOutcome.DONE:
        return AttemptEnd((*start, S.DONE), failures, progress=1.0)
    if outcome is AttemptOutcome.CANCELED:
        end = AttemptEnd((S.CANCELED,), failures, error=error)
    elif outcome is AttemptOutcome.LOST and canceling:
        end = AttemptEnd((S.CANCELED,), failures, error="canceled")
    elif outcome is AttemptOutcome.LOST:
        return AttemptEnd((S.QUEUED,), failures, error=error, progress=0.0)
    else:
        failures += 1
        retry = failures <= segment.retries and not canceling
        path = (*start, S.FAILED, S.QUEUED) if retry else (*start, S.FAILED)
        end = AttemptEnd(path, failures, error=error, counts_node=True)
    if end.state in (S.FAILED, S.CANCELED) and segment.kind is SegmentKind.WORK:
        reason = f"not assembled: a work segment {end.state}"
        end = AttemptEnd(end.path, end.failures, end.error, end.progress, end.counts_node, reason)
    return end


# ----------------------------------------------------------------------------- jobs


def job_end(job: JobState, segments: Collection[SegmentState]) -> tuple[JobState, ...]:
    """The moves that end a job whose segments all ended; () while any has not, or when the
    job is already where its segments put it (so a job ends exactly once).

    A job that never started (queued, every segment ended without a dispatch of its own)
    runs first on the way, so that its started time is set; except when it is canceled:
    that one never ran.
    """
    outcome = job_outcome(list(segments))
    if outcome is None or outcome is job:
        return ()
    if job in (J.WAITING, J.QUEUED) and outcome is not J.CANCELED:
        return (J.RUNNING, outcome)
    return (outcome,)


@dataclass(frozen=True)
class JobFacts:
    """A job of a batch as the dependency rule sees it."""

    id: int
    name: str
    state: JobState
    depends_on: tuple[int, ...] = ()


@dataclass(frozen=True)
class DependantMove:
    """A waiting job released (queued) or canceled, with why it was canceled."""

    job_id: int
    state: JobState
    reason: str = ""


def settle_dependants(jobs: Sequence[JobFacts]) -> tuple[list[DependantMove], dict[int, JobState]]:
    """Release the waiting jobs whose dependencies are all done, and cancel those with one
    that failed or was canceled (naming it). Jobs come in job order, and depend only on
    earlier ones, so a cancel reaches the dependants of dependants in one pass. Returns the
    moves and every job's state after them (what ends the batch)."""
    state_of = {job.id: job.state for job in jobs}
    names = {job.id: job.name for job in jobs}
    moves: list[DependantMove] = []
    for job in jobs:
        if job.state is not J.WAITING:
            continue
        bad = [d for d in job.depends_on if state_of[d] in (J.FAILED, J.CANCELED)]
        if bad:
            reason = f"{names[bad[0]]} {state_of[bad[0]].value}"
            moves.append(DependantMove(job.id, J.CANCELED, reason))
            state_of[job.id] = J.CANCELED
        elif all(state_of[d] is J.DONE for d in job.depends_on):
            moves.append(DependantMove(job.id, J.QUEUED))
            state_of[job.id] = J.QUEUED
    return moves, state_of


def requeued_job(deps: Iterable[JobState]) -> JobState:
    """Where a failed or canceled job goes on a resubmit: queued, or waiting again when a
    job it depends on must rerun too."""
    return J.QUEUED if all(d is J.DONE for d in deps) else J.WAITING


# -------------------------------------------------------------------------- batches


def batch_end_path(batch: BatchState, jobs: Collection[JobState]) -> tuple[BatchState, ...]:
    """The moves that end a batch once every job ended (:func:`batch_end`), or (). A batch
    that never ran (queued or held: its chosen segments resubmitted, then canceled before
    one of them was dispatched) runs on the way to done or failed, as a job does, so that
    its started time is set; to canceled it goes at once."""
    ended = batch_end(batch, jobs)
    if ended is None:
        return ()
    if ended is B.CANCELED or batch not in (B.QUEUED, B.HELD):
        return (ended,)
    return (*((B.QUEUED,) if batch is B.HELD else ()), B.RUNNING, ended)


def batch_end(batch: BatchState, jobs: Collection[JobState]) -> BatchState | None:
    """The state a batch ends in once every job ended, or None: while a job has not, or
    when the batch has ended already (a cancel may have ended it first)."""
    outcome = batch_outcome(list(jobs))
    if outcome is None or outcome is batch or batch in FINAL_BATCH_STATES:
        return None
    return outcome


def cancel_begins(batch: BatchState, cancel: CancelState) -> CancelState | None:
    """What a cancel makes of a batch's cancel state: None for a batch that ended (nothing
    to cancel), else canceling. Cancel while canceling is no move but the cancel again: its
    queued work is canceled once more and its active segments are killed once more (a kill
    may have been lost with its node)."""
    if batch in FINAL_BATCH_STATES:
        return None
    return CancelState.CANCELING


# Jobs a cancel ends at once: nothing of them runs. The others end with their segments.
CANCELED_AT_ONCE = frozenset({J.WAITING, J.QUEUED})


def cancel_ends_batch(batch: BatchState, active: int) -> bool:
    """Whether a cancel ends its batch at once: when nothing of it is out on a node (else
    the kills' reports end it), and nothing else ended it on the way."""
    return active == 0 and batch not in FINAL_BATCH_STATES


# ----------------------------------------------------------------------------- nodes


def node_went_away(state: NodeState) -> NodeState | None:
    """An online node that went away is offline; a drained (disabled) one stays drained for
    when it returns, and an offline one stays offline."""
    return NodeState.OFFLINE if state is NodeState.ONLINE else None


def node_reported(stored: NodeState, reported: NodeState) -> NodeState | None:
    """A node reports in (as ``reported``): an offline one that reports online is online
    again; a drained one stays drained, and an online one stays as it is."""
    if stored is NodeState.OFFLINE and reported is NodeState.ONLINE:
        return NodeState.ONLINE
    return None


def node_admission(
    version: str | None, controller_version: str, crash_looping: bool, runner: bool = True
) -> NodeAdmission:
    """Whether a live node is given work: refused while it has not told its version, runs
    another qfarm than the controller (the segments of one job must join seamlessly), is a
    plain Dask worker without qfarm's node runner (``runner`` false: it could run nothing),
    or keeps going down; admitted otherwise. :func:`refusal` words the reason."""
    if version is None or version != controller_version or crash_looping or not runner:
        return NodeAdmission.REFUSED
    return NodeAdmission.ADMITTED


@dataclass(frozen=True)
class CrashLoop:
    """How a node that keeps going down is taken out of service: after more than
    ``restarts`` losses within ``window_seconds``, until someone enables it again."""

    restarts: int
    window_seconds: float


def refusal(
    name: str,
    version: str | None,
    controller_version: str,
    crash_looping: bool,
    crash_loop: CrashLoop,
    runner: bool = True,
) -> str | None:
    """Why a live node is refused work, as people read it; None when it is admitted."""
    admission = node_admission(version, controller_version, crash_looping, runner)
    if admission is NodeAdmission.ADMITTED:
        return None
    if version is None:  # its facts could not be read (yet): no work until they can
        return f"node {name} has not told its version yet"
    if version != controller_version:
        return f"node {name} runs qfarm {version}, the controller {controller_version}"
    if not runner:
        return f"node {name} is a plain Dask worker, not a qfarm node: start it with `qfarm node`"
    minutes = crash_loop.window_seconds // 60
    return (
        f"node {name} went down more than {crash_loop.restarts} times in {minutes:.0f} "
        f"minutes: out of service until `qfarm node enable {name}`"
    )
