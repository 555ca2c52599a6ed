"""Times and sizes in the units people read."""

from __future__ import annotations

from qfarm.domain.errors import InvalidRequest

_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def duration(seconds: float | None) -> str:
    """``0.4 s``, ``12.3 s``, ``4 min 05 s``, ``2 h 03 min``."""
    if seconds is None:
        return "-"
    if round(seconds, 1) < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def size(count: float) -> str:
    """Bytes in binary units: ``512 B``, ``1.5 KiB``, ``3.2 GiB``."""
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        shown = int(value) if unit == "B" else round(value, 1)
        if abs(shown) < 1024 or unit == "TiB":
            return f"{shown} {unit}" if unit == "B" else f"{shown:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def parse_duration(text: str, option: str = "duration") -> float:
    """``90s``, ``10m``, ``1.5h`` or plain seconds (``600``); InvalidRequest naming
    ``option`` otherwise."""
    value = text.strip().lower()
    number, unit = value, "s"
    for name in sorted(_UNITS, key=len, reverse=True):
        if value.endswith(name):
            number, unit = value[: -len(name)].strip(), name
            break
    try:
        seconds = float(number) * _UNITS[unit]
    except ValueError:
        raise InvalidRequest(f"{option} {text!r} is not a duration like 90s, 10m or 1h") from None
    if seconds < 0:
        raise InvalidRequest(f"{option} {text!r} is negative")
    return seconds
