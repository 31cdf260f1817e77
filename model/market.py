"""The exchange: admits orders, keeps the resting book, clears it and settles.

Orders are day orders: they rest on the book across the day's session slices
until filled or cancelled, and expire at the close. Each slice every stock
clears one call auction (model.kernel). The exchange refuses what an account
cannot honour: a sell beyond the shares it may sell today (T+1) or a buy beyond
its cash and credit, counting what it already has resting on the book.
"""

from __future__ import annotations

import numba
import numpy as np

from model.aot import entry
from model.book import (
    append_admitted,
    resting_rows,
    split_fills,
    withdraw_blocks,
    withdraw_share,
    within_limits,
)
from model.futures import FuturesSpec
from model.kernel import Clearing, Grid, clear
from model.ledger import Ledger, consecutive, key_order, search_from
from model.orders import FORCED, PANIC, Orders
from model.universe import Universe

_NONE = np.zeros(0, dtype=bool)  # "nothing withdrawn yet", for withdraw_blocks


class Market:
    """Exchange state: price grid, resting book, prices, and the clearing house.

    Instruments ``0 .. S-1`` are the stocks; index futures, when listed, follow them
    (``S .. S+F-1``) and clear in the same kernel, priced in ticks, sized in contracts.
    """

    def __init__(
        self,
        universe: Universe,
        ledger: Ledger,
        n_levels: int,
        lot: int,
        base_var: float,
        futures: FuturesSpec | None = None,
        futures_limit: float = 0.10,
        futures_price0: np.ndarray | None = None,
        futures_margin: float = 0.12,
    ) -> None:
        self.universe = universe
        self.ledger = ledger
        self.n_levels = n_levels
        self.lot = lot
        self.n_stocks = n = universe.n
        self.futures = futures
        self.futures_margin = futures_margin
        price0, limit = universe.price0, universe.limit
        if futures is not None:
            price0 = np.concatenate([price0, np.asarray(futures_price0, dtype=np.int64)])
            limit = np.concatenate([limit, np.full(len(futures_price0), futures_limit)])
            ledger.list_futures(futures_price0, futures.tick_value_fen)
        self.limit = limit  # (I,) daily limit per instrument
        self.prev_close = price0.copy()  # (I,) fen for stocks, ticks for futures
        self.last = price0.copy()  # (I,) last clearing price
        self._instruments = np.arange(self.last.shape[0])  # (I,) every instrument's index
        self.grid = Grid.from_close(self.prev_close, self.limit, n_levels)
        self._book = Orders.empty()
        self._book_level = np.zeros(0, dtype=np.int64)
        self._withdrawn: np.ndarray | None = None  # (len(_book),) bool, gone, not yet removed
        self._pending: list[tuple[int, int]] = []  # blocks of accounts withdrawn, not yet marked
        self.turnover = 0.0  # CNY of stock traded in the last slice
        self.forced_turnover = 0.0  # CNY of it filled for forced orders (``Orders.duress``)
        self.panic_turnover = 0.0  # CNY of it filled for retail's panic sales
        n_instr = price0.shape[0]
        self.volume = np.zeros(n_instr, dtype=np.int64)  # (I,) lots/contracts, last slice
        self.lock = np.zeros(n_instr, dtype=np.int8)  # (I,) limit lock after the last slice
        self.step_return = np.zeros(n_instr)  # (I,) log return of the last slice
        # Volatility trackers per stock: squared slice returns, fast and slow averages,
        # both starting at the variance a quiet market would have (``base_var``).
        self.var_fast = np.full(n, base_var)
        self.var_slow = np.full(n, base_var)
        self.last_clearing: Clearing | None = None
        self.last_fills: tuple[np.ndarray, ...] = (np.zeros(0, np.int64),) * 4
        self.variation_margin = np.zeros(0, dtype=np.int64)  # (A,) fen paid at the last mark
        self.futures_fills: tuple[np.ndarray, ...] = (np.zeros(0, np.int64),) * 3
        # Between an expiry's settlement and the next auction the futures' last prices are
        # the settlement at the index: the next contracts have no price of their own yet.
        self.rolled = False

    # -- the book -------------------------------------------------------------------------
    @property
    def book(self) -> Orders:
        """The resting orders, earliest first."""
        self._remove_withdrawn()
        return self._book

    @book.setter
    def book(self, orders: Orders) -> None:
        self._book, self._withdrawn, self._pending = orders, None, []

    @property
    def book_level(self) -> np.ndarray:
        """(len(book),) int64 grid level each resting order rests at."""
        self._remove_withdrawn()
        return self._book_level

    @book_level.setter
    def book_level(self, level: np.ndarray) -> None:
        self._book_level = level

    def _withdrawn_mask(self) -> np.ndarray | None:
        """(len(_book),) bool of the cancelled orders not yet removed (None: none).

        Populations cancel their blocks of accounts one after another; the blocks are
        marked here in one pass when something next asks, not in a pass each.
        """
        if self._pending:
            withdrawn = _NONE if self._withdrawn is None else self._withdrawn
            self._withdrawn = withdraw_blocks(self._book.account, self._pending_blocks(), withdrawn)
            self._pending = []
        return self._withdrawn

    def _pending_blocks(self) -> np.ndarray:
        """(k, 2) first and last account of each block cancelled since the book was marked."""
        return np.array(self._pending, dtype=np.int64).reshape(-1, 2)

    def _remove_withdrawn(self) -> None:
        """Drop the cancelled orders: once for a step's many cancels, not once per cancel."""
        withdrawn = self._withdrawn_mask()
        if withdrawn is not None:
            book = self._book
            rows = np.flatnonzero(~withdrawn & (book.lots > 0))  # off the step's path: numpy
            self._book, self._withdrawn = book.select(rows), None
            self._book_level = self._book_level[rows]

    # -- the day --------------------------------------------------------------------------
    def open_day(self) -> None:
        """New limits from yesterday's close; yesterday's orders have expired."""
        self.grid = Grid.from_close(self.prev_close, self.limit, self.n_levels)
        self.book = Orders.empty()
        self.book_level = np.zeros(0, dtype=np.int64)
        self.ledger.new_day()

    def close_day(self) -> None:
        self.prev_close = self.last.copy()

    # -- orders ---------------------------------------------------------------------------
    def limit_price(self, stock: np.ndarray, side: np.ndarray) -> np.ndarray:
        """Today's limit-up price for buys, limit-down for sells: the price of an order that
        must trade whatever it costs."""
        return np.where(side > 0, self.grid.upper[stock], self.grid.lower[stock])

    def submit(self, orders: Orders) -> Orders:
        """Admit what the accounts can honour, rest it on the book; return what was admitted.

        One compiled pass (:func:`_submit_compiled`) drops the withdrawn orders from the
        book, holds the new prices within today's limits, admits stock and futures orders
        and appends the admitted: a step's submission used to be five passes, each
        writing arrays the next one read.
        """
        if not len(orders):
            return orders
        book, grid, ledger = self._book, self.grid, self.ledger
        withdrawn = _NONE if self._withdrawn is None else self._withdrawn
        blocks = self._pending_blocks()
        columns, n_kept = _submit_compiled(
            *book.columns(),
            book.duress,
            self._book_level,
            withdrawn,
            blocks,
            *orders.columns(),
            orders.duress,
            grid.lower,
            grid.upper,
            grid.step,
            grid.n_active,
            ledger.key,
            ledger.shares,
            ledger.bought_today,
            ledger.cash + ledger.credit,
            ledger.fut_pos,
            ledger.fut_mark,
            ledger.fut_tick_value,
            self.n_stocks,
            self.lot,
            self.futures_margin,
        )
        *book_columns, level = columns
        self.book, self.book_level = Orders(*book_columns), level
        return Orders(*(column[n_kept:] for column in book_columns))  # the book's tail

    @property
    def n_resting(self) -> int:
        """``len(book)``, without compacting the book to count it."""
        withdrawn = self._withdrawn_mask()
        gone = 0 if withdrawn is None else int(np.count_nonzero(withdrawn))
        return self._book.account.shape[0] - gone

    def cancel(self, mask: np.ndarray) -> None:
        """Withdraw the resting orders where ``mask`` (shape of the book) is true.

        Orders already withdrawn but not yet removed stay in place: ``mask`` is spread
        over the others, so the book is compacted once a step, not once per cancel.
        """
        mask = np.asarray(mask, dtype=bool)
        withdrawn = self._withdrawn_mask()
        if withdrawn is None:
            self._withdrawn = mask
        else:
            spread = withdrawn.copy()
            spread[~withdrawn] = mask
            self._withdrawn = spread

    def cancel_accounts(self, accounts: np.ndarray) -> None:
        """Withdraw every resting order of ``accounts`` (ids in any order; a range is fastest)."""
        accounts = np.asarray(accounts)
        if not self._book.account.shape[0]:
            return
        # The book may hold withdrawn orders still: they stay withdrawn.
        if consecutive(accounts):  # a population's block: marked with the others pending
            self._pending.append((int(accounts[0]), int(accounts[-1])))
            return
        mine = np.isin(self._book.account, accounts)
        withdrawn = self._withdrawn_mask()
        self._withdrawn = mine if withdrawn is None else withdrawn | mine

    def cancel_share(self, accounts: np.ndarray, rate: float, rng: np.random.Generator) -> None:
        """Withdraw each resting order of ``accounts`` (a block of consecutive ids) with
        probability ``rate``: one uniform from ``rng`` per resting order, in book order.

        Cancels what ``cancel(np.isin(book.account, accounts) & (rng.random(n_resting) <
        rate))`` cancels, with the same draws, in one compiled pass over the book.
        """
        accounts = np.asarray(accounts)
        if accounts.size and not consecutive(accounts):
            raise ValueError("cancel_share takes a block of consecutive accounts")
        first, last = (int(accounts[0]), int(accounts[-1])) if accounts.size else (0, -1)
        uniform = rng.random(self.n_resting)  # resolves pending withdrawals first
        withdrawn = _NONE if self._withdrawn is None else self._withdrawn
        self._withdrawn = withdraw_share(self._book.account, withdrawn, first, last, uniform, rate)

    # -- clearing -------------------------------------------------------------------------
    def clear(self) -> Clearing:
        """One call auction in every instrument; settle fills; unfilled orders keep resting."""
        book, grid, n_stocks = self.book, self.grid, self.n_stocks
        ref = grid.nearest_level(self._instruments, self.last)
        result = clear(grid, book.stock, book.side, self.book_level, book.lots, ref)
        # One pass over the book for its fills, what is left of it and the forced sales.
        *stock_fills, fut_account, contract, fut_lots, left, duress_lot_fen = split_fills(
            book.account, book.stock, book.side, book.lots, book.duress, result.filled,
            result.price, n_stocks, self.lot,
        )  # fmt: skip
        self.ledger.settle(*stock_fills)
        self.last_fills = tuple(stock_fills)  # (account, stock, signed shares, price)

        new_last = np.where(result.volume > 0, result.price, self.last)
        if self.futures is not None:
            # A contract that did not trade is marked at the middle of its book.
            fut = slice(n_stocks, None)
            mid = self._book_mid(result)
            new_last[fut] = np.where((result.volume[fut] == 0) & (mid > 0), mid, new_last[fut])
            # Variation margin to the new marks first, then the fills join at that mark.
            self.variation_margin = self.ledger.mark_futures(new_last[n_stocks:])
            self.ledger.settle_futures(fut_account, contract, fut_lots)
            self.futures_fills = (fut_account, contract, fut_lots)

        # Orders filled in full count as withdrawn: they leave the book with the next step's
        # cancels, in one pass, instead of the book being compacted twice.
        self.book = Orders(book.account, book.stock, book.side, book.price, left, book.duress)
        self._withdrawn = left <= 0  # (m,) no lots left

        self.step_return = np.log(new_last / self.last)
        self.last = new_last
        self.volume = result.volume
        self.lock = result.lock
        self.turnover = (
            float(np.dot(result.volume[:n_stocks], result.price[:n_stocks])) * self.lot / 100.0
        )
        # Of it, what the orders sent under duress got, counted in the slice it fills: the
        # model's forced sales, and retail's panic sales apart. (Their lots times fen is
        # whole, so the sums are exact.)
        self.forced_turnover = float(duress_lot_fen[FORCED]) * self.lot / 100.0
        self.panic_turnover = float(duress_lot_fen[PANIC]) * self.lot / 100.0
        self._track_volatility()
        self.last_clearing = result
        self.rolled = False  # every contract has a price of its own again
        return result

    def _book_mid(self, result: Clearing) -> np.ndarray:
        """(F,) middle of each futures contract's best bid and ask before clearing, in ticks;
        0 if one-sided.

        One compiled pass over the contracts' levels (:func:`_book_mid_compiled`), where
        some fifteen numpy calls on the (F, L) slices were.
        """
        grid, fut = self.grid, slice(self.n_stocks, None)
        return _book_mid_compiled(
            result.bid_qty[fut],
            result.ask_qty[fut],
            grid.lower[fut],
            grid.upper[fut],
            grid.step[fut],
        )

    def settle_expiry(self, index_ticks: np.ndarray) -> None:
        """Expiry: the contracts settle to the index; positions roll on at that price, which
        is no market price of the next contracts (:attr:`rolled` until the next auction)."""
        self.last[self.n_stocks :] = index_ticks
        self.variation_margin = self.ledger.mark_futures(index_ticks)
        self.rolled = True

    def _track_volatility(self, fast: float = 0.03, slow: float = 0.003) -> None:
        r2 = self.step_return[: self.n_stocks] ** 2
        self.var_fast += fast * (r2 - self.var_fast)
        self.var_slow += slow * (r2 - self.var_slow)

    def vol_ratio(self) -> np.ndarray:
        """(S,) recent volatility over its long-run level; 1 in a quiet market."""
        return np.sqrt(self.var_fast / np.maximum(self.var_slow, 1e-12))

    def vol_stress(self) -> np.ndarray:
        """(S,) how far recent volatility runs above its long-run level; 0 in a quiet market.

        Liquidity providers divide their size by ``1 + aversion * stress``: the
        risk a position carries grows with volatility, so the same capital buys less.
        """
        return np.maximum(self.vol_ratio() - 1.0, 0.0)

    def caps(self) -> np.ndarray:
        """(S,) free-float caps in CNY at the last price."""
        return self.universe.caps(self.last[: self.n_stocks])


@entry
@numba.njit(cache=True, nogil=True)
def _submit_compiled(
    book_account: np.ndarray,
    book_stock: np.ndarray,
    book_side: np.ndarray,
    book_price: np.ndarray,
    book_lots: np.ndarray,
    book_duress: np.ndarray,
    book_level: np.ndarray,
    withdrawn: np.ndarray,
    blocks: np.ndarray,
    account: np.ndarray,
    stock: np.ndarray,
    side: np.ndarray,
    price: np.ndarray,
    lots: np.ndarray,
    duress: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    step: np.ndarray,
    n_active: np.ndarray,
    key: np.ndarray,
    shares: np.ndarray,
    bought_today: np.ndarray,
    buying_power: np.ndarray,
    fut_pos: np.ndarray,
    fut_mark: np.ndarray,
    tick_value: np.ndarray,
    n_stocks: int,
    lot: int,
    margin: float,
) -> tuple[tuple[np.ndarray, ...], int]:
    """:meth:`Market.submit` in one compiled call: the new book and how many of its rows rest
    from before.

    The book's rows still resting (:func:`model.book.resting_rows`: not withdrawn, not of
    an account in a withdrawn block, with lots) are read where they lie instead of being
    compacted first; the new orders' prices are held within the limits and their lots at
    zero or more (:func:`model.book.within_limits`), stock orders admitted
    (:func:`_admit_stock_compiled`), then futures orders (:func:`_admit_futures_compiled`),
    and the resting rows and the admitted orders written out as the new book
    (:func:`model.book.append_admitted`). Each part is what it was as a pass of its own.

    Args:
        book_*: (m,) the book as it lies, withdrawn rows included; book_level (m,) their
            grid levels; withdrawn: (m,) bool, or empty for none; blocks: (k, 2) first
            and last account of each block whose orders are withdrawn.
        account, stock, side, price, lots, duress: (n,) new orders, stocks and futures.
        lower, upper, step, n_active: (I,) the day's grid.
        key, shares, bought_today: (P,) the ledger's sorted holdings table.
        buying_power: (A,) fen, cash plus credit; fut_pos: (A, F); fut_mark, tick_value: (F,).

    Returns:
        The new book's (account, stock, side, price, lots, duress, level) columns, the
        resting rows first, and the number of those rows.
    """
    resting = resting_rows(book_account, book_lots, withdrawn, blocks)  # (r,)
    price, lots = within_limits(stock, price, lots, lower, upper)
    book = (book_account, book_stock, book_side, book_price, book_lots)
    admitted = _admit_stock_compiled(
        resting, *book, account, stock, side, price, lots, key, shares, bought_today,
        buying_power, n_stocks, lot,
    )  # fmt: skip
    _admit_futures_compiled(
        resting, *book, account, stock, side, price, lots, admitted, fut_pos, fut_mark,
        tick_value, buying_power, n_stocks, margin,
    )  # fmt: skip
    columns = append_admitted(
        resting, *book, book_duress, book_level, account, stock, side, price, admitted, duress,
        lower, upper, step, n_active,
    )  # fmt: skip
    return columns, resting.shape[0]


@numba.njit(cache=True, nogil=True)
def _admit_stock_compiled(
    resting: np.ndarray,
    book_account: np.ndarray,
    book_stock: np.ndarray,
    book_side: np.ndarray,
    book_price: np.ndarray,
    book_lots: np.ndarray,
    account: np.ndarray,
    stock: np.ndarray,
    side: np.ndarray,
    price: np.ndarray,
    lots: np.ndarray,
    key: np.ndarray,
    shares: np.ndarray,
    bought_today: np.ndarray,
    buying_power: np.ndarray,
    n_stocks: int,
    lot: int,
) -> np.ndarray:
    """Stock orders' admitted lots: sells within the sellable shares, buys within the buying power.

    A sell fits the (account, stock) holding's sellable shares, a buy its account's
    buying power (fen), less what resting orders and earlier new orders already
    claim. Every amount is a whole number of shares or fen far below 2**53, so these
    integer sums equal the float64 ones of the reference in ``tests/test_rules.py`` exactly.

    A sell's claim concerns its own holding alone, so the sells are taken by key
    (stable :func:`key_order`: resting ones first, then the new in time order, within
    a key), which walks the holdings table one way instead of jumping about it; the
    buys are taken in time order.

    Args:
        resting: (r,) the rows of the book still resting, ascending.
        book_*: (m,) the book; account, stock, side, price, lots: (n,) new orders
            (rows with ``stock >= n_stocks`` are futures, returned unchanged).
        key, shares, bought_today: (P,) the ledger's sorted holdings table.
        buying_power: (A,) fen, cash plus credit.
    """
    admitted = lots.copy()  # (n,)
    claimed_fen = np.zeros(buying_power.shape[0], np.int64)  # (A,) per account
    for i in resting:
        if book_stock[i] < n_stocks and book_side[i] > 0:
            claimed_fen[book_account[i]] += book_lots[i] * lot * book_price[i]
    for i in range(account.shape[0]):
        if stock[i] < n_stocks and side[i] > 0:
            need = lots[i] * lot * price[i]  # fen
            room = buying_power[account[i]] - claimed_fen[account[i]]
            claimed_fen[account[i]] += need
            # Most orders fit whole: their lots, without a division (the same integer).
            admitted[i] = lots[i] if room >= need else max(room, 0) // (lot * price[i])

    m = book_account.shape[0]
    sell = np.empty(m + account.shape[0], np.int64)  # resting sells (i), then new (m + i)
    n_sells = 0
    for i in resting:
        if book_stock[i] < n_stocks and book_side[i] < 0:
            sell[n_sells] = i
            n_sells += 1
    for i in range(account.shape[0]):
        if stock[i] < n_stocks and side[i] < 0:
            sell[n_sells] = m + i
            n_sells += 1
    sell = sell[:n_sells]
    sell_key = np.empty(n_sells, np.int64)
    for j in range(n_sells):
        i = sell[j]
        if i < m:
            sell_key[j] = book_account[i] * n_stocks + book_stock[i]
        else:
            sell_key[j] = account[i - m] * n_stocks + stock[i - m]
    n_rows = key.shape[0]
    row, claimed, last = 0, 0, -1  # shares claimed of the holding of key ``last``
    for j in key_order(sell_key):
        k = sell_key[j]
        if k != last:
            row, claimed, last = search_from(key, k, row), 0, k
        i = sell[j]
        if i < m:
            claimed += book_lots[i] * lot
            continue
        i -= m
        if row == n_rows or key[row] != k:
            admitted[i] = 0  # nothing held
            continue
        need = lots[i] * lot  # shares
        room = shares[row] - bought_today[row] - claimed
        claimed += need
        admitted[i] = lots[i] if room >= need else max(room, 0) // lot
    return admitted


@numba.njit(cache=True, nogil=True)
def _admit_futures_compiled(
    resting: np.ndarray,
    book_account: np.ndarray,
    book_stock: np.ndarray,
    book_side: np.ndarray,
    book_price: np.ndarray,
    book_lots: np.ndarray,
    account: np.ndarray,
    instrument: np.ndarray,
    side: np.ndarray,
    price: np.ndarray,
    lots: np.ndarray,
    admitted: np.ndarray,
    fut_pos: np.ndarray,
    fut_mark: np.ndarray,
    tick_value: np.ndarray,
    buying_power: np.ndarray,
    n_stocks: int,
    margin: float,
) -> None:
    """Futures orders' admitted contracts, written into ``admitted`` (n,) in place.

    Contracts that close a position pass free, up to the position less what the account's
    resting and earlier orders already close; the rest of an order opens exposure (an
    order that flips a position opens what lies beyond flat) and needs ``margin`` of its
    notional (fen). An account's room is its ``buying_power`` (A,) less the margin its
    positions (``fut_pos``, (A, F)) tie up at ``fut_mark`` and less the margin its resting
    orders' opening parts claim; its new orders take the room in time order, each at most
    its own need, and get the whole contracts that fit. ``tests/test_rules.py`` holds it
    to a plain-loop reference.

    Args:
        resting: (r,) the rows of the book still resting, ascending.
        book_*: (m,) the book; account, instrument, side, price, lots: (n,) new
            orders (rows with ``instrument < n_stocks`` are stocks, and are left alone).
    """
    n = account.shape[0]
    new = np.empty(n, np.int64)  # the new futures orders
    k = 0
    for i in range(n):
        if instrument[i] >= n_stocks and lots[i] > 0:
            new[k] = i
            k += 1
    if k == 0:
        return
    new = new[:k][np.argsort(account[new[:k]], kind="mergesort")]  # (k,) by account, stable
    group = np.empty(k, np.int64)  # (k,) each one's account group
    group_account = np.empty(k, np.int64)  # (g,) ascending
    g = -1
    for t in range(k):
        if t == 0 or account[new[t]] != account[new[t - 1]]:
            g += 1
            group_account[g] = account[new[t]]
        group[t] = g
    n_groups = g + 1
    group_account = group_account[:n_groups]

    n_fut = fut_pos.shape[1]
    closable = np.empty((n_groups, n_fut), np.int64)  # (g, F) contracts left to close free
    for g in range(n_groups):
        for f in range(n_fut):
            closable[g, f] = abs(fut_pos[group_account[g], f])
    used = np.zeros(n_groups)  # (g,) fen of margin the resting orders' opening parts claim
    for i in resting:
        f = book_stock[i] - n_stocks
        if f < 0:
            continue
        g = np.searchsorted(group_account, book_account[i])
        if g < n_groups and group_account[g] == book_account[i]:
            opening = _opening_lots(
                fut_pos[book_account[i], f], book_side[i], book_lots[i], closable[g, f]
            )
            closable[g, f] -= book_lots[i] - opening
            used[g] += margin * opening * book_price[i] * tick_value[f]
    avail = np.empty(n_groups)  # (g,) fen of room left
    for g in range(n_groups):
        a, notional = group_account[g], 0
        for f in range(n_fut):
            notional += abs(fut_pos[a, f]) * (fut_mark[f] * tick_value[f])
        avail[g] = (buying_power[a] - margin * notional) - used[g]

    claimed = 0.0  # fen the group's earlier new orders asked for
    for t in range(k):
        i, f, g = new[t], instrument[new[t]] - n_stocks, group[t]
        if t == 0 or g != group[t - 1]:
            claimed = 0.0
        opening = _opening_lots(fut_pos[account[i], f], side[i], lots[i], closable[g, f])
        closable[g, f] -= lots[i] - opening
        need = margin * opening * price[i] * tick_value[f]
        fen = min(max(avail[g] - claimed, 0.0), need)
        claimed += need
        opened = np.int64(np.floor(fen / (margin * price[i] * tick_value[f])))
        admitted[i] = lots[i] - opening + opened


@numba.njit(cache=True, nogil=True, inline="always")
def _opening_lots(position: int, side: int, lots: int, closable: int) -> int:
    """Contracts of an order that open exposure: all of it unless it trades against
    ``position``, then what lies beyond the ``closable`` contracts left to close."""
    if np.sign(position) != -side:
        return lots
    return max(lots - closable, 0)


@entry
@numba.njit(cache=True, nogil=True)
def _book_mid_compiled(
    bid_qty: np.ndarray, ask_qty: np.ndarray, lower: np.ndarray, upper: np.ndarray, step: np.ndarray
) -> np.ndarray:
    """(F,) ticks midway between each contract's best bid and best ask (``np.rint``), 0 where
    a side of its book is empty, from its lots per level ``bid_qty``, ``ask_qty`` (F, L) and
    its grid ``lower``, ``upper``, ``step`` (F,): what :meth:`Market._book_mid` computed with
    numpy, the prices as :meth:`Grid.price_of` has them."""
    n_contracts, n_levels = bid_qty.shape
    mid = np.zeros(n_contracts, np.int64)
    for f in range(n_contracts):
        best_bid, best_ask = -1, -1
        for j in range(n_levels - 1, -1, -1):
            if bid_qty[f, j] > 0:
                best_bid = j
                break
        for j in range(n_levels):
            if ask_qty[f, j] > 0:
                best_ask = j
                break
        if best_bid >= 0 and best_ask >= 0:
            bid = min(lower[f] + best_bid * step[f], upper[f])
            ask = min(lower[f] + best_ask * step[f], upper[f])
            mid[f] = np.int64(np.rint((bid + ask) / 2))
    return mid
