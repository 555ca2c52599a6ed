"""The store against real databases (an SQLite file, and PostgreSQL where one is given):
the database itself, and the dispatch order. Tests named test_sqlite_* are about SQLite itself.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest

from qfarm.domain.errors import NotFound
from qfarm.domain.model import (
    BatchState,
    JobState,
    SegmentState,
)
from qfarm.store import (
    Store,
)
from tests.store.support import (
    command_job,
    dispatch,
    picked_ids,
    segment_states,
    submit,
)

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


def test_queued_segments_counts_what_is_left_of_each_job(store: Store, tmp_path: Path) -> None:
    first = submit(store, command_job(tmp_path, name="a"), command_job(tmp_path, name="b"))
    job_a, job_b = (job.id for job in store.jobs(first))
    assert store.queued_segments([job_a, job_b]) == {job_a: 3, job_b: 3}

    picked, _ = dispatch(store, 4)

    assert len(picked) == 4  # job a's three, then one of b's
    assert store.queued_segments([job_a, job_b, job_a]) == {job_b: 2}
    assert store.queued_segments([]) == {}
