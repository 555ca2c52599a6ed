"""``qfarm stats``: how busy the farm was lately, per service and per node, from the
controller's time series (GET /api/v1/stats), the figures the Batch Monitor's Stats view
draws."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from qfarm.cli.app import app
from qfarm.cli.common import fail_usage, out, print_json
from qfarm.cli.options import Connection, JsonOpt, with_option_sets
from qfarm.domain.errors import InvalidRequest
from qfarm.domain.stats import window_problem
from qfarm.domain.units import parse_duration


@app.command(
    "stats",
    epilog="**Examples**\n\n    qfarm stats\n\n    qfarm stats --window 24h --step 15m\n\n"
    "    qfarm stats --window 10m --step 10s --json",
)
@with_option_sets
def stats(
    remote: Connection,
    window: Annotated[
        str,
        typer.Option("--window", metavar="AGE", help="How far back: 10m, 1h, 24h, 7d."),
    ] = "1h",
    step: Annotated[
        str,
        typer.Option("--step", metavar="SPAN", help="Bucket size: 10s, 1m, 15m."),
    ] = "1m",
    as_json: JsonOpt = False,
) -> None:
    """Segments done and instances busy per service over the window (done in it, done
    per minute, average and peak busy), and each node's average busy instances and load.
    `--json` prints the whole time series, one value per bucket."""
    try:
        seconds = parse_duration(window, "--window")
        bucket = parse_duration(step, "--step")
    except InvalidRequest as exc:
        raise fail_usage(str(exc)) from None
    if (problem := window_problem(seconds, bucket)) is not None:
        raise fail_usage(f"--window {window} --step {step}: {problem}")
    found = remote.client().stats(window=seconds, step=bucket)
    if as_json:
        print_json(found)
        return
    out.print(service_table(found))
    out.print(node_table(found))


def service_table(found: dict[str, Any]) -> Table:
    minutes = max((found["as_of"] - found["start"]) / 60, 1 / 60)
    table = Table("service", "instances", "done", "done/min", "avg busy", "peak busy",
                  title=f"Services, the last {_span(found['as_of'] - found['start'])}")  # fmt: skip
    for s in found["services"]:
        table.add_row(
            s["service"],
            str(s["instances"]),
            str(s["total_done"]),
            f"{s['total_done'] / minutes:.2f}",
            f"{s['mean_busy']:.2f}",
            str(s["peak_busy"]),
        )
    return table


def node_table(found: dict[str, Any]) -> Table:
    table = Table("node", "state", "instances", "avg busy", "avg load", title="Nodes")
    passed = [min(found["step"], max(0.0, found["as_of"] - t)) for t in found["times"]]
    total = sum(passed) or 1.0
    for n in found["nodes"]:
        busy = sum(b * p for b, p in zip(n["busy"], passed, strict=True)) / total
        load = f"{busy / n['instances']:.0%}" if n["instances"] else "-"
        table.add_row(n["node"], n["state"] or "gone", str(n["instances"] or "-"),
                      f"{busy:.2f}", load)  # fmt: skip
    return table


def _span(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"
