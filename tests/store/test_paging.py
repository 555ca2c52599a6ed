"""Paged listings and the attempts that moved since a time, against real databases: pages
put together are the whole listing, the totals count every page, and a catch-up read of
attempts holds what moved since then and what is still going, nothing older."""

from __future__ import annotations

import time
from pathlib import Path

from qfarm.store import Page, Result, Started, Store
from tests.store.support import command_job, dispatch, done, submit


def test_pages_of_segments_and_batches_put_together_are_the_whole_listing(
    store: Store, tmp_path: Path
) -> None:
    batch_id = submit(store, command_job(tmp_path, frames="1-25", segment_size=1))
    whole = store.segments(batch_id)
    pages = [store.segments(batch_id, page=Page(offset, 10)) for offset in (0, 10, 20)]
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [s.id for p in pages for s in p] == [s.id for s in whole]
    assert store.segments(batch_id, page=Page(25, 10)) == []
    assert store.segment_total(batch_id) == 25

    others = [submit(store, command_job(tmp_path)) for _ in range(3)]
    assert [b.id for b in store.batches(page=Page(1, 2))] == others[:2]
    assert store.batch_total() == 4


def test_a_catch_up_read_has_what_moved_since_and_what_is_still_going(
    store: Store, tmp_path: Path
) -> None:
    batch_id = submit(store, command_job(tmp_path, frames="1-4", segment_size=1))
    t0 = time.time() - 100
    picked, _ = dispatch(store, 2, now=t0)
    first, second = (cand.segment_id for cand, _ in picked)
    store.record_reports(
        started=[Started(first, 1, None, t0 + 1), Started(second, 1, None, t0 + 1)],
        results=[done(first)],  # ended now: moved since t0 + 50
    )
    later, _ = dispatch(store, 1, now=t0 + 60)
    [third] = [cand.segment_id for cand, _ in later]
    # Everything, in dispatch order.
    assert [a.segment_id for a in store.batch_attempts(batch_id)] == [first, second, third]
    # Since t0 + 50: the first ended since, the second is still going, the third was
    # dispatched since.
    assert {a.segment_id for a in store.batch_attempts(batch_id, since=t0 + 50)} == {
        first,
        second,
        third,
    }
    store.record_reports(results=[done(second), done(third)])
    ended = time.time()
    assert store.batch_attempts(batch_id, since=ended + 1) == []
    assert store.batch_attempt_total(batch_id, since=ended + 1) == 0
    assert store.batch_attempt_total(batch_id) == 3
    assert [a.segment_id for a in store.batch_attempts(batch_id, page=Page(1, 1))] == [second]


def test_an_end_a_node_dated_by_its_own_late_clock_is_still_caught_up(
    store: Store, tmp_path: Path
) -> None:
    batch_id = submit(store, command_job(tmp_path, frames="1", segment_size=1))
    [(cand, _)] = dispatch(store, 1)[0]
    read_at = time.time()
    # The node's clock is ten minutes behind: it dates the end before the last read.
    late = Result(cand.segment_id, 1, ok=True, node="node-a", exit_code=0, ended_at=read_at - 600)
    store.record_reports(results=[late])
    [attempt] = store.batch_attempts(batch_id, since=read_at - 5)
    assert attempt.outcome is not None and attempt.ended_at == read_at - 600
