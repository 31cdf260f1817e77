"""The clearing house: cash and share accounts, kept in integers.

Cash is in fen (0.01 CNY) and holdings in shares, both ``int64``, so every
trade moves exactly what it should and the books balance to the fen. Holdings
are sparse: a sorted table of ``(account, stock)`` keys, because an investor
holds a handful of stocks and a fund a few hundred, never the whole market.
Money that enters or leaves the system (subscriptions, redemptions, interest)
goes through :meth:`Ledger.external_cash`, which records it, so conservation
can be checked: ``cash.sum() == initial cash + recorded external flows``.
"""

from __future__ import annotations

import numba
import numpy as np

from model.aot import entry


def consecutive(ids: np.ndarray) -> bool:
    """Whether ``ids`` ascend one by one (a population's accounts do).

    Such a block is one slice of a table sorted by account: two searches find it.
    Asked some twenty times a step of 20,000 retail accounts, so the scan is compiled
    (``np.diff`` would build and test a temporary array each time).
    """
    return bool(ids.size and ids[-1] - ids[0] + 1 == ids.size and _ascend_by_one(ids))


def sorted_rows(keys: np.ndarray, key: np.ndarray) -> np.ndarray:
    """Row of each of ``key`` in the ascending ``keys`` (k,), -1 where it is absent: one
    bisection, without padding ``keys`` for the keys past the last one."""
    if keys.size == 0:
        return np.full(key.shape, -1, dtype=np.int64)
    row = np.minimum(np.searchsorted(keys, key), keys.size - 1)
    return np.where(keys[row] == key, row, -1)  # a key past the last finds a smaller one


@entry
@numba.njit(cache=True, nogil=True)
def _ascend_by_one(ids: np.ndarray) -> bool:
    """Whether each of ``ids`` (n,) is the one before it plus one.

    Every step is looked at, with no exit at the first that is not: a loop without a
    branch is vectorized, 3 against 20 us for a block of 20,000 retail accounts (the
    usual answer is yes, which an early exit could not shorten anyway).
    """
    off = 0  # any bit set: some step is not +1
    for i in range(1, ids.shape[0]):
        off |= ids[i] - ids[i - 1] - 1
    return off == 0


# Up to this many keys, rows_of gallops from key to key (compiled); beyond, np.searchsorted's
# bisection is faster for scattered keys (measured: 10,000 basket keys 0.22 ms vs 0.29 ms;
# 1,000 maker keys 0.035 ms vs 0.014 ms), but not for ascending ones, where each gallop is
# a few rows (50,000 loan keys in an 874,000-row table: 1.3 ms vs 2.0 ms).
_GALLOP_MAX_KEYS = 4096


class Ledger:
    """Accounts of every agent, and the positions they hold."""

    def __init__(self, n_stocks: int) -> None:
        self.n_stocks = n_stocks
        self.cash = np.zeros(0, dtype=np.int64)  # (A,) fen
        self.credit = np.zeros(0, dtype=np.int64)  # (A,) fen the account may borrow
        # Sparse holdings, sorted by key = account * n_stocks + stock: one position per
        # column, columns ``_lo .. _lo + _n_rows - 1`` of a table with room to spare on
        # both sides, so new positions are inserted in place (new ~1 MB arrays at every
        # insertion would cost page faults, every step), moving the columns before them
        # or those after them, whichever are fewer (:func:`_insert_rows`).
        self._table = np.zeros((3, 0), dtype=np.int64)  # (3, capacity) key, shares, bought
        self._lo = 0
        self._n_rows = 0
        # Futures: contracts per account (long > 0) and the mark each was last valued at.
        self.n_futures = 0
        self.fut_pos = np.zeros((0, 0), dtype=np.int64)  # (A, F)
        self.fut_mark = np.zeros(0, dtype=np.int64)  # (F,) ticks
        self.fut_tick_value = np.zeros(0, dtype=np.int64)  # (F,) fen per tick per contract
        self.fut_cost = np.zeros((0, 0), dtype=np.int64)  # (A, F) ticks paid for fills, signed
        self.variation_received = np.zeros(0, dtype=np.int64)  # (A,) fen of variation margin
        self.external = 0  # net fen that entered from outside the system
        self.initial_cash = 0
        self.initial_shares = np.zeros(n_stocks, dtype=np.int64)

    # -- holdings table -------------------------------------------------------------------
    @property
    def key(self) -> np.ndarray:
        """(P,) sorted keys of the held positions, ``account * n_stocks + stock``."""
        return self._table[0, self._lo : self._lo + self._n_rows]

    @property
    def shares(self) -> np.ndarray:
        """(P,) shares held per position."""
        return self._table[1, self._lo : self._lo + self._n_rows]

    @property
    def bought_today(self) -> np.ndarray:
        """(P,) shares bought today per position: T+1, not sellable until tomorrow."""
        return self._table[2, self._lo : self._lo + self._n_rows]

    # -- accounts -------------------------------------------------------------------------
    @property
    def n_accounts(self) -> int:
        return self.cash.shape[0]

    def open_accounts(
        self, cash_fen: np.ndarray, credit_fen: np.ndarray | None = None
    ) -> np.ndarray:
        """Open one account per entry of ``cash_fen``; return their ids."""
        cash_fen = np.asarray(cash_fen, dtype=np.int64)
        first = self.n_accounts
        self.cash = np.concatenate([self.cash, cash_fen])
        credit = np.zeros_like(cash_fen) if credit_fen is None else np.asarray(credit_fen, np.int64)
        self.credit = np.concatenate([self.credit, credit])
        self.initial_cash += int(cash_fen.sum())
        grow = np.zeros((cash_fen.shape[0], self.n_futures), dtype=np.int64)
        self.fut_pos = np.concatenate([self.fut_pos.reshape(first, self.n_futures), grow])
        self.fut_cost = np.concatenate([self.fut_cost.reshape(first, self.n_futures), grow])
        self.variation_received = np.concatenate([self.variation_received, np.zeros_like(cash_fen)])
        return np.arange(first, self.n_accounts, dtype=np.int64)

    def endow(self, account: np.ndarray, stock: np.ndarray, shares: np.ndarray) -> None:
        """Give initial holdings (before trading starts): they count as the float."""
        shares = np.asarray(shares, np.int64)
        self._add_positions(account, stock, shares, np.zeros(shares.shape, bool))
        np.add.at(self.initial_shares, stock, shares)

    def external_cash(self, account: np.ndarray, fen: np.ndarray) -> None:
        """Move cash in (+) or out (-) of the system, and record it."""
        fen = np.asarray(fen, dtype=np.int64)
        np.add.at(self.cash, account, fen)
        self.external += int(fen.sum())

    # -- futures -------------------------------------------------------------------------
    def list_futures(self, mark_ticks: np.ndarray, tick_value_fen: np.ndarray) -> None:
        """Start clearing futures contracts at ``mark_ticks`` (before any position exists)."""
        self.n_futures = len(mark_ticks)
        self.fut_pos = np.zeros((self.n_accounts, self.n_futures), dtype=np.int64)
        self.fut_cost = np.zeros_like(self.fut_pos)
        self.fut_mark = np.asarray(mark_ticks, dtype=np.int64).copy()
        self.fut_tick_value = np.asarray(tick_value_fen, dtype=np.int64)

    def futures_position(self, accounts: np.ndarray) -> np.ndarray:
        """(len(accounts), F) contracts held, long positive."""
        return self.fut_pos[np.asarray(accounts, dtype=np.int64)]

    def mark_futures(self, mark_ticks: np.ndarray) -> np.ndarray:
        """Variation margin: pay every account its P&L from the old mark to ``mark_ticks``.

        Longs and shorts net to zero, so the payments sum to zero exactly. Returns (A,) fen paid.
        """
        move = (np.asarray(mark_ticks, np.int64) - self.fut_mark) * self.fut_tick_value  # (F,)
        paid = _pay_variation(self.fut_pos, move, self.cash, self.variation_received)  # (A,)
        self.fut_mark = np.asarray(mark_ticks, np.int64).copy()
        return paid

    def settle_futures(self, account: np.ndarray, contract: np.ndarray, signed: np.ndarray) -> None:
        """Book futures fills at the current mark (the clearing price): no cash moves.

        The fills' cost at that mark is recorded, so variation margin can be reconciled.
        """
        np.add.at(self.fut_pos, (account, contract), signed)
        np.add.at(self.fut_cost, (account, contract), signed * self.fut_mark[contract])

    def futures_margin_used(self, accounts: np.ndarray, margin: float) -> np.ndarray:
        """(len(accounts),) fen of margin the accounts' futures positions tie up."""
        notional = np.abs(self.fut_pos[accounts]) @ (self.fut_mark * self.fut_tick_value)
        return margin * notional

    # -- holdings -------------------------------------------------------------------------
    def rows_of(self, account: np.ndarray, stock: np.ndarray) -> np.ndarray:
        """Row of each (account, stock) in the holdings table, -1 where none."""
        key = np.asarray(account, np.int64) * self.n_stocks + np.asarray(stock, np.int64)
        if key.size <= _GALLOP_MAX_KEYS or _ascending(key.ravel()):
            return _rows_of(self.key, key.ravel()).reshape(key.shape)
        return sorted_rows(self.key, key)

    def holding(self, account: np.ndarray, stock: np.ndarray) -> np.ndarray:
        """Shares held per (account, stock), zero where none."""
        row = self.rows_of(account, stock)
        return np.where(row >= 0, self.shares[np.maximum(row, 0)], 0)

    def account_holdings(self, account: int) -> np.ndarray:
        """(S,) shares ``account`` holds of every stock, zero where none: :meth:`holding` of
        the account and each stock, read off the account's slice of the table rather than
        looked up stock by stock (the lending desk caps each loan by the lender's holding)."""
        first = account * self.n_stocks
        lo, hi = np.searchsorted(self.key, [first, first + self.n_stocks])
        held = np.zeros(self.n_stocks, dtype=np.int64)  # (S,)
        held[self.key[lo:hi] - first] = self.shares[lo:hi]
        return held

    def basket_holding(
        self, accounts: np.ndarray, basket: np.ndarray, order: np.ndarray
    ) -> np.ndarray:
        """(r, B) shares each of ``accounts`` (r,) holds of each stock of its ``basket`` row,
        zero where none: :meth:`holding` of the (r * B) pairs.

        ``order`` (r, B) sorts each basket row (its argsort), so the lookups walk each
        account's part of the table in key order, a row or two apart, instead of
        bisecting it 250,000 times a step (500 products of 500 stocks at full scale).
        """
        return _basket_holding(
            self.key,
            self.shares,
            np.asarray(accounts, np.int64),
            np.asarray(basket, np.int64),
            np.asarray(order, np.int64),
            self.n_stocks,
        )

    def sellable(self, account: np.ndarray, stock: np.ndarray) -> np.ndarray:
        """Shares that may be sold now: held, minus bought today (T+1)."""
        return self.holding_and_sellable(account, stock)[1]

    def holding_and_sellable(
        self, account: np.ndarray, stock: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`holding` and :meth:`sellable` of the same pairs, from one lookup."""
        row = self.rows_of(account, stock)
        safe = np.maximum(row, 0)
        shares = self.shares[safe]
        return (
            np.where(row >= 0, shares, 0),
            np.where(row >= 0, shares - self.bought_today[safe], 0),
        )

    def positions(self, accounts: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """(account, stock, shares, sellable) of held positions, optionally of some accounts."""
        key, shares, today = self.key, self.shares, self.bought_today
        if accounts is None:
            return _held(key, shares, today, self.n_stocks)
        accounts = np.asarray(accounts, dtype=np.int64)
        if consecutive(accounts):
            # A block of consecutive accounts (every population's) is one slice of the
            # sorted table: no scan of the whole ledger.
            lo, hi = self._block_rows(accounts)
            return _held(key[lo:hi], shares[lo:hi], today[lo:hi], self.n_stocks)
        account, stock = np.divmod(key, self.n_stocks)
        keep = (shares != 0) & np.isin(account, accounts)
        return account[keep], stock[keep], shares[keep], (shares - today)[keep]

    def positions_of(self, accounts: np.ndarray) -> tuple[np.ndarray, ...]:
        """(slot, stock, shares, sellable) of the held positions of ``accounts``, by slot.

        ``slot`` indexes into ``accounts`` (sorted, distinct), so callers sum per account
        with one bincount and no search of their own. A consecutive block (a population's
        accounts) is one slice of the table; otherwise each account's slice is found by
        binary search: O(r log P) rather than a scan, which matters for a single account.
        """
        accounts = np.asarray(accounts, dtype=np.int64)
        if consecutive(accounts):
            account, stock, shares, sellable = self.positions(accounts)
            return account - accounts[0], stock, shares, sellable
        return _account_positions(self.key, self.shares, self.bought_today, accounts, self.n_stocks)

    def value_fen(self, accounts: np.ndarray, price_fen: np.ndarray) -> np.ndarray:
        """(r,) float64 fen each account's holdings are worth at ``price_fen`` (int64, >= S).

        Each account's positions are summed in table order, as a bincount over
        :meth:`positions_of` would; a consecutive block (a population's accounts) is
        summed in one compiled pass over its slice, with no position arrays built.
        """
        return self._value(accounts, price_fen, 1.0)

    def value_cny(self, accounts: np.ndarray, price_fen: np.ndarray) -> np.ndarray:
        """(r,) float64 CNY each account's holdings are worth at ``price_fen`` (int64, >= S).

        The sum of ``shares * price / 100.0`` per position, in table order: the floats
        of a bincount over :meth:`positions_of`, which a consecutive block (a
        population's accounts) gets from one compiled pass over its slice instead.
        """
        return self._value(accounts, price_fen, 100.0)

    def value_and_positions(
        self, accounts: np.ndarray, price_fen: np.ndarray, picked: np.ndarray
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """:meth:`value_fen` of ``accounts`` (r,) and :meth:`positions_of` of
        ``accounts[picked]`` (``picked`` (k,) ascending indices into ``accounts``).

        Retail values every investor and then reads the positions of the few who trade:
        for a consecutive block both come from one walk of its slice
        (:func:`_slice_value_and_positions`), which passes the picked accounts' rows.
        """
        accounts = np.asarray(accounts, dtype=np.int64)
        picked = np.asarray(picked, dtype=np.int64)
        if not consecutive(accounts):
            return self.value_fen(accounts, price_fen), self.positions_of(accounts[picked])
        lo, hi = self._block_rows(accounts)
        value, *positions = _slice_value_and_positions(
            self.key[lo:hi],
            self.shares[lo:hi],
            self.bought_today[lo:hi],
            np.asarray(price_fen, np.int64),
            self.n_stocks,
            accounts[0],
            accounts.shape[0],
            picked,
        )
        return value, tuple(positions)

    def _block_rows(self, accounts: np.ndarray) -> tuple[int, int]:
        """First and one-past-last row of a consecutive block of accounts in the table."""
        first = accounts[0] * self.n_stocks
        lo, hi = np.searchsorted(self.key, [first, (accounts[-1] + 1) * self.n_stocks])
        return int(lo), int(hi)

    def _value(self, accounts, price_fen, unit: float) -> np.ndarray:
        """Holdings of ``accounts`` at ``price_fen`` in fen (``unit`` 1) or CNY (100)."""
        accounts = np.asarray(accounts, dtype=np.int64)
        if not consecutive(accounts):
            slot, stock, shares, _ = self.positions_of(accounts)
            value = shares * price_fen[stock] / unit
            return np.bincount(slot, value, minlength=accounts.shape[0])
        lo, hi = self._block_rows(accounts)
        return _slice_value(
            self.key[lo:hi],
            self.shares[lo:hi],
            np.asarray(price_fen, np.int64),
            self.n_stocks,
            accounts[0],
            accounts.shape[0],
            unit,
        )

    def shares_by_stock(self) -> np.ndarray:
        """(S,) total shares held per stock, across all accounts."""
        _, stock = np.divmod(self.key, self.n_stocks)
        return np.bincount(stock, self.shares, minlength=self.n_stocks).astype(np.int64)

    def _add_positions(
        self, account: np.ndarray, stock: np.ndarray, delta: np.ndarray, bought: np.ndarray
    ) -> None:
        """Add ``delta`` shares to each (account, stock); ``bought`` marks T+1-locked purchases."""
        key = np.asarray(account, np.int64) * self.n_stocks + np.asarray(stock, np.int64)
        lo, n, k = self._lo, self._n_rows, key.shape[0]
        capacity = self._table.shape[1]
        spare = capacity - n  # columns free, left and right
        short = min(lo, spare - lo)  # on the side with less room
        if spare < k or (short < k and 4 * short < spare):
            # Room for every key to be new, and on both sides: the positions are copied to
            # the middle of the table, which doubles (to twice what the positions and keys
            # need, as when it only grew at its end) if it has less room than keys.
            capacity = capacity if spare >= k else 2 * (n + k)
            table = np.zeros((3, capacity), dtype=np.int64)
            start = (capacity - n) // 2
            table[:, start : start + n] = self._table[:, lo : lo + n]
            self._table, self._lo = table, start
        self._lo, self._n_rows = _add_positions_compiled(
            self._table,
            self._lo,
            self._n_rows,
            key,
            np.asarray(delta, np.int64),
            np.asarray(bought, np.bool_),
        )

    # -- settlement -----------------------------------------------------------------------
    def settle(
        self,
        account: np.ndarray,
        stock: np.ndarray,
        signed_shares: np.ndarray,
        price_fen: np.ndarray,
    ) -> None:
        """Book fills: buyers (+shares) pay ``shares * price``, sellers receive it.

        Each fill's cost comes off its account's cash in integers, one fill at a time: a
        float bincount over every account, rounded back, was four passes over the (A,)
        arrays for the same sums (whole fen, exact in float64 below 2**53).
        """
        signed_shares = np.asarray(signed_shares, np.int64)
        cost = signed_shares * np.asarray(price_fen, np.int64)  # (m,) fen
        np.subtract.at(self.cash, np.asarray(account, np.int64), cost)
        self._add_positions(account, stock, signed_shares, signed_shares > 0)

    def transfer(
        self,
        giver: np.ndarray,
        taker: np.ndarray,
        stock: np.ndarray,
        shares: np.ndarray,
        *,
        locked: bool,
    ) -> None:
        """Move shares between accounts outside the market (a loan or its return).

        ``locked`` shares cannot be sold by the taker until tomorrow.
        """
        shares = np.asarray(shares, np.int64)
        n = shares.shape[0]
        self._add_positions(
            np.concatenate([giver, taker]),
            np.concatenate([stock, stock]),
            np.concatenate([-shares, shares]),
            np.concatenate([np.zeros(n, bool), np.full(n, locked)]),
        )

    def new_day(self) -> None:
        """Overnight: yesterday's purchases become sellable; empty positions are dropped."""
        self._n_rows = _drop_empty(self._table, self._lo, self._n_rows)

    # -- invariants -----------------------------------------------------------------------
    def conservation_error(self) -> tuple[int, np.ndarray]:
        """(cash drift in fen, per-instrument drift); all zero when the books balance.

        The instrument drift holds each stock's shares held minus its float, then each
        futures contract's net open position (longs minus shorts, which must be zero).
        """
        cash_drift = int(self.cash.sum()) - self.initial_cash - self.external
        share_drift = self.shares_by_stock() - self.initial_shares
        return cash_drift, np.concatenate([share_drift, self.fut_pos.sum(axis=0)])


@entry
@numba.njit(cache=True, nogil=True)
def _ascending(key: np.ndarray) -> bool:
    """Whether ``key`` (n,) never decreases (stops at the first that does)."""
    i = 1
    while i < key.shape[0] and key[i] >= key[i - 1]:
        i += 1
    return i >= key.shape[0]


@entry
@numba.njit(cache=True, nogil=True)
def _pay_variation(
    fut_pos: np.ndarray, move: np.ndarray, cash: np.ndarray, received: np.ndarray
) -> np.ndarray:
    """(A,) fen each account gains, ``fut_pos (A, F) @ move (F,)``, added to ``cash`` and
    ``received`` (A,) in place: one pass, where numpy's integer matmul and two adds took
    three over every account each step.

    Only the accounts that gain or lose have ``cash`` and ``received`` written: a few
    hundred of some 22,000 hold futures, and adding the others' zeros dirtied two (A,)
    arrays a step for nothing (in a run 125-132 against 134-184 us a step; a ``paid``
    zeroed first and written where not zero was slower, 161-182 us).
    """
    paid = np.empty(fut_pos.shape[0], np.int64)
    for a in range(fut_pos.shape[0]):
        total = 0
        for f in range(fut_pos.shape[1]):
            total += fut_pos[a, f] * move[f]
        paid[a] = total
        if total != 0:
            cash[a] += total
            received[a] += total
    return paid


@numba.njit(cache=True, nogil=True, inline="always")
def _walk_slice(
    key: np.ndarray,
    shares: np.ndarray,
    price_fen: np.ndarray,
    n_stocks: int,
    first: int,
    unit: float,
    value: np.ndarray,
    bound: np.ndarray,
) -> None:
    """Fill ``value`` (n_accounts,) with the sum of ``shares * price_fen[stock] / unit`` per
    account of a slice and, when ``bound`` has n_accounts + 1 entries (not 0), ``bound[a]``
    with the slice's first row of account ``first + a`` (``bound[n_accounts]``: its length).

    The slice holds the keys of accounts ``first .. first + n_accounts - 1``; each position
    is added in key order, exactly as ``np.bincount(slot, shares * price / unit)`` adds
    them (with ``unit`` 1 the division is exact: fen, so it is skipped). Keys are sorted,
    so the account steps up as the keys pass its end: no integer division (slow) at all.
    Each account's sum runs in a local and is stored once, when its keys end: added into
    the array, every addition waited on the store of the one before (retail's 100,000
    positions a step, 130 us on a captured state, where it took 180).
    """
    mark = bound.shape[0] > 0
    if mark:
        bound[0] = 0
    slot, end_key, total = 0, (first + 1) * n_stocks, 0.0  # the current key's slot, its end
    for i in range(key.shape[0]):
        if key[i] >= end_key:
            value[slot] = total
            total = 0.0
            while key[i] >= end_key:
                slot += 1
                end_key += n_stocks
                if mark:
                    bound[slot] = i
        if shares[i] != 0:
            fen = shares[i] * price_fen[key[i] - end_key + n_stocks]
            total += fen if unit == 1.0 else fen / unit
    if key.shape[0]:
        value[slot] = total
    if mark:
        bound[slot + 1 :] = key.shape[0]


@entry
@numba.njit(cache=True, nogil=True)
def _slice_value(
    key: np.ndarray,
    shares: np.ndarray,
    price_fen: np.ndarray,
    n_stocks: int,
    first: int,
    n_accounts: int,
    unit: float,
) -> np.ndarray:
    """(n_accounts,) float64 sum of ``shares * price_fen[stock] / unit`` per account of a
    slice of accounts ``first ..`` (:func:`_walk_slice`)."""
    value = np.zeros(n_accounts)
    _walk_slice(key, shares, price_fen, n_stocks, first, unit, value, np.empty(0, np.int64))
    return value


@entry
@numba.njit(cache=True, nogil=True)
def _slice_value_and_positions(
    key: np.ndarray,
    shares: np.ndarray,
    bought_today: np.ndarray,
    price_fen: np.ndarray,
    n_stocks: int,
    first: int,
    n_accounts: int,
    picked: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_slice_value` in fen of the slice's accounts, and (slot, stock, shares,
    sellable) of the held positions of the ``picked`` (k,) ones (ascending, 0 ..
    n_accounts - 1), ``slot`` indexing into ``picked``: :meth:`Ledger.positions_of`.

    The walk that values every account notes where each account's rows start, so the
    picked accounts' rows are read off those bounds: searching each one in the table
    again missed the cache for every account (retail's active 6,000 of 100,000 at full
    scale, 3.9 ms a step, where the walk already passes them).
    """
    value = np.zeros(n_accounts)
    bound = np.empty(n_accounts + 1, np.int64)  # (n_accounts + 1,) first row of each
    _walk_slice(key, shares, price_fen, n_stocks, first, 1.0, value, bound)
    n = 0
    for j in range(picked.shape[0]):
        for row in range(bound[picked[j]], bound[picked[j] + 1]):
            n += shares[row] != 0
    slot = np.empty(n, np.int64)
    stock = np.empty(n, np.int64)
    held = np.empty(n, np.int64)
    sellable = np.empty(n, np.int64)
    k = 0
    for j in range(picked.shape[0]):
        first_key = (first + picked[j]) * n_stocks
        for row in range(bound[picked[j]], bound[picked[j] + 1]):
            if shares[row] != 0:
                slot[k], stock[k] = j, key[row] - first_key
                held[k], sellable[k] = shares[row], shares[row] - bought_today[row]
                k += 1
    return value, slot, stock, held, sellable


@entry
@numba.njit(cache=True, nogil=True)
def _held(
    key: np.ndarray, shares: np.ndarray, bought_today: np.ndarray, n_stocks: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(account, stock, shares, sellable) of the rows of a table slice that hold shares.

    One pass instead of a divmod, a mask and four selections over the slice; keys are
    sorted, so the account is divided out once and then steps up as the keys pass its
    end (integer division is slow).
    """
    n = 0
    for i in range(key.shape[0]):
        n += shares[i] != 0
    account = np.empty(n, np.int64)
    stock = np.empty(n, np.int64)
    held = np.empty(n, np.int64)
    sellable = np.empty(n, np.int64)
    a = key[0] // n_stocks if key.shape[0] else 0  # the account of the current key
    first_key, j = a * n_stocks, 0  # its first key; the next output row
    for i in range(key.shape[0]):
        while key[i] >= first_key + n_stocks:
            a += 1
            first_key += n_stocks
        if shares[i] != 0:
            account[j], stock[j] = a, key[i] - first_key
            held[j], sellable[j] = shares[i], shares[i] - bought_today[i]
            j += 1
    return account, stock, held, sellable


@numba.njit(cache=True, nogil=True, inline="always")
def _bisect(table_key: np.ndarray, k: int, lo: int, hi: int) -> int:
    """Where ``k`` goes in ``table_key[lo:hi]`` (side left), known to lie in ``lo .. hi``."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if table_key[mid] < k:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, nogil=True)
def search_from(table_key: np.ndarray, k: int, lo: int) -> int:
    """Where ``k`` goes in the sorted ``table_key`` (``np.searchsorted``, side left), given
    that every row before ``lo`` holds a smaller key.

    Keys looked up one after another mostly ascend (an account's stocks, then the next
    account's): passing the last answer as ``lo`` makes each search a gallop over a few
    rows, where a bisection of the whole table would miss the cache at most of its levels.
    """
    n_rows, width = table_key.shape[0], 1
    hi = lo + width
    while hi < n_rows and table_key[hi] < k:
        lo = hi + 1
        width *= 2
        hi = lo + width
    hi = min(hi, n_rows)
    return _bisect(table_key, k, lo, hi)


@numba.njit(cache=True, nogil=True)
def search_near(table_key: np.ndarray, k: int, hint: int) -> int:
    """Where ``k`` goes in the sorted ``table_key`` (``np.searchsorted``, side left),
    galloping from ``hint`` (0 .. len) up or down.

    Fills and orders come account by account but their stocks in no order, so the next
    key is mostly a few rows from the last answer, above it or below: a gallop both
    ways finds it there, where :func:`search_from` must bisect the whole table for
    every key below the last.
    """
    if hint < table_key.shape[0] and table_key[hint] < k:
        return search_from(table_key, k, hint + 1)
    hi, width = hint, 1  # the answer is at most ``hi``
    while True:
        lo = hi - width
        if lo < 0:
            lo = 0
            break
        if table_key[lo] < k:
            lo += 1
            break
        hi = lo
        width *= 2
    return _bisect(table_key, k, lo, hi)


@entry
@numba.njit(cache=True, nogil=True)
def _rows_of(table_key: np.ndarray, key: np.ndarray) -> np.ndarray:
    """(n,) row of each of ``key`` (n,) in the sorted ``table_key``, -1 where absent.

    Callers look up an account's stocks together, so each search starts at the last
    answer (:func:`search_near`) rather than bisecting the whole table.
    """
    row = np.empty(key.shape[0], np.int64)
    at = 0
    for i in range(key.shape[0]):
        at = search_near(table_key, key[i], at)
        row[i] = at if at < table_key.shape[0] and table_key[at] == key[i] else -1
    return row


@entry
@numba.njit(cache=True, nogil=True)
def _basket_holding(
    table_key: np.ndarray,
    table_shares: np.ndarray,
    accounts: np.ndarray,
    basket: np.ndarray,
    order: np.ndarray,
    n_stocks: int,
) -> np.ndarray:
    """(r, B) shares held of ``basket[i, j]`` by ``accounts[i]``, looked up in the order
    ``order[i]`` (ascending stock).

    Each account's first row is searched for (from the last answer); its basket's keys
    then ascend through its slice of the table, row by row: a product holds most of its
    basket (at full scale some 500 rows for 500 stocks), so the next key is a row or two
    on, where a gallop and bisection per key cost twice the steps.
    """
    held = np.zeros(basket.shape, np.int64)  # (r, B)
    n_rows = table_key.shape[0]
    at = 0
    for i in range(basket.shape[0]):
        first = accounts[i] * n_stocks
        at = search_near(table_key, first, at)  # the account's first row
        for j in order[i]:
            k = first + basket[i, j]
            while at < n_rows and table_key[at] < k:
                at += 1
            if at < n_rows and table_key[at] == k:
                held[i, j] = table_shares[at]
    return held


@entry
@numba.njit(cache=True, nogil=True)
def _account_positions(
    table_key: np.ndarray,
    table_shares: np.ndarray,
    table_bought: np.ndarray,
    accounts: np.ndarray,
    n_stocks: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(slot, stock, shares, sellable) of the held rows of each of ``accounts`` (r,),
    ``slot`` indexing into ``accounts``: :meth:`Ledger.positions_of`, in two passes (count,
    then fill) instead of some ten numpy passes over searches, repeats and masks."""
    r, n_rows = accounts.shape[0], table_key.shape[0]
    lo = np.empty(r, np.int64)  # (r,) first and one-past-last row of each account
    hi = np.empty(r, np.int64)
    at, n = 0, 0
    for i in range(r):
        at = search_near(table_key, accounts[i] * n_stocks, at)
        lo[i] = at
        end = (accounts[i] + 1) * n_stocks
        while at < n_rows and table_key[at] < end:
            n += table_shares[at] != 0
            at += 1
        hi[i] = at
    slot = np.empty(n, np.int64)
    stock = np.empty(n, np.int64)
    shares = np.empty(n, np.int64)
    sellable = np.empty(n, np.int64)
    j = 0
    for i in range(r):
        first_key = accounts[i] * n_stocks
        for row in range(lo[i], hi[i]):
            if table_shares[row] != 0:
                slot[j], stock[j] = i, table_key[row] - first_key
                shares[j] = table_shares[row]
                sellable[j] = table_shares[row] - table_bought[row]
                j += 1
    return slot, stock, shares, sellable


_DIGIT_BITS = 13  # radix of key_order: 8,192 buckets, two passes for keys below 2**26


@numba.njit(cache=True, nogil=True)
def key_order(key: np.ndarray) -> np.ndarray:
    """(n,) stable argsort of non-negative ``key`` (n,): ``np.argsort(key, kind="stable")``.

    A least-significant-digit radix sort, a pass per 13 bits of the largest key. Looked
    up in this order, keys walk the holdings table one way, a few rows at a time: at
    full scale 95,000 fills in an 870,000-row table settle in about 5 ms instead of 8,
    where unsorted keys jump about the table (and out of the cache).
    """
    n = key.shape[0]
    order = np.arange(n)
    if n == 0:
        return order
    top = key.max()
    spare = np.empty(n, np.int64)
    size = 1 << _DIGIT_BITS
    count = np.empty(size + 1, np.int64)  # count[b + 1]: keys in bucket b, then starts
    shift = 0
    while (top >> shift) > 0:
        count[:] = 0
        for i in range(n):
            count[((key[i] >> shift) & (size - 1)) + 1] += 1
        for b in range(size):
            count[b + 1] += count[b]
        for i in range(n):
            j = order[i]
            b = (key[j] >> shift) & (size - 1)
            spare[count[b]] = j
            count[b] += 1
        order, spare = spare, order
        shift += _DIGIT_BITS
    return order


@entry
@numba.njit(cache=True, nogil=True)
def _add_positions_compiled(
    table: np.ndarray,
    lo: int,
    n_rows: int,
    key: np.ndarray,
    delta: np.ndarray,
    bought: np.ndarray,
) -> tuple[int, int]:
    """Add ``delta`` (n,) shares at each ``key`` (n,) to the positions ``table[:, lo:lo +
    n_rows]``; return their new first column and number.

    Each position is a column (key, shares, bought today). The keys are taken in sorted
    order (:func:`key_order`), so one forward walk finds them all; held positions get
    their sums at once, in integers, and keys not in the table yet get columns at their
    sorted places afterwards, in place (the table has room for n more, left and right
    together: :func:`_insert_rows`), then their sums. ``bought`` (n,) marks purchases made
    today (T+1).
    """
    table_key = table[0, lo : lo + n_rows]  # (P,)
    n = key.shape[0]
    new_key = np.empty(n, np.int64)  # (m,) keys not held yet, ascending
    at = np.empty(n, np.int64)  # (m,) the position each goes before
    missing = np.empty(n, np.int64)  # indices into key of the rows with a new key ...
    new_of = np.empty(n, np.int64)  # ... and which new key each is
    n_new, n_missing, row = 0, 0, 0
    for i in key_order(key):
        row = search_from(table_key, key[i], row)
        if row < n_rows and table_key[row] == key[i]:
            table[1, lo + row] += delta[i]
            if bought[i]:
                table[2, lo + row] += delta[i]
            continue
        if n_new == 0 or new_key[n_new - 1] != key[i]:
            new_key[n_new], at[n_new] = key[i], row
            n_new += 1
        missing[n_missing], new_of[n_missing] = i, n_new - 1
        n_missing += 1
    if n_new == 0:
        return lo, n_rows
    lo = _insert_rows(table, lo, n_rows, at[:n_new], new_key[:n_new])
    for m in range(n_missing):
        i, j = missing[m], new_of[m]
        column = lo + at[j] + j  # after the j new keys inserted before it
        table[1, column] += delta[i]
        if bought[i]:
            table[2, column] += delta[i]
    return lo, n_rows + n_new


@entry
@numba.njit(cache=True, nogil=True)
def _drop_empty(table: np.ndarray, lo: int, n_rows: int) -> int:
    """Drop the positions of ``table[:, lo:lo + n_rows]`` holding no shares and clear the
    day's purchases of those left, in place (from ``lo`` on); return how many are left.

    Clearing the purchases as the columns move saves a pass of its own over the table.
    """
    kept = 0
    for i in range(lo, lo + n_rows):
        if table[1, i] != 0:
            c = lo + kept
            table[0, c], table[1, c], table[2, c] = table[0, i], table[1, i], 0
            kept += 1
    return kept


@numba.njit(cache=True, nogil=True)
def _insert_rows(
    table: np.ndarray, lo: int, n_rows: int, at: np.ndarray, new_key: np.ndarray
) -> int:
    """Insert positions ``new_key`` (k,; no shares) before positions ``at`` (k,, ascending,
    0 .. n_rows) of ``table[:, lo:lo + n_rows]``, in place; return the new first column.

    The first p new keys are made room for by moving the positions before them left, the
    others by moving those after them right: the positions between the p-th and the next
    new key stay where they are, so p is taken at the widest such gap that the room on
    each side allows. Most steps' new positions are a few noise traders' and retail
    investors', whose accounts come early in the table: moving the 5,000 positions before
    them, not the 115,000 after (2.8 MB each way, every settlement), is what the room on
    the left is for. Where the positions end up does not depend on p.
    """
    k = at.shape[0]
    room_right = table.shape[1] - lo - n_rows
    p, moved = -1, 0
    for q in range(max(0, k - room_right), min(k, lo) + 1):
        left = at[q - 1] if q > 0 else 0  # positions moved left
        right = n_rows - at[q] if q < k else 0  # positions moved right
        if p < 0 or left + right < moved:
            p, moved = q, left + right
    new_lo = lo - p
    # Left, from the first: positions at[j - 1] .. at[j] - 1 move left by p - j, each to a
    # column already read.
    src = 0
    for j in range(p):
        for r in range(lo + src, lo + at[j]):
            d = r - (p - j)
            table[0, d], table[1, d], table[2, d] = table[0, r], table[1, r], table[2, r]
        c = new_lo + at[j] + j
        table[0, c], table[1, c], table[2, c] = new_key[j], 0, 0
        src = at[j]
    # Right, from the last new key back: positions at[j] .. stop - 1 move right by the
    # j - p + 1 new keys up to it, so nothing is overwritten before it has moved.
    stop = n_rows
    for j in range(k - 1, p - 1, -1):
        shift = j - p + 1
        for r in range(lo + stop - 1, lo + at[j] - 1, -1):
            d = r + shift
            table[0, d], table[1, d], table[2, d] = table[0, r], table[1, r], table[2, r]
        c = new_lo + at[j] + j
        table[0, c], table[1, c], table[2, c] = new_key[j], 0, 0
        stop = at[j]
    return new_lo
