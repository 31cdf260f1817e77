"""Who bought and who sold each size tier over the crash window, by agent type.

The index tables say how far each tier fell; they do not say whose orders moved it.
This observer, called after every step of a run, takes each agent type's holdings of
each tier's members (CSI 300, 500, 1000 and 2000, and the micro-cap index) at the close
before the crash window and again at its last close, and reports each type's net
purchase as a share of the members' free float, both valued at the close before the
window (so a fall in price is not counted as selling). Members are fixed at that close,
so a stock that changes tier in the window still counts where it started. Shares held
by no agent type (the long-term holders, who only lend) are reported as ``holders``,
so each tier's shares add up to zero.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from experiments.episode import CRASH_END, CRASH_START, last_close_before_window
from model.market_model import MarketModel
from model.universe import INDEX_NAMES, TIERS

HOLDERS = "holders"  # accounts of no agent type: the float's long-term owners


class WindowFlows:
    """Progress callback: net purchases of each tier's members over the crash window."""

    def __init__(self, model: MarketModel) -> None:
        days = model.days
        start, end = dt.date.fromisoformat(CRASH_START), dt.date.fromisoformat(CRASH_END)
        before = last_close_before_window(days)
        inside = [d for d in days if start <= d <= end]
        self.first_close = before if before and inside else None
        self.last_close = inside[-1] if before and inside else None
        self.members: dict[str, np.ndarray] = {}  # index -> (M,) stocks at the start
        self.price = np.zeros(0)  # (N,) CNY at the close before the window
        self.start: dict[str, np.ndarray] = {}  # type -> (N,) shares held at the start
        self.end: dict[str, np.ndarray] = {}

    def __call__(self, model: MarketModel) -> None:
        if self.first_close is None or model.steps % model.steps_per_day:
            return  # only closes matter
        if model.date == self.first_close:
            tier = model.indices.tier  # (N,) 0 .. len(TIERS), the last: below every tier
            self.members = {name: np.flatnonzero(tier == i) for i, name in enumerate(TIERS)}
            self.members[INDEX_NAMES[-1]] = np.flatnonzero(model.indices.micro)
            self.price = model.market.last[: model.universe.n] / 100.0
            self.start = self._held(model)
        elif model.date == self.last_close:
            self.end = self._held(model)

    @staticmethod
    def _held(model: MarketModel) -> dict[str, np.ndarray]:
        """Agent type -> (N,) shares held of every stock, the rest under ``holders``."""
        ledger, n = model.ledger, model.universe.n
        out: dict[str, np.ndarray] = {}
        for population in model.populations:
            _, stock, shares, _ = ledger.positions_of(np.sort(population.accounts))
            held = np.bincount(stock, shares, minlength=n)
            name = type(population).__name__
            out[name] = out.get(name, 0) + held
        out[HOLDERS] = model.universe.float_shares - sum(out.values())
        return out

    def net_buying(self, model: MarketModel) -> dict[str, dict[str, float]] | None:
        """Index -> agent type -> net purchase over the window, share of the members' float
        value. None when the run does not span the window."""
        if not self.end:
            return None
        out: dict[str, dict[str, float]] = {}
        for index, members in self.members.items():
            price = self.price[members]
            float_value = float(np.dot(model.universe.float_shares[members], price))
            if float_value <= 0.0:
                continue  # an empty tier (a tiny universe)
            out[index] = {
                name: round(
                    float(np.dot(self.end[name][members] - held[members], price)) / float_value, 5
                )
                for name, held in self.start.items()
            }
        return out
