"""Placement, retries, refusals, node loss and cancel: the real dispatcher on a real SQLite
store, over the fake engine of tests/controller/fake_engine.py (no Dask, no processes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from qfarm import __version__
from qfarm.controller.fleet import CRASH_WINDOW_SECONDS, MAX_NODE_RESTARTS
from qfarm.controller.placement import BLOCKLIST_AFTER
from qfarm.controller.planning import plan_batch
from qfarm.domain.model import BatchRequest, BatchState, JobRequest, JobState, SegmentState
from qfarm.engine.base import NODE_TIMEOUT_SECONDS
from qfarm.store import Change
from tests.controller.fake_engine import Farm


def command_batch(cwd: Path, frames: str = "1", **spec: Any) -> BatchRequest:
    retries = spec.pop("retries", 2)
    priority = spec.pop("priority", 50)
    job = JobRequest(
        "command",
        {"command": ["true"], "cwd": str(cwd), "frames": frames, **spec},
        retries=retries,
    )
    return BatchRequest(jobs=(job,), priority=priority)


def on_farm(tmp_path: Path, scenario: Callable[[Farm], Awaitable[None]]) -> None:
    async def main() -> None:
        farm = Farm(tmp_path)
        try:
            await scenario(farm)
        finally:
            farm.close()

    asyncio.run(main())


def add(farm: Farm, request: BatchRequest) -> int:
    return farm.store.add_batch(request, plan_batch(request))


def test_segments_go_to_the_least_busy_free_node_and_finish(tmp_path: Path) -> None:
    async def scenario(farm: Farm) -> None:
        farm.engine.add_node("a", {"command": 2})
        farm.engine.add_node("b", {"command": 1})
        batch_id = add(farm, command_batch(tmp_path, "1-4"))
        await farm.tick()
        on = sorted(t.node for t in farm.engine.running.values())
        assert on == ["a", "a", "b"]  # every free instance, the fourth segment waits
        assert farm.store.counts(batch_id).queued == 1
        for key in farm.engine.out():
            farm.engine.start(key)
        await farm.tick()
        assert farm.store.counts(batch_id).running == 3
        farm.engine.finish_all()
        await farm.tick()  # records the ends and dispatches the last segment
        [last] = farm.engine.out()
        farm.engine.finish(last)
        await farm.tick()
        assert farm.store.batch(batch_id).state is BatchState.DONE
        assert farm.dispatcher.in_flight == {}

    on_farm(tmp_path, scenario)


def test_the_task_names_its_attempt_and_the_log_under_the_logs_folder(tmp_path: Path) -> None:
    async def scenario(farm: Farm) -> None:
        farm.engine.add_node("a")
        batch_id = add(farm, command_batch(tmp_path))
        await farm.tick()
        [task] = farm.engine.running.values()
        [seg] = farm.store.segments(batch_id)
        assert task.task.key == f"qfarm-b{batch_id}-s{seg.id}-a1"
        assert task.task.attempt == 1 and task.service == "command"
        assert task.task.log_path.startswith(str(tmp_path / "logs" / f"batch-{batch_id}"))
        assert farm.store.attempts(seg.id)[0].log_path == task.task.log_path

    on_farm(tmp_path, scenario)


def test_higher_priority_batch_runs_first(tmp_path: Path) -> None:
    async def scenario(farm: Farm) -> None:
        farm.engine.add_node("a", {"command": 1})
        low = add(farm, command_batch(tmp_path, "1-3", priority=25))
        high = add(farm, command_batch(tmp_path, "1-3", priority=75))
        order = []
        for _ in range(6):
            await farm.tick()
            [task] = farm.engine.running.values()
            order.append(task.task.batch_id)
            farm.engine.finish(task.task.key)
        await farm.tick()
        assert order == [high] * 3 + [low] * 3
        assert farm.store.batch(low).state is BatchState.DONE

    on_farm(tmp_path, scenario)


def test_failed_segment_is_retried_on_another_node(tmp_path: Path) -> None:
    async def scenario(farm: Farm) -> None:
        farm.engine.add_node("a", {"command": 1})
        farm.engine.add_node("b", {"command": 1})
        batch_id = add(farm, command_batch(tmp_path))
        await farm.tick()
        [first] = farm.engine.running.values()
        farm.engine.finish(first.task.key, ok=False, exit_code=3, error="exit 3")
        await farm.tick()
        [second] = farm.engine.running.values()
        assert second.node != first.node, "the retry went back to the node that failed"
        assert second.task.attempt == 2
        farm.engine.finish(second.task.key)
        await farm.tick()
        assert farm.store.batch(batch_id).state is BatchState.DONE
        [seg] = farm.store.segments(batch_id)
        one, two = farm.store.attempts(seg.id)
        assert (one.outcome, one.exit_code, two.outcome) == ("failed", 3, "done")
        [job] = farm.store.jobs(batch_id)
        assert job.failed_nodes == (first.node,)

    on_farm(tmp_path, scenario)


def test_a_segment_that_always_fails_fails_its_job_after_its_retries(tmp_path: Path) -> None:
    async def scenario(farm: Farm) -> None:
        farm.engine.add_node("a", {"command": 1})
        farm.engine.add_node("b", {"command": 1})
        batch_id = add(farm, command_batch(tmp_path, retries=1))
        for _ in range(2):
            await farm.tick()
            farm.engine.finish_all(ok=False, exit_code=2, error="command true exited with 2")
        await farm.tick()
        assert farm.engine.running == {}
        assert farm.store.batch(batch_id).state is BatchState.FAILED
        [seg] = farm.store.segments(batch_id)
        assert seg.state is SegmentState.FAILED and seg.error == "command true exited with 2"
        [job] = farm.store.jobs(batch_id)
        assert job.state is JobState.FAILED and set(job.failed_nodes) == {"a", "b"}

    on_farm(tmp_path, scenario)


def test_a_node_one_segment_failed_on_three_times_gets_none_of_the_job(tmp_path: Path) -> None:
    """With only that node left, a segment goes back to it until it failed there
    BLOCKLIST_AFTER times; then the job waits for another node, which gets it."""

    async def scenario(farm: Farm) -> None:
        farm.engine.add_node("flaky", {"command": 1})
        batch_id = add(farm, command_batch(tmp_path, retries=9))
        for _ in range(BLOCKLIST_AFTER):
            await farm.tick()
            farm.engine.finish_all(ok=False)
        await farm.tick()
        assert farm.engine.running == {}  # blocklisted: nothing goes out
        [job] = farm.store.jobs(batch_id)
        assert farm.dispatcher.eligible(job.id, "command", (), job.failed_nodes).why_not == (
            "every node that could run it is blocklisted for this job (a segment failed "
            f"{BLOCKLIST_AFTER} times on each)"
        )
        farm.engine.add_node("steady", {"command": 1})
        await farm.tick()
        assert [t.node for t in farm.engine.running.values()] == ["steady"]

    on_farm(tmp_path, scenario)


def test_segments_of_a_lost_node_are_requeued_and_withdrawn(tmp_path: Path) -> None:
    async def scenario(farm: Farm) -> None:
        farm.engine.add_node("a", {"command": 1})
        farm.engine.add_node("b", {"command": 1})
        batch_id = add(farm, command_batch(tmp_path, "1-2", retries=0))
        await farm.tick()
        [on_a] = farm.engine.out("a")
        farm.engine.start(on_a)
        await farm.tick()
        farm.engine.lose_node("a")
        await farm.tick()  # a is gone: its attempt is lost and withdrawn
        assert farm.engine.withdrawn == [on_a]
        await farm.tick()  # the lost attempt recorded, the segment queued again
        farm.engine.finish_all()
        await farm.tick()
        farm.engine.finish_all()
        await farm.tick()
        # retries=0: a lost attempt does not count against the segment's retries.
        assert farm.store.batch(batch_id).state is BatchState.DONE
        lost = next(s for s in farm.store.segments(batch_id) if s.node == "b" and s.attempts == 2)
        assert [a.outcome for a in farm.store.attempts(lost.id)] == ["lost", "done"]
        assert lost.failures == 0
        assert {n.name: n.state.value for n in farm.store.nodes()}["a"] == "offline"

    on_farm(tmp_path, scenario)


def test_a_silent_node_is_given_up_before_the_engine_does(tmp_path: Path) -> None:
    async def scenario(farm: Farm) -> None:
        farm.engine.add_node("a", {"command": 1})
        add(farm, command_batch(tmp_path))
        await farm.tick()
        [key] = farm.engine.out()
        farm.engine.silence("a", NODE_TIMEOUT_SECONDS + 1)
        await farm.tick()
        assert farm.engine.withdrawn == [key]
        assert "a" not in farm.dispatcher.nodes
        farm.engine.silence("a", 0)
        await farm.tick()  # its heartbeats are back: a node again, and its segment's too
        assert farm.engine.out("a") and farm.engine.out("a")[0] != key

    on_farm(tmp_path, scenario)


def test_a_controller_given_a_longer_node_timeout_waits_it_out(tmp_path: Path) -> None:
    async def scenario(farm: Farm) -> None:
        farm.dispatcher.node_timeout = 60  # qfarm controller --node-timeout 1m
        farm.engine.add_node("a", {"command": 1})
        add(farm, command_batch(tmp_path))
        await farm.tick()
        [key] = farm.engine.out()
        farm.engine.silence("a", NODE_TIMEOUT_SECONDS + 1)
        await farm.tick()
        assert farm.engine.withdrawn == [] and "a" in farm.dispatcher.nodes
        farm.engine.silence("a", 61)
        await farm.tick()
        assert farm.engine.withdrawn == [key] and "a" not in farm.dispatcher.nodes

    on_farm(tmp_path, scenario)


def test_cancel_kills_what_runs_and_cancels_what_is_queued(tmp_path: Path) -> None:
    async def scenario(farm: Farm) -> None:
        farm.engine.add_node("a", {"command": 2})
        batch_id = add(farm, command_batch(tmp_path, "1-5"))
        await farm.tick()
        running = farm.engine.out()
        for key in running:
            farm.engine.start(key)
        await farm.tick()
        await farm.dispatcher.cancel_batch(batch_id)
        assert sorted(farm.engine.killed) == sorted(running)
        await farm.tick()
        assert farm.store.batch(batch_id).state is BatchState.CANCELED
        states = {s.state for s in farm.store.segments(batch_id)}
        assert states == {SegmentState.CANCELED}
        assert farm.dispatcher.killing == set() and farm.engine.running == {}

    on_farm(tmp_path, scenario)


def test_what_a_cancel_ends_at_once_reaches_the_event_stream(tmp_path: Path) -> None:
    # The page and `qfarm watch` learn of queued segments and unstarted jobs canceled at once
    # from the changes the dispatcher hands on, not only of what ends later by its kill.
    async def scenario(farm: Farm) -> None:
        seen: list[Change] = []
        farm.dispatcher.on_changes = seen.extend
        farm.engine.add_node("a", {"command": 1})
        batch_id = add(farm, command_batch(tmp_path, "1-3"))
        await farm.tick()
        seen.clear()
        await farm.dispatcher.cancel_batch(batch_id)
        queued = {s.id for s in farm.store.segments(batch_id) if s.state is SegmentState.CANCELED}
        assert len(queued) == 2
        assert {c.id for c in seen if c.kind == "segment" and c.state == "canceled"} == queued
        seen.clear()
        await farm.dispatcher.cancel_batch(batch_id)  # again, while canceling
        assert not [c for c in seen if c.kind == "segment"]  # nothing new was canceled

    on_farm(tmp_path, scenario)


def test_a_plain_dask_worker_of_the_same_version_gets_no_work(tmp_path: Path) -> None:
    # A worker joined without qfarm's plugin has no runner: every segment would fail on it.
    async def scenario(farm: Farm) -> None:
        node = farm.engine.add_node("plain")
        farm.engine.live["plain"] = replace(node, facts={**node.facts, "runner": False})
        add(farm, command_batch(tmp_path))
        await farm.tick()
        assert farm.engine.running == {}
        assert farm.dispatcher.refused == {
            "plain": "node plain is a plain Dask worker, not a qfarm node: start it with "
            "`qfarm node`"
        }

    on_farm(tmp_path, scenario)


def test_a_node_of_another_version_or_of_unknown_version_gets_no_work(tmp_path: Path) -> None:
    async def scenario(farm: Farm) -> None:
        farm.engine.add_node("old", version="0.0.1")
        farm.engine.add_node("mute", version=None)
        add(farm, command_batch(tmp_path))
        await farm.tick()
        assert farm.engine.running == {}
        assert farm.dispatcher.refused == {
            "old": f"node old runs qfarm 0.0.1, the controller {__version__}",
            "mute": "node mute has not told its version yet",
        }
        farm.engine.add_node("mute")  # its facts could be read at last
        await farm.tick()
        assert [t.node for t in farm.engine.running.values()] == ["mute"]

    on_farm(tmp_path, scenario)


def test_a_crash_looping_node_is_taken_out_until_enabled(tmp_path: Path) -> None:
    """Each crash brings the node back at a new address (its nanny restarted it); the
    crash after the MAX_NODE_RESTARTS-th in CRASH_WINDOW_SECONDS takes it out of service."""

    async def scenario(farm: Farm) -> None:
        farm.engine.add_node("a", {"command": 1})
        batch_id = add(farm, command_batch(tmp_path, "1-20"))
        await farm.tick()
        for _ in range(MAX_NODE_RESTARTS + 1):
            assert farm.engine.out("a"), "a restarted node gets work again"
            farm.engine.restart_node("a")
            await farm.tick()
        assert farm.engine.out("a") == []
        assert farm.dispatcher.refused["a"].startswith(
            f"node a went down more than {MAX_NODE_RESTARTS} times in "
            f"{CRASH_WINDOW_SECONDS // 60:.0f} minutes"
        )
        farm.dispatcher.set_disabled("a", False)  # `qfarm node enable a`
        await farm.tick()
        assert farm.engine.out("a")
        lost = [a for s in farm.store.segments(batch_id) for a in farm.store.attempts(s.id)]
        assert sum(a.outcome == "lost" for a in lost) == MAX_NODE_RESTARTS + 1

    on_farm(tmp_path, scenario)


def test_a_job_waiting_on_another_says_so_until_it_runs(tmp_path: Path) -> None:
    from qfarm.controller.service import Controller

    async def scenario(farm: Farm) -> None:
        farm.engine.add_node("a", {"command": 1})
        controller = Controller(farm.store, farm.engine, farm.dispatcher, tmp_path)
        first = JobRequest("command", {"command": ["true"], "cwd": str(tmp_path)}, name="plates")
        second = JobRequest(
            "command", {"command": ["true"], "cwd": str(tmp_path)}, name="comp",
            depends_on=("plates",),
        )  # fmt: skip
        batch_id = controller.submit(BatchRequest(jobs=(first, second)))
        comp = farm.store.jobs(batch_id)[1].id
        await farm.tick()
        [plates] = farm.engine.out()
        farm.engine.start(plates)
        await farm.tick()
        assert controller.waiting(batch_id) == {comp: "waits for plates to finish"}
        farm.engine.finish(plates)
        await farm.tick()
        assert controller.waiting(batch_id) == {}
        farm.engine.finish_all()
        await farm.tick()
        assert farm.store.batch(batch_id).state is BatchState.DONE
        assert controller.waiting(batch_id) == {}

    on_farm(tmp_path, scenario)
