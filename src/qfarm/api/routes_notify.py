"""Notifications over the API: the conversions between the wire's models and the domain's,
for a batch's own notifications, its deliveries and the farm-wide defaults (served under
/api/v1/settings by :mod:`qfarm.api.routes_settings`)."""

from __future__ import annotations

from collections.abc import Iterable

from qfarm.domain.notify import Delivery, Notification, NotifyOn, checked
from qfarm.wire.schemas import (
    DeliveryOut,
    NotificationIn,
    NotificationOut,
)


def notifications_of(given: Iterable[NotificationIn]) -> tuple[Notification, ...]:
    """The domain's notifications of a request's (InvalidRequest naming a bad target)."""
    return checked(Notification(n.target, NotifyOn(n.on)) for n in given)


def notification_out(notification: Notification) -> NotificationOut:
    return NotificationOut(target=notification.target, on=notification.on.value)


def delivery_out(delivery: Delivery) -> DeliveryOut:
    return DeliveryOut(
        id=delivery.id,
        target=delivery.target,
        event=delivery.event.value,
        state=delivery.state.value,
        attempts=delivery.attempts,
        created_at=delivery.created_at,
        next_at=delivery.next_at,
        delivered_at=delivery.delivered_at,
        last_error=delivery.last_error,
    )
