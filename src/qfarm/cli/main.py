"""The ``qfarm`` command: the app of :mod:`qfarm.cli.app` with every command module's
commands, and :func:`main`, the entry point.

The command modules add their commands to the app as they are imported, in the order of
``qfarm --help``; this module imports them and is imported by none, so the tree has no
circle.
"""

from __future__ import annotations

import sys

from qfarm.cli import run  # noqa: F401  (first: `qfarm run`, the command most run)
from qfarm.cli.app import app
from qfarm.cli.common import exit_code_of, interrupted_early, print_error
from qfarm.cli.job_commands import is_job_command
from qfarm.cli.loading import collector_paused
from qfarm.domain.errors import QfarmError


def register_commands(argv: list[str]) -> None:
    """Load the modules that add the other commands, unless this is `qfarm run` of a
    command job or a batch file: they bring the HTTP client, the token code and the media
    presets, which such a run never uses (about a tenth of its start-up)."""
    if argv[:1] == ["run"] and not is_job_command(argv[1:2]):
        return
    # In this order, which is that of `qfarm --help`: it lists commands as they were added.
    # isort: off
    import qfarm.cli.access
    import qfarm.cli.controller
    import qfarm.cli.node
    import qfarm.cli.batches
    import qfarm.cli.chosen
    import qfarm.cli.logs
    import qfarm.cli.limits
    import qfarm.cli.openjd
    import qfarm.cli.presets
    import qfarm.cli.scale
    import qfarm.cli.watch
    import qfarm.cli.login
    import qfarm.cli.audit
    import qfarm.cli.failures
    import qfarm.cli.stats  # noqa: F401
    # isort: on


def main() -> None:
    with collector_paused():
        register_commands(sys.argv[1:])
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(interrupted_early())
    except QfarmError as exc:
        print_error(exc)
        sys.exit(exit_code_of(exc))
