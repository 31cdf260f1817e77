"""Trading calendar of the Shanghai and Shenzhen exchanges.

Weekends and exchange holidays are closed. The holiday list covers 2022-2025,
the years the scenarios use; dates outside it are refused rather than guessed.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from model.config import ConfigError

COVERED = (dt.date(2022, 1, 1), dt.date(2025, 12, 31))


def _span(first: str, last: str) -> list[dt.date]:
    a, b = dt.date.fromisoformat(first), dt.date.fromisoformat(last)
    return [a + dt.timedelta(days=i) for i in range((b - a).days + 1)]


# Exchange closures on weekdays (weekends are closed anyway), from the exchanges' notices.
HOLIDAYS: frozenset[dt.date] = frozenset(
    d
    for first, last in [
        # 2022
        ("2022-01-03", "2022-01-03"),
        ("2022-01-31", "2022-02-04"),
        ("2022-04-04", "2022-04-05"),
        ("2022-05-02", "2022-05-04"),
        ("2022-06-03", "2022-06-03"),
        ("2022-09-12", "2022-09-12"),
        ("2022-10-03", "2022-10-07"),
        # 2023
        ("2023-01-02", "2023-01-02"),
        ("2023-01-23", "2023-01-27"),
        ("2023-04-05", "2023-04-05"),
        ("2023-05-01", "2023-05-03"),
        ("2023-06-22", "2023-06-23"),
        ("2023-09-29", "2023-10-06"),
        # 2024: the Spring Festival closure ran 2024-02-09..2024-02-18
        ("2024-01-01", "2024-01-01"),
        ("2024-02-09", "2024-02-18"),
        ("2024-04-04", "2024-04-05"),
        ("2024-05-01", "2024-05-03"),
        ("2024-06-10", "2024-06-10"),
        ("2024-09-16", "2024-09-17"),
        ("2024-10-01", "2024-10-07"),
        # 2025
        ("2025-01-01", "2025-01-01"),
        ("2025-01-28", "2025-02-04"),
        ("2025-04-04", "2025-04-04"),
        ("2025-05-01", "2025-05-05"),
        ("2025-06-02", "2025-06-02"),
        ("2025-10-01", "2025-10-08"),
    ]
    for d in _span(first, last)
)


def is_trading_day(day: dt.date) -> bool:
    """True when the exchanges are open on ``day``."""
    return day.weekday() < 5 and day not in HOLIDAYS


def trading_days(start: dt.date, end: dt.date) -> list[dt.date]:
    """Open days from ``start`` to ``end`` inclusive.

    Raises:
        ConfigError: if the range leaves the covered years or holds no trading day.
    """
    for key, day in (("market.start", start), ("market.end", end)):
        if not COVERED[0] <= day <= COVERED[1]:
            raise ConfigError(
                f"{key} = {day}: must be within {COVERED[0]}..{COVERED[1]} (holiday calendar)"
            )
    days = [d for d in _span(start.isoformat(), end.isoformat()) if is_trading_day(d)]
    if not days:
        raise ConfigError(
            f"market.start = {start}: no trading day from it to market.end = {end}; "
            "the range must hold at least one"
        )
    return days


def trading_days_from(first: dt.date, day: dt.date) -> int:
    """Trading days from ``first`` to the first trading day on or after ``day``: the index
    ``day`` takes in a run starting on ``first``, wherever the run ends; negative before it."""
    lo, hi, sign = (first, day, 1) if day >= first else (day, first, -1)
    span = (lo + dt.timedelta(days=i) for i in range((hi - lo).days))
    return sign * sum(1 for d in span if is_trading_day(d))


def as_datetime64(days: list[dt.date]) -> np.ndarray:
    """Days as a ``datetime64[D]`` array, for vectorized date arithmetic."""
    return np.array(days, dtype="datetime64[D]")
