"""The store against real databases: assemble segments, progress in frames, and resuming an
interrupted `qfarm run`."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from qfarm.controller.planning import plan_batch
from qfarm.domain.model import (
    BatchRequest,
    BatchState,
    JobRequest,
    JobState,
    SegmentKind,
    SegmentPlan,
    SegmentState,
)
from qfarm.store import (
    PlannedJob,
    Progress,
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

# ------------------------------------------------------------------ assembly


def assembled_batch(store: Store, retries: int = 0) -> int:
    """A batch of one job: two work segments and an assemble segment, as a transcode plans."""
    request = BatchRequest(jobs=(JobRequest("command", {}, name="joined", retries=retries),))
    plans = [
        SegmentPlan(index=1, spec={"part": 1}, label="part 1"),
        SegmentPlan(index=2, spec={"part": 2}, label="part 2"),
        SegmentPlan(index=3, spec={}, label="assemble", kind=SegmentKind.ASSEMBLE),
    ]
    job = PlannedJob(
        name="joined", job_type="command", service="command", spec={}, retries=retries,
        timeout=None, depends_on=(), plans=plans,
    )  # fmt: skip
    return store.add_batch(request, [job])


def test_assemble_segment_waits_for_every_work_segment(store: Store) -> None:
    batch_id = assembled_batch(store)
    picked, _ = dispatch(store)
    assert [c.index for c, _ in picked] == [1, 2]
    store.record_reports(results=[done(picked[0][0].segment_id)])
    assert dispatch(store)[0] == []
    store.record_reports(results=[done(picked[1][0].segment_id)])
    picked, _ = dispatch(store)
    assert [c.index for c, _ in picked] == [3]
    assert job_states(store, batch_id) == [JobState.ASSEMBLING]
    store.record_reports(results=[done(picked[0][0].segment_id)])
    assert job_states(store, batch_id) == [JobState.DONE]
    assert store.batch(batch_id).state is BatchState.DONE


def test_work_segment_failing_for_good_cancels_the_assembly_and_fails_the_job(
    store: Store,
) -> None:
    batch_id = assembled_batch(store, retries=0)
    picked, _ = dispatch(store)
    store.record_reports(results=[done(picked[0][0].segment_id), failed(picked[1][0].segment_id)])
    states = segment_states(store, batch_id)
    assert states == [SegmentState.DONE, SegmentState.FAILED, SegmentState.CANCELED]
    assembly = store.segments(batch_id)[2]
    assert "work segment failed" in assembly.error
    assert job_states(store, batch_id) == [JobState.FAILED]
    assert store.batch(batch_id).state is BatchState.FAILED

    # A resubmit reruns the failed part and then the assembly, not the part that was done.
    store.resubmit_batch(batch_id)
    picked, _ = dispatch(store)
    assert [c.index for c, _ in picked] == [2]
    store.record_reports(results=[done(picked[0][0].segment_id, picked[0][0].attempts + 1)])
    picked, _ = dispatch(store)
    assert [c.index for c, _ in picked] == [3]
    store.record_reports(results=[done(picked[0][0].segment_id)])
    assert store.batch(batch_id).state is BatchState.DONE


def test_failed_work_segment_with_retries_left_keeps_the_assembly_queued(store: Store) -> None:
    batch_id = assembled_batch(store, retries=1)
    picked, _ = dispatch(store)
    store.record_reports(results=[failed(picked[0][0].segment_id)])
    assert segment_states(store, batch_id)[2] is SegmentState.QUEUED
    assert job_states(store, batch_id) == [JobState.RUNNING]


def test_failed_assembly_is_retried_while_the_job_is_assembling(store: Store) -> None:
    batch_id = assembled_batch(store, retries=1)
    finish_all(store, batch_id)
    picked, _ = dispatch(store)
    store.record_reports(results=[failed(picked[0][0].segment_id)])
    assert job_states(store, batch_id) == [JobState.ASSEMBLING]
    picked, _ = dispatch(store)
    assert [c.index for c, _ in picked] == [3]
    store.record_reports(results=[done(picked[0][0].segment_id, 2)])
    assert job_states(store, batch_id) == [JobState.DONE]


def test_progress_counts_frames_of_done_and_running_segments(store: Store, tmp_path: Path) -> None:
    """A batch's and a job's progress are in frames: a segment of 4 frames half done
    counts 2, whatever the number of segments."""
    batch_id = submit(
        store,
        command_job(tmp_path, name="a", frames="1-8", segment_size=4),
        command_job(tmp_path, name="b", frames="1-2", segment_size=2),
    )
    picked, _ = dispatch(store)
    first, second, other = (c for c, _ in picked)
    store.record_reports(
        started=[Started(first.segment_id, 1, 1, time.time())],
        progress=[Progress(first.segment_id, 1, 0.5, time.time())],
        results=[done(second.segment_id)],
    )
    counts = store.counts(batch_id)
    assert (counts.work_total, counts.work_done) == (10.0, 6.0)
    jobs = {job.name: job.id for job in store.jobs(batch_id)}
    progress = store.job_progress(batch_id)
    assert progress[jobs["a"]] == pytest.approx(0.75)
    assert progress[jobs["b"]] == 0.0
    del other


# ------------------------------------------------------- resuming `qfarm run`


def test_unfinished_batches_of_a_request_stop_at_its_newest_done_one(
    store: Store, tmp_path: Path
) -> None:
    def add(digest: str) -> int:
        request = BatchRequest(jobs=(command_job(tmp_path),))
        return store.add_batch(request, plan_batch(request), digest)

    old_failed = add("a")
    store.cancel_batch(old_failed)
    done_one = add("a")
    finish_all(store, done_one)
    assert store.batch(done_one).state is BatchState.DONE
    newer = add("a")
    newest = add("a")
    add("b")
    assert [b.id for b in store.unfinished_batches("a")] == [newest, newer]
    assert store.unfinished_batches("nothing") == []


def test_reopen_of_a_batch_left_running_keeps_done_and_requeues_the_rest(
    store: Store, tmp_path: Path
) -> None:
    # What a `qfarm run` killed with -9 leaves: one segment done, one failed for good, one
    # still marked running.
    batch_id = submit(store, command_job(tmp_path, retries=0))
    picked, _ = dispatch(store, batch_ids=[batch_id])
    first, second, third = picked_ids(picked)
    store.record_reports(
        started=[Started(third, 1, 4321, time.time())], results=[done(first), failed(second)]
    )
    assert store.batch(batch_id).state is BatchState.RUNNING

    store.reopen_batch(batch_id, "its run was interrupted")

    assert segment_states(store, batch_id) == [
        SegmentState.DONE,
        SegmentState.QUEUED,
        SegmentState.QUEUED,
    ]
    assert store.batch(batch_id).state is BatchState.RUNNING
    [lost] = store.attempts(third)
    assert (lost.outcome, lost.error) == ("lost", "its run was interrupted")
    again, _ = dispatch(store, batch_ids=[batch_id])
    assert sorted(picked_ids(again)) == [second, third]
    store.record_reports(results=[done(c.segment_id, c.attempts + 1) for c, _ in again])
    assert store.batch(batch_id).state is BatchState.DONE


def test_reopen_of_a_batch_canceled_mid_kill_forgets_the_cancel(
    store: Store, tmp_path: Path
) -> None:
    batch_id = submit(store, command_job(tmp_path))
    picked, _ = dispatch(store, batch_ids=[batch_id])
    first = picked_ids(picked)[0]
    store.record_reports(results=[done(first)])
    store.cancel_batch(batch_id, "interrupted")  # its process died before the kills came back
    store.reopen_batch(batch_id, "its run was interrupted")
    assert segment_states(store, batch_id) == [
        SegmentState.DONE,
        SegmentState.QUEUED,
        SegmentState.QUEUED,
    ]
    again, _ = dispatch(store, batch_ids=[batch_id])
    store.record_reports(results=[done(c.segment_id, c.attempts + 1) for c, _ in again])
    assert store.batch(batch_id).state is BatchState.DONE


def test_reopen_of_an_ended_batch_is_a_resubmit(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path))
    picked, _ = dispatch(store, batch_ids=[batch_id], n=1)
    store.record_reports(results=[done(picked_ids(picked)[0])])
    store.cancel_batch(batch_id)
    assert store.batch(batch_id).state is BatchState.CANCELED
    store.reopen_batch(batch_id, "its run was interrupted")
    assert store.batch(batch_id).state is BatchState.QUEUED
    assert segment_states(store, batch_id) == [
        SegmentState.DONE,
        SegmentState.QUEUED,
        SegmentState.QUEUED,
    ]


def test_a_store_of_schema_2_gains_the_request_digest(tmp_path: Path) -> None:
    from sqlalchemy import create_engine, text

    url = f"sqlite:///{tmp_path / 'old.db'}"
    Store(url).close()
    engine = create_engine(url)
    with engine.begin() as conn:  # a store of schema 2: batches without the digest
        conn.execute(text("ALTER TABLE batches DROP COLUMN request_digest"))
        conn.execute(text("UPDATE qfarm_schema SET version = 2"))
    engine.dispose()
    store = Store(url)
    try:
        request = BatchRequest(jobs=(command_job(tmp_path),))
        batch_id = store.add_batch(request, plan_batch(request), "d" * 64)
        assert [b.id for b in store.unfinished_batches("d" * 64)] == [batch_id]
    finally:
        store.close()
