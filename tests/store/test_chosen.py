"""Chosen segments, against real databases: resubmitted in an ended batch, only those run
again, with their jobs, and the rest stays as it ended; canceled in a running batch, the
queued ones end at once, the ones out on nodes are handed back to be killed, and the rest
runs on. What cannot be done is refused with the segments named, and nothing moves."""

from __future__ import annotations

from pathlib import Path

import pytest

from qfarm.domain.errors import InvalidRequest, NotFound
from qfarm.domain.model import BatchState, JobState, SegmentState
from qfarm.store import Result, Store
from tests.store.support import command_job, dispatch, done, failed, picked_ids, submit

S = SegmentState


def ended_with_failures(store: Store, tmp_path: Path) -> tuple[int, list[int]]:
    """A failed batch of two jobs, three segments each: job a's first two failed, its third
    done; job b's first failed, the rest done. Returns the batch and its segment ids."""
    batch_id = submit(
        store,
        command_job(tmp_path, name="a", retries=0),
        command_job(tmp_path, name="b", retries=0),
    )
    picked, _ = dispatch(store)
    ids = [cand.segment_id for cand, _ in picked]
    failing = {ids[0], ids[1], ids[3]}
    store.record_reports(results=[failed(sid) if sid in failing else done(sid) for sid in ids])
    assert store.batch(batch_id).state is BatchState.FAILED
    return batch_id, [s.id for s in store.segments(batch_id)]


def test_only_the_chosen_segments_and_their_jobs_run_again(store: Store, tmp_path: Path) -> None:
    batch_id, ids = ended_with_failures(store, tmp_path)
    store.resubmit_batch(batch_id, [ids[1]])
    states = [s.state for s in store.segments(batch_id)]
    assert states == [S.FAILED, S.QUEUED, S.DONE, S.FAILED, S.DONE, S.DONE]
    assert [j.state for j in store.jobs(batch_id)] == [JobState.QUEUED, JobState.FAILED]
    assert store.batch(batch_id).state is BatchState.QUEUED
    # It runs, and the batch ends failed again: what was not chosen is still failed.
    picked, _ = dispatch(store)
    assert [cand.segment_id for cand, _ in picked] == [ids[1]]
    store.record_reports(results=[done(ids[1], attempt=2)])
    assert store.batch(batch_id).state is BatchState.FAILED


def test_a_done_or_unknown_segment_is_refused_and_nothing_moves(
    store: Store, tmp_path: Path
) -> None:
    batch_id, ids = ended_with_failures(store, tmp_path)
    before = [s.state for s in store.segments(batch_id)]
    with pytest.raises(InvalidRequest, match=rf"segment {ids[2]} \(done\)"):
        store.resubmit_batch(batch_id, [ids[0], ids[2]])
    with pytest.raises(NotFound, match=f"batch {batch_id} has no segment 999999"):
        store.resubmit_batch(batch_id, [ids[0], 999_999])
    with pytest.raises(InvalidRequest, match="no segments chosen"):
        store.resubmit_batch(batch_id, [])
    assert [s.state for s in store.segments(batch_id)] == before
    assert store.batch(batch_id).state is BatchState.FAILED


def test_a_job_whose_dependency_stays_failed_is_refused(store: Store, tmp_path: Path) -> None:
    batch_id = submit(
        store,
        command_job(tmp_path, name="first", frames="1-2", retries=0),
        command_job(tmp_path, name="then", frames="1-2", retries=0, depends_on=("first",)),
    )
    picked, _ = dispatch(store)
    store.record_reports(results=[failed(cand.segment_id) for cand, _ in picked])
    assert store.batch(batch_id).state in (BatchState.FAILED, BatchState.CANCELED)
    later = [s for s in store.segments(batch_id) if s.job_id == store.jobs(batch_id)[1].id]
    rerunnable = [s.id for s in later if s.state in (S.FAILED, S.CANCELED)]
    with pytest.raises(InvalidRequest, match=r"depends on job .* choose its failed segments"):
        store.resubmit_batch(batch_id, rerunnable)
    # Chosen with what it depends on, both run again.
    first = [s.id for s in store.segments(batch_id) if s.id not in {x.id for x in later}]
    store.resubmit_batch(batch_id, first + rerunnable)
    assert [j.state for j in store.jobs(batch_id)] == [JobState.QUEUED, JobState.WAITING]


def test_chosen_segments_of_a_running_batch_are_canceled_and_the_rest_runs_on(
    store: Store, tmp_path: Path
) -> None:
    batch_id = submit(
        store,
        command_job(tmp_path, name="a", retries=0),
        command_job(tmp_path, name="b", retries=0),
    )
    running = picked_ids(dispatch(store, 1)[0])  # one of job a out on a node
    ids = [s.id for s in store.segments(batch_id)]
    assert running == [ids[0]]
    canceled = store.cancel_segments(batch_id, [ids[0], ids[1]])
    # The queued one at once; the dispatched one is handed back, for its kill.
    assert [s.id for s in canceled.active] == [ids[0]]
    assert ("segment", ids[1], "canceled") in {(c.kind, c.id, c.state) for c in canceled.changes}
    states = [s.state for s in store.segments(batch_id)]
    assert states == [S.DISPATCHED, S.CANCELED, S.QUEUED, S.QUEUED, S.QUEUED, S.QUEUED]
    # The rest runs on: job b's and job a's third are dispatched, and the kill reports.
    rest = picked_ids(dispatch(store)[0])
    assert sorted(rest) == ids[2:]
    store.record_reports(results=[done(sid) for sid in rest])
    store.record_reports(
        results=[Result(ids[0], 1, ok=False, node="node-a", canceled=True, error="canceled")]
    )
    assert [j.state for j in store.jobs(batch_id)] == [JobState.CANCELED, JobState.DONE]
    assert store.batch(batch_id).state is BatchState.CANCELED


def test_an_ended_segment_or_batch_is_not_canceled(store: Store, tmp_path: Path) -> None:
    batch_id, ids = ended_with_failures(store, tmp_path)
    with pytest.raises(InvalidRequest, match=rf"batch {batch_id} is failed: it cannot be canceled"):
        store.cancel_segments(batch_id, ids[:1])
    running = submit(store, command_job(tmp_path, retries=0))
    [first, *_] = picked_ids(dispatch(store, 1)[0])
    store.record_reports(results=[done(first)])
    with pytest.raises(InvalidRequest, match=rf"segment {first} \(done\) .* has ended"):
        store.cancel_segments(running, [first])
    assert store.batch(running).state is BatchState.RUNNING


def test_canceling_a_queued_work_segment_cancels_its_assembly(store: Store) -> None:
    from tests.store.test_assembly import assembled_batch

    batch_id = assembled_batch(store)
    work1, work2, _assemble = [s.id for s in store.segments(batch_id)]
    [(cand, _)] = dispatch(store, 1)[0]
    assert cand.segment_id == work1
    store.cancel_segments(batch_id, [work2])
    store.record_reports(results=[done(work1)])
    # Nothing can be assembled without part 2: the job and the batch end, canceled.
    assert [s.state for s in store.segments(batch_id)] == [S.DONE, S.CANCELED, S.CANCELED]
    assert store.batch(batch_id).state is BatchState.CANCELED
    # Resubmitting part 2 runs its assembly again too, and the job ends done.
    store.resubmit_batch(batch_id, [work2])
    assert [s.state for s in store.segments(batch_id)] == [S.DONE, S.QUEUED, S.QUEUED]
    [(cand, _)] = dispatch(store)[0]
    store.record_reports(results=[done(work2, attempt=1)])
    [(assembly, _)] = dispatch(store)[0]
    store.record_reports(results=[done(assembly.segment_id, attempt=1)])
    assert store.batch(batch_id).state is BatchState.DONE


def test_a_chosen_cancel_holds_when_the_node_is_lost_or_the_process_fails(
    store: Store, tmp_path: Path
) -> None:
    batch_id = submit(store, command_job(tmp_path, name="a", retries=3))
    first, second = picked_ids(dispatch(store, 2)[0])
    store.cancel_segments(batch_id, [first, second])
    # Its node went away before the kill came, and the other failed on its own: neither
    # is queued again (a lost attempt would be, and a failure within retries would be).
    store.record_reports(
        results=[
            Result(first, 1, ok=False, node="node-a", lost=True, error="node lost"),
            failed(second),
        ]
    )
    by_id = {s.id: s.state for s in store.segments(batch_id)}
    assert by_id[first] is S.CANCELED
    assert by_id[second] is S.FAILED  # ended, not retried


def test_a_batch_that_never_ran_again_ends_after_its_chosen_cancel(
    store: Store, tmp_path: Path
) -> None:
    batch_id, ids = ended_with_failures(store, tmp_path)
    store.resubmit_batch(batch_id, [ids[3]])  # job b's failed one; job a stays failed
    assert store.batch(batch_id).state is BatchState.QUEUED
    store.cancel_segments(batch_id, [ids[3]])
    # Nothing left to run: it ends failed (job a failed), by way of running.
    batch = store.batch(batch_id)
    assert batch.state is BatchState.FAILED and batch.started_at is not None
