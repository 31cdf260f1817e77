"""Futures speculators: trend followers who take their view in index futures.

In China's market a pessimist cannot easily short stock (borrowing is scarce and
was curbed in 2024) but can sell index futures on margin. So a fall shows first
in the futures: the seed's "the decline of the stock index [futures] exceeded
that of the spot, amid the pessimism of the market". Each desk holds, in each of
IF, IC and IM, a position that follows the underlying index's return over its
own trailing window (``lookback_days`` on average, spread from half to one and
a half times that): long in a rise, short in a fall, all in once the return
reaches ``full_signal``, linear in between from ``dead_band`` of it (a trend
smaller than that is the market's noise, and a desk holds nothing on it; until a
desk has seen its whole window, over the days it has seen). Before ``start`` the
desks watch but hold nothing: a knob for asking when the pessimists came. All
in is ``leverage`` times the desk's equity, split evenly over the contracts.
Each step a desk closes ``speed`` of the gap to that target with orders at the
price limit, or, with ``max_basis``, no further from the index than that a year.

Beyond the makers' finite book, only the arbitrageurs tie a futures price to its
index, and what they can do depends on borrowing stock: with lending curbed, the
speculators' sales deepen the discount, and a deep discount makes the neutral products' hedge
dearer (see ``agents.neutral_fund``). Equity is the desk's cash, which variation
margin keeps marked, so a desk that loses shrinks. Set-up: open each row's
account with its capital in cash.
"""

from __future__ import annotations

import numpy as np

from agents.base import ArrayAgent, Population
from model.config import SpeculatorConfig
from model.orders import Orders

CONTRACTS = np.array([0, 1, 2])  # rows of model.futures arrays: IF, IC, IM


class Speculator(ArrayAgent):
    """One trend-following futures desk."""

    @property
    def lookback(self) -> int:
        """Trading days of this desk's trailing window."""
        return int(self.population.lookback[self.row])


class Speculators(Population):
    """Desks that follow each index's trend in its futures."""

    agent_class = Speculator

    def __init__(self, model, accounts: np.ndarray, cfg: SpeculatorConfig) -> None:
        super().__init__(model, accounts)
        self.cfg = cfg
        low, high = max(cfg.lookback_days // 2, 1), max(cfg.lookback_days * 3 // 2, 1)
        self.lookback = self.rng.integers(low, high + 1, size=self.n)  # (n,) trading days
        self.closes = np.empty((0, CONTRACTS.size))  # (days, K) underlying levels at each open
        self.signal = np.zeros((self.n, CONTRACTS.size))  # (n, K) target share in [-1, 1]

    def begin_day(self) -> None:
        """Record yesterday's closes and set each desk's signal from its trailing return."""
        spec = self.model.futures
        if spec is None:
            return
        level = np.asarray(self.model.indices.level, dtype=np.float64)[spec.underlying[CONTRACTS]]
        self.closes = np.vstack([self.closes[-int(self.lookback.max()) :], level])  # (<=L+1, K)
        days = self.closes.shape[0] - 1
        if days == 0:
            return
        past = self.closes[np.maximum(days - self.lookback, 0)]  # (n, K) close a window ago
        trend = level[None, :] / past - 1.0  # (n, K)
        full, band = self.cfg.full_signal, self.cfg.dead_band
        strength = np.abs(np.clip(trend, -full, full)) / full  # clipped first: no overflow
        self.signal = np.sign(trend) * np.maximum(strength - band, 0.0) / (1.0 - band)
        if self.model.date < self.cfg.start:
            self.signal[:] = 0.0

    def held(self) -> np.ndarray:
        """(F,) contracts all desks hold, per futures row, long positive."""
        return self.model.ledger.futures_position(self.accounts).sum(axis=0)

    def target(self, rows: np.ndarray) -> np.ndarray:
        """(r, K) contracts each desk wants to hold, long positive."""
        model, spec = self.model, self.model.futures
        equity = np.maximum(model.ledger.cash[self.accounts[rows]] / 100.0, 0.0)  # (r,) CNY
        value = spec.contract_value(model.indices.level)[CONTRACTS]  # (K,) CNY a contract
        notional = self.cfg.leverage * equity[:, None] / CONTRACTS.size  # (r, 1) CNY a contract
        return self.signal[rows] * notional / value[None, :]

    def decide(self, rows: np.ndarray) -> Orders:
        """Close ``speed`` of each desk's gap to its target, priced by :meth:`_price`."""
        market, model = self.market, self.model
        accounts = self.accounts[rows]
        market.cancel_accounts(np.sort(accounts))
        if model.futures is None:
            return Orders.empty()
        held = model.ledger.futures_position(accounts)[:, CONTRACTS]  # (r, K)
        gap = np.rint(self.target(rows)) - held  # (r, K)
        lots = np.ceil(self.cfg.speed * np.abs(gap)).ravel()
        side = np.sign(gap).astype(np.int64).ravel()
        instrument = np.tile(np.asarray(model.futures.instrument)[CONTRACTS], rows.size)
        orders = Orders(
            account=np.repeat(accounts, CONTRACTS.size),
            stock=instrument,
            side=side,
            price=self._price(instrument, side, rows.size),
            lots=lots,
        )
        return orders.select(orders.lots > 0)

    def _price(self, instrument: np.ndarray, side: np.ndarray, r: int) -> np.ndarray:
        """(r*K,) limit of each order: the day's price limit, but no further from the index
        than ``max_basis`` a year. A trend follower wants the index's move, not whatever
        an empty book will fill: it sells no lower than that discount, buys no higher than
        that premium."""
        model, limit = self.model, self.market.limit_price(instrument, side)
        cap = self.cfg.max_basis
        spec = model.futures
        low = np.ceil(spec.price_at_basis(-cap, model.indices.level, model.day_index))
        high = np.floor(spec.price_at_basis(cap, model.indices.level, model.day_index))
        low, high = np.tile(low[CONTRACTS], r), np.tile(high[CONTRACTS], r)  # (r*K,)
        return np.where(side < 0, np.maximum(limit, low), np.minimum(limit, high))
