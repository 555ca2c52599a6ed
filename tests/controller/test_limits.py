"""Farm-wide limits: the real dispatcher over the fake engine (the rule), then a real
three-node cluster whose segments log when they run (the processes)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from qfarm.controller.planning import plan_batch
from qfarm.controller.service import Controller
from qfarm.domain.errors import InvalidRequest, NotFound
from qfarm.domain.model import BatchRequest, BatchState, JobRequest
from qfarm.domain.requirements import Requirements, job_requirements, limit_wait
from tests.controller.fake_engine import Farm
from tests.helpers import embedded, wait_until

NUKE = Requirements(limits=frozenset({"nuke"}))


def limited_batch(cwd: Path, frames: str, command: list[str] | None = None) -> BatchRequest:
    job = JobRequest(
        "command",
        {"command": command or ["true"], "cwd": str(cwd), "frames": frames},
        requirements=NUKE,
    )
    return BatchRequest(jobs=(job,))


def test_limit_wait_says_why() -> None:
    assert limit_wait({"nuke"}, {"nuke": 4}, {"nuke": 1}) is None
    assert limit_wait({"nuke"}, {"nuke": 4}, {"nuke": 0}) == "waits for limit nuke: 4 of 4 in use"
    assert limit_wait({"nuke"}, {}, {}) == (
        "names limit nuke, which is not set (qfarm limit set nuke N)"
    )


def test_limits_are_kept_in_requirements_and_checked() -> None:
    req = job_requirements(limits=["nuke,houdini"])
    assert req.limits == {"nuke", "houdini"}
    assert Requirements.from_dict(req.to_dict()) == req
    assert "limits houdini,nuke" in req.describe()
    with pytest.raises(InvalidRequest, match="--limit"):
        job_requirements(limits=["nuke!"])


def test_no_more_segments_run_than_the_limit_across_nodes(tmp_path: Path) -> None:
    async def main() -> None:
        farm = Farm(tmp_path)
        try:
            for name in ("a", "b", "c"):
                farm.engine.add_node(name, {"command": 2})
            request = limited_batch(tmp_path, "1-6")
            farm.store.add_batch(request, plan_batch(request))
            await farm.tick()
            assert farm.engine.running == {}  # the limit is not set: nothing goes out
            farm.store.set_limit("nuke", 2)
            farm.dispatcher.set_limit("nuke", 2)
            await farm.tick()
            assert len(farm.engine.running) == 2  # six instances free, two licenses
            assert farm.dispatcher.limit_left() == {"nuke": 0}
            farm.engine.finish_all()
            await farm.tick()
            await farm.tick()
            assert len(farm.engine.running) == 2  # the next two, as the first two ended
            farm.dispatcher.set_limit("nuke", 3)
            await farm.tick()
            assert len(farm.engine.running) == 3
        finally:
            farm.close()

    asyncio.run(main())


@pytest.mark.integration
def test_a_limit_of_two_across_three_real_nodes(tmp_path: Path) -> None:
    # Each segment appends "+" when it starts and "-" when it ends: the most "+" not yet
    # matched by a "-" is how many ran at once.
    log = tmp_path / "running.log"
    command = ["sh", "-c", f"echo + >> {log}; sleep 0.5; echo - >> {log}"]

    async def scenario() -> tuple[BatchState, str, dict[int, str], list[int]]:
        async with embedded(tmp_path, nodes=3, instances=2) as controller:
            batch_id = controller.submit(limited_batch(tmp_path, "1-8", command))
            unset = "names limit nuke, which is not set (qfarm limit set nuke N)"
            # Once the nodes are up, the job waits for its limit, saying so; nothing ran.
            await wait_until(
                lambda: list(controller.waiting(batch_id).values()) == [unset],
                timeout=60,
                what="the job to wait for its limit",
            )
            waiting = controller.waiting(batch_id)
            assert not log.exists()
            controller.set_limit("nuke", 2)
            batch = await asyncio.wait_for(controller.wait(batch_id), 120)
            nodes = sorted({a.node for s in controller.store.segments(batch_id)
                            for a in controller.store.attempts(s.id)})  # fmt: skip
            check_errors(controller)
            return batch.state, log.read_text(), waiting, [len(nodes)]

    state, text, waiting, [nodes_used] = asyncio.run(scenario())
    assert state is BatchState.DONE
    assert list(waiting.values()) == ["names limit nuke, which is not set (qfarm limit set nuke N)"]
    running = most = 0
    for mark in text.split():
        running += 1 if mark == "+" else -1
        most = max(most, running)
    assert text.split().count("+") == 8
    assert most == 2, text
    assert nodes_used >= 2  # the two licenses were used on more than one node


def check_errors(controller: Controller) -> None:
    with pytest.raises(InvalidRequest, match="limit count"):
        controller.set_limit("nuke", -1)
    with pytest.raises(NotFound, match="no limit 'houdini'"):
        controller.remove_limit("houdini")
