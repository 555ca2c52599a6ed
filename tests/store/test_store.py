"""The store against real databases (an SQLite file, and PostgreSQL where one is given),
driven the way the dispatcher drives it. Tests named test_sqlite_* are about SQLite itself.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from qfarm.controller.planning import plan_batch
from qfarm.domain.errors import InvalidRequest, NotFound
from qfarm.domain.model import (
    BatchRequest,
    BatchState,
    IllegalTransition,
    JobRequest,
    JobState,
    Node,
    NodeState,
    SegmentKind,
    SegmentPlan,
    SegmentState,
)
from qfarm.store import (
    Candidate,
    Change,
    Dispatch,
    PlannedJob,
    Progress,
    Result,
    Started,
    Store,
)

# ------------------------------------------------------------------ helpers


def command_job(
    cwd: Path,
    *,
    name: str = "",
    frames: str = "1-6",
    segment_size: int = 2,
    retries: int = 1,
    depends_on: tuple[str, ...] = (),
) -> JobRequest:
    """A command job of ``frames`` cut into segments of ``segment_size`` (three by default)."""
    return JobRequest(
        "command",
        {"command": ["true"], "frames": frames, "segment_size": segment_size, "cwd": str(cwd)},
        name=name,
        retries=retries,
        depends_on=depends_on,
    )


def submit(store: Store, *jobs: JobRequest, **batch: Any) -> int:
    request = BatchRequest(jobs=tuple(jobs), **batch)
    return store.add_batch(request, plan_batch(request))


def dispatch(
    store: Store,
    n: int = 100,
    *,
    now: float | None = None,
    batch_ids: list[int] | None = None,
    choose: Callable[[Candidate], str | None] = lambda cand: "node-a",
) -> tuple[list[tuple[Candidate, str]], list[Change]]:
    return store.dispatch(
        free={"command": n},
        now=time.time() if now is None else now,
        batch_ids=batch_ids,
        choose=choose,
    )


def picked_ids(picked: list[tuple[Candidate, str]]) -> list[int]:
    return [cand.segment_id for cand, _node in picked]


def done(segment_id: int, attempt: int = 1, node: str = "node-a") -> Result:
    return Result(segment_id, attempt, ok=True, node=node, exit_code=0)


def failed(segment_id: int, attempt: int = 1, node: str = "node-a") -> Result:
    return Result(segment_id, attempt, ok=False, node=node, exit_code=1, error="exit code 1")


def segment_states(store: Store, batch_id: int) -> list[SegmentState]:
    return [s.state for s in store.segments(batch_id)]


def job_states(store: Store, batch_id: int) -> list[JobState]:
    return [j.state for j in store.jobs(batch_id)]


def finish_all(store: Store, batch_id: int, node: str = "node-a") -> None:
    """Dispatch and complete every segment of a batch that can run now."""
    picked, _ = dispatch(store, batch_ids=[batch_id], choose=lambda cand: node)
    store.record_reports(results=[done(c.segment_id, c.attempts + 1, node) for c, _ in picked])


# ------------------------------------------------------------ the database


def test_sqlite_database_is_in_wal_mode(store: Store, tmp_path: Path) -> None:
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    # WAL is a property of the file: a plain connection sees it too.
    raw = sqlite3.connect(tmp_path / "qfarm.db")
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        raw.close()


def test_add_batch_stores_queued_batch_jobs_and_segments(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path, name="render"), name="shots", owner="ann")

    batch = store.batch(batch_id)
    assert (batch.name, batch.owner, batch.state) == ("shots", "ann", BatchState.QUEUED)
    [job] = store.jobs(batch_id)
    assert (job.name, job.state, job.retries, job.failed_nodes) == (
        "render",
        JobState.QUEUED,
        1,
        (),
    )
    segments = store.segments(batch_id)
    assert [s.index for s in segments] == [1, 2, 3]
    assert [s.label for s in segments] == ["frames 1-2", "frames 3-4", "frames 5-6"]
    assert [s.frames for s in segments] == [2, 2, 2]
    assert all(s.state is SegmentState.QUEUED and s.attempts == 0 for s in segments)


def test_unknown_batch_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.batch(12345)
    with pytest.raises(NotFound):
        store.cancel_batch(12345)


# ------------------------------------------------------------ dispatch order


def test_dispatch_takes_higher_priority_batch_first(store: Store, tmp_path: Path) -> None:
    low = submit(store, command_job(tmp_path), priority=25)
    high = submit(store, command_job(tmp_path), priority=75)

    picked, _ = dispatch(store)

    expected = [s.id for s in store.segments(high)] + [s.id for s in store.segments(low)]
    assert picked_ids(picked) == expected


def test_dispatch_follows_submission_order_at_equal_priority(store: Store, tmp_path: Path) -> None:
    first = submit(store, command_job(tmp_path))
    second = submit(store, command_job(tmp_path))

    picked, _ = dispatch(store)

    expected = [s.id for s in store.segments(first)] + [s.id for s in store.segments(second)]
    assert picked_ids(picked) == expected


def test_dispatch_follows_job_order_then_segment_index(store: Store, tmp_path: Path) -> None:
    batch_id = submit(
        store,
        command_job(tmp_path, name="a", frames="1-4"),
        command_job(tmp_path, name="b", frames="1-6"),
    )
    job_a, job_b = store.jobs(batch_id)

    picked, _ = dispatch(store)

    assert [(c.job_id, c.index) for c, _ in picked] == [
        (job_a.id, 1),
        (job_a.id, 2),
        (job_b.id, 1),
        (job_b.id, 2),
        (job_b.id, 3),
    ]


def test_dispatch_takes_at_most_the_free_instances(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path))
    first, second, third = (s.id for s in store.segments(batch_id))

    picked, _ = dispatch(store, 2)
    assert picked_ids(picked) == [first, second]
    assert segment_states(store, batch_id) == [
        SegmentState.DISPATCHED,
        SegmentState.DISPATCHED,
        SegmentState.QUEUED,
    ]

    picked, _ = dispatch(store, 2)
    assert picked_ids(picked) == [third]


def test_dispatch_with_no_free_instance_of_the_service_gives_nothing(
    store: Store, tmp_path: Path
) -> None:
    batch_id = submit(store, command_job(tmp_path))
    now = time.time()

    for free in ({"command": 0}, {"transcode": 4}, {}):
        assert store.dispatch(free, now, None, lambda cand: "node-a") == ([], [])
    assert segment_states(store, batch_id) == [SegmentState.QUEUED] * 3


def test_choose_returning_none_leaves_the_segment_queued(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path))
    first, second, third = (s.id for s in store.segments(batch_id))

    picked, _ = dispatch(store, 2, choose=lambda cand: None if cand.index == 1 else "node-b")

    assert picked_ids(picked) == [second, third]
    assert all(node == "node-b" for _, node in picked)
    assert segment_states(store, batch_id) == [
        SegmentState.QUEUED,
        SegmentState.DISPATCHED,
        SegmentState.DISPATCHED,
    ]
    assert store.attempts(first) == []


def test_held_batch_gives_nothing(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path), hold=True)

    assert store.batch(batch_id).state is BatchState.HELD
    assert dispatch(store) == ([], [])
    assert segment_states(store, batch_id) == [SegmentState.QUEUED] * 3


def test_batch_with_future_start_at_gives_nothing_until_then(store: Store, tmp_path: Path) -> None:
    start_at = time.time() + 3600
    batch_id = submit(store, command_job(tmp_path), start_at=start_at)

    assert dispatch(store, now=start_at - 1) == ([], [])
    assert segment_states(store, batch_id) == [SegmentState.QUEUED] * 3

    picked, _ = dispatch(store, now=start_at)
    assert len(picked) == 3


def test_job_waiting_on_a_dependency_gives_nothing(store: Store, tmp_path: Path) -> None:
    batch_id = submit(
        store,
        command_job(tmp_path, name="first", frames="1-2"),
        command_job(tmp_path, name="second", depends_on=("first",)),
    )
    first, second = store.jobs(batch_id)

    picked, _ = dispatch(store)

    assert {c.job_id for c, _ in picked} == {first.id}
    assert len(picked) == 1
    assert second.state is JobState.WAITING
    assert [s.state for s in store.segments(batch_id) if s.job_id == second.id] == [
        SegmentState.QUEUED
    ] * 3


def test_dispatch_only_considers_the_given_batch_ids(store: Store, tmp_path: Path) -> None:
    one = submit(store, command_job(tmp_path), priority=90)
    two = submit(store, command_job(tmp_path))

    picked, _ = dispatch(store, batch_ids=[two])
    assert {c.batch_id for c, _ in picked} == {two}
    assert segment_states(store, one) == [SegmentState.QUEUED] * 3

    assert dispatch(store, batch_ids=[]) == ([], [])
    assert segment_states(store, one) == [SegmentState.QUEUED] * 3


def test_candidate_carries_what_the_dispatcher_needs(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path, frames="1-2"))
    [job] = store.jobs(batch_id)
    [segment] = store.segments(batch_id)

    [(cand, node)], _ = dispatch(store)

    assert node == "node-a"
    assert (cand.segment_id, cand.job_id, cand.batch_id, cand.index) == (
        segment.id,
        job.id,
        batch_id,
        1,
    )
    assert (cand.service, cand.job_type, cand.attempts, cand.failed_nodes) == (
        "command",
        "command",
        0,
        (),
    )
    assert cand.job_spec == job.spec
    assert cand.segment_spec == segment.spec


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
        Change("segment", cand.segment_id, "dispatched", batch_id),
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


# -------------------------------------------------------------------- nodes


def make_node(
    name: str,
    *,
    address: str = "",
    services: dict[str, int] | None = None,
    host: str = "",
    cores: int = 0,
    memory: int = 0,
    last_seen: float | None = None,
) -> Node:
    return Node(
        name=name,
        address=address or f"tcp://{name}:1234",
        state=NodeState.ONLINE,
        services={"command": 4} if services is None else services,
        host=host,
        cores=cores,
        memory=memory,
        last_seen=last_seen,
    )


def test_upsert_node_inserts_then_updates(store: Store) -> None:
    store.upsert_node(make_node("node-b", host="hb", cores=8, memory=1024, last_seen=1.0))
    store.upsert_node(make_node("node-a"))

    assert [n.name for n in store.nodes()] == ["node-a", "node-b"]
    node_b = store.nodes()[1]
    assert (node_b.host, node_b.cores, node_b.memory, node_b.services) == (
        "hb",
        8,
        1024,
        {"command": 4},
    )

    store.upsert_node(
        make_node("node-b", address="tcp://elsewhere:1", services={"command": 2}, last_seen=9.0)
    )

    node_b = store.nodes()[1]
    assert (node_b.address, node_b.services, node_b.last_seen) == (
        "tcp://elsewhere:1",
        {"command": 2},
        9.0,
    )
    assert node_b.state is NodeState.ONLINE


def test_set_node_state_disables_and_brings_back_online(store: Store) -> None:
    store.upsert_node(make_node("node-a"))

    store.set_node_state("node-a", NodeState.DISABLED)
    assert store.nodes()[0].state is NodeState.DISABLED

    store.set_node_state("node-a", NodeState.DISABLED)  # already there: no change, no error
    assert store.nodes()[0].state is NodeState.DISABLED

    store.set_node_state("node-a", NodeState.ONLINE)
    assert store.nodes()[0].state is NodeState.ONLINE


def test_drained_node_stays_disabled_when_it_reports_again(store: Store) -> None:
    store.upsert_node(make_node("node-a"))
    store.set_node_state("node-a", NodeState.DISABLED)

    store.upsert_node(make_node("node-a", last_seen=5.0))

    [node] = store.nodes()
    assert (node.state, node.last_seen) == (NodeState.DISABLED, 5.0)


def test_offline_node_comes_back_online_when_it_reports_again(store: Store) -> None:
    store.upsert_node(make_node("node-a"))
    store.set_node_state("node-a", NodeState.OFFLINE)

    store.upsert_node(make_node("node-a"))

    assert store.nodes()[0].state is NodeState.ONLINE


def test_set_node_state_of_unknown_node_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.set_node_state("ghost", NodeState.DISABLED)


def test_requeue_active_gives_back_what_a_dead_controller_left_out(
    store: Store, tmp_path: Path
) -> None:
    batch_id = submit(store, command_job(tmp_path, frames="1-3", segment_size=1, retries=0))
    picked, _ = dispatch(store, 2)
    first, second = (cand.segment_id for cand, _ in picked)
    store.record_reports(started=[Started(first, 1, pid=7, at=1.0)])

    store.requeue_active("the controller restarted")

    segments = store.segments(batch_id)
    assert [s.state for s in segments] == [SegmentState.QUEUED] * 3
    for sid in (first, second):
        [attempt] = store.attempts(sid)
        assert (attempt.outcome, attempt.error) == ("lost", "the controller restarted")
    assert all(s.failures == 0 for s in segments)


def test_reports_after_a_cancel_never_requeue_its_segments(store: Store, tmp_path: Path) -> None:
    # The kill lands too late for one segment (it failed on its own, retries left) and its
    # node vanishes under the other: neither may run again once the batch is canceled.
    batch_id = submit(store, command_job(tmp_path, frames="1-2", segment_size=1, retries=3))
    picked, _ = dispatch(store, 2)
    first, second = (cand.segment_id for cand, _ in picked)
    store.cancel_batch(batch_id)
    store.record_reports(
        results=[failed(first), Result(second, 1, ok=False, node="node-a", lost=True)]
    )
    states = {s.id: s.state for s in store.segments(batch_id)}
    assert states == {first: SegmentState.FAILED, second: SegmentState.CANCELED}
    assert store.batch(batch_id).state is BatchState.FAILED  # one segment did fail
    assert dispatch(store, 2) == ([], [])


def test_resume_and_pause_of_batches_in_other_states(store: Store, tmp_path: Path) -> None:
    from qfarm.domain.errors import InvalidRequest

    held = submit(store, command_job(tmp_path), hold=True)
    assert store.pause_batch(held) == []  # a held batch is not dispatched anyway
    store.resume_batch(held)
    assert store.batch(held).state is BatchState.QUEUED
    assert store.resume_batch(held) == []  # nothing to resume

    finished = submit(store, command_job(tmp_path, frames="1", retries=0))
    [(cand, _)], _ = dispatch(store, batch_ids=[finished])
    store.record_reports(results=[failed(cand.segment_id)])
    assert store.batch(finished).state is BatchState.FAILED
    with pytest.raises(InvalidRequest, match="resubmit reruns what failed"):
        store.resume_batch(finished)
    with pytest.raises(InvalidRequest, match="cannot be paused"):
        store.pause_batch(finished)


def test_a_node_with_more_than_2_gib_of_memory(store: Store) -> None:
    from qfarm.domain.model import Node, NodeState

    store.upsert_node(
        Node(name="big", address="tcp://127.0.0.1:1", state=NodeState.ONLINE,
             services={"command": 8}, memory=64 * 2**30)
    )  # fmt: skip
    [node] = store.nodes()
    assert node.memory == 64 * 2**30


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
