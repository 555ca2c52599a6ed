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


def database_url(option: str | None, directory: Path) -> str:
    """``--db URL``, else ``$QFARM_DB``, else SQLite in the data dir."""
    return option or os.environ.get(DB_ENV) or f"sqlite:///{directory / 'qfarm.db'}"


def logs_dir(directory: Path) -> Path:
    return directory / "logs"
