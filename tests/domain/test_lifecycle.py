"""The lifecycle rules of :mod:`qfarm.domain.lifecycle`, without a database.

Each rule is pinned by examples first (the store's behaviour, which these rules now decide),
then by properties over many generated cases: no sequence of outcomes makes an illegal move,
retries are counted exactly, a job and a batch end exactly once.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qfarm.domain.lifecycle import (
    CANCELED_AT_ONCE,
    DependantMove,
    JobFacts,
    SegmentFacts,
    attempt_outcome,
    batch_end,
    cancel_begins,
    cancel_ends_batch,
    end_attempt,
    is_current,
    job_end,
    node_admission,
    node_reported,
    node_went_away,
    on_started,
    requeued_job,
    settle_dependants,
)
from qfarm.domain.model import (
    ACTIVE_SEGMENT_STATES,
    FINAL_BATCH_STATES,
    FINAL_JOB_STATES,
    FINAL_SEGMENT_STATES,
    AttemptOutcome,
    BatchState,
    CancelState,
    JobState,
    NodeAdmission,
    NodeState,
    SegmentKind,
    SegmentState,
    can_transition,
    check_transition,
)

S, J, B, N = SegmentState, JobState, BatchState, NodeState
OUT, C = AttemptOutcome, CancelState
W, A = SegmentKind.WORK, SegmentKind.ASSEMBLE


def facts(
    state: SegmentState = S.RUNNING,
    *,
    kind: SegmentKind = W,
    failures: int = 0,
    retries: int = 1,
    cancel: CancelState = C.NONE,
) -> SegmentFacts:
    return SegmentFacts(state, kind, failures, retries, cancel)


def walk(old: SegmentState, path: tuple[SegmentState, ...]) -> SegmentState:
    """Check every step of a path as the store does; return where it ends."""
    for new in path:
        check_transition("s", old, new)
        old = new
    return old


# --------------------------------------------------------------------- outcomes


def test_attempt_outcomes_keep_the_stored_strings() -> None:
    # Existing databases hold these strings in attempts.outcome.
    assert {o.value for o in AttemptOutcome} == {"done", "failed", "canceled", "lost"}
    assert AttemptOutcome("lost") is OUT.LOST
    assert OUT.DONE == "done"  # compares as the string it is stored as


@pytest.mark.parametrize(
    ("ok", "canceled", "lost", "outcome"),
    [
        (True, False, False, OUT.DONE),
        (False, False, False, OUT.FAILED),
        (False, True, False, OUT.CANCELED),
        (True, True, False, OUT.CANCELED),  # a kill on purpose wins over its exit code
        (False, False, True, OUT.LOST),
        (True, True, True, OUT.LOST),  # a lost attempt says nothing true of its process
    ],
)
def test_attempt_outcome_from_a_report(
    ok: bool, canceled: bool, lost: bool, outcome: AttemptOutcome
) -> None:
    assert attempt_outcome(ok=ok, canceled=canceled, lost=lost) is outcome


def test_only_the_latest_attempt_of_an_active_segment_is_current() -> None:
    assert is_current(S.RUNNING, 2, 2)
    assert is_current(S.DISPATCHED, 1, 1)
    assert not is_current(S.RUNNING, 2, 1)  # an earlier attempt's late report
    for settled in (S.QUEUED, S.DONE, S.FAILED, S.CANCELED):
        assert not is_current(settled, 1, 1)


def test_a_start_report_runs_a_dispatched_segment_once() -> None:
    assert on_started(S.DISPATCHED) == (S.RUNNING,)
    assert on_started(S.RUNNING) == ()


# ------------------------------------------------------------------- the retry rule


def test_done_goes_through_running_when_the_start_report_never_came() -> None:
    assert end_attempt(facts(S.DISPATCHED), OUT.DONE).path == (S.RUNNING, S.DONE)
    end = end_attempt(facts(S.RUNNING), OUT.DONE)
    assert (end.path, end.progress, end.error, end.blocks_assembly) == ((S.DONE,), 1.0, None, "")


def test_failure_with_retries_left_is_counted_and_requeued() -> None:
    end = end_attempt(facts(S.RUNNING, failures=0, retries=1), OUT.FAILED, "exit code 1")
    assert end.path == (S.FAILED, S.QUEUED)
    assert (end.failures, end.error, end.counts_node, end.blocks_assembly) == (
        1,
        "exit code 1",
        True,
        "",
    )


def test_failure_past_the_retries_fails_for_good_and_blocks_the_assembly() -> None:
    end = end_attempt(facts(S.DISPATCHED, failures=1, retries=1), OUT.FAILED, "boom")
    assert end.path == (S.RUNNING, S.FAILED)
    assert end.failures == 2
    assert end.blocks_assembly == "not assembled: a work segment failed"


def test_a_failed_assembly_blocks_nothing() -> None:
    end = end_attempt(facts(S.RUNNING, kind=A, retries=0), OUT.FAILED)
    assert (end.state, end.blocks_assembly) == (S.FAILED, "")


def test_no_retry_while_the_batch_is_canceling() -> None:
    end = end_attempt(facts(retries=5, cancel=C.CANCELING), OUT.FAILED)
    assert end.path == (S.FAILED,)


def test_lost_attempt_requeues_without_counting() -> None:
    end = end_attempt(facts(S.RUNNING, failures=1), OUT.LOST, "node went away")
    assert end.path == (S.QUEUED,)
    assert (end.failures, end.error, end.progress, end.counts_node) == (
        1,
        "node went away",
        0.0,
        False,
    )


def test_lost_attempt_of_a_canceling_batch_is_canceled() -> None:
    end = end_attempt(facts(S.DISPATCHED, cancel=C.CANCELING), OUT.LOST, "gone")
    assert (end.path, end.error) == ((S.CANCELED,), "canceled")
    assert end.blocks_assembly == "not assembled: a work segment canceled"


def test_canceled_attempt_cancels_without_running_first() -> None:
    end = end_attempt(facts(S.DISPATCHED), OUT.CANCELED, "killed")
    assert (end.path, end.error) == ((S.CANCELED,), "killed")


facts_strategy = st.builds(
    SegmentFacts,
    state=st.sampled_from(sorted(ACTIVE_SEGMENT_STATES)),
    kind=st.sampled_from(SegmentKind),
    failures=st.integers(0, 6),
    retries=st.integers(0, 5),
    cancel=st.sampled_from(CancelState),
)


@given(facts_strategy, st.sampled_from(AttemptOutcome))
def test_every_ended_attempt_makes_only_legal_moves(
    segment: SegmentFacts, outcome: AttemptOutcome
) -> None:
    end = end_attempt(segment, outcome, "why")
    assert end.path, "an ended attempt always moves its segment"
    final = walk(segment.state, end.path)
    assert final is end.state
    assert final in FINAL_SEGMENT_STATES | {S.QUEUED}
    # Only failures count, one at a time; only they put the node on the job's list.
    assert end.failures == segment.failures + (outcome is OUT.FAILED)
    assert end.counts_node is (outcome is OUT.FAILED)
    # A retry is exactly: a failure within the limit, the batch not being canceled.
    retried = outcome is OUT.FAILED and final is S.QUEUED
    assert retried is (
        outcome is OUT.FAILED
        and segment.failures + 1 <= segment.retries
        and segment.cancel is C.NONE
    )
    # Nothing of a canceling batch is requeued.
    if segment.cancel is C.CANCELING:
        assert final is not S.QUEUED
    # The assembly is blocked exactly when a work segment ended for good, not done.
    blocked = segment.kind is W and final in (S.FAILED, S.CANCELED)
    assert bool(end.blocks_assembly) is blocked


@settings(max_examples=150)
@given(
    retries=st.integers(0, 4),
    outcomes=st.lists(st.sampled_from(AttemptOutcome), min_size=1, max_size=30),
    starts=st.lists(st.booleans(), min_size=30, max_size=30),
)
def test_no_sequence_of_outcomes_leads_to_an_illegal_transition(
    retries: int, outcomes: list[AttemptOutcome], starts: list[bool]
) -> None:
    """A segment dispatched again and again, each attempt started (or not) and ended by
    the next outcome, until it ends for good: every move is legal, and it fails for good
    only after exactly retries + 1 failures."""
    state, failures = S.QUEUED, 0
    for outcome, started in zip(outcomes, starts, strict=False):
        state = walk(state, (S.DISPATCHED,))
        if started:
            state = walk(state, on_started(state))
        end = end_attempt(SegmentFacts(state, W, failures, retries), outcome)
        state, failures = walk(state, end.path), end.failures
        if state in FINAL_SEGMENT_STATES:
            break
    assert failures <= retries + 1
    if state is S.FAILED:
        assert failures == retries + 1
    if state is S.QUEUED:
        assert failures <= retries


# --------------------------------------------------------------------------- jobs


def test_job_end_waits_for_every_segment() -> None:
    assert job_end(J.RUNNING, [S.DONE, S.RUNNING]) == ()
    assert job_end(J.RUNNING, [S.DONE, S.QUEUED]) == ()
    assert job_end(J.RUNNING, []) == ()


@pytest.mark.parametrize(
    ("job", "segments", "path"),
    [
        (J.RUNNING, [S.DONE, S.DONE], (J.DONE,)),
        (J.ASSEMBLING, [S.DONE, S.FAILED], (J.FAILED,)),
        (J.RUNNING, [S.DONE, S.CANCELED], (J.CANCELED,)),
        (J.RUNNING, [S.FAILED, S.CANCELED], (J.FAILED,)),  # a failure names the job
        # A queued job whose segments all ended runs on the way, so it has a start time...
        (J.QUEUED, [S.FAILED], (J.RUNNING, J.FAILED)),
        # ...unless it is canceled: that one never ran.
        (J.QUEUED, [S.CANCELED], (J.CANCELED,)),
        # Already where its segments put it: it does not end twice.
        (J.CANCELED, [S.CANCELED], ()),
        (J.DONE, [S.DONE], ()),
    ],
)
def test_job_end(job: JobState, segments: list[SegmentState], path: tuple[JobState, ...]) -> None:
    assert job_end(job, segments) == path


segment_lists = st.lists(st.sampled_from(SegmentState), min_size=1, max_size=6)


@given(st.sampled_from([J.QUEUED, J.RUNNING, J.ASSEMBLING]), segment_lists)
def test_a_job_ends_exactly_once(job: JobState, segments: list[SegmentState]) -> None:
    path = job_end(job, segments)
    if any(s not in FINAL_SEGMENT_STATES for s in segments):
        assert path == ()
        return
    assert path and path[-1] in FINAL_JOB_STATES
    state = job
    for new in path:
        check_transition("j", state, new)
        state = new
    assert sum(s in FINAL_JOB_STATES for s in path) == 1
    assert job_end(state, segments) == ()  # asked again, it stays ended


@settings(max_examples=200)
@given(
    n=st.integers(1, 5),
    retries=st.integers(0, 2),
    events=st.lists(
        st.tuples(st.integers(0, 4), st.sampled_from(AttemptOutcome)), min_size=1, max_size=40
    ),
)
def test_a_job_of_segments_ends_exactly_once_whatever_its_attempts_do(
    n: int, retries: int, events: list[tuple[int, AttemptOutcome]]
) -> None:
    """Segments of one job dispatched and ended in any order, the job settled after each
    event as the store settles it: the job reaches a final state once, and only once every
    segment has."""
    segs = [S.QUEUED] * n
    fails = [0] * n
    job, ends = J.QUEUED, 0
    for pick, outcome in events:
        i = pick % n
        if segs[i] is not S.QUEUED:
            continue
        segs[i] = walk(segs[i], (S.DISPATCHED,))
        if job is J.QUEUED:
            check_transition("j", job, J.RUNNING)
            job = J.RUNNING
        end = end_attempt(SegmentFacts(segs[i], W, fails[i], retries), outcome)
        segs[i], fails[i] = walk(segs[i], end.path), end.failures
        for new in job_end(job, segs):
            check_transition("j", job, new)
            job = new
            ends += new in FINAL_JOB_STATES
    assert ends == (1 if all(s in FINAL_SEGMENT_STATES for s in segs) else 0)
    assert (job in FINAL_JOB_STATES) is (ends == 1)


# --------------------------------------------------------------------- dependants


def test_a_dependant_is_released_when_everything_it_waits_for_is_done() -> None:
    jobs = [
        JobFacts(1, "a", J.DONE),
        JobFacts(2, "b", J.RUNNING),
        JobFacts(3, "c", J.WAITING, (1,)),
        JobFacts(4, "d", J.WAITING, (1, 2)),
    ]
    moves, state_of = settle_dependants(jobs)
    assert moves == [DependantMove(3, J.QUEUED)]
    assert state_of == {1: J.DONE, 2: J.RUNNING, 3: J.QUEUED, 4: J.WAITING}


def test_a_cancel_reaches_dependants_of_dependants_naming_what_ended() -> None:
    jobs = [
        JobFacts(1, "render", J.FAILED),
        JobFacts(2, "comp", J.WAITING, (1,)),
        JobFacts(3, "encode", J.WAITING, (2,)),
    ]
    moves, state_of = settle_dependants(jobs)
    assert moves == [
        DependantMove(2, J.CANCELED, "render failed"),
        DependantMove(3, J.CANCELED, "comp canceled"),
    ]
    assert state_of[3] is J.CANCELED


@st.composite
def job_graphs(draw: st.DrawFn) -> list[JobFacts]:
    n = draw(st.integers(1, 7))
    jobs = []
    for i in range(n):
        deps = tuple(sorted(draw(st.sets(st.integers(0, i - 1), max_size=3)))) if i else ()
        state = J.WAITING if deps else draw(st.sampled_from([J.RUNNING, *FINAL_JOB_STATES]))
        if deps and draw(st.booleans()):
            state = draw(st.sampled_from([J.QUEUED, J.RUNNING, *FINAL_JOB_STATES]))
        jobs.append(JobFacts(i, f"job {i}", state, deps))
    return jobs


@given(job_graphs())
def test_dependants_settle_in_one_pass_with_legal_moves(jobs: list[JobFacts]) -> None:
    moves, state_of = settle_dependants(jobs)
    before = {job.id: job.state for job in jobs}
    assert len({m.job_id for m in moves}) == len(moves)  # each moves at most once
    for m in moves:
        assert before[m.job_id] is J.WAITING
        check_transition(m.job_id, J.WAITING, m.state)
        assert bool(m.reason) is (m.state is J.CANCELED)
    # A fixed point: asked again, nothing more moves, and no job is left waiting on
    # something that already decided it.
    again = [JobFacts(j.id, j.name, state_of[j.id], j.depends_on) for j in jobs]
    assert settle_dependants(again)[0] == []
    for job in again:
        if job.state is J.WAITING:
            deps = [state_of[d] for d in job.depends_on]
            assert not all(d is J.DONE for d in deps)
            assert not any(d in (J.FAILED, J.CANCELED) for d in deps)


def test_a_resubmitted_job_waits_again_when_what_it_depends_on_reruns() -> None:
    assert requeued_job([J.DONE, J.DONE]) is J.QUEUED
    assert requeued_job([]) is J.QUEUED
    assert requeued_job([J.DONE, J.QUEUED]) is J.WAITING


# ------------------------------------------------------------------------ batches


def test_batch_end() -> None:
    assert batch_end(B.RUNNING, [J.DONE, J.RUNNING]) is None
    assert batch_end(B.RUNNING, [J.DONE, J.DONE]) is B.DONE
    assert batch_end(B.PAUSED, [J.DONE, J.FAILED]) is B.FAILED  # ends while paused
    assert batch_end(B.RUNNING, [J.DONE, J.CANCELED]) is B.CANCELED
    assert batch_end(B.CANCELED, [J.FAILED]) is None  # a cancel ended it first


@given(
    st.sampled_from(BatchState),
    st.lists(st.sampled_from(JobState), min_size=1, max_size=6),
)
def test_a_batch_ends_exactly_once(batch: BatchState, jobs: list[JobState]) -> None:
    ended = batch_end(batch, jobs)
    if ended is None:
        return
    assert batch not in FINAL_BATCH_STATES
    assert all(j in FINAL_JOB_STATES for j in jobs)
    assert ended in FINAL_BATCH_STATES
    assert batch_end(ended, jobs) is None


@given(
    st.sampled_from([B.RUNNING, B.PAUSED]),
    st.lists(st.sampled_from(sorted(FINAL_JOB_STATES)), min_size=1, max_size=6),
)
def test_a_started_batch_ends_legally(batch: BatchState, jobs: list[JobState]) -> None:
    ended = batch_end(batch, jobs)
    assert ended is not None
    check_transition("b", batch, ended)


@pytest.mark.parametrize("batch", [B.HELD, B.QUEUED])
def test_a_batch_that_never_started_ends_canceled(batch: BatchState) -> None:
    # Nothing of it ran, so only a cancel can have ended its jobs.
    ended = batch_end(batch, [J.CANCELED, J.CANCELED])
    assert ended is B.CANCELED
    check_transition("b", batch, ended)


# ------------------------------------------------------------------------- cancels


def test_cancel_of_an_ended_batch_is_nothing() -> None:
    for state in FINAL_BATCH_STATES:
        assert cancel_begins(state, C.NONE) is None
        assert cancel_begins(state, C.CANCELING) is None


def test_cancel_begins_canceling_and_cancel_while_canceling_is_no_move() -> None:
    new = cancel_begins(B.RUNNING, C.NONE)
    assert new is C.CANCELING
    check_transition(1, C.NONE, new)
    # Again while canceling: the cancel repeats (its kills sent again), the state stays.
    assert cancel_begins(B.RUNNING, C.CANCELING) is C.CANCELING
    assert not can_transition(C.CANCELING, C.CANCELING)


def test_a_cancel_ends_its_batch_at_once_only_with_nothing_out_on_nodes() -> None:
    assert cancel_ends_batch(B.RUNNING, 0)
    assert not cancel_ends_batch(B.RUNNING, 2)
    assert not cancel_ends_batch(B.CANCELED, 0)  # its jobs' ends ended it already
    assert {J.WAITING, J.QUEUED} == CANCELED_AT_ONCE


# ---------------------------------------------------------------------------- nodes


def test_a_node_that_goes_away() -> None:
    assert node_went_away(N.ONLINE) is N.OFFLINE
    assert node_went_away(N.DISABLED) is None  # stays drained for when it returns
    assert node_went_away(N.OFFLINE) is None


def test_a_node_that_reports_in() -> None:
    assert node_reported(N.OFFLINE, N.ONLINE) is N.ONLINE
    assert node_reported(N.DISABLED, N.ONLINE) is None  # stays drained
    assert node_reported(N.ONLINE, N.ONLINE) is None


@given(st.sampled_from(NodeState), st.sampled_from(NodeState))
def test_node_rules_make_only_legal_moves(stored: NodeState, reported: NodeState) -> None:
    for new in (node_went_away(stored), node_reported(stored, reported)):
        if new is not None:
            check_transition("n", stored, new)


def test_a_node_is_refused_unless_it_runs_the_controllers_version_and_is_not_crashing() -> None:
    assert node_admission("1.2", "1.2", crash_looping=False) is NodeAdmission.ADMITTED
    assert node_admission(None, "1.2", crash_looping=False) is NodeAdmission.REFUSED
    assert node_admission("1.1", "1.2", crash_looping=False) is NodeAdmission.REFUSED
    assert node_admission("1.2", "1.2", crash_looping=True) is NodeAdmission.REFUSED
    assert node_admission("1.2", "1.2", False, runner=False) is NodeAdmission.REFUSED
    check_transition("n", NodeAdmission.ADMITTED, NodeAdmission.REFUSED)
    check_transition("n", NodeAdmission.REFUSED, NodeAdmission.ADMITTED)


def test_a_refusal_says_why_in_the_order_the_reasons_are_checked() -> None:
    from qfarm.domain.lifecycle import CrashLoop, refusal

    loop = CrashLoop(restarts=4, window_seconds=600)
    assert refusal("a", "1.0", "1.0", False, loop) is None
    assert refusal("a", None, "1.0", True, loop) == "node a has not told its version yet"
    assert refusal("a", "0.9", "1.0", True, loop) == "node a runs qfarm 0.9, the controller 1.0"
    assert refusal("a", "0.9", "1.0", False, loop, runner=False) == (
        "node a runs qfarm 0.9, the controller 1.0"
    )
    assert refusal("a", "1.0", "1.0", False, loop, runner=False) == (
        "node a is a plain Dask worker, not a qfarm node: start it with `qfarm node`"
    )
    assert refusal("a", "1.0", "1.0", True, loop) == (
        "node a went down more than 4 times in 10 minutes: out of service until "
        "`qfarm node enable a`"
    )
