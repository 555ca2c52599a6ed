"""The report of an ended batch: one shape whether the store or the API tells it."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from qfarm.cli.report import failed_segment
from qfarm.domain.model import Attempt, AttemptOutcome, Segment, SegmentKind, SegmentState


def test_a_failed_segment_reads_the_same_from_the_store_and_from_the_api() -> None:
    seg = Segment(
        id=7,
        job_id=1,
        batch_id=1,
        index=3,
        kind=SegmentKind.WORK,
        state=SegmentState.FAILED,
        label="frames 3-3",
        spec={},
        frames=1,
        attempts=2,
        node="node-1",
        error="exit 1",
    )
    attempts = [
        Attempt(
            segment_id=7,
            number=n,
            node=f"node-{n}",
            dispatched_at=1.0,
            exit_code=1,
            outcome=AttemptOutcome.FAILED,
            log_tail=f"try {n}",
            log_path=f"/l/{n}",
        )
        for n in (1, 2)
    ]
    stored = failed_segment(dataclasses.asdict(seg), [dataclasses.asdict(a) for a in attempts])

    def over_http(record: Any) -> dict[str, Any]:
        """The record as the API sends it: JSON, enums as their values."""
        loaded: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(record), default=str))
        return loaded

    served = failed_segment(over_http(seg), [over_http(a) for a in attempts])
    assert (
        stored
        == served
        == {
            "segment": 3,
            "label": "frames 3-3",
            "node": "node-2",
            "attempts": 2,
            "exit_code": 1,
            "error": "exit 1",
            "log_tail": "try 2",
            "log_path": "/l/2",
        }
    )


def test_a_segment_that_never_ran_is_reported_where_it_was_placed() -> None:
    seg = {"index": 1, "label": "clip.mov", "node": None, "error": "canceled"}
    assert failed_segment(seg, []) == {
        "segment": 1,
        "label": "clip.mov",
        "node": None,
        "attempts": 0,
        "exit_code": None,
        "error": "canceled",
        "log_tail": "",
        "log_path": "",
    }
