"""The watch folder on disk: the files in it that may be taken, and what is done with a
source once its batch has ended (moved to ``done/`` or ``failed/``, or marked with a
``NAME.qfarm.json`` sidecar beside it).

Only the folder's own files are watched, not its subfolders, so ``done/`` and ``failed/``
(and any other folder in it) are never taken from. A source is moved only while it is
still the version that was taken: one replaced meanwhile is a new file, left to be taken.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from qfarm.domain.watched import FileVersion, WatchedFile, WatchedState
from qfarm.files import write_atomically
from qfarm.watch.names import SIDECAR_SUFFIX, ignored
from qfarm.watch.settings import DONE_DIR, FAILED_DIR, WatchSettings


def listing(folder: Path) -> dict[str, FileVersion]:
    """The folder's files that may be taken, by name, with their size and mtime now.
    Raises OSError when the folder cannot be read (gone, unmounted)."""
    found: dict[str, FileVersion] = {}
    with os.scandir(folder) as entries:
        for entry in entries:
            if ignored(entry.name):
                continue
            try:
                if not entry.is_file():
                    continue
                stat = entry.stat()
            except OSError:  # removed between the listing and the look
                continue
            found[entry.name] = FileVersion(entry.name, stat.st_size, stat.st_mtime)
    return found


def version_of(folder: Path, name: str) -> FileVersion | None:
    """The file ``name``'s size and mtime now; None when it is gone or not a file."""
    try:
        stat = (folder / name).stat()
    except OSError:
        return None
    if not (folder / name).is_file():
        return None
    return FileVersion(name, stat.st_size, stat.st_mtime)


def finish(settings: WatchSettings, record: WatchedFile) -> str:
    """Move or mark the source of an ended record; where it went (``done/clip.mov``,
    ``clip.mov.qfarm.json``), or "" when the taken version is no longer there (removed,
    or written again: then it is a new file). Doing it twice does no harm, so a restart
    finishes what a stop left half done."""
    folder = settings.folder
    if version_of(folder, record.path) != record.version:
        return ""
    if settings.mark == "sidecar":
        sidecar = folder / (record.path + SIDECAR_SUFFIX)
        write_sidecar(sidecar, record)
        return sidecar.name
    into = DONE_DIR if record.state is WatchedState.DONE else FAILED_DIR
    target = free_name(folder / into / record.path)
    target.parent.mkdir(exist_ok=True)
    os.rename(folder / record.path, target)
    if record.state is not WatchedState.DONE:
        write_sidecar(target.with_name(target.name + SIDECAR_SUFFIX), record)
    return f"{into}/{target.name}"


def free_name(target: Path) -> Path:
    """``target``, or ``NAME (2).EXT`` and so on when a file of that name is there: a
    source dropped twice is kept twice, never overwritten."""
    candidate, number = target, 1
    while candidate.exists():
        number += 1
        candidate = target.with_name(f"{target.stem} ({number}){target.suffix}")
    return candidate


def write_sidecar(path: Path, record: WatchedFile) -> None:
    """What became of a source, for people and scripts: its batch, outcome and error."""
    body = {
        "watch": record.watch,
        "source": record.path,
        "size": record.version.size,
        "batch": record.batch_id,
        "outcome": record.state.value,
        "error": record.error,
        "at": time.time(),
    }
    text = json.dumps(body, indent=2) + "\n"
    write_atomically(path, iter([text.encode()]))
