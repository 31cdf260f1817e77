"""Fundamental traders: value investors who lean against mispricing.

Each one covers a fixed list of stocks and reviews it every step. Below value by
more than its threshold, it bids up to that margin below value; above, it offers
down to that margin above. Size grows with the mispricing. They are what ties prices to values, and
their finite cash is why a big enough forced sale can still overwhelm them.

A risk budget on their own book, off by default (``drawdown_budget``), lets them
step back in a rout: each marks its book (cash and holdings at the last close) at
every open; as its log drawdown from its peak goes from ``drawdown_free`` to
``drawdown_budget`` its bids shrink linearly from the full bid to ``drawdown_floor``
of it. The drawdown heals as the book recovers and, held flat, halves every
``drawdown_halflife`` trading days (an old loss weighs less), so the bid comes back.
Sales (above value) are never limited: they reduce risk.
"""

from __future__ import annotations

import numpy as np

from agents.base import ArrayAgent, Population
from model.config import FundamentalTraderConfig
from model.orders import Orders


class FundamentalTrader(ArrayAgent):
    """One value investor."""


class FundamentalTraders(Population):
    agent_class = FundamentalTrader

    def __init__(self, model, accounts, cfg: FundamentalTraderConfig) -> None:
        super().__init__(model, accounts)
        self.cfg = cfg
        n_stocks = model.universe.n
        # Enough stocks each that every stock has someone watching it: 200 investors
        # covering 20 stocks each leave a fifth of a 5,000-stock market unanchored.
        watched = min(max(cfg.stocks_watched, -(-n_stocks // max(self.n, 1))), n_stocks)
        # (n, W) the stocks each one covers, a fixed list as an analyst's coverage is; every
        # stock is covered about equally often.
        flat = self.rng.permutation(np.resize(np.arange(n_stocks), self.n * watched))
        self.coverage = flat.reshape(self.n, watched)
        self.equity: np.ndarray | None = None  # (n,) CNY, the book at the last open
        self.drawdown = np.zeros(self.n)  # (n,) log drawdown from the (aging) peak
        self.appetite = np.ones(self.n)  # (n,) share of the full bid they still make

    def begin_day(self) -> None:
        """Mark each book at the open: its drawdown and appetite."""
        c = self.cfg
        if not c.drawdown_budget > 0.0 or not self.n:
            return
        cash = self.model.ledger.cash[self.accounts] / 100.0
        equity = np.maximum(cash + self.holdings_value(self.rows), 1.0)  # (n,) CNY
        if self.equity is not None:
            aging = 0.5 ** (1.0 / c.drawdown_halflife)
            loss = np.log(self.equity / equity)  # > 0: the book fell since the last open
            self.drawdown = np.maximum(self.drawdown * aging + loss, 0.0)
        span = max(c.drawdown_budget - c.drawdown_free, 1e-12)
        left = np.clip((c.drawdown_budget - self.drawdown) / span, 0.0, 1.0)
        self.appetite = c.drawdown_floor + (1.0 - c.drawdown_floor) * left
        self.equity = equity

    def decide(self, rows: np.ndarray) -> Orders:
        """Orders of ``rows``: one per stock each covers where the gap calls for a lot or more.

        What an order holds besides its account depends on the stock alone, so side,
        price and size are worked out once per stock (S,) and read at each covered
        stock, instead of once per (investor, stock) cell: the same floats, element by
        element, in a quarter of the work at default scale. Cells of no lots (some 80%
        of them) are left out here: the exchange admits nothing of them and they hold
        no claim on cash or shares, so the book and every fill are the same without them.
        """
        market, c = self.market, self.cfg
        market.cancel_accounts(np.sort(self.accounts[rows]))
        n_stocks = market.universe.n
        stock = self.coverage[rows]  # (r, W)
        watched = stock.shape[1]
        account = np.broadcast_to(self.accounts[rows][:, None], stock.shape)
        log_value = self.model.fundamentals.log_value  # (S,)
        gap = log_value - np.log(market.last[:n_stocks] / 100.0)  # (S,) > 0: cheap
        act = np.abs(gap) > c.threshold
        side = np.sign(gap).astype(np.int8)  # (S,)
        price = np.exp(log_value - side * c.threshold) * 100.0  # (S,)
        # Expected reviewers per stock and step share the size a stock's mispricing calls for.
        reviewers = max(self.n * watched / n_stocks, 1.0) * self.model.steps_per_day
        shares = (
            c.aggressiveness
            * market.universe.float_shares
            * (np.abs(gap) - c.threshold)
            / reviewers
        )
        lots = np.where(act, np.floor(shares / market.lot), 0)  # (S,)
        cells = stock.ravel()  # (r * W,) each cell's stock, in (investor, stock) order
        cell_lots = lots[cells]  # (r * W,)
        if c.drawdown_budget > 0.0:
            cell_lots = self._limit_buys(rows, cells, side, np.where(act, shares, 0.0), cell_lots)
        keep = np.flatnonzero(cell_lots > 0)  # (k,) the cells with an order
        cells = cells[keep]
        return Orders(account.ravel()[keep], cells, side[cells], price[cells], cell_lots[keep])

    def _limit_buys(
        self,
        rows: np.ndarray,
        cells: np.ndarray,
        side: np.ndarray,
        shares: np.ndarray,
        cell_lots: np.ndarray,
    ) -> np.ndarray:
        """(r * W,) lots of each cell, its buys cut to what its investor's budget leaves.

        ``shares`` and ``side`` are (S,), by stock; ``cells`` (r * W,) the stock of each
        (investor, stock) cell. Sales keep their lots.
        """
        appetite = np.repeat(self.take(self.appetite, rows), self.coverage.shape[1])  # (r * W,)
        wanted = np.floor(shares[cells] * appetite / self.market.lot)
        return np.where(side[cells] > 0, wanted, cell_lots)
