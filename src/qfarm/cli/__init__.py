"""The ``qfarm`` command (Typer + Rich), as a tree that imports downwards only:

- ``main``: the entry point; imports the command modules, which add their commands to
- ``app``: the Typer app (and the job types' one-command apps), built on
- ``common`` (exit codes, consoles, errors) and ``options`` (shared options and sets).
- Command modules: ``run``, ``batches`` (submit and the client commands), ``controller``,
  ``node``, ``access`` (tokens), ``presets``, and the job types' command lines
  ``render`` and ``transcode``, reached through the registry in ``job_commands``.
- Beneath them: ``command_job``, ``embedded`` (the embedded cluster of ``qfarm run``),
  ``progress``, ``report`` and ``batchfile``.
"""
