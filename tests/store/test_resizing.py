"""Cutting a job's untried segments again, against real databases: the measured time per
task, which segments count as untried, and the swap that does nothing once one moved."""

from __future__ import annotations

from pathlib import Path

from qfarm.domain.model import SegmentPlan, SegmentState
from qfarm.store import Change, Result, Started, Store
from tests.store.support import command_job, dispatch, submit


def _finish_first(store: Store, batch_id: int) -> int:
    """Run the first segment (2 frames) for 3 s of attempt time; its id."""
    [(cand, _)], _ = dispatch(store, 1)
    store.record_reports(started=[Started(cand.segment_id, 1, pid=5, at=100.0)])
    store.record_reports(
        results=[
            Result(cand.segment_id, 1, ok=True, node="node-a", exit_code=0,
                   started_at=100.0, ended_at=103.0)
        ]
    )  # fmt: skip
    return cand.segment_id


def test_facts_are_the_time_per_task_and_the_untried_segments(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path, frames="1-8", segment_size=2))
    [job] = store.jobs(batch_id)
    before = store.resize_facts(job.id)
    assert before.seconds_per_task is None and len(before.queued) == 4
    _finish_first(store, batch_id)
    facts = store.resize_facts(job.id)
    assert facts.seconds_per_task == 1.5  # 3 s over 2 frames
    assert [q.index for q in facts.queued] == [2, 3, 4]
    assert [q.frames for q in facts.queued] == [2, 2, 2]
    assert facts.next_index == 5


def test_the_untried_segments_are_swapped_in_one_go(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path, frames="1-8", segment_size=2))
    [job] = store.jobs(batch_id)
    _finish_first(store, batch_id)
    facts = store.resize_facts(job.id)
    plans = [
        SegmentPlan(index=5, spec={"frames": "3-8"}, label="frames 3-8", frames=6),
    ]
    changes = store.replace_segments(job.id, [q.id for q in facts.queued], plans)
    assert changes == [Change("job", job.id, "running", batch_id)]
    segs = store.segments(batch_id)
    assert [(s.index, s.state, s.frames) for s in segs] == [
        (1, SegmentState.DONE, 2),
        (5, SegmentState.QUEUED, 6),
    ]
    assert store.counts(batch_id).total == 2
    # The new segment is dispatched like any other.
    [(cand, _)], _ = dispatch(store, 1)
    assert cand.segment_id == segs[1].id


def test_nothing_is_swapped_once_one_of_them_was_dispatched(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path, frames="1-8", segment_size=2))
    [job] = store.jobs(batch_id)
    _finish_first(store, batch_id)
    facts = store.resize_facts(job.id)
    dispatch(store, 1)  # segment 2 goes out meanwhile
    plans = [SegmentPlan(index=5, spec={"frames": "3-8"}, label="frames 3-8", frames=6)]
    assert store.replace_segments(job.id, [q.id for q in facts.queued], plans) == []
    assert [s.index for s in store.segments(batch_id)] == [1, 2, 3, 4]
    # A segment that was tried is never cut again, even once it is queued for a retry.
    assert [q.index for q in store.resize_facts(job.id).queued] == [3, 4]
