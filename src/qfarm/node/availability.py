"""Whether a node takes work now: inside its weekly hours (``--schedule``) and, for a node
that works only while its user is away (``--when-idle 10m``), once nobody has touched the
machine for that long.

The node decides, on its own clock and in its own time zone (a schedule means the artist's
evenings, wherever the controller is), and says so in every heartbeat; the controller stops
giving it work and treats its running segments as its ``--schedule-end`` says.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from qfarm.domain.schedule import (
    AVAILABLE,
    OFF_HOURS,
    USER_ACTIVE,
    Schedule,
    parse_schedule,
    parse_schedule_end,
)
from qfarm.domain.units import parse_duration


@dataclass(frozen=True)
class NodeHours:
    """A node's --schedule, --schedule-end and --when-idle, checked (InvalidRequest)."""

    schedule: str | None = None
    end: str = "finish"
    when_idle: float | None = None

    @classmethod
    def parse(cls, schedule: str | None, end: str, when_idle: str | None) -> NodeHours:
        if schedule:
            parse_schedule(schedule)
        idle = parse_duration(when_idle, "--when-idle") if when_idle else None
        return cls(schedule or None, parse_schedule_end(end).value, idle or None)


# Without a desktop to ask, a host this busy (share of all its cores) while it runs none of
# our segments is taken to be in use by someone: a build, a render of the artist's own.
USER_CPU_SHARE = 0.5


def desktop_idle_seconds() -> float | None:
    """Seconds since the desktop's user last typed or moved the mouse (X11, through
    xprintidle); None where there is no desktop to ask."""
    if not (os.environ.get("DISPLAY") and shutil.which("xprintidle")):
        return None
    try:
        done = subprocess.run(["xprintidle"], capture_output=True, text=True, timeout=2, check=True)
        return float(done.stdout.strip()) / 1000.0
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


class OthersBusy:
    """Whether the host's CPUs were busy, since the last ask, with work that is not ours:
    it measures from its own previous reading (not psutil's shared one), and says no while
    a segment of this node runs, since then the load is ours."""

    def __init__(
        self,
        ours_running: Callable[[], bool] | None = None,
        cpu_times: Callable[[], tuple[float, float]] | None = None,
    ) -> None:
        self._ours_running = ours_running or _segments_running
        self._cpu_times = cpu_times or _cpu_times
        self._last: tuple[float, float] | None = None

    def __call__(self) -> bool:
        idle, total = self._cpu_times()
        last, self._last = self._last, (idle, total)
        if last is None or self._ours_running():
            return False
        spent = total - last[1]
        return spent > 0 and 1.0 - (idle - last[0]) / spent >= USER_CPU_SHARE


def _cpu_times() -> tuple[float, float]:
    """Seconds of all the host's CPUs idle (waiting on I/O included), and in all."""
    import psutil

    times = psutil.cpu_times()
    return times.idle + getattr(times, "iowait", 0.0), float(sum(times))


def _segments_running() -> bool:
    from qfarm.jobtypes.supervisor import SUPERVISOR

    return bool(SUPERVISOR.running())


def console_idle_seconds() -> float | None:
    """Seconds since the newest input on a terminal (a terminal device's access time moves
    with each key read from it); None with no terminal in use."""
    newest = 0.0
    for folder, pattern in ((Path("/dev"), "tty[0-9]*"), (Path("/dev/pts"), "[0-9]*")):
        for device in folder.glob(pattern):
            try:
                newest = max(newest, device.stat().st_atime)
            except OSError:
                continue
    if not newest:
        return None
    return max(0.0, time.time() - newest)


@dataclass
class Availability:
    """A node's hours and idle rule, asked with an injectable clock and probes.

    Its user counts as away once the desktop has been idle for ``when_idle``; without a
    desktop to ask, once no terminal has had input for that long and the host's CPUs are
    not busy with work of someone else's (a headless server nobody is logged in to is idle).
    """

    schedule: Schedule | None = None
    when_idle: float | None = None  # seconds its user must have been away
    clock: Callable[[], dt.datetime] = dt.datetime.now
    desktop_idle: Callable[[], float | None] = field(default=desktop_idle_seconds)
    console_idle: Callable[[], float | None] = field(default=console_idle_seconds)
    others_busy: Callable[[], bool] = field(default_factory=OthersBusy)

    def state(self) -> float:
        """AVAILABLE, OFF_HOURS or USER_ACTIVE, now."""
        if self.schedule is not None and not self.schedule.is_open(self.clock()):
            return OFF_HOURS
        if self.when_idle and self.user_active(self.when_idle):
            return USER_ACTIVE
        return AVAILABLE

    def user_active(self, away: float) -> bool:
        desktop = self.desktop_idle()
        if desktop is not None:
            return desktop < away
        console = self.console_idle()
        return (console is not None and console < away) or self.others_busy()
