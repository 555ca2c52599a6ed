"""Where qfarm keeps its data: the data dir and the database URL, from options or environment."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

DATA_DIR_ENV = "QFARM_DATA_DIR"
DB_ENV = "QFARM_DB"


def data_dir(option: str | os.PathLike[str] | None = None) -> Path:
    """``--data-dir``, else ``$QFARM_DATA_DIR``, else the platform's user data dir."""
    chosen = option or os.environ.get(DATA_DIR_ENV) or platformdirs.user_data_dir("qfarm")
    path = Path(chosen).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def database_url(option: str | None, directory: Path, name: str = "qfarm.db") -> str:
    """``--db URL``, else ``$QFARM_DB``, else SQLite file ``name`` in the data dir."""
    return option or os.environ.get(DB_ENV) or f"sqlite:///{directory / name}"


# `qfarm run` keeps its batches apart from a controller's: a controller that starts requeues
# and dispatches everything in its store, which must not include a run in progress.
RUNS_DB = "runs.db"


def logs_dir(directory: Path) -> Path:
    return directory / "logs"
