"""What a notification tells of a batch's end, gathered once from the store: the batch, its
outcome and counts, its failed segments with their errors and log tails, and the Batch
Monitor's link to it. A webhook sends it as JSON (:func:`webhook_body`), an email as text
(:func:`email_subject`, :func:`email_text`); both read this one record, so they never
disagree.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass

from qfarm.domain.model import BatchCounts, SegmentState
from qfarm.domain.notify import NotifyEvent
from qfarm.domain.units import duration
from qfarm.store import Store

# A message names this many failed segments at most (and says how many more there are):
# a batch of 5,000 failed frames is not 5,000 log tails in an inbox.
FAILED_SHOWN = 10
# The end of each failed segment's log, as much as a message carries of it.
TAIL_LINES = 30
TAIL_CHARS = 4000


@dataclass(frozen=True)
class FailedSegment:
    """A segment that failed for good, as its last attempt left it."""

    job: str
    index: int
    label: str
    node: str
    error: str
    log_tail: str


@dataclass(frozen=True)
class BatchReport:
    """A batch's end as notifications tell it."""

    id: int
    name: str
    owner: str
    state: str  # the batch's state now (a resubmit may have moved it on since)
    event: NotifyEvent  # the end told
    submitted_at: float
    started_at: float | None
    finished_at: float | None
    counts: BatchCounts
    failed: tuple[FailedSegment, ...]
    failed_not_shown: int  # failed segments past FAILED_SHOWN
    link: str  # the batch in the Batch Monitor; "" when the controller's URL is unknown


def monitor_link(monitor_url: str, batch_id: int) -> str:
    """The Batch Monitor's page of a batch (its hash route ``#/batch/ID``)."""
    return f"{monitor_url.rstrip('/')}/#/batch/{batch_id}" if monitor_url else ""


def _tail(text: str) -> str:
    lines = text.rstrip("\n").splitlines()[-TAIL_LINES:]
    return "\n".join(lines)[-TAIL_CHARS:]


def gather(store: Store, batch_id: int, event: NotifyEvent, monitor_url: str) -> BatchReport:
    """The report of a batch's end (NotFound for a batch removed meanwhile)."""
    batch = store.batch(batch_id)
    job_names = {job.id: job.name for job in store.jobs(batch_id)}
    failed_segments = store.segments(batch_id, [SegmentState.FAILED])
    shown: list[FailedSegment] = []
    for segment in failed_segments[:FAILED_SHOWN]:
        tried = store.attempts(segment.id)
        last = tried[-1] if tried else None
        shown.append(
            FailedSegment(
                job=job_names.get(segment.job_id, str(segment.job_id)),
                index=segment.index,
                label=segment.label,
                node=(last.node if last else segment.node) or "",
                error=segment.error or (last.error if last else ""),
                log_tail=_tail(last.log_tail) if last else "",
            )
        )
    return BatchReport(
        id=batch.id,
        name=batch.name,
        owner=batch.owner,
        state=batch.state.value,
        event=event,
        submitted_at=batch.submitted_at,
        started_at=batch.started_at,
        finished_at=batch.finished_at,
        counts=store.counts(batch_id),
        failed=tuple(shown),
        failed_not_shown=max(0, len(failed_segments) - FAILED_SHOWN),
        link=monitor_link(monitor_url, batch_id),
    )


# ---------------------------------------------------------------------- webhooks


def webhook_body(report: BatchReport, delivery_id: int, sent_at: float) -> bytes:
    """The JSON a webhook receives: the exact bytes that are signed and sent."""
    counts = report.counts
    body = {
        "event": f"batch.{report.event.value}",
        "delivery": delivery_id,
        "sent_at": sent_at,
        "batch": {
            "id": report.id,
            "name": report.name,
            "owner": report.owner,
            "state": report.state,
            "outcome": report.event.value,
            "submitted_at": report.submitted_at,
            "started_at": report.started_at,
            "finished_at": report.finished_at,
            "segments": {
                "total": counts.total,
                "done": counts.done,
                "failed": counts.failed,
                "canceled": counts.canceled,
            },
            "failed_segments": [
                {
                    "job": f.job,
                    "segment": f.index,
                    "label": f.label,
                    "node": f.node,
                    "error": f.error,
                    "log_tail": f.log_tail,
                }
                for f in report.failed
            ],
            "failed_segments_not_shown": report.failed_not_shown,
            "link": report.link or None,
        },
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


# ------------------------------------------------------------------------- email


def _title(report: BatchReport) -> str:
    return f"batch {report.id}" + (f" ({report.name})" if report.name else "")


def email_subject(report: BatchReport) -> str:
    return f"qfarm: {_title(report)} {report.event.value}"


def _when(epoch: float | None) -> str:
    if epoch is None:
        return "-"
    return datetime.datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%d %H:%M:%S %Z")


def email_text(report: BatchReport) -> str:
    """The message's plain-text body: what ended how, its counts, each failed segment
    with its error and the end of its log, and where to see it."""
    counts = report.counts
    took = (
        duration(report.finished_at - report.started_at)
        if report.finished_at is not None and report.started_at is not None
        else "-"
    )
    lines = [
        f"{_title(report).capitalize()} {report.event.value}.",
        "",
        f"Owner:     {report.owner or '-'}",
        f"Submitted: {_when(report.submitted_at)}",
        f"Ended:     {_when(report.finished_at)} (ran {took})",
        f"Segments:  {counts.done} done, {counts.failed} failed, {counts.canceled} canceled "
        f"of {counts.total}",
    ]
    if report.link:
        lines.append(f"Monitor:   {report.link}")
    if report.failed:
        lines += ["", "Failed segments:"]
        for f in report.failed:
            where = f" on {f.node}" if f.node else ""
            lines.append("")
            lines.append(f"* {f.job}, segment {f.index} ({f.label}){where}: {f.error or 'failed'}")
            if f.log_tail:
                lines += ["  end of its log:", *(f"  | {line}" for line in f.log_tail.splitlines())]
        if report.failed_not_shown:
            lines += ["", f"... and {report.failed_not_shown} more failed segment(s)."]
    lines += ["", "-- ", "qfarm"]
    return "\n".join(lines) + "\n"
