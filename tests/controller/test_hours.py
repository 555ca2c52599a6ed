"""Node hours on the real dispatcher over the fake engine: a node that goes off by its
schedule takes no new work, and its running segments finish, stop or go elsewhere as its
--schedule-end says; one that comes back continues what it stopped."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from qfarm.controller.planning import plan_batch
from qfarm.domain.model import BatchRequest, JobRequest, SegmentState
from qfarm.domain.schedule import AVAILABLE, OFF_HOURS, USER_ACTIVE
from tests.controller.fake_engine import Farm


def set_availability(farm: Farm, name: str, state: float) -> None:
    node = farm.engine.live[name]
    farm.engine.live[name] = replace(node, load={**node.load, "availability": state})


def test_nodes_off_by_their_hours_finish_suspend_or_requeue(tmp_path: Path) -> None:
    async def main() -> None:
        farm = Farm(tmp_path)
        try:
            for name, end in (("requeuer", "requeue"), ("suspender", "suspend"),
                              ("finisher", "finish"), ("always", "finish")):  # fmt: skip
                farm.engine.add_node(name, {"command": 1}, facts={"schedule_end": end,
                                     "schedule": "mon-fri 19:00-07:00"})  # fmt: skip
            job = JobRequest(
                "command", {"command": ["true"], "cwd": str(tmp_path), "frames": "1-5"}
            )
            request = BatchRequest(jobs=(job,))
            batch = farm.store.add_batch(request, plan_batch(request))
            await farm.tick()
            on = {farm.engine.running[k].node: k for k in farm.engine.out()}
            assert set(on) == {"requeuer", "suspender", "finisher", "always"}
            for key in on.values():
                farm.engine.start(key)
            await farm.tick()

            for name in ("requeuer", "suspender", "finisher"):
                set_availability(farm, name, OFF_HOURS)
            await farm.tick()
            await farm.tick()

            assert on["requeuer"] in farm.engine.killed  # ended, and queued again ...
            assert farm.engine.suspended == {on["suspender"]}  # stopped where it is
            assert on["finisher"] in farm.engine.running  # runs on
            segments = {s.id: s for s in farm.store.segments(batch)}
            states = sorted(s.state.value for s in segments.values())
            assert states.count("queued") == 2  # the requeued one and the fifth
            assert all(s.failures == 0 for s in segments.values())  # ... with no failure
            assert SegmentState.SUSPENDED in {s.state for s in segments.values()}
            # Nothing new goes to a node that is off, however free it is.
            farm.engine.finish(on["always"])
            await farm.tick()
            await farm.tick()
            fresh = [k for k in farm.engine.out() if k not in on.values()]
            assert [farm.engine.running[k].node for k in fresh] == ["always"]

            set_availability(farm, "suspender", AVAILABLE)  # its hours begin again
            await farm.tick()
            assert farm.engine.suspended == set()
            [again] = [s for s in farm.store.segments(batch) if s.node == "suspender"]
            assert again.state is SegmentState.RUNNING
            assert farm.dispatcher.off == {"requeuer", "finisher"}
        finally:
            farm.close()

    asyncio.run(main())


def test_a_node_whose_user_came_back_takes_no_new_work(tmp_path: Path) -> None:
    async def main() -> None:
        farm = Farm(tmp_path)
        try:
            farm.engine.add_node("desk", {"command": 2}, facts={"when_idle": 600})
            set_availability(farm, "desk", USER_ACTIVE)
            job = JobRequest("command", {"command": ["true"], "cwd": str(tmp_path)})
            request = BatchRequest(jobs=(job,))
            farm.store.add_batch(request, plan_batch(request))
            await farm.tick()
            assert farm.engine.out() == []
            set_availability(farm, "desk", AVAILABLE)
            await farm.tick()
            assert len(farm.engine.out()) == 1
        finally:
            farm.close()

    asyncio.run(main())
