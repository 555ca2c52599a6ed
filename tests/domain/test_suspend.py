"""Suspend and resume (issue 18): the segment moves of a stopped and continued attempt,
and the batch-level rules of ``pause --suspend`` and ``resume``, without a database."""

from __future__ import annotations

import pytest

from qfarm.domain.errors import InvalidRequest
from qfarm.domain.lifecycle import (
    SegmentFacts,
    end_attempt,
    is_current,
    on_continued,
    on_started,
    on_suspended,
)
from qfarm.domain.model import (
    ACTIVE_SEGMENT_STATES,
    FINAL_BATCH_STATES,
    AttemptOutcome,
    BatchState,
    CancelState,
    IllegalTransition,
    SegmentKind,
    SegmentState,
    check_transition,
)
from qfarm.domain.steering import resume_continues, resume_target, suspend_plan

S, B, OUT = SegmentState, BatchState, AttemptOutcome


def facts(state: SegmentState, failures: int = 0, cancel: CancelState = CancelState.NONE):
    return SegmentFacts(state, SegmentKind.WORK, failures, 2, cancel)


def walk(old: SegmentState, path: tuple[SegmentState, ...]) -> SegmentState:
    for new in path:
        check_transition("s", old, new)
        old = new
    return old


def test_a_running_segment_is_suspended_and_continued_on_the_same_attempt() -> None:
    state = walk(S.RUNNING, on_suspended(S.RUNNING))
    assert state is S.SUSPENDED
    assert is_current(state, 1, 1)  # reports of the stopped attempt still count
    assert walk(state, on_continued(state)) is S.RUNNING


@pytest.mark.parametrize("state", sorted(set(SegmentState) - {S.RUNNING}))
def test_only_a_running_segment_is_suspended(state: SegmentState) -> None:
    assert on_suspended(state) == ()


@pytest.mark.parametrize("state", sorted(set(SegmentState) - {S.SUSPENDED}))
def test_only_a_suspended_segment_is_continued(state: SegmentState) -> None:
    assert on_continued(state) == ()


def test_a_start_report_does_not_move_a_suspended_segment() -> None:
    assert on_started(S.SUSPENDED) == ()


@pytest.mark.parametrize("state", [S.QUEUED, S.DISPATCHED, S.DONE, S.FAILED, S.CANCELED])
def test_suspended_is_reached_only_from_running(state: SegmentState) -> None:
    with pytest.raises(IllegalTransition, match=f"cannot go from {state.value} to suspended"):
        check_transition(7, state, S.SUSPENDED)


def test_a_suspended_segment_holds_its_node_like_a_running_one() -> None:
    assert S.SUSPENDED in ACTIVE_SEGMENT_STATES


def test_a_lost_node_requeues_its_suspended_segment_without_counting_a_failure() -> None:
    end = end_attempt(facts(S.SUSPENDED, failures=1), OUT.LOST, "node lost")
    assert end.path == (S.QUEUED,)
    assert walk(S.SUSPENDED, end.path) is S.QUEUED
    assert (end.failures, end.counts_node) == (1, False)


def test_a_canceled_suspended_segment_is_canceled() -> None:
    end = end_attempt(facts(S.SUSPENDED), OUT.CANCELED, "canceled")
    assert walk(S.SUSPENDED, end.path) is S.CANCELED
    lost = end_attempt(facts(S.SUSPENDED, cancel=CancelState.CANCELING), OUT.LOST)
    assert walk(S.SUSPENDED, lost.path) is S.CANCELED


def test_a_suspended_process_that_ended_anyway_reports_its_end() -> None:
    assert walk(S.SUSPENDED, end_attempt(facts(S.SUSPENDED), OUT.DONE).path) is S.DONE
    failed = end_attempt(facts(S.SUSPENDED), OUT.FAILED, "killed by signal 9")
    assert walk(S.SUSPENDED, failed.path) is S.QUEUED  # retried, as a running one would be
    assert failed.failures == 1


# ------------------------------------------------------------------- the batch rules


def test_suspend_pauses_a_running_batch_and_stops_its_running_segments() -> None:
    plan = suspend_plan(3, B.RUNNING, [11, 12])
    assert (plan.batch, plan.segments) == (B.PAUSED, (11, 12))


def test_suspend_of_a_paused_batch_stops_what_still_runs() -> None:
    plan = suspend_plan(3, B.PAUSED, [11])
    assert (plan.batch, plan.segments) == (None, (11,))


def test_suspend_of_a_held_batch_does_nothing() -> None:
    assert suspend_plan(3, B.HELD, []) == suspend_plan(3, B.HELD, [5])
    assert suspend_plan(3, B.HELD, []).segments == ()


@pytest.mark.parametrize("state", sorted(FINAL_BATCH_STATES))
def test_suspend_of_an_ended_batch_is_refused(state: BatchState) -> None:
    with pytest.raises(InvalidRequest, match=f"batch 3 is {state.value}: it cannot be suspended"):
        suspend_plan(3, state, [])


def test_suspend_of_a_batch_running_openjd_jobs_is_refused_by_name() -> None:
    with pytest.raises(InvalidRequest, match=r"OpenJD jobs \(render\).*without --suspend"):
        suspend_plan(3, B.RUNNING, [1], unsuspendable=["render"])


def test_resume_of_a_paused_batch_continues_its_suspended_segments() -> None:
    assert resume_continues(B.PAUSED, [11, 12]) == (11, 12)
    assert resume_target(3, B.PAUSED, started=True) is B.RUNNING


@pytest.mark.parametrize("state", sorted(set(BatchState) - {B.PAUSED}))
def test_only_a_paused_batch_has_segments_to_continue(state: BatchState) -> None:
    assert resume_continues(state, [11]) == ()
