"""Retention: ended batches, with their logs and stored outputs, are removed once they have
been over for the time the farm keeps them (``qfarm controller --keep 30d``).

The time kept is a setting (``retention``), so the API can change it while the controller
runs. A sweep runs in the background at a tenth of that time (between a second and ten
minutes), so a batch outlives its time by a tenth at most; it only ever takes batches that
ended, and one resubmitted since it was picked is refused by the store and left alone.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from qfarm.domain.errors import QfarmError
from qfarm.store import AuditEntry, Store
from qfarm.waits import wait_set

log = logging.getLogger(__name__)

# The setting: {"keep": seconds}, or absent for "keep every batch".
RETENTION_SETTING = "retention"
# Who the audit log names for the batches a sweep removes.
RETENTION_ACTOR = "retention"
SHORTEST_SWEEP = 1.0
LONGEST_SWEEP = 600.0


def kept_for(store: Store) -> float | None:
    """How long ended batches are kept (seconds); None: for ever."""
    value = store.setting(RETENTION_SETTING)
    return None if not value else float(value["keep"])


def keep(store: Store, seconds: float | None) -> None:
    store.set_setting(RETENTION_SETTING, None if seconds is None else {"keep": seconds})


def sweep_interval(kept: float | None) -> float:
    """How often the sweep runs for a time kept: a tenth of it, within bounds."""
    if kept is None:
        return LONGEST_SWEEP
    return min(LONGEST_SWEEP, max(SHORTEST_SWEEP, kept / 10))


async def remove_ended_before(
    store: Store, cutoff: float, remove: Callable[[int], Awaitable[None]]
) -> list[int]:
    """Remove every batch that ended before ``cutoff``; the ids removed. A batch that can
    no longer be removed (resubmitted meanwhile, or gone) is skipped."""
    removed = []
    for batch_id in store.ended_before(cutoff):
        try:
            await remove(batch_id)
        except QfarmError as exc:
            log.info("retention leaves batch %s: %s", batch_id, exc)
            continue
        removed.append(batch_id)
    return removed


@dataclass
class Retention:
    """The background sweep of one controller; ``remove`` is its Controller.remove."""

    store: Store
    remove: Callable[[int], Awaitable[None]]
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def changed(self) -> None:
        """The time kept was changed: sweep at once, and at the new pace after."""
        self._changed.set()

    async def sweep(self) -> list[int]:
        kept = kept_for(self.store)
        if kept is None:
            return []
        removed = await remove_ended_before(self.store, time.time() - kept, self.remove)
        if removed:
            log.info("retention removed batches %s (kept %.0f s)", removed, kept)
            targets = ", ".join(f"batch {batch_id}" for batch_id in removed)
            entry = AuditEntry(RETENTION_ACTOR, "batch.remove", targets, 200, detail={"kept": kept})
            self.store.record_action(entry)
        return removed

    async def run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:  # a database hiccup must not end retention for good
                log.exception("retention sweep failed; trying again at the next one")
            interval = sweep_interval(kept_for(self.store))
            await wait_set(self._changed, interval)
            self._changed.clear()
