"""Market makers: ladders of resting limit orders whose depth is finite and recovers slowly.

Each stock is quoted by one market maker. Its ladder has ``ladder_levels`` rungs a
side, the k-th rung ``k * ladder_spacing`` from a reference price and holding
depth proportional to k: latent liquidity that grows linearly away from the
price, which is what makes the impact of a meta-order grow like the square root
of its size. What the market takes is gone until it is replenished, at
``replenish`` of the gap per step; depth shrinks when recent volatility is high,
quotes lean against inventory, and the morning's quotes move with the overnight
news about fundamental value, which is public.
"""

from __future__ import annotations

import numpy as np

from agents.base import ArrayAgent, Population
from model.config import MarketMakerConfig
from model.orders import Orders


class MarketMaker(ArrayAgent):
    """One market maker: quotes the stocks assigned to it."""

    @property
    def stocks(self) -> np.ndarray:
        return np.flatnonzero(self.population.maker_of == self.row)


class MarketMakers(Population):
    agent_class = MarketMaker

    def __init__(self, model, accounts, cfg: MarketMakerConfig, maker_of: np.ndarray) -> None:
        super().__init__(model, accounts)
        self.cfg = cfg
        self.maker_of = maker_of  # (S,) row of the market maker quoting each stock
        self.inventory0 = np.zeros(maker_of.shape[0], dtype=np.int64)  # (S,) shares, target
        self.depth = np.zeros((maker_of.shape[0], 2))  # (S, 2) lots on the book: [bid, ask]
        self.rung = np.arange(1, cfg.ladder_levels + 1, dtype=np.float64)  # (K,)
        self.depth[:] = self.target_depth(np.arange(maker_of.shape[0]))[:, None]  # full at start
        self.news = np.zeros(maker_of.shape[0])  # (S,) log value change not yet in the quotes
        self.seen_value = model.fundamentals.log_value.copy()  # (S,)

    def target_depth(self, stocks: np.ndarray) -> np.ndarray:
        """(n,) lots a side the maker wants on the book, less when volatility runs high."""
        market, c = self.market, self.cfg
        lots = c.depth_pct_cap * market.caps()[stocks] * 100.0 / (market.last[stocks] * market.lot)
        stress = np.maximum(market.vol_ratio()[stocks] - 1.0, 0.0)
        return lots / (1.0 + c.vol_aversion * stress)

    def begin_day(self) -> None:
        # Yesterday's book has expired: the maker starts from what it would have replenished,
        # and moves its quotes by the overnight news, which is public.
        target = self.target_depth(np.arange(self.maker_of.shape[0]))
        self.depth += self.cfg.replenish * (target[:, None] - self.depth)
        value = self.model.fundamentals.log_value
        self.news = value - self.seen_value
        self.seen_value = value.copy()

    def decide(self, rows: np.ndarray) -> Orders:
        market, c = self.market, self.cfg
        stocks = np.flatnonzero(np.isin(self.maker_of, rows))  # (n,)
        accounts = self.accounts[self.maker_of[stocks]]
        market.cancel_accounts(np.unique(accounts))

        # What survived the last auction is still "on the book": take fills off, then replenish.
        account, stock, signed, _ = market.last_fills
        mine = np.isin(account, accounts) & np.isin(stock, stocks)
        taken = np.zeros_like(self.depth)
        side_col = (signed[mine] < 0).astype(np.int64)  # maker sold -> its ask was hit
        np.add.at(taken, (stock[mine], side_col), np.abs(signed[mine]) / market.lot)
        self.depth[stocks] = np.maximum(self.depth[stocks] - taken[stocks], 0.0)
        target = self.target_depth(stocks)
        self.depth[stocks] += c.replenish * (target[:, None] - self.depth[stocks])

        # Quotes lean against inventory: long makers lower both sides to sell.
        held = market.ledger.holding(accounts, stocks)
        lean = np.clip(held / np.maximum(self.inventory0[stocks], 1) - 1.0, -1.0, 1.0)
        ref = market.last[stocks] * np.exp(self.news[stocks] - c.inventory_skew * lean)  # (n,) fen
        self.news[stocks] = 0.0

        k = self.rung[None, :]  # (1, K)
        weight = k / self.rung.sum()
        bid_px = np.floor(ref[:, None] * (1.0 - c.ladder_spacing * k))  # (n, K)
        ask_px = np.ceil(ref[:, None] * (1.0 + c.ladder_spacing * k))
        bid_lots = np.floor(self.depth[stocks, 0:1] * weight)
        ask_lots = np.floor(self.depth[stocks, 1:2] * weight)
        n, kk = bid_px.shape
        acct = np.repeat(accounts, kk)
        stk = np.repeat(stocks, kk)
        return Orders(
            account=np.concatenate([acct, acct]),
            stock=np.concatenate([stk, stk]),
            side=np.concatenate([np.ones(n * kk), -np.ones(n * kk)]),
            price=np.concatenate([bid_px.ravel(), ask_px.ravel()]),
            lots=np.concatenate([bid_lots.ravel(), ask_lots.ravel()]),
        )
