"""Waiting with a time limit that never swallows a cancel.

On Python 3.11, ``asyncio.wait_for`` returns the awaited result when the task is canceled
in the same loop turn as that result arrives: the cancel is lost, and a loop that waits
this way (a dispatcher tick, a watcher's sleep) goes on after it was told to stop. This
happened in the watch-folder tests, where a watcher's own sidecar wakes it as the test
stops it. ``asyncio.timeout`` counts cancels (``Task.uncancel``), so an outside cancel
always wins over the deadline and over the result; these helpers are built on it.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

T = TypeVar("T")


async def wait_set(event: asyncio.Event, seconds: float) -> bool:
    """Until ``event`` is set, at most ``seconds``: whether it was set."""
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


async def get_within(queue: asyncio.Queue[T], seconds: float) -> T:
    """The next item of ``queue``, waiting at most ``seconds`` (TimeoutError after). An item
    is only taken off the queue when it is returned: a cancel or a timeout leaves it there."""
    async with asyncio.timeout(seconds):
        return await queue.get()
