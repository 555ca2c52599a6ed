"""The actions a batch allows, by state: what the API tells the page and the CLI."""

from __future__ import annotations

import pytest

from qfarm.domain.actions import ALL_ACTIONS, actions_for, batch_actions
from qfarm.domain.model import FINAL_BATCH_STATES, Batch, BatchState, can_transition

B = BatchState

EXPECTED = {
    B.HELD: ["resume", "cancel", "priority"],
    B.QUEUED: ["pause", "cancel", "priority"],
    B.RUNNING: ["pause", "suspend", "cancel", "priority"],
    B.PAUSED: ["suspend", "resume", "cancel", "priority"],
    B.DONE: ["remove"],
    B.FAILED: ["resubmit", "remove"],
    B.CANCELED: ["resubmit", "remove"],
}


def test_every_state_has_its_expected_actions() -> None:
    assert set(EXPECTED) == set(BatchState)
    for state, expected in EXPECTED.items():
        assert actions_for(state) == expected, state


def test_names_are_the_api_route_verbs() -> None:
    assert ALL_ACTIONS == ("pause", "suspend", "resume", "cancel", "resubmit", "priority", "remove")


@pytest.mark.parametrize("state", list(BatchState))
def test_actions_come_in_the_fixed_order(state: BatchState) -> None:
    got = actions_for(state)
    assert got == [name for name in ALL_ACTIONS if name in got]


@pytest.mark.parametrize("state", list(BatchState))
def test_an_offered_action_is_a_transition_the_model_allows(state: BatchState) -> None:
    """The list never offers what the state tables would refuse (an IllegalTransition)."""
    got = actions_for(state)
    if "pause" in got:
        assert can_transition(state, B.PAUSED)
    if "suspend" in got:  # paused already, or a move the tables allow
        assert state is B.PAUSED or can_transition(state, B.PAUSED)
    if "resume" in got:
        assert can_transition(state, B.QUEUED) or can_transition(state, B.RUNNING)
    if "cancel" in got:
        assert can_transition(state, B.CANCELED)
    if "resubmit" in got:
        assert can_transition(state, B.QUEUED)


@pytest.mark.parametrize("state", list(BatchState))
def test_an_ended_batch_is_removed_and_a_going_one_canceled(state: BatchState) -> None:
    got = actions_for(state)
    ended = state in FINAL_BATCH_STATES
    assert ("remove" in got) is ended
    assert ("cancel" in got) is not ended
    assert ("priority" in got) is not ended


def test_batch_actions_reads_the_batch_state() -> None:
    batch = Batch(id=1, name="b", owner="", priority=50, state=B.FAILED, submitted_at=0.0)
    assert batch_actions(batch) == ["resubmit", "remove"]
