"""Suspend and resume with real processes (issue 18): an embedded controller and two
worker processes. A counter stopped by ``pause --suspend`` holds still and, resumed, goes
on counting from where it was on the same attempt; a canceled suspended batch leaves no
process; a node lost while holding suspended work gives it back, and it is done elsewhere."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import pytest

from qfarm.domain.model import BatchRequest, BatchState, JobRequest, SegmentState
from qfarm.store import Store
from tests.helpers import embedded, gone, group_stopped, process_group, wait_until

pytestmark = pytest.mark.integration

S, B = SegmentState, BatchState


def counter_batch(cwd: Path, n: int, frames: str = "1", retries: int = 2) -> BatchRequest:
    script = f"i=0; while [ $i -lt {n} ]; do echo $i; i=$((i+1)); sleep 0.1; done"
    job = JobRequest(
        "command",
        {"command": ["sh", "-c", script], "cwd": str(cwd), "frames": frames},
        retries=retries,
    )
    return BatchRequest(jobs=(job,))


def counted(store: Store, segment_id: int, attempt: int = -1) -> list[str]:
    """The numbers an attempt's counter printed to its log so far."""
    attempts = store.attempts(segment_id)
    if not attempts:
        return []
    path = Path(attempts[attempt].log_path)
    text = path.read_text() if path.exists() else ""
    return [line for line in text.splitlines() if line.isdigit()]


def test_a_suspended_counter_goes_on_from_where_it_was(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path, nodes=1, instances=1) as controller:
            store = controller.store
            batch_id = controller.submit(counter_batch(tmp_path, 30))
            [segment] = store.segments(batch_id)
            await wait_until(
                lambda: (
                    store.counts(batch_id).running == 1 and len(counted(store, segment.id)) >= 3
                ),
                what="the count to begin",
            )
            await controller.suspend(batch_id)
            assert store.batch(batch_id).state is B.PAUSED
            [seg] = store.segments(batch_id)
            assert seg.state is S.SUSPENDED
            assert store.counts(batch_id).suspended == 1
            await wait_until(lambda: store.attempts(segment.id)[-1].pid is not None)
            leader = store.attempts(segment.id)[-1].pid
            assert leader is not None
            await wait_until(lambda: group_stopped(leader), timeout=10, what="the group in state T")
            frozen = counted(store, segment.id)
            assert group_stopped(leader)  # still stopped: nothing of it can have written since
            assert counted(store, segment.id) == frozen
            assert len(frozen) < 30

            await controller.resume(batch_id)
            assert store.batch(batch_id).state is B.RUNNING
            assert store.segments(batch_id)[0].state is S.RUNNING
            batch = await asyncio.wait_for(controller.wait(batch_id), 60)
            assert batch.state is B.DONE
            # One uninterrupted count from 0, by the one attempt: continued, not restarted.
            assert counted(store, segment.id) == [str(i) for i in range(30)]
            [done] = store.segments(batch_id)
            assert (done.attempts, done.failures) == (1, 0)
            assert [a.outcome for a in store.attempts(segment.id)] == ["done"]

    asyncio.run(scenario())


def test_cancel_of_a_suspended_batch_ends_its_processes(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path, nodes=1, instances=2) as controller:
            store = controller.store
            batch_id = controller.submit(counter_batch(tmp_path, 3000, frames="1-2"))
            await wait_until(lambda: store.counts(batch_id).running == 2, what="2 running")
            await controller.suspend(batch_id)
            assert store.counts(batch_id).suspended == 2
            await wait_until(
                lambda: all(store.attempts(s.id)[-1].pid for s in store.segments(batch_id))
            )
            leaders = [store.attempts(s.id)[-1].pid or 0 for s in store.segments(batch_id)]
            members = [p.pid for leader in leaders for p in process_group(leader)]
            for leader in leaders:
                await wait_until(lambda leader=leader: group_stopped(leader), timeout=30)

            await controller.cancel(batch_id)
            batch = await asyncio.wait_for(controller.wait(batch_id), 30)
            assert batch.state is B.CANCELED
            assert [s.state for s in store.segments(batch_id)] == [S.CANCELED] * 2
            await wait_until(
                lambda: all(gone(pid) for pid in members), timeout=10, what="processes to end"
            )

    asyncio.run(scenario())


def test_a_node_lost_with_suspended_work_gives_it_back(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with embedded(tmp_path, nodes=2, instances=1) as controller:
            store = controller.store
            batch_id = controller.submit(counter_batch(tmp_path, 20, retries=0))
            [segment] = store.segments(batch_id)
            await wait_until(
                lambda: len(counted(store, segment.id)) >= 2, what="the count to begin"
            )
            await controller.suspend(batch_id)
            assert store.segments(batch_id)[0].state is S.SUSPENDED
            first = store.attempts(segment.id)[-1]
            assert first.pid is not None
            await wait_until(lambda: group_stopped(first.pid or 0), timeout=10)
            address = controller.dispatcher.nodes[first.node].address
            pids = await controller.engine.client.run(os.getpid, workers=[address])
            try:
                os.kill(pids[address], signal.SIGKILL)  # its worker dies at once

                def requeued() -> bool:
                    return [a.outcome for a in store.attempts(segment.id)] == ["lost"]

                await wait_until(requeued, what="the suspended segment to be given back")
                [seg] = store.segments(batch_id)
                assert (seg.state, seg.failures) == (S.QUEUED, 0)
                assert store.batch(batch_id).state is B.PAUSED
            finally:
                # The embedded cluster does not reap a dead worker's groups (qfarm node
                # does): the stopped counter is ended here.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(first.pid, signal.SIGKILL)
            await controller.resume(batch_id)
            batch = await asyncio.wait_for(controller.wait(batch_id), 60)
            assert batch.state is B.DONE  # retries=0: the lost attempt was no failure
            attempts = store.attempts(segment.id)
            assert [a.outcome for a in attempts] == ["lost", "done"]
            assert counted(store, segment.id) == [str(i) for i in range(20)]

    asyncio.run(scenario())
