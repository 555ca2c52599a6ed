"""Notifications over the API: the farm-wide defaults (``GET``/``PUT
/api/v1/settings/notify``), and the conversions the batch routes use for a batch's own
notifications and its deliveries."""

from __future__ import annotations

from collections.abc import Iterable

from fastapi import APIRouter

from qfarm.api.common import API, errors
from qfarm.controller.notify import Notifier
from qfarm.controller.service import Controller
from qfarm.domain.errors import InvalidRequest
from qfarm.domain.notify import Delivery, Notification, NotifyOn, checked
from qfarm.wire.schemas import (
    DeliveryOut,
    NotificationIn,
    NotificationOut,
    NotifySettingsIn,
    NotifySettingsOut,
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


def router(controller: Controller) -> APIRouter:
    api = APIRouter(prefix=f"{API}/settings", tags=["settings"])

    def notifier() -> Notifier:
        if controller.notifier is None:
            raise InvalidRequest("this controller sends no notifications (qfarm controller does)")
        return controller.notifier

    def answer() -> NotifySettingsOut:
        found = notifier()
        return NotifySettingsOut(
            notify=[notification_out(n) for n in found.defaults()], email=found.smtp is not None
        )

    @api.get("/notify", responses=errors())
    async def notify_defaults() -> NotifySettingsOut:
        """The farm-wide notifications, told of every batch besides its own."""
        return answer()

    @api.put("/notify", responses=errors())
    async def set_notify_defaults(body: NotifySettingsIn) -> NotifySettingsOut:
        """Replace the farm-wide notifications (400 naming a bad target, or an email one
        when the controller has no SMTP server); batches that end from now on are told."""
        notifier().set_defaults(notifications_of(body.notify))
        return answer()

    return api
