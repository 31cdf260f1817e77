"""Who bought and who sold the micro-caps over the crash window, by agent type.

The index tables say how far each tier fell; they do not say whose orders moved it.
This observer, called after every step of a run, takes each agent type's holdings
of the micro-cap index's members at the close before the crash window and again at
its last close, and reports each type's net purchase as a share of the members'
free float, both valued at the close before the window (so a fall in price is not
counted as selling). Shares held by no agent type (the long-term holders, who only lend)
are reported as ``holders``, so the shares add up to zero.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from experiments.episode import CRASH_END, CRASH_START
from model.market_model import MarketModel

HOLDERS = "holders"  # accounts of no agent type: the float's long-term owners


class WindowFlows:
    """Progress callback: net purchases of the micro-cap members over the crash window."""

    def __init__(self, model: MarketModel) -> None:
        days = model.days
        start, end = dt.date.fromisoformat(CRASH_START), dt.date.fromisoformat(CRASH_END)
        before = [d for d in days if d < start]
        inside = [d for d in days if start <= d <= end]
        self.first_close = before[-1] if before and inside else None
        self.last_close = inside[-1] if before and inside else None
        self.members = np.zeros(0, dtype=np.int64)  # (M,) micro-cap members at the start
        self.price = np.zeros(0)  # (M,) CNY at the close before the window
        self.start: dict[str, np.ndarray] = {}  # type -> (M,) shares held at the start
        self.end: dict[str, np.ndarray] = {}

    def __call__(self, model: MarketModel) -> None:
        if self.first_close is None or model.steps % model.steps_per_day:
            return  # only closes matter
        if model.date == self.first_close:
            self.members = np.flatnonzero(model.indices.micro)
            self.price = model.market.last[self.members] / 100.0
            self.start = self._held(model)
        elif model.date == self.last_close:
            self.end = self._held(model)

    def _held(self, model: MarketModel) -> dict[str, np.ndarray]:
        """Agent type -> (M,) shares of the members held, the rest under ``holders``."""
        ledger, n = model.ledger, model.universe.n
        out: dict[str, np.ndarray] = {}
        for population in model.populations:
            _, stock, shares, _ = ledger.positions_of(np.sort(population.accounts))
            held = np.bincount(stock, shares, minlength=n)[self.members]
            name = type(population).__name__
            out[name] = out.get(name, 0) + held
        out[HOLDERS] = model.universe.float_shares[self.members] - sum(out.values())
        return out

    def net_buying(self, model: MarketModel) -> dict[str, float] | None:
        """Agent type -> net purchase over the window, share of the members' float value.

        None when the run does not span the window.
        """
        if not self.end:
            return None
        float_value = float(np.dot(model.universe.float_shares[self.members], self.price))
        return {
            name: round(float(np.dot(self.end[name] - held, self.price)) / float_value, 5)
            for name, held in self.start.items()
        }
