"""A node's availability on an injected clock and idle time."""

from __future__ import annotations

import datetime as dt

import pytest

from qfarm.domain.errors import InvalidRequest
from qfarm.domain.schedule import AVAILABLE, OFF_HOURS, USER_ACTIVE, parse_schedule
from qfarm.node.availability import (
    Availability,
    NodeHours,
    OthersBusy,
    console_idle_seconds,
    desktop_idle_seconds,
)

MONDAY_NOON = dt.datetime(2026, 11, 30, 12, 0)


def test_the_window_opens_and_closes_on_the_clock() -> None:
    clock = [MONDAY_NOON]
    hours = Availability(parse_schedule("mon-fri 19:00-07:00"), clock=lambda: clock[0])
    assert hours.state() == OFF_HOURS
    clock[0] = MONDAY_NOON.replace(hour=19)
    assert hours.state() == AVAILABLE
    clock[0] = MONDAY_NOON + dt.timedelta(hours=19)  # Tuesday 07:00
    assert hours.state() == OFF_HOURS


def test_when_idle_waits_for_the_desktop_user_to_be_away() -> None:
    idle = [30.0]
    hours = Availability(when_idle=600, desktop_idle=lambda: idle[0], others_busy=lambda: True)
    assert hours.state() == USER_ACTIVE
    idle[0] = 601.0
    assert hours.state() == AVAILABLE  # a desktop says it all: a busy CPU is not asked


def test_without_a_desktop_terminal_input_and_cpu_load_tell() -> None:
    console: list[float | None] = [30.0]
    busy = [False]
    hours = Availability(
        when_idle=600,
        desktop_idle=lambda: None,
        console_idle=lambda: console[0],
        others_busy=lambda: busy[0],
    )
    assert hours.state() == USER_ACTIVE  # someone typed half a minute ago
    console[0] = 900.0
    assert hours.state() == AVAILABLE
    busy[0] = True
    assert hours.state() == USER_ACTIVE  # nobody typed, but the host is busy with work not ours
    console[0], busy[0] = None, False
    assert hours.state() == AVAILABLE  # no terminal, nothing busy: a server is idle


def test_others_busy_measures_the_host_and_ignores_our_own_load() -> None:
    ours = [False]
    readings = iter([(0.0, 0.0), (9.0, 10.0), (12.0, 20.0), (13.0, 30.0), (14.0, 40.0)])
    busy = OthersBusy(ours_running=lambda: ours[0], cpu_times=lambda: next(readings))
    assert busy() is False  # the first reading has nothing to compare with
    assert busy() is False  # 90 % of the CPU time idle
    assert busy() is True  # 30 % idle: someone is at work
    ours[0] = True
    assert busy() is False  # 10 % idle, but our own segments run: the load is ours
    # On this machine, without injected readings, it answers and keeps its own reading.
    real = OthersBusy(ours_running=lambda: False)
    assert real() is False and isinstance(real(), bool)


def test_hours_outside_the_schedule_win_over_idleness() -> None:
    hours = Availability(parse_schedule("sat-sun"), 600, lambda: MONDAY_NOON, lambda: 9999.0)
    assert hours.state() == OFF_HOURS


def test_the_probes_read_this_machine() -> None:
    for probe in (desktop_idle_seconds, console_idle_seconds):
        found = probe()
        assert found is None or found >= 0


def test_node_hours_are_checked_at_start() -> None:
    assert NodeHours.parse("sat-sun", "Suspend", "10m") == NodeHours("sat-sun", "suspend", 600)
    assert NodeHours.parse(None, "finish", None) == NodeHours()
    with pytest.raises(InvalidRequest, match="'saturday' is not a day"):
        NodeHours.parse("saturday", "finish", None)
    with pytest.raises(InvalidRequest, match="--schedule-end 'stop'"):
        NodeHours.parse(None, "stop", None)
