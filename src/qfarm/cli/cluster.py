"""The cluster commands of ``qfarm``: the long-running roles (``controller``, ``node``) and
the client commands that speak to a controller over its HTTP API.

Client commands name their controller with ``--controller URL`` or ``$QFARM_CONTROLLER``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import glob
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from qfarm import config
from qfarm.cli import batchfile
from qfarm.cli.main import (
    FLAG,
    JOB_COMMANDS,
    BatchProgress,
    CommandArg,
    CwdOpt,
    EachOpt,
    EnvOpt,
    ExitCode,
    FramesOpt,
    HoldOpt,
    JsonOpt,
    NameOpt,
    OkExitOpt,
    OutputOpt,
    PreflightOpt,
    PriorityOpt,
    QuietOpt,
    RetriesOpt,
    SegmentSizeOpt,
    StartAtOpt,
    TimeoutOpt,
    app,
    command_batch,
    err,
    fail_usage,
    invoke_job_command,
    out,
    print_json,
    print_report,
    print_summaries,
)
from qfarm.client import BatchStatus, Client
from qfarm.domain.errors import InvalidRequest, NotFound
from qfarm.domain.model import BatchCounts, BatchRequest, priority_label
from qfarm.domain.units import duration
from qfarm.node import pathmap
from qfarm.security import tokens

if TYPE_CHECKING:
    from qfarm.security.pki import JoinToken

DEFAULT_PORT = 8470

ControllerOpt = Annotated[
    str | None,
    typer.Option("--controller", "-c", envvar="QFARM_CONTROLLER", help="The controller's URL."),
]
TokenOpt = Annotated[
    str | None, typer.Option("--token", envvar="QFARM_TOKEN", help="The controller's token.")
]
BatchArg = Annotated[int, typer.Argument(metavar="BATCH", help="The batch id.", show_default=False)]


def connect(controller: str | None, token: str | None) -> Client:
    return Client(controller, token=token)


# ------------------------------------------------------------------------- roles


@app.command(
    epilog="""**Examples**

    qfarm controller --host 0.0.0.0 --port 8470

    qfarm controller --db postgresql+psycopg://qfarm@dbhost/qfarm

    qfarm controller --dashboard     # Dask's dashboard too (needs bokeh)
"""
)
def controller(
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
) -> None:
    """Run a cluster controller: the store, a Dask scheduler, the dispatcher and the HTTP API.

    It prints the URL that clients and nodes use; stop it with Ctrl-C. A controller that
    listens beyond loopback (or is given --require-token) requires client tokens: at its
    first start it makes one and prints it, once; `qfarm token` makes more and revokes them.
    """
    from qfarm.api.serve import ControllerAddresses, serve_controller
    from qfarm.store import Store

    try:
        if dashboard:
            check_dashboard(host, scheduler)
        directory = config.data_dir(data_dir)
        store = Store(config.database_url(db, directory))
    except InvalidRequest as exc:
        raise fail_usage(str(exc)) from None
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
        if new_cluster:
            join = ClusterAuthority.existing(directory).join_token()
            out.print(
                f"nodes join with (qfarm join-token shows it again): "
                f"qfarm node -c {url} --join-token {join}",
                highlight=False,
                soft_wrap=True,
            )

    try:
        asyncio.run(
            serve_controller(
                store, directory, host=host, port=port, scheduler=scheduler,
                scheduler_port=scheduler_port, advertise=advertise, token=token,
                dashboard=dashboard, on_ready=ready,
            )
        )  # fmt: skip
    except KeyboardInterrupt:
        pass
    finally:
        store.close()


LOOPBACK = ("127.0.0.1", "localhost", "::1")


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

    qfarm node disable render-07
"""
)
def node(
    ctx: typer.Context,
    controller: ControllerOpt = None,
    token: TokenOpt = None,
    services: Annotated[
        str,
        typer.Option("--services", help="Service instances: command=4,transcode=2, or auto."),
    ] = "auto",
    name: Annotated[
        str | None, typer.Option("--name", help="The node's name [default: host name].")
    ] = None,
    join_token: Annotated[
        str | None,
        typer.Option(
            "--join-token",
            envvar="QFARM_JOIN_TOKEN",
            help="The cluster's join token (qfarm join-token on the controller's machine).",
        ),
    ] = None,
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
) -> None:
    """Run a service node that joins a controller and runs its segments.

    A controller that runs its own scheduler admits only nodes given its join token
    (`qfarm join-token` on the controller's machine prints it); the node then talks to it
    over TLS, with a certificate of the cluster's CA.
    """
    if ctx.invoked_subcommand is not None:
        return
    from qfarm.domain.errors import QfarmError
    from qfarm.node.facts import offerable_services
    from qfarm.node.serve import parse_services, serve_node
    from qfarm.security.pki import parse_join_token

    try:
        mapping = pathmap.parse(path_map or [])
        offered, dropped = offerable_services(parse_services(services))
        for why in dropped:
            err.print(f"qfarm node: {why}", highlight=False, soft_wrap=True)
        if not offered:
            raise InvalidRequest("this node can offer none of the services asked for")
        url = Client(controller, token=token).url  # names the controller, or says how to
        directory = config.data_dir(data_dir)
        joining = parse_join_token(join_token) if join_token else local_join_token(url, directory)
    except (InvalidRequest, QfarmError) as exc:
        raise fail_usage(str(exc)) from None
    logging.getLogger("distributed").setLevel(logging.ERROR)

    def joined(node_name: str, scheduler: str) -> None:
        shown = ", ".join(f"{k}={v}" for k, v in offered.items())
        out.print(
            f"qfarm node {node_name} ({shown}) joining {scheduler}", highlight=False, soft_wrap=True
        )

    def waiting(why: str) -> None:
        err.print(
            f"qfarm node: {why}; waiting for the controller at {url}",
            highlight=False,
            soft_wrap=True,
        )

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            serve_node(
                url, name=name, services=offered, host=host,
                data_dir=directory, token=token, join_token=joining,
                on_joined=joined,
                on_waiting=waiting, path_map=mapping,
            )
        )  # fmt: skip


@node_app.command("disable", epilog="**Example**\n\n    qfarm node disable render-07")
def node_disable(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The node's name.")],
    controller: ControllerOpt = None,
    token: TokenOpt = None,
) -> None:
    """Drain a node: its running segments finish, it gets no new ones."""
    connect(controller, token).set_node_enabled(name, False)
    out.print(f"node {name} disabled", highlight=False)


@node_app.command("enable", epilog="**Example**\n\n    qfarm node enable render-07")
def node_enable(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The node's name.")],
    controller: ControllerOpt = None,
    token: TokenOpt = None,
) -> None:
    """Give a disabled node work again."""
    connect(controller, token).set_node_enabled(name, True)
    out.print(f"node {name} enabled", highlight=False)


# ----------------------------------------------------------------------- client


def parse_start_at(text: str | None) -> float | None:
    """``2026-11-25T22:00``, ``22:00`` (the next such time) or epoch seconds."""
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    now = datetime.datetime.now()
    try:
        if len(text) <= 5 and ":" in text:
            at = datetime.datetime.combine(now.date(), datetime.time.fromisoformat(text))
            if at <= now:
                at += datetime.timedelta(days=1)
        else:
            at = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidRequest(
            f"--start-at {text!r} is not a time like 22:00 or 2026-11-25T22:00"
        ) from None
    return at.timestamp()


@app.command(
    context_settings={"allow_interspersed_args": False},
    epilog="""**Examples**

    qfarm submit --frames 1-240 --segment-size 10 -- blender -b shot.blend -s {start} -e {end} -a

    qfarm submit --priority high --hold --name nightly -- ./build-proxies.sh

    qfarm submit shot12.toml        # a batch file: several jobs, with depends_on

    qfarm submit transcode /mnt/shared/ep101.mov -p h264-1080p   # qfarm submit transcode --help

    qfarm submit render /mnt/shared/shot.blend --frames 1-240    # qfarm submit render --help
""",
)
def submit(
    command: CommandArg = None,
    frames: FramesOpt = None,
    segment_size: SegmentSizeOpt = 1,
    each: EachOpt = None,
    output: OutputOpt = None,
    cwd: CwdOpt = None,
    env: EnvOpt = None,
    timeout: TimeoutOpt = None,
    retries: RetriesOpt = 2,
    ok_exit: OkExitOpt = "0",
    preflight: PreflightOpt = None,
    name: NameOpt = "",
    priority: PriorityOpt = "medium",
    hold: HoldOpt = False,
    start_at: StartAtOpt = None,
    upload: Annotated[
        bool,
        typer.Option(
            "--upload",
            metavar=FLAG,
            help="Send the inputs (--each files, and files the command names) to the "
            "controller, for nodes without shared storage; get outputs with qfarm fetch.",
        ),
    ] = False,
    controller: ControllerOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Submit a command job, or a batch file of several jobs, and print the new batch's id."""
    if command and command[0] in JOB_COMMANDS:
        # `qfarm submit transcode ...`: a job type's own command line.
        raise typer.Exit(invoke_job_command(command[0], "submit", command[1:]))
    try:
        if batchfile.is_batch_file(command):
            assert command is not None
            request = batchfile.load(command[0])
        else:
            request = command_batch(
                command=command, frames=frames, segment_size=segment_size, each=each,
                output=output, cwd=cwd, env=env, timeout=timeout, retries=retries,
                ok_exit=ok_exit, preflight=preflight, name=name, priority=priority,
                hold=hold, start_at=parse_start_at(start_at),
            )  # fmt: skip
        client = connect(controller, token)
        if upload:
            request = _uploaded(client, request)
        handle = client.submit(request)
    except InvalidRequest as exc:
        raise fail_usage(str(exc)) from None
    if as_json:
        print_json({"batch": handle.id})
    else:
        out.print(handle.id)


def _uploaded(client: Client, request: BatchRequest) -> BatchRequest:
    """The request with its one job's inputs sent to cluster storage and its working
    directory moved there.
    """
    if len(request.jobs) != 1:
        raise InvalidRequest("--upload takes a job from the command line, not a batch file")
    job = request.jobs[0]
    base = Path(job.spec["cwd"])
    files: set[Path] = set()
    for pattern in job.spec.get("each") or []:
        matched = (base / p for p in glob.glob(pattern, root_dir=base))
        files |= {p.resolve() for p in matched if p.is_file()}
    for arg in job.spec["command"]:
        with contextlib.suppress(OSError):  # an inline script is not a file name
            candidate = (base / arg).resolve()
            if candidate.is_file():
                files.add(candidate)
    outside = sorted(str(f) for f in files if not f.resolve().is_relative_to(base))
    if outside:
        raise InvalidRequest(f"--upload: {outside[0]} is outside the working directory {base}")
    if not files:
        raise InvalidRequest(
            "--upload found no input files: use --each, or name the files in the command"
        )
    upload_id, path = client.upload(sorted(files), base)
    spec = {**job.spec, "cwd": path, "storage": {"upload": upload_id, "path": path}}
    return dataclasses.replace(request, jobs=(dataclasses.replace(job, spec=spec),))


@app.command(epilog="**Example**\n\n    qfarm fetch 12 -o renders/")
def fetch(
    batch: BatchArg,
    dest: Annotated[Path, typer.Option("--output", "-o", help="Where to put them.")] = Path("."),
    controller: ControllerOpt = None,
    token: TokenOpt = None,
) -> None:
    """Download a batch's outputs from cluster storage (jobs submitted with --upload)."""
    written = connect(controller, token).fetch(batch, dest)
    out.print(f"{len(written)} file(s) from batch {batch} in {dest}", highlight=False)


def batch_row(status: BatchStatus) -> list[str]:
    seg = status.segments
    raw = status.raw
    ended = raw.get("finished_at") or time.time()
    elapsed = duration(ended - raw["started_at"]) if raw.get("started_at") else "-"
    return [
        str(status.id),
        status.name,
        status.state,
        priority_label(status.priority),
        f"{seg['done']}/{seg['total']}",
        str(seg["running"] + seg["dispatched"]),
        str(seg["failed"]),
        elapsed,
    ]


@app.command(epilog="**Example**\n\n    qfarm batches --json | jq '.[].state'")
def batches(
    controller: ControllerOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """List the controller's batches."""
    rows = connect(controller, token).batches()
    if as_json:
        print_json([r.raw for r in rows])
        return
    table = Table("batch", "name", "state", "priority", "done", "running", "failed", "elapsed")
    for status in rows:
        table.add_row(*batch_row(status))
    out.print(table)


@app.command(epilog="**Example**\n\n    qfarm show 12")
def show(
    batch: BatchArg, controller: ControllerOpt = None, token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Show one batch: its jobs and segments, where they ran and how they ended."""
    client = connect(controller, token)
    status = client.batch(batch)
    segment_rows = client.segments(batch)
    if as_json:
        print_json({**status.raw, "segments_list": segment_rows})
        return
    table = Table("batch", "name", "state", "priority", "done", "running", "failed", "elapsed")
    table.add_row(*batch_row(status))
    out.print(table)
    jobs = Table("job", "type", "state", "progress", "error or wait")
    for job in status.raw["jobs"]:
        done = f"{job.get('progress', 0.0):.0%}"
        note = job["error"] or (f"waiting: {job['waiting']}" if job.get("waiting") else "")
        jobs.add_row(job["name"], job["type"], job["state"], done, note)
    out.print(jobs)
    print_summaries(
        [{**job, "name": job["name"] or job["type"]} for job in status.raw["jobs"]], out
    )
    job_names = {job["id"]: job["name"] for job in status.raw["jobs"]}
    segments = Table("job", "segment", "label", "state", "node", "attempts", "error")
    for seg in segment_rows:
        segments.add_row(
            job_names.get(seg["job_id"], str(seg["job_id"])), str(seg["index"]), seg["label"],
            seg["state"], seg["node"] or "-", str(seg["attempts"]), seg["error"],
        )  # fmt: skip
    out.print(segments)


@app.command(epilog="**Example**\n\n    qfarm wait 12 && echo rendered")
def wait(
    batch: BatchArg,
    controller: ControllerOpt = None,
    token: TokenOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Wait for a batch to end, with a progress bar; exit 0 if it is done, 1 otherwise (3: the
    controller cannot be reached, 4: no such batch)."""
    client = connect(controller, token)
    status = client.batch(batch)
    if quiet:
        while not status.finished:
            time.sleep(0.5)
            status = client.batch(batch)
    else:
        with BatchProgress(batch) as bar:
            while True:
                bar.update(BatchCounts(**status.segments))
                if status.finished:
                    break
                time.sleep(0.5)
                status = client.batch(batch)
    if status.state == "done":
        err.print(f"batch {batch} done", highlight=False)
        raise typer.Exit(ExitCode.DONE)
    print_report(api_report(client, status))
    raise typer.Exit(ExitCode.FAILED)


def api_report(client: Client, status: BatchStatus) -> dict[str, Any]:
    """An ended batch as the controller's API tells it, in the shape of ``qfarm run``'s
    report (:func:`qfarm.cli.batch_report`), so ``qfarm wait`` shows a failure as ``qfarm
    run`` does: each failed segment, where it failed, and the end of its log."""
    raw = status.raw
    segments = client.segments(status.id)
    failed = []
    for seg in segments:
        if seg["state"] != "failed":
            continue
        attempts = client.attempts(status.id, seg["id"])
        last = attempts[-1] if attempts else {}
        failed.append(
            {
                "segment": seg["index"],
                "label": seg["label"],
                "node": last.get("node") or seg["node"],
                "attempts": len(attempts),
                "exit_code": last.get("exit_code"),
                "error": seg["error"],
                "log_tail": last.get("log_tail") or "",
                "log_path": last.get("log_path") or "",
            }
        )
    started, finished = raw.get("started_at"), raw.get("finished_at")
    return {
        "batch": status.id,
        "name": status.name,
        "state": status.state,
        "jobs": [
            {"name": job["name"] or job["type"], "summary": job.get("summary") or []}
            for job in raw.get("jobs", [])
        ],
        "segments": {k: status.segments[k] for k in ("total", "done", "failed", "canceled")},
        "nodes": sorted({seg["node"] for seg in segments if seg["node"]}),
        "elapsed": round(finished - started, 3) if started and finished else 0.0,
        "failed": failed,
    }


# Actions that do nothing to a batch that has ended (resubmit is what moves one).
ENDED_BATCH_UNMOVED = frozenset({"cancel", "pause", "resume"})


def _action(action: str, past: str, help: str) -> None:
    """Register ``qfarm ACTION BATCH``: one of the batch actions of the API."""

    def command(batch: BatchArg, controller: ControllerOpt = None, token: TokenOpt = None) -> None:
        client = connect(controller, token)
        if action in ENDED_BATCH_UNMOVED:
            before = client.batch(batch)
            if before.finished:
                # Said plainly: "canceled (done)" read as if the cancel had done something.
                out.print(
                    f"batch {batch} is already {before.state}: nothing was {past}",
                    highlight=False,
                )
                return
        status = client.action(batch, action)
        out.print(f"batch {batch} {past} ({status.state})", highlight=False)

    app.command(action, help=help, epilog=f"**Example**\n\n    qfarm {action} 12")(command)


_action("cancel", "canceled", "Cancel a batch: queued work at once, running processes killed.")
_action("pause", "paused", "Pause a batch: no new segments start; running ones finish.")
_action("resume", "resumed", "Resume a paused or held batch.")
_action("resubmit", "resubmitted", "Run a failed or canceled batch's unfinished segments again.")


@app.command(
    epilog="""**Examples**

    qfarm remove 12

    qfarm remove $(qfarm batches --json | jq '.[] | select(.state == "done") | .id')
"""
)
def remove(
    batches: Annotated[
        list[int], typer.Argument(metavar="BATCH", help="The ids of ended batches.")
    ],
    controller: ControllerOpt = None,
    token: TokenOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Remove ended batches from the controller: their records, logs, outputs in cluster
    storage and the uploads only they used. A batch still going must be canceled first."""
    client = connect(controller, token)
    for batch in batches:
        client.remove(batch)
        if not as_json:
            out.print(f"batch {batch} removed", highlight=False)
    if as_json:
        print_json({"removed": batches})


@app.command(epilog="**Example**\n\n    qfarm priority 12 high")
def priority(
    batch: BatchArg,
    level: Annotated[str, typer.Argument(metavar="LEVEL", help="high, medium, low or 0-100.")],
    controller: ControllerOpt = None,
    token: TokenOpt = None,
) -> None:
    """Change a batch's priority; its queued segments move at once."""
    status = connect(controller, token).set_priority(batch, level)
    out.print(f"batch {batch} priority {priority_label(status.priority)}", highlight=False)


@app.command(epilog="**Example**\n\n    qfarm nodes --json")
def nodes(
    controller: ControllerOpt = None, token: TokenOpt = None, as_json: JsonOpt = False
) -> None:
    """List the service nodes the controller knows."""
    rows = connect(controller, token).nodes()
    if as_json:
        print_json(rows)
        return
    table = Table("node", "state", "services", "host", "cores", "version", "tools", "note")
    for n in rows:
        fingerprint = dict(n["fingerprint"])
        fingerprint.pop("python", None)
        version = fingerprint.pop("qfarm", "?")
        tools = ", ".join(f"{tool} {v}" for tool, v in sorted(fingerprint.items())) or "-"
        table.add_row(
            n["name"], n["state"], ", ".join(f"{k}={v}" for k, v in n["services"].items()),
            n["host"], str(n["cores"]), version, tools, n["refused"],
        )  # fmt: skip
    out.print(table)


@app.command(epilog="**Examples**\n\n    qfarm logs 12\n\n    qfarm logs 12 --segment 3")
def logs(
    batch: BatchArg,
    segment: Annotated[
        int | None, typer.Option("--segment", "-s", help="Only this segment (its number).")
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
    controller: ControllerOpt = None,
    token: TokenOpt = None,
) -> None:
    """Print the log of each segment's last attempt: the whole file where this machine can
    read it (shared storage, or the controller's machine), else the tail the controller keeps.
    """
    client = connect(controller, token)
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
        if not attempts:
            continue
        last = attempts[-1]
        out.print(
            f"== segment {seg['index']} ({seg['label']}) attempt {last['number']} "
            f"on {last['node']}: {last['outcome'] or seg['state']}",
            style="bold",
            highlight=False,
        )
        path = Path(last["log_path"]) if last["log_path"] else None
        if path is not None and path.is_file():
            out.print(path.read_text(errors="replace"), end="", markup=False, highlight=False)
        elif last["log_tail"]:
            out.print(last["log_tail"], markup=False, highlight=False)


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


@app.command(epilog="**Example**\n\n    qfarm clusters --json")
def clusters(
    seconds: Annotated[float, typer.Option("--seconds", help="How long to listen.")] = 1.5,
    as_json: JsonOpt = False,
) -> None:
    """List the controllers that announce themselves on the local network (mDNS)."""
    from qfarm.discovery import browse

    found = browse(seconds)
    if as_json:
        print_json([{"name": f.name, "url": f.url, "version": f.version} for f in found])
        return
    table = Table("controller", "url", "version")
    for f in found:
        table.add_row(f.name, f.url, f.version)
    out.print(table)
