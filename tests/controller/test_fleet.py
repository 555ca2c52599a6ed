"""The dispatcher's watch on its nodes, on the real dispatcher and store over a fake engine:
a node shut out on purpose loses its attempts before its worker closes."""

from __future__ import annotations

from pathlib import Path

from qfarm.domain.model import BatchState, NodeState, SegmentState
from tests.controller.fake_engine import Farm
from tests.controller.test_placement import add, command_batch, on_farm


def test_a_node_given_up_loses_its_attempts_and_their_late_ends_count_for_nothing(
    tmp_path: Path,
) -> None:
    async def scenario(farm: Farm) -> None:
        farm.engine.add_node("doomed", {"command": 2})
        farm.engine.add_node("other", {"command": 1})
        batch_id = add(farm, command_batch(tmp_path, "1-3", retries=0))
        await farm.tick()
        on_doomed = farm.engine.out("doomed")
        on_other = farm.engine.out("other")
        assert len(on_doomed) == 2 and len(on_other) == 1
        for key in on_doomed + on_other:
            farm.engine.start(key)
        await farm.tick()

        assert await farm.dispatcher.give_up_node("doomed", "node revoked") == 2
        assert sorted(farm.engine.withdrawn) == sorted(on_doomed)
        # Its closing worker kills their processes; those ends come in afterwards.
        for key in on_doomed:
            farm.engine.finish(key, ok=False, exit_code=-15, killed=True, late=True)
        farm.engine.lose_node("doomed")
        await farm.tick()

        segments = farm.store.segments(batch_id)
        given_up = [s for s in segments if s.state is not SegmentState.RUNNING]
        assert len(given_up) == 2
        for segment in given_up:
            # Lost, not failed: no retry used, so the batch (retries=0) goes on.
            assert segment.failures == 0
            attempts = farm.store.attempts(segment.id)
            assert [a.outcome for a in attempts][:1] == ["lost"]
            assert "node revoked" in attempts[0].error
        assert farm.store.batch(batch_id).state is BatchState.RUNNING
        # The other node's attempt is untouched, and the requeued two run there in turn.
        assert on_other[0] in farm.engine.out("other")
        assert await farm.dispatcher.give_up_node("nobody", "node revoked") == 0

    on_farm(tmp_path, scenario)


def test_an_attempt_that_ends_while_its_node_is_given_up_is_left_as_it_ended(
    tmp_path: Path,
) -> None:
    async def scenario(farm: Farm) -> None:
        farm.engine.add_node("doomed", {"command": 2})
        batch_id = add(farm, command_batch(tmp_path, "1-2", retries=0))
        await farm.tick()
        first, second = farm.engine.out("doomed")
        withdraw = farm.engine.withdraw

        async def withdraw_while_the_other_ends(key: str) -> None:
            # The scheduler round trip of a withdrawal: the loop collects the other's end.
            if second in farm.dispatcher.in_flight:
                farm.engine.finish(second)
                await farm.dispatcher.tick()
            await withdraw(key)

        farm.engine.withdraw = withdraw_while_the_other_ends  # type: ignore[method-assign]
        farm.store.set_node_state("doomed", NodeState.DISABLED)  # as a revoke does first
        farm.dispatcher.set_disabled("doomed", True)
        assert await farm.dispatcher.give_up_node("doomed", "node revoked") == 2
        await farm.tick()
        segments = farm.store.segments(batch_id)
        outcomes = sorted(str(a.outcome) for s in segments for a in farm.store.attempts(s.id))
        assert outcomes == ["done", "lost"], outcomes
        assert first in farm.engine.withdrawn and second not in farm.engine.withdrawn

    on_farm(tmp_path, scenario)
