"""What people may do to a batch in each state: pause, resume, reprioritise, resubmit,
remove; and the order in which queued work is dispatched.

Pure rules, like :mod:`qfarm.domain.lifecycle`: each guard raises the
:class:`~qfarm.domain.errors.InvalidRequest` the API answers with, so a request refused here
reads the same from the CLI, the API and the web page.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from qfarm.domain.errors import InvalidRequest, NotFound
from qfarm.domain.model import (
    FINAL_BATCH_STATES,
    FINAL_SEGMENT_STATES,
    BatchState,
    JobState,
    SegmentKind,
    SegmentState,
)

B = BatchState


def refuse_if_ended(batch_id: int, state: BatchState, action: str) -> None:
    """Raise InvalidRequest for a batch that ended: it cannot be ``action``."""
    if state in FINAL_BATCH_STATES:
        raise InvalidRequest(f"batch {batch_id} is {state.value}: it cannot be {action}")


def pause_target(batch_id: int, state: BatchState) -> BatchState | None:
    """Where a pause takes a batch: paused; None where nothing is dispatched already (paused,
    held). An ended batch is refused."""
    if state in (B.PAUSED, B.HELD):
        return None
    refuse_if_ended(batch_id, state, "paused")
    return B.PAUSED


@dataclass(frozen=True)
class SuspendPlan:
    """What ``pause --suspend`` does to a batch: where the batch goes (paused; None where it
    stays, already paused or held) and which of its running segments are stopped where
    they are (SIGSTOP to their process groups) rather than left to finish."""

    batch: BatchState | None
    segments: tuple[int, ...]


def suspend_plan(
    batch_id: int,
    state: BatchState,
    running: Iterable[int],
    unsuspendable: Collection[str] = (),
) -> SuspendPlan:
    """A pause that also stops the batch's running processes. An ended batch is refused,
    and so is one with running jobs whose processes qfarm does not own (``unsuspendable``:
    their names; OpenJD jobs, whose actions belong to openjd-sessions): stopping only
    qfarm's stand-in would leave the real work running while the batch read suspended. A
    held batch has nothing running and stays held."""
    refuse_if_ended(batch_id, state, "suspended")
    if unsuspendable:
        names = ", ".join(sorted(unsuspendable))
        raise InvalidRequest(
            f"batch {batch_id} runs OpenJD jobs ({names}), whose processes belong to "
            "openjd-sessions and cannot be suspended: pause it without --suspend"
        )
    if state is B.HELD:
        return SuspendPlan(None, ())
    return SuspendPlan(pause_target(batch_id, state), tuple(running))


def resume_continues(state: BatchState, suspended: Iterable[int]) -> tuple[int, ...]:
    """The suspended segments a resume continues (SIGCONT): all of a paused batch's, so
    they finish from where they were. A batch in another state has none to continue."""
    return tuple(suspended) if state is B.PAUSED else ()


def resume_target(batch_id: int, state: BatchState, started: bool) -> BatchState | None:
    """Where a resume takes a batch: running when it was paused after it started, queued
    otherwise (held, or paused before anything ran); None where it is dispatched already.
    An ended batch is refused: a resubmit reruns what failed."""
    if state in (B.QUEUED, B.RUNNING):
        return None
    refuse_if_ended(batch_id, state, "resumed (resubmit reruns what failed)")
    return B.RUNNING if started and state is B.PAUSED else B.QUEUED


def check_priority_change(batch_id: int, state: BatchState) -> None:
    """A priority orders what is still to be dispatched: an ended batch has nothing left."""
    refuse_if_ended(batch_id, state, "reprioritised")


def check_resubmit(batch_id: int, state: BatchState) -> None:
    """Only a failed or canceled batch has work to run again."""
    if state not in (B.FAILED, B.CANCELED):
        raise InvalidRequest(
            f"batch {batch_id} is {state.value}: only a failed or canceled batch can be resubmitted"
        )


def check_remove(batch_id: int, state: BatchState) -> None:
    """A batch still going cannot be removed: its segments would run on for nothing."""
    if state not in FINAL_BATCH_STATES:
        raise InvalidRequest(f"batch {batch_id} is {state.value}: cancel it before removing it")


# Segments a resubmit or a reopen runs again, with fresh retries; done ones are kept.
RERUN_SEGMENT_STATES = frozenset({SegmentState.FAILED, SegmentState.CANCELED})
RERUN_JOB_STATES = frozenset({JobState.FAILED, JobState.CANCELED})

# At most this many segments chosen by id in one request (a whole batch is resubmitted
# without naming its segments).
CHOSEN_AT_MOST = 10_000


def check_rerun_chosen(
    batch_id: int, states: Mapping[int, SegmentState], chosen: Collection[int]
) -> None:
    """Segments chosen to run again (``states``: those of the batch, by id) must be of the
    batch and have failed or been canceled: a done one would be run twice, a running one is
    running. The first few that are not are named."""
    _check_chosen(
        batch_id, states, chosen, RERUN_SEGMENT_STATES, "failed or canceled", "run again", "cannot"
    )


def check_cancel_chosen(
    batch_id: int,
    batch: BatchState,
    states: Mapping[int, SegmentState],
    chosen: Collection[int],
) -> None:
    """Segments chosen to be canceled must be of a batch still going and not have ended
    yet: queued ones are canceled at once, running ones killed."""
    refuse_if_ended(batch_id, batch, "canceled")
    going = frozenset(SegmentState) - FINAL_SEGMENT_STATES
    _check_chosen(batch_id, states, chosen, going, "unfinished", "are canceled", "has ended")


def _check_chosen(
    batch_id: int,
    states: Mapping[int, SegmentState],
    chosen: Collection[int],
    allowed: frozenset[SegmentState],
    kinds: str,
    verb: str,
    refusal: str,
) -> None:
    if not chosen:
        raise InvalidRequest(f"no segments chosen: name the segments that {verb}")
    if len(chosen) > CHOSEN_AT_MOST:
        raise InvalidRequest(f"{len(chosen)} segments chosen: at most {CHOSEN_AT_MOST} at once")
    unknown = sorted(s for s in chosen if s not in states)
    if unknown:
        raise NotFound(f"batch {batch_id} has no segment {_some(unknown)}")
    wrong = sorted(s for s in chosen if states[s] not in allowed)
    if wrong:
        described = ", ".join(f"{s} ({states[s].value})" for s in wrong[:5])
        more = f" and {len(wrong) - 5} more" if len(wrong) > 5 else ""
        raise InvalidRequest(
            f"only {kinds} segments {verb}: segment {described}{more} of batch {batch_id} {refusal}"
        )


def _some(ids: Sequence[int]) -> str:
    shown = ", ".join(str(i) for i in ids[:5])
    return shown + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")


# ------------------------------------------------------------------------- dispatch order

# Batches whose queued segments are given out, and jobs whose queued segments are.
DISPATCHING_BATCH_STATES = frozenset({B.QUEUED, B.RUNNING})
DISPATCHING_JOB_STATES = frozenset({JobState.QUEUED, JobState.RUNNING, JobState.ASSEMBLING})


def batch_dispatches(state: BatchState, start_at: float | None, now: float) -> bool:
    """Whether a batch gives out work now: not held, paused or ended, and its start time
    (if it has one) has come."""
    return state in DISPATCHING_BATCH_STATES and (start_at is None or start_at <= now)


def batch_order(priority: int, batch_id: int) -> tuple[int, int]:
    """The sort key of batches for dispatch: higher priority first, then submission order."""
    return (-priority, batch_id)


def segment_dispatches(kind: SegmentKind, work_done: bool) -> bool:
    """A work segment goes when it is queued; an assemble segment only once every work
    segment of its job is done."""
    return kind is SegmentKind.WORK or work_done


@dataclass(frozen=True)
class QueuedSegment:
    """A queued segment with what decides its place in the dispatch order."""

    segment_id: int
    segment_index: int
    kind: SegmentKind
    job_id: int
    job_index: int
    job_state: JobState
    work_done: bool  # every work segment of its job is done
    batch_id: int
    batch_state: BatchState
    priority: int
    start_at: float | None = None


def dispatch_order(queued: Iterable[QueuedSegment], now: float) -> Sequence[QueuedSegment]:
    """The queued segments that may go now, in the order they are given out: batch priority
    (high first), then submission order, then job order, then segment order. The store walks
    its indexes in this order; this is the rule it follows, written out whole."""
    ready = [
        q
        for q in queued
        if batch_dispatches(q.batch_state, q.start_at, now)
        and q.job_state in DISPATCHING_JOB_STATES
        and segment_dispatches(q.kind, q.work_done)
    ]
    return sorted(
        ready, key=lambda q: (*batch_order(q.priority, q.batch_id), q.job_index, q.segment_index)
    )


def job_on_dispatch(state: JobState, kinds: Iterable[SegmentKind]) -> tuple[JobState, ...]:
    """The moves a job makes when segments of ``kinds`` are dispatched: a queued job runs;
    a running one whose assemble segment goes is assembling."""
    path: list[JobState] = []
    if state is JobState.QUEUED:
        path.append(JobState.RUNNING)
        state = JobState.RUNNING
    if state is JobState.RUNNING and SegmentKind.ASSEMBLE in set(kinds):
        path.append(JobState.ASSEMBLING)
    return tuple(path)


def batch_on_dispatch(state: BatchState) -> BatchState | None:
    """A queued batch runs when its first segment is dispatched."""
    return B.RUNNING if state is B.QUEUED else None
