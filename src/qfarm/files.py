"""File helpers both sides of a transfer use: paths that cannot escape their folder, and files
written under a temporary name and renamed only when complete, so no half-written file is
ever seen at its final path.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from qfarm.domain.errors import InvalidRequest


def safe_relative(rel: str) -> PurePosixPath:
    """A relative path that stays inside its folder, or InvalidRequest."""
    path = PurePosixPath(rel)
    if path.is_absolute() or not path.parts or ".." in path.parts:
        raise InvalidRequest(f"path {rel!r} must be relative and stay inside its folder")
    return path


@contextmanager
def atomic_file(target: Path) -> Iterator[BinaryIO]:
    """A file to write ``target`` through: it appears at ``target`` only when the block
    ends without an error; a failed write leaves nothing behind.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".qfarm-part-{uuid.uuid4().hex}.{target.name}")
    try:
        with open(temp, "wb") as fh:
            yield fh
        os.replace(temp, target)
    finally:
        temp.unlink(missing_ok=True)


def write_atomically(target: Path, chunks: Iterator[bytes]) -> int:
    size = 0
    with atomic_file(target) as fh:
        for chunk in chunks:
            size += fh.write(chunk)
    return size


def list_files(folder: Path) -> list[str]:
    """The files a client fetches: not qfarm's own (partial files, a transcode's chunks,
    all named ``.qfarm-...``), nor links that lead outside the folder."""
    if not folder.is_dir():
        return []
    root = folder.resolve()
    inside = (p for p in folder.rglob("*") if p.is_file() and p.resolve().is_relative_to(root))
    return sorted(
        str(rel.as_posix())
        for rel in (path.relative_to(folder) for path in inside)
        if not any(part.startswith(".qfarm-") for part in rel.parts)
    )
