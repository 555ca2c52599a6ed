"""What the store takes and gives besides the model's objects: planned jobs to add, the
dispatcher's candidates, dispatches and reports, and the changes it made."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from qfarm.domain.messages import Thumbnail
from qfarm.domain.model import Segment, SegmentPlan
from qfarm.domain.requirements import NO_REQUIREMENTS, Requirements


@dataclass(frozen=True)
class TokenInfo:
    id: int
    name: str
    created_at: float
    last_used_at: float | None
    revoked_at: float | None
    scope: str = "client"  # what it opens (qfarm.security.tokens.SCOPES)


@dataclass(frozen=True)
class PlannedJob:
    """A job after its job type validated and planned it: what the store needs to hold it."""

    name: str
    job_type: str
    service: str
    spec: dict[str, Any]
    retries: int
    timeout: float | None
    depends_on: tuple[int, ...]  # indexes (0-based) of earlier jobs in the same batch
    plans: Sequence[SegmentPlan]
    requirements: Requirements = NO_REQUIREMENTS


@dataclass(frozen=True)
class Candidate:
    """A queued segment the dispatcher may hand to a node, with what it needs to do so."""

    segment_id: int
    job_id: int
    batch_id: int
    index: int
    service: str
    job_type: str
    job_spec: dict[str, Any]
    segment_spec: dict[str, Any]
    timeout: float | None
    attempts: int
    failed_nodes: tuple[str, ...]
    requirements: Requirements = NO_REQUIREMENTS
    owner: str = ""  # its batch's, and its priority: for fair share between owners
    priority: int = 0


@dataclass(frozen=True)
class Dispatch:
    segment_id: int
    node: str
    at: float
    log_path: str = ""


@dataclass(frozen=True)
class Started:
    segment_id: int
    attempt: int
    pid: int | None
    at: float


@dataclass(frozen=True)
class Progress:
    segment_id: int
    attempt: int
    fraction: float
    at: float


@dataclass(frozen=True)
class Result:
    """How an attempt ended, as the dispatcher reports it."""

    segment_id: int
    attempt: int
    ok: bool
    node: str
    exit_code: int | None = None
    error: str = ""
    canceled: bool = False  # killed on purpose: the segment is canceled, no retry
    lost: bool = False  # its node went away: requeued, not counted as an attempt
    started_at: float | None = None
    ended_at: float | None = None
    pid: int | None = None
    log_tail: str = ""
    log_path: str = ""
    # What the segment made, seen small and large (kept when the attempt counts as done).
    thumbnail: Thumbnail | None = None


@dataclass(frozen=True)
class Page:
    """A slice of a listing: ``limit`` rows (all, when None) after the first ``offset``."""

    offset: int = 0
    limit: int | None = None


ALL = Page()


@dataclass(frozen=True)
class Change:
    """A state change the store made, for event streams and progress displays."""

    kind: str  # batch, job, segment
    id: int
    state: str
    batch_id: int
    # The node a segment was dispatched to, on that change only: a monitor then shows
    # where each segment runs from the event alone, reading nothing.
    node: str | None = None


@dataclass(frozen=True)
class Canceled:
    """What a cancel did: the segments still running, which the dispatcher must kill, and
    the changes made at once (queued segments and unstarted jobs canceled; the batch, when
    nothing was running)."""

    active: list[Segment]
    changes: list[Change]
