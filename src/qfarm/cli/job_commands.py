"""The job types with a command line of their own: ``qfarm run NAME ...`` and ``qfarm submit
NAME ...`` hand the rest of their arguments to it.

The registry names each job type's module by a function that imports it, so that a
``qfarm run`` of a plain command loads neither (the media presets, the HTTP client and the
renderers are about a tenth of its start-up), and a mistyped module is an import error,
not a string that fails at run time.
"""

from __future__ import annotations

from collections.abc import Callable

from qfarm.cli.app import JobCommandLine, invoke_single


def _render() -> JobCommandLine:
    from qfarm.cli import render

    return render.COMMAND_LINE


def _transcode() -> JobCommandLine:
    from qfarm.cli import transcode

    return transcode.COMMAND_LINE


JOB_COMMANDS: dict[str, Callable[[], JobCommandLine]] = {
    "transcode": _transcode,
    "render": _render,
}


def is_job_command(command: list[str] | None) -> bool:
    """Whether ``qfarm run COMMAND...`` is a job type's command line, not a command job."""
    return bool(command and command[0] in JOB_COMMANDS)


def invoke_job_command(name: str, mode: str, args: list[str]) -> int:
    """Run ``qfarm MODE NAME ARGS`` (MODE: run or submit); its exit code."""
    command_line = JOB_COMMANDS[name]()
    command_app = command_line.run if mode == "run" else command_line.submit
    return invoke_single(command_app, args, f"qfarm {mode} {name}")
