"""The ``qfarm`` command line (Typer + Rich).

Exit codes are :class:`ExitCode`, the same for every command.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from qfarm import __version__, config
from qfarm.cli import batchfile
from qfarm.domain.errors import InvalidRequest, NotFound, QfarmError
from qfarm.domain.model import (
    BatchCounts,
    BatchRequest,
    BatchState,
    JobRequest,
    SegmentState,
    parse_priority,
)
from qfarm.domain.units import duration

if TYPE_CHECKING:
    from qfarm.engine.base import NodeSpec
    from qfarm.store import PlannedJob, Store


class ExitCode(IntEnum):
    """Every command's exit status, defined here only, so that a script can tell a failed
    batch from a typo, a controller that is down and an id that does not exist."""

    DONE = 0  # the batch is done, the command did what it was asked
    FAILED = 1  # the batch failed or was canceled; the controller refused the action
    USAGE = 2  # a usage error: nothing was started
    UNREACHABLE = 3  # the controller cannot be reached
    NOT_FOUND = 4  # no such batch, segment or node
    INTERRUPTED = 130  # Ctrl-C: the batch was canceled and its processes ended


def exit_code_of(exc: QfarmError) -> ExitCode:
    """The exit status of an error that reached the top of a command."""
    if isinstance(exc, NotFound):
        return ExitCode.NOT_FOUND
    if isinstance(exc, InvalidRequest):
        return ExitCode.USAGE
    # Imported here: only a client command can have raised it, and then it is loaded.
    from qfarm.client import ControllerUnreachable

    if isinstance(exc, ControllerUnreachable):
        return ExitCode.UNREACHABLE
    return ExitCode.FAILED


# Markup off: batch names, file names and errors come from users, and "[final]" in a file
# name is text, not a style. Styles are given explicitly where we want them.
out = Console(markup=False)
err = Console(stderr=True, markup=False)


def print_error(message: object) -> None:
    """One line on stderr: ``qfarm: error: ...``."""
    err.print(Text.assemble(("qfarm: error: ", "bold red"), str(message)), soft_wrap=True)


app = typer.Typer(
    name="qfarm",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="markdown",
)


# The metavar of a boolean flag: without one, Typer 0.29 shows its type, "<bool>", as if it
# took a value.
FLAG = ""


def hide_the_help_flags_type() -> None:
    """Typer 0.29 shows "<bool>" beside every command's -h/--help too, an option it makes
    itself, out of reach of our metavars: each one it makes gets the flag metavar as well."""
    from typer._click.core import Command

    make = Command.get_help_option
    if getattr(make, "qfarm_flag", False):
        return

    def get_help_option(self: Command, ctx: Any) -> Any:
        option = make(self, ctx)
        if option is not None and option.metavar is None:
            option.metavar = FLAG
        return option

    get_help_option.qfarm_flag = True  # type: ignore[attr-defined]
    Command.get_help_option = get_help_option  # type: ignore[method-assign]


hide_the_help_flags_type()


def _version(value: bool) -> None:
    if value:
        out.print(f"qfarm {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_version,
        is_eager=True,
        metavar=FLAG,
        help="Print the version and exit.",
    ),
) -> None:
    """qfarm: batches of jobs, split into segments, run on a cluster of service nodes.

    **Examples**

        qfarm run --frames 1-100 --segment-size 10 -- sh -c 'echo frames {start}-{end}'

        qfarm run --each '*.mov' -o '{stem}.txt' -- sh -c 'wc -c < "$1" > "$2"' sh {input} {output}

        qfarm run transcode interview.mov --preset h264-720p

        qfarm run render shot.blend --frames 1-240 --segment-size 10

    Run `qfarm COMMAND --help` for each command's options and examples, and `qfarm run
    transcode --help` or `qfarm run render --help` for those job types'.

    **Exit codes**: 0 done, 1 failed (or canceled), 2 usage error, 3 cannot reach the
    controller, 4 not found, 130 interrupted.
    """


def print_json(value: Any) -> None:
    """Machine-readable output of --json: JSON on stdout, nothing else."""
    out.print_json(json.dumps(value))


def fail_usage(message: str) -> typer.Exit:
    print_error(message)
    return typer.Exit(ExitCode.USAGE)


def parse_env(pairs: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InvalidRequest(f"--env {pair!r} is not NAME=VALUE")
        env[name] = value
    return env


def split_command(text: str, option: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as exc:
        raise InvalidRequest(f"{option} {text!r} cannot be split into arguments: {exc}") from None


def parse_exit_codes(text: str) -> list[int]:
    try:
        return sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise InvalidRequest(f"--ok-exit {text!r} is not a list of numbers like 0,1") from None


RUN_EPILOG = """
**Examples**

Ten segments of ten frames, run in parallel on the local service nodes:

    qfarm run --frames 1-100 --segment-size 10 -- sh -c 'echo rendering {start}-{end}; sleep 0.5'

One segment per file, each writing its own output (renamed into place when it succeeds);
the file names go to the shell as arguments, "$1" and "$2", so spaces in them are safe:

    qfarm run --each '*.mov' -o '{stem}.txt' -- sh -c 'wc -c < "$1" > "$2"' sh {input} {output}

A command that runs once per frame, zero-padded, with a timeout and exit code 1 allowed:

    qfarm run --frames 1-240x2 --timeout 60 --ok-exit 0,1 -- printf 'frame %s\\n' {frame:04d}

Several jobs, with dependencies, from a batch file (see README):

    qfarm run shot12.toml

Job types with options of their own (each has --help):

    qfarm run transcode interview.mov --preset h264-720p -o web/

    qfarm run render shot.blend --frames 1-240 --segment-size 10 -o frames/ --movie h264

**Placeholders**: {start} {end} {step} {frame} {segment} {input} {stem} {output};
write {{ and }} for literal braces.
"""


# Options of a command job, shared by `qfarm run` and `qfarm submit`.
CommandArg = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="COMMAND",
        help="The command and its arguments, after --.",
        show_default=False,
    ),
]
FramesOpt = Annotated[
    str | None,
    typer.Option("--frames", "-f", help="Frame list: 1-240, 1-240x2 (step 2), 1,5,10-20."),
]
SegmentSizeOpt = Annotated[int, typer.Option("--segment-size", "-s", help="Frames per segment.")]
EachOpt = Annotated[
    list[str] | None,
    typer.Option("--each", "-e", help="Glob of input files: one segment per file. Repeatable."),
]
OutputOpt = Annotated[
    str | None,
    typer.Option("--output", "-o", help="Output path pattern, e.g. 'out/{stem}.mp4'."),
]
CwdOpt = Annotated[
    Path | None, typer.Option("--cwd", help="Working directory of the command [default: here].")
]
EnvOpt = Annotated[
    list[str] | None, typer.Option("--env", help="NAME=VALUE for the command. Repeatable.")
]
TimeoutOpt = Annotated[
    float | None,
    typer.Option("--timeout", help="Seconds one segment attempt may run before it is killed."),
]
RetriesOpt = Annotated[int, typer.Option("--retries", help="Retries of a failed segment.")]
OkExitOpt = Annotated[
    str, typer.Option("--ok-exit", help="Exit codes that mean success, e.g. 0,1.")
]
PreflightOpt = Annotated[
    str | None,
    typer.Option("--preflight", help="Command run once on each node before its first segment."),
]
NameOpt = Annotated[str, typer.Option("--name", "-n", help="A name for the batch.")]
PriorityOpt = Annotated[
    str, typer.Option("--priority", help="high, medium (the default), low, or 0-100.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the outcome as JSON.", metavar=FLAG)]
# Options of the embedded cluster, shared by `qfarm run` and the job types' `run` commands.
NodesOpt = Annotated[
    int | None,
    typer.Option("--nodes", help="Local service nodes to start [default: 2 on 2+ cores]."),
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Where the store and logs live [env: QFARM_DATA_DIR]."),
]
DbOpt = Annotated[
    str | None,
    typer.Option("--db", help="SQLAlchemy database URL [default: SQLite in the data dir]."),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.", metavar=FLAG)]
FollowOpt = Annotated[
    bool,
    typer.Option(
        "--follow",
        "-v",
        metavar=FLAG,
        help="Print each segment's output on stdout as it comes, each line prefixed with its "
        "segment: [3] ... (off with --json).",
    ),
]
FreshOpt = Annotated[
    bool,
    typer.Option(
        "--fresh",
        metavar=FLAG,
        help="Start over: a new batch, even when an interrupted run of the same command "
        "left one to resume.",
    ),
]
# Options of a submission to a controller, shared by `qfarm submit` and its job-type forms.
HoldOpt = Annotated[
    bool,
    typer.Option("--hold", help="Submit on hold: nothing runs until resumed.", metavar=FLAG),
]
StartAtOpt = Annotated[
    str | None, typer.Option("--start-at", help="Run no earlier than: 22:00, an ISO time.")
]


def command_batch(
    *,
    command: list[str] | None,
    frames: str | None,
    segment_size: int,
    each: list[str] | None,
    output: str | None,
    cwd: Path | None,
    env: list[str] | None,
    timeout: float | None,
    retries: int,
    ok_exit: str,
    preflight: str | None,
    name: str,
    priority: str,
    hold: bool = False,
    start_at: float | None = None,
) -> BatchRequest:
    """A one-job batch from the command-job options. Raises InvalidRequest."""
    spec: dict[str, Any] = {
        "command": command or [],
        "frames": frames,
        "segment_size": segment_size,
        "each": each or None,
        "output": output,
        # Resolved here: a controller elsewhere must get the client's working directory.
        "cwd": str((cwd or Path.cwd()).resolve()),
        "env": parse_env(env or []),
        "ok_exit": parse_exit_codes(ok_exit),
        "preflight": split_command(preflight, "--preflight") if preflight else [],
    }
    try:
        level = parse_priority(priority)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    return BatchRequest(
        jobs=(
            JobRequest(job_type="command", spec=spec, name=name, retries=retries, timeout=timeout),
        ),
        name=name or " ".join(command or [])[:80],
        priority=level,
        hold=hold,
        start_at=start_at,
    )


@app.command(
    epilog=RUN_EPILOG,
    context_settings={"allow_interspersed_args": False},
)
def run(
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
    nodes: NodesOpt = None,
    instances: Annotated[
        int | None,
        typer.Option(
            "--instances",
            help="Instances of each service per node [default: command cores / nodes, "
            "transcode 1].",
        ),
    ] = None,
    data_dir: DataDirOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    follow: FollowOpt = False,
    fresh: FreshOpt = False,
) -> None:
    """Run one job on an embedded cluster (a controller and local service nodes) and wait.

    The job is split into segments by --frames or --each (or runs whole), the segments run in
    parallel on the local nodes' instances, and the command exits with the batch's outcome:
    0 done, 1 failed, 2 usage error, 130 interrupted (see `qfarm --help`). Run the same
    command again after an interruption and it carries on: segments already done are kept
    (--fresh starts over).
    """
    if command and command[0] in JOB_COMMANDS:
        # `qfarm run transcode ...`: a job type's own command line, with its own options.
        raise typer.Exit(invoke_job_command(command[0], "run", command[1:]))
    try:
        if batchfile.is_batch_file(command):
            assert command is not None
            request = batchfile.load(command[0])
        else:
            check_program(command, env=parse_env(env or []))
            request = command_batch(
                command=command, frames=frames, segment_size=segment_size, each=each,
                output=output, cwd=cwd, env=env, timeout=timeout, retries=retries,
                ok_exit=ok_exit, preflight=preflight, name=name, priority=priority,
            )  # fmt: skip
    except InvalidRequest as exc:
        raise fail_usage(str(exc)) from None
    where = f"batch file {command[0]}: " if command and batchfile.is_batch_file(command) else ""
    raise typer.Exit(
        run_request(
            request, nodes=nodes, instances=instances, data_dir=data_dir, db=db,
            as_json=as_json, quiet=quiet, where=where, fresh=fresh, follow=follow,
        )
    )  # fmt: skip


# Job types with a command line of their own, `qfarm run NAME ...` and `qfarm submit NAME
# ...`, by the module that holds it (its invoke(mode, args) returns the exit code).
JOB_COMMANDS: dict[str, str] = {
    "transcode": "qfarm.cli.transcode",
    "render": "qfarm.cli.render",
}


def check_program(command: list[str] | None, env: dict[str, str]) -> None:
    """Refuse a command whose program is not on PATH (the job's PATH where --env sets one)
    before anything starts: ``qfarm run movie`` is a mistyped job type far more often than
    a program that appears later. A path (``./tool``, ``/opt/x``) is left to the job."""
    if not command or "/" in command[0]:
        return
    import shutil

    if shutil.which(command[0], path=env.get("PATH")) is None:
        types = ", ".join(sorted(JOB_COMMANDS))
        raise InvalidRequest(
            f"{command[0]!r} is neither a job type ({types}) nor a program on PATH "
            "(see qfarm run --help)"
        )


def invoke_job_command(name: str, mode: str, args: list[str]) -> int:
    import importlib

    module = importlib.import_module(JOB_COMMANDS[name])
    code: int = module.invoke(mode, args)
    return code


def single_command_app() -> typer.Typer:
    """A Typer app of one command: a job type's `qfarm run NAME` or `qfarm submit NAME`."""
    return typer.Typer(
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"]},
        rich_markup_mode="markdown",
    )


def invoke_single(command_app: typer.Typer, args: list[str], prog: str) -> int:
    """Run a single-command app on ``args`` as ``prog``; its exit code."""
    command = typer.main.get_command(command_app)
    try:
        command.main(args=args, prog_name=prog, standalone_mode=True)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (1 if exit_.code else 0)
    return 0


def run_request(
    request: BatchRequest,
    *,
    nodes: int | None,
    instances: int | None,
    data_dir: Path | None,
    db: str | None,
    as_json: bool,
    quiet: bool,
    where: str = "",
    fresh: bool = False,
    follow: bool = False,
) -> int:
    """Plan ``request``, run it on an embedded cluster, report, and return the exit code.
    ``where`` prefixes planning errors (the batch file's name). An unfinished batch of the
    same request that no live process runs is resumed, unless ``fresh``. ``follow`` prints
    the segments' output as it comes (not with ``as_json``)."""
    try:
        if nodes is not None and nodes < 1:
            raise InvalidRequest("--nodes must be at least 1")
        if instances is not None and instances < 1:
            raise InvalidRequest("--instances must be at least 1")
        # Imported here, not at the top: --help and usage errors need not load Dask.
        from qfarm.controller.local import default_local_nodes
        from qfarm.controller.planning import plan_batch, services_of
        from qfarm.store import Store

        local_nodes = default_local_nodes(nodes, instances, services_of(request))
        farm: Counter[str] = Counter()
        for spec in local_nodes:
            farm.update(spec.services)
        # Plan, and open the store, before anything starts: a bad job or database URL
        # costs no cluster start-up and leaves nothing behind.
        try:
            planned = plan_batch(request, farm)
        except InvalidRequest as exc:
            raise InvalidRequest(f"{where}{exc}") from None
        directory = config.data_dir(data_dir)
        store = Store(config.database_url(db, directory, config.RUNS_DB))
    except InvalidRequest as exc:
        print_error(exc)
        return ExitCode.USAGE
    except KeyboardInterrupt:
        return interrupted_early()

    try:
        shown = RunDisplay(
            as_json=as_json, bar=not (quiet or as_json), follow=follow and not as_json
        )
        return _claim_and_run(request, planned, store, directory, local_nodes, shown, fresh=fresh)
    except KeyboardInterrupt:
        return interrupted_early()
    finally:
        store.close()


@dataclass(frozen=True)
class RunDisplay:
    """What ``qfarm run`` shows while its batch runs and after."""

    as_json: bool  # the report as JSON on stdout, nothing else there
    bar: bool  # a progress bar on stderr
    follow: bool  # the segments' output on stdout, as it comes


def interrupted_early() -> int:
    """Ctrl-C before a batch's own handlers were in place (loading, planning, starting):
    one line, no traceback; whatever was stored is resumed by the next run."""
    err.print("interrupted", highlight=False)
    return ExitCode.INTERRUPTED


def _claim_and_run(
    request: BatchRequest,
    planned: list[PlannedJob],
    store: Store,
    directory: Path,
    local_nodes: list[NodeSpec],
    shown: RunDisplay,
    *,
    fresh: bool,
) -> int:
    """Resume the request's unfinished batch or store a new one, and run it."""
    from qfarm.controller.local import claim_run
    from qfarm.jobtypes.supervisor import RECORD_DIR_ENV

    claim = claim_run(store, directory / "runs", request, planned, fresh=fresh)
    # The local nodes record their segments' process groups there (read in the workers,
    # which this process starts): the next run ends any that outlive a killed run.
    os.environ[RECORD_DIR_ENV] = str(claim.records)
    try:
        if claim.resumed:
            err.print(
                f"resuming batch {claim.batch_id}: {claim.done} of {claim.total} segments "
                "already done (--fresh starts over)",
                highlight=False,
            )
        return asyncio.run(_run_embedded(claim.batch_id, store, directory, local_nodes, shown))
    finally:
        claim.lock.release()


def route_warnings_to_log(path: Path) -> None:
    """Library warnings and log records (Dask's port and heartbeat warnings, say) go to
    ``path``, never to the user's terminal, which shows qfarm's own output only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    handler.setLevel(logging.WARNING)
    logging.captureWarnings(True)
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    # Dask gives its logger a handler on stderr of its own: it goes, the file takes over.
    dask_log = logging.getLogger("distributed")
    for old in list(dask_log.handlers):
        dask_log.removeHandler(old)
    dask_log.propagate = True
    dask_log.setLevel(logging.WARNING)


async def _run_embedded(
    batch_id: int,
    store: Store,
    directory: Path,
    local_nodes: list[NodeSpec],
    shown: RunDisplay,
) -> int:
    from qfarm.controller.service import ENGINE_LOG, Controller

    route_warnings_to_log(config.logs_dir(directory) / ENGINE_LOG)

    interrupted = asyncio.Event()  # the first Ctrl-C: cancel the batch, then report
    forced = asyncio.Event()  # a second one: stop waiting for the kills, leave at once
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        (forced if interrupted.is_set() else interrupted).set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    started = time.monotonic()
    controller = await Controller.embedded(store, directory, local_nodes)
    try:
        controller.adopt(batch_id)
        waiter = asyncio.create_task(controller.wait(batch_id, poll=0.02))
        display = None
        if shown.bar:
            display = asyncio.create_task(_show_progress(store, batch_id, waiter))
        following = None
        if shown.follow:
            following = asyncio.create_task(_follow_output(store, batch_id, waiter))
        stop = asyncio.create_task(interrupted.wait())
        await asyncio.wait({waiter, stop}, return_when=asyncio.FIRST_COMPLETED)
        if interrupted.is_set() and not waiter.done():
            err.print(
                f"interrupted: batch {batch_id} stopped; run the same command again to resume "
                "it (Ctrl-C again to leave now)",
                highlight=False,
                soft_wrap=True,
            )
            await controller.cancel(batch_id, "interrupted")
            leave = asyncio.create_task(forced.wait())
            await asyncio.wait({waiter, leave}, return_when=asyncio.FIRST_COMPLETED)
            leave.cancel()
        stop.cancel()
        if forced.is_set():
            waiter.cancel()
            for task in (display, following):
                if task is not None:
                    task.cancel()
            # Closing the cluster ends every segment process (the workers' close hook).
            return ExitCode.INTERRUPTED
        for task in (following, display):  # the last output, above the bar's last state
            if task is not None:
                await task
        batch = waiter.result()
    finally:
        await controller.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    elapsed = time.monotonic() - started
    report = batch_report(store, batch_id, elapsed)
    if shown.as_json:
        print_json(report)
    elif not interrupted.is_set():  # an interruption said all in its one line
        print_report(report)
    if interrupted.is_set():
        return ExitCode.INTERRUPTED
    return ExitCode.DONE if batch.state is BatchState.DONE else ExitCode.FAILED


def segments_text(counts: BatchCounts) -> Text:
    """A batch's segments as a progress bar shows them, each outcome apart ("2 done · 1
    failed · 1 canceled of 4 segments"): a count of ended segments read as success after a
    cancel or a failure. Running, failed and canceled appear once there are some."""
    parts = [(f"{counts.done} done", "green")]
    others = (
        (counts.running + counts.dispatched, "running", "cyan"),
        (counts.failed, "failed", "red"),
        (counts.canceled, "canceled", "yellow"),
    )
    parts += [(f"{number} {word}", style) for number, word, style in others if number]
    text = Text()
    for number, (words, style) in enumerate(parts):
        if number:
            text.append(" · ")
        text.append(words, style=style)
    text.append(f" of {counts.total} segments")
    return text


class SegmentsColumn(ProgressColumn):
    """The progress bar's column of :func:`segments_text`, from the task's ``counts``."""

    def render(self, task: Task) -> Text:
        counts: BatchCounts | None = task.fields.get("counts")
        return segments_text(counts) if counts is not None else Text("")


class BatchProgress:
    """The progress bar of one batch: its work done (frames, counting the reported part of
    running segments), its segments by outcome, elapsed, ETA. On stderr, so stdout stays
    clean for --json and scripts.
    """

    def __init__(self, batch_id: int, console: Console = err) -> None:
        self.progress = Progress(
            TextColumn(f"[bold]batch {batch_id}"),
            BarColumn(),
            TaskProgressColumn(),
            SegmentsColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            # Lines written to stdout (--follow) go above the bar when stdout is the
            # terminal too, and straight to stdout when it is a file or a pipe.
            redirect_stdout=out.is_terminal,
        )
        self.task = self.progress.add_task("batch", total=None, counts=None)

    def __enter__(self) -> BatchProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def update(self, counts: BatchCounts) -> None:
        if counts.work_total > 0:
            total, completed = counts.work_total, counts.work_done
        else:
            total, completed = float(counts.total), float(counts.finished)
        self.progress.update(self.task, total=total, completed=completed, counts=counts)


async def _show_progress(store: Store, batch_id: int, waiter: asyncio.Task[Any]) -> None:
    with BatchProgress(batch_id) as bar:
        while True:
            bar.update(store.counts(batch_id))
            if waiter.done():
                break
            # Five times a second, and at once when the batch ends.
            await asyncio.wait({waiter}, timeout=0.2)


@dataclass
class OutputFollower:
    """A batch's segment output as it is written, each line prefixed with its segment
    (``[3] line``, or ``[job 3] line`` in a batch of several jobs): every attempt's log is
    read on from where it was left. An embedded run's logs are files on this machine.
    Attempts that had ended before it started (a resumed batch's) are not shown again."""

    store: Store
    batch_id: int
    write: Callable[[str], None]
    prefixes: dict[int, str] = field(default_factory=dict)  # by segment id
    offsets: dict[tuple[int, int], int] = field(default_factory=dict)  # by attempt
    partial: dict[tuple[int, int], bytes] = field(default_factory=dict)  # its unended line
    ended: set[tuple[int, int]] = field(default_factory=set)

    def __post_init__(self) -> None:
        jobs = {job.id: job for job in self.store.jobs(self.batch_id)}
        for seg in self.store.segments(self.batch_id):
            job = jobs[seg.job_id]
            named = f"{job.name or job.job_type} " if len(jobs) > 1 else ""
            self.prefixes[seg.id] = f"[{named}{seg.index}]"
        self.ended = {
            (a.segment_id, a.number)
            for a in self.store.batch_attempts(self.batch_id)
            if a.ended_at is not None
        }

    def poll(self, final: bool = False) -> None:
        """Print what was written since the last poll; ``final``: the batch has ended, so
        a last line without its newline is printed too."""
        for attempt in self.store.batch_attempts(self.batch_id):
            key = (attempt.segment_id, attempt.number)
            if key in self.ended or not attempt.log_path:
                continue
            # ended_at is read before the log: an ended attempt's log is whole.
            done = final or attempt.ended_at is not None
            self._read(key, Path(attempt.log_path), done)
            if done:
                self.ended.add(key)

    def _read(self, key: tuple[int, int], path: Path, done: bool) -> None:
        try:
            with open(path, "rb") as fh:
                fh.seek(self.offsets.get(key, 0))
                data = fh.read()
        except FileNotFoundError:  # not started yet
            return
        self.offsets[key] = self.offsets.get(key, 0) + len(data)
        lines = (self.partial.pop(key, b"") + data).split(b"\n")
        last = lines.pop()
        if done and last:
            lines.append(last)
        elif last:
            self.partial[key] = last
        prefix = self.prefixes.get(key[0], "[?]")
        for line in lines:
            self.write(f"{prefix} {line.decode(errors='replace').rstrip(chr(13))}")


def write_line(text: str) -> None:
    """One line on stdout as it is now: above the progress bar while one is shown."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


async def _follow_output(store: Store, batch_id: int, waiter: asyncio.Task[Any]) -> None:
    follower = OutputFollower(store, batch_id, write_line)
    while not waiter.done():
        follower.poll()
        await asyncio.wait({waiter}, timeout=0.1)
    follower.poll(final=True)


def batch_report(store: Any, batch_id: int, elapsed: float) -> dict[str, Any]:
    """What a finished batch looks like, for people and for --json."""
    batch = store.batch(batch_id)
    counts = store.counts(batch_id)
    segments = store.segments(batch_id)
    failed = []
    for seg in segments:
        if seg.state is not SegmentState.FAILED:
            continue
        attempts = store.attempts(seg.id)
        last = attempts[-1] if attempts else None
        failed.append(
            {
                "segment": seg.index,
                "label": seg.label,
                "node": last.node if last else seg.node,
                "attempts": len(attempts),
                "exit_code": last.exit_code if last else None,
                "error": seg.error,
                "log_tail": last.log_tail if last else "",
                "log_path": last.log_path if last else "",
            }
        )
    nodes = sorted({seg.node for seg in segments if seg.node})
    from qfarm.jobtypes import job_summary  # the job types are loaded by then

    jobs = [
        {"name": job.name or job.job_type, "summary": job_summary(job.job_type, job.spec)}
        for job in store.jobs(batch_id)
    ]
    return {
        "batch": batch.id,
        "name": batch.name,
        "state": batch.state.value,
        "jobs": jobs,
        "segments": {
            "total": counts.total,
            "done": counts.done,
            "failed": counts.failed,
            "canceled": counts.canceled,
        },
        "nodes": nodes,
        "elapsed": round(elapsed, 3),
        "failed": failed,
    }


def print_report(report: dict[str, Any]) -> None:
    colour = {"done": "green", "failed": "red", "canceled": "yellow"}.get(report["state"], "")
    seg = report["segments"]
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_row("batch", f"{report['batch']} {report['name']}")
    table.add_row("state", Text(report["state"], style=f"bold {colour}"))
    table.add_row(
        "segments",
        f"{seg['done']} done, {seg['failed']} failed, {seg['canceled']} canceled of {seg['total']}",
    )
    table.add_row("nodes", ", ".join(report["nodes"]) or "-")
    table.add_row("elapsed", duration(report["elapsed"]))
    err.print(table)
    print_summaries(report.get("jobs", []), err)
    for f in report["failed"]:
        err.print(
            f"segment {f['segment']} ({f['label']}) failed on {f['node']} after "
            f"{f['attempts']} attempt(s): {f['error']}",
            style="red",
            highlight=False,
            soft_wrap=True,
        )
        if f["log_tail"]:
            for line in f["log_tail"].splitlines():
                err.print(f"    {line}", highlight=False, markup=False, soft_wrap=True)
        if f["log_path"]:
            err.print(f"    log: {f['log_path']}", highlight=False, soft_wrap=True)


def print_summaries(jobs: list[dict[str, Any]], console: Console) -> None:
    """Each job's summary lines, each prefixed by the job's name."""
    for job in jobs:
        for line in job.get("summary") or []:
            console.print(f"{job['name']}: {line}", highlight=False, soft_wrap=True)


def register_commands(argv: list[str]) -> None:
    """Load the modules that add the other commands, unless this is `qfarm run` of a
    command job or a batch file: they bring the HTTP client, the token code and the media
    presets, which such a run never uses (about a tenth of its start-up)."""
    if argv[:1] == ["run"] and not (len(argv) > 1 and argv[1] in JOB_COMMANDS):
        return
    import qfarm.cli.access
    import qfarm.cli.cluster
    import qfarm.cli.transcode  # noqa: F401  (and `qfarm presets`)


def main() -> None:
    register_commands(sys.argv[1:])
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(interrupted_early())
    except QfarmError as exc:
        print_error(exc)
        sys.exit(exit_code_of(exc))
