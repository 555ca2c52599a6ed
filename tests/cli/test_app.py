"""The app as ``--help`` shows it: every command, its example, its usage line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from tests.cli.test_main import qfarm


def command_paths() -> list[tuple[str, ...]]:
    """Every command of ``qfarm``, as the words that name it: ("node", "enable")."""
    import typer

    from qfarm.cli.main import app, register_commands

    register_commands([])  # every command module, as `qfarm --help` loads them

    def commands(group: Any, path: tuple[str, ...]) -> list[tuple[str, ...]]:
        found = [path] if path else []
        for name, sub in getattr(group, "commands", {}).items():
            found += commands(sub, (*path, name))
        return found

    return commands(typer.main.get_command(app), ())


def help_of(path: tuple[str, ...]) -> tuple[int, str]:
    from typer.testing import CliRunner

    from qfarm.cli.main import app

    shown = CliRunner().invoke(app, [*path, "--help"], terminal_width=120)
    return shown.exit_code, shown.output


def test_every_command_shows_an_example_in_its_help() -> None:
    paths = command_paths()
    assert ("remove",) in paths and ("join-token",) in paths and ("node", "enable") in paths
    missing = []
    for path in paths:
        code, text = help_of(path)
        if code != 0 or "Example" not in text:
            missing.append(" ".join(path))
    assert missing == [], f"commands without an example in --help: {missing}"


def test_no_flag_shows_a_type_placeholder_in_help(tmp_path: Path) -> None:
    # Typer 0.29 (past the pinned range, see pyproject.toml) shows "<bool>" beside a flag
    # unless it has a metavar of its own.
    shown = {" ".join(path): help_of(path)[1] for path in [(), *command_paths()]}
    # The job types' single-command apps of their own, run and submit alike.
    for words in ("run transcode", "run render", "submit transcode", "submit render"):
        shown[words] = qfarm(*words.split(), "--help", data_dir=tmp_path).stdout
    assert "--json" in shown["run"] and "--advertise" in shown["controller"]
    assert [words for words, text in shown.items() if "<bool>" in text] == []
    # Usage lines name their arguments once, in capitals, saying "..." once where they
    # repeat: no "{INPUT...}..." or "{scene}".
    usage = {words: text.split("Usage:")[1].splitlines()[0] for words, text in shown.items()}
    assert "{INPUT...}" in usage["run transcode"] and "{SCENE}" in usage["run render"]
    assert "[COMMAND...]" in usage["run"] and "[COMMAND [ARGS]...]" in usage["node"]
    assert "[TARGET...]" in usage["notify set"] and "[BATCH...]" in usage["remove"]
    twice = [w for w, line in usage.items() if re.search(r"\.\.\.[]}]\.\.\.", line)]
    assert twice == [] and [w for w, line in usage.items() if re.search(r"\{[a-z]", line)] == []
