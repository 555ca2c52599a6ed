"""The Typer app of ``qfarm``, which the command modules add their commands to, and the
one-command apps of the job types' own command lines (``qfarm run render ...``).

It holds no command but the root's ``--version``: :mod:`qfarm.cli.main` imports the command
modules, each of which imports this one, so the app is built without an import circle.
"""

from __future__ import annotations

from dataclasses import dataclass

import typer

from qfarm import __version__
from qfarm.cli.common import FLAG, out

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}


app = typer.Typer(
    name="qfarm",
    no_args_is_help=True,
    add_completion=False,
    context_settings={**HELP_OPTIONS},
    rich_markup_mode="markdown",
)


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


def single_command_app() -> typer.Typer:
    """A Typer app of one command: a job type's `qfarm run NAME` or `qfarm submit NAME`."""
    return typer.Typer(
        add_completion=False, context_settings={**HELP_OPTIONS}, rich_markup_mode="markdown"
    )


@dataclass(frozen=True)
class JobCommandLine:
    """A job type's command line: its ``qfarm run NAME`` and ``qfarm submit NAME`` apps,
    each of one command (see :mod:`qfarm.cli.job_commands`)."""

    run: typer.Typer
    submit: typer.Typer


def invoke_single(command_app: typer.Typer, args: list[str], prog: str) -> int:
    """Run a single-command app on ``args`` as ``prog``; its exit code."""
    command = typer.main.get_command(command_app)
    try:
        command.main(args=args, prog_name=prog, standalone_mode=True)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else (1 if exit_.code else 0)
    return 0
