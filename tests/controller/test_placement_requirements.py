"""Placement by requirements: tags, counted resources held per segment (GPUs), host
constraints; as pure functions over plain values, and as the real dispatcher applies them on
a real store over the fake engine (what it submits, what each task holds, why a job waits)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from qfarm.controller.placement import Farm, JobHistory, NodeView, choose, eligible
from qfarm.controller.planning import plan_batch
from qfarm.domain.model import BatchRequest, JobRequest
from qfarm.domain.requirements import (
    MEMORY_MIB,
    OS_FAMILY,
    AmountRange,
    AttributeMatch,
    HostConstraints,
    NodeOffer,
    Requirements,
)
from qfarm.store import Candidate
from tests.controller.fake_engine import Farm as FakeFarm

GPU1 = Requirements(tags=frozenset({"gpu"}), amounts={"gpu": 1})


def candidate(req: Requirements) -> Candidate:
    return Candidate(
        segment_id=1, job_id=1, batch_id=1, index=1, service="command", job_type="command",
        job_spec={}, segment_spec={}, timeout=None, attempts=0, failed_nodes=(),
        requirements=req,
    )  # fmt: skip


def gpu_farm() -> Farm:
    return Farm(
        {
            "gpu": NodeView(
                "gpu",
                {"command": 4},
                offer=NodeOffer(tags=frozenset({"gpu"}), resources={"gpu": 2}, os_family="linux"),
            ),
            "plain": NodeView("plain", {"command": 4}, offer=NodeOffer(os_family="linux")),
        }
    )


def test_only_nodes_that_meet_the_requirements_are_eligible() -> None:
    farm = gpu_farm()
    assert eligible(farm, "command", (), (), None, JobHistory(), GPU1).nodes == ["gpu"]
    assert sorted(eligible(farm, "command", (), (), None, JobHistory()).nodes) == ["gpu", "plain"]
    none = eligible(
        farm, "command", (), (), None, JobHistory(), Requirements(tags=frozenset({"fast-disk"}))
    )
    assert none.nodes == [] and none.why_not == (
        "needs tag fast-disk; no online command node has it"
    )
    three = eligible(farm, "command", (), (), None, JobHistory(), Requirements(amounts={"gpu": 3}))
    assert three.why_not == "needs 3 gpu; the most any online command node has is 2"
    windows = Requirements(
        host=HostConstraints(attributes=(AttributeMatch(OS_FAMILY, any_of=("windows",)),))
    )
    why = eligible(farm, "command", (), (), None, JobHistory(), windows).why_not
    assert why == "needs attr.worker.os.family windows; online command nodes have linux"


def test_a_segment_goes_only_where_its_amounts_are_free() -> None:
    farm = gpu_farm()
    free = {"gpu": {"command": 4}, "plain": {"command": 4}}
    assert choose(
        candidate(GPU1), (), farm, free, None, JobHistory(), {"gpu": {"gpu": 1}}
    ).node == ("gpu")
    # Instances are free, GPUs are not: it waits.
    held = choose(candidate(GPU1), (), farm, free, None, JobHistory(), {"gpu": {"gpu": 0}})
    assert held.node is None
    # A job holding nothing may go anywhere, the least busy first.
    free["plain"]["command"] = 1
    assert choose(candidate(Requirements()), (), farm, free, None, JobHistory()).node == "gpu"


def test_host_amounts_select_without_holding() -> None:
    farm = Farm(
        {
            "big": NodeView("big", {"command": 1}, offer=NodeOffer(memory_mib=65536)),
            "small": NodeView("small", {"command": 1}, offer=NodeOffer(memory_mib=4096)),
        }
    )
    req = Requirements(host=HostConstraints(amounts=(AmountRange(MEMORY_MIB, min=16384),)))
    free = {"big": {"command": 1}, "small": {"command": 1}}
    assert choose(candidate(req), (), farm, free, None, JobHistory(), {}).node == "big"


def gpu_batch(cwd: Path, frames: str, req: Requirements) -> BatchRequest:
    job = JobRequest(
        "command", {"command": ["true"], "frames": frames, "cwd": str(cwd)}, requirements=req
    )
    return BatchRequest(jobs=(job,))


def test_the_dispatcher_holds_gpus_per_segment_and_says_why_a_job_waits(tmp_path: Path) -> None:
    async def scenario() -> None:
        farm = FakeFarm(tmp_path)
        farm.engine.add_node("gpu-node", {"command": 4}, tags=("gpu",), resources={"gpu": 2})
        farm.engine.add_node("plain-node", {"command": 4})
        request = gpu_batch(tmp_path, "1-5", GPU1)
        batch_id = farm.store.add_batch(request, plan_batch(request))
        stuck = gpu_batch(tmp_path, "1-2", Requirements(tags=frozenset({"nope"})))
        stuck_id = farm.store.add_batch(stuck, plan_batch(stuck))
        await farm.tick()
        out = farm.engine.out()
        # Two GPUs: two segments at once, both on the GPU node, each holding one.
        assert [farm.engine.running[k].node for k in out] == ["gpu-node", "gpu-node"]
        assert all(farm.engine.running[k].task.resources == {"gpu": 1} for k in out)
        assert farm.dispatcher.busy["gpu-node"]["gpu"] == 2
        farm.engine.finish(out[0])
        await farm.tick()
        assert len(farm.engine.out()) == 2  # the freed GPU went to the next segment
        for _ in range(5):
            farm.engine.finish_all()
            await farm.tick()
        assert farm.store.batch(batch_id).state.value == "done"
        assert farm.dispatcher.busy["gpu-node"]["gpu"] == 0
        assert {t.node for t in farm.engine.submitted} == {"gpu-node"}
        # The job requiring a tag no node has stays queued, and says why.
        job = farm.store.jobs(stuck_id)[0]
        assert farm.store.batch(stuck_id).state.value == "queued"
        found = farm.dispatcher.eligible(job.id, "command", (), (), job.requirements)
        assert found.why_not == "needs tag nope; no online command node has it"
        farm.close()

    asyncio.run(scenario())
