"""Invariants of the books, checked every step when a model runs with ``check=True``.

The clearing house is kept in integers, so every invariant here holds exactly:
nothing is created or lost, whatever the agents do. The checker only reads the
model's state (it draws no random numbers and changes nothing), so a checked run
gives the same results as an unchecked one. A broken invariant raises
:class:`InvariantError` at once, with the step, the account and the amounts, so
the run stops at the first step where the books went wrong rather than at a
plot that looks odd weeks later.

What is checked:

* cash: the sum over accounts equals the initial cash plus recorded external flows;
* shares: each stock's holdings sum to its float; futures longs and shorts net out;
* no negative or non-finite price, no cash below the account's credit line, no
  negative holding unless a recorded loan covers it; no value near int64 overflow;
* T+1: no market sale exceeds what the account could sell when the auction ran;
* price limits: every price stays within the day's limits around the previous close;
* loans: every loan is returned or still open (shares lent minus returned equal owed);
* futures: each account's variation margin received equals its marked-to-market P&L.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from model.market_model import MarketModel

ENV = "UNWIND_CHECK"  # "1" turns the checker on for every model (the tests set it)
HUGE = 2**62  # fen or shares this large are one addition away from int64 overflow


def env_default() -> bool:
    """True when the environment asks for checked runs (``UNWIND_CHECK=1``)."""
    return os.environ.get(ENV, "").strip().lower() in ("1", "true", "yes", "on")


class InvariantError(RuntimeError):
    """The books broke an invariant: a bug in the model, never a user mistake."""


class InvariantChecker:
    """Checks a :class:`MarketModel`'s books; vectorized over every account.

    The model calls :meth:`before_clear` and :meth:`after_clear` around each call
    auction, and :meth:`after_step` at the end of each step.
    """

    def __init__(self, model: MarketModel) -> None:
        self.model = model
        ledger = model.ledger
        # Futures positions set up before trading count as bought at the first mark.
        self.fut_setup = ledger.fut_pos * ledger.fut_mark[None, :] - ledger.fut_cost
        self.fut_received0 = ledger.variation_received.copy()
        # Each account's cash and variation margin received at the end of the last step.
        self.cash_before = ledger.cash.copy()
        self.received_before = ledger.variation_received.copy()
        self.sellable_key = np.zeros(0, dtype=np.int64)
        self.sellable = np.zeros(0, dtype=np.int64)
        self.after_step(where="set-up")

    # -- hooks ----------------------------------------------------------------------------
    def before_clear(self) -> None:
        """Remember what each position may sell, for the T+1 check of the fills."""
        ledger = self.model.ledger
        self.sellable_key = ledger.key.copy()
        self.sellable = ledger.shares - ledger.bought_today

    def after_clear(self) -> None:
        """T+1 and price limits, judged against the auction that just ran."""
        self._t_plus_one()
        self._price_limits()

    def after_step(self, where: str | None = None) -> None:
        """Conservation and the state of every account, loan and futures position."""
        self._where = where
        self._conservation()
        self._accounts()
        self._loans()
        self._futures_pnl()
        self._finite()
        ledger = self.model.ledger
        self.cash_before = ledger.cash.copy()
        self.received_before = ledger.variation_received.copy()

    # -- reporting ------------------------------------------------------------------------
    def _fail(self, what: str) -> None:
        model = self.model
        where = getattr(self, "_where", None)
        if where is None:
            where = f"step {model.steps} ({model.date.isoformat()})"
        raise InvariantError(f"invariant broken at {where}: {what}")

    def _stock(self, i: int) -> str:
        return f"stock s{i}" if i < self.model.universe.n else f"future {i - self.model.universe.n}"

    # -- checks ---------------------------------------------------------------------------
    def _conservation(self) -> None:
        ledger = self.model.ledger
        total = int(ledger.cash.sum())
        drift = total - ledger.initial_cash - ledger.external
        if drift:
            self._fail(
                f"cash: accounts hold {total} fen, initial {ledger.initial_cash} + external "
                f"{ledger.external} = {ledger.initial_cash + ledger.external} (drift {drift} fen)"
            )
        held = ledger.shares_by_stock()
        bad = np.flatnonzero(held != ledger.initial_shares)
        if bad.size:
            s = int(bad[0])
            self._fail(
                f"shares: {self._stock(s)} holdings sum to {int(held[s])}, its float is "
                f"{int(ledger.initial_shares[s])} (drift {int(held[s] - ledger.initial_shares[s])})"
            )
        net = ledger.fut_pos.sum(axis=0)
        bad = np.flatnonzero(net)
        if bad.size:
            f = int(bad[0])
            self._fail(f"futures: contract {f} longs minus shorts = {int(net[f])} contracts")

    def _spent_below_the_line(self) -> np.ndarray:
        """Accounts below their credit line by their own doing.

        Variation margin is paid whatever the line: a limit move in the futures can take
        a hedged account below it at the mark (a margin call, which the account must
        then meet by selling). So an account may sit below its line where, leaving out
        this step's variation margin, its cash is within the line or has not fallen
        since the last step; anything else is spending credit it does not have.
        """
        ledger = self.model.ledger
        short = np.flatnonzero(ledger.cash < -ledger.credit)
        if not short.size:
            return short
        known = short < self.cash_before.shape[0]  # accounts opened since count as within
        row = np.where(known, short, 0)
        before = np.where(known, self.cash_before[row], ledger.cash[short])
        marks = ledger.variation_received[short] - np.where(
            known, self.received_before[row], ledger.variation_received[short]
        )
        own = ledger.cash[short] - marks  # (k,) cash without this step's variation margin
        return short[(own < -ledger.credit[short]) & (own < before)]

    def _accounts(self) -> None:
        model, ledger = self.model, self.model.ledger
        short = self._spent_below_the_line()
        if short.size:
            a = int(short[0])
            self._fail(
                f"account {a}: cash {int(ledger.cash[a])} fen is below its credit line "
                f"-{int(ledger.credit[a])} fen, and not by variation margin alone"
            )
        big = np.flatnonzero(np.abs(ledger.cash) >= HUGE)
        if big.size:
            a = int(big[0])
            self._fail(f"account {a}: cash {int(ledger.cash[a])} fen is near int64 overflow")
        neg = np.flatnonzero(ledger.shares < 0)
        if neg.size:
            account, stock = np.divmod(ledger.key[neg], ledger.n_stocks)
            owed = np.zeros(neg.size, dtype=np.int64)
            desk = model.lending
            if desk is not None and desk.key.size:
                row = np.minimum(np.searchsorted(desk.key, ledger.key[neg]), desk.key.size - 1)
                owed = np.where(desk.key[row] == ledger.key[neg], desk.owed[row], 0)
            uncovered = np.flatnonzero(-ledger.shares[neg] > owed)
            if uncovered.size:
                i = int(uncovered[0])
                self._fail(
                    f"account {int(account[i])} holds {int(ledger.shares[neg[i]])} shares of "
                    f"{self._stock(int(stock[i]))} with {int(owed[i])} owed on a loan"
                )
        big = np.flatnonzero(np.abs(ledger.shares) >= HUGE)
        if big.size:
            account, stock = divmod(int(ledger.key[big[0]]), ledger.n_stocks)
            self._fail(f"account {account}: holding of {self._stock(stock)} near int64 overflow")

    def _loans(self) -> None:
        desk = self.model.lending
        if desk is None:
            return
        if desk.key.size and np.any(np.diff(desk.key) <= 0):
            self._fail("loans: the loan table is not sorted by (borrower, stock)")
        due = desk.recall_due
        neg = np.flatnonzero((desk.owed < 0) | (due < 0) | (due > desk.owed))
        if neg.size:
            i = int(neg[0])
            borrower, stock = divmod(int(desk.key[i]), desk.n_stocks)
            self._fail(
                f"account {borrower}: loan of {self._stock(stock)} owes {int(desk.owed[i])} "
                f"shares with {int(desk.recall_due[i])} recalled"
            )
        owed = desk.owed_by_stock()
        open_ = desk.lent_total - desk.returned_total
        bad = np.flatnonzero(owed != open_)
        if bad.size:
            s = int(bad[0])
            self._fail(
                f"loans: {self._stock(s)} lent {int(desk.lent_total[s])} and returned "
                f"{int(desk.returned_total[s])} shares, but {int(owed[s])} are owed"
            )

    def _t_plus_one(self) -> None:
        fills = getattr(self.model.market, "last_fills", None)
        if fills is None:
            return
        account, stock, signed, _ = fills
        sold = signed < 0
        if not sold.any():
            return
        ledger = self.model.ledger
        key = account[sold] * ledger.n_stocks + stock[sold]
        ukey, inverse = np.unique(key, return_inverse=True)
        amount = np.bincount(inverse, -signed[sold], minlength=ukey.size).astype(np.int64)
        known = self.sellable_key
        row = np.minimum(np.searchsorted(known, ukey), max(known.size - 1, 0))
        found = known.size > 0 and known[row] == ukey
        could = np.where(found, self.sellable[row] if known.size else 0, 0)
        over = np.flatnonzero(amount > could)
        if over.size:
            i = int(over[0])
            a, s = divmod(int(ukey[i]), ledger.n_stocks)
            self._fail(
                f"T+1: account {a} sold {int(amount[i])} shares of {self._stock(s)}, "
                f"only {int(could[i])} were sellable"
            )

    def _price_limits(self) -> None:
        market = self.model.market
        last, prev = market.last, market.prev_close
        if np.any(last <= 0):
            i = int(np.flatnonzero(last <= 0)[0])
            self._fail(f"{self._stock(i)} price {int(last[i])} is not positive")
        # The exchange rule, computed apart from the kernel's grid: limit prices are the
        # previous close times (1 -/+ limit) rounded to the unit, at least a unit apart.
        lower = np.maximum(np.round(prev * (1.0 - market.limit)).astype(np.int64), 1)
        upper = np.maximum(np.round(prev * (1.0 + market.limit)).astype(np.int64), lower + 1)
        bad = np.flatnonzero((last < lower) | (last > upper))
        if bad.size:
            i = int(bad[0])
            self._fail(
                f"{self._stock(i)} price {int(last[i])} is outside the day's limits "
                f"[{int(lower[i])}, {int(upper[i])}] (previous close {int(prev[i])})"
            )

    def _futures_pnl(self) -> None:
        ledger = self.model.ledger
        if ledger.n_futures == 0:
            return
        n_new = ledger.n_accounts - self.fut_setup.shape[0]
        if n_new > 0:  # accounts opened since set-up start flat
            grow = np.zeros((n_new, ledger.n_futures), dtype=np.int64)
            self.fut_setup = np.concatenate([self.fut_setup, grow])
            self.fut_received0 = np.concatenate([self.fut_received0, grow[:, 0]])
        # Marked-to-market P&L from the fills' recorded cost (clearing price, in ticks).
        gain = ledger.fut_pos * ledger.fut_mark[None, :] - ledger.fut_cost - self.fut_setup
        pnl = gain @ ledger.fut_tick_value
        notional = np.abs(ledger.fut_pos).astype(np.float64) @ (
            ledger.fut_mark * ledger.fut_tick_value
        ).astype(np.float64)
        big = np.flatnonzero(notional >= HUGE)
        if big.size:
            a = int(big[0])
            self._fail(
                f"futures: account {a} holds {ledger.fut_pos[a].tolist()} contracts, "
                "a notional near int64 overflow"
            )
        received = ledger.variation_received - self.fut_received0
        bad = np.flatnonzero(pnl != received)
        if bad.size:
            a = int(bad[0])
            self._fail(
                f"futures: account {a} received {int(received[a])} fen of variation margin, "
                f"its marked-to-market P&L is {int(pnl[a])} fen"
            )

    def _finite(self) -> None:
        model = self.model
        level = model.indices.level
        if not np.all(np.isfinite(level) & (level > 0)):
            i = int(np.flatnonzero(~(np.isfinite(level) & (level > 0)))[0])
            self._fail(f"index {i} level is {level[i]}")
        market = model.market
        for name in ("step_return", "var_fast", "var_slow"):
            values = getattr(market, name)
            if not np.all(np.isfinite(values)):
                i = int(np.flatnonzero(~np.isfinite(values))[0])
                self._fail(f"market.{name} of {self._stock(i)} is {values[i]}")
