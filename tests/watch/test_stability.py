"""When a file counts as stable: size and mtime unchanged for the settle time, from the
first sighting, never an empty file. Pure: times are given."""

from __future__ import annotations

from qfarm.watch.stability import Sighting, Stability, is_settled, observe


def test_a_file_is_stable_only_after_settle_seconds_unchanged() -> None:
    first = observe(None, 100, 1.0, now=10.0)
    assert first == Sighting(100, 1.0, 10.0)
    assert not is_settled(first, now=10.0, settle=2.0)
    again = observe(first, 100, 1.0, now=11.9)
    assert again is first and not is_settled(again, now=11.9, settle=2.0)
    assert is_settled(observe(again, 100, 1.0, now=12.0), now=12.0, settle=2.0)


def test_growth_or_a_new_mtime_starts_the_wait_again() -> None:
    seen = observe(None, 100, 1.0, now=0.0)
    grown = observe(seen, 200, 1.0, now=5.0)
    assert grown.since == 5.0 and not is_settled(grown, now=6.0, settle=2.0)
    touched = observe(grown, 200, 2.0, now=7.0)
    assert touched.since == 7.0 and is_settled(touched, now=9.0, settle=2.0)


def test_an_old_mtime_proves_nothing_a_copy_that_keeps_it_still_waits() -> None:
    # cp -p / rsync keep the source's mtime while the copy grows: only two sightings count.
    copied = observe(None, 4096, mtime=1.0, now=1_000_000.0)
    assert not is_settled(copied, now=1_000_000.0, settle=5.0)


def test_an_empty_file_waits_for_content() -> None:
    empty = observe(None, 0, 1.0, now=0.0)
    assert not is_settled(empty, now=100.0, settle=2.0)


def test_stability_tracks_files_by_name_and_forgets_gone_ones() -> None:
    tracked = Stability(settle=1.0)
    assert not tracked.see("a.mov", 10, 1.0, now=0.0)
    assert not tracked.see("b.mov", 0, 1.0, now=0.0)
    assert tracked.pending() == ["a.mov", "b.mov"]
    assert tracked.next_due() == 1.0  # the empty file is not due
    assert tracked.see("a.mov", 10, 1.0, now=1.0)
    tracked.keep_only({"a.mov"})
    assert tracked.pending() == ["a.mov"]
    tracked.forget("a.mov")
    assert tracked.pending() == [] and tracked.next_due() is None
