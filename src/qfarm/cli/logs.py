"""``qfarm logs``: what segments printed, through the controller's API (the log files
themselves where this machine can read them; ``-o FILE`` saves one through the API)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer

from qfarm.cli.app import app
from qfarm.cli.common import FLAG, err, fail_usage, out
from qfarm.cli.options import BatchArg, Connection, with_option_sets
from qfarm.client import Client
from qfarm.domain.errors import NotFound
from qfarm.domain.units import size

EXAMPLES = (
    "**Examples**\n\n    qfarm logs 12\n\n    qfarm logs 12 --segment 3\n\n"
    "    qfarm logs 12 --segment 3 --attempt 1 -o render.log"
)


@app.command(epilog=EXAMPLES)
@with_option_sets
def logs(
    *,
    batch: BatchArg,
    segment: Annotated[
        int | None,
        typer.Option("--segment", "-s", metavar="N", help="Only this segment (its number)."),
    ] = None,
    attempt: Annotated[
        int | None,
        typer.Option(
            "--attempt",
            "-a",
            metavar="K",
            help="That attempt of the --segment (1 is its first), not its last.",
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Save the --segment's log to FILE, whole, through the controller "
            "(from any machine), instead of printing it.",
        ),
    ] = None,
    follow: Annotated[
        bool,
        typer.Option(
            "--follow",
            "-f",
            metavar=FLAG,
            help="Keep printing every attempt's output until the batch ends.",
        ),
    ] = False,
    remote: Connection,
) -> None:
    """Print the log of each segment's last attempt: the whole file where this machine can
    read it (shared storage, or the controller's machine), else the tail the controller keeps.
    """
    if (attempt is not None or output is not None) and segment is None:
        raise fail_usage("--attempt and --output need --segment: they name one segment's log")
    if follow and (attempt is not None or output is not None):
        raise fail_usage("--follow follows every attempt; --attempt and --output take one log")
    client = remote.client()
    segments = client.segments(batch)
    if segment is not None:
        segments = [s for s in segments if s["index"] == segment]
        if not segments:
            raise NotFound(f"batch {batch} has no segment {segment}")
    if follow:
        _follow_logs(client, batch, {s["id"]: s for s in segments})
        return
    for seg in segments:
        attempts = client.attempts(batch, seg["id"])
        if attempt is not None:
            attempts = [a for a in attempts if a["number"] == attempt]
            if not attempts:
                raise NotFound(f"segment {segment} of batch {batch} has no attempt {attempt}")
        if not attempts and output is not None:
            raise NotFound(f"segment {segment} of batch {batch} has not run yet: no log to save")
        if not attempts:
            continue
        chosen = attempts[-1]
        if output is not None:
            client.download_log(batch, seg["id"], chosen["number"], output)
            err.print(f"saved {output} ({size(output.stat().st_size)})", highlight=False)
            return
        out.print(
            f"== segment {seg['index']} ({seg['label']}) attempt {chosen['number']} "
            f"on {chosen['node']}: {chosen['outcome'] or seg['state']}",
            style="bold",
            highlight=False,
        )
        path = Path(chosen["log_path"]) if chosen["log_path"] else None
        if path is not None and path.is_file():
            out.print(path.read_text(errors="replace"), end="", markup=False, highlight=False)
        elif chosen["log_tail"]:
            out.print(chosen["log_tail"], markup=False, highlight=False)


def _follow_logs(client: Client, batch: int, segments: dict[int, dict[str, Any]]) -> None:
    """Every attempt's output as it is written, each line prefixed with its segment's number;
    where a log file cannot be read from here, its tail when the attempt ends.
    """
    offsets: dict[tuple[int, int], int] = {}
    finished: set[tuple[int, int]] = set()
    while True:
        ended = client.batch(batch).finished  # read before the logs: nothing is missed
        for segment_id, seg in segments.items():
            for attempt in client.attempts(batch, segment_id):
                key = (segment_id, attempt["number"])
                if key in finished:
                    continue
                prefix = f"{seg['index']:>4} | "
                path = Path(attempt["log_path"]) if attempt["log_path"] else None
                readable = path is not None and path.is_file()
                if readable and path is not None:
                    with open(path, "rb") as fh:
                        fh.seek(offsets.get(key, 0))
                        data = fh.read()
                    offsets[key] = offsets.get(key, 0) + len(data)
                    for line in data.decode(errors="replace").splitlines():
                        out.print(prefix + line, highlight=False)
                if attempt["ended_at"] is not None:
                    if not readable and attempt["log_tail"]:
                        for line in attempt["log_tail"].splitlines():
                            out.print(prefix + line, highlight=False)
                    out.print(
                        f"{prefix}== attempt {attempt['number']} on {attempt['node']}: "
                        f"{attempt['outcome']}",
                        style="bold",
                        highlight=False,
                    )
                    finished.add(key)
        if ended:
            return
        time.sleep(0.5)
