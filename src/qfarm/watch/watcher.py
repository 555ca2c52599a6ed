"""The watcher of one folder: each new file, once stable, becomes one batch; when the
batch ends, its source is moved or marked.

A file goes through: seen (its size and mtime tracked, :mod:`~qfarm.watch.stability`),
stable, claimed in the controller's store (a claim made before is refused, so a file is
submitted once whatever restarts or other watchers do), submitted, followed, ended, moved.

The watcher wakes on watchdog's events, on a full scan every ``scan`` seconds (the fallback
for network mounts that deliver no events), when a file it tracks would become stable, and
every ``poll`` seconds while batches it submitted are going. It rides out what it can: a
controller out of reach, a folder gone a while, a file the controller refuses (that file
goes to ``failed/`` with the error in a sidecar, and the watcher goes on).

At its start it reads back what its watch took: batches it submitted before a restart are
followed to their end, sources of ended ones that were not moved yet are moved.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Coroutine
from typing import Any

from qfarm.domain.errors import QfarmError
from qfarm.domain.watched import FileVersion, WatchedFile, WatchedState
from qfarm.waits import wait_set
from qfarm.watch import folder as disk
from qfarm.watch.events import FolderEvents
from qfarm.watch.report import Happening, WatchReport
from qfarm.watch.settings import WatchSettings
from qfarm.watch.stability import Stability
from qfarm.watch.submitter import AlreadyRecorded, Submitter, SubmitterUnavailable, Template

# How long a claim found at the start with no batch may be another watcher's (of the same
# name) between its claim and its submit; after that, its watcher is taken to have stopped.
CLAIM_GRACE_SECONDS = 30.0
# Between tries while the controller is out of reach.
RETRY_SECONDS = 2.0
ERROR_KEPT = 4000  # characters of an error recorded and written in a sidecar
NOT_SUBMITTED = (
    "its watcher stopped between claiming it and submitting its batch, so it is not known "
    "whether the batch was submitted (see qfarm batches); touch the file to submit it again"
)


class FolderWatcher:
    def __init__(
        self,
        settings: WatchSettings,
        template: Template,
        submitter: Submitter,
        tell: Callable[[WatchReport], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.template = template
        self.submitter = submitter
        self.tell = tell
        self.clock = clock
        self.stability = Stability(settings.settle)
        # Every version claimed (by anyone): never claimed again, so a file left in place
        # (--mark sidecar) costs no request per scan.
        self.known: set[FileVersion] = set()
        self.out: dict[int, WatchedFile] = {}  # submitted, its batch still going
        self.doubtful: dict[int, tuple[WatchedFile, float]] = {}  # claimed, no batch, since
        self.owed: dict[int, WatchedFile] = {}  # ended here, not yet recorded (unreachable)
        self.failures = 0  # files that ended failed or refused, for --once's exit code
        self._wake = asyncio.Event()
        self._rescan = True
        self._quiet_until = 0.0  # no requests before this (the controller was out of reach)
        self._problem = ""  # the last problem told, so a long outage is told once

    # ------------------------------------------------------------------ running

    async def run(self, once: bool = False) -> None:
        """Watch until canceled; with ``once``, take what is stable now, wait for those
        batches to end, move them, and return. Raises SubmitterUnavailable when the
        controller cannot be reached at the start (nothing was done)."""
        await self.resume()
        events = None
        if self.settings.events and not once:
            events = FolderEvents(self.settings.folder, self.wake)
            events.start()
        try:
            await (self._once() if once else self._forever())
        finally:
            if events is not None:
                events.stop()

    def wake(self) -> None:
        """Look at the folder again now (a file event came)."""
        self._rescan = True
        self._wake.set()

    async def _forever(self) -> None:
        next_scan = next_poll = 0.0
        while True:
            now = self.clock()
            if now < self._quiet_until:  # the controller was out of reach: wait a little
                await asyncio.sleep(self._quiet_until - now)
                continue
            full = self._rescan or now >= next_scan
            if full:
                self._rescan = False
                next_scan = now + self.settings.scan
            await self._guarded(self.look(full))
            if self.out or self.doubtful or self.owed:
                if now >= next_poll:
                    next_poll = now + self.settings.poll
                    await self._guarded(self.follow())
            else:
                next_poll = now
            wake_at = [next_scan, self.stability.next_due() or next_scan]
            if self.out or self.doubtful or self.owed:
                wake_at.append(next_poll)
            await self._sleep(min(wake_at) - self.clock())

    async def _once(self) -> None:
        """One look, one more a settle period later (what stayed the same is taken, what
        changed is left), then the batches followed to their end."""
        await self.look(full=True)
        first = set(self.stability.pending())
        await asyncio.sleep(self.settings.settle)
        await self.look(full=False)
        for name in sorted(set(self.stability.pending()) & first):
            self.tell(WatchReport(self.settings.name, Happening.LEFT, name))
        while self.out or self.owed:
            await asyncio.sleep(self.settings.poll)
            await self._guarded(self.follow(grace=False))

    async def _sleep(self, seconds: float) -> None:
        self._wake.clear()
        if self._rescan:
            return
        await wait_set(self._wake, max(0.02, seconds))

    async def _guarded(self, step: Coroutine[Any, Any, None]) -> None:
        """Run a step; a controller out of reach or a folder gone is told once and tried
        again later, never the end of the watcher."""
        try:
            await step
        except SubmitterUnavailable as exc:
            self._quiet_until = self.clock() + RETRY_SECONDS
            self._problem_once(f"{exc}; trying again")
        except OSError as exc:
            self._quiet_until = self.clock() + RETRY_SECONDS
            self._problem_once(f"cannot read {self.settings.folder}: {exc.strerror or exc}")
        else:
            self._problem = ""

    def _problem_once(self, text: str) -> None:
        if text != self._problem:
            self._problem = text
            self.tell(WatchReport(self.settings.name, Happening.PROBLEM, error=text))

    # ---------------------------------------------------------------- the steps

    async def resume(self) -> None:
        """Read back what this watch took: follow what is still going, finish what ended
        while no watcher looked, and give claims without a batch the grace of a watcher
        that may be submitting them."""
        for record in await self.submitter.taken(self.settings.name):
            self.known.add(record.version)
            if record.state is WatchedState.SUBMITTED:
                self.out[record.id] = record
            elif record.state is WatchedState.CLAIMED:
                self.doubtful[record.id] = (record, self.clock())
            else:
                self._finish(record, resumed=True)

    async def look(self, full: bool) -> None:
        """Check the folder (``full``), or only the files not yet stable, and take each
        file that has become stable."""
        folder = self.settings.folder
        if full:
            found = disk.listing(folder)
            self.stability.keep_only(set(found))
        else:
            found = {}
            for name in self.stability.pending():
                version = disk.version_of(folder, name)
                if version is None:
                    self.stability.forget(name)
                else:
                    found[name] = version
        now = self.clock()
        for name, version in sorted(found.items()):
            if version in self.known:
                continue
            if self.stability.see(name, version.size, version.mtime, now):
                await self.take(version)
                self.stability.forget(name)

    async def take(self, version: FileVersion) -> None:
        """Claim a stable file, make its batch and submit it."""
        name = self.settings.name
        record = await self.submitter.claim(name, version)
        self.known.add(version)
        if record is None:
            self.tell(WatchReport(name, Happening.PASSED, version.path))
            return
        self.tell(WatchReport(name, Happening.TAKEN, version.path))
        try:
            request = self.template(self.settings.folder / version.path)
            batch_id = await self.submitter.submit(request)
        except SubmitterUnavailable as exc:
            # It may or may not have reached the controller: never submitted again.
            await self._end(record, WatchedState.FAILED, f"could not submit it: {exc}")
            return
        except QfarmError as exc:
            await self._end(record, WatchedState.REFUSED, str(exc))
            return
        submitted = dataclasses.replace(record, state=WatchedState.SUBMITTED, batch_id=batch_id)
        self.out[record.id] = submitted
        self.tell(WatchReport(name, Happening.SUBMITTED, version.path, batch_id))
        try:
            await self.submitter.record(record.id, WatchedState.SUBMITTED, batch_id=batch_id)
        except AlreadyRecorded as exc:  # another watcher gave up on the claim meanwhile
            self._problem_once(str(exc))

    async def follow(self, grace: bool = True) -> None:
        """Record what is owed, look at the batches still going, and end the files whose
        batch ended; claims found at the start with no batch end once their grace is
        over (at once without ``grace``)."""
        for record in list(self.owed.values()):
            await self._record_end(record)
        for record in list(self.out.values()):
            assert record.batch_id is not None
            end = await self.submitter.batch_end(record.batch_id)
            if end is not None:
                del self.out[record.id]
                await self._end(record, end.outcome, end.error)
        expired = [
            record
            for record, since in self.doubtful.values()
            if not grace or self.clock() - since >= CLAIM_GRACE_SECONDS
        ]
        if not expired:
            return
        # What became of them, read once for all of them.
        current = {r.id: r for r in await self.submitter.taken(self.settings.name)}
        for record in expired:
            del self.doubtful[record.id]
            if current.get(record.id, record).state is WatchedState.CLAIMED:
                await self._end(record, WatchedState.FAILED, NOT_SUBMITTED)

    # ----------------------------------------------------------------- endings

    async def _end(self, record: WatchedFile, state: WatchedState, error: str) -> None:
        # The API keeps errors short; a refusal's first lines say what it is.
        ended = dataclasses.replace(record, state=state, error=error[:ERROR_KEPT])
        self.owed[record.id] = ended
        await self._record_end(ended)

    async def _record_end(self, ended: WatchedFile) -> None:
        """Record an end, then move the source: only the watcher whose record took moves
        it (another one of the same name may have ended it first)."""
        try:
            await self.submitter.record(
                ended.id, ended.state, batch_id=ended.batch_id, error=ended.error
            )
        except AlreadyRecorded:  # another watcher of this watch ended it, and moves it
            self.owed.pop(ended.id, None)
            return
        except SubmitterUnavailable:
            raise
        except QfarmError as exc:  # its record is gone (removed): the source still moves
            ended = dataclasses.replace(ended, error=f"{ended.error} (not recorded: {exc})")
        self.owed.pop(ended.id, None)
        self._finish(ended, resumed=False)

    def _finish(self, record: WatchedFile, resumed: bool) -> None:
        """Move or mark the source, and tell it (at a resume: only when something moved,
        and not counted among this run's failures)."""
        if record.state is not WatchedState.DONE and not resumed:
            self.failures += 1
        try:
            moved = disk.finish(self.settings, record)
        except OSError as exc:
            moved = ""
            record = dataclasses.replace(
                record, error=f"{record.error}; could not move it: {exc}".lstrip("; ")
            )
        if resumed and not moved:
            return
        happening = {
            WatchedState.DONE: Happening.DONE,
            WatchedState.REFUSED: Happening.REFUSED,
        }.get(record.state, Happening.FAILED)
        self.tell(
            WatchReport(
                self.settings.name, happening, record.path, record.batch_id, record.error, moved
            )
        )
