"""Suspend and resume on the real dispatcher and store over a fake engine: which attempts
are stopped and continued, what the store records, that a suspended attempt keeps its
node's instance, and what a lost node or a cancel makes of suspended work."""

from __future__ import annotations

from pathlib import Path

import pytest

from qfarm.domain.errors import InvalidRequest
from qfarm.domain.model import BatchState, SegmentState
from tests.controller.fake_engine import Farm
from tests.controller.test_placement import add, command_batch, on_farm

S, B = SegmentState, BatchState


def states(farm: Farm, batch_id: int) -> list[SegmentState]:
    return [s.state for s in farm.store.segments(batch_id)]


def test_suspend_stops_the_running_attempts_and_resume_continues_them(tmp_path: Path) -> None:
    async def scenario(farm: Farm) -> None:
        farm.engine.add_node("a", {"command": 2})
        batch_id = add(farm, command_batch(tmp_path, "1-3"))
        await farm.tick()
        keys = farm.engine.out()
        for key in keys:
            farm.engine.start(key)
        await farm.tick()
        assert states(farm, batch_id) == [S.RUNNING, S.RUNNING, S.QUEUED]

        await farm.dispatcher.suspend_batch(batch_id)
        assert farm.store.batch(batch_id).state is B.PAUSED
        assert farm.engine.suspended == set(keys)
        assert states(farm, batch_id) == [S.SUSPENDED, S.SUSPENDED, S.QUEUED]
        counts = farm.store.counts(batch_id)
        assert (counts.suspended, counts.running, counts.queued) == (2, 0, 1)
        # The suspended attempts keep their node's instances: nothing else is given out.
        await farm.tick()
        assert farm.engine.out() == keys
        assert farm.dispatcher.busy["a"]["command"] == 2

        await farm.dispatcher.resume_batch(batch_id)
        assert farm.store.batch(batch_id).state is B.RUNNING
        assert farm.engine.suspended == set()
        assert states(farm, batch_id) == [S.RUNNING, S.RUNNING, S.QUEUED]
        for key in keys:
            farm.engine.finish(key)
        await farm.tick()
        await farm.tick()
        farm.engine.finish_all()
        await farm.tick()
        assert farm.store.batch(batch_id).state is B.DONE
        # Continued, not rerun: one attempt each.
        assert [s.attempts for s in farm.store.segments(batch_id)] == [1, 1, 1]

    on_farm(tmp_path, scenario)


def test_an_attempt_that_starts_after_the_suspend_is_stopped_when_it_does(tmp_path: Path) -> None:
    async def scenario(farm: Farm) -> None:
        farm.engine.add_node("a", {"command": 1})
        batch_id = add(farm, command_batch(tmp_path, "1"))
        await farm.tick()
        [key] = farm.engine.out()
        await farm.dispatcher.suspend_batch(batch_id)  # dispatched, not started yet
        assert farm.engine.suspended == set()
        assert states(farm, batch_id) == [S.DISPATCHED]
        farm.engine.start(key)
        await farm.tick()
        assert farm.engine.suspended == {key}
        assert states(farm, batch_id) == [S.SUSPENDED]

    on_farm(tmp_path, scenario)


def test_a_lost_node_requeues_its_suspended_segments_without_a_failure(tmp_path: Path) -> None:
    async def scenario(farm: Farm) -> None:
        farm.engine.add_node("a", {"command": 1})
        batch_id = add(farm, command_batch(tmp_path, "1", retries=0))
        await farm.tick()
        [key] = farm.engine.out()
        farm.engine.start(key)
        await farm.tick()
        await farm.dispatcher.suspend_batch(batch_id)
        assert states(farm, batch_id) == [S.SUSPENDED]
        farm.engine.lose_node("a")
        farm.engine.add_node("b", {"command": 1})
        await farm.tick()
        await farm.tick()
        [segment] = farm.store.segments(batch_id)
        assert (segment.state, segment.failures) == (S.QUEUED, 0)
        assert [a.outcome for a in farm.store.attempts(segment.id)] == ["lost"]
        # Still paused: the requeued segment waits for the resume, then runs on b.
        assert farm.engine.out() == []
        await farm.dispatcher.resume_batch(batch_id)
        await farm.tick()
        [again] = farm.engine.out()
        assert farm.engine.running[again].node == "b"
        farm.engine.finish(again)
        await farm.tick()
        assert farm.store.batch(batch_id).state is B.DONE

    on_farm(tmp_path, scenario)


def test_cancel_of_a_suspended_batch_kills_its_attempts(tmp_path: Path) -> None:
    async def scenario(farm: Farm) -> None:
        farm.engine.add_node("a", {"command": 1})
        batch_id = add(farm, command_batch(tmp_path, "1-2"))
        await farm.tick()
        [key] = farm.engine.out()
        farm.engine.start(key)
        await farm.tick()
        await farm.dispatcher.suspend_batch(batch_id)
        await farm.dispatcher.cancel_batch(batch_id)
        assert farm.engine.killed == [key]
        await farm.tick()
        assert farm.store.batch(batch_id).state is B.CANCELED
        assert states(farm, batch_id) == [S.CANCELED, S.CANCELED]

    on_farm(tmp_path, scenario)


def test_suspend_of_an_ended_batch_is_refused(tmp_path: Path) -> None:
    async def scenario(farm: Farm) -> None:
        farm.engine.add_node("a", {"command": 1})
        batch_id = add(farm, command_batch(tmp_path, "1"))
        await farm.tick()
        farm.engine.finish_all()
        await farm.tick()
        assert farm.store.batch(batch_id).state is B.DONE
        with pytest.raises(InvalidRequest, match=f"batch {batch_id} is done"):
            await farm.dispatcher.suspend_batch(batch_id)

    on_farm(tmp_path, scenario)


def test_suspend_of_a_batch_running_an_openjd_job_is_refused_and_changes_nothing(
    tmp_path: Path,
) -> None:
    """OpenJD actions belong to openjd-sessions, not to the supervisor: stopping qfarm's
    stand-in would leave them running, so the suspend is refused, naming the job."""
    from qfarm.domain.model import BatchRequest, JobRequest, SegmentPlan
    from qfarm.jobtypes.openjd import TOOL
    from qfarm.store import PlannedJob

    async def scenario(farm: Farm) -> None:
        # A node with openjd-sessions (the tool its jobs pin), as placement needs.
        farm.engine.add_node("a", {"openjd": 1}, fingerprint={TOOL: "1.0"})
        job = PlannedJob("render", "openjd", "openjd", {}, 0, None, (), [SegmentPlan(1, {}, "t")])
        request = BatchRequest(jobs=(JobRequest("openjd", {}),))
        batch_id = farm.store.add_batch(request, [job])
        await farm.tick()
        [key] = farm.engine.out()
        farm.engine.start(key)
        await farm.tick()
        with pytest.raises(InvalidRequest, match=r"OpenJD jobs \(render\)"):
            await farm.dispatcher.suspend_batch(batch_id)
        assert farm.store.batch(batch_id).state is B.RUNNING
        assert states(farm, batch_id) == [S.RUNNING]
        assert farm.engine.suspended == set()

    on_farm(tmp_path, scenario)


def test_a_resume_while_the_stops_are_out_leaves_nothing_stopped(tmp_path: Path) -> None:
    """A resume that comes while a suspend's calls to the nodes are out finds the segments
    still running; the processes the suspend then stopped are continued at once."""
    import asyncio

    from tests.helpers import wait_until

    async def scenario(farm: Farm) -> None:
        farm.engine.add_node("a", {"command": 1})
        batch_id = add(farm, command_batch(tmp_path, "1"))
        await farm.tick()
        [key] = farm.engine.out()
        farm.engine.start(key)
        await farm.tick()
        gate = asyncio.Event()
        stop = farm.engine.suspend

        async def slow_stop(key: str, address: str) -> bool:
            stopped = await stop(key, address)
            await gate.wait()  # the node's answer is held back
            return stopped

        farm.engine.suspend = slow_stop  # type: ignore[method-assign]
        suspending = asyncio.create_task(farm.dispatcher.suspend_batch(batch_id))
        await wait_until(lambda: key in farm.engine.suspended, what="the stop to reach the node")
        await farm.dispatcher.resume_batch(batch_id)
        gate.set()
        await suspending
        assert farm.engine.suspended == set()
        assert states(farm, batch_id) == [S.RUNNING]
        assert farm.store.batch(batch_id).state is B.RUNNING

    on_farm(tmp_path, scenario)
