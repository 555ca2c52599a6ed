"""The store against real databases: nodes, requeues after a restart, and pause and resume."""

from __future__ import annotations

from pathlib import Path

import pytest

from qfarm.domain.errors import InvalidRequest, NotFound
from qfarm.domain.model import (
    BatchState,
    Node,
    NodeState,
    SegmentState,
)
from qfarm.store import (
    Result,
    Started,
    Store,
)
from tests.store.support import (
    command_job,
    dispatch,
    failed,
    submit,
)

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
