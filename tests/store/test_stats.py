"""What the charts read from the store (qfarm.store.stats), on SQLite and PostgreSQL: the
attempts overlapping a window with their node and service, running ones included and
those outside left out; and a batch's attempts, of one job or all, for its durations."""

from __future__ import annotations

from pathlib import Path

from qfarm.domain.stats import segment_durations
from qfarm.store import Result, Store
from tests.store.support import command_job, dispatch, submit


def test_the_attempts_overlapping_a_window(store: Store, tmp_path: Path) -> None:
    batch = submit(store, command_job(tmp_path, frames="1-6", segment_size=2))
    nodes = iter(["node-a", "node-b", "node-a"])
    picked, _ = dispatch(store, now=1000.0, choose=lambda cand: next(nodes))
    first, second, third = (c.segment_id for c, _ in picked)
    store.record_reports(
        results=[
            Result(first, 1, ok=True, node="node-a", exit_code=0, started_at=1001.0,
                   ended_at=1050.0),
            Result(second, 1, ok=False, node="node-b", exit_code=1, error="exit code 1",
                   started_at=1001.0, ended_at=1100.0),
        ]
    )  # fmt: skip

    spans = store.attempt_spans(1040.0, 2000.0)
    assert sorted((s.node, s.outcome or "running", s.ended_at or 0.0) for s in spans) == [
        ("node-a", "done", 1050.0),
        ("node-a", "running", 0.0),  # the third, still running
        ("node-b", "failed", 1100.0),
    ]
    assert {s.service for s in spans} == {"command"}
    assert {s.dispatched_at for s in spans} == {1000.0}
    assert [s.outcome for s in store.attempt_spans(1060.0, 2000.0)].count("done") == 0
    assert store.attempt_spans(0.0, 1000.0) == []  # dispatched at the window's end: after it
    assert len(store.attempt_spans(2000.0, 3000.0)) == 1  # only the running one

    times = store.attempt_times(batch)
    assert [(t.segment_id, t.number, t.node, t.outcome) for t in times] == [
        (first, 1, "node-a", "done"),
        (second, 1, "node-b", "failed"),
        (third, 1, "node-a", None),
    ]
    shown = segment_durations(times, now=1200.0)
    assert [d.seconds for d in shown] == [49.0, 99.0, 200.0]


def test_a_batchs_attempts_of_one_job(store: Store, tmp_path: Path) -> None:
    batch = submit(
        store,
        command_job(tmp_path, name="one", frames="1-2", segment_size=1),
        command_job(tmp_path, name="two", frames="1-3", segment_size=1),
    )
    other = submit(store, command_job(tmp_path, frames="1", segment_size=1))
    picked, _ = dispatch(store, now=10.0)
    store.record_reports(
        results=[Result(c.segment_id, 1, ok=True, node="node-a", exit_code=0, started_at=10.0,
                        ended_at=11.0) for c, _ in picked]
    )  # fmt: skip
    _one, two = store.jobs(batch)
    assert len(store.attempt_times(batch)) == 5
    assert {t.job_name for t in store.attempt_times(batch, two.id)} == {"two"}
    assert [t.segment_index for t in store.attempt_times(batch, two.id)] == [1, 2, 3]
    assert len(store.attempt_times(other)) == 1
    assert store.attempt_times(batch, store.jobs(other)[0].id) == []
