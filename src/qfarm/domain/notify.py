"""Notifications: who hears of a batch's end, of which ends, and how often a delivery that
did not get through is tried again.

Pure: the rules for a target (``mailto:`` one address, an ``http://`` or ``https://`` URL),
the events a notification asks for, which targets a batch's end is owed to (its own
notifications and the farm-wide defaults), and the retry schedule. The store keeps
:class:`Notification` as :meth:`Notification.to_dict` in ``batches.notify`` and in the
``notify`` setting, and gives back :class:`Delivery` records of the ``deliveries`` table.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from qfarm.domain.errors import InvalidRequest

# A target is stored in full and shown in tables; a URL longer than this is no webhook.
MAX_TARGET_LENGTH = 2000
# One batch's own notifications (the defaults come on top).
MAX_NOTIFICATIONS = 20

# Seconds before each retry of a delivery that failed: the first retry 10 s after the first
# attempt, the last an hour after the one before; a delivery failing all of them is failed.
RETRY_DELAYS: tuple[float, ...] = (10.0, 30.0, 120.0, 600.0, 1800.0, 3600.0)

# One address, as a mailto: target takes it: no list, no name, no ?subject= headers.
_ADDRESS = re.compile(r"[^@\s,;:<>()\[\]\\\"?&=/]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?")


class NotifyEvent(enum.StrEnum):
    """How a batch ended, as a notification tells it: the batch's final states."""

    DONE = "done"
    FAILED = "failed"
    CANCELED = "canceled"


class NotifyOn(enum.StrEnum):
    """Which ends a notification asks for (``--notify-on``)."""

    DONE = "done"
    FAILED = "failed"
    ENDED = "ended"  # any end: done, failed or canceled

    def covers(self, event: NotifyEvent) -> bool:
        if self is NotifyOn.ENDED:
            return True
        return self.value == event.value


class TargetKind(enum.StrEnum):
    EMAIL = "email"
    WEBHOOK = "webhook"


class DeliveryState(enum.StrEnum):
    """A delivery row's state: pending until it got through or ran out of retries."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


def parse_on(text: str) -> NotifyOn:
    """``done``, ``failed`` or ``ended`` (InvalidRequest otherwise)."""
    try:
        return NotifyOn(text.strip().lower())
    except ValueError:
        raise InvalidRequest(
            f"notify-on {text!r} is not done, failed or ended (done or failed)"
        ) from None


def check_target(text: str) -> str:
    """The target as it is kept, or InvalidRequest naming it: ``mailto:`` with one
    address, or an ``http://`` or ``https://`` URL with a host."""
    target = text.strip()
    shown = target if len(target) <= 80 else target[:77] + "..."
    if not target or len(target) > MAX_TARGET_LENGTH:
        raise InvalidRequest(f"notify target {shown!r} is empty or too long")
    scheme = target.split(":", 1)[0].lower() if ":" in target else ""
    if scheme == "mailto":
        address = target.split(":", 1)[1]
        if not _ADDRESS.fullmatch(address):
            raise InvalidRequest(
                f"notify target {shown!r} is not mailto: with one address (mailto:ops@example.com)"
            )
        return f"mailto:{address}"
    if scheme in ("http", "https"):
        try:
            parts = urlsplit(target)
            parts.port  # noqa: B018  (a port that is no number raises here)
        except ValueError:
            parts = None
        if parts is None or not parts.hostname or any(c.isspace() for c in target):
            raise InvalidRequest(f"notify target {shown!r} is not a URL with a host")
        return target
    raise InvalidRequest(
        f"notify target {shown!r} is neither mailto:ADDRESS nor an http:// or https:// URL"
    )


def target_kind(target: str) -> TargetKind:
    return TargetKind.EMAIL if target.lower().startswith("mailto:") else TargetKind.WEBHOOK


def email_address(target: str) -> str:
    """The address of a ``mailto:`` target."""
    return target.split(":", 1)[1]


@dataclass(frozen=True)
class Notification:
    """One target told of a batch's end: on ``done``, ``failed`` or any end (``ended``)."""

    target: str
    on: NotifyOn = NotifyOn.ENDED

    @property
    def kind(self) -> TargetKind:
        return target_kind(self.target)

    def to_dict(self) -> dict[str, str]:
        return {"target": self.target, "on": self.on.value}

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> Notification:
        return cls(str(value["target"]), NotifyOn(value.get("on", NotifyOn.ENDED.value)))


def notifications(
    targets: Iterable[str], on: str | NotifyOn = NotifyOn.ENDED
) -> tuple[Notification, ...]:
    """Checked notifications of ``targets``, all on ``on`` (InvalidRequest naming a bad
    one); a target given twice is kept once."""
    when = on if isinstance(on, NotifyOn) else parse_on(on)
    found = tuple(dict.fromkeys(check_target(t) for t in targets))
    if len(found) > MAX_NOTIFICATIONS:
        raise InvalidRequest(f"{len(found)} notify targets: at most {MAX_NOTIFICATIONS}")
    return tuple(Notification(t, when) for t in found)


def checked(given: Iterable[Notification]) -> tuple[Notification, ...]:
    """``given`` with each target checked (InvalidRequest naming a bad one), and those of
    one target merged: the union of what they ask for."""
    merged: dict[str, set[NotifyOn]] = {}
    for n in given:
        merged.setdefault(check_target(n.target), set()).add(n.on)
    if len(merged) > MAX_NOTIFICATIONS:
        raise InvalidRequest(f"{len(merged)} notify targets: at most {MAX_NOTIFICATIONS}")
    return tuple(Notification(target, _union(ons)) for target, ons in merged.items())


def _union(ons: set[NotifyOn]) -> NotifyOn:
    if len(ons) == 1:
        return next(iter(ons))
    return NotifyOn.ENDED  # done and failed (or ended): every end


def owed(event: NotifyEvent, *lists: Sequence[Notification]) -> list[str]:
    """The targets a batch's end ``event`` is owed to, once each, in the order given: a
    batch's own notifications first, then the farm-wide defaults."""
    targets: dict[str, None] = {}
    for given in lists:
        for n in given:
            if n.on.covers(event):
                targets.setdefault(n.target, None)
    return list(targets)


def retry_delay(attempts: int, delays: Sequence[float] = RETRY_DELAYS) -> float | None:
    """Seconds until the next try of a delivery whose ``attempts`` tries all failed; None
    once the schedule is spent (the delivery is then failed for good)."""
    if attempts < 1 or attempts > len(delays):
        return None
    return float(delays[attempts - 1])


@dataclass(frozen=True)
class Delivery:
    """One notification owed for one batch's end, and how its delivery went."""

    id: int
    batch_id: int
    target: str
    event: NotifyEvent
    state: DeliveryState
    attempts: int
    created_at: float
    next_at: float | None = None
    delivered_at: float | None = None
    last_error: str = ""

    @property
    def kind(self) -> TargetKind:
        return target_kind(self.target)


class DeliveryFailed(Exception):
    """A try of a delivery that did not get through (refused, unreachable, timed out); its
    one-line message is what the delivery keeps as its last error."""
