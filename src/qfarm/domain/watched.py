"""Files a watch folder takes: what one is, the states it goes through, and how its batch's
end decides its outcome. Pure: the store keeps these records, the API carries them, and the
watcher (:mod:`qfarm.watch`) acts on them.

A file is the same file while its watch's name, its path in the folder, its size and its
mtime are: that is what a claim is made on, so that a restarted watcher, or a second one on
the same folder, never submits it twice. A file that is written again (new size or mtime)
is a new file, and is taken again.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from qfarm.domain.errors import InvalidRequest, QfarmError
from qfarm.domain.model import IllegalTransition


class WatchedState(enum.StrEnum):
    CLAIMED = "claimed"  # taken by a watcher, its batch not submitted yet
    SUBMITTED = "submitted"  # its batch is on the controller
    DONE = "done"  # its batch ended done
    FAILED = "failed"  # its batch failed or was canceled or removed
    REFUSED = "refused"  # the controller refused its batch: bad input, nothing ran


FINAL_WATCHED_STATES = frozenset({WatchedState.DONE, WatchedState.FAILED, WatchedState.REFUSED})

# Which state may follow which. A claim whose watcher stopped before it could submit is
# marked failed by the watcher's next start: it cannot know whether the submit happened.
# A claim may end done at once when the record of its submit never reached the store (the
# controller was out of reach for a moment): the end then names the batch.
WATCHED_TRANSITIONS: dict[WatchedState, frozenset[WatchedState]] = {
    WatchedState.CLAIMED: frozenset(
        {WatchedState.SUBMITTED, WatchedState.REFUSED, WatchedState.FAILED, WatchedState.DONE}
    ),
    WatchedState.SUBMITTED: frozenset({WatchedState.DONE, WatchedState.FAILED}),
    WatchedState.DONE: frozenset(),
    WatchedState.FAILED: frozenset(),
    WatchedState.REFUSED: frozenset(),
}


class AlreadyTaken(QfarmError):
    """A claim on a file version that a watcher has claimed before (the API's 409)."""


class AlreadyRecorded(QfarmError):
    """A change to a watched file's record that its state no longer allows: another
    watcher of the same watch ended it first (a watcher tells it apart from the API's
    other answers, and leaves the source to that watcher)."""


@dataclass(frozen=True)
class FileVersion:
    """One version of a file in a watch folder: ``path`` is relative to the folder, so
    watchers that mount the folder at different places agree on it."""

    path: str
    size: int
    mtime: float


@dataclass(frozen=True)
class WatchedFile:
    """A file a watcher took, and what became of it."""

    id: int
    watch: str
    version: FileVersion
    state: WatchedState
    taken_at: float
    batch_id: int | None = None
    error: str = ""

    @property
    def path(self) -> str:
        return self.version.path

    @property
    def final(self) -> bool:
        return self.state in FINAL_WATCHED_STATES


@dataclass(frozen=True)
class BatchEnd:
    """How a watched file's batch ended: its final state, and the first error it names."""

    batch_id: int
    state: str  # done, failed, canceled, or removed (no longer on the controller)
    error: str = ""

    @property
    def outcome(self) -> WatchedState:
        """What the file's record becomes: only a batch that is done makes it done."""
        return WatchedState.DONE if self.state == "done" else WatchedState.FAILED


def check_watched_change(
    file_id: int, old: WatchedState, new: WatchedState, batch_id: int | None
) -> None:
    """Refuse a change the table does not allow (IllegalTransition), and a submitted or
    done record without a batch (InvalidRequest). ``batch_id``: the batch the record will
    name, given now or recorded before."""
    if new not in WATCHED_TRANSITIONS[old]:
        raise IllegalTransition("watched file", file_id, old, new)
    if new in (WatchedState.SUBMITTED, WatchedState.DONE) and batch_id is None:
        raise InvalidRequest(f"watched file {file_id}: a {new.value} file must name its batch")
