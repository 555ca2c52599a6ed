"""What an ended batch looks like, for people and for --json: from the store, at the end of
``qfarm run``, and from a controller's API, when ``qfarm wait`` sees a batch fail. Both make
the same report, so a failure reads the same whichever command saw it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from qfarm.cli.common import err
from qfarm.domain.model import SegmentState
from qfarm.domain.units import duration

if TYPE_CHECKING:
    from qfarm.client import BatchStatus, Client


def failed_segment(
    segment: Mapping[str, Any], attempts: Sequence[Mapping[str, Any]]
) -> dict[str, Any]:
    """A failed segment's entry in a report: where it failed, after how many attempts, and
    the end of its last attempt's log. ``segment`` and ``attempts`` are as the API gives
    them, the store's records as dicts (:func:`dataclasses.asdict`)."""
    last = attempts[-1] if attempts else {}
    return {
        "segment": segment["index"],
        "label": segment["label"],
        "node": last.get("node") or segment["node"],
        "attempts": len(attempts),
        "exit_code": last.get("exit_code"),
        "error": segment["error"],
        "log_tail": last.get("log_tail") or "",
        "log_path": last.get("log_path") or "",
    }


def batch_report(store: Any, batch_id: int, elapsed: float) -> dict[str, Any]:
    """A finished batch of ``store``, as ``qfarm run`` reports it."""
    batch = store.batch(batch_id)
    counts = store.counts(batch_id)
    segments = store.segments(batch_id)
    failed = [
        failed_segment(
            dataclasses.asdict(seg), [dataclasses.asdict(a) for a in store.attempts(seg.id)]
        )
        for seg in segments
        if seg.state is SegmentState.FAILED
    ]
    nodes = sorted({seg.node for seg in segments if seg.node})
    from qfarm.jobtypes import job_summary  # the job types are loaded by then

    jobs = [
        {"name": job.name or job.job_type, "summary": job_summary(job.job_type, job.spec)}
        for job in store.jobs(batch_id)
    ]
    return {
        "batch": batch.id,
        "name": batch.name,
        "state": batch.state.value,
        "jobs": jobs,
        "segments": {
            "total": counts.total,
            "done": counts.done,
            "failed": counts.failed,
            "canceled": counts.canceled,
        },
        "nodes": nodes,
        "elapsed": round(elapsed, 3),
        "failed": failed,
    }


def api_report(client: Client, status: BatchStatus) -> dict[str, Any]:
    """An ended batch as the controller's API tells it, in the shape of :func:`batch_report`,
    so ``qfarm wait`` shows a failure as ``qfarm run`` does."""
    raw = status.raw
    segments = client.segments(status.id)
    failed = [
        failed_segment(seg, client.attempts(status.id, seg["id"]))
        for seg in segments
        if seg["state"] == "failed"
    ]
    started, finished = raw.get("started_at"), raw.get("finished_at")
    return {
        "batch": status.id,
        "name": status.name,
        "state": status.state,
        "jobs": [
            {"name": job["name"] or job["type"], "summary": job.get("summary") or []}
            for job in raw.get("jobs", [])
        ],
        "segments": {k: status.segments[k] for k in ("total", "done", "failed", "canceled")},
        "nodes": sorted({seg["node"] for seg in segments if seg["node"]}),
        "elapsed": round(finished - started, 3) if started and finished else 0.0,
        "failed": failed,
    }


def print_report(report: dict[str, Any]) -> None:
    """The report on stderr: a table, each job's summary, then each failed segment."""
    colour = {"done": "green", "failed": "red", "canceled": "yellow"}.get(report["state"], "")
    seg = report["segments"]
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_row("batch", f"{report['batch']} {report['name']}")
    table.add_row("state", Text(report["state"], style=f"bold {colour}"))
    table.add_row(
        "segments",
        f"{seg['done']} done, {seg['failed']} failed, {seg['canceled']} canceled of {seg['total']}",
    )
    table.add_row("nodes", ", ".join(report["nodes"]) or "-")
    table.add_row("elapsed", duration(report["elapsed"]))
    err.print(table)
    print_summaries(report.get("jobs", []), err)
    for f in report["failed"]:
        err.print(
            f"segment {f['segment']} ({f['label']}) failed on {f['node']} after "
            f"{f['attempts']} attempt(s): {f['error']}",
            style="red",
            highlight=False,
            soft_wrap=True,
        )
        if f["log_tail"]:
            for line in f["log_tail"].splitlines():
                err.print(f"    {line}", highlight=False, markup=False, soft_wrap=True)
        if f["log_path"]:
            err.print(f"    log: {f['log_path']}", highlight=False, soft_wrap=True)


def print_summaries(jobs: list[dict[str, Any]], console: Console) -> None:
    """Each job's summary lines, each prefixed by the job's name."""
    for job in jobs:
        for line in job.get("summary") or []:
            console.print(f"{job['name']}: {line}", highlight=False, soft_wrap=True)
