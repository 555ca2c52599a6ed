"""Farm-wide settings the API changes while the controller runs: how long ended batches
are kept (retention), and the notifications told of every batch (the defaults)."""

from __future__ import annotations

from fastapi import APIRouter

from qfarm.api.common import API, errors
from qfarm.api.routes_notify import notification_out, notifications_of
from qfarm.controller.notify import NO_NOTIFIER, Notifier
from qfarm.controller.retention import kept_for
from qfarm.controller.service import Controller
from qfarm.domain.errors import InvalidRequest
from qfarm.wire.schemas import NotifySettingsIn, NotifySettingsOut, RetentionIn, RetentionOut


def router(controller: Controller) -> APIRouter:
    api = APIRouter(prefix=f"{API}/settings", tags=["settings"])

    @api.get("/retention", responses=errors())
    async def retention() -> RetentionOut:
        """How long ended batches are kept before they are removed (null: for ever)."""
        return RetentionOut(keep=kept_for(controller.store))

    @api.put("/retention", responses=errors())
    async def set_retention(body: RetentionIn) -> RetentionOut:
        """Keep ended batches, with their logs and stored outputs, this many seconds (null:
        for ever); batches already older go at once."""
        controller.set_retention(body.keep)
        return RetentionOut(keep=kept_for(controller.store))

    def notifier() -> Notifier:
        if controller.notifier is None:
            raise InvalidRequest(NO_NOTIFIER)
        return controller.notifier

    def notify_answer() -> NotifySettingsOut:
        found = notifier()
        return NotifySettingsOut(
            notify=[notification_out(n) for n in found.defaults()], email=found.smtp is not None
        )

    @api.get("/notify", responses=errors())
    async def notify_defaults() -> NotifySettingsOut:
        """The farm-wide notifications, told of every batch besides its own."""
        return notify_answer()

    @api.put("/notify", responses=errors())
    async def set_notify_defaults(body: NotifySettingsIn) -> NotifySettingsOut:
        """Replace the farm-wide notifications (400 naming a bad target, or an email one
        when the controller has no SMTP server); batches that end from now on are told."""
        notifier().set_defaults(notifications_of(body.notify))
        return notify_answer()

    return api
