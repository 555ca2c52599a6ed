"""Helpers of the store tests: submitting, dispatching and reporting the way the dispatcher
does."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qfarm.controller.planning import plan_batch
from qfarm.domain.model import (
    BatchRequest,
    JobRequest,
    JobState,
    SegmentState,
)
from qfarm.store import (
    Candidate,
    Change,
    Result,
    Store,
)


def command_job(
    cwd: Path,
    *,
    name: str = "",
    frames: str = "1-6",
    segment_size: int = 2,
    retries: int = 1,
    depends_on: tuple[str, ...] = (),
) -> JobRequest:
    """A command job of ``frames`` cut into segments of ``segment_size`` (three by default)."""
    return JobRequest(
        "command",
        {"command": ["true"], "frames": frames, "segment_size": segment_size, "cwd": str(cwd)},
        name=name,
        retries=retries,
        depends_on=depends_on,
    )


def submit(store: Store, *jobs: JobRequest, **batch: Any) -> int:
    request = BatchRequest(jobs=tuple(jobs), **batch)
    return store.add_batch(request, plan_batch(request))


def dispatch(
    store: Store,
    n: int = 100,
    *,
    now: float | None = None,
    batch_ids: list[int] | None = None,
    choose: Callable[[Candidate], str | None] = lambda cand: "node-a",
) -> tuple[list[tuple[Candidate, str]], list[Change]]:
    return store.dispatch(
        free={"command": n},
        now=time.time() if now is None else now,
        batch_ids=batch_ids,
        choose=choose,
    )


def picked_ids(picked: list[tuple[Candidate, str]]) -> list[int]:
    return [cand.segment_id for cand, _node in picked]


def done(segment_id: int, attempt: int = 1, node: str = "node-a") -> Result:
    return Result(segment_id, attempt, ok=True, node=node, exit_code=0)


def failed(segment_id: int, attempt: int = 1, node: str = "node-a") -> Result:
    return Result(segment_id, attempt, ok=False, node=node, exit_code=1, error="exit code 1")


def segment_states(store: Store, batch_id: int) -> list[SegmentState]:
    return [s.state for s in store.segments(batch_id)]


def job_states(store: Store, batch_id: int) -> list[JobState]:
    return [j.state for j in store.jobs(batch_id)]


def finish_all(store: Store, batch_id: int, node: str = "node-a") -> None:
    """Dispatch and complete every segment of a batch that can run now."""
    picked, _ = dispatch(store, batch_ids=[batch_id], choose=lambda cand: node)
    store.record_reports(results=[done(c.segment_id, c.attempts + 1, node) for c, _ in picked])
