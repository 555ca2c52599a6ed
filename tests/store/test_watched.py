"""Watched files in the store: a claim is made once per file version, whatever comes
after; records move on only as the domain's table allows."""

from __future__ import annotations

import pytest

from qfarm.domain.errors import InvalidRequest, NotFound
from qfarm.domain.model import IllegalTransition
from qfarm.domain.watched import AlreadyTaken, FileVersion, WatchedState
from qfarm.store import Store

CLIP = FileVersion("clip.mov", 1_000, 1_700_000_000.123456)


def test_a_file_version_is_claimed_once(store: Store) -> None:
    first = store.claim_watched("drop", CLIP)
    assert (first.watch, first.version, first.state) == ("drop", CLIP, WatchedState.CLAIMED)
    with pytest.raises(AlreadyTaken, match=r"clip.mov .* was taken before"):
        store.claim_watched("drop", CLIP)
    # Even once it ended: the same version is never submitted again.
    store.record_watched(first.id, WatchedState.REFUSED, error="not media")
    with pytest.raises(AlreadyTaken, match="refused"):
        store.claim_watched("drop", CLIP)


def test_a_new_size_or_mtime_or_another_watch_is_another_claim(store: Store) -> None:
    store.claim_watched("drop", CLIP)
    grown = store.claim_watched("drop", FileVersion("clip.mov", 2_000, CLIP.mtime))
    touched = store.claim_watched("drop", FileVersion("clip.mov", 1_000, CLIP.mtime + 1))
    other = store.claim_watched("elsewhere", CLIP)
    assert len({grown.id, touched.id, other.id}) == 3
    assert [f.version for f in store.watched_files("drop")] == [
        CLIP,
        grown.version,
        touched.version,
    ]
    assert [f.id for f in store.watched_files("elsewhere")] == [other.id]


def test_a_record_follows_its_batch_to_its_end(store: Store) -> None:
    claimed = store.claim_watched("drop", CLIP)
    submitted = store.record_watched(claimed.id, WatchedState.SUBMITTED, batch_id=7)
    assert (submitted.state, submitted.batch_id) == (WatchedState.SUBMITTED, 7)
    done = store.record_watched(claimed.id, WatchedState.DONE)
    assert (done.state, done.batch_id, done.final) == (WatchedState.DONE, 7, True)
    assert store.watched_files("drop", [WatchedState.SUBMITTED]) == []


def test_records_refuse_what_the_table_does_not_allow(store: Store) -> None:
    claimed = store.claim_watched("drop", CLIP)
    with pytest.raises(InvalidRequest, match="must name its batch"):
        store.record_watched(claimed.id, WatchedState.SUBMITTED)
    store.record_watched(claimed.id, WatchedState.FAILED, error="its watcher stopped")
    with pytest.raises(IllegalTransition, match="cannot go from failed to done"):
        store.record_watched(claimed.id, WatchedState.DONE, batch_id=3)
    with pytest.raises(NotFound):
        store.record_watched(claimed.id + 100, WatchedState.DONE, batch_id=3)
