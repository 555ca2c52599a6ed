"""``qfarm stats``: bad windows and steps are usage errors (exit 2, one line), said before
any controller is asked; ``--help`` shows the examples. (Its tables and --json against a
real farm: tests/web/test_charts.py.)"""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from qfarm.cli.common import ExitCode
from qfarm.cli.main import app, register_commands
from qfarm.cli.stats import node_table, service_table


def invoke(*args: str) -> tuple[int, str]:
    register_commands([])
    shown = CliRunner().invoke(app, list(args), terminal_width=200)
    return shown.exit_code, shown.output


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--window", "an hour"], "--window 'an hour' is not a duration"),
        (["--step", "-5s"], "--step '-5s' is negative"),
        (["--window", "24h", "--step", "10s"], "more than 1440: give a larger step"),
        (["--window", "30s", "--step", "1m"], "shorter than its step"),
        (["--window", "30d", "--step", "1h"], "longer than the longest"),
        (["--step", "0.5s"], "below the finest"),
    ],
)
def test_bad_windows_are_usage_errors(args: list[str], said: str) -> None:
    code, output = invoke("stats", *args, "--controller", "http://127.0.0.1:9")
    assert code == ExitCode.USAGE.value, output
    assert said in output
    assert len(output.strip().splitlines()) == 1, output


def test_the_help_shows_examples() -> None:
    code, output = invoke("stats", "--help")
    assert code == 0, output
    assert "qfarm stats --window 24h --step 15m" in output and "--json" in output


def test_the_tables_from_a_series() -> None:
    found = {
        "start": 0.0, "step": 60.0, "as_of": 120.0, "times": [0.0, 60.0],
        "services": [{"service": "render", "instances": 2, "total_done": 6, "mean_busy": 1.5,
                      "peak_busy": 2, "done": [2, 4], "busy": [1.0, 2.0]}],
        "nodes": [{"node": "n1", "state": "online", "instances": 2, "busy": [1.0, 2.0],
                   "load": [0.5, 1.0]},
                  {"node": "old", "state": None, "instances": None, "busy": [0.0, 0.0],
                   "load": None}],
    }  # fmt: skip
    services = service_table(found)
    assert [c._cells for c in services.columns][2:4] == [["6"], ["3.00"]]  # 6 in 2 minutes
    nodes = node_table(found)
    assert [c._cells for c in nodes.columns][3:] == [["1.50", "0.00"], ["75%", "-"]]
    assert nodes.columns[1]._cells == ["online", "gone"]
