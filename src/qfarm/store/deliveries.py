"""Notifications kept: what a batch asked for (``batches.notify``), the farm-wide defaults
(the ``notify`` setting), and the deliveries owed for batches that ended, with how each
went. The controller's notifier writes and reads them (:mod:`qfarm.controller.notify`);
what is owed to whom, and when a failed delivery is tried again, is the domain's
(:mod:`qfarm.domain.notify`).
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select, update

from qfarm.domain.model import FINAL_BATCH_STATES, Batch
from qfarm.domain.notify import (
    Delivery,
    DeliveryState,
    Notification,
    NotifyEvent,
)
from qfarm.store.rows import Row, insert, to_batch
from qfarm.store.settings import Settings
from qfarm.store.tables import batches, deliveries

# The settings row of the farm-wide default notifications.
NOTIFY_SETTING = "notify"


def _delivery(row: Row) -> Delivery:
    return Delivery(
        id=row.id,
        batch_id=row.batch_id,
        target=row.target,
        event=NotifyEvent(row.event),
        state=DeliveryState(row.state),
        attempts=row.attempts,
        created_at=row.created_at,
        next_at=row.next_at,
        delivered_at=row.delivered_at,
        last_error=row.last_error,
    )


class Deliveries(Settings):
    def batch_notifications(self, batch_id: int) -> tuple[Notification, ...]:
        """What a batch asked for itself (the defaults are apart: :meth:`notify_defaults`)."""
        with self.engine.connect() as conn:
            value = conn.execute(select(batches.c.notify).where(batches.c.id == batch_id)).scalar()
        return tuple(Notification.from_dict(n) for n in value or ())

    def notify_defaults(self) -> tuple[Notification, ...]:
        """The farm-wide notifications, told of every batch besides its own."""
        return tuple(Notification.from_dict(n) for n in self.setting(NOTIFY_SETTING) or ())

    def set_notify_defaults(self, given: Sequence[Notification]) -> None:
        self.set_setting(NOTIFY_SETTING, [n.to_dict() for n in given])

    def add_deliveries(
        self,
        batch_id: int,
        event: NotifyEvent,
        targets: Sequence[str],
        *,
        ended_at: float,
        now: float,
    ) -> list[int]:
        """Owe ``targets`` the news of a batch's end at ``ended_at``, due at once; a
        target already owed this end (a row made at or after it) is not owed it twice, so
        the end may be told here again (a repeated event, a restart's catch-up). A
        resubmitted batch that ends again is a new end. Returns the new rows' ids."""
        added: list[int] = []
        with self._tx() as conn:
            have = set(
                conn.execute(
                    select(deliveries.c.target)
                    .where(deliveries.c.batch_id == batch_id)
                    .where(deliveries.c.created_at >= ended_at)
                ).scalars()
            )
            for target in targets:
                if target in have:
                    continue
                have.add(target)
                added.append(
                    insert(
                        conn,
                        deliveries.insert().values(
                            batch_id=batch_id,
                            target=target,
                            event=event.value,
                            state=DeliveryState.PENDING.value,
                            attempts=0,
                            created_at=max(now, ended_at),
                            next_at=now,
                            last_error="",
                        ),
                    )
                )
        return added

    def claim_deliveries(self, now: float, lease: float, limit: int = 50) -> list[Delivery]:
        """The pending deliveries due now, each put off by ``lease`` seconds while it is
        tried, so that no other round takes it meanwhile, and a controller that dies
        mid-try tries it again once the lease is over."""
        with self._tx() as conn:
            rows = conn.execute(
                select(deliveries)
                .where(deliveries.c.state == DeliveryState.PENDING.value)
                .where(deliveries.c.next_at <= now)
                .order_by(deliveries.c.next_at, deliveries.c.id)
                .limit(limit)
            ).all()
            if rows:
                conn.execute(
                    update(deliveries)
                    .where(deliveries.c.id.in_([row.id for row in rows]))
                    .values(next_at=now + lease)
                )
        return [_delivery(row) for row in rows]

    def next_delivery_at(self) -> float | None:
        """When the soonest pending delivery is due; None when none is pending."""
        with self.engine.connect() as conn:
            value = conn.execute(
                select(func.min(deliveries.c.next_at)).where(
                    deliveries.c.state == DeliveryState.PENDING.value
                )
            ).scalar()
        return None if value is None else float(value)

    def record_delivery(
        self, delivery_id: int, *, at: float, error: str = "", next_at: float | None = None
    ) -> None:
        """One try of a delivery: through (no ``error``), or failed with ``error`` and
        tried again at ``next_at`` (None: no more tries, failed for good)."""
        if not error:
            values: dict[str, object] = {
                "state": DeliveryState.DELIVERED.value,
                "delivered_at": at,
                "next_at": None,
            }
        elif next_at is not None:
            values = {"state": DeliveryState.PENDING.value, "next_at": next_at, "last_error": error}
        else:
            values = {"state": DeliveryState.FAILED.value, "next_at": None, "last_error": error}
        with self._tx() as conn:
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id)
                .values(attempts=deliveries.c.attempts + 1, **values)
            )

    def release_delivery(self, delivery_id: int, next_at: float) -> None:
        """Give back a delivery whose try was abandoned (the controller stopping), due
        again at ``next_at`` without an attempt counted."""
        with self._tx() as conn:
            conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id)
                .where(deliveries.c.state == DeliveryState.PENDING.value)
                .values(next_at=next_at)
            )

    def deliveries(self, batch_id: int) -> list[Delivery]:
        """A batch's deliveries, oldest first (what `qfarm show` lists)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(deliveries)
                .where(deliveries.c.batch_id == batch_id)
                .order_by(deliveries.c.id)
            )
            return [_delivery(row) for row in rows]

    def delivery(self, delivery_id: int) -> Delivery | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(deliveries).where(deliveries.c.id == delivery_id)).first()
        return None if row is None else _delivery(row)

    def batches_ended_since(self, since: float) -> list[Batch]:
        """The batches that ended at ``since`` or later, first ended first: what a
        restarted controller's notifier looks through for ends it had not yet recorded."""
        query = (
            select(batches)
            .where(batches.c.state.in_([s.value for s in FINAL_BATCH_STATES]))
            .where(batches.c.finished_at >= since)
            .order_by(batches.c.finished_at)
        )
        with self.engine.connect() as conn:
            return [to_batch(row) for row in conn.execute(query)]
