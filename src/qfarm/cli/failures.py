"""``qfarm failures``: what failed on the farm lately, grouped by error, node or job, as
the Batch Monitor's Failures view shows it, through the controller's API."""

from __future__ import annotations

import datetime
import time
from typing import Annotated, Any

import typer
from rich.table import Table

from qfarm.cli.app import app
from qfarm.cli.common import fail_usage, out, print_json
from qfarm.cli.options import Connection, JsonOpt, with_option_sets
from qfarm.domain.errors import InvalidRequest
from qfarm.domain.failures import GROUPINGS
from qfarm.domain.units import parse_duration


@app.command(
    "failures",
    epilog="**Examples**\n\n    qfarm failures\n\n    qfarm failures --since 7d --by node\n\n"
    "    qfarm failures --by job --json",
)
@with_option_sets
def failures(
    remote: Connection,
    since: Annotated[
        str,
        typer.Option("--since", metavar="AGE", help="Failures this recent: 90m, 12h, 7d."),
    ] = "1d",
    by: Annotated[
        str,
        typer.Option("--by", metavar="GROUPING", help="Group by error, node or job."),
    ] = "error",
    limit: Annotated[
        int,
        typer.Option("--limit", metavar="COUNT", help="Read at most this many attempts."),
    ] = 1000,
    as_json: JsonOpt = False,
) -> None:
    """The attempts that failed (an exit code, a timeout, a stall) or were lost lately, one
    row per cause: grouped by error (exit code and the log's last line), by node or by
    job, the largest group first. `qfarm logs BATCH --segment N` shows a log."""
    try:
        after = time.time() - parse_duration(since, "--since")
    except InvalidRequest as exc:
        raise fail_usage(str(exc)) from None
    if by not in GROUPINGS:
        raise fail_usage(f"--by {by}: give one of {', '.join(GROUPINGS)}")
    if limit < 1:
        raise fail_usage(f"--limit {limit} must be at least 1")
    found = remote.client().failures(since=after, by=by, limit=limit)
    if as_json:
        print_json(found)
        return
    out.print(_table(found))
    if found["truncated"]:
        out.print(f"(the newest {found['total']} attempts only: --limit reads more)")


def _table(found: dict[str, Any]) -> Table:
    table = Table(found["by"], "count", "nodes", "jobs", "batches", "newest")
    for group in found["groups"]:
        jobs = ", ".join(f"{j['batch_id']}/{j['name']}" for j in group["jobs"])
        newest = datetime.datetime.fromtimestamp(group["latest"]).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(
            group["title"],
            str(group["count"]),
            ", ".join(group["nodes"]),
            jobs,
            ", ".join(str(b) for b in group["batches"]),
            newest,
        )
    return table
