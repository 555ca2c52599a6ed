"""Notifications kept in the store: what a batch asks for, the farm-wide defaults, and
deliveries written once per end, claimed, retried, given back and removed with the batch."""

from __future__ import annotations

from pathlib import Path

from qfarm.domain.model import BatchState
from qfarm.domain.notify import DeliveryState, Notification, NotifyEvent, NotifyOn
from qfarm.store import Store
from tests.store.support import command_job, submit

HOOK = "https://hooks.example/x"
MAIL = "mailto:ops@example.com"


def test_a_batch_keeps_its_notifications_and_the_farm_its_defaults(
    store: Store, tmp_path: Path
) -> None:
    asked = (Notification(HOOK, NotifyOn.FAILED), Notification(MAIL))
    batch = submit(store, command_job(tmp_path), notify=asked)
    plain = submit(store, command_job(tmp_path))
    assert store.batch_notifications(batch) == asked
    assert store.batch_notifications(plain) == ()
    assert store.notify_defaults() == ()
    store.set_notify_defaults([Notification(MAIL, NotifyOn.DONE)])
    store.set_notify_defaults([Notification(HOOK)])
    assert store.notify_defaults() == (Notification(HOOK),)


def test_an_end_is_owed_once_per_target_and_a_new_end_again(store: Store, tmp_path: Path) -> None:
    batch = submit(store, command_job(tmp_path))
    first = store.add_deliveries(batch, NotifyEvent.FAILED, [HOOK, MAIL], ended_at=100.0, now=101.0)
    again = store.add_deliveries(batch, NotifyEvent.FAILED, [HOOK, MAIL], ended_at=100.0, now=102.0)
    assert len(first) == 2 and again == []
    # Resubmitted and ended again later: a new end, told again.
    later = store.add_deliveries(batch, NotifyEvent.DONE, [HOOK], ended_at=200.0, now=200.5)
    assert len(later) == 1
    rows = store.deliveries(batch)
    assert [(d.target, d.event, d.state, d.attempts) for d in rows] == [
        (HOOK, NotifyEvent.FAILED, DeliveryState.PENDING, 0),
        (MAIL, NotifyEvent.FAILED, DeliveryState.PENDING, 0),
        (HOOK, NotifyEvent.DONE, DeliveryState.PENDING, 0),
    ]


def test_claims_lease_retries_and_ends(store: Store, tmp_path: Path) -> None:
    batch = submit(store, command_job(tmp_path))
    hook, mail = store.add_deliveries(
        batch, NotifyEvent.DONE, [HOOK, MAIL], ended_at=10.0, now=10.0
    )
    claimed = store.claim_deliveries(now=11.0, lease=60.0)
    assert [d.id for d in claimed] == [hook, mail]
    assert store.claim_deliveries(now=12.0, lease=60.0) == []  # leased while tried
    assert store.next_delivery_at() == 71.0
    store.record_delivery(hook, at=12.0, error="HTTP 503 from receiver", next_at=22.0)
    store.record_delivery(mail, at=12.0)
    assert store.next_delivery_at() == 22.0
    [retry] = store.claim_deliveries(now=22.0, lease=60.0)
    assert (retry.id, retry.attempts, retry.last_error) == (hook, 1, "HTTP 503 from receiver")
    store.record_delivery(hook, at=23.0, error="connection refused", next_at=None)
    by_id = {d.id: d for d in store.deliveries(batch)}
    assert (by_id[hook].state, by_id[hook].attempts) == (DeliveryState.FAILED, 2)
    assert by_id[hook].last_error == "connection refused" and by_id[hook].next_at is None
    assert (by_id[mail].state, by_id[mail].delivered_at) == (DeliveryState.DELIVERED, 12.0)
    assert store.next_delivery_at() is None


def test_an_abandoned_try_is_given_back_without_an_attempt(store: Store, tmp_path: Path) -> None:
    batch = submit(store, command_job(tmp_path))
    [hook] = store.add_deliveries(batch, NotifyEvent.DONE, [HOOK], ended_at=10.0, now=10.0)
    store.claim_deliveries(now=10.0, lease=60.0)
    store.release_delivery(hook, next_at=11.0)
    [again] = store.claim_deliveries(now=11.0, lease=60.0)
    assert (again.id, again.attempts) == (hook, 0)


def test_ended_batches_are_found_and_removed_with_their_deliveries(
    store: Store, tmp_path: Path
) -> None:
    batch = submit(store, command_job(tmp_path))
    store.cancel_batch(batch)
    assert store.batch(batch).state is BatchState.CANCELED
    ended = store.batch(batch).finished_at
    assert ended is not None
    assert [b.id for b in store.batches_ended_since(ended - 1)] == [batch]
    assert store.batches_ended_since(ended + 1) == []
    store.add_deliveries(batch, NotifyEvent.CANCELED, [HOOK], ended_at=ended, now=ended)
    store.remove_batch(batch)
    assert store.deliveries(batch) == []
