"""The store against real databases: dependencies between jobs, cancels, removal, and
illegal moves rolled back."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from qfarm.domain.errors import InvalidRequest, NotFound
from qfarm.domain.model import (
    BatchState,
    IllegalTransition,
    JobRequest,
    JobState,
    SegmentState,
)
from qfarm.store import (
    Change,
    Dispatch,
    Result,
    Started,
    Store,
)
from tests.store.support import (
    command_job,
    dispatch,
    done,
    failed,
    finish_all,
    job_states,
    picked_ids,
    segment_states,
    submit,
)

# ----------------------------------------------------------------- dependencies


def test_dependent_job_waits_then_is_queued_when_its_dependency_is_done(
    store: Store, tmp_path: Path
) -> None:
    batch_id = submit(
        store,
        command_job(tmp_path, name="first", frames="1-2"),
        command_job(tmp_path, name="second", frames="1-2", depends_on=("first",)),
    )
    first, second = store.jobs(batch_id)
    assert second.depends_on == (first.id,)
    assert (first.state, second.state) == (JobState.QUEUED, JobState.WAITING)

    [(cand, _)], _ = dispatch(store)
    changes = store.record_reports(results=[done(cand.segment_id)])

    assert Change("job", second.id, "queued", batch_id) in changes
    assert job_states(store, batch_id) == [JobState.DONE, JobState.QUEUED]
    assert store.batch(batch_id).state is BatchState.RUNNING

    [(cand, _)], _ = dispatch(store)
    assert cand.job_id == second.id
    store.record_reports(results=[done(cand.segment_id)])
    assert job_states(store, batch_id) == [JobState.DONE, JobState.DONE]
    assert store.batch(batch_id).state is BatchState.DONE


def test_dependent_job_is_canceled_when_its_dependency_fails(store: Store, tmp_path: Path) -> None:
    batch_id = submit(
        store,
        command_job(tmp_path, name="first", frames="1-2", retries=0),
        command_job(tmp_path, name="second", depends_on=("first",)),
        command_job(tmp_path, name="third", frames="1-2", depends_on=("second",)),
    )
    _first, second, third = store.jobs(batch_id)

    [(cand, _)], _ = dispatch(store)
    store.record_reports(results=[failed(cand.segment_id)])

    assert job_states(store, batch_id) == [JobState.FAILED, JobState.CANCELED, JobState.CANCELED]
    jobs = store.jobs(batch_id)
    assert "first" in jobs[1].error
    assert "second" in jobs[2].error
    for seg in store.segments(batch_id):
        if seg.job_id == second.id:
            assert seg.state is SegmentState.CANCELED
            assert "first" in seg.error
        if seg.job_id == third.id:
            assert seg.state is SegmentState.CANCELED
    assert store.batch(batch_id).state is BatchState.FAILED
    assert dispatch(store) == ([], [])


def test_job_depending_on_two_jobs_waits_for_both(store: Store, tmp_path: Path) -> None:
    batch_id = submit(
        store,
        command_job(tmp_path, name="a", frames="1-2"),
        command_job(tmp_path, name="b", frames="1-2"),
        command_job(tmp_path, name="c", frames="1-2", depends_on=("a", "b")),
    )
    picked, _ = dispatch(store)
    seg_a, seg_b = picked_ids(picked)

    store.record_reports(results=[done(seg_a)])
    assert store.jobs(batch_id)[2].state is JobState.WAITING

    store.record_reports(results=[done(seg_b)])
    assert store.jobs(batch_id)[2].state is JobState.QUEUED


def test_serialize_chains_jobs_in_the_order_written(store: Store, tmp_path: Path) -> None:
    batch_id = submit(
        store,
        command_job(tmp_path, name="a", frames="1-2"),
        command_job(tmp_path, name="b", frames="1-2"),
        command_job(tmp_path, name="c", frames="1-2"),
        serialize=True,
    )
    a, b, c = store.jobs(batch_id)
    assert store.batch(batch_id).serialize is True
    assert (a.depends_on, b.depends_on, c.depends_on) == ((), (a.id,), (b.id,))
    assert job_states(store, batch_id) == [JobState.QUEUED, JobState.WAITING, JobState.WAITING]

    order = []
    for _ in range(3):
        picked, _ = dispatch(store)
        assert len(picked) == 1  # one job at a time, however many instances are free
        [(cand, _)] = picked
        order.append(cand.job_id)
        store.record_reports(results=[done(cand.segment_id)])

    assert order == [a.id, b.id, c.id]
    assert store.batch(batch_id).state is BatchState.DONE


# ------------------------------------------------------------------- cancel


def test_cancel_batch_cancels_queued_work_and_returns_the_active_segments(
    store: Store, tmp_path: Path
) -> None:
    batch_id = submit(
        store,
        command_job(tmp_path, name="a"),
        command_job(tmp_path, name="b", depends_on=("a",)),
        command_job(tmp_path, name="c", frames="1-2"),
    )
    picked, _ = dispatch(store, 2)
    running_id, dispatched_id = picked_ids(picked)
    store.record_reports(started=[Started(running_id, 1, pid=1, at=1.0)])

    active = store.cancel_batch(batch_id, reason="user asked")

    assert sorted(s.id for s in active) == sorted([running_id, dispatched_id])
    assert {s.state for s in active} == {SegmentState.RUNNING, SegmentState.DISPATCHED}
    states = {s.id: s for s in store.segments(batch_id)}
    queued_left = [s for sid, s in states.items() if sid not in (running_id, dispatched_id)]
    assert all(s.state is SegmentState.CANCELED for s in queued_left)
    assert all(s.error == "user asked" for s in queued_left)
    assert states[running_id].state is SegmentState.RUNNING
    assert states[dispatched_id].state is SegmentState.DISPATCHED
    # The started job keeps running until its active segments report; the others end now.
    job_a, job_b, job_c = store.jobs(batch_id)
    assert job_a.state is JobState.RUNNING
    assert (job_b.state, job_b.error) == (JobState.CANCELED, "user asked")
    assert (job_c.state, job_c.error) == (JobState.CANCELED, "user asked")
    assert store.batch(batch_id).state is BatchState.RUNNING
    assert dispatch(store) == ([], [])


def test_canceled_batch_ends_when_its_active_segments_report_canceled(
    store: Store, tmp_path: Path
) -> None:
    batch_id = submit(store, command_job(tmp_path))
    picked, _ = dispatch(store, 2)
    first, second = picked_ids(picked)
    store.record_reports(started=[Started(first, 1, pid=1, at=1.0)])
    store.cancel_batch(batch_id)

    store.record_reports(results=[Result(first, 1, ok=False, node="node-a", canceled=True)])
    assert store.batch(batch_id).state is BatchState.RUNNING

    changes = store.record_reports(
        results=[Result(second, 1, ok=False, node="node-a", canceled=True)]
    )

    assert segment_states(store, batch_id) == [SegmentState.CANCELED] * 3
    assert store.jobs(batch_id)[0].state is JobState.CANCELED
    batch = store.batch(batch_id)
    assert batch.state is BatchState.CANCELED
    assert batch.finished_at is not None
    assert Change("batch", batch_id, "canceled", batch_id) in changes


def test_cancel_batch_with_nothing_active_ends_it_at_once(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path), command_job(tmp_path, name="x"))

    assert store.cancel_batch(batch_id) == []

    assert segment_states(store, batch_id) == [SegmentState.CANCELED] * 6
    assert job_states(store, batch_id) == [JobState.CANCELED] * 2
    batch = store.batch(batch_id)
    assert batch.state is BatchState.CANCELED
    assert batch.finished_at is not None


def test_cancel_held_batch_ends_it_at_once(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path), hold=True)

    assert store.cancel_batch(batch_id) == []

    assert store.batch(batch_id).state is BatchState.CANCELED
    assert segment_states(store, batch_id) == [SegmentState.CANCELED] * 3


def test_cancel_after_some_segments_are_done_ends_canceled(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path))
    picked, _ = dispatch(store, 1)
    store.record_reports(results=[done(picked_ids(picked)[0])])

    assert store.cancel_batch(batch_id) == []

    assert segment_states(store, batch_id) == [
        SegmentState.DONE,
        SegmentState.CANCELED,
        SegmentState.CANCELED,
    ]
    assert store.jobs(batch_id)[0].state is JobState.CANCELED
    assert store.batch(batch_id).state is BatchState.CANCELED


def test_cancel_of_a_finished_batch_changes_nothing(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path))
    finish_all(store, batch_id)
    assert store.batch(batch_id).state is BatchState.DONE

    assert store.cancel_batch(batch_id) == []

    assert store.batch(batch_id).state is BatchState.DONE
    assert segment_states(store, batch_id) == [SegmentState.DONE] * 3


def test_remove_batch_deletes_an_ended_batch_and_names_uploads_only_it_used(
    store: Store, tmp_path: Path
) -> None:
    def stored(upload: str) -> JobRequest:
        job = command_job(tmp_path, frames="1-2", segment_size=1)
        spec = {**job.spec, "storage": {"upload": upload, "path": str(tmp_path)}}
        return JobRequest("command", spec, name=upload)

    removed = submit(store, stored("a1"), stored("b2"))
    kept = submit(store, stored("b2"))
    with pytest.raises(InvalidRequest, match="cancel it before removing it"):
        store.remove_batch(removed)
    dispatch(store, 1)  # an attempt row, removed with its segment
    store.cancel_batch(removed)
    store.record_reports(
        results=[Result(s.id, 1, ok=False, node="node-a", canceled=True)
                 for s in store.segments(removed) if s.state is SegmentState.DISPATCHED]
    )  # fmt: skip
    assert store.batch(removed).state is BatchState.CANCELED

    assert store.remove_batch(removed) == {"a1"}  # b2 is still used by the other batch

    with pytest.raises(NotFound):
        store.batch(removed)
    assert store.jobs(removed) == [] and store.segments(removed) == []
    assert [b.id for b in store.batches()] == [kept]
    assert len(store.segments(kept)) == 2


# ------------------------------------------------------------- illegal moves


def test_illegal_segment_transition_raises_and_rolls_back(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path, frames="1-4"))
    picked, _ = dispatch(store, 1)
    [done_id] = picked_ids(picked)
    store.record_reports(results=[done(done_id)])
    queued_id = store.segments(batch_id, [SegmentState.QUEUED])[0].id
    before = (store.segments(batch_id), store.jobs(batch_id), store.batch(batch_id))

    # A done segment cannot be dispatched again; the queued one in the same call is not either.
    with pytest.raises(IllegalTransition) as excinfo:
        store.mark_dispatched(
            [Dispatch(queued_id, "node-a", time.time()), Dispatch(done_id, "node-a", time.time())]
        )

    assert (excinfo.value.old, excinfo.value.new) == (SegmentState.DONE, SegmentState.DISPATCHED)
    assert (store.segments(batch_id), store.jobs(batch_id), store.batch(batch_id)) == before
    assert [a.number for a in store.attempts(queued_id)] == []
    assert len(store.attempts(done_id)) == 1
