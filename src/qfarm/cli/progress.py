"""The progress bar of a batch, as ``qfarm run`` and ``qfarm wait`` show it: on stderr, so
stdout stays clean for --json and scripts."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from qfarm.cli.common import err, out
from qfarm.domain.model import BatchCounts

if TYPE_CHECKING:
    from qfarm.store import Store


def segments_text(counts: BatchCounts) -> Text:
    """A batch's segments as a progress bar shows them, each outcome apart ("2 done · 1
    failed · 1 canceled of 4 segments"): a count of ended segments read as success after a
    cancel or a failure. Running, suspended, failed and canceled appear once there are some."""
    parts = [(f"{counts.done} done", "green")]
    others = (
        (counts.running + counts.dispatched, "running", "cyan"),
        (counts.suspended, "suspended", "magenta"),
        (counts.failed, "failed", "red"),
        (counts.canceled, "canceled", "yellow"),
    )
    parts += [(f"{number} {word}", style) for number, word, style in others if number]
    text = Text()
    for number, (words, style) in enumerate(parts):
        if number:
            text.append(" · ")
        text.append(words, style=style)
    text.append(f" of {counts.total} segments")
    return text


class SegmentsColumn(ProgressColumn):
    """The progress bar's column of :func:`segments_text`, from the task's ``counts``."""

    def render(self, task: Task) -> Text:
        counts: BatchCounts | None = task.fields.get("counts")
        return segments_text(counts) if counts is not None else Text("")


class BatchProgress:
    """The progress bar of one batch: its work done (frames, counting the reported part of
    running segments), its segments by outcome, elapsed, ETA. On stderr, so stdout stays
    clean for --json and scripts.
    """

    def __init__(self, batch_id: int, console: Console = err) -> None:
        self.progress = Progress(
            TextColumn(f"[bold]batch {batch_id}"),
            BarColumn(),
            TaskProgressColumn(),
            SegmentsColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            # Lines written to stdout (--follow) go above the bar when stdout is the
            # terminal too, and straight to stdout when it is a file or a pipe.
            redirect_stdout=out.is_terminal,
        )
        self.task = self.progress.add_task("batch", total=None, counts=None)

    def __enter__(self) -> BatchProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)

    def update(self, counts: BatchCounts) -> None:
        if counts.work_total > 0:
            total, completed = counts.work_total, counts.work_done
        else:
            total, completed = float(counts.total), float(counts.finished)
        self.progress.update(self.task, total=total, completed=completed, counts=counts)


async def show_progress(store: Store, batch_id: int, waiter: asyncio.Task[Any]) -> None:
    """The bar of a batch in ``store`` until ``waiter`` (the wait for its end) is done."""
    with BatchProgress(batch_id) as bar:
        while True:
            bar.update(store.counts(batch_id))
            if waiter.done():
                break
            # Five times a second, and at once when the batch ends.
            await asyncio.wait({waiter}, timeout=0.2)
