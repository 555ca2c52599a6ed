"""The notifier: tells people and systems when batches end, by email and webhook, in the
background of the controller.

It listens to the controller's state changes (:meth:`Controller.subscribe`); a batch that
reaches a final state is owed one delivery per target (its own notifications and the
farm-wide defaults that ask for that end), written to the store's ``deliveries`` table at
once. A second task tries the due deliveries, each in a task of its own (a webhook through
httpx, an email through smtplib in a thread), so a slow or dead receiver never holds up
the dispatcher, nor the other deliveries. A try that fails is tried again after the
domain's backoff (:data:`qfarm.domain.notify.RETRY_DELAYS`) until the schedule is spent,
when the delivery is failed with its last error. Deliveries live in the store: a restarted
controller tries the pending ones, and looks through the batches that ended shortly before
it started for ends it had not yet written down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from qfarm.controller.notify_email import SmtpServer, send_email
from qfarm.controller.notify_report import email_subject, email_text, gather, webhook_body
from qfarm.controller.notify_webhook import WebhookSender
from qfarm.domain.errors import InvalidRequest, NotFound
from qfarm.domain.model import FINAL_BATCH_STATES
from qfarm.domain.notify import (
    RETRY_DELAYS,
    Delivery,
    DeliveryFailed,
    Notification,
    NotifyEvent,
    TargetKind,
    checked,
    email_address,
    owed,
    retry_delay,
)
from qfarm.store import Change, Store
from qfarm.waits import get_within, wait_set

log = logging.getLogger("qfarm.notify")

# A restarted controller writes down the ends of batches that ended this long before it
# started without their deliveries (it stopped between the two).
CATCH_UP_SECONDS = 600.0
# A delivery being tried is not taken again for this long (longer than a try can take): a
# controller that died mid-try tries it again after.
LEASE_SECONDS = 120.0
# Deliveries tried at once; more wait for the next round.
AT_ONCE = 20
# The longest the delivery loop sleeps without news, and how often the listener checks
# that the controller still feeds it.
IDLE_SECONDS = 30.0
FINAL_STATES = frozenset(s.value for s in FINAL_BATCH_STATES)
NO_SMTP = "this controller has no SMTP server configured (qfarm controller --smtp URL)"
NO_NOTIFIER = "this controller sends no notifications (qfarm controller does)"


class ChangeFeed(Protocol):
    """Where state changes come from: the controller (:meth:`Controller.subscribe`)."""

    def subscribe(self) -> asyncio.Queue[list[Change]]: ...

    def listening(self, queue: asyncio.Queue[list[Change]]) -> bool: ...

    def unsubscribe(self, queue: asyncio.Queue[list[Change]]) -> None: ...


@dataclass(frozen=True)
class NotifyConfig:
    """How a controller notifies: what ``qfarm controller`` was given."""

    webhook_secret: str
    smtp: SmtpServer | None = None
    # The farm-wide defaults given on the command line: they replace the stored ones.
    # None: keep those stored (set through the API, or by an earlier start).
    defaults: tuple[Notification, ...] | None = None
    retry_delays: tuple[float, ...] = RETRY_DELAYS


def check_notifications(notifier: Notifier | None, given: Sequence[Notification]) -> None:
    """Refuse (InvalidRequest) notifications this controller cannot send: any at all
    without a notifier (an embedded run), email without an SMTP server."""
    if not given:
        return
    if notifier is None:
        raise InvalidRequest(NO_NOTIFIER)
    notifier.check(given)


class Notifier:
    """The notifications of one controller: see the module's docstring."""

    def __init__(
        self,
        store: Store,
        feed: ChangeFeed,
        config: NotifyConfig,
        *,
        catch_up: float = CATCH_UP_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.feed = feed
        self.smtp = config.smtp
        self.retry_delays = config.retry_delays
        self.catch_up = catch_up
        self.clock = clock
        self.monitor_url = ""
        self.webhooks = WebhookSender(config.webhook_secret)
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._trying: dict[asyncio.Task[None], Delivery] = {}
        self._queue: asyncio.Queue[list[Change]] | None = None
        if config.defaults is not None:
            self.set_defaults(config.defaults)

    # ------------------------------------------------------------------ settings

    def check(self, given: Sequence[Notification]) -> None:
        """InvalidRequest for an email target when no SMTP server is configured."""
        if self.smtp is None:
            for n in given:
                if n.kind is TargetKind.EMAIL:
                    raise InvalidRequest(f"notify target {n.target}: {NO_SMTP}")

    def defaults(self) -> tuple[Notification, ...]:
        return self.store.notify_defaults()

    def set_defaults(self, given: Sequence[Notification]) -> tuple[Notification, ...]:
        """Replace the farm-wide defaults (InvalidRequest for a bad or unsendable one)."""
        clean = checked(given)
        self.check(clean)
        self.store.set_notify_defaults(clean)
        return clean

    # ------------------------------------------------------------------ running

    async def start(self, monitor_url: str = "") -> None:
        """Start listening and delivering; ``monitor_url``: the controller's URL, which
        messages link to."""
        self.monitor_url = monitor_url
        self._queue = self.feed.subscribe()
        self._catch_up(self.clock() - self.catch_up)
        self._tasks = [
            asyncio.create_task(self._listen(), name="qfarm-notify-listen"),
            asyncio.create_task(self._deliver_loop(), name="qfarm-notify-deliver"),
        ]

    async def close(self) -> None:
        """Stop; deliveries being tried are abandoned and tried again by the next start."""
        abandoned = list(self._trying.values())
        for task in [*self._tasks, *self._trying]:
            task.cancel()
        for task in [*self._tasks, *self._trying]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        for delivery in abandoned:  # due at once for the next start, as they were
            with contextlib.suppress(Exception):
                self.store.release_delivery(delivery.id, self.clock())
        if self._queue is not None:
            self.feed.unsubscribe(self._queue)
            self._queue = None
        await self.webhooks.close()

    def batch_ended(self, batch_id: int) -> list[int]:
        """Write down the deliveries a batch's end is owed (none twice); their ids."""
        try:
            batch = self.store.batch(batch_id)
        except NotFound:
            return []
        if batch.state.value not in FINAL_STATES or batch.finished_at is None:
            return []
        event = NotifyEvent(batch.state.value)
        targets = owed(event, self.store.batch_notifications(batch_id), self.defaults())
        if not targets:
            return []
        added = self.store.add_deliveries(
            batch_id, event, targets, ended_at=batch.finished_at, now=self.clock()
        )
        if added:
            self._wake.set()
        return added

    def _catch_up(self, since: float) -> None:
        for batch in self.store.batches_ended_since(since):
            self.batch_ended(batch.id)

    async def _listen(self) -> None:
        while True:
            assert self._queue is not None
            try:
                changes = await get_within(self._queue, IDLE_SECONDS)
            except TimeoutError:
                if not self.feed.listening(self._queue):
                    # Dropped for falling behind: listen again, and look for what was missed.
                    self._queue = self.feed.subscribe()
                    self._catch_up(self.clock() - self.catch_up)
                continue
            ended = {c.batch_id for c in changes if c.kind == "batch" and c.state in FINAL_STATES}
            for batch_id in sorted(ended):
                try:
                    self.batch_ended(batch_id)
                except Exception:  # a store error must not end the listening
                    log.exception("notifications of batch %s not written", batch_id)

    async def _deliver_loop(self) -> None:
        while True:
            self._wake.clear()
            free = AT_ONCE - len(self._trying)
            if free > 0:
                for delivery in self.store.claim_deliveries(self.clock(), LEASE_SECONDS, free):
                    task = asyncio.create_task(self._try(delivery))
                    self._trying[task] = delivery
                    task.add_done_callback(self._done_trying)
            await self._sleep()

    def _done_trying(self, task: asyncio.Task[None]) -> None:
        self._trying.pop(task, None)

    async def _sleep(self) -> None:
        """Until a new delivery is written, a try ends, or the next pending one is due."""
        due = self.store.next_delivery_at()
        wait = IDLE_SECONDS if due is None else max(0.0, min(IDLE_SECONDS, due - self.clock()))
        await wait_set(self._wake, wait)

    async def _try(self, delivery: Delivery) -> None:
        """One try of a delivery, and its outcome written down."""
        error = ""
        final = False
        try:
            await self._send(delivery)
        except DeliveryFailed as exc:
            error = str(exc) or type(exc).__name__
        except _Undeliverable as exc:
            error, final = str(exc), True
        except Exception as exc:  # a bug of ours: written down, retried like any failure
            log.exception("delivery %s to %s", delivery.id, delivery.target)
            error = f"internal error: {type(exc).__name__}: {exc}"
        now = self.clock()
        delay = None if final else retry_delay(delivery.attempts + 1, self.retry_delays)
        self.store.record_delivery(
            delivery.id,
            at=now,
            error=error.replace("\n", " "),
            next_at=None if delay is None else now + delay,
        )
        self._wake.set()

    async def _send(self, delivery: Delivery) -> None:
        try:
            report = gather(self.store, delivery.batch_id, delivery.event, self.monitor_url)
        except NotFound:
            raise _Undeliverable(f"batch {delivery.batch_id} was removed") from None
        if delivery.kind is TargetKind.EMAIL:
            if self.smtp is None:
                raise _Undeliverable(NO_SMTP)
            address = email_address(delivery.target)
            await send_email(self.smtp, address, email_subject(report), email_text(report))
        else:
            body = webhook_body(report, delivery.id, self.clock())
            event = f"batch.{delivery.event.value}"
            await self.webhooks.post(delivery.target, body, event, delivery.id)


class _Undeliverable(Exception):
    """A delivery no retry can help: failed at once."""
