"""Failures at a glance: the failed and lost attempts of many batches, grouped so that one
cause shows as one row (the Batch Monitor's Failures view, ``qfarm failures``).

A farm that fails fails in few ways at once: a missing plugin on one node, a full disk, a
scene that crashes the renderer. Grouped by error (the exit code and the log's last
non-empty line, which is where programs say what went wrong), by node and by job, the
hundred red cells of a bad night read as three causes. Pure: the store reads the attempts,
this module only sorts them into groups.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final, Literal

from qfarm.domain.actions import RESUBMIT, actions_for
from qfarm.domain.model import AttemptOutcome, BatchState

# Attempts that ended without their work done and were not stopped on purpose: a failure
# (an exit code, a timeout, a stall: all stored as failed, the error saying which) or a
# lost node. Canceled attempts were killed by someone, and are no failure.
FAILURE_OUTCOMES: Final = frozenset({AttemptOutcome.FAILED, AttemptOutcome.LOST})

Grouping = Literal["error", "node", "job"]
GROUPINGS: Final[tuple[Grouping, ...]] = ("error", "node", "job")

# A log line longer than this is cut in the signature: two lines that differ only past it
# (a long path, a dump) are one error for the eye anyway.
LINE_CHARS: Final = 300


@dataclass(frozen=True)
class FailedAttempt:
    """One failed or lost attempt, with what the Failures view shows and links to."""

    batch_id: int
    batch_name: str
    batch_state: BatchState
    job_id: int
    job_name: str
    segment_id: int
    segment_index: int
    segment_label: str
    number: int  # the attempt's number: with batch and segment, the address of its log
    node: str
    outcome: AttemptOutcome
    ended_at: float  # or when it was dispatched, for an attempt with no end recorded
    exit_code: int | None
    error: str
    log_tail: str

    @property
    def last_line(self) -> str:
        """The log's last non-empty line, or the attempt's error where the log says
        nothing (a lost node sends no log)."""
        return last_line(self.log_tail) or last_line(self.error)


@dataclass(frozen=True)
class JobRef:
    id: int
    batch_id: int
    name: str


@dataclass(frozen=True)
class FailureGroup:
    """The attempts that share one error, node or job."""

    by: Grouping
    key: str  # stable across reads, for the page to keep a group open
    title: str  # what the row says: "exit 3: disk full", "node-2", "batch 4 / frames"
    exit_code: int | None  # error groups only
    line: str  # error groups only: the last log line they share
    node: str  # node groups only
    count: int
    nodes: tuple[str, ...]  # most attempts first
    jobs: tuple[JobRef, ...]
    batches: tuple[int, ...]
    segments: tuple[int, ...]
    latest: float
    # The batches of the group that a resubmit would rerun now (failed or canceled ones):
    # "retry all of these" resubmits exactly these.
    retryable: tuple[int, ...]
    attempts: tuple[FailedAttempt, ...]  # newest first


def last_line(text: str) -> str:
    """The last line of ``text`` that is not blank, stripped and cut to LINE_CHARS."""
    for line in reversed(text.splitlines()):
        if line.strip():
            return line.strip()[:LINE_CHARS]
    return ""


def error_title(exit_code: int | None, line: str) -> str:
    code = "no exit code" if exit_code is None else f"exit {exit_code}"
    return f"{code}: {line}" if line else code


def _error_key(attempt: FailedAttempt) -> str:
    return f"{attempt.exit_code}|{attempt.last_line}"


def _job_key(attempt: FailedAttempt) -> str:
    return str(attempt.job_id)


def _node_key(attempt: FailedAttempt) -> str:
    return attempt.node


KEYS: Final[dict[Grouping, Callable[[FailedAttempt], str]]] = {
    "error": _error_key,
    "node": _node_key,
    "job": _job_key,
}


def group_failures(attempts: Iterable[FailedAttempt], by: Grouping) -> list[FailureGroup]:
    """The attempts grouped ``by`` error, node or job: the group with the most attempts
    first, and of equal ones the most recent first. Each group's attempts newest first."""
    key_of = KEYS[by]
    members: dict[str, list[FailedAttempt]] = {}
    for attempt in attempts:
        members.setdefault(key_of(attempt), []).append(attempt)
    groups = [_group(by, key, found) for key, found in members.items()]
    groups.sort(key=lambda g: (-g.count, -g.latest, g.key))
    return groups


def _group(by: Grouping, key: str, found: list[FailedAttempt]) -> FailureGroup:
    ordered = sorted(found, key=lambda a: (-a.ended_at, a.segment_id, -a.number))
    first = ordered[0]
    node_counts: dict[str, int] = {}
    for attempt in ordered:
        node_counts[attempt.node] = node_counts.get(attempt.node, 0) + 1
    nodes = tuple(sorted(node_counts, key=lambda n: (-node_counts[n], n)))
    jobs = {a.job_id: JobRef(a.job_id, a.batch_id, a.job_name) for a in ordered}
    states = {a.batch_id: a.batch_state for a in ordered}
    if by == "error":
        title = error_title(first.exit_code, first.last_line)
    elif by == "node":
        title = first.node
    else:
        title = f"batch {first.batch_id} / {first.job_name}"
    return FailureGroup(
        by=by,
        key=key,
        title=title,
        exit_code=first.exit_code if by == "error" else None,
        line=first.last_line if by == "error" else "",
        node=first.node if by == "node" else "",
        count=len(ordered),
        nodes=nodes,
        jobs=tuple(sorted(jobs.values(), key=lambda j: j.id)),
        batches=tuple(sorted(states)),
        segments=tuple(sorted({a.segment_id for a in ordered})),
        latest=first.ended_at,
        retryable=tuple(sorted(b for b, s in states.items() if RESUBMIT in actions_for(s))),
        attempts=tuple(ordered),
    )
