"""What people may do to a batch in each state, and the dispatch order, of
:mod:`qfarm.domain.steering`, without a database."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qfarm.domain.errors import InvalidRequest, NotFound
from qfarm.domain.model import (
    FINAL_BATCH_STATES,
    BatchState,
    JobState,
    SegmentKind,
    SegmentState,
    check_transition,
)
from qfarm.domain.steering import (
    CHOSEN_AT_MOST,
    QueuedSegment,
    batch_dispatches,
    batch_on_dispatch,
    check_priority_change,
    check_remove,
    check_rerun_chosen,
    check_resubmit,
    dispatch_order,
    job_on_dispatch,
    pause_target,
    resume_target,
)

B, J = BatchState, JobState
W, A = SegmentKind.WORK, SegmentKind.ASSEMBLE
UNFINISHED = sorted(set(BatchState) - FINAL_BATCH_STATES)


# ------------------------------------------------------------------ guards


@pytest.mark.parametrize("state", sorted(FINAL_BATCH_STATES))
def test_an_ended_batch_cannot_be_paused_resumed_or_reprioritised(state: BatchState) -> None:
    with pytest.raises(InvalidRequest, match=f"batch 7 is {state.value}: it cannot be paused"):
        pause_target(7, state)
    with pytest.raises(InvalidRequest, match="cannot be resumed"):
        resume_target(7, state, started=True)
    with pytest.raises(InvalidRequest, match=f"batch 7 is {state.value}: it cannot be repri"):
        check_priority_change(7, state)


@pytest.mark.parametrize("state", UNFINISHED)
def test_a_batch_still_going_may_be_reprioritised(state: BatchState) -> None:
    check_priority_change(7, state)  # does not raise


def test_pause_and_resume_targets() -> None:
    assert pause_target(1, B.RUNNING) is B.PAUSED
    assert pause_target(1, B.QUEUED) is B.PAUSED
    assert pause_target(1, B.PAUSED) is None
    assert pause_target(1, B.HELD) is None  # nothing of it is dispatched already
    assert resume_target(1, B.PAUSED, started=True) is B.RUNNING
    assert resume_target(1, B.PAUSED, started=False) is B.QUEUED
    assert resume_target(1, B.HELD, started=False) is B.QUEUED
    assert resume_target(1, B.RUNNING, started=True) is None
    assert resume_target(1, B.QUEUED, started=False) is None


@given(st.sampled_from(UNFINISHED), st.booleans())
def test_pause_and_resume_make_only_legal_moves(state: BatchState, started: bool) -> None:
    for new in (pause_target(1, state), resume_target(1, state, started)):
        if new is not None:
            check_transition(1, state, new)


@pytest.mark.parametrize("state", list(BatchState))
def test_only_failed_or_canceled_batches_are_resubmitted(state: BatchState) -> None:
    if state in (B.FAILED, B.CANCELED):
        check_resubmit(3, state)
        check_transition(3, state, B.QUEUED)
    else:
        with pytest.raises(InvalidRequest, match="only a failed or canceled batch"):
            check_resubmit(3, state)


@pytest.mark.parametrize("state", list(BatchState))
def test_only_ended_batches_are_removed(state: BatchState) -> None:
    if state in FINAL_BATCH_STATES:
        check_remove(3, state)
    else:
        with pytest.raises(InvalidRequest, match="cancel it before removing it"):
            check_remove(3, state)


# ----------------------------------------------------------------- dispatch


def test_a_batch_dispatches_when_queued_or_running_and_its_time_came() -> None:
    assert batch_dispatches(B.QUEUED, None, 10.0)
    assert batch_dispatches(B.RUNNING, 10.0, 10.0)
    assert not batch_dispatches(B.QUEUED, 11.0, 10.0)
    for state in (B.HELD, B.PAUSED, *FINAL_BATCH_STATES):
        assert not batch_dispatches(state, None, 10.0)


def queued(
    segment_id: int,
    *,
    batch: int = 1,
    priority: int = 50,
    job: int = 1,
    job_index: int = 0,
    index: int = 1,
    kind: SegmentKind = W,
    work_done: bool = False,
    batch_state: BatchState = B.QUEUED,
    job_state: JobState = J.QUEUED,
    start_at: float | None = None,
) -> QueuedSegment:
    return QueuedSegment(
        segment_id=segment_id,
        segment_index=index,
        kind=kind,
        job_id=job,
        job_index=job_index,
        job_state=job_state,
        work_done=work_done,
        batch_id=batch,
        batch_state=batch_state,
        priority=priority,
        start_at=start_at,
    )


def test_dispatch_order_priority_then_submission_then_job_then_segment() -> None:
    entries = [
        queued(1, batch=1, priority=50, index=2),
        queued(2, batch=1, priority=50, index=1),
        queued(3, batch=2, priority=75),
        queued(4, batch=3, priority=50, job=9, job_index=1),
        queued(5, batch=3, priority=50, job=8, job_index=0),
    ]
    assert [q.segment_id for q in dispatch_order(entries, now=0.0)] == [3, 2, 1, 5, 4]


def test_dispatch_order_leaves_out_what_may_not_go() -> None:
    entries = [
        queued(1, batch_state=B.HELD),
        queued(2, batch_state=B.PAUSED),
        queued(3, start_at=100.0),
        queued(4, job_state=J.WAITING),
        queued(5, kind=A, work_done=False),
        queued(6, kind=A, work_done=True, job_state=J.RUNNING),
        queued(7, batch_state=B.RUNNING, job_state=J.ASSEMBLING),
    ]
    assert [q.segment_id for q in dispatch_order(entries, now=10.0)] == [6, 7]


def test_a_dispatch_starts_jobs_and_batches_and_an_assembly_assembles() -> None:
    assert job_on_dispatch(J.QUEUED, [W]) == (J.RUNNING,)
    assert job_on_dispatch(J.RUNNING, [W]) == ()
    assert job_on_dispatch(J.RUNNING, [A]) == (J.ASSEMBLING,)
    assert job_on_dispatch(J.QUEUED, [W, A]) == (J.RUNNING, J.ASSEMBLING)
    assert job_on_dispatch(J.ASSEMBLING, [A]) == ()  # a retried assembly
    assert batch_on_dispatch(B.QUEUED) is B.RUNNING
    assert batch_on_dispatch(B.RUNNING) is None


@given(
    st.sampled_from([J.QUEUED, J.RUNNING, J.ASSEMBLING]),
    st.sets(st.sampled_from(SegmentKind), min_size=1),
)
def test_dispatch_moves_are_legal(state: JobState, kinds: set[SegmentKind]) -> None:
    for new in job_on_dispatch(state, kinds):
        check_transition("j", state, new)
        state = new


def test_chosen_segments_to_rerun_are_named_when_they_cannot() -> None:
    states = {i: SegmentState.DONE for i in range(1, 9)} | {9: SegmentState.FAILED}
    check_rerun_chosen(1, states, {9})
    with pytest.raises(InvalidRequest, match=r"segment 1 \(done\), .*5 \(done\) and 3 more"):
        check_rerun_chosen(1, states, set(range(1, 10)))
    with pytest.raises(NotFound, match="batch 1 has no segment 10, 11"):
        check_rerun_chosen(1, states, {9, 10, 11})
    with pytest.raises(InvalidRequest, match=f"at most {CHOSEN_AT_MOST}"):
        check_rerun_chosen(1, states, set(range(CHOSEN_AT_MOST + 1)))
