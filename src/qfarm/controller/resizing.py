"""Cutting a job's untried segments again once some of its segments are done (OpenJD's
adaptive chunking): the job type decides the new cut (:class:`ResizesSegments`), the store
swaps the segments in one transaction, and this part asks after each segment done."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from qfarm import jobtypes
from qfarm.domain.errors import NotFound
from qfarm.jobtypes.base import ResizesSegments
from qfarm.store import Change, Store

log = logging.getLogger(__name__)


class Resizer:
    """Asks a job's type to cut its untried segments again after segments of it are done.

    Whether a job resizes at all is read once per job and kept, so a farm of jobs that never
    do costs one dict lookup per result.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._jobs: dict[int, tuple[ResizesSegments, dict[str, Any]] | None] = {}

    def after_done(self, done: Iterable[tuple[int, str]]) -> list[Change]:
        """``done``: (job id, job type) of segments done this tick."""
        changes: list[Change] = []
        for job_id, job_type in sorted(set(done)):
            entry = self._job(job_id, job_type)
            if entry is None:
                continue
            kind, spec = entry
            facts = self.store.resize_facts(job_id)
            if facts.seconds_per_task is None or not facts.queued:
                continue
            plans = kind.resize(spec, facts.seconds_per_task, facts.queued, facts.next_index)
            if not plans:
                continue
            made = self.store.replace_segments(job_id, [q.id for q in facts.queued], plans)
            if made:
                log.info(
                    "job %d: %d untried segments cut again into %d (%.2f s per task)",
                    job_id, len(facts.queued), len(plans), facts.seconds_per_task,
                )  # fmt: skip
            changes += made
        return changes

    def forget(self, job_id: int) -> None:
        """The job ended: nothing of it is cut again."""
        self._jobs.pop(job_id, None)

    def _job(self, job_id: int, job_type: str) -> tuple[ResizesSegments, dict[str, Any]] | None:
        if job_id not in self._jobs:
            kind = jobtypes.get(job_type)
            entry = None
            if isinstance(kind, ResizesSegments):
                try:
                    spec = self.store.job(job_id).spec
                except NotFound:
                    spec = {}
                entry = (kind, spec) if kind.resizes(spec) else None
            self._jobs[job_id] = entry
        return self._jobs[job_id]
