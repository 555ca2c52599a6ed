"""``qfarm controller``: the cluster controller as a long-running process: its store, its
Dask scheduler (or one given), the HTTP API and Batch Monitor, and what it runs beside them
(notifications, watch folders, the dashboard)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from qfarm import config
from qfarm.cli.app import app
from qfarm.cli.common import FLAG, LOOPBACK, fail_usage, out
from qfarm.cli.loading import collector_paused
from qfarm.cli.notify import ControllerNotify
from qfarm.cli.options import with_option_sets
from qfarm.domain.errors import InvalidRequest
from qfarm.domain.units import parse_duration
from qfarm.engine.base import MIN_NODE_TIMEOUT_SECONDS
from qfarm.security import tokens
from qfarm.security.pki import TlsFiles, connection_string

if TYPE_CHECKING:
    pass

DEFAULT_PORT = 8470


@app.command(
    epilog="""**Examples**

    qfarm controller --host 0.0.0.0 --port 8470

    qfarm controller --db postgresql+psycopg://qfarm@dbhost/qfarm

    qfarm controller --dashboard     # Dask's dashboard too (needs bokeh)

    qfarm controller --fair-share    # owners share the farm at each priority

    qfarm controller --node-timeout 1m    # a silent node's work goes elsewhere after 1 min

    qfarm controller --smtp smtp://qfarm@mail.example.com --notify mailto:ops@example.com

    qfarm controller --watch watch.toml    # watch folders inside it (qfarm watch --help)
"""
)
@with_option_sets
def controller(
    *,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="HTTP API port (0: any free one).")] = (
        DEFAULT_PORT
    ),
    scheduler: Annotated[
        str | None,
        typer.Option("--scheduler", help="Use this Dask scheduler (tcp://...) instead of our own."),
    ] = None,
    scheduler_port: Annotated[
        int, typer.Option("--scheduler-port", help="Port of our Dask scheduler (0: any free).")
    ] = 0,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Store and logs [env: QFARM_DATA_DIR].")
    ] = None,
    db: Annotated[
        str | None, typer.Option("--db", help="SQLAlchemy URL [default: SQLite in the data dir].")
    ] = None,
    advertise: Annotated[
        bool,
        typer.Option(
            "--advertise/--no-advertise",
            metavar=FLAG,
            help="Announce it by mDNS on the interfaces it uses.",
        ),
    ] = True,
    token: Annotated[
        str | None,
        typer.Option(
            "--token", envvar="QFARM_TOKEN", help="Also accept this shared token of clients."
        ),
    ] = None,
    require_token: Annotated[
        bool,
        typer.Option(
            "--require-token",
            metavar=FLAG,
            help="Require client tokens even on loopback (beyond it they always are).",
        ),
    ] = False,
    dashboard: Annotated[
        bool,
        typer.Option(
            "--dashboard",
            metavar=FLAG,
            help="Serve Dask's dashboard on a free port and print its URL (needs bokeh: "
            "pip install 'bokeh>=3.1').",
        ),
    ] = False,
    fair_share: Annotated[
        bool,
        typer.Option(
            "--fair-share",
            metavar=FLAG,
            help="Among batches of equal priority, give each owner a share of the farm's "
            "instances, not first come, first served.",
        ),
    ] = False,
    node_timeout: Annotated[
        str,
        typer.Option(
            "--node-timeout",
            metavar="AGE",
            help="Give a node up after this long without a heartbeat (frozen, or cut off): "
            "its running segments go to other nodes, with no retry used. At least 5s.",
        ),
    ] = "15s",
    keep: Annotated[
        str | None,
        typer.Option(
            "--keep",
            metavar="AGE",
            help="Remove ended batches, their logs and stored outputs this long after they "
            "end: 30d, 12h; 'forever' stops it [default: as set before, else forever].",
        ),
    ] = None,
    watch: Annotated[
        Path | None,
        typer.Option(
            "--watch",
            metavar="CONFIG",
            help="Watch folders run inside the controller: a TOML file of [[watch]] tables, "
            "each with qfarm watch's settings (folder, preset or batch, output, ...).",
        ),
    ] = None,
    https: Annotated[
        bool | None,
        typer.Option(
            "--https/--http",
            metavar=FLAG,
            help="Serve the API and the Batch Monitor over HTTPS, with a certificate of the "
            "cluster CA unless --tls-cert [default: HTTPS beyond loopback, HTTP on it]. --http "
            "beyond loopback only behind a proxy that does TLS.",
            show_default=False,
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option("--tls-cert", metavar="FILE", help="The API's certificate (PEM), your own."),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option("--tls-key", metavar="FILE", help="The private key of --tls-cert (PEM)."),
    ] = None,
    tls_names: Annotated[
        list[str] | None,
        typer.Option(
            "--tls-name",
            metavar="NAME",
            help="Another name clients reach it by, for its certificate (a load balancer's, "
            "a Kubernetes Service's). Repeatable.",
        ),
    ] = None,
    notifying: ControllerNotify,
) -> None:
    """Run a cluster controller: the store, a Dask scheduler, the dispatcher and the HTTP API.

    It prints the URL that clients and nodes use; stop it with Ctrl-C. A controller that
    listens beyond loopback (or is given --require-token) requires client tokens: at its
    first start it makes one and prints it, once; `qfarm token` makes more and revokes them.
    """
    with collector_paused():  # see qfarm.cli.loading
        from qfarm.api.serve import ControllerAddresses, serve_controller
        from qfarm.cli.watch import watch_folders
        from qfarm.store import Store

    try:
        if dashboard:
            check_dashboard(host, scheduler)
        kept = None if keep in (None, "forever") else parse_duration(keep, "--keep")
        if kept is not None and kept < 1:
            raise InvalidRequest(f"--keep {keep!r} is under a second")
        silent_for = parse_duration(node_timeout, "--node-timeout")
        if silent_for < MIN_NODE_TIMEOUT_SECONDS:
            raise InvalidRequest(
                f"--node-timeout {node_timeout!r} is under {MIN_NODE_TIMEOUT_SECONDS} s: nodes "
                "send a heartbeat every 0.5-2 s, and busy ones would be given up"
            )
        watches = watch_folders(watch)
        served_tls = api_tls(host, https, tls_cert, tls_key)
        directory = config.data_dir(data_dir)
        store = Store(config.database_url(db, directory))
        notify_config = notifying.config(directory)
    except InvalidRequest as exc:
        raise fail_usage(str(exc)) from None
    if keep is not None:
        from qfarm.controller.retention import keep as keep_for

        keep_for(store, kept)
    logging.getLogger("distributed").setLevel(logging.ERROR)
    from qfarm.security.pki import ClusterAuthority

    # The first start of a controller that runs its own scheduler makes the cluster CA;
    # its join token is shown then (and by `qfarm join-token` at any time).
    new_cluster = scheduler is None and not ClusterAuthority.exists(directory)
    first_token = None
    if (require_token or host not in LOOPBACK) and not token and not store.tokens():
        # The first start of a controller that needs tokens: its first one, shown once.
        _, first_token = tokens.create(store, "first")

    def ready(addresses: ControllerAddresses) -> None:
        url = addresses.url
        out.print(
            f"qfarm controller at {url} (nodes join {addresses.scheduler})",
            highlight=False,
            soft_wrap=True,
        )
        if addresses.dashboard:
            out.print(f"Dask dashboard at {addresses.dashboard}", highlight=False)
        if first_token:
            out.print(
                f"client token, shown only this once (qfarm token create makes more): "
                f"{first_token}",
                highlight=False,
                soft_wrap=True,
            )
            if served_tls is not None:
                # With the cluster CA's certificate, the connection string pins that CA; a
                # certificate of the user's own is checked as their CA (or the system) says.
                login = (
                    connection_string(ClusterAuthority.open(directory), first_token)
                    if served_tls is False
                    else first_token
                )
                out.print(
                    f"clients log in with: qfarm login {url} {login}",
                    highlight=False,
                    soft_wrap=True,
                )
        if new_cluster:
            join = ClusterAuthority.existing(directory).join_token()
            out.print(
                f"nodes join with (qfarm join-token shows it again): "
                f"qfarm node -c {url} --join-token {join}",
                highlight=False,
                soft_wrap=True,
            )

    try:
        serving = serve_controller(
            store,
            directory,
            host=host,
            port=port,
            scheduler=scheduler,
            scheduler_port=scheduler_port,
            advertise=advertise,
            token=token,
            dashboard=dashboard,
            fair_share=fair_share,
            node_timeout=silent_for,
            https=served_tls is not None,
            tls=served_tls or None,
            tls_names=tls_names or [],
            notify=notify_config,
            beside=watches,
            on_ready=ready,
        )
        asyncio.run(serving)
    except KeyboardInterrupt:
        pass
    finally:
        store.close()


def api_tls(
    host: str, https: bool | None, cert: Path | None, key: Path | None
) -> TlsFiles | Literal[False] | None:
    """How the API is served: None over HTTP, False over HTTPS with a certificate of the
    cluster CA, or the user's own certificate and key (InvalidRequest for half of them)."""
    if (cert is None) != (key is None):
        raise InvalidRequest("--tls-cert and --tls-key go together: give both")
    if https is False:
        if cert is not None:
            raise InvalidRequest("--http serves no certificate: leave out --tls-cert")
        return None
    if cert is not None and key is not None:
        for path in (cert, key):
            if not path.is_file():
                raise InvalidRequest(f"{path} does not exist")
        return TlsFiles("", str(cert), str(key))
    return False if https or host not in LOOPBACK else None


def check_dashboard(host: str, scheduler: str | None) -> None:
    """Refuse --dashboard (InvalidRequest) where it cannot be served, before anything is
    made: a first client token made and then lost with a failed start would never be shown.
    Without bokeh, the engine's own refusal says how to install it."""
    if scheduler is not None:
        raise InvalidRequest(
            "--dashboard serves the dashboard of the controller's own scheduler: one given "
            "with --scheduler serves its own"
        )
    from qfarm.engine.dask import _dashboard_on

    _dashboard_on(host)
