"""The store against real databases: reports of attempts that start, progress and end, the
retry rule as the store persists it, stale reports, and progress counts."""

from __future__ import annotations

import time
from pathlib import Path

from qfarm.domain.model import (
    BatchState,
    JobState,
    SegmentState,
)
from qfarm.store import (
    Change,
    Progress,
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
    picked_ids,
    segment_states,
    submit,
)

# ------------------------------------------------------------- state flow


def test_dispatch_creates_attempt_and_marks_job_and_batch_running(
    store: Store, tmp_path: Path
) -> None:
    batch_id = submit(store, command_job(tmp_path))
    [job] = store.jobs(batch_id)
    now = time.time()

    picked, changes = dispatch(store, 1, now=now, choose=lambda cand: "node-x")

    [(cand, _)] = picked
    [segment, *_] = store.segments(batch_id)
    assert (segment.state, segment.node, segment.attempts) == (
        SegmentState.DISPATCHED,
        "node-x",
        1,
    )
    [attempt] = store.attempts(segment.id)
    assert (attempt.number, attempt.node, attempt.dispatched_at) == (1, "node-x", now)
    assert attempt.started_at is None and attempt.outcome is None
    assert store.jobs(batch_id)[0].state is JobState.RUNNING
    batch = store.batch(batch_id)
    assert batch.state is BatchState.RUNNING
    assert batch.started_at == now
    assert changes == [
        Change("segment", cand.segment_id, "dispatched", batch_id, "node-x"),
        Change("job", job.id, "running", batch_id),
        Change("batch", batch_id, "running", batch_id),
    ]


def test_start_report_moves_segment_to_running_and_stores_pid(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path))
    [(cand, _)], _ = dispatch(store, 1)

    changes = store.record_reports(started=[Started(cand.segment_id, 1, pid=4242, at=123.5)])

    assert changes == [Change("segment", cand.segment_id, "running", batch_id)]
    assert store.segments(batch_id)[0].state is SegmentState.RUNNING
    [attempt] = store.attempts(cand.segment_id)
    assert (attempt.pid, attempt.started_at) == (4242, 123.5)


def test_done_result_records_the_attempt(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path))
    [(cand, _)], _ = dispatch(store, 1)
    store.record_reports(started=[Started(cand.segment_id, 1, pid=77, at=10.0)])

    store.record_reports(
        results=[
            Result(
                cand.segment_id,
                1,
                ok=True,
                node="node-a",
                exit_code=0,
                ended_at=20.0,
                log_tail="all good",
                log_path="/logs/seg.log",
            )
        ]
    )

    segment = store.segments(batch_id)[0]
    assert (segment.state, segment.progress) == (SegmentState.DONE, 1.0)
    [attempt] = store.attempts(cand.segment_id)
    assert (attempt.outcome, attempt.exit_code, attempt.ended_at) == ("done", 0, 20.0)
    assert (attempt.pid, attempt.started_at) == (77, 10.0)
    assert (attempt.log_tail, attempt.log_path) == ("all good", "/logs/seg.log")


def test_job_and_batch_are_done_only_when_every_segment_is_done(
    store: Store, tmp_path: Path
) -> None:
    batch_id = submit(store, command_job(tmp_path))
    picked, _ = dispatch(store)
    first, second, third = picked_ids(picked)

    store.record_reports(results=[done(first), done(second)])
    assert store.jobs(batch_id)[0].state is JobState.RUNNING
    assert store.batch(batch_id).state is BatchState.RUNNING

    changes = store.record_reports(results=[done(third)])

    [job] = store.jobs(batch_id)
    batch = store.batch(batch_id)
    assert job.state is JobState.DONE
    assert batch.state is BatchState.DONE
    assert batch.finished_at is not None
    assert Change("job", job.id, "done", batch_id) in changes
    assert Change("batch", batch_id, "done", batch_id) in changes


def test_result_before_its_start_report_moves_dispatched_to_done(
    store: Store, tmp_path: Path
) -> None:
    batch_id = submit(store, command_job(tmp_path, frames="1-2"))
    [(cand, _)], _ = dispatch(store)
    assert store.segments(batch_id)[0].state is SegmentState.DISPATCHED

    changes = store.record_reports(
        results=[
            Result(
                cand.segment_id,
                1,
                ok=True,
                node="node-a",
                exit_code=0,
                started_at=5.0,
                pid=99,
            )
        ]
    )

    assert [c for c in changes if c.kind == "segment"] == [
        Change("segment", cand.segment_id, "running", batch_id),
        Change("segment", cand.segment_id, "done", batch_id),
    ]
    assert store.segments(batch_id)[0].state is SegmentState.DONE
    [attempt] = store.attempts(cand.segment_id)
    assert (attempt.outcome, attempt.started_at, attempt.pid) == ("done", 5.0, 99)
    assert store.batch(batch_id).state is BatchState.DONE


def test_start_result_and_progress_in_one_call(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path, frames="1-2"))
    [(cand, _)], _ = dispatch(store)
    sid = cand.segment_id

    store.record_reports(
        started=[Started(sid, 1, pid=1, at=1.0)],
        progress=[Progress(sid, 1, fraction=0.5, at=2.0)],
        results=[done(sid)],
    )

    segment = store.segments(batch_id)[0]
    assert (segment.state, segment.progress) == (SegmentState.DONE, 1.0)
    assert store.batch(batch_id).state is BatchState.DONE


# ---------------------------------------------------------- retries and failures


def test_failed_result_with_retries_left_requeues_the_segment(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path, frames="1-2", retries=1))
    [(cand, _)], _ = dispatch(store, choose=lambda cand: "node-a")

    changes = store.record_reports(results=[failed(cand.segment_id, 1, "node-a")])

    assert [c.state for c in changes if c.kind == "segment"] == ["running", "failed", "queued"]
    [segment] = store.segments(batch_id)
    assert (segment.state, segment.attempts, segment.error) == (
        SegmentState.QUEUED,
        1,
        "exit code 1",
    )
    [job] = store.jobs(batch_id)
    assert job.state is JobState.RUNNING
    assert job.failed_nodes == ("node-a",)
    [attempt] = store.attempts(cand.segment_id)
    assert (attempt.outcome, attempt.exit_code) == ("failed", 1)

    # The retry is offered again, with its history.
    [(retry, _)], _ = dispatch(store, choose=lambda cand: "node-b")
    assert (retry.segment_id, retry.attempts, retry.failed_nodes) == (
        cand.segment_id,
        1,
        ("node-a",),
    )
    assert [a.number for a in store.attempts(cand.segment_id)] == [1, 2]


def test_failed_nodes_collects_every_node_that_failed_the_job(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path, frames="1-4", retries=3))
    picked, _ = dispatch(store, choose=lambda cand: f"node-{cand.index}")
    first, second = picked_ids(picked)

    store.record_reports(results=[failed(first, 1, "node-1"), failed(second, 1, "node-2")])
    picked, _ = dispatch(store, 1, choose=lambda cand: "node-1")
    store.record_reports(results=[failed(picked_ids(picked)[0], 2, "node-1")])

    assert store.jobs(batch_id)[0].failed_nodes == ("node-1", "node-2")


def test_segment_fails_for_good_when_retries_are_used_up(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path, frames="1-2", retries=1))
    [(cand, _)], _ = dispatch(store)
    sid = cand.segment_id
    store.record_reports(results=[failed(sid, 1)])
    dispatch(store)

    changes = store.record_reports(results=[failed(sid, 2)])

    [segment] = store.segments(batch_id)
    assert (segment.state, segment.attempts) == (SegmentState.FAILED, 2)
    assert [a.outcome for a in store.attempts(sid)] == ["failed", "failed"]
    assert store.jobs(batch_id)[0].state is JobState.FAILED
    assert store.batch(batch_id).state is BatchState.FAILED
    assert Change("batch", batch_id, "failed", batch_id) in changes
    assert dispatch(store) == ([], [])


def test_failed_segment_does_not_end_its_job_before_the_others_end(
    store: Store, tmp_path: Path
) -> None:
    batch_id = submit(store, command_job(tmp_path, retries=0))
    picked, _ = dispatch(store, 1)
    [first] = picked_ids(picked)

    store.record_reports(results=[failed(first)])

    assert segment_states(store, batch_id) == [
        SegmentState.FAILED,
        SegmentState.QUEUED,
        SegmentState.QUEUED,
    ]
    assert store.jobs(batch_id)[0].state is JobState.RUNNING
    assert store.batch(batch_id).state is BatchState.RUNNING

    finish_all(store, batch_id)

    assert segment_states(store, batch_id) == [
        SegmentState.FAILED,
        SegmentState.DONE,
        SegmentState.DONE,
    ]
    assert store.jobs(batch_id)[0].state is JobState.FAILED
    assert store.batch(batch_id).state is BatchState.FAILED


def test_lost_result_requeues_without_counting_the_attempt(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path, frames="1-2", retries=0))
    [(cand, _)], _ = dispatch(store)
    sid = cand.segment_id
    store.record_reports(
        started=[Started(sid, 1, pid=5, at=1.0)],
        progress=[Progress(sid, 1, fraction=0.4, at=2.0)],
    )

    changes = store.record_reports(
        results=[Result(sid, 1, ok=False, node="node-a", lost=True, error="node went away")]
    )

    assert changes == [Change("segment", sid, "queued", batch_id)]
    [segment] = store.segments(batch_id)
    # The attempt keeps its number (the next one is 2) but is not a failure.
    assert (segment.state, segment.attempts, segment.failures, segment.progress) == (
        SegmentState.QUEUED,
        1,
        0,
        0.0,
    )
    [job] = store.jobs(batch_id)
    assert job.state is JobState.RUNNING
    assert job.failed_nodes == ()
    assert store.attempts(sid)[0].outcome == "lost"

    # Even with no retries, the segment runs again and can still succeed.
    [(again, _)], _ = dispatch(store)
    assert again.attempts == 1  # the next attempt is number 2
    store.record_reports(results=[done(sid, 2, "node-b")])
    assert store.batch(batch_id).state is BatchState.DONE


def test_attempt_after_a_lost_one_gets_its_own_number_and_record(
    store: Store, tmp_path: Path
) -> None:
    submit(store, command_job(tmp_path, frames="1-2"))
    [(cand, _)], _ = dispatch(store, choose=lambda cand: "node-a")
    sid = cand.segment_id
    store.record_reports(results=[Result(sid, 1, ok=False, node="node-a", lost=True)])
    dispatch(store, choose=lambda cand: "node-b")
    new_attempt = store.attempts(sid)[-1]
    assert new_attempt.node == "node-b"
    store.record_reports(results=[done(sid, new_attempt.number, "node-b")])

    attempts = store.attempts(sid)
    assert len({a.number for a in attempts}) == len(attempts) == 2
    assert [(a.node, a.outcome) for a in attempts] == [("node-a", "lost"), ("node-b", "done")]


def test_canceled_result_cancels_the_segment(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path, frames="1-2", retries=3))
    [(cand, _)], _ = dispatch(store)
    sid = cand.segment_id
    store.record_reports(started=[Started(sid, 1, pid=5, at=1.0)])

    store.record_reports(
        results=[Result(sid, 1, ok=False, node="node-a", canceled=True, error="killed")]
    )

    [segment] = store.segments(batch_id)
    assert (segment.state, segment.error) == (SegmentState.CANCELED, "killed")
    assert store.attempts(sid)[0].outcome == "canceled"
    assert store.jobs(batch_id)[0].state is JobState.CANCELED
    assert store.batch(batch_id).state is BatchState.CANCELED
    assert dispatch(store) == ([], [])


def test_canceled_result_for_a_dispatched_segment_cancels_it(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path, frames="1-2"))
    [(cand, _)], _ = dispatch(store)

    changes = store.record_reports(
        results=[Result(cand.segment_id, 1, ok=False, node="node-a", canceled=True)]
    )

    assert Change("segment", cand.segment_id, "canceled", batch_id) in changes
    assert Change("segment", cand.segment_id, "running", batch_id) not in changes
    assert segment_states(store, batch_id) == [SegmentState.CANCELED]


# ----------------------------------------------------------------- stale reports


def test_reports_for_an_earlier_attempt_are_ignored(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path, frames="1-2", retries=2))
    [(cand, _)], _ = dispatch(store)
    sid = cand.segment_id
    store.record_reports(results=[failed(sid, 1)])
    dispatch(store, choose=lambda cand: "node-b")  # attempt 2, dispatched
    before = (store.segments(batch_id), store.attempts(sid), store.jobs(batch_id))

    changes = store.record_reports(
        started=[Started(sid, 1, pid=1, at=1.0)],
        progress=[Progress(sid, 1, fraction=0.9, at=2.0)],
        results=[done(sid, 1), failed(sid, 3)],
    )

    assert changes == []
    assert (store.segments(batch_id), store.attempts(sid), store.jobs(batch_id)) == before
    assert store.segments(batch_id)[0].state is SegmentState.DISPATCHED


def test_reports_about_a_done_segment_are_ignored(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path, frames="1-2"))
    [(cand, _)], _ = dispatch(store)
    sid = cand.segment_id
    store.record_reports(results=[done(sid)])
    before = (store.segments(batch_id), store.attempts(sid), store.batch(batch_id))

    changes = store.record_reports(
        started=[Started(sid, 1, pid=1, at=1.0)],
        progress=[Progress(sid, 1, fraction=0.3, at=2.0)],
        results=[done(sid), failed(sid), Result(sid, 1, ok=False, node="node-a", lost=True)],
    )

    assert changes == []
    assert (store.segments(batch_id), store.attempts(sid), store.batch(batch_id)) == before


def test_reports_about_unknown_segments_are_ignored(store: Store, tmp_path: Path) -> None:
    submit(store, command_job(tmp_path))

    changes = store.record_reports(
        started=[Started(9999, 1, pid=1, at=1.0)],
        progress=[Progress(9999, 1, fraction=0.5, at=1.0)],
        results=[done(9999)],
    )

    assert changes == []


def test_reports_about_a_queued_segment_are_ignored(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path, frames="1-2"))
    [segment] = store.segments(batch_id)

    assert store.record_reports(results=[done(segment.id, 0)]) == []
    assert store.segments(batch_id) == [segment]


# ------------------------------------------------------------ progress and counts


def test_progress_report_updates_segment_progress(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path, frames="1-2"))
    [(cand, _)], _ = dispatch(store)
    sid = cand.segment_id

    store.record_reports(progress=[Progress(sid, 1, fraction=0.25, at=50.0)])
    assert store.segments(batch_id)[0].progress == 0.25
    assert store.attempts(sid)[0].last_progress_at == 50.0

    store.record_reports(progress=[Progress(sid, 1, fraction=0.75, at=60.0)])
    assert store.segments(batch_id)[0].progress == 0.75
    assert store.attempts(sid)[0].last_progress_at == 60.0


def test_counts_reflect_segment_states(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path, frames="1-12", retries=0))
    counts = store.counts(batch_id)
    assert (counts.total, counts.queued, counts.finished) == (6, 6, 0)

    picked, _ = dispatch(store, 5)
    ids = picked_ids(picked)
    store.record_reports(
        started=[Started(ids[1], 1, pid=1, at=1.0)],
        results=[
            done(ids[2]),
            failed(ids[3]),
            Result(ids[4], 1, ok=False, node="node-a", canceled=True),
        ],
    )

    counts = store.counts(batch_id)
    assert (
        counts.total,
        counts.queued,
        counts.dispatched,
        counts.running,
        counts.done,
        counts.failed,
        counts.canceled,
        counts.finished,
    ) == (6, 1, 1, 1, 1, 1, 1, 3)


def test_counts_of_an_unknown_batch_are_zero(store: Store) -> None:
    counts = store.counts(4242)
    assert counts.total == 0 and counts.finished == 0
