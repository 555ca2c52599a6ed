"""Times and sizes as people read them: :mod:`qfarm.units`."""

from __future__ import annotations

import pytest

from qfarm.domain.units import duration, size


def test_duration_of_none_is_a_dash() -> None:
    assert duration(None) == "-"


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(0, "0.0 s"), (0.4, "0.4 s"), (12.34, "12.3 s"), (59.5, "59.5 s"), (59.94, "59.9 s")],
)
def test_duration_under_a_minute_shows_tenths_of_seconds(seconds: float, expected: str) -> None:
    assert duration(seconds) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (60, "1 min 00 s"),
        (245, "4 min 05 s"),
        (89.6, "1 min 30 s"),  # rounded to whole seconds
        (3599, "59 min 59 s"),
    ],
)
def test_duration_under_an_hour_shows_minutes_and_padded_seconds(
    seconds: float, expected: str
) -> None:
    assert duration(seconds) == expected


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (3600, "1 h 00 min"),
        (3599.6, "1 h 00 min"),  # rounds up into the next hour
        (7380, "2 h 03 min"),
        (7439, "2 h 03 min"),  # seconds are dropped, not shown
        (90000, "25 h 00 min"),  # no days
    ],
)
def test_duration_from_an_hour_shows_hours_and_padded_minutes(
    seconds: float, expected: str
) -> None:
    assert duration(seconds) == expected


def test_duration_just_under_a_minute_does_not_show_sixty_seconds() -> None:
    assert duration(59.96) == "1 min 00 s"


@pytest.mark.parametrize(
    ("count", "expected"),
    [(0, "0 B"), (1, "1 B"), (512, "512 B"), (1023, "1023 B"), (512.7, "512 B")],
)
def test_size_below_a_kibibyte_is_whole_bytes(count: float, expected: str) -> None:
    assert size(count) == expected


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (1024, "1.0 KiB"),
        (1536, "1.5 KiB"),
        (1024**2, "1.0 MiB"),
        (int(3.2 * 1024**3), "3.2 GiB"),
        (1024**4, "1.0 TiB"),
        (5 * 1024**4, "5.0 TiB"),
    ],
)
def test_size_uses_binary_units_with_one_decimal(count: float, expected: str) -> None:
    assert size(count) == expected


def test_size_stops_at_tebibytes() -> None:
    assert size(1024**5) == "1024.0 TiB"


def test_size_just_under_a_mebibyte_does_not_show_1024_kib() -> None:
    assert size(1024**2 - 1) == "1.0 MiB"
