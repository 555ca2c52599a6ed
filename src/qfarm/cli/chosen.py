"""``qfarm cancel`` and ``qfarm resubmit``: a whole batch, or with ``--segment`` only the
chosen segments of it (their numbers, as ``qfarm show`` and ``qfarm logs`` give them),
through POST /batches/{id}/segments/{cancel,resubmit}."""

from __future__ import annotations

from typing import Annotated

import typer

from qfarm.cli.app import app
from qfarm.cli.batches import move_batch
from qfarm.cli.common import fail_usage, out, print_json
from qfarm.cli.options import BatchArg, Connection, JsonOpt, with_option_sets
from qfarm.client import Client


def _segments_option(which: str) -> object:
    return typer.Option(
        "--segment",
        "-s",
        metavar="N",
        help=f"Only this {which} segment (its number, as qfarm show and qfarm logs give it); "
        "repeat for more.",
    )


CancelSegmentsOpt = Annotated[list[int] | None, _segments_option("unfinished")]
ResubmitSegmentsOpt = Annotated[list[int] | None, _segments_option("failed or canceled")]


def _chosen(client: Client, batch: int, numbers: list[int]) -> list[int]:
    """The ids of the batch's segments of these numbers (every job's, where several jobs
    have one); a number the batch lacks is a usage error."""
    wanted = set(numbers)
    found = [s for s in client.segments(batch) if s["index"] in wanted]
    missing = sorted(wanted - {s["index"] for s in found})
    if missing:
        raise fail_usage(f"batch {batch} has no segment {', '.join(map(str, missing))}")
    return [s["id"] for s in found]


def _on_chosen(
    remote: Connection, batch: int, numbers: list[int], verb: str, past: str, as_json: bool
) -> None:
    client = remote.client()
    ids = _chosen(client, batch, numbers)
    act = client.cancel_segments if verb == "cancel" else client.resubmit_segments
    status = act(batch, ids)
    if as_json:
        print_json(status.raw)
        return
    out.print(f"batch {batch}: {len(ids)} segment(s) {past} ({status.state})", highlight=False)


@app.command(
    epilog="""**Examples**

    qfarm cancel 12                      # queued work at once, running processes killed

    qfarm cancel 12 --segment 40 -s 41   # only segments 40 and 41; the rest runs on
"""
)
@with_option_sets
def cancel(
    batch: BatchArg,
    remote: Connection,
    segment: CancelSegmentsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a batch: queued work at once, running processes killed; or only the chosen
    segments, whose jobs then end canceled while the rest of the batch runs on."""
    if segment:
        _on_chosen(remote, batch, segment, "cancel", "canceled", as_json)
    else:
        move_batch(remote.client(), batch, "cancel", "canceled", as_json)


@app.command(
    epilog="""**Examples**

    qfarm resubmit 12                      # every failed or canceled segment

    qfarm resubmit 12 --segment 3 -s 7     # only segments 3 and 7
"""
)
@with_option_sets
def resubmit(
    batch: BatchArg,
    remote: Connection,
    segment: ResubmitSegmentsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a failed or canceled batch's unfinished segments again, or only the chosen ones
    (and only their jobs)."""
    if segment:
        _on_chosen(remote, batch, segment, "resubmit", "resubmitted", as_json)
    else:
        move_batch(remote.client(), batch, "resubmit", "resubmitted", as_json)
