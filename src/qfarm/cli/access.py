"""Access to a cluster, managed on the controller's machine: client tokens (``qfarm token``)
and the join token of nodes (``qfarm join-token``). These commands read and write the
controller's store and keys directly, not through its API: they are how the first keys are
given out.
"""

from __future__ import annotations

import dataclasses
import datetime
import getpass
import socket
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from qfarm import config
from qfarm.cli.app import app
from qfarm.cli.common import FLAG, fail_usage, out, print_json
from qfarm.cli.options import JsonOpt
from qfarm.domain.errors import InvalidRequest
from qfarm.security import tokens

token_app = typer.Typer(
    help="Client tokens of the controller on this machine: create, list, revoke.",
    epilog="**Examples**\n\n    qfarm token create render-wrangler\n\n    qfarm token list",
    no_args_is_help=True,
)
app.add_typer(token_app, name="token")

StoreDirOpt = Annotated[
    Path | None, typer.Option("--data-dir", help="The controller's data dir [env: QFARM_DATA_DIR].")
]
StoreDbOpt = Annotated[
    str | None, typer.Option("--db", help="The controller's database URL, if not SQLite.")
]


def _controller_store(data_dir: Path | None, db: str | None) -> Any:
    from qfarm.store import Store

    try:
        return Store(config.database_url(db, config.data_dir(data_dir)))
    except InvalidRequest as exc:
        raise fail_usage(str(exc)) from None


@token_app.command(
    "create",
    epilog="**Examples**\n\n    qfarm token create render-wrangler\n\n"
    "    qfarm token create prometheus --scope metrics",
)
def token_create(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Who or what the token is for.")],
    scope: Annotated[
        str,
        typer.Option(
            "--scope",
            metavar="SCOPE",
            help="What it opens: client (the whole API, the default) or metrics (GET "
            "/metrics alone, for a Prometheus scrape).",
        ),
    ] = tokens.CLIENT_SCOPE,
    data_dir: StoreDirOpt = None,
    db: StoreDbOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Make a token and print it, once: only its digest is kept."""
    if scope not in tokens.SCOPES:
        raise fail_usage(f"--scope {scope!r} is not one of {', '.join(tokens.SCOPES)}")
    store = _controller_store(data_dir, db)
    try:
        token_id, secret = tokens.create(store, name, scope)
        _log(store, "token.create", f"token {token_id}", {"name": name, "scope": scope})
    finally:
        store.close()
    from qfarm.security.pki import ClusterAuthority, connection_string

    directory = config.data_dir(data_dir)
    # With the cluster CA's fingerprint, for `qfarm login URL STRING` over HTTPS.
    login = (
        connection_string(ClusterAuthority.existing(directory), secret)
        if ClusterAuthority.exists(directory)
        else None
    )
    if as_json:
        made = {"id": token_id, "name": name, "scope": scope, "token": secret}
        print_json({**made, "connection": login})
    else:
        out.print(
            f"{scope} token {token_id} ({name}), shown only this once: {secret}", highlight=False
        )
        if login:
            out.print(f"log in with: qfarm login URL {login}", highlight=False, soft_wrap=True)


@token_app.command("list", epilog="**Example**\n\n    qfarm token list --json")
def token_list(
    data_dir: StoreDirOpt = None, db: StoreDbOpt = None, as_json: JsonOpt = False
) -> None:
    """The tokens: id, name, scope, made, last used, revoked (never the secrets)."""
    store = _controller_store(data_dir, db)
    try:
        rows = [dataclasses.asdict(t) for t in store.tokens()]
    finally:
        store.close()
    if as_json:
        print_json(rows)
        return
    table = Table("id", "name", "scope", "created", "last used", "revoked")
    for row in rows:
        times = (_when(row[at]) for at in ("created_at", "last_used_at", "revoked_at"))
        table.add_row(str(row["id"]), row["name"], row["scope"], *times)
    out.print(table)


@token_app.command("revoke", epilog="**Example**\n\n    qfarm token revoke 3")
def token_revoke(
    token_id: Annotated[
        int, typer.Argument(metavar="ID", help="The token's id (qfarm token list).")
    ],
    data_dir: StoreDirOpt = None,
    db: StoreDbOpt = None,
) -> None:
    """Revoke a token: requests with it are refused from now on."""
    store = _controller_store(data_dir, db)
    try:
        revoked = store.revoke_token(token_id)  # no such token: NotFound, exit 4
        _log(store, "token.revoke", f"token {token_id}", {"name": revoked.name})
    finally:
        store.close()
    out.print(f"token {revoked.id} ({revoked.name}) revoked", highlight=False)


def _log(store: Any, action: str, target: str, detail: dict[str, Any]) -> None:
    """An entry in the audit log for an action taken here, on the controller's machine,
    whose actor is the local user (there is no token to name)."""
    from qfarm.store import AuditEntry

    actor = f"local {getpass.getuser()}@{socket.gethostname()}"
    store.record_action(AuditEntry(actor, action, target, 200, detail=detail))


def _when(epoch: float | None) -> str:
    if not epoch:
        return "-"
    return datetime.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


@app.command(
    "join-token",
    epilog="""**Examples**

    qfarm join-token

    qfarm join-token --rotate --data-dir /srv/qfarm
""",
)
def join_token(
    data_dir: StoreDirOpt = None,
    db: StoreDbOpt = None,
    rotate: Annotated[
        bool,
        typer.Option(
            "--rotate",
            metavar=FLAG,
            help="Replace it: tokens given out before no longer let a node join.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Print the token that lets a service node join the controller of this data dir.

    A node given it (`qfarm node --join-token TOKEN`, or QFARM_JOIN_TOKEN) gets a
    certificate of the cluster CA and talks to the controller over TLS; it also checks
    that the controller holds the CA that the token names. Nodes that joined keep
    working after --rotate; to shut them all out, stop the controller, delete the
    data dir's `cluster` folder and start it again (a new CA).
    """
    from qfarm.security.pki import ClusterAuthority

    try:
        authority = ClusterAuthority.existing(config.data_dir(data_dir))
    except InvalidRequest as exc:
        raise fail_usage(str(exc)) from None
    if rotate:
        token = authority.rotate_join_secret()
        store = _controller_store(data_dir, db)
        try:
            _log(store, "join-token.rotate", "the join token", {"fingerprint": token.fingerprint})
        finally:
            store.close()
    else:
        token = authority.join_token()
    if as_json:
        print_json({"join_token": str(token), "ca_fingerprint": token.fingerprint})
    else:
        out.print(str(token), highlight=False, soft_wrap=True)
