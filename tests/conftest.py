"""Shared fixtures: real stores on SQLite files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from qfarm.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'qfarm.db'}")
    try:
        yield s
    finally:
        s.close()
