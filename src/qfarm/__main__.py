"""The ``qfarm`` program (``python -m qfarm``, and the ``qfarm`` script, which calls
:func:`main`). The command line is imported only when it runs: a worker process that
multiprocessing spawns imports the program's main module again (as ``__mp_main__``), and a
node's worker should not pay for Typer, Rich and every command module (about 0.4 s of CPU
here)."""


def main() -> None:
    from qfarm.cli.loading import collector_paused

    with collector_paused():
        from qfarm.cli.main import main as run_command_line

    run_command_line()


if __name__ == "__main__":
    main()
