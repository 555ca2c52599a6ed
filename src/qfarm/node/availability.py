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


def user_idle_seconds() -> float | None:
    """Seconds since the machine's user last typed or moved the mouse: the desktop's own
    idle time where there is one (X11, through xprintidle), else the newest input on a
    terminal (a terminal device's access time moves with each key read from it). None when
    neither can be told (a headless server with nobody logged in is idle)."""
    if os.environ.get("DISPLAY") and shutil.which("xprintidle"):
        try:
            done = subprocess.run(
                ["xprintidle"], capture_output=True, text=True, timeout=2, check=True
            )
            return float(done.stdout.strip()) / 1000.0
        except (OSError, subprocess.SubprocessError, ValueError):
            pass
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
    """A node's hours and idle rule, asked with an injectable clock."""

    schedule: Schedule | None = None
    when_idle: float | None = None  # seconds its user must have been away
    clock: Callable[[], dt.datetime] = dt.datetime.now
    idle_seconds: Callable[[], float | None] = field(default=user_idle_seconds)

    def state(self) -> float:
        """AVAILABLE, OFF_HOURS or USER_ACTIVE, now."""
        if self.schedule is not None and not self.schedule.is_open(self.clock()):
            return OFF_HOURS
        if self.when_idle:
            idle = self.idle_seconds()
            if idle is not None and idle < self.when_idle:
                return USER_ACTIVE
        return AVAILABLE
