"""``qfarm node``: a service node as a long-running process, joining a controller with its
join token; and ``qfarm node disable``, ``revoke`` and ``enable``, which drain, shut out and
take back a node through the controller's API."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from qfarm import config
from qfarm.cli.app import app
from qfarm.cli.common import LOOPBACK, err, fail_usage, out
from qfarm.cli.loading import collector_paused
from qfarm.cli.options import Connection, JoinTokenOpt, with_option_sets
from qfarm.domain.errors import InvalidRequest
from qfarm.domain.units import parse_duration
from qfarm.node import pathmap

if TYPE_CHECKING:
    from qfarm.security.pki import JoinToken

NodeNameArg = Annotated[str, typer.Argument(metavar="NAME", help="The node's name.")]


def join_token_for(given: str | None, url: str, data_dir: Path) -> JoinToken | None:
    """The join token a node of the controller at ``url`` joins with: the one given
    (``--join-token``, QFARM_JOIN_TOKEN), else that of a controller on this machine
    (:func:`local_join_token`), else None."""
    from qfarm.security.pki import parse_join_token

    return parse_join_token(given) if given else local_join_token(url, data_dir)


def local_join_token(url: str, data_dir: Path) -> JoinToken | None:
    """The join token of a controller on this machine that shares the node's data dir (all
    roles on one computer, as one user): no token to copy. None otherwise."""
    from urllib.parse import urlsplit

    from qfarm.security.pki import ClusterAuthority

    if urlsplit(url).hostname not in LOOPBACK or not ClusterAuthority.exists(data_dir):
        return None
    return ClusterAuthority.existing(data_dir).join_token()


node_app = typer.Typer(
    help="Run a service node, or drain one (disable) and take it back (enable).",
    invoke_without_command=True,
    no_args_is_help=False,
    # `qfarm node` alone runs a node: its subcommands are optional.
    subcommand_metavar="[COMMAND [ARGS]...]",
)
app.add_typer(node_app, name="node")


@node_app.callback(
    epilog="""**Examples**

    qfarm node --controller http://farm:8470 --join-token qfj1.... --services command=4

    qfarm node --path-map /Volumes/media=/mnt/media

    qfarm node --tags gpu,fast-disk --gpus 2 --resource license_nuke=2

    qfarm node --schedule "mon-fri 19:00-07:00, sat-sun" --schedule-end suspend

    qfarm node --when-idle 10m

    qfarm node --idle-exit 2m    # under Slurm: exit once idle, giving the allocation back

    qfarm node disable render-07
"""
)
@with_option_sets
def node(
    ctx: typer.Context,
    remote: Connection,
    services: Annotated[
        str,
        typer.Option("--services", help="Service instances: command=4,transcode=2, or auto."),
    ] = "auto",
    name: Annotated[
        str | None, typer.Option("--name", help="The node's name [default: host name].")
    ] = None,
    join_token: JoinTokenOpt = None,
    host: Annotated[
        str, typer.Option("--host", help="Address the node listens on for the cluster.")
    ] = "127.0.0.1",
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Scratch space [env: QFARM_DATA_DIR].")
    ] = None,
    path_map: Annotated[
        list[str] | None,
        typer.Option("--path-map", help="FROM=TO: shared storage seen here under TO. Repeatable."),
    ] = None,
    tags: Annotated[
        list[str] | None,
        typer.Option("--tags", help="Tags jobs may require: gpu,fast-disk. Repeatable."),
    ] = None,
    gpus: Annotated[
        int | None,
        typer.Option(
            "--gpus", help="GPUs segments may hold [default: those nvidia-smi lists, else 0]."
        ),
    ] = None,
    resources: Annotated[
        list[str] | None,
        typer.Option(
            "--resource", help="NAME=N: a counted resource, e.g. license_nuke=2. Repeatable."
        ),
    ] = None,
    schedule: Annotated[
        str | None,
        typer.Option(
            "--schedule",
            help="Hours it works, in its local time: 'mon-fri 19:00-07:00, sat-sun' "
            "[default: always].",
        ),
    ] = None,
    schedule_end: Annotated[
        str,
        typer.Option(
            "--schedule-end",
            help="When its hours end (or its user comes back), its running segments: finish, "
            "suspend (until it works again) or requeue (to other nodes).",
        ),
    ] = "finish",
    when_idle: Annotated[
        str | None,
        typer.Option(
            "--when-idle",
            help="Work only once its user has been away this long: 10m, 1h (desktop idle "
            "time, else terminal input and CPU load).",
        ),
    ] = None,
    idle_exit: Annotated[
        str | None,
        typer.Option(
            "--idle-exit",
            help="Leave the cluster and exit 0 once no segment has run here for this long: "
            "60s, 10m (a node a batch system started gives its allocation back).",
        ),
    ] = None,
) -> None:
    """Run a service node that joins a controller and runs its segments.

    A controller that runs its own scheduler admits only nodes given its join token
    (`qfarm join-token` on the controller's machine prints it); the node then talks to it
    over TLS, with a certificate of the cluster's CA.
    """
    if ctx.invoked_subcommand is not None:
        return
    from qfarm.domain.errors import QfarmError

    # Paused while the node's modules load (see qfarm.cli.loading).
    with collector_paused():
        from qfarm.node.availability import NodeHours
        from qfarm.node.facts import offerable_services
        from qfarm.node.serve import node_capacity, parse_services, serve_node

    try:
        mapping = pathmap.parse(path_map or [])
        offered, dropped = offerable_services(parse_services(services))
        for why in dropped:
            err.print(f"qfarm node: {why}", highlight=False, soft_wrap=True)
        if not offered:
            raise InvalidRequest("this node can offer none of the services asked for")
        capacity = node_capacity(tags or [], gpus, resources or [], offered)
        hours = NodeHours.parse(schedule, schedule_end, when_idle)
        leave_after = parse_duration(idle_exit, "--idle-exit") if idle_exit else None
        url = remote.client().url  # names the controller, or says how to
        directory = config.data_dir(data_dir)
        joining = join_token_for(join_token, url, directory)
    except (InvalidRequest, QfarmError) as exc:
        raise fail_usage(str(exc)) from None
    logging.getLogger("distributed").setLevel(logging.ERROR)

    def joined(node_name: str, scheduler: str) -> None:
        shown = ", ".join(f"{k}={v}" for k, v in {**offered, **capacity.resources}.items())
        if capacity.tags:
            shown += "; tags " + ",".join(capacity.tags)
        out.print(
            f"qfarm node {node_name} ({shown}) joining {scheduler}", highlight=False, soft_wrap=True
        )

    def waiting(why: str) -> None:
        err.print(
            f"qfarm node: {why}; waiting for the controller at {url}",
            highlight=False,
            soft_wrap=True,
        )

    def leaving(why: str) -> None:
        out.print(f"qfarm node: {why}", highlight=False, soft_wrap=True)

    with contextlib.suppress(KeyboardInterrupt):  # one before the loop's handlers are set
        serving = serve_node(
            url,
            name=name,
            services=offered,
            host=host,
            data_dir=directory,
            token=remote.token,
            join_token=joining,
            on_joined=joined,
            on_waiting=waiting,
            on_leaving=leaving,
            path_map=mapping,
            capacity=capacity,
            hours=hours,
            idle_exit=leave_after,
        )
        asyncio.run(until_stopped(serving))


async def until_stopped(serving: Coroutine[Any, Any, None]) -> None:
    """Run the node until it ends or is stopped: by Ctrl-C, or by SIGTERM, as a service
    manager (systemd, a batch system, Kubernetes) stops it. Either way the node's worker
    closes first, ending the segments it runs (they go back to the queue, with no retry
    used); a SIGTERM left to its default would end this process alone, and its segments'
    processes, in process groups of their own, would go on writing for nobody."""
    task = asyncio.ensure_future(serving)
    stopping = asyncio.Event()

    def stop() -> None:
        # Once: a second signal would cut the worker's close short (the nanny ends a
        # worker that takes too long to close by itself, a few seconds on).
        if not stopping.is_set():
            stopping.set()
            task.cancel()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    try:
        await task
    except asyncio.CancelledError:
        if not stopping.is_set():
            raise  # not our stop: something went wrong, and it shows


@node_app.command("disable", epilog="**Example**\n\n    qfarm node disable render-07")
@with_option_sets
def node_disable(name: NodeNameArg, remote: Connection) -> None:
    """Drain a node: its running segments finish, it gets no new ones."""
    remote.client().set_node_enabled(name, False)
    out.print(f"node {name} disabled", highlight=False)


@node_app.command(
    "revoke",
    epilog="**Examples**\n\n    qfarm node revoke render-07\n\n"
    "    qfarm node revoke render-07 && qfarm join-token --rotate",
)
@with_option_sets
def node_revoke(name: NodeNameArg, remote: Connection) -> None:
    """Shut a node out at once: the scheduler refuses its certificate from the next
    handshake, its running segments are requeued elsewhere, and it may not join again under
    this name or with this key; the other nodes and the CA are untouched. If the machine
    may be in the wrong hands, rotate the join token too (it could join with a new key)."""
    remote.client().revoke_node(name)
    out.print(f"node {name} revoked: it can no longer connect or join", highlight=False)


@node_app.command("enable", epilog="**Example**\n\n    qfarm node enable render-07")
@with_option_sets
def node_enable(name: NodeNameArg, remote: Connection) -> None:
    """Give a disabled node work again."""
    remote.client().set_node_enabled(name, True)
    out.print(f"node {name} enabled", highlight=False)
