"""What every ``qfarm`` command shares: its exit codes, its two consoles and the few ways
it reports an error or a result. Nothing here registers a command, so any module of the
CLI can import it without pulling in another's.
"""

from __future__ import annotations

import json
from enum import IntEnum
from typing import Any

import typer
from rich.console import Console
from rich.text import Text

from qfarm.domain.errors import InvalidRequest, NotFound, QfarmError


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

# The metavar of a boolean flag: without one, Typer 0.29 shows its type, "<bool>", as if it
# took a value.
FLAG = ""

# The host names of this machine's loopback: a controller listening only there needs no
# token or TLS to be safe from the network, and a node joining one may share its keys.
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def print_error(message: object) -> None:
    """One line on stderr: ``qfarm: error: ...``."""
    err.print(Text.assemble(("qfarm: error: ", "bold red"), str(message)), soft_wrap=True)


def print_json(value: Any) -> None:
    """Machine-readable output of --json: JSON on stdout, nothing else."""
    out.print_json(json.dumps(value))


def fail_usage(message: str) -> typer.Exit:
    """The usage error ``message``, printed, as the exit to raise: nothing was started."""
    print_error(message)
    return typer.Exit(ExitCode.USAGE)


def interrupted_early() -> int:
    """Ctrl-C before a batch's own handlers were in place (loading, planning, starting):
    one line, no traceback; whatever was stored is resumed by the next run."""
    err.print("interrupted", highlight=False)
    return ExitCode.INTERRUPTED
