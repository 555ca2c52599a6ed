"""Adaptive chunking's cut: the untried chunks of a step regrouped by measured task time
(pure logic, openjd-model's range expressions)."""

from __future__ import annotations

from typing import Any

from qfarm.domain.model import QueuedSegment
from qfarm.jobtypes.openjd import OPENJD
from qfarm.jobtypes.openjd.chunks import recut, target_size

CONTIGUOUS = {"parameter": "Frame", "contiguous": True, "target_runtime_seconds": 10}


def chunk(index: int, value: str, frames: int, **others: str) -> QueuedSegment:
    params: list[dict[str, Any]] = [{"name": "Frame", "type": "CHUNK[INT]", "value": value}]
    params += [{"name": k, "type": "STRING", "value": v} for k, v in others.items()]
    spec = {
        "segment": index,
        "task": index - 1,
        "parameters": sorted(params, key=lambda p: p["name"]),
    }
    return QueuedSegment(id=100 + index, index=index, spec=spec, frames=frames)


def values(plans: list[Any]) -> list[str]:
    return [p.label for p in plans]


def test_target_size_is_the_tasks_that_fit_in_the_target() -> None:
    assert target_size(2.0, 10) == 5
    assert target_size(3.0, 10) == 3  # never over the target
    assert target_size(30.0, 10) == 1  # a task longer than the target: one at a time
    assert target_size(0.0, 10) > 1_000_000


def test_one_task_chunks_are_merged_and_numbered_from_the_next_index() -> None:
    queued = [chunk(i, str(i), 1) for i in range(3, 11)]  # frames 3..10
    plans = recut(CONTIGUOUS, 2.0, queued, next_index=11)
    assert plans is not None
    assert values(plans) == ["Frame=3-7", "Frame=8-10"]
    assert [p.index for p in plans] == [11, 12]
    assert [p.spec["segment"] for p in plans] == [11, 12]
    assert [p.frames for p in plans] == [5, 3]


def test_slow_tasks_split_big_chunks() -> None:
    queued = [chunk(2, "11-20", 10), chunk(3, "21-25", 5)]
    plans = recut(CONTIGUOUS, 4.0, queued, next_index=4)  # 2 tasks per chunk
    assert plans is not None
    assert values(plans) == [
        "Frame=11,12",
        "Frame=13,14",
        "Frame=15,16",
        "Frame=17,18",
        "Frame=19,20",
        "Frame=21,22",
        "Frame=23,24",
        "Frame=25",
    ]  # fmt: skip (two values are written as openjd-model writes its own chunks: 11,12)


def test_contiguous_chunks_never_span_a_gap_and_noncontiguous_ones_may() -> None:
    queued = [chunk(1, "1,2", 2), chunk(2, "5,6", 2)]  # 3 and 4 ran already
    assert recut(CONTIGUOUS, 1.0, queued, 3) is None  # the gap keeps them apart
    loose = {**CONTIGUOUS, "contiguous": False}
    assert values(recut(loose, 1.0, queued, 3) or []) == ["Frame=1,2,5,6"]


def test_each_combination_of_the_other_parameters_keeps_its_own_chunks() -> None:
    queued = [
        chunk(1, "1", 1, Eye="left"), chunk(2, "2", 1, Eye="left"),
        chunk(3, "1", 1, Eye="right"), chunk(4, "2", 1, Eye="right"),
    ]  # fmt: skip
    plans = recut(CONTIGUOUS, 1.0, queued, 5)
    assert plans is not None
    assert values(plans) == ["Eye=left Frame=1,2", "Eye=right Frame=1,2"]
    assert plans[1].spec["parameters"] == [
        {"name": "Eye", "type": "STRING", "value": "right"},
        {"name": "Frame", "type": "CHUNK[INT]", "value": "1,2"},
    ]


def test_a_cut_that_changes_nothing_is_none() -> None:
    queued = [chunk(1, "1-5", 5), chunk(2, "6-10", 5)]
    assert recut(CONTIGUOUS, 2.0, queued, 3) is None


def test_the_job_type_resizes_only_adaptive_specs() -> None:
    assert OPENJD.resizes({"chunking": CONTIGUOUS})
    assert not OPENJD.resizes({"chunking": None})
    assert OPENJD.resize({"chunking": None}, 1.0, [chunk(1, "1", 1)], 2) is None
