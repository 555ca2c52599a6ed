"""The registry of the job types' own command lines, and what a plain ``qfarm run`` loads."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer

from qfarm.cli.job_commands import JOB_COMMANDS, invoke_job_command, is_job_command


@pytest.mark.parametrize("name", sorted(JOB_COMMANDS))
def test_each_registered_job_type_has_a_run_and_a_submit_command(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    command_line = JOB_COMMANDS[name]()
    for mode, command_app in (("run", command_line.run), ("submit", command_line.submit)):
        assert len(command_app.registered_commands) == 1
        assert isinstance(typer.main.get_command(command_app), typer.core.TyperCommand)
        assert invoke_job_command(name, mode, ["--help"]) == 0
        assert f"qfarm {mode} {name}" in capsys.readouterr().out


def test_a_job_type_is_told_from_a_command() -> None:
    assert is_job_command(["render", "shot.blend"]) and is_job_command(["transcode"])
    assert not is_job_command(["echo", "render"]) and not is_job_command([])
    assert not is_job_command(None)


def modules_loaded_by(code: str) -> list[str]:
    """The modules a fresh interpreter holds after running ``code``."""
    code += "\nimport sys\nprint(' '.join(sorted(sys.modules)))\n"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()


def test_a_plain_run_loads_no_job_type_client_or_token_code() -> None:
    loaded = modules_loaded_by(
        "from qfarm.cli.main import register_commands\n"
        "register_commands(['run', '--frames', '1-2', '--', 'echo'])"
    )
    unwanted = ("qfarm.client", "qfarm.security", "qfarm.cli.render", "qfarm.cli.transcode")
    assert [m for m in loaded if m.startswith(unwanted)] == []
    assert "qfarm.cli.run" in loaded and "qfarm.cli.batches" not in loaded


def test_a_client_command_loads_no_store() -> None:
    """`qfarm nodes`, `qfarm batches` and the like only talk HTTP: SQLAlchemy and the store
    (a third of their start-up) are the controller's."""
    loaded = modules_loaded_by(
        "from qfarm.cli.main import register_commands\nregister_commands(['nodes'])"
    )
    assert "qfarm.cli.batches" in loaded and "qfarm.cli.access" in loaded
    assert [m for m in loaded if m.startswith(("sqlalchemy", "qfarm.store"))] == []


def test_a_spawned_worker_importing_the_program_again_loads_no_command_line() -> None:
    """multiprocessing's spawn imports the program's main module again in each worker it
    starts (a node's): ``python -m qfarm`` and the ``qfarm`` script then load no CLI."""
    loaded = modules_loaded_by(
        "import runpy\nrunpy.run_module('qfarm.__main__', run_name='__mp_main__')"
    )
    assert [m for m in loaded if m.startswith(("qfarm.cli", "typer", "rich"))] == []
