"""The snapshot of what each node does now, on the real dispatcher over a fake engine."""

from __future__ import annotations

from pathlib import Path

from qfarm.controller.activity import NodeActivity, Running, node_activity
from tests.controller.fake_engine import Farm
from tests.controller.test_placement import add, command_batch, on_farm


def test_a_snapshot_names_what_each_node_runs_and_why_one_is_refused(tmp_path: Path) -> None:
    async def scenario(farm: Farm) -> None:
        farm.engine.add_node("a", {"command": 2})
        farm.engine.add_node("old", {"command": 1}, version="0.0.1")
        batch_id = add(farm, command_batch(tmp_path, "1-3"))
        await farm.tick()
        snapshot = node_activity(farm.dispatcher)
        assert snapshot["a"].busy == {"command": 2}
        assert sorted(r.segment_id for r in snapshot["a"].running) == sorted(
            s.id for s in farm.store.segments(batch_id)[:2]
        )
        assert all(isinstance(r, Running) and r.attempt == 1 for r in snapshot["a"].running)
        assert "runs qfarm 0.0.1" in snapshot["old"].refused
        assert snapshot["old"].running == [] and snapshot["old"].busy == {}
        farm.engine.finish_all()
        await farm.tick()  # the third segment takes a freed instance
        await farm.tick()
        farm.engine.finish_all()
        await farm.tick()
        assert node_activity(farm.dispatcher)["a"] == NodeActivity(
            load=node_activity(farm.dispatcher)["a"].load
        )

    on_farm(tmp_path, scenario)
