"""The national team: state funds buying broad ETFs on a schedule.

Central Huijin and its peers announced ETF purchases from late January 2024 and
bought heavily after 6 February. The model reduces that to a schedule of
cumulative spending, piecewise linear over trading days: zero at ``start``,
``early_bn * scale`` bn CNY by the close of ``early_date``, ``late_bn * scale``
by the close of ``late_date``, flat after. ETF creations end up as buying of
the index constituents, so the team buys stocks directly, cap-weighted: only
the CSI 300 before ``small_cap_date``, from that day on ``small_cap_share`` goes to
the CSI 500 and CSI 1000 (half each, cap-weighted within each), the rest to
the CSI 300.

Each step it bids for the gap between the schedule and what it has actually
spent, a little above the last price, so the buying is spread over the steps
of each day and any shortfall is made up later. Spending is read off the cash
account (it only ever buys), so it counts what filled, at the fill prices.

Set-up: open each row's account with :meth:`NationalTeam.cash_needed_fen` so
that cash never binds (the state's purse is deep).
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from agents.base import ArrayAgent, Population
from model.calendar import trading_days_from
from model.config import NationalTeamConfig
from model.orders import Orders
from model.universe import CSI300, CSI500, CSI1000, REST

PREMIUM = 0.01  # bids go this far above the last price


class NationalTeamAgent(ArrayAgent):
    """The state buyer (one row)."""

    @property
    def spent_cny(self) -> float:
        return float(self.population.spent(np.array([self.row]))[0])


class NationalTeam(Population):
    """State ETF buying: cap-weighted stock purchases that track a spending schedule."""

    agent_class = NationalTeamAgent

    def __init__(self, model, accounts, cfg: NationalTeamConfig, scale: float) -> None:
        super().__init__(model, accounts)
        self.cfg = cfg
        self.cash0 = model.ledger.cash[self.accounts].copy()  # (n,) fen at the start
        # Schedule knots in "trading days elapsed" (the close of day d is d + 1).
        self.knots = np.array(
            [
                self._day_of(cfg.start),
                self._day_of(cfg.early_date) + 1,
                self._day_of(cfg.late_date) + 1,
            ]
        )  # (3,)
        self.levels_cny = np.array([0.0, cfg.early_bn, cfg.late_bn]) * scale * 1e9  # (3,)
        # What the schedule called for before the run's first day was bought before it.
        self.bought_before = self.schedule(0.0)
        self.small_cap_day = self._day_of(cfg.small_cap_date)

    @staticmethod
    def cash_needed_fen(cfg: NationalTeamConfig, scale: float) -> int:
        """Cash (fen) an account needs so the whole schedule can be bought, with room."""
        return int(np.ceil(1.5 * max(cfg.late_bn, cfg.early_bn) * scale * 1e9 * 100)) + 1

    def _day_of(self, day: dt.date) -> float:
        """Index of the first trading day on or after ``day`` in the run's days, counted on
        the exchanges' calendar: beyond the last day when after it, negative when before
        the first, so a run cut short keeps the schedule's pace."""
        return float(trading_days_from(self.model.days[0], day))

    # -- read-outs --------------------------------------------------------------------------
    def spent(self, rows: np.ndarray) -> np.ndarray:
        """(r,) CNY spent so far (filled purchases at their fill prices)."""
        return (self.cash0[rows] - self.model.ledger.cash[self.accounts[rows]]) / 100.0

    @property
    def spent_cny(self) -> float:
        """CNY spent so far by all rows."""
        return float(self.spent(self.rows).sum())

    def schedule(self, elapsed: float) -> float:
        """Cumulative CNY the schedule calls for after ``elapsed`` trading days."""
        return float(np.interp(elapsed, self.knots, self.levels_cny))

    def weights(self) -> np.ndarray:
        """(S,) share of today's buying per stock: cap-weighted index baskets."""
        model = self.model
        caps, tier = self.market.caps(), model.indices.tier
        small = self.cfg.small_cap_share if model.day_index >= self.small_cap_day else 0.0
        part = np.zeros(REST + 1)  # (T,) share of the buying per tier
        part[[CSI300, CSI500, CSI1000]] = [1.0 - small, small / 2, small / 2]
        tier_cap = np.bincount(tier, caps, minlength=part.size)  # (T,) CNY per tier
        w = part[tier] * caps / np.maximum(tier_cap[tier], 1e-9)  # (S,)
        return w / max(w.sum(), 1e-12)

    # -- orders -----------------------------------------------------------------------------
    def decide(self, rows: np.ndarray) -> Orders:
        """Bid for the gap between the schedule and what has been spent.

        Only orders of a lot or more: the exchange admits nothing of the others and they
        claim no cash, so the book and every fill are the same without them. Before the
        schedule starts (most of a run) nothing is due and there is nothing to work out.
        """
        model, market = self.model, self.market
        accounts = self.accounts[rows]
        market.cancel_accounts(accounts)
        if not self.cfg.enabled or rows.size == 0:
            return Orders.empty()
        slice_ = (model.steps - 1) % model.steps_per_day
        elapsed = model.day_index + (slice_ + 1) / model.steps_per_day
        due = (self.schedule(elapsed) - self.bought_before) / self.n - self.spent(rows)  # (r,)
        if not (due > 0.0).any():
            return Orders.empty()  # every order would be of no lots
        w = self.weights()  # (S,)
        stock = np.flatnonzero(w > 0)  # (K,) stocks bought today
        price = market.last[stock].astype(np.float64)  # (K,) fen
        cny = np.maximum(due, 0.0)[:, None] * w[stock][None, :]  # (r, K)
        lots = np.floor(cny * 100.0 / (price * (1.0 + PREMIUM) * market.lot)).ravel()
        k = stock.size
        keep = np.flatnonzero(lots > 0)  # (m,) the (row, stock) cells with an order
        return Orders(
            np.repeat(accounts, k)[keep],
            np.tile(stock, rows.size)[keep],
            np.ones(keep.size),
            np.tile(np.ceil(price * (1.0 + PREMIUM)), rows.size)[keep],
            lots[keep],
        )
