"""Index futures IF, IC and IM: contract terms, expiries, and the basis.

Futures trade in the same call-auction kernel as the stocks: they are extra
instruments after the last stock, priced in integer ticks of 0.2 index points.
Each month's contract expires on the third Friday (or the next trading day) and
settles to the index; positions roll into the next contract at that price.
The index levels are the model's own (base 1000), so a contract is worth
``level * multiplier`` CNY.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from model.calendar import is_trading_day

NAMES = ("IF", "IC", "IM")
UNDERLYING = np.array([0, 1, 2])  # index positions: csi300, csi500, csi1000
MULTIPLIER = np.array([300, 200, 200])  # CNY per index point
TICK_POINTS = 0.2  # index points per price tick
MIN_DAYS = 10  # calendar days to expiry floor when annualizing the basis


def third_friday(year: int, month: int) -> dt.date:
    first = dt.date(year, month, 1)
    offset = (4 - first.weekday()) % 7  # Friday is weekday 4
    return first + dt.timedelta(days=offset + 14)


def expiry_date(year: int, month: int) -> dt.date:
    """The month's expiry: its third Friday, or the next trading day when that is closed
    (on the exchanges' calendar, whatever days a run covers)."""
    day = third_friday(year, month)
    while not is_trading_day(day):
        day += dt.timedelta(days=1)
    return day


def smooth_basis(smoothed: np.ndarray, basis: np.ndarray, days: float) -> None:
    """Move ``smoothed`` (K,) in place a ``1 / days`` of the way to ``basis`` (K,), an
    annualized basis read at an open; a contract without a price (NaN, the morning after
    an expiry) keeps what it had."""
    seen = ~np.isnan(basis)
    smoothed[seen] += (basis[seen] - smoothed[seen]) / days


def expiry_days(days: list[dt.date]) -> np.ndarray:
    """Index of each month's expiry (:func:`expiry_date`) in ``days``, where it is one."""
    position = {day: i for i, day in enumerate(days)}
    months = sorted({(d.year, d.month) for d in days})
    found = (position.get(expiry_date(year, month)) for year, month in months)
    return np.array(sorted(i for i in found if i is not None), dtype=np.int64)


@dataclass(frozen=True)
class FuturesSpec:
    """Where the futures sit among the instruments, and what a tick is worth."""

    first: int  # instrument id of IF; IC and IM follow
    expiries: np.ndarray  # (E,) day indices on which a contract settles at the close
    days: tuple[dt.date, ...]

    @property
    def instrument(self) -> np.ndarray:
        """(3,) instrument ids of IF, IC, IM."""
        return self.first + np.arange(len(NAMES))

    @property
    def underlying(self) -> np.ndarray:
        return UNDERLYING

    @property
    def multiplier(self) -> np.ndarray:
        return MULTIPLIER

    @staticmethod
    def contract_value(levels: np.ndarray) -> np.ndarray:
        """(3,) CNY one contract of IF, IC, IM is worth at index ``levels`` (5,) points."""
        return np.asarray(levels, dtype=np.float64)[UNDERLYING] * MULTIPLIER

    @property
    def tick_value_fen(self) -> np.ndarray:
        """(3,) fen gained per contract when the price moves one tick."""
        return np.rint(MULTIPLIER * TICK_POINTS * 100).astype(np.int64)

    @staticmethod
    def ticks(level: np.ndarray) -> np.ndarray:
        """Index levels (points) as futures prices in whole ticks."""
        return np.rint(np.asarray(level) / TICK_POINTS).astype(np.int64)

    def is_expiry(self, day: int) -> bool:
        return bool(np.isin(day, self.expiries))

    def days_to_expiry(self, day: int) -> int:
        """Calendar days from trading day ``day`` to the live contract's expiry (read from a
        table of every day's: the basis asks several times a step)."""
        return self._days_to_expiry[day]

    @cached_property
    def _days_to_expiry(self) -> tuple[int, ...]:
        """(D,) :meth:`days_to_expiry` of each trading day."""
        return tuple(self._count_days_to_expiry(day) for day in range(len(self.days)))

    def _count_days_to_expiry(self, day: int) -> int:
        """To this month's expiry, or next month's once this month's has passed: on the
        exchanges' calendar, so a run that ends before an expiry still counts to it."""
        d = self.days[day]
        end = expiry_date(d.year, d.month)
        if end < d:
            end = expiry_date(d.year + (d.month == 12), d.month % 12 + 1)
        return (end - d).days

    def basis(self, price_ticks: np.ndarray, levels: np.ndarray, day: int) -> np.ndarray:
        """(3,) annualized basis (futures / index - 1) * 365 / days to expiry, as fractions."""
        futures = price_ticks * TICK_POINTS
        days = max(self.days_to_expiry(day), MIN_DAYS)
        return (futures / levels[UNDERLYING] - 1.0) * 365.0 / days

    def price_at_basis(self, basis: np.ndarray | float, levels: np.ndarray, day: int) -> np.ndarray:
        """(3,) futures price, in ticks (not rounded), at which :meth:`basis` would be
        ``basis`` (a scalar or one per contract)."""
        days = max(self.days_to_expiry(day), MIN_DAYS)
        return levels[UNDERLYING] * (1.0 + np.asarray(basis) * days / 365.0) / TICK_POINTS
