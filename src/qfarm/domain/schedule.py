"""When a node works: its weekly hours (``mon-fri 19:00-07:00, sat-sun``) and what happens to
its running segments when they end.

Artists lend their workstations to the farm at night and at weekends; a schedule says when.
The rules are pure (every question takes the time it is asked about), so a window that opens
and closes is tested on an injected clock, and the controller and the node read one string
the same way.

The text is a comma-separated list of windows. A window is days, a time range, or both:

* days: ``mon``, ``mon-fri``, ``fri-mon`` (wrapping the week), ``daily`` (every day);
* a time range ``HH:MM-HH:MM`` (24 h). One that ends at or before it starts runs past
  midnight and belongs to the day it starts on: ``fri 19:00-07:00`` is Friday night into
  Saturday morning. ``00:00-24:00`` is the whole day;
* days alone are those whole days; a time range alone is every day.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable
from dataclasses import dataclass

from qfarm.domain.errors import InvalidRequest

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY


# Whether a node takes work, as its heartbeats say (a number: heartbeat metrics are numbers).
AVAILABLE = 1.0
OFF_HOURS = 0.0  # outside its schedule
USER_ACTIVE = -1.0  # its user is at the machine (--when-idle)
AVAILABILITY_NAMES = {AVAILABLE: "available", OFF_HOURS: "outside its hours", USER_ACTIVE: "in use"}


class ScheduleEnd(enum.StrEnum):
    """What a node does with its running segments when its hours end."""

    FINISH = "finish"  # they run to their end; it takes no new ones
    SUSPEND = "suspend"  # they are stopped where they are, and continued when it opens
    REQUEUE = "requeue"  # they are ended and queued again, for another node


@dataclass(frozen=True)
class Window:
    """One weekly window: from ``start`` minutes into day ``day`` (0 = Monday), for
    ``length`` minutes (up to a day)."""

    day: int
    start: int
    length: int

    def covers(self, minute_of_week: int) -> bool:
        begin = self.day * MINUTES_PER_DAY + self.start
        return (minute_of_week - begin) % MINUTES_PER_WEEK < self.length


@dataclass(frozen=True)
class Schedule:
    """A node's weekly hours, as written (``text``) and as windows."""

    text: str
    windows: tuple[Window, ...]

    def is_open(self, when: dt.datetime) -> bool:
        """Whether the node works at ``when`` (its local time)."""
        return any(w.covers(_minute_of_week(when)) for w in self.windows)

    def next_change(self, when: dt.datetime) -> dt.datetime | None:
        """The next time after ``when`` that the node starts or stops working; None for a
        schedule that never changes (open all week, or never)."""
        now = self.is_open(when)
        base = when.replace(second=0, microsecond=0)
        edges = sorted(
            {(w.day * MINUTES_PER_DAY + w.start) % MINUTES_PER_WEEK for w in self.windows}
            | {(w.day * MINUTES_PER_DAY + w.start + w.length) % MINUTES_PER_WEEK
               for w in self.windows}
        )  # fmt: skip
        here = _minute_of_week(base)
        ahead = sorted((edge - here) % MINUTES_PER_WEEK or MINUTES_PER_WEEK for edge in edges)
        for minutes in ahead:
            moment = base + dt.timedelta(minutes=minutes)
            if self.is_open(moment) != now:
                return moment
        return None

    def describe(self, when: dt.datetime) -> str:
        """``working until Mon 07:00``, ``off until Fri 19:00``: for ``qfarm nodes``."""
        state = "working" if self.is_open(when) else "off"
        change = self.next_change(when)
        if change is None:
            return state
        return f"{state} until {DAYS[change.weekday()].capitalize()} {change:%H:%M}"


def parse_schedule(text: str) -> Schedule:
    """Read a schedule; raise InvalidRequest naming the part that is wrong."""
    parts = [part.strip() for part in text.split(",")]
    if not text.strip() or not all(parts):
        raise InvalidRequest(
            f"schedule {text!r} is empty or has an empty part: write windows like "
            "'mon-fri 19:00-07:00, sat-sun'"
        )
    windows: list[Window] = []
    for part in parts:
        windows.extend(_parse_window(part))
    return Schedule(text.strip(), tuple(windows))


def parse_schedule_end(text: str) -> ScheduleEnd:
    try:
        return ScheduleEnd(text.strip().lower())
    except ValueError:
        choices = ", ".join(e.value for e in ScheduleEnd)
        raise InvalidRequest(f"--schedule-end {text!r} is none of {choices}") from None


def _parse_window(part: str) -> list[Window]:
    words = part.split()
    if len(words) > 2:
        raise InvalidRequest(f"schedule part {part!r}: write days, a time range, or both")
    days: Iterable[int] = range(7)
    times = (0, MINUTES_PER_DAY)
    if len(words) == 2:
        days, times = _parse_days(words[0], part), _parse_times(words[1], part)
    elif any(ch.isdigit() for ch in words[0]):
        times = _parse_times(words[0], part)
    else:
        days = _parse_days(words[0], part)
    start, end = times
    length = end - start if end > start else end + MINUTES_PER_DAY - start
    return [Window(day, start, length) for day in days]


def _parse_days(word: str, part: str) -> list[int]:
    word = word.lower()
    if word in ("daily", "every-day", "*"):
        return list(range(7))
    first, _, last = word.partition("-")
    if first not in DAYS or (last and last not in DAYS):
        raise InvalidRequest(
            f"schedule part {part!r}: {word!r} is not a day or a range of days "
            "(mon, tue, wed, thu, fri, sat, sun, e.g. mon-fri, or daily)"
        )
    begin = DAYS.index(first)
    finish = DAYS.index(last) if last else begin
    return [(begin + i) % 7 for i in range((finish - begin) % 7 + 1)]


def _parse_times(word: str, part: str) -> tuple[int, int]:
    first, sep, last = word.partition("-")
    if not sep:
        raise InvalidRequest(f"schedule part {part!r}: {word!r} is no time range like 19:00-07:00")
    start, end = _minute(first, part), _minute(last, part)
    if start == MINUTES_PER_DAY:
        raise InvalidRequest(f"schedule part {part!r}: a window cannot start at 24:00")
    return start, end


def _minute(clock: str, part: str) -> int:
    hours, sep, minutes = clock.partition(":")
    if not (sep and hours.isdigit() and minutes.isdigit() and len(minutes) == 2):
        raise InvalidRequest(f"schedule part {part!r}: {clock!r} is no time like 07:00")
    value = int(hours) * 60 + int(minutes)
    if int(minutes) > 59 or value > MINUTES_PER_DAY:
        raise InvalidRequest(f"schedule part {part!r}: {clock!r} is no time of day")
    return value


def _minute_of_week(when: dt.datetime) -> int:
    return when.weekday() * MINUTES_PER_DAY + when.hour * 60 + when.minute


class HoursAction(enum.StrEnum):
    """What the controller does to a node's running segments when its availability moves."""

    SUSPEND = "suspend"  # stop them where they are
    CONTINUE = "continue"  # go on with the ones it stopped
    REQUEUE = "requeue"  # end them and queue them again, for other nodes


def hours_actions(
    before: dict[str, float], now: dict[str, float], ends: dict[str, ScheduleEnd]
) -> dict[str, HoursAction]:
    """By node: what its ``--schedule-end`` asks now that it went off (available before,
    or new, and not now) or came back. ``finish`` asks nothing: its segments run on, and it
    only takes no new ones."""
    actions: dict[str, HoursAction] = {}
    for node, state in now.items():
        was = before.get(node, AVAILABLE)
        end = ends.get(node, ScheduleEnd.FINISH)
        if was >= AVAILABLE > state:
            if end is ScheduleEnd.SUSPEND:
                actions[node] = HoursAction.SUSPEND
            elif end is ScheduleEnd.REQUEUE:
                actions[node] = HoursAction.REQUEUE
        elif state >= AVAILABLE > was and end is ScheduleEnd.SUSPEND:
            actions[node] = HoursAction.CONTINUE
    return actions
