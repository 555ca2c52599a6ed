"""Adaptive chunking: the chunks of a step still to run, cut again from measured task times.

A TASK_CHUNKING step whose ``CHUNK[INT]`` parameter has ``targetRuntimeSeconds`` above zero
is planned with ``defaultTaskCount`` tasks per chunk (openjd-model's adaptive order: the chunk
parameter moves fastest). Once a chunk of the job is done the controller knows what a task
takes here, and the chunks nobody has tried yet are cut again so that each runs for about the
target: ``floor(target / seconds per task)`` tasks, at least one. The values of each
combination of the step's other parameters are regrouped in their order; a ``CONTIGUOUS``
chunk never spans a gap in them, a ``NONCONTIGUOUS`` one may. Nothing else of a segment
changes, so a session of the job on a node runs the new chunks as it ran the old ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from qfarm.domain.model import QueuedSegment, SegmentPlan
from qfarm.jobtypes.openjd.spec import label


def target_size(seconds_per_task: float, target_seconds: float) -> int:
    """Tasks per chunk so that a chunk runs for at most about ``target_seconds``."""
    if seconds_per_task <= 0:
        return 1 << 30  # tasks that take no time: one chunk per combination
    return max(1, int(target_seconds // seconds_per_task))


def recut(
    chunking: Mapping[str, Any],
    seconds_per_task: float,
    queued: Sequence[QueuedSegment],
    next_index: int,
) -> list[SegmentPlan] | None:
    """The segments to run in place of ``queued``, or None when they are cut as they
    should be already (or there is nothing to cut)."""
    from openjd.model import IntRangeExpr

    name = str(chunking["parameter"])
    size = target_size(seconds_per_task, float(chunking["target_runtime_seconds"]))
    contiguous = bool(chunking["contiguous"])
    # The other parameters' values -> (the chunk parameter as it was written, its values,
    # the lowest task index), in the order the segments were queued.
    groups: dict[str, tuple[dict[str, Any], list[int], int]] = {}
    others: dict[str, list[dict[str, Any]]] = {}
    old: list[tuple[str, tuple[int, ...]]] = []
    for seg in queued:
        params = list(seg.spec.get("parameters") or [])
        chunk = next((p for p in params if p["name"] == name), None)
        if chunk is None:
            return None  # not a chunk of this step: leave the job alone
        rest = [p for p in params if p["name"] != name]
        key = repr(sorted((p["name"], p["type"], str(p["value"])) for p in rest))
        values = list(IntRangeExpr.from_str(str(chunk["value"])))
        old.append((key, tuple(values)))
        if key not in groups:
            groups[key] = (chunk, [], int(seg.spec.get("task", 0)))
            others[key] = rest
        groups[key][1].extend(values)
    new: list[tuple[str, tuple[int, ...]]] = []
    for key, (_, values, _) in groups.items():
        new += [(key, tuple(piece)) for piece in _pieces(values, size, contiguous)]
    if new == old:
        return None
    plans: list[SegmentPlan] = []
    for number, (key, piece) in enumerate(new, start=next_index):
        chunk, _, task = groups[key]
        value = str(IntRangeExpr.from_list(list(piece)))
        parameters = sorted([*others[key], {**chunk, "value": value}], key=lambda p: p["name"])
        plans.append(
            SegmentPlan(
                index=number,
                spec={"segment": number, "task": task, "parameters": parameters},
                label=label(parameters),
                frames=len(piece),
            )
        )
    return plans


def _pieces(values: Sequence[int], size: int, contiguous: bool) -> list[list[int]]:
    """``values`` in order, cut into pieces of at most ``size``; with ``contiguous`` a piece
    also ends wherever the next value is not one more than the last."""
    pieces: list[list[int]] = []
    for value in values:
        if not pieces or len(pieces[-1]) >= size or (contiguous and value != pieces[-1][-1] + 1):
            pieces.append([])
        pieces[-1].append(value)
    return pieces
