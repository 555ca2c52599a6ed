"""What a watcher needs of a controller, as a protocol: claim a file, submit its batch,
record what became of it, read back what it took, and learn how a batch ended.

Two implementations: over HTTP for ``qfarm watch`` on any machine
(:class:`qfarm.watch.remote.HttpSubmitter`), and inside the controller's own event loop
for ``qfarm controller --watch`` (:class:`qfarm.controller.watched.InControllerSubmitter`,
which needs no import of this module: the protocol is structural).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from qfarm.domain.errors import QfarmError
from qfarm.domain.model import BatchRequest
from qfarm.domain.watched import AlreadyRecorded, BatchEnd, FileVersion, WatchedFile, WatchedState

# What a new file becomes: the batch for the source at this path. Raises InvalidRequest
# when the file cannot be made into one (the file is then refused, like one the
# controller refuses).
Template = Callable[[Path], BatchRequest]


__all__ = ["AlreadyRecorded", "Submitter", "SubmitterUnavailable", "Template"]


class SubmitterUnavailable(QfarmError):
    """The controller cannot be reached now; the watcher says so and tries again later."""


class Submitter(Protocol):
    async def claim(self, watch: str, version: FileVersion) -> WatchedFile | None:
        """Claim a file version: its record, or None when it was claimed before."""
        ...

    async def record(
        self,
        file_id: int,
        state: WatchedState,
        *,
        batch_id: int | None = None,
        error: str = "",
    ) -> WatchedFile:
        """Record what became of a claimed file. Raises AlreadyRecorded when the record
        does not allow it any more (another watcher of the same name ended it)."""
        ...

    async def taken(self, watch: str) -> list[WatchedFile]:
        """Every file ``watch`` took, oldest first."""
        ...

    async def submit(self, request: BatchRequest) -> int:
        """Submit a batch: its id. Raises InvalidRequest when the controller refuses it."""
        ...

    async def batch_end(self, batch_id: int) -> BatchEnd | None:
        """How the batch ended; None while it is still going."""
        ...
