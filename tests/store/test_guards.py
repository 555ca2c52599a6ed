"""The store against real databases: what now goes through the domain's guards and rules
(a priority change on an ended batch, a node that goes away, a cancel while canceling,
attempt outcomes as the model's enum, the dispatch order as the domain writes it)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from qfarm.domain.errors import InvalidRequest, NotFound
from qfarm.domain.model import (
    AttemptOutcome,
    BatchState,
    JobState,
    Node,
    NodeState,
    SegmentKind,
    SegmentState,
)
from qfarm.domain.steering import QueuedSegment, dispatch_order
from qfarm.store import Result, Store
from tests.store.support import command_job, dispatch, done, failed, picked_ids, submit

# ------------------------------------------------------------------ priority


def test_set_priority_reorders_a_batch_still_going(store: Store, tmp_path: Path) -> None:
    first = submit(store, command_job(tmp_path))
    second = submit(store, command_job(tmp_path))
    store.set_priority(second, 90)
    assert store.batch(second).priority == 90
    [(cand, _)], _ = dispatch(store, 1)
    assert cand.batch_id == second
    store.set_priority(first, 10)  # queued, then running: both may be changed
    assert store.batch(first).priority == 10


def test_set_priority_of_an_ended_batch_is_refused(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path, frames="1", retries=0))
    [(cand, _)], _ = dispatch(store, batch_ids=[batch_id])
    store.record_reports(results=[failed(cand.segment_id)])
    assert store.batch(batch_id).state is BatchState.FAILED
    with pytest.raises(InvalidRequest, match=f"batch {batch_id} is failed: it cannot be"):
        store.set_priority(batch_id, 90)
    assert store.batch(batch_id).priority == 50  # unchanged


def test_set_priority_of_an_unknown_batch_raises_not_found(store: Store) -> None:
    with pytest.raises(NotFound):
        store.set_priority(4711, 90)


# ---------------------------------------------------------------------- nodes


def node(name: str) -> Node:
    return Node(name, f"tcp://{name}:1", NodeState.ONLINE, {"command": 1})


def test_mark_offline_takes_an_online_node_offline(store: Store) -> None:
    store.upsert_node(node("a"))
    store.mark_offline("a")
    assert store.nodes()[0].state is NodeState.OFFLINE
    store.mark_offline("a")  # already offline: nothing to do
    assert store.nodes()[0].state is NodeState.OFFLINE


def test_mark_offline_leaves_a_drained_node_drained(store: Store) -> None:
    store.upsert_node(node("a"))
    store.set_node_state("a", NodeState.DISABLED)
    store.mark_offline("a")
    assert store.nodes()[0].state is NodeState.DISABLED


def test_mark_offline_of_an_unknown_node_does_nothing(store: Store) -> None:
    store.mark_offline("ghost")
    assert store.nodes() == []


# -------------------------------------------------------------------- cancels


def test_cancel_while_canceling_returns_the_active_segments_again(
    store: Store, tmp_path: Path
) -> None:
    batch_id = submit(store, command_job(tmp_path))
    picked, _ = dispatch(store, 2)
    first = store.cancel_batch(batch_id)
    again = store.cancel_batch(batch_id)  # a kill may have been lost: send them again
    assert sorted(s.id for s in again) == sorted(s.id for s in first) == picked_ids(picked)
    assert store.batch(batch_id).state is BatchState.RUNNING
    # A lost attempt of a canceling batch is canceled, not requeued; the batch ends once.
    a, b = picked_ids(picked)
    lost = Result(a, 1, ok=False, node="node-a", lost=True, error="gone")
    changes = store.record_reports(results=[lost, Result(b, 1, ok=False, node="n", canceled=True)])
    assert store.segments(batch_id)[0].state is SegmentState.CANCELED
    assert [c.state for c in changes if c.kind == "batch"] == ["canceled"]
    assert store.cancel_batch(batch_id) == []  # ended: nothing left to cancel


def test_resubmit_forgets_the_cancel(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path, frames="1", retries=3))
    [(cand, _)], _ = dispatch(store)
    store.cancel_batch(batch_id)
    store.record_reports(results=[Result(cand.segment_id, 1, ok=False, node="n", canceled=True)])
    store.resubmit_batch(batch_id)
    # Canceling no more: a failure with retries left is retried again.
    [(cand, _)], _ = dispatch(store)
    store.record_reports(results=[failed(cand.segment_id, cand.attempts + 1)])
    assert store.segments(batch_id)[0].state is SegmentState.QUEUED


# -------------------------------------------------------------------- attempts


def test_attempt_outcomes_read_back_as_the_models_enum(store: Store, tmp_path: Path) -> None:
    batch_id = submit(store, command_job(tmp_path, frames="1", retries=1))
    [(cand, _)], _ = dispatch(store)
    store.record_reports(results=[failed(cand.segment_id)])
    [(cand, _)], _ = dispatch(store)
    store.record_reports(results=[done(cand.segment_id, 2)])
    outcomes = [a.outcome for a in store.attempts(cand.segment_id)]
    assert outcomes == [AttemptOutcome.FAILED, AttemptOutcome.DONE]
    assert outcomes == ["failed", "done"]  # the strings stored, as before
    assert all(isinstance(o, AttemptOutcome) for o in outcomes)
    assert store.jobs(batch_id)[0].state is JobState.DONE


# ------------------------------------------------------------- dispatch order


def test_the_store_dispatches_in_the_domains_order(store: Store, tmp_path: Path) -> None:
    now = time.time()
    ids = [
        submit(store, command_job(tmp_path, frames="1-4"), priority=25),
        submit(store, command_job(tmp_path, frames="1-2"), priority=75),
        submit(store, command_job(tmp_path, frames="1-2"), hold=True),
        submit(store, command_job(tmp_path, frames="1-2"), start_at=now + 3600),
        submit(
            store,
            command_job(tmp_path, name="a", frames="1-2"),
            command_job(tmp_path, name="b", frames="1-2", depends_on=("a",)),
        ),
    ]
    queued = [
        QueuedSegment(
            segment_id=s.id,
            segment_index=s.index,
            kind=s.kind,
            job_id=job.id,
            job_index=job.index,
            job_state=job.state,
            work_done=s.kind is SegmentKind.WORK,
            batch_id=batch.id,
            batch_state=batch.state,
            priority=batch.priority,
            start_at=batch.start_at,
        )
        for batch in (store.batch(i) for i in ids)
        for job in store.jobs(batch.id)
        for s in store.segments(batch.id)
        if s.job_id == job.id
    ]
    picked, _ = dispatch(store, now=now)
    assert picked_ids(picked) == [q.segment_id for q in dispatch_order(queued, now)]
