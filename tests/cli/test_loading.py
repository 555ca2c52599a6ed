"""The collector paused while modules load: off inside, on again after (unless it was off
before), and what was made inside frozen, so later collections pass over it."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from qfarm.cli.loading import collector_paused


@pytest.fixture(autouse=True)
def collector_restored() -> Iterator[None]:
    was_on = gc.isenabled()
    yield
    gc.unfreeze()
    if was_on:
        gc.enable()


def test_the_collector_is_off_inside_and_on_after_with_what_was_made_frozen() -> None:
    gc.enable()
    gc.unfreeze()
    with collector_paused():
        assert not gc.isenabled()
        made = [[n] for n in range(1000)]  # lists: always tracked by the collector
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(made)
    collected = {id(obj) for generation in (0, 1, 2) for obj in gc.get_objects(generation)}
    assert gc.is_tracked(made[0]) and id(made[0]) not in collected


def test_an_inner_block_leaves_the_collector_to_the_outer_one() -> None:
    gc.enable()
    with collector_paused():
        with collector_paused():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()


def test_it_stays_off_after_when_it_was_off_before_and_on_after_an_error() -> None:
    gc.disable()
    with collector_paused():
        pass
    assert not gc.isenabled()
    gc.enable()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("an import failed")
    assert gc.isenabled()
