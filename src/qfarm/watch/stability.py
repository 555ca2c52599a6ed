"""When a file has stopped growing, so that a half-copied file is never taken.

A file is stable once its size and mtime have stayed the same for ``settle`` seconds,
counted from the first time the watcher saw them so: two sightings at least ``settle``
apart, whatever the mtime says. (A copy that keeps the source's mtime, ``cp -p`` or
rsync's, shows an old mtime while it grows, so the mtime's age alone proves nothing.)
An empty file waits: a copy creates its target empty before it writes. The rule cannot
see a writer that pauses for longer than ``settle`` and then goes on: choose ``settle``
longer than the slowest writer's pauses.

Pure: times are given, so the rule is tested without waiting.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Sighting:
    """A file's size and mtime, and since when (monotonic seconds) they have been so."""

    size: int
    mtime: float
    since: float


def observe(previous: Sighting | None, size: int, mtime: float, now: float) -> Sighting:
    """The sighting after seeing ``size`` and ``mtime`` at ``now``: the previous one if
    nothing changed, else a new one from ``now``."""
    if previous is not None and previous.size == size and previous.mtime == mtime:
        return previous
    return Sighting(size, mtime, now)


def is_settled(sighting: Sighting, now: float, settle: float) -> bool:
    """Whether the file has not changed for ``settle`` seconds (and is not empty)."""
    return sighting.size > 0 and now - sighting.since >= settle


class Stability:
    """The sightings of the files a watcher has seen but not taken yet, by name."""

    def __init__(self, settle: float) -> None:
        self.settle = settle
        self._seen: dict[str, Sighting] = {}

    def see(self, name: str, size: int, mtime: float, now: float) -> bool:
        """Record a sighting of ``name``; whether it is stable now."""
        sighting = observe(self._seen.get(name), size, mtime, now)
        self._seen[name] = sighting
        return is_settled(sighting, now, self.settle)

    def forget(self, name: str) -> None:
        """The file was taken, or is gone: it starts afresh if it is seen again."""
        self._seen.pop(name, None)

    def keep_only(self, names: set[str]) -> None:
        """Forget every file not in ``names`` (a scan no longer found them)."""
        for gone in set(self._seen) - names:
            del self._seen[gone]

    def pending(self) -> list[str]:
        """The files seen and not yet stable or taken."""
        return sorted(self._seen)

    def next_due(self) -> float | None:
        """When the earliest pending file would be stable if it stays as it is (empty
        files are not due: they wait for content, which a scan or an event shows)."""
        waiting = [s.since for s in self._seen.values() if s.size > 0]
        return min(waiting) + self.settle if waiting else None
