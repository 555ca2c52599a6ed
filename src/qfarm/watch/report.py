"""What a watcher tells as it goes: one record per thing that happens to a file (taken,
submitted, done, failed, refused, passed over) and per problem it meets and rides out (a
controller out of reach, a folder gone). The CLI prints each as a line, or as JSON."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from qfarm.wire.errors import one_line


class Happening(enum.StrEnum):
    TAKEN = "taken"  # stable, and claimed: its batch is being made
    SUBMITTED = "submitted"
    DONE = "done"
    FAILED = "failed"  # its batch failed, was canceled, or could not be followed
    REFUSED = "refused"  # no batch could be made of it, or the controller refused it
    PASSED = "passed"  # claimed before: by this watcher before a restart, or another one
    LEFT = "left"  # --once: still changing, left for a later run
    PROBLEM = "problem"  # something the watcher rides out: it tries again


@dataclass(frozen=True)
class WatchReport:
    watch: str
    happening: Happening
    file: str = ""
    batch_id: int | None = None
    error: str = ""
    moved_to: str = ""  # where the source went (done/NAME, failed/NAME), or its sidecar

    def line(self) -> str:
        """One line for a terminal: ``watch intake: clip.mov done (batch 12) -> done/``."""
        batch = f" (batch {self.batch_id})" if self.batch_id is not None else ""
        text = {
            Happening.TAKEN: f"taken {self.file}",
            Happening.SUBMITTED: f"submitted {self.file} as batch {self.batch_id}",
            Happening.DONE: f"{self.file} done{batch}",
            Happening.FAILED: f"{self.file} failed{batch}",
            Happening.REFUSED: f"{self.file} refused",
            Happening.PASSED: f"{self.file} was taken before{batch}",
            Happening.LEFT: f"{self.file} is still changing: left for a later run",
            Happening.PROBLEM: "problem",
        }[self.happening]
        if self.error:
            text += f": {self.error}"
        if self.moved_to:
            text += f" -> {self.moved_to}"
        return one_line(f"watch {self.watch}: {text}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "watch": self.watch,
            "event": self.happening.value,
            "file": self.file,
            "batch": self.batch_id,
            "error": self.error,
            "moved_to": self.moved_to,
        }
