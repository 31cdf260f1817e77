"""Fundamental traders: value investors who lean against mispricing.

Each one covers a fixed list of stocks and reviews it every step. Below value by
more than its threshold, it bids up to that margin below value; above, it offers
down to that margin above. Size grows with the mispricing. They are what ties prices to values, and
their finite cash is why a big enough forced sale can still overwhelm them.
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
        cell_lots = lots[stock.ravel()]  # (r * W,) in (investor, stock) order
        keep = np.flatnonzero(cell_lots > 0)  # (k,) the cells with an order
        stock = stock.ravel()[keep]
        return Orders(account.ravel()[keep], stock, side[stock], price[stock], cell_lots[keep])
