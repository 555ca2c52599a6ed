"""``qfarm run``: one job, or a batch file of several, on an embedded cluster, waited for.

A job type's own command line (``qfarm run render ...``) is handed on through the registry
of :mod:`qfarm.cli.job_commands`.
"""

from __future__ import annotations

import shutil

import typer

from qfarm.cli import batchfile
from qfarm.cli.app import app
from qfarm.cli.command_job import CommandJob
from qfarm.cli.common import fail_usage
from qfarm.cli.embedded import run_request
from qfarm.cli.job_commands import JOB_COMMANDS, invoke_job_command, is_job_command
from qfarm.cli.openjd_detect import is_template
from qfarm.cli.options import (
    DataDirOpt,
    DbOpt,
    FollowOpt,
    FreshOpt,
    InstancesOpt,
    JsonOpt,
    NodesOpt,
    QuietOpt,
    with_option_sets,
)
from qfarm.domain.errors import InvalidRequest

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

An Open Job Description job template or job bundle (every step, in dependency order):

    qfarm run job.template.yaml -p Frames=1-10 --env studio-env.yaml

**Placeholders**: {start} {end} {step} {frame} {segment} {input} {stem} {output};
write {{ and }} for literal braces.
"""


@app.command(epilog=RUN_EPILOG, context_settings={"allow_interspersed_args": False})
@with_option_sets
def run(
    job: CommandJob,
    nodes: NodesOpt = None,
    instances: InstancesOpt = None,
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
    command = job.command
    if command and is_job_command(command):
        # `qfarm run transcode ...`: a job type's own command line, with its own options.
        raise typer.Exit(invoke_job_command(command[0], "run", command[1:]))
    if command and is_template(command):
        # `qfarm run job.template.yaml -p ...`: an OpenJD template or job bundle.
        from qfarm.cli import openjd

        before = openjd.given_options(
            env=job.env,
            name=job.name,
            priority=None if job.priority == "medium" else job.priority,
            retries=None if job.retries == 2 else job.retries,
            timeout=job.timeout,
            nodes=nodes,
            instances=instances,
            data_dir=data_dir,
            db=db,
            json=as_json,
            quiet=quiet,
            follow=follow,
            fresh=fresh,
        )
        raise typer.Exit(openjd.invoke_template("run", command, before))
    from_file = batchfile.is_batch_file(command)
    try:
        if command and from_file:
            request = batchfile.load(command[0])
        else:
            check_program(command, env=job.environment())
            request = job.batch()
    except InvalidRequest as exc:
        raise fail_usage(str(exc)) from None
    code = run_request(
        request,
        nodes=nodes,
        instances=instances,
        data_dir=data_dir,
        db=db,
        as_json=as_json,
        quiet=quiet,
        where=f"batch file {command[0]}: " if command and from_file else "",
        fresh=fresh,
        follow=follow,
    )
    raise typer.Exit(code)


def check_program(command: list[str] | None, env: dict[str, str]) -> None:
    """Refuse a command whose program is not on PATH (the job's PATH where --env sets one)
    before anything starts: ``qfarm run movie`` is a mistyped job type far more often than
    a program that appears later. A path (``./tool``, ``/opt/x``) is left to the job."""
    if not command or "/" in command[0]:
        return
    if shutil.which(command[0], path=env.get("PATH")) is None:
        types = ", ".join(sorted(JOB_COMMANDS))
        raise InvalidRequest(
            f"{command[0]!r} is neither a job type ({types}) nor a program on PATH "
            "(see qfarm run --help)"
        )
