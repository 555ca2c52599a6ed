"""Open Job Description on the command line: ``qfarm run TEMPLATE``, ``qfarm submit
TEMPLATE`` and ``qfarm openjd check|run``.

A job template (``.yaml``, ``.yml`` or ``.json`` whose ``specificationVersion`` is a
``jobtemplate-...``) or a job bundle folder (one with ``template.yaml|json``) in the place of
``qfarm run``'s command hands the rest of the command line to the OpenJD commands here, as a
job type's name does (``qfarm run render ...``). Everything else stays a command job.

openjd-model is loaded when a template is read, not with this module: ``qfarm run -- cmd``
and ``--help`` do not pay for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from qfarm.cli.app import app, invoke_single, single_command_app
from qfarm.cli.common import FLAG, fail_usage, out, print_json
from qfarm.cli.embedded import print_segment_logs, run_request
from qfarm.cli.options import (
    Connection,
    DataDirOpt,
    DbOpt,
    FollowOpt,
    FreshOpt,
    InstancesOpt,
    JobOptions,
    JsonOpt,
    NodesOpt,
    OptionSet,
    QuietOpt,
    Schedule,
    with_option_sets,
)
from qfarm.domain.errors import InvalidRequest
from qfarm.domain.model import BatchRequest, JobRequest, parse_priority

if TYPE_CHECKING:
    from qfarm.store import Store

# ------------------------------------------------------------------------ the options

TemplateArg = Annotated[
    str,
    typer.Argument(
        metavar="TEMPLATE",
        help="An OpenJD job template (.yaml, .yml, .json) or a job bundle folder.",
        show_default=False,
    ),
]


@dataclasses.dataclass(frozen=True)
class OpenJDJob(OptionSet):
    """A job template and what the command line gives it: parameter values, environment
    templates, the step to run and path mapping."""

    template: TemplateArg
    params: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            metavar="NAME=VALUE",
            help="A job parameter value, or file://values.yaml (a NAME: value mapping). "
            "Repeatable; later ones win.",
        ),
    ] = None
    params_file: Annotated[
        list[Path] | None,
        typer.Option(
            "--params", metavar="FILE", help="Parameter values from a file: -p file://FILE."
        ),
    ] = None
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env",
            metavar="ENV_TEMPLATE",
            help="An environment template, entered before the job's own. Repeatable.",
        ),
    ] = None
    step: Annotated[
        str | None,
        typer.Option(
            "--step",
            help="Run only this step, without its dependencies (as openjd run --step).",
        ),
    ] = None
    path_map: Annotated[
        list[str] | None,
        typer.Option(
            "--path-map",
            metavar="FROM=TO",
            help="A path mapping rule for the tasks (POSIX paths). Repeatable.",
        ),
    ] = None

    def parameter_args(self) -> list[str]:
        """``-p`` and ``--params`` as the loader takes them, files first."""
        files = [f"file://{Path(p).resolve()}" for p in self.params_file or []]
        return files + list(self.params or [])

    def environment_templates(self) -> list[Path]:
        """The ``--env`` paths; a ``NAME=VALUE`` (a command job's ``--env``) is refused."""
        return environment_templates(self.env or [])

    def path_mapping(self) -> dict[str, str]:
        mapping: dict[str, str] = {}
        for rule in self.path_map or []:
            source, sep, destination = rule.partition("=")
            if not sep or not source or not destination:
                raise InvalidRequest(f"--path-map {rule!r} is not FROM=TO")
            mapping[source] = destination
        return mapping


def environment_templates(values: Sequence[str]) -> list[Path]:
    """Environment template paths. With a template, ``--env`` names a file: a value with
    ``=`` that is no file is a command job's ``NAME=VALUE``, which a template cannot take."""
    paths = []
    for value in values:
        path = Path(value)
        if "=" in value and not path.is_file():
            raise InvalidRequest(
                f"--env {value!r}: with an OpenJD template, --env takes an environment "
                "template file, not NAME=VALUE (set variables in the template)"
            )
        paths.append(path)
    return paths


def only_step(jobs: list[JobRequest], step: str | None) -> list[JobRequest]:
    """The step ``step`` alone, without its dependencies (``openjd run --step`` runs only
    that step); every step when ``step`` is None."""
    if step is None:
        return jobs
    chosen = [job for job in jobs if job.name == step]
    if not chosen:
        names = ", ".join(job.name for job in jobs)
        raise InvalidRequest(f"--step {step!r}: the template has no such step (steps: {names})")
    return [dataclasses.replace(chosen[0], depends_on=())]


def openjd_batch(
    source: OpenJDJob,
    options: JobOptions,
    *,
    hold: bool = False,
    start_at: float | None = None,
) -> BatchRequest:
    """The batch of a template: one job per step (or the one ``--step``). Raises
    InvalidRequest, with the loader's one line naming the file and field."""
    from qfarm.jobtypes.openjd import jobs_from_plan
    from qfarm.openjd import load_plan

    try:
        level = parse_priority(options.priority)
    except ValueError as exc:
        raise InvalidRequest(str(exc)) from None
    environments = source.environment_templates()
    mapping = source.path_mapping()
    plan = load_plan(source.template, source.parameter_args(), environments)
    jobs = jobs_from_plan(
        plan, path_mapping=mapping, retries=options.retries, timeout=options.timeout
    )
    return BatchRequest(
        jobs=tuple(only_step(jobs, source.step)),
        name=options.name or plan.name,
        priority=level,
        hold=hold,
        start_at=start_at,
    )


def without_host_requirements(request: BatchRequest) -> BatchRequest:
    """``request`` with no job requiring anything of its nodes: for ``qfarm openjd run
    --ignore-host-requirements``, which takes this machine as meeting whatever the template
    asks (a license count, a GPU), as the OpenJD CLI does, instead of refusing the run."""
    from qfarm.domain.requirements import NO_REQUIREMENTS

    jobs = tuple(dataclasses.replace(job, requirements=NO_REQUIREMENTS) for job in request.jobs)
    return dataclasses.replace(request, jobs=jobs)


# ----------------------------------------------------- qfarm run / submit TEMPLATE

RUN_EPILOG = """
**Examples**

Every step of a template, in dependency order, on the local service nodes:

    qfarm run job.template.yaml -p Frames=1-10 -p OutDir=out/

A Deadline Cloud job bundle, with parameter values from a file and a studio environment:

    qfarm run shot-bundle/ -p file://values.yaml --env studio-env.yaml

Only one step (its dependencies are not run, as with openjd run --step):

    qfarm run job.template.yaml --step Encode -p Frames=1-10
"""

SUBMIT_EPILOG = """
**Examples**

    qfarm submit job.template.yaml -p Frames=1-240 --priority high

    qfarm submit /mnt/shared/shot-bundle/ -p file://values.yaml --hold

The template's paths must be on storage the nodes share (or mapped with --path-map).
"""

run_app = single_command_app()
submit_app = single_command_app()


def _run(
    source: OpenJDJob,
    job: JobOptions,
    *,
    nodes: int | None,
    instances: int | None,
    data_dir: Path | None,
    db: str | None,
    as_json: bool,
    quiet: bool,
    follow: bool,
    fresh: bool,
    task_output: bool,
    ignore_host_requirements: bool = False,
) -> int:
    try:
        request = openjd_batch(source, job)
    except InvalidRequest as exc:
        raise fail_usage(str(exc)) from None
    if ignore_host_requirements:
        request = without_host_requirements(request)
    on_end = None
    if task_output and not as_json:

        def on_end(store: Store, batch_id: int) -> None:
            # The job's resolved name first, as the OpenJD CLI reports the job it ran.
            out.print(f"Job: {request.name}", markup=False, highlight=False, soft_wrap=True)
            print_segment_logs(store, batch_id, out)

    return run_request(
        request,
        nodes=nodes,
        instances=instances,
        data_dir=data_dir,
        db=db,
        as_json=as_json,
        quiet=quiet,
        follow=follow,
        fresh=fresh,
        on_end=on_end,
    )


@run_app.command(epilog=RUN_EPILOG)
@with_option_sets
def run_template(
    source: OpenJDJob,
    job: JobOptions,
    nodes: NodesOpt = None,
    instances: InstancesOpt = None,
    data_dir: DataDirOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    follow: FollowOpt = False,
    fresh: FreshOpt = False,
) -> None:
    """Run an OpenJD job template or job bundle on an embedded cluster, and wait.

    Each step is a job, in dependency order; each task (or TASK_CHUNKING chunk) is a segment.
    An invalid template or parameter value is a usage error (exit 2) before anything runs;
    a failed task fails the batch (exit 1).
    """
    code = _run(
        source,
        job,
        nodes=nodes,
        instances=instances,
        data_dir=data_dir,
        db=db,
        as_json=as_json,
        quiet=quiet,
        follow=follow,
        fresh=fresh,
        task_output=False,
    )
    raise typer.Exit(code)


@submit_app.command(epilog=SUBMIT_EPILOG)
@with_option_sets
def submit_template(
    *,
    source: OpenJDJob,
    job: JobOptions,
    schedule: Schedule,
    remote: Connection,
    as_json: JsonOpt = False,
) -> None:
    """Submit an OpenJD job template or job bundle to a controller and print the batch's id.

    It is validated here first: an invalid template or parameter value is a usage error
    (exit 2) and nothing is submitted.
    """
    try:
        request = openjd_batch(source, job, hold=schedule.hold, start_at=schedule.start_time())
        request = schedule.with_notify(request)
        handle = remote.client().submit(request)
    except InvalidRequest as exc:
        raise fail_usage(str(exc)) from None
    if as_json:
        print_json({"batch": handle.id})
    else:
        out.print(handle.id)


def invoke_template(mode: str, args: list[str], before: Sequence[str] = ()) -> int:
    """``qfarm MODE TEMPLATE ...`` (MODE: run or submit) with ``args`` from the template on;
    ``before``: the options given before the template, handed on in front of them."""
    command_app = run_app if mode == "run" else submit_app
    return invoke_single(command_app, [*args[:1], *before, *args[1:]], f"qfarm {mode}")


def given_options(**values: Any) -> list[str]:
    """Options given before a template (``qfarm run --nodes 3 job.yaml``) as arguments again,
    for the template's command: ``name=value`` becomes ``--name value`` (a list repeats it,
    True is a flag); None, False and empty values were not given."""
    args: list[str] = []
    for name, value in values.items():
        option = "--" + name.replace("_", "-")
        if value is None or value is False or value == []:
            continue
        if value is True:
            args.append(option)
        elif isinstance(value, list):
            for item in value:
                args += [option, str(item)]
        else:
            args += [option, str(value)]
    return args


# ------------------------------------------------------------ qfarm openjd check / run

openjd_app = typer.Typer(
    help="Open Job Description: check a job template, or run it and print its task output.",
    epilog="**Examples**\n\n    qfarm openjd check job.template.yaml\n\n"
    "    qfarm openjd run job.template.yaml -p Frames=1-3",
    no_args_is_help=True,
)
app.add_typer(openjd_app, name="openjd")


@openjd_app.command(
    epilog="""**Examples**

    qfarm openjd check job.template.yaml

    qfarm openjd check shot-bundle/ -p Frames=1-240    # the parameter values too

    qfarm openjd check studio-env.yaml                  # an environment template
"""
)
def check(
    template: TemplateArg,
    params: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            "-p",
            metavar="NAME=VALUE",
            help="Also check these parameter values (or file://values.yaml). Repeatable.",
        ),
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option("--env", metavar="ENV_TEMPLATE", help="An environment template. Repeatable."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check a job template, job bundle or environment template: "ok" and exit 0, or each
    problem on a line of its own and exit 2. Without -p only the template is checked (as
    openjd check does); with -p the job is also built from those values."""
    from qfarm.openjd import check as check_template

    try:
        environments = environment_templates(env or [])
    except InvalidRequest as exc:
        raise fail_usage(str(exc)) from None
    problems = check_template(template, params, environments)
    if as_json:
        print_json({"template": template, "ok": not problems, "problems": problems})
    elif not problems:
        out.print(f"{template}: ok", highlight=False, soft_wrap=True)
    else:
        from qfarm.cli.common import print_error

        for problem in problems:
            print_error(problem)
    raise typer.Exit(2 if problems else 0)


@openjd_app.command(
    "run",
    epilog="""**Examples**

    qfarm openjd run job.template.yaml -p Message=hello

    qfarm openjd run job.template.yaml --step Render -p Frames=1-3 --env env.yaml
""",
)
@with_option_sets
def openjd_run(
    source: OpenJDJob,
    job: JobOptions,
    nodes: NodesOpt = None,
    instances: InstancesOpt = None,
    data_dir: DataDirOpt = None,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh",
            metavar=FLAG,
            help="Start over, even when an interrupted run of the same template left a batch.",
        ),
    ] = False,
    ignore_host_requirements: Annotated[
        bool,
        typer.Option(
            "--ignore-host-requirements",
            metavar=FLAG,
            help="Run on this machine whatever the steps' hostRequirements ask (amounts, "
            "attributes), as the OpenJD CLI's openjd run does.",
        ),
    ] = False,
) -> None:
    """Run a job template on an embedded cluster, as `qfarm run TEMPLATE` does, then print
    every task's output (each segment's log: its actions, openjd_status and openjd_fail
    lines) on stdout. Exit 0 done, 1 a task failed, 2 invalid template or parameters."""
    code = _run(
        source,
        job,
        nodes=nodes,
        instances=instances,
        data_dir=data_dir,
        db=db,
        as_json=as_json,
        quiet=quiet,
        follow=False,
        fresh=fresh,
        task_output=True,
        ignore_host_requirements=ignore_host_requirements,
    )
    raise typer.Exit(code)
