"""Booking in bounded rounds, and what each tick's free-slot index and farm view are made of:
the real dispatcher on a real SQLite store over the fake engine (tests/controller/fake_engine).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

from qfarm.controller.planning import plan_batch
from qfarm.domain.model import BatchRequest, JobRequest, NodeState
from tests.controller.fake_engine import Farm


def on_farm(tmp_path: Path, scenario: Callable[[Farm], Awaitable[None]]) -> None:
    async def main() -> None:
        farm = Farm(tmp_path)
        try:
            await scenario(farm)
        finally:
            farm.close()

    asyncio.run(main())


def add(farm: Farm, cwd: Path, frames: str) -> int:
    job = JobRequest("command", {"command": ["true"], "cwd": str(cwd), "frames": frames})
    request = BatchRequest(jobs=(job,))
    return farm.store.add_batch(request, plan_batch(request))


def disable(farm: Farm, name: str, disabled: bool) -> None:
    """`qfarm node disable NAME` (or enable), as the controller does it."""
    farm.store.set_node_state(name, NodeState.DISABLED if disabled else NodeState.ONLINE)
    farm.dispatcher.set_disabled(name, disabled)


def nodes_of(farm: Farm, keys: list[str]) -> Counter[str]:
    return Counter(farm.engine.running[key].node for key in keys)


def test_a_tick_books_at_most_a_round_and_asks_for_the_next_at_once(tmp_path: Path) -> None:
    async def scenario(farm: Farm) -> None:
        farm.dispatcher.dispatch_round = 2
        farm.engine.add_node("a", {"command": 5})
        batch_id = add(farm, tmp_path, "1-5")
        await farm.tick()
        assert len(farm.engine.out()) == 2
        assert farm.engine.wakeup.is_set()  # a full round: the loop goes on without waiting
        await farm.tick()
        assert len(farm.engine.out()) == 4
        await farm.tick()
        assert len(farm.engine.out()) == 5
        assert not farm.engine.wakeup.is_set()  # the last round was not full
        # Rounds keep the dispatch order: segments went out by index.
        ids = [t.task.segment_id for t in farm.engine.submitted]
        assert ids == sorted(ids)
        assert farm.store.counts(batch_id).queued == 0

    on_farm(tmp_path, scenario)


def test_a_slot_freed_between_rounds_is_offered_in_the_next(tmp_path: Path) -> None:
    async def scenario(farm: Farm) -> None:
        farm.dispatcher.dispatch_round = 2
        farm.engine.add_node("a", {"command": 2})
        farm.engine.add_node("b", {"command": 2})
        add(farm, tmp_path, "1-6")
        await farm.tick()
        first = farm.engine.out()
        # The least busy free node, ties by name: b, then a (two free against b's one).
        assert [farm.engine.running[k].node for k in first] == ["b", "a"]
        farm.engine.finish(first[0])  # b's ends before the next round
        await farm.tick()
        # Its end was recorded before the round, so b had two free slots again, a one.
        second = [k for k in farm.engine.out() if k not in first]
        assert [farm.engine.running[k].node for k in second] == ["b", "b"]

    on_farm(tmp_path, scenario)


def test_a_node_disabled_or_lost_between_ticks_gets_nothing_more(tmp_path: Path) -> None:
    async def scenario(farm: Farm) -> None:
        farm.dispatcher.dispatch_round = 2
        farm.engine.add_node("a", {"command": 3})
        farm.engine.add_node("b", {"command": 3})
        add(farm, tmp_path, "1-8")
        await farm.tick()
        assert nodes_of(farm, farm.engine.out()) == {"a": 1, "b": 1}
        disable(farm, "b", True)
        await farm.tick()
        assert nodes_of(farm, farm.engine.out()) == {"a": 3, "b": 1}
        farm.engine.lose_node("a")
        await farm.tick()
        # a's three were withdrawn (queued again); b, disabled, is given none of them.
        assert len(farm.engine.withdrawn) == 3
        assert nodes_of(farm, farm.engine.out()) == {"b": 1}
        disable(farm, "b", False)
        await farm.tick()
        assert nodes_of(farm, farm.engine.out()) == {"b": 3}  # its two free slots taken

    on_farm(tmp_path, scenario)


def test_the_farm_view_is_kept_until_the_nodes_or_disabled_ones_change(tmp_path: Path) -> None:
    async def scenario(farm: Farm) -> None:
        farm.engine.add_node("a")
        await farm.dispatcher.refresh_nodes()
        view = farm.dispatcher.farm()
        assert farm.dispatcher.farm() is view  # nothing changed: the same view
        farm.dispatcher.set_disabled("a", True)
        disabled = farm.dispatcher.farm()
        assert disabled.disabled == {"a"}
        farm.dispatcher.set_disabled("a", False)
        assert farm.dispatcher.farm().disabled == frozenset()
        farm.engine.add_node("b", {"render": 2})
        await farm.dispatcher.refresh_nodes()
        assert farm.dispatcher.farm().nodes["b"].services == {"render": 2}

    on_farm(tmp_path, scenario)
