"""Farm-wide limits (``qfarm limit``): named counts, such as render licenses, that jobs hold
one of per running segment. Through the controller's API, like every batch command."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from qfarm.cli.app import app
from qfarm.cli.common import out, print_json
from qfarm.cli.options import Connection, JsonOpt, with_option_sets

limit_app = typer.Typer(
    help="Farm-wide limits, e.g. render licenses: a job run with --limit NAME never has more "
    "segments running at once than the limit's count, whatever nodes are free.",
    epilog="**Examples**\n\n    qfarm limit set nuke 4\n\n"
    "    qfarm submit --limit nuke -- nuke -x comp.nk {start}-{end}\n\n    qfarm limit list",
    no_args_is_help=True,
)
app.add_typer(limit_app, name="limit")

NameArg = Annotated[str, typer.Argument(metavar="NAME", help="The limit: letters, digits, _.")]


@limit_app.command("set", epilog="**Example**\n\n    qfarm limit set nuke 4")
@with_option_sets
def limit_set(
    name: NameArg,
    count: Annotated[int, typer.Argument(metavar="COUNT", help="Segments that may hold it.")],
    remote: Connection,
    as_json: JsonOpt = False,
) -> None:
    """Set a limit (made if new); queued work that waited for it may go out at once."""
    limit = remote.client().set_limit(name, count)
    if as_json:
        print_json(limit)
    else:
        out.print(f"limit {name} = {limit['count']} ({limit['in_use']} in use)", highlight=False)


@limit_app.command("list", epilog="**Example**\n\n    qfarm limit list --json")
@with_option_sets
def limit_list(remote: Connection, as_json: JsonOpt = False) -> None:
    """The limits, with how many segments hold each now."""
    rows = remote.client().limits()
    if as_json:
        print_json(rows)
        return
    table = Table("limit", "count", "in use")
    for row in rows:
        table.add_row(row["name"], str(row["count"]), str(row["in_use"]))
    out.print(table)


@limit_app.command("remove", epilog="**Example**\n\n    qfarm limit remove nuke")
@with_option_sets
def limit_remove(name: NameArg, remote: Connection) -> None:
    """Remove a limit: jobs that name it wait, saying so, until it is set again."""
    remote.client().remove_limit(name)  # no such limit: exit 4
    out.print(f"limit {name} removed", highlight=False)
