"""``qfarm logs --attempt K -o FILE`` name one segment's log: without ``--segment``, or with
``--follow``, they are a usage error, said before any controller is asked. (Saving the bytes
themselves is tested against a real controller in tests/web/test_monitor_logs.py.)"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from qfarm.cli.common import ExitCode
from qfarm.cli.main import app, register_commands


def invoke(*args: str) -> str:
    register_commands([])  # every command module, as `qfarm --help` loads them
    shown = CliRunner().invoke(app, list(args), terminal_width=120)
    return f"{shown.exit_code}\n{shown.output}"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["-o", "out.log"], "need --segment"),
        (["--attempt", "2"], "need --segment"),
        (["--segment", "1", "-o", "out.log", "--follow"], "--follow follows every attempt"),
    ],
)
def test_one_logs_options_need_one_segment_and_no_follow(args: list[str], said: str) -> None:
    # A controller that is not there: the usage error comes first.
    shown = invoke("logs", "7", *args, "--controller", "http://127.0.0.1:9")
    assert shown.startswith(f"{ExitCode.USAGE.value}\n"), shown
    assert said in shown


def test_the_help_shows_the_save_example() -> None:
    shown = invoke("logs", "--help")
    assert shown.startswith("0\n"), shown
    assert "--attempt 1 -o render.log" in shown
    assert "FILE" in shown and "<bool>" not in shown
