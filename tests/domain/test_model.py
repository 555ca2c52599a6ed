"""The state tables, outcomes and priorities of :mod:`qfarm.model`.

The legal moves are written out literally here, not read back from the module, so a change to a
transition table fails these tests until the spec below is changed on purpose too.
"""

from __future__ import annotations

import enum
import itertools

import pytest

from qfarm.domain.model import (
    BATCH_TRANSITIONS,
    CANCEL_TRANSITIONS,
    DEFAULT_PRIORITY,
    JOB_TRANSITIONS,
    NODE_ADMISSION_TRANSITIONS,
    NODE_TRANSITIONS,
    SEGMENT_TRANSITIONS,
    BatchState,
    CancelState,
    IllegalTransition,
    JobState,
    NodeAdmission,
    NodeState,
    Segment,
    SegmentKind,
    SegmentState,
    batch_outcome,
    can_transition,
    check_transition,
    failure_summary,
    job_outcome,
    parse_priority,
    priority_label,
)

S, J, B, N = SegmentState, JobState, BatchState, NodeState

# The spec: queued -> dispatched -> running -> done | failed | canceled, failed -> queued
# on retry. Beyond it: a queued segment can be canceled; a dispatched or running one goes back to
# queued when its node is lost; a dispatched one can fail to start or be canceled; a canceled
# one is queued again on a resubmit. Issue 18: running -> suspended -> running (pause
# --suspend, resume); a suspended one is queued when its node is lost, canceled by a cancel,
# and ends done or failed when its process ended as it was stopped.
EXPECTED_SEGMENT: dict[SegmentState, set[SegmentState]] = {
    S.QUEUED: {S.DISPATCHED, S.CANCELED},
    S.DISPATCHED: {S.RUNNING, S.QUEUED, S.FAILED, S.CANCELED},
    S.RUNNING: {S.DONE, S.FAILED, S.CANCELED, S.QUEUED, S.SUSPENDED},
    S.SUSPENDED: {S.RUNNING, S.QUEUED, S.CANCELED, S.DONE, S.FAILED},
    S.DONE: set(),
    S.FAILED: {S.QUEUED},
    S.CANCELED: {S.QUEUED},
}

# The spec: waiting -> queued -> running -> assembling -> done | failed | canceled.
# Beyond it: a job without an assemble step ends straight from running; waiting and queued jobs
# can be canceled; a running job goes back to queued when all its segments were given back;
# failed and canceled jobs are queued again on a resubmit (or wait again, when a job they
# depend on reruns too).
EXPECTED_JOB: dict[JobState, set[JobState]] = {
    J.WAITING: {J.QUEUED, J.CANCELED},
    J.QUEUED: {J.RUNNING, J.CANCELED},
    J.RUNNING: {J.ASSEMBLING, J.DONE, J.FAILED, J.CANCELED, J.QUEUED},
    J.ASSEMBLING: {J.DONE, J.FAILED, J.CANCELED},
    J.DONE: set(),
    J.FAILED: {J.QUEUED, J.WAITING},
    J.CANCELED: {J.QUEUED, J.WAITING},
}

# The spec: held -> queued -> running <-> paused -> done | failed | canceled.
# Beyond it: a queued batch can be held again, paused or canceled; a paused batch whose work had
# not started resumes to queued, and one whose last segments finish while paused ends from there;
# failed and canceled batches are queued again on a resubmit.
EXPECTED_BATCH: dict[BatchState, set[BatchState]] = {
    B.HELD: {B.QUEUED, B.CANCELED},
    B.QUEUED: {B.RUNNING, B.HELD, B.PAUSED, B.CANCELED},
    B.RUNNING: {B.PAUSED, B.DONE, B.FAILED, B.CANCELED},
    B.PAUSED: {B.RUNNING, B.QUEUED, B.DONE, B.FAILED, B.CANCELED},
    B.DONE: set(),
    B.FAILED: {B.QUEUED},
    B.CANCELED: {B.QUEUED},
}

# Nodes move freely between their three states, but never to the state they are in.
EXPECTED_NODE: dict[NodeState, set[NodeState]] = {
    N.ONLINE: {N.DISABLED, N.OFFLINE},
    N.DISABLED: {N.ONLINE, N.OFFLINE},
    N.OFFLINE: {N.ONLINE, N.DISABLED},
}

# Beside a batch's state: a cancel under way (its kills have not all reported back), left on a
# resubmit or a reopen. Cancel while canceling is no move: the cancel is repeated instead.
EXPECTED_CANCEL: dict[CancelState, set[CancelState]] = {
    CancelState.NONE: {CancelState.CANCELING},
    CancelState.CANCELING: {CancelState.NONE},
}

# Beside a node's state: whether the dispatcher gives it work (refused: another version, no
# version told, crash-looping).
EXPECTED_ADMISSION: dict[NodeAdmission, set[NodeAdmission]] = {
    NodeAdmission.ADMITTED: {NodeAdmission.REFUSED},
    NodeAdmission.REFUSED: {NodeAdmission.ADMITTED},
}

EXPECTED: dict[str, tuple[type[enum.Enum], dict, object]] = {
    "segment": (SegmentState, EXPECTED_SEGMENT, SEGMENT_TRANSITIONS),
    "job": (JobState, EXPECTED_JOB, JOB_TRANSITIONS),
    "batch": (BatchState, EXPECTED_BATCH, BATCH_TRANSITIONS),
    "node": (NodeState, EXPECTED_NODE, NODE_TRANSITIONS),
    "batch cancel": (CancelState, EXPECTED_CANCEL, CANCEL_TRANSITIONS),
    "node admission": (NodeAdmission, EXPECTED_ADMISSION, NODE_ADMISSION_TRANSITIONS),
}


def _pairs(legal: bool) -> list[tuple[str, enum.Enum, enum.Enum]]:
    pairs = []
    for kind, (state_type, expected, _table) in EXPECTED.items():
        for old, new in itertools.product(state_type, state_type):
            if (new in expected[old]) is legal:
                pairs.append((kind, old, new))
    return pairs


def _pair_id(pair: tuple[str, enum.Enum, enum.Enum]) -> str:
    kind, old, new = pair
    return f"{kind}:{old.value}->{new.value}"


LEGAL_PAIRS = _pairs(legal=True)
ILLEGAL_PAIRS = _pairs(legal=False)


# --- the tables against the literal spec ---------------------------------------------------


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_transition_table_covers_every_state(kind: str) -> None:
    state_type, _expected, table = EXPECTED[kind]
    assert set(table) == set(state_type)


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_transition_table_matches_written_spec(kind: str) -> None:
    state_type, expected, table = EXPECTED[kind]
    assert set(expected) == set(state_type)
    for old in state_type:
        assert set(table[old]) == expected[old], f"{kind} {old.value}"


def test_every_pair_is_checked() -> None:
    types = (SegmentState, JobState, BatchState, NodeState, CancelState, NodeAdmission)
    total = sum(len(t) ** 2 for t in types)
    assert len(LEGAL_PAIRS) + len(ILLEGAL_PAIRS) == total


def test_done_is_final_for_segments_jobs_and_batches() -> None:
    assert EXPECTED_SEGMENT[S.DONE] == set()
    assert EXPECTED_JOB[J.DONE] == set()
    assert EXPECTED_BATCH[B.DONE] == set()


# --- every (old, new) pair ------------------------------------------------------------------


@pytest.mark.parametrize("pair", LEGAL_PAIRS, ids=_pair_id)
def test_legal_transition_passes(pair: tuple[str, enum.Enum, enum.Enum]) -> None:
    _kind, old, new = pair
    assert can_transition(old, new)
    check_transition(17, old, new)  # does not raise


@pytest.mark.parametrize("pair", ILLEGAL_PAIRS, ids=_pair_id)
def test_illegal_transition_raises_naming_kind_id_and_states(
    pair: tuple[str, enum.Enum, enum.Enum],
) -> None:
    kind, old, new = pair
    assert not can_transition(old, new)
    with pytest.raises(IllegalTransition) as info:
        check_transition("id-4711", old, new)
    message = str(info.value)
    assert kind in message
    assert "id-4711" in message
    assert f"from {old.value}" in message
    assert f"to {new.value}" in message
    assert info.value.kind == kind
    assert info.value.ident == "id-4711"
    assert info.value.old is old
    assert info.value.new is new


def test_illegal_transition_message_reads_in_order() -> None:
    with pytest.raises(IllegalTransition) as info:
        check_transition(42, S.DONE, S.RUNNING)
    assert str(info.value) == "segment 42: cannot go from done to running"


def test_transition_between_different_state_types_is_illegal() -> None:
    # Same value, different kind of object.
    assert not can_transition(S.QUEUED, J.QUEUED)
    with pytest.raises(IllegalTransition, match="segment 3"):
        check_transition(3, S.QUEUED, J.RUNNING)


# --- job_outcome ----------------------------------------------------------------------------


def test_job_outcome_of_no_segments_is_none() -> None:
    assert job_outcome([]) is None


@pytest.mark.parametrize("unfinished", [S.QUEUED, S.DISPATCHED, S.RUNNING])
def test_job_outcome_is_none_while_any_segment_is_unfinished(unfinished: SegmentState) -> None:
    assert job_outcome([S.DONE, unfinished, S.FAILED]) is None
    assert job_outcome([unfinished]) is None


def test_job_outcome_all_done_is_done() -> None:
    assert job_outcome([S.DONE, S.DONE, S.DONE]) is J.DONE


@pytest.mark.parametrize(
    "states",
    [
        [S.FAILED],
        [S.DONE, S.FAILED],
        [S.FAILED, S.CANCELED],
        [S.CANCELED, S.DONE, S.FAILED],
    ],
)
def test_job_outcome_any_failed_is_failed(states: list[SegmentState]) -> None:
    assert job_outcome(states) is J.FAILED


@pytest.mark.parametrize("states", [[S.CANCELED], [S.DONE, S.CANCELED], [S.CANCELED] * 3])
def test_job_outcome_canceled_without_failures_is_canceled(states: list[SegmentState]) -> None:
    assert job_outcome(states) is J.CANCELED


# --- batch_outcome --------------------------------------------------------------------------


def test_batch_outcome_of_no_jobs_is_none() -> None:
    assert batch_outcome([]) is None


@pytest.mark.parametrize("unfinished", [J.WAITING, J.QUEUED, J.RUNNING, J.ASSEMBLING])
def test_batch_outcome_is_none_while_any_job_is_unfinished(unfinished: JobState) -> None:
    assert batch_outcome([J.DONE, unfinished]) is None
    assert batch_outcome([unfinished, J.FAILED]) is None


def test_batch_outcome_all_done_is_done() -> None:
    assert batch_outcome([J.DONE]) is B.DONE
    assert batch_outcome([J.DONE, J.DONE]) is B.DONE


@pytest.mark.parametrize("states", [[J.FAILED], [J.DONE, J.FAILED], [J.CANCELED, J.FAILED, J.DONE]])
def test_batch_outcome_any_failed_is_failed(states: list[JobState]) -> None:
    assert batch_outcome(states) is B.FAILED


@pytest.mark.parametrize("states", [[J.CANCELED], [J.DONE, J.CANCELED]])
def test_batch_outcome_canceled_without_failures_is_canceled(states: list[JobState]) -> None:
    assert batch_outcome(states) is B.CANCELED


# --- parse_priority -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("low", 25), ("medium", 50), ("high", 75), ("HIGH", 75), (" Low ", 25)],
)
def test_parse_priority_names(text: str, expected: int) -> None:
    assert parse_priority(text) == expected


def test_default_priority_is_medium() -> None:
    assert DEFAULT_PRIORITY == parse_priority("medium") == 50


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0", 0), ("100", 100), ("42", 42), (" 7 ", 7), (0, 0), (100, 100), (63, 63)],
)
def test_parse_priority_numbers(text: str | int, expected: int) -> None:
    assert parse_priority(text) == expected


@pytest.mark.parametrize("text", ["101", "-1", "1000", 101, -1])
def test_parse_priority_out_of_range_raises(text: str | int) -> None:
    with pytest.raises(ValueError, match="out of range"):
        parse_priority(text)


@pytest.mark.parametrize("text", ["", "  ", "urgent", "5.5", "1e2", "fifty", "high!", "0x10"])
def test_parse_priority_garbage_raises(text: str) -> None:
    with pytest.raises(ValueError, match="not high, medium, low or a number"):
        parse_priority(text)


def _segment(index: int, state: SegmentState, error: str = "") -> Segment:
    return Segment(
        id=index, job_id=1, batch_id=1, index=index, kind=SegmentKind.WORK, state=state,
        label=f"frames {index}", spec={}, frames=1, attempts=1, error=error,
    )  # fmt: skip


def test_a_failed_job_is_explained_by_its_failed_segments() -> None:
    done = _segment(1, SegmentState.DONE)
    assert failure_summary([done]) == ""
    one = [done, _segment(3, SegmentState.FAILED, "exited with code 2")]
    assert failure_summary(one) == "segment 3 (frames 3) failed: exited with code 2"
    two = [_segment(4, SegmentState.FAILED, "killed"), *one]
    assert failure_summary(two) == (
        "2 segments failed; segment 3 (frames 3) failed: exited with code 2"
    )
    assert failure_summary([_segment(2, SegmentState.FAILED)]) == "segment 2 (frames 2) failed"


def test_priorities_read_as_their_names() -> None:
    assert [priority_label(v) for v in (75, 50, 25, 60)] == ["high", "medium", "low", "60"]
