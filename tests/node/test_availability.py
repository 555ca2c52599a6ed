"""A node's availability on an injected clock and idle time."""

from __future__ import annotations

import datetime as dt

import pytest

from qfarm.domain.errors import InvalidRequest
from qfarm.domain.schedule import AVAILABLE, OFF_HOURS, USER_ACTIVE, parse_schedule
from qfarm.node.availability import Availability, NodeHours, user_idle_seconds

MONDAY_NOON = dt.datetime(2026, 11, 30, 12, 0)


def test_the_window_opens_and_closes_on_the_clock() -> None:
    clock = [MONDAY_NOON]
    hours = Availability(parse_schedule("mon-fri 19:00-07:00"), clock=lambda: clock[0])
    assert hours.state() == OFF_HOURS
    clock[0] = MONDAY_NOON.replace(hour=19)
    assert hours.state() == AVAILABLE
    clock[0] = MONDAY_NOON + dt.timedelta(hours=19)  # Tuesday 07:00
    assert hours.state() == OFF_HOURS


def test_when_idle_waits_for_the_user_to_be_away() -> None:
    idle = [30.0]
    hours = Availability(when_idle=600, idle_seconds=lambda: idle[0])
    assert hours.state() == USER_ACTIVE
    idle[0] = 601.0
    assert hours.state() == AVAILABLE
    # Nobody to be idle (no desktop, no terminal): a server is idle.
    assert Availability(when_idle=600, idle_seconds=lambda: None).state() == AVAILABLE


def test_hours_outside_the_schedule_win_over_idleness() -> None:
    hours = Availability(parse_schedule("sat-sun"), 600, lambda: MONDAY_NOON, lambda: 9999.0)
    assert hours.state() == OFF_HOURS


def test_user_idle_seconds_reads_this_machine() -> None:
    found = user_idle_seconds()
    assert found is None or found >= 0


def test_node_hours_are_checked_at_start() -> None:
    assert NodeHours.parse("sat-sun", "Suspend", "10m") == NodeHours("sat-sun", "suspend", 600)
    assert NodeHours.parse(None, "finish", None) == NodeHours()
    with pytest.raises(InvalidRequest, match="'saturday' is not a day"):
        NodeHours.parse("saturday", "finish", None)
    with pytest.raises(InvalidRequest, match="--schedule-end 'stop'"):
        NodeHours.parse(None, "stop", None)
