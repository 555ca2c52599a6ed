"""Writing a segment's outputs so that no half-written file ever sits at a final name.

Every job type that writes files (command, transcode, render, movie, composite) writes them
under a hidden temporary name or in a staging folder, and moves them into place only once
they are complete. These are the helpers they share, kept here so job types do not import
each other's internals. Transcode and movie outputs are also verified against what they must
measure (:func:`check_output`) before they are renamed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qfarm.domain.errors import InvalidRequest
from qfarm.jobtypes.base import SegmentContext, SegmentOutcome, describe_process_failure
from qfarm.media import verify as verify_mod


def temporary_name(final: str, key: str) -> str:
    """A hidden name beside ``final`` that keeps its extension, so tools pick the same format."""
    path = Path(final)
    return str(path.with_name(f".qfarm-{key}.{path.name}"))


def discard(path: str | None) -> None:
    """Remove a temporary file if there is one: a failed attempt leaves nothing behind."""
    if path:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def place(staged: Path, final: Path) -> None:
    """Move a finished file to its final name in one step, across file systems too (there it
    is copied beside the final name first)."""
    try:
        os.replace(staged, final)
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
        temp = final.with_name(f".qfarm-part-{final.name}")
        shutil.copyfile(staged, temp)
        os.replace(temp, final)


def write_concat_list(listing: Path, entries: list[tuple[str, float]]) -> None:
    """An ffconcat list: each file, and how long it lasts (which places the next one)."""
    lines = ["ffconcat version 1.0"]
    for path, duration in entries:
        if "\n" in path or "\r" in path:
            raise ValueError(f"a file name with a line break cannot be listed: {path!r}")
        # Single quotes, each ' written '\''.
        lines += ["file '" + path.replace("'", "'\\''") + "'", f"duration {duration:.9f}"]
    listing.write_text("\n".join(lines) + "\n", encoding="utf-8")


class _Stopped(Exception):
    def __init__(self, outcome: SegmentOutcome) -> None:
        self.outcome = outcome


def check_output(
    path: str,
    expected: Mapping[str, Any],
    ctx: SegmentContext,
    ffmpeg_path: str,
    cwd: str | None,
    *,
    seams: list[float],
    full: bool,
) -> SegmentOutcome:
    """Verify an output before it takes its final name, its decodes run under the node's
    supervisor (a cancel or the timeout ends them, and the segment says so)."""

    def decode(argv: list[str], log: Path) -> int:
        result = ctx.run(argv, cwd=cwd, log_path=log)
        if result.killed or result.timed_out:
            raise _Stopped(describe_process_failure(result, "verification"))
        return result.exit_code

    try:
        problems = verify_mod.verify(
            path, expected, seams=seams, full=full, decode=decode, ffmpeg=ffmpeg_path,
            error_log=Path(path + ".verify"),
        )  # fmt: skip
    except _Stopped as stop:
        return stop.outcome
    except InvalidRequest as exc:  # the output cannot even be read
        problems = [str(exc)]
    if problems:
        for problem in problems:
            ctx.log(f"verification failed: {problem}")
        return SegmentOutcome(ok=False, exit_code=0, error=f"verification: {problems[0]}")
    return SegmentOutcome(ok=True, exit_code=0)
