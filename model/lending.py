"""Securities lending: supply per stock, loans, and the policy timeline that cut supply.

Lendable shares come from the long-term holders' account: an institutional part,
and (until the rule changed) a restricted-share part. A loan moves shares from
the lender to the borrower, who sells them short; it is repaid by handing the
same number of shares back. When policy cuts supply below what is lent, loans
are recalled, a share of the excess a day: the borrower must return the shares,
buying them in the market if it no longer holds them.
"""

from __future__ import annotations

import datetime as dt

import numba
import numpy as np

from model.aot import entry
from model.config import LendingConfig
from model.ledger import Ledger, consecutive, sorted_rows


class LendingDesk:
    """Lendable supply and open loans, kept as arrays (a loan per borrower and stock)."""

    def __init__(
        self, cfg: LendingConfig, float_shares: np.ndarray, lender: int, lot: int, ledger: Ledger
    ) -> None:
        self.cfg = cfg
        self.lender = lender
        self.lot = lot
        self.ledger = ledger
        self.institutional = np.floor(float_shares * cfg.institutional_pct_float / lot) * lot
        self.restricted = np.floor(float_shares * cfg.restricted_pct_float / lot) * lot
        self.n_stocks = float_shares.shape[0]
        # Loans keyed by borrower * S + stock, sorted; shares owed (int64).
        self.key = np.zeros(0, dtype=np.int64)
        self.owed = np.zeros(0, dtype=np.int64)
        self.recall_due = np.zeros(0, dtype=np.int64)  # shares to hand back, per loan
        self.same_day_route = True  # borrowed shares may be sold the day they arrive (T+0)
        # CNY of buy-in orders sent because of recalls, over the run (an order re-sent each
        # step until it fills counts each time: what was asked, not what was bought)
        self.buy_ins_total = 0.0
        # Shares ever lent and returned per stock: owed must always be their difference.
        self.lent_total = np.zeros(self.n_stocks, dtype=np.int64)
        self.returned_total = np.zeros(self.n_stocks, dtype=np.int64)
        self._supply_day: dt.date | None = None  # the day ``_supply`` is of
        self._supply = np.zeros(0)

    def supply(self, day: dt.date) -> np.ndarray:
        """(S,) shares lendable in total on ``day`` under the policy timeline (read-only: the
        last day's is kept, as the desk and the arbitrageurs ask for it several times a step)."""
        if day != self._supply_day:
            supply = self._supply_on(day)
            supply.flags.writeable = False
            self._supply_day, self._supply = day, supply
        return self._supply

    def _supply_on(self, day: dt.date) -> np.ndarray:
        c = self.cfg
        inst = self.institutional.copy()
        restricted = self.restricted
        if c.curb_enabled:
            if day >= c.restricted_ban:
                restricted = np.zeros_like(restricted)
            if day >= c.t1_date:
                inst = inst * (1.0 - c.t1_cut)
            if day >= c.t0_close:
                inst = inst * (1.0 - c.t0_cut)
        return np.floor((inst + restricted) / self.lot) * self.lot

    def owed_by_stock(self) -> np.ndarray:
        return np.bincount(self.key % self.n_stocks, self.owed, minlength=self.n_stocks)

    def loans(self, borrowers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(borrower, stock, shares owed) of the given borrowers' open loans."""
        row = self.loan_rows(borrowers)
        borrower, stock = np.divmod(self.key[row], self.n_stocks)
        return borrower, stock, self.owed[row]

    def loan_rows(self, borrowers: np.ndarray) -> np.ndarray:
        """(l,) rows of the desk's arrays holding the given borrowers' open loans, in key order.

        Callers that want a loan's recall as well as what is owed read both rows here,
        with no search of the keys of their own.
        """
        key, owed = self.key, self.owed
        borrowers = np.asarray(borrowers, dtype=np.int64)
        if consecutive(borrowers):
            lo, hi = np.searchsorted(
                key, [borrowers[0] * self.n_stocks, (borrowers[-1] + 1) * self.n_stocks]
            )
            return lo + np.flatnonzero(owed[lo:hi] > 0)
        return np.flatnonzero(np.isin(key // self.n_stocks, borrowers) & (owed > 0))

    def owed_value(self, borrowers: np.ndarray, price_fen: np.ndarray) -> np.ndarray:
        """(r,) CNY of the shares each of ``borrowers`` (r,) owes.

        Per loan ``owed * price / 100``, summed in key order: the floats of a bincount over
        :meth:`loans`, from one compiled pass over each borrower's slice of the keys (the
        neutral products value their loans on every step).
        """
        return _owed_value(
            self.key,
            self.owed,
            self.n_stocks,
            np.asarray(borrowers, dtype=np.int64),
            np.asarray(price_fen, dtype=np.int64),
        )

    def new_day(self, day: dt.date) -> None:
        """Apply the timeline: recall a share of whatever is lent beyond today's supply."""
        c = self.cfg
        self.same_day_route = not (c.curb_enabled and day >= c.t1_date)
        if self.key.size == 0:
            return
        stock = self.key % self.n_stocks  # (L,)
        # Shares already recalled and not yet handed back are on their way: only the rest
        # of the excess is recalled again, or a slow buy-in would be recalled twice.
        due_by_stock = np.bincount(stock, self.recall_due, minlength=self.n_stocks)  # (S,)
        not_recalled = self.owed_by_stock() - due_by_stock  # (S,) shares lent, not recalled
        excess = np.maximum(not_recalled - self.supply(day), 0)  # (S,)
        if not excess.any():
            return
        outstanding = self.owed - self.recall_due  # (L,) shares owed and not recalled
        share = (excess * c.recall_per_day / np.maximum(not_recalled, 1))[stock]
        due = np.ceil(outstanding * share / self.lot) * self.lot
        self.recall_due = np.minimum(self.recall_due + due.astype(np.int64), self.owed)

    def borrow(
        self, borrower: np.ndarray, stock: np.ndarray, shares: np.ndarray, day: dt.date
    ) -> np.ndarray:
        """Lend what supply allows (one request per borrower and stock, ``shares`` >= 0);
        return shares lent.

        The lender cannot lend shares it does not hold: in a small universe the funds'
        baskets can leave the long-term holders less than the policy supply. Requests for
        less than a lot are granted nothing and take no room, so only the others are
        worked out (the neutral products ask for every hedge name daily, most for nothing).
        """
        want = np.floor(shares / self.lot) * self.lot  # (n,) shares, whole lots
        asked = np.flatnonzero(want > 0)  # (k,) requests for a lot or more
        grant = np.zeros(want.shape[0], dtype=np.int64)  # (n,)
        if not asked.size:
            return grant
        grant[asked] = self._grants(stock[asked], want[asked], day)
        ok = grant > 0
        if ok.any():
            self.ledger.transfer(
                np.full(ok.sum(), self.lender),
                borrower[ok],
                stock[ok],
                grant[ok],
                locked=not self.same_day_route,
            )
            self._add(borrower[ok], stock[ok], grant[ok])
            np.add.at(self.lent_total, stock[ok], grant[ok])
        return grant

    def _grants(self, stock: np.ndarray, want: np.ndarray, day: dt.date) -> np.ndarray:
        """(k,) int64 shares granted of ``want`` (k,) whole lots: requests for the same stock
        share its room in order. Whole numbers of shares add exactly in float64."""
        room = np.maximum(self.supply(day) - self.owed_by_stock(), 0)  # (S,)
        room = np.minimum(room, np.maximum(self.ledger.account_holdings(self.lender), 0))
        order = np.argsort(stock, kind="stable")  # (k,)
        s_sorted = stock[order]
        want_sorted = want[order]
        cum = np.cumsum(want_sorted)
        start = np.searchsorted(s_sorted, s_sorted)  # (k,) first request of each one's stock
        before = cum - want_sorted - (cum[start] - want_sorted[start])
        grant_sorted = np.clip(room[s_sorted] - before, 0, want_sorted)
        grant = np.empty_like(grant_sorted)
        grant[order] = grant_sorted
        return grant.astype(np.int64)

    def repay(self, borrower: np.ndarray, stock: np.ndarray, shares: np.ndarray) -> np.ndarray:
        """Hand back up to ``shares`` (limited by what is owed and held); return shares repaid.

        Only the requests for more than nothing are looked up: the neutral products offer
        every open loan's recall daily, mostly none.
        """
        asked = np.flatnonzero(shares > 0)  # (k,)
        give = np.zeros(shares.shape[0], dtype=np.result_type(shares.dtype, np.int64))  # (n,)
        if asked.size:
            give[asked] = self._hand_back(borrower[asked], stock[asked], shares[asked])
        return give

    def _hand_back(self, borrower: np.ndarray, stock: np.ndarray, shares: np.ndarray) -> np.ndarray:
        """:meth:`repay` of requests for more than nothing: (k,) shares handed back."""
        key = borrower * self.n_stocks + stock
        row, found = self._rows(key)
        owed = np.where(found, self.owed[row] if self.owed.size else 0, 0)
        held = self.ledger.holding(borrower, stock)
        give = np.minimum(np.minimum(shares, owed), held)
        give = (give // self.lot) * self.lot
        ok = give > 0
        if ok.any():
            self.ledger.transfer(
                borrower[ok], np.full(ok.sum(), self.lender), stock[ok], give[ok], locked=False
            )
            np.subtract.at(self.owed, row[ok], give[ok])
            np.add.at(self.returned_total, stock[ok], give[ok])
            self.recall_due[row[ok]] = np.maximum(self.recall_due[row[ok]] - give[ok], 0)
        return give

    def _add(self, borrower: np.ndarray, stock: np.ndarray, shares: np.ndarray) -> None:
        key = borrower * self.n_stocks + stock
        row, found = self._rows(key)
        missing = ~found
        if missing.any():
            new = np.unique(key[missing])
            at = np.searchsorted(self.key, new)
            self.key = np.insert(self.key, at, new)
            self.owed = np.insert(self.owed, at, 0)
            self.recall_due = np.insert(self.recall_due, at, 0)
            row = np.searchsorted(self.key, key)
        np.add.at(self.owed, row, shares)

    def _rows(self, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n,) row of each loan ``key`` (0 where there is none) and (n,) whether there is
        one."""
        row = sorted_rows(self.key, key)  # (n,) -1 where none
        found = row >= 0
        return np.maximum(row, 0), found


@entry
@numba.njit(cache=True, nogil=True)
def _owed_value(
    key: np.ndarray, owed: np.ndarray, n_stocks: int, borrowers: np.ndarray, price_fen: np.ndarray
) -> np.ndarray:
    """(r,) CNY owed by each of ``borrowers`` (r,) on the loans ``key``, ``owed`` (L,) (sorted
    by key), at ``price_fen`` (S,): ``owed * price / 100`` per open loan, added in key order."""
    value = np.zeros(borrowers.shape[0])  # (r,)
    for i in range(borrowers.shape[0]):
        lo = np.searchsorted(key, borrowers[i] * n_stocks)
        hi = np.searchsorted(key, (borrowers[i] + 1) * n_stocks)
        for j in range(lo, hi):
            if owed[j] > 0:
                value[i] += owed[j] * price_fen[key[j] % n_stocks] / 100.0
    return value
