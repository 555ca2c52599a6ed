"""What ETAs read from the store (qfarm.store.estimates), on real databases, and the estimate
the controller makes of it on a farm as placement sees it (qfarm.controller.estimates)."""

from __future__ import annotations

from pathlib import Path

from qfarm.controller.estimates import Estimates, estimate_from
from qfarm.controller.placement import Farm, NodeView
from qfarm.domain.model import BatchState
from qfarm.store import Candidate, Result, Store
from qfarm.store.estimates import EstimateFacts
from tests.store.support import command_job, dispatch, submit


def finish(
    store: Store, picked: list[tuple[Candidate, str]], seconds: float, node: str = "node-a"
) -> None:
    store.record_reports(
        results=[
            Result(c.segment_id, c.attempts + 1, ok=True, node=node, exit_code=0,
                   started_at=100.0, ended_at=100.0 + seconds)
            for c, _ in picked
        ]
    )  # fmt: skip


def test_the_work_left_in_dispatch_order_and_the_samples(store: Store, tmp_path: Path) -> None:
    low = submit(store, command_job(tmp_path, name="low"), priority=25)
    high = submit(store, command_job(tmp_path, name="high"), priority=75)
    picked, _ = dispatch(store, 1, batch_ids=[high])  # one segment of `high` goes out ...
    finish(store, picked, seconds=4.0)  # ... and ends: 2 frames in 4 s
    dispatch(store, 1, batch_ids=[high])  # the next one runs

    facts = store.estimate_facts()

    assert [w.batch_id for w in facts.work] == [high, high, low, low, low]
    running = facts.work[0]
    assert running.running_on == "node-a" and running.frames == 2.0
    assert facts.work[1].running_on is None
    [job_high] = store.jobs(high)
    [sample] = facts.samples[job_high.id]
    assert (sample.node, sample.frames, sample.seconds) == ("node-a", 2.0, 4.0)
    assert facts.jobs[job_high.id].service == "command"


def test_a_new_job_learns_from_a_finished_one_like_it(store: Store, tmp_path: Path) -> None:
    earlier = submit(store, command_job(tmp_path))
    while store.batch(earlier).state is not BatchState.DONE:
        picked, _ = dispatch(store, batch_ids=[earlier])
        finish(store, picked, seconds=1.0)
    later = submit(store, command_job(tmp_path))

    facts = store.estimate_facts()

    [job] = store.jobs(later)
    assert not facts.samples.get(job.id)
    key = facts.jobs[job.id].key
    assert key == "command:['true']"
    assert len(facts.similar[key]) == 3  # the earlier job's three segments


def test_the_estimate_on_a_farm(store: Store, tmp_path: Path) -> None:
    batch = submit(store, command_job(tmp_path, frames="1-8"))  # four segments of 2 frames
    picked, _ = dispatch(store, 1)
    finish(store, picked, seconds=2.0)  # 1 frame/s
    farm = Farm(nodes={"node-a": NodeView("node-a", {"command": 1}),
                       "node-b": NodeView("node-b", {"render": 1})})  # fmt: skip

    got = estimate_from(store.estimate_facts(), farm, now=1000.0)

    # Three segments of 2 s left, one instance of command: 6 s.
    assert got.batches[batch] == 1006.0
    # A node that takes no work is no instance.
    drained = Farm(nodes=farm.nodes, disabled=frozenset({"node-a"}))
    assert batch not in estimate_from(store.estimate_facts(), drained, now=1000.0).batches


def test_estimates_are_made_again_only_when_old() -> None:
    made: list[float] = []
    clock = [0.0]

    def facts() -> EstimateFacts:
        made.append(clock[0])
        return EstimateFacts([], {}, {})

    estimates = Estimates(facts, lambda: Farm(nodes={}), clock=lambda: clock[0])
    assert estimates.batch(1) is None
    clock[0] = 1.0
    estimates.batch(1)
    clock[0] = 2.5
    estimates.batch(1)
    assert made == [0.0, 2.5]
