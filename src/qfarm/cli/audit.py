"""``qfarm audit``: who did what on the cluster, through the controller's API."""

from __future__ import annotations

import datetime
import time
from typing import Annotated

import typer
from rich.table import Table

from qfarm.cli.app import app
from qfarm.cli.common import fail_usage, out, print_json
from qfarm.cli.options import Connection, JsonOpt, with_option_sets
from qfarm.domain.errors import InvalidRequest
from qfarm.domain.units import parse_duration


@app.command(
    "audit",
    epilog="**Examples**\n\n    qfarm audit\n\n    qfarm audit --since 1d --action batch.cancel\n\n"
    "    qfarm audit --actor render-wrangler --json",
)
@with_option_sets
def audit(
    remote: Connection,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="AGE", help="Only actions this recent: 90m, 12h, 7d."),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option("--actor", metavar="NAME", help="Only this actor (a token's name)."),
    ] = None,
    action: Annotated[
        str | None,
        typer.Option(
            "--action", metavar="ACTION", help="Only this action (batch.cancel) or family (node)."
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option("--limit", metavar="COUNT", help="At most this many, newest first.")
    ] = 100,
    as_json: JsonOpt = False,
) -> None:
    """The audit log: every action taken on the cluster (submit, cancel, priority, node
    disable and revoke, token create and revoke, joins), with who took it, when, and its
    outcome (a 4xx outcome was refused). Newest first."""
    try:
        after = None if since is None else time.time() - parse_duration(since, "--since")
    except InvalidRequest as exc:
        raise fail_usage(str(exc)) from None
    if limit < 1:
        raise fail_usage(f"--limit {limit} must be at least 1")
    entries = remote.client().audit(since=after, actor=actor, action=action, limit=limit)
    if as_json:
        print_json(entries)
        return
    table = Table("time", "actor", "action", "target", "outcome")
    for entry in entries:
        when = datetime.datetime.fromtimestamp(entry["at"]).strftime("%Y-%m-%d %H:%M:%S")
        outcome = str(entry["outcome"])
        shown = f"[red]{outcome}[/red]" if entry["outcome"] >= 400 else outcome
        table.add_row(when, entry["actor"], entry["action"], entry["target"], shown)
    out.print(table)
