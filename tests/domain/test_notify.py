"""The rules of notifications: targets, the ends they ask for, whom an end is owed to, and
the retry schedule."""

from __future__ import annotations

import pytest

from qfarm.domain.errors import InvalidRequest
from qfarm.domain.notify import (
    RETRY_DELAYS,
    Notification,
    NotifyEvent,
    NotifyOn,
    TargetKind,
    check_target,
    checked,
    email_address,
    notifications,
    owed,
    parse_on,
    retry_delay,
)


@pytest.mark.parametrize(
    "target",
    [
        "mailto:ops@example.com",
        "mailto:render.wrangler+farm@studio.example",
        "https://hooks.example/qfarm?team=comp",
        "http://127.0.0.1:9000/hook",
        "HTTPS://hooks.example/x",
    ],
)
def test_good_targets_are_kept(target: str) -> None:
    assert check_target(f"  {target} ") == target


@pytest.mark.parametrize(
    ("target", "said"),
    [
        ("mailto:ops@example.com,boss@example.com", "one address"),
        ("mailto:Ops <ops@example.com>", "one address"),
        ("mailto:ops@example.com?subject=hi", "one address"),
        ("mailto:", "one address"),
        ("ops@example.com", "neither mailto"),
        ("ftp://hooks.example/x", "neither mailto"),
        ("https://", "URL with a host"),
        ("https://hooks.example:port/x", "URL with a host"),
        ("https://hooks.example/a b", "URL with a host"),
        ("", "empty"),
    ],
)
def test_bad_targets_are_refused_by_name(target: str, said: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        check_target(target)
    assert said in str(refused.value)
    assert "\n" not in str(refused.value)
    if target:
        assert repr(target.strip()) in str(refused.value)


def test_notify_on_names_and_what_each_covers() -> None:
    assert parse_on(" Failed ") is NotifyOn.FAILED
    with pytest.raises(InvalidRequest, match="done, failed or ended"):
        parse_on("always")
    assert NotifyOn.ENDED.covers(NotifyEvent.CANCELED)
    assert NotifyOn.DONE.covers(NotifyEvent.DONE) and not NotifyOn.DONE.covers(NotifyEvent.FAILED)
    assert not NotifyOn.FAILED.covers(NotifyEvent.CANCELED)


def test_notifications_of_the_command_line_are_checked_and_kept_once() -> None:
    given = notifications(["mailto:a@example.com", "https://h.example/x", "mailto:a@example.com"])
    assert [n.target for n in given] == ["mailto:a@example.com", "https://h.example/x"]
    assert {n.on for n in given} == {NotifyOn.ENDED}
    assert given[0].kind is TargetKind.EMAIL and given[1].kind is TargetKind.WEBHOOK
    assert email_address(given[0].target) == "a@example.com"
    with pytest.raises(InvalidRequest, match="at most"):
        notifications([f"https://h.example/{i}" for i in range(21)])


def test_one_target_asked_twice_hears_of_both_ends() -> None:
    merged = checked(
        [
            Notification("https://h.example/x", NotifyOn.DONE),
            Notification("https://h.example/x", NotifyOn.FAILED),
        ]
    )
    assert merged == (Notification("https://h.example/x", NotifyOn.ENDED),)


def test_stored_form_round_trips() -> None:
    n = Notification("mailto:ops@example.com", NotifyOn.FAILED)
    assert Notification.from_dict(n.to_dict()) == n
    assert Notification.from_dict({"target": "https://h.example/x"}).on is NotifyOn.ENDED


def test_an_end_is_owed_to_the_batch_and_the_defaults_that_ask_for_it_once_each() -> None:
    own = [
        Notification("mailto:me@example.com"),
        Notification("https://a.example/x", NotifyOn.DONE),
    ]
    defaults = [
        Notification("https://ops.example/x", NotifyOn.FAILED),
        Notification("mailto:me@example.com", NotifyOn.FAILED),
    ]
    assert owed(NotifyEvent.FAILED, own, defaults) == [
        "mailto:me@example.com",
        "https://ops.example/x",
    ]
    assert owed(NotifyEvent.DONE, own, defaults) == ["mailto:me@example.com", "https://a.example/x"]
    assert owed(NotifyEvent.CANCELED, own, defaults) == ["mailto:me@example.com"]
    assert owed(NotifyEvent.DONE, [], []) == []


def test_retries_back_off_and_end() -> None:
    assert [retry_delay(n) for n in range(1, len(RETRY_DELAYS) + 2)] == [*RETRY_DELAYS, None]
    assert tuple(sorted(RETRY_DELAYS)) == RETRY_DELAYS
    assert retry_delay(1, (0.1, 0.2)) == 0.1 and retry_delay(3, (0.1, 0.2)) is None
    assert retry_delay(0) is None
