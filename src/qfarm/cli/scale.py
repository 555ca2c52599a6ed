"""``qfarm scale slurm``: qfarm nodes as Slurm jobs (qfarm.scale), a fixed number of them or
as many as the controller's queue needs (``--adapt``)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from qfarm import config
from qfarm.cli.app import app
from qfarm.cli.common import FLAG, err, fail_usage, out, print_json
from qfarm.cli.options import Connection, JoinTokenOpt, JsonOpt, with_option_sets
from qfarm.domain.errors import InvalidRequest, QfarmError

if TYPE_CHECKING:
    from qfarm.scale.adapt import AdaptRange
    from qfarm.scale.slurm import SlurmNodeSpec

scale_app = typer.Typer(
    help="Grow the farm through a batch system: qfarm nodes submitted as its jobs.",
    epilog="**Examples**\n\n    qfarm scale slurm --nodes 8 --services render=1 --partition gpu\n\n"
    "    qfarm scale slurm --adapt min=0,max=20 --services command=2",
    no_args_is_help=True,
)
app.add_typer(scale_app, name="scale")


@scale_app.command(
    "slurm",
    epilog="""**Examples**

    qfarm scale slurm --nodes 8 --services render=1 --partition gpu --walltime 4:00:00

    qfarm scale slurm --adapt min=0,max=20 --services command=2 --idle-exit 2m

    qfarm scale slurm --nodes 1 --services render=1 --sbatch=--gres=gpu:1 --dry-run
""",
)
@with_option_sets
def scale_slurm(
    remote: Connection,
    services: Annotated[
        str,
        typer.Option("--services", help="What each node offers: render=1, command=4,transcode=2."),
    ],
    nodes: Annotated[
        int | None, typer.Option("--nodes", min=1, help="Submit this many node jobs, then exit.")
    ] = None,
    adapt: Annotated[
        str | None,
        typer.Option(
            "--adapt",
            help="min=N,max=N: stay, keeping as many nodes as the queue needs; Ctrl-C cancels "
            "them.",
        ),
    ] = None,
    partition: Annotated[str | None, typer.Option("--partition", help="Slurm partition.")] = None,
    walltime: Annotated[
        str, typer.Option("--walltime", help="Each job's time limit, HH:MM:SS.")
    ] = "01:00:00",
    cores: Annotated[
        int | None,
        typer.Option("--cores", min=1, help="CPUs per job [default: the node's instances]."),
    ] = None,
    memory: Annotated[str, typer.Option("--memory", help="Memory per job: 4GB.")] = "2GB",
    account: Annotated[str | None, typer.Option("--account", help="Slurm account.")] = None,
    sbatch: Annotated[
        list[str] | None,
        typer.Option("--sbatch", help="More #SBATCH options: --sbatch=--gres=gpu:1. Repeatable."),
    ] = None,
    idle_exit: Annotated[
        str, typer.Option("--idle-exit", help="A node idle this long leaves: 90s, 5m.")
    ] = "5m",
    join_token: JoinTokenOpt = None,
    node_host: Annotated[
        str,
        typer.Option("--node-host", help="Where each node listens for the cluster: its address."),
    ] = "127.0.0.1",
    log_dir: Annotated[
        Path | None, typer.Option("--log-dir", help="Where Slurm writes each job's output.")
    ] = None,
    python: Annotated[
        str, typer.Option("--python", help="The Python with qfarm on the cluster's machines.")
    ] = sys.executable,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="The controller's data dir, for its join token."),
    ] = None,
    interval: Annotated[
        float, typer.Option("--interval", min=0.5, help="Seconds between looks at the queue.")
    ] = 5.0,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", metavar=FLAG, help="Print the job script; submit nothing."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Submit qfarm nodes as Slurm jobs (through dask-jobqueue) that join the controller.

    Each job runs `qfarm node` with the services asked for and leaves once idle for
    --idle-exit, giving its allocation back. With --adapt the command stays: it reads the
    controller's queue (GET /metrics) and keeps as many nodes as the queued and running
    segments need, within min and max; nodes no longer needed leave when idle.
    """
    from qfarm.cli.node import join_token_for
    from qfarm.domain.units import parse_duration
    from qfarm.node.serve import parse_services
    from qfarm.scale.adapt import AdaptRange
    from qfarm.scale.slurm import SlurmNodeSpec, job_script

    try:
        if (nodes is None) == (adapt is None):
            raise InvalidRequest("give --nodes N or --adapt min=N,max=N (one of them)")
        offered = parse_services(services)
        if not offered:
            raise InvalidRequest("--services must name what each node offers, e.g. render=1")
        limits = AdaptRange.parse(adapt) if adapt is not None else None
        client = remote.client()
        joining = join_token_for(join_token, client.url, config.data_dir(data_dir))
        environment = {"QFARM_JOIN_TOKEN": str(joining)} if joining else {}
        if remote.token:
            environment["QFARM_TOKEN"] = remote.token
        spec = SlurmNodeSpec(
            controller_url=client.url,
            services=offered,
            partition=partition,
            walltime=walltime,
            cores=cores or sum(offered.values()),
            memory=memory,
            account=account,
            idle_exit=parse_duration(idle_exit, "--idle-exit"),
            log_dir=str(log_dir) if log_dir else None,
            python=python,
            host=node_host,
            extra_directives=tuple(sbatch or ()),
            environment=environment,
        )
    except (InvalidRequest, QfarmError) as exc:
        raise fail_usage(str(exc)) from None
    if dry_run:
        out.print(job_script(spec), highlight=False, soft_wrap=True)
        return
    if limits is None:
        assert nodes is not None
        ids = asyncio.run(_submit(spec, nodes))
        if as_json:
            print_json({"jobs": ids, "services": offered})
            return
        table = Table("slurm job", "node name")
        for job_id in ids:
            table.add_row(job_id, f"qfarm-slurm-{job_id}")
        out.print(table)
        return
    asyncio.run(_adapt(spec, client.metrics, limits, interval))


async def _submit(spec: SlurmNodeSpec, count: int) -> list[str]:
    from qfarm.scale.slurm import SlurmNodes

    return await SlurmNodes(spec).submit(count)


async def _adapt(
    spec: SlurmNodeSpec, metrics: Callable[[], str], limits: AdaptRange, interval: float
) -> None:
    from qfarm.scale.follow import follow_queue
    from qfarm.scale.slurm import SlurmNodes

    nodes = SlurmNodes(spec)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def say(line: str) -> None:
        err.print(f"qfarm scale: {line}", highlight=False, soft_wrap=True)

    say(f"following the queue: {limits.minimum}-{limits.maximum} node(s); Ctrl-C ends them")
    try:
        await follow_queue(metrics, nodes, spec.services, limits, stop=stop,
                           interval=interval, say=say)  # fmt: skip
    finally:
        with contextlib.suppress(Exception):
            await nodes.cancel_all()
        say("node jobs canceled")
