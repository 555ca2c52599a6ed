"""The client commands: a batch submitted to a controller over its HTTP API, then watched
(``batches``, ``show``, ``wait``, ``logs``), moved (``cancel``, ``pause`` and ``pause
--suspend``, ``resume``, ``resubmit``, ``priority``) and removed; the outputs fetched; the
nodes and the controllers on the network listed.

Each names its controller with ``--controller URL`` or ``$QFARM_CONTROLLER``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from qfarm.cli import batchfile
from qfarm.cli.app import app
from qfarm.cli.command_job import CommandJob
from qfarm.cli.common import FLAG, ExitCode, err, fail_usage, out, print_json
from qfarm.cli.job_commands import invoke_job_command, is_job_command
from qfarm.cli.openjd_detect import is_template
from qfarm.cli.options import BatchArg, Connection, JsonOpt, QuietOpt, Schedule, with_option_sets
from qfarm.cli.progress import BatchProgress
from qfarm.cli.report import api_report, print_report, print_summaries
from qfarm.client import BatchStatus, Client
from qfarm.domain.errors import InvalidRequest
from qfarm.domain.model import BatchCounts, BatchRequest, priority_label
from qfarm.domain.requirements import Requirements
from qfarm.domain.units import duration, parse_duration


@app.command(
    context_settings={"allow_interspersed_args": False},
    epilog="""**Examples**

    qfarm submit --frames 1-240 --segment-size 10 -- blender -b shot.blend -s {start} -e {end} -a

    qfarm submit --priority high --hold --name nightly -- ./build-proxies.sh

    qfarm submit shot12.toml        # a batch file: several jobs, with depends_on

    qfarm submit transcode /mnt/shared/ep101.mov -p h264-1080p   # qfarm submit transcode --help

    qfarm submit render /mnt/shared/shot.blend --frames 1-240    # qfarm submit render --help

    qfarm submit /mnt/shared/job.template.yaml -p Frames=1-240   # an OpenJD template or bundle
""",
)
@with_option_sets
def submit(
    *,
    job: CommandJob,
    schedule: Schedule,
    upload: Annotated[
        bool,
        typer.Option(
            "--upload",
            metavar=FLAG,
            help="Send the inputs (--each files, and files the command names) to the "
            "controller, for nodes without shared storage; get outputs with qfarm fetch.",
        ),
    ] = False,
    remote: Connection,
    as_json: JsonOpt = False,
) -> None:
    """Submit a command job, or a batch file of several jobs, and print the new batch's id."""
    command = job.command
    if command and is_job_command(command):
        # `qfarm submit transcode ...`: a job type's own command line.
        raise typer.Exit(invoke_job_command(command[0], "submit", command[1:]))
    if command and is_template(command):
        # `qfarm submit job.template.yaml -p ...`: an OpenJD template or job bundle.
        from qfarm.cli import openjd

        before = openjd.given_options(
            env=job.env,
            name=job.name,
            priority=None if job.priority == "medium" else job.priority,
            retries=None if job.retries == 2 else job.retries,
            timeout=job.timeout,
            hold=schedule.hold,
            start_at=schedule.start_at,
            notify=schedule.notify or [],
            notify_on=None if schedule.notify_on == "ended" else schedule.notify_on,
            controller=remote.controller,
            token=remote.token,
            json=as_json,
        )
        raise typer.Exit(openjd.invoke_template("submit", command, before))
    try:
        if command and batchfile.is_batch_file(command):
            request = batchfile.load(command[0])
        else:
            request = job.batch(hold=schedule.hold, start_at=schedule.start_time())
        request = schedule.with_notify(request)
        client = remote.client()
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
@with_option_sets
def fetch(
    *,
    batch: BatchArg,
    dest: Annotated[Path, typer.Option("--output", "-o", help="Where to put them.")] = Path("."),
    remote: Connection,
) -> None:
    """Download a batch's outputs from cluster storage (jobs submitted with --upload)."""
    written = remote.client().fetch(batch, dest)
    out.print(f"{len(written)} file(s) from batch {batch} in {dest}", highlight=False)


BATCH_COLUMNS = (
    "batch", "name", "state", "priority", "done", "running", "failed", "elapsed", "ETA",
)  # fmt: skip


def eta_text(eta: float | None, now: float | None = None) -> str:
    """``in 4 min 05 s`` for an expected end, ``-`` when none is known."""
    if eta is None:
        return "-"
    return f"in {duration(max(0.0, eta - (time.time() if now is None else now)))}"


def running_text(seg: dict[str, int]) -> str:
    """The running column: segments out on nodes, with how many of them are suspended
    (``3 (2 suspended)``)."""
    suspended = seg.get("suspended", 0)
    running = seg["running"] + seg["dispatched"]
    return f"{running + suspended} ({suspended} suspended)" if suspended else str(running)


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
        running_text(seg),
        str(seg["failed"]),
        elapsed,
        eta_text(raw.get("eta")),
    ]


@app.command(epilog="**Example**\n\n    qfarm batches --json | jq '.[].state'")
@with_option_sets
def batches(remote: Connection, as_json: JsonOpt = False) -> None:
    """List the controller's batches."""
    rows = remote.client().batches()
    if as_json:
        print_json([r.raw for r in rows])
        return
    table = Table(*BATCH_COLUMNS)
    for status in rows:
        table.add_row(*batch_row(status))
    out.print(table)


def _with_needs(job: dict[str, Any]) -> dict[str, Any]:
    """A job of the API's answer with its requirements as one more line of its summary."""
    needs = Requirements.from_dict(job.get("requirements")).describe()
    summary = [*job.get("summary", []), *([f"requires {needs}"] if needs else [])]
    return {**job, "name": job["name"] or job["type"], "summary": summary}


@app.command(epilog="**Example**\n\n    qfarm show 12")
@with_option_sets
def show(batch: BatchArg, remote: Connection, as_json: JsonOpt = False) -> None:
    """Show one batch: its jobs and segments, where they ran and how they ended."""
    client = remote.client()
    status = client.batch(batch)
    segment_rows = client.segments(batch)
    if as_json:
        print_json({**status.raw, "segments_list": segment_rows})
        return
    table = Table(*BATCH_COLUMNS)
    table.add_row(*batch_row(status))
    out.print(table)
    jobs = Table("job", "type", "state", "progress", "ETA", "error or wait")
    for job in status.raw["jobs"]:
        done = f"{job.get('progress', 0.0):.0%}"
        note = job["error"] or (f"waiting: {job['waiting']}" if job.get("waiting") else "")
        jobs.add_row(job["name"], job["type"], job["state"], done, eta_text(job.get("eta")), note)
    out.print(jobs)
    print_summaries([_with_needs(job) for job in status.raw["jobs"]], out)
    job_names = {job["id"]: job["name"] for job in status.raw["jobs"]}
    segments = Table("job", "segment", "label", "state", "node", "attempts", "error")
    for seg in segment_rows:
        job = job_names.get(seg["job_id"], str(seg["job_id"]))
        cells = [job, str(seg["index"]), seg["label"], seg["state"], seg["node"] or "-"]
        segments.add_row(*cells, str(seg["attempts"]), seg["error"])
    out.print(segments)
    if status.raw.get("deliveries"):
        from qfarm.cli.notify import deliveries_table

        out.print(deliveries_table(status.raw["deliveries"]))


@app.command(epilog="**Example**\n\n    qfarm wait 12 && echo rendered")
@with_option_sets
def wait(batch: BatchArg, remote: Connection, quiet: QuietOpt = False) -> None:
    """Wait for a batch to end, with a progress bar; exit 0 if it is done, 1 otherwise (3: the
    controller cannot be reached, 4: no such batch)."""
    client = remote.client()
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


# Actions that do nothing to a batch that has ended (resubmit is what moves one).
ENDED_BATCH_UNMOVED = frozenset({"cancel", "pause", "suspend", "resume"})


def move_batch(client: Client, batch: int, action: str, past: str, as_json: bool) -> None:
    """Ask the controller for one of the batch actions of its API and say what came of it
    (with ``as_json``, the batch after, as the API answers it)."""
    if action in ENDED_BATCH_UNMOVED:
        before = client.batch(batch)
        if before.finished:
            if as_json:
                print_json(before.raw)
                return
            # Said plainly: "canceled (done)" read as if the cancel had done something.
            out.print(
                f"batch {batch} is already {before.state}: nothing was {past}", highlight=False
            )
            return
    status = client.action(batch, action)
    if as_json:
        print_json(status.raw)
        return
    suspended = status.segments.get("suspended", 0)
    stopped = f": {suspended} running segment(s) stopped" if action == "suspend" else ""
    out.print(f"batch {batch} {past} ({status.state}){stopped}", highlight=False)


def _action(action: str, past: str, help: str) -> None:
    """Register ``qfarm ACTION BATCH``: one of the batch actions of the API."""

    @with_option_sets
    def command(batch: BatchArg, remote: Connection, as_json: JsonOpt = False) -> None:
        move_batch(remote.client(), batch, action, past, as_json)

    app.command(action, help=help, epilog=f"**Example**\n\n    qfarm {action} 12")(command)


SuspendOpt = Annotated[
    bool,
    typer.Option(
        "--suspend",
        help="Also stop the batch's running processes where they are (SIGSTOP), holding "
        "their nodes' instances, until `qfarm resume` continues them (SIGCONT) from where "
        "they were. Refused for a batch running OpenJD jobs.",
        metavar=FLAG,
    ),
]


@app.command(
    epilog="""**Examples**

    qfarm pause 12              # no new segments start; running ones finish

    qfarm pause --suspend 12    # and running processes stop where they are

    qfarm resume 12             # dispatch again; suspended processes go on
"""
)
@with_option_sets
def pause(
    batch: BatchArg, remote: Connection, suspend: SuspendOpt = False, as_json: JsonOpt = False
) -> None:
    """Pause a batch: no new segments start; running ones finish, or with --suspend stop
    where they are until the batch is resumed."""
    action, past = ("suspend", "suspended") if suspend else ("pause", "paused")
    move_batch(remote.client(), batch, action, past, as_json)


_action(
    "resume",
    "resumed",
    "Resume a paused or held batch; processes stopped by `pause --suspend` go on from where "
    "they were.",
)


@app.command(
    epilog="""**Examples**

    qfarm remove 12

    qfarm remove --older-than 7d --dry-run

    qfarm remove $(qfarm batches --json | jq '.[] | select(.state == "done") | .id')
"""
)
@with_option_sets
def remove(
    remote: Connection,
    batches: Annotated[
        list[int] | None,
        typer.Argument(metavar="BATCH...", help="The ids of ended batches.", show_default=False),
    ] = None,
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            metavar="AGE",
            help="Every batch that ended longer ago than this: 12h, 7d, 4w.",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", metavar=FLAG, help="Only list what --older-than would remove."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove ended batches from the controller: their records, logs, outputs in cluster
    storage and the uploads only they used. A batch still going must be canceled first;
    --older-than never takes one. (`qfarm controller --keep 30d` does it by itself.)"""
    if bool(batches) == (older_than is not None):
        raise fail_usage("name the batches to remove, or give --older-than AGE (not both)")
    if dry_run and older_than is None:
        raise fail_usage("--dry-run goes with --older-than")
    client = remote.client()
    if older_than is not None:
        try:
            age = parse_duration(older_than, "--older-than")
        except InvalidRequest as exc:
            raise fail_usage(str(exc)) from None
        removed = client.remove_older(age, dry_run=dry_run)
        if as_json:
            print_json({"removed": removed, "dry_run": dry_run})
        else:
            verb = "would be removed" if dry_run else "removed"
            for batch in removed:
                out.print(f"batch {batch} {verb}", highlight=False)
            if not removed:
                out.print(f"no batch ended more than {older_than} ago", highlight=False)
        return
    for batch in batches or ():
        client.remove(batch)
        if not as_json:
            out.print(f"batch {batch} removed", highlight=False)
    if as_json:
        print_json({"removed": batches})


@app.command(epilog="**Example**\n\n    qfarm priority 12 high")
@with_option_sets
def priority(
    batch: BatchArg,
    level: Annotated[str, typer.Argument(metavar="LEVEL", help="high, medium, low or 0-100.")],
    remote: Connection,
) -> None:
    """Change a batch's priority; its queued segments move at once."""
    status = remote.client().set_priority(batch, level)
    out.print(f"batch {batch} priority {priority_label(status.priority)}", highlight=False)


@app.command(epilog="**Example**\n\n    qfarm nodes --json")
@with_option_sets
def nodes(remote: Connection, as_json: JsonOpt = False) -> None:
    """List the service nodes the controller knows."""
    rows = remote.client().nodes()
    if as_json:
        print_json(rows)
        return
    table = Table(
        "node", "state", "services", "tags", "resources", "host", "cores", "version", "tools",
        "note",
    )  # fmt: skip
    for n in rows:
        fingerprint = dict(n["fingerprint"])
        fingerprint.pop("python", None)
        version = fingerprint.pop("qfarm", "?")
        tools = ", ".join(f"{tool} {v}" for tool, v in sorted(fingerprint.items())) or "-"
        services = ", ".join(f"{k}={v}" for k, v in n["services"].items())
        # GPUs are the counted resource gpu: gpu=2 here.
        tags = ",".join(n.get("tags") or ()) or "-"
        counted = ",".join(f"{k}={v}" for k, v in sorted((n.get("resources") or {}).items()))
        cells = [n["name"], n["state"], services, tags, counted or "-", n["host"],
                 str(n["cores"]), version, tools]  # fmt: skip
        table.add_row(*cells, n["refused"] or n.get("hours", ""))
    out.print(table)


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
