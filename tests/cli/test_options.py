"""Option sets: declared once, spread into each command that takes them, gathered back."""

from __future__ import annotations

import dataclasses
import re
from typing import Annotated, Any

import pytest
import typer
from typer.testing import CliRunner

from qfarm.cli.options import JobOptions, OptionSet, Schedule, with_option_sets


@dataclasses.dataclass(frozen=True)
class Pair(OptionSet):
    first: Annotated[str, typer.Argument(metavar="FIRST")]
    second: Annotated[int, typer.Option("--second")] = 2


def test_a_set_is_spread_into_options_in_place_and_gathered_back() -> None:
    seen: list[Any] = []
    app = typer.Typer()

    @app.command()
    @with_option_sets
    def cmd(
        pair: Pair, job: JobOptions, loud: Annotated[bool, typer.Option("--loud")] = False
    ) -> None:
        seen.append((pair, job, loud))

    result = CliRunner().invoke(app, ["one", "--second", "5", "--retries", "0", "--loud"])
    assert result.exit_code == 0, result.output
    assert seen == [(Pair("one", 5), JobOptions(retries=0), True)]
    shown = CliRunner().invoke(app, ["--help"], terminal_width=120).output
    order = [shown.index(word) for word in ("--second", "--name", "--timeout", "--loud")]
    assert order == sorted(order)  # each set's fields where the set's parameter was


@dataclasses.dataclass(frozen=True)
class Named(OptionSet):
    name: Annotated[str, typer.Option("--name")] = ""


def test_an_option_given_by_two_sets_is_refused_at_import() -> None:
    def cmd(named: Named, job: JobOptions) -> None: ...

    with pytest.raises(TypeError, match="options given twice: name"):
        with_option_sets(cmd)


def test_schedule_reads_start_at() -> None:
    assert Schedule(start_at="1700000000").start_time() == 1700000000.0
    assert Schedule().start_time() is None


def option_names(args: list[str]) -> list[str]:
    from qfarm.cli.main import app, register_commands

    register_commands([])
    shown = CliRunner().invoke(app, [*args, "--help"], terminal_width=200).output
    return re.findall(r"│ (--[a-z-]+)", shown)


def test_run_and_submit_take_the_command_job_options_alike() -> None:
    run, submit = option_names(["run"]), option_names(["submit"])
    shared = [name for name in run if name in submit]
    assert shared[:2] == ["--frames", "--segment-size"] and "--preflight" in shared
    assert [name for name in submit if name in run] == shared  # the same order in both
