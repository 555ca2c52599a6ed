"""The progress bar of a batch (a run's whole bar is tested in test_main.py)."""

from __future__ import annotations

from typing import Any

import pytest


def counts(**given: int) -> Any:
    from qfarm.domain.model import BatchCounts

    states = ("queued", "dispatched", "running", "done", "failed", "canceled")
    return BatchCounts(total=given.pop("total"), **{s: given.pop(s, 0) for s in states})


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ({"total": 4, "queued": 4}, "0 done of 4 segments"),
        ({"total": 4, "done": 1, "running": 1, "dispatched": 1}, "1 done · 2 running of 4"),
        ({"total": 4, "done": 2, "failed": 1, "canceled": 1}, "2 done · 1 failed · 1 canceled"),
        ({"total": 4, "canceled": 4}, "0 done · 4 canceled of 4 segments"),
    ],
)
def test_the_progress_bar_shows_done_failed_and_canceled_apart(
    given: dict[str, int], shown: str
) -> None:
    from qfarm.cli.progress import segments_text

    assert shown in segments_text(counts(**given)).plain
