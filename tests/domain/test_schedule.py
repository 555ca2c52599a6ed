"""Node schedules: the windows a text means, on an injected clock."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qfarm.domain.errors import InvalidRequest
from qfarm.domain.schedule import ScheduleEnd, parse_schedule, parse_schedule_end

# 2026-11-30 is a Monday.
MON = dt.datetime(2026, 11, 30)


def at(day: int, clock: str) -> dt.datetime:
    hours, minutes = map(int, clock.split(":"))
    return MON + dt.timedelta(days=day, hours=hours, minutes=minutes)


def test_weeknights_and_weekends() -> None:
    s = parse_schedule("mon-fri 19:00-07:00, sat-sun")
    assert not s.is_open(at(0, "12:00"))  # Monday noon: the artist works
    assert s.is_open(at(0, "19:00"))
    assert s.is_open(at(1, "06:59"))  # Monday night runs into Tuesday morning
    assert not s.is_open(at(1, "07:00"))
    assert s.is_open(at(4, "23:00"))  # Friday night ...
    assert s.is_open(at(5, "12:00"))  # ... the whole weekend ...
    assert s.is_open(at(6, "23:59"))  # ... to Sunday's end
    # Monday's small hours are in no window: "sat-sun" ends at midnight, and Monday's
    # night starts at 19:00 (add "mon 00:00-07:00" to the schedule to have them).
    assert not s.is_open(at(7, "00:30"))


def test_a_night_window_belongs_to_the_day_it_starts_on() -> None:
    s = parse_schedule("fri 22:00-02:00")
    assert s.is_open(at(4, "23:30"))
    assert s.is_open(at(5, "01:59"))
    assert not s.is_open(at(5, "02:00"))
    assert not s.is_open(at(3, "23:30"))  # Thursday night is not in it
    assert not s.is_open(at(4, "01:00"))  # nor Friday's small hours (Thursday's night)


def test_days_alone_and_times_alone() -> None:
    weekend = parse_schedule("sat-sun")
    assert weekend.is_open(at(5, "00:00")) and weekend.is_open(at(6, "23:59"))
    assert not weekend.is_open(at(0, "00:00"))
    nightly = parse_schedule("01:00-05:00")
    assert all(nightly.is_open(at(day, "03:00")) for day in range(7))
    assert not any(nightly.is_open(at(day, "05:00")) for day in range(7))
    wraps = parse_schedule("sat-mon")
    assert [wraps.is_open(at(day, "12:00")) for day in range(7)] == [
        True, False, False, False, False, True, True,
    ]  # fmt: skip


def test_next_change_and_its_description() -> None:
    s = parse_schedule("mon-fri 19:00-07:00")
    assert s.next_change(at(0, "12:00")) == at(0, "19:00")
    assert s.describe(at(0, "12:00")) == "off until Mon 19:00"
    assert s.describe(at(0, "20:15")) == "working until Tue 07:00"
    assert s.next_change(at(4, "08:00")) == at(4, "19:00")
    assert s.next_change(at(5, "08:00")) == at(7, "19:00")  # the weekend is off
    assert parse_schedule("daily").next_change(at(0, "12:00")) is None
    assert parse_schedule("daily").describe(at(0, "12:00")) == "working"


def test_adjacent_windows_make_one_stretch() -> None:
    s = parse_schedule("mon 18:00-24:00, tue 00:00-06:00")
    assert s.is_open(at(0, "23:59")) and s.is_open(at(1, "00:00"))
    assert s.next_change(at(0, "20:00")) == at(1, "06:00")


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("", "empty"),
        ("mon-fri 19:00-07:00,", "empty part"),
        ("monday 19:00-07:00", "'monday' is not a day"),
        ("mon-fri 19:00", "no time range"),
        ("mon 25:00-26:00", "'25:00' is no time of day"),
        ("mon 7-9", "'7' is no time like 07:00"),
        ("mon 07:00-09:00 extra", "days, a time range, or both"),
        ("mon 24:00-02:00", "cannot start at 24:00"),
    ],
)
def test_a_bad_schedule_is_refused_naming_its_part(text: str, names: str) -> None:
    with pytest.raises(InvalidRequest, match=names):
        parse_schedule(text)


def test_schedule_end_policies() -> None:
    assert parse_schedule_end("Suspend") is ScheduleEnd.SUSPEND
    with pytest.raises(InvalidRequest, match="none of finish, suspend, requeue"):
        parse_schedule_end("pause")


TEXTS = st.sampled_from(
    ["mon-fri 19:00-07:00, sat-sun", "fri 22:00-02:00", "01:00-05:00", "sat-mon", "wed"]
)
MOMENTS = st.integers(min_value=0, max_value=14 * 24 * 60 - 1).map(
    lambda m: MON + dt.timedelta(minutes=m)
)


@given(TEXTS, MOMENTS)
def test_the_state_holds_until_the_next_change_and_flips_there(
    text: str, when: dt.datetime
) -> None:
    s = parse_schedule(text)
    change = s.next_change(when)
    assert change is not None and change > when
    assert s.is_open(change) != s.is_open(when)
    before = change - dt.timedelta(minutes=1)
    assert s.is_open(before) == s.is_open(when)


def test_hours_actions_follow_each_nodes_schedule_end() -> None:
    from qfarm.domain.schedule import AVAILABLE, OFF_HOURS, USER_ACTIVE, HoursAction, hours_actions

    ends = {"s": ScheduleEnd.SUSPEND, "r": ScheduleEnd.REQUEUE, "f": ScheduleEnd.FINISH}
    went_off = hours_actions({}, {"s": OFF_HOURS, "r": USER_ACTIVE, "f": OFF_HOURS}, ends)
    assert went_off == {"s": HoursAction.SUSPEND, "r": HoursAction.REQUEUE}
    back = {"s": OFF_HOURS, "r": OFF_HOURS, "f": OFF_HOURS}
    now = {"s": AVAILABLE, "r": AVAILABLE, "f": AVAILABLE}
    assert hours_actions(back, now, ends) == {"s": HoursAction.CONTINUE}
    assert hours_actions(now, now, ends) == {}  # nothing moved: nothing to do


def test_durations() -> None:
    from qfarm.domain.units import parse_duration

    assert parse_duration("10m") == 600 and parse_duration("90s") == 90
    assert parse_duration("1.5h") == 5400 and parse_duration("45") == 45
    with pytest.raises(InvalidRequest, match="--when-idle 'soon' is not a duration"):
        parse_duration("soon", "--when-idle")
