"""Noise traders: liquidity demand with no view, whose attention follows volatility.

They send orders at a steady rate, more to stocks that have been moving
(attention, which is what clusters volatility). Buy or sell is a coin flip
tilted towards keeping their initial cash share: a trader whose stocks have run
up sells a little more often. Sellers sell what they hold and may sell today.
Some orders go at the limit price (market orders), the rest rest as limit
orders near the last price, and part of those is withdrawn each step.
"""

from __future__ import annotations

import numpy as np

from agents.base import ArrayAgent, Population
from agents.sampling import choice
from model.config import NoiseTraderConfig
from model.orders import Orders


class NoiseTrader(ArrayAgent):
    """One noise trader."""


class NoiseTraders(Population):
    agent_class = NoiseTrader

    def __init__(self, model, accounts, cfg: NoiseTraderConfig) -> None:
        super().__init__(model, accounts)
        self.cfg = cfg
        self.cash_target = np.zeros(self.n)  # (n,) cash share of wealth each one keeps

    def begin_day(self) -> None:
        if self.model.day_index == 0:
            self.cash_target = self.cash_share(self.rows)

    def cash_share(
        self, rows: np.ndarray, positions: tuple[np.ndarray, ...] | None = None
    ) -> np.ndarray:
        """(r,) cash over cash plus holdings at last prices.

        ``positions`` is the rows' ``Ledger.positions_of``, when the caller has it already.
        """
        held = self.holdings_value(rows, positions)
        cash = np.maximum(self.model.ledger.cash[self.accounts[rows]] / 100.0, 0.0)
        return cash / np.maximum(cash + held, 1.0)

    def decide(self, rows: np.ndarray) -> Orders:
        market, c, rng = self.market, self.cfg, self.rng
        accounts = self.accounts[rows]  # sorted: rows are ascending and accounts contiguous
        market.cancel_share(accounts, c.cancel_rate, rng)

        n_stocks = market.universe.n
        attention = 1.0 + c.attention * np.maximum(market.vol_ratio() - 1.0, 0.0)  # (S,)
        rate = c.orders_per_stock_step * n_stocks * attention.mean() / max(self.n, 1)
        counts = rng.poisson(rate, size=rows.shape[0])  # (r,)
        owner = np.repeat(np.arange(rows.shape[0]), counts)  # (n,) index into rows
        n = owner.shape[0]
        # The ledger does not change while agents decide: one look at the rows' positions.
        positions = market.ledger.positions_of(accounts)
        slot, h_stock, _, sellable = positions
        tilt = c.rebalancing * (self.cash_share(rows, positions) - self.cash_target[rows])
        buy = rng.random(n) < 0.5 * (1.0 + np.tanh(tilt))[owner]
        stock = choice(rng, attention / attention.sum(), n)
        cap_lots = np.full(n, np.iinfo(np.int64).max)

        # Each trader keeps a handful of stocks: sellers sell one of their positions (they may
        # sell today), and half the buyers add to one rather than open a new one.
        count = np.bincount(slot, minlength=rows.shape[0])  # (r,) positions of each row
        first = np.cumsum(count) - count  # (r,) first position of each row
        held = count[owner]  # (n,)
        pick = first[owner] + np.floor(rng.random(n) * held).astype(np.int64)
        pick = np.minimum(pick, max(slot.shape[0] - 1, 0))
        sell = ~buy & (held > 0)
        top_up = buy & (held > 0) & (rng.random(n) < 0.5)
        if slot.shape[0]:
            stock = np.where(sell | top_up, h_stock[pick], stock)
            cap_lots = np.where(sell, sellable[pick] // market.lot, cap_lots)
        sell &= cap_lots > 0
        keep = buy | sell
        side = np.where(buy, 1, -1).astype(np.int8)

        price = market.last[stock].astype(np.float64)
        value = (
            c.order_pct_cap * market.caps()[stock] * np.exp(c.size_sigma * rng.standard_normal(n))
        )
        lots = np.maximum(np.floor(value * 100.0 / (price * market.lot)), 1)
        # A seller left with less than another order's worth sells out: holdings stay a handful.
        lots = np.where(cap_lots < 2 * lots, cap_lots, lots)
        price = price * np.exp(-side * rng.exponential(c.limit_offset, size=n))
        at_limit = rng.random(n) < c.market_order_share
        price = np.where(at_limit, market.limit_price(stock, side), price)
        return Orders(accounts[owner], stock, side, price, lots).select(keep)
