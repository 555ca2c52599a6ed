"""Fair share between owners: the rule, then the real dispatcher over the fake engine."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from qfarm.controller.fairshare import FairShare
from qfarm.controller.planning import plan_batch
from qfarm.domain.model import BatchRequest, JobRequest
from tests.controller.fake_engine import Farm


def test_each_owner_waiting_at_a_priority_gets_its_share() -> None:
    fair = FairShare(instances=4, held=Counter(), waiting={50: {"ann", "bob"}})
    assert fair.share(50) == 2
    for _ in range(2):
        assert fair.allows("ann", 50)
        fair.took("ann")
    assert not fair.allows("ann", 50)  # ann has her two ...
    assert fair.allows("bob", 50)  # ... bob still gets his
    assert not fair.allows("carl", 25)  # and nothing below, while ann waits at 50
    alone = FairShare(instances=4, held=Counter({"ann": 9}), waiting={50: {"ann"}})
    assert alone.allows("ann", 50)  # nobody to share with: no cap


def batch(cwd: Path, owner: str, frames: str, priority: int = 50) -> BatchRequest:
    job = JobRequest("command", {"command": ["true"], "cwd": str(cwd), "frames": frames})
    return BatchRequest(jobs=(job,), owner=owner, priority=priority)


def owners_running(farm: Farm) -> Counter[str]:
    owner_of = {b.id: b.owner for b in farm.store.batches()}
    running = Counter[str]()
    for task in farm.engine.running.values():
        running[owner_of[task.task.batch_id]] += 1
    return running


def run(tmp_path: Path, fair: bool, *requests: BatchRequest) -> Counter[str]:
    tmp_path.mkdir(parents=True, exist_ok=True)

    async def main() -> Counter[str]:
        farm = Farm(tmp_path)
        try:
            farm.dispatcher.fair_share = fair
            farm.engine.add_node("a", {"command": 4})
            for request in requests:
                farm.store.add_batch(request, plan_batch(request))
            await farm.tick()
            return owners_running(farm)
        finally:
            farm.close()

    return asyncio.run(main())


def test_two_owners_share_the_farm_instead_of_first_come_first_served(tmp_path: Path) -> None:
    requests = (batch(tmp_path, "ann", "1-8"), batch(tmp_path, "bob", "1-8"))
    assert run(tmp_path / "plain", False, *requests) == {"ann": 4}
    assert run(tmp_path / "fair", True, *requests) == {"ann": 2, "bob": 2}


def test_no_instance_idles_while_work_waits(tmp_path: Path) -> None:
    # bob has one segment: ann's share grows into what he leaves.
    requests = (batch(tmp_path, "ann", "1-8"), batch(tmp_path, "bob", "1"))
    assert run(tmp_path, True, *requests) == {"ann": 3, "bob": 1}


def test_priority_still_comes_first(tmp_path: Path) -> None:
    requests = (
        batch(tmp_path, "ann", "1-8"),
        batch(tmp_path, "bob", "1-8"),
        batch(tmp_path, "carl", "1-8", priority=75),
    )
    assert run(tmp_path / "high", True, *requests) == {"carl": 4}
    low = (batch(tmp_path, "ann", "1-8"), batch(tmp_path, "bob", "1-8"),
           batch(tmp_path, "carl", "1-8", priority=25))  # fmt: skip
    assert run(tmp_path / "low", True, *low) == {"ann": 2, "bob": 2}
