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

NAMES = ("IF", "IC", "IM")
UNDERLYING = np.array([0, 1, 2])  # index positions: csi300, csi500, csi1000
MULTIPLIER = np.array([300, 200, 200])  # CNY per index point
TICK_POINTS = 0.2  # index points per price tick
MIN_DAYS = 10  # calendar days to expiry floor when annualizing the basis


def third_friday(year: int, month: int) -> dt.date:
    first = dt.date(year, month, 1)
    offset = (4 - first.weekday()) % 7  # Friday is weekday 4
    return first + dt.timedelta(days=offset + 14)


def expiry_days(days: list[dt.date]) -> np.ndarray:
    """Index of each month's expiry in ``days``: the third Friday or the next trading day."""
    months = sorted({(d.year, d.month) for d in days})
    dates = np.array(days, dtype="datetime64[D]")
    out = []
    for year, month in months:
        target = np.datetime64(third_friday(year, month))
        i = int(np.searchsorted(dates, target))
        if 0 < i < len(days) or (i == 0 and dates[0] == target):  # not one before the days
            out.append(i)
    return np.unique(np.array(out, dtype=np.int64))


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
        later = self.expiries[self.expiries >= day]
        if later.size:
            end = self.days[int(later[0])]
        else:  # past the last expiry in the run: next month's third Friday
            d = self.days[day]
            end = third_friday(d.year + (d.month == 12), d.month % 12 + 1)
        return max((end - self.days[day]).days, 0)

    def basis(self, price_ticks: np.ndarray, levels: np.ndarray, day: int) -> np.ndarray:
        """(3,) annualized basis (futures / index - 1) * 365 / days to expiry, as fractions."""
        futures = price_ticks * TICK_POINTS
        days = max(self.days_to_expiry(day), MIN_DAYS)
        return (futures / levels[UNDERLYING] - 1.0) * 365.0 / days
