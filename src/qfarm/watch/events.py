"""watchdog's file events on a watch folder, handed to the watcher's event loop as a
wake-up: an event says only "look again", the watcher then lists and checks the folder
itself. Events make a watcher quick on local disks; on network mounts that deliver none,
its periodic scan finds the same files later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from watchdog.events import (
    EVENT_TYPE_CLOSED,
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

# Events that can change what the folder holds; opening and reading a file (a node reading
# its source) does not, and would only wake the watcher for nothing.
CHANGES = frozenset(
    {EVENT_TYPE_CREATED, EVENT_TYPE_MODIFIED, EVENT_TYPE_MOVED, EVENT_TYPE_DELETED,
     EVENT_TYPE_CLOSED}
)  # fmt: skip


class _Waker(FileSystemEventHandler):
    def __init__(self, loop: asyncio.AbstractEventLoop, wake: Callable[[], None]) -> None:
        self._loop = loop
        self._wake = wake

    def on_any_event(self, event: FileSystemEvent) -> None:
        # watchdog calls this on its own thread: the loop runs the wake-up on its own.
        if event.event_type in CHANGES and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake)


class FolderEvents:
    """An Observer on one folder (not its subfolders) that calls ``wake`` in the running
    event loop after each change."""

    def __init__(self, folder: Path, wake: Callable[[], None]) -> None:
        self._observer = Observer()
        self._observer.daemon = True
        handler = _Waker(asyncio.get_running_loop(), wake)
        self._observer.schedule(handler, str(folder), recursive=False)

    def start(self) -> None:
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(timeout=5)
