"""The resting book's bulk edits, each one compiled pass over its columns.

The passes that :func:`model.market._submit_compiled` calls (:func:`resting_rows`,
:func:`within_limits`, :func:`append_admitted`) are compiled into it and called from
nowhere else, tests included: numba's cache cannot serve one function both from its
own entry and inside another's (its array results come back without their dtype), so
they are tested through ``Market.submit``.

Every step some 30,000 orders join the book, are cleared and mostly withdrawn the
next step. In numpy each of these edits is a mask, then one gather or concatenate
per column (seven of them, with the grid levels); here each is a single pass that
writes all the columns at once. Rows keep their order (time priority) throughout.
"""

from __future__ import annotations

import numba
import numpy as np

from model.aot import entry
from model.kernel import level_at
from model.orders import N_DURESS


@numba.njit(cache=True, nogil=True)
def within_limits(
    stock: np.ndarray, price: np.ndarray, lots: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(n,) prices held within the day's limits (``lower``, ``upper``: (I,) fen or ticks) and
    (n,) lots, none below zero: the columns :meth:`model.market.Market.submit` admits from.

    Prices are whole already (int64), so holding them within the limits is all there is to do.
    Orders of no lots stay in place (the admission gives them none and the book drops
    them), so the other columns need no copy.
    """
    out_price = np.empty(price.shape[0], np.int64)
    out_lots = np.empty(lots.shape[0], np.int64)
    for i in range(lots.shape[0]):
        s = stock[i]
        out_price[i] = min(max(price[i], lower[s]), upper[s])
        out_lots[i] = max(lots[i], 0)
    return out_price, out_lots


@numba.njit(cache=True, nogil=True)
def resting_rows(
    account: np.ndarray, lots: np.ndarray, withdrawn: np.ndarray, blocks: np.ndarray
) -> np.ndarray:
    """(r,) ascending rows of the book (n,) that still rest: with lots, not ``withdrawn``
    ((n,) bool, or empty: none) and not of an account in one of ``blocks`` ((k, 2): first
    and last account of each, as :func:`withdraw_blocks`)."""
    some = withdrawn.shape[0] == account.shape[0]
    rows = np.empty(account.shape[0], np.int64)
    r = 0
    for i in range(account.shape[0]):
        if lots[i] > 0 and not (some and withdrawn[i]) and not _in_blocks(account[i], blocks):
            rows[r] = i
            r += 1
    return rows[:r]


@numba.njit(cache=True, nogil=True)
def append_admitted(
    resting: np.ndarray,
    book_account: np.ndarray,
    book_stock: np.ndarray,
    book_side: np.ndarray,
    book_price: np.ndarray,
    book_lots: np.ndarray,
    book_duress: np.ndarray,
    book_level: np.ndarray,
    account: np.ndarray,
    stock: np.ndarray,
    side: np.ndarray,
    price: np.ndarray,
    admitted: np.ndarray,
    duress: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    step: np.ndarray,
    n_active: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The book's ``resting`` rows ((r,) of the (m,) book columns), followed by the new
    orders (n,) with ``admitted`` (n,) lots > 0.

    Returns the seven columns (account, stock, side, price, lots, duress, grid level)
    of the new book; each new order's level is :meth:`model.kernel.Grid.level_of` on
    the day's grid (``lower``, ``upper``, ``step``, ``n_active``: (I,) each). ``duress``
    (int8) goes along so that the orders' fills can be counted as forced or panic sales.
    """
    r = resting.shape[0]
    k = 0
    for i in range(admitted.shape[0]):
        k += admitted[i] > 0
    out_account = np.empty(r + k, np.int64)
    out_stock = np.empty(r + k, np.int64)
    out_side = np.empty(r + k, np.int8)
    out_price = np.empty(r + k, np.int64)
    out_lots = np.empty(r + k, np.int64)
    out_duress = np.empty(r + k, np.int8)
    out_level = np.empty(r + k, np.int64)
    for j in range(r):
        i = resting[j]
        out_account[j], out_stock[j], out_side[j] = book_account[i], book_stock[i], book_side[i]
        out_price[j], out_lots[j], out_level[j] = book_price[i], book_lots[i], book_level[i]
        out_duress[j] = book_duress[i]
    j = r
    for i in range(admitted.shape[0]):
        if admitted[i] > 0:
            s = stock[i]
            out_account[j], out_stock[j], out_side[j] = account[i], s, side[i]
            out_price[j], out_lots[j], out_duress[j] = price[i], admitted[i], duress[i]
            out_level[j] = level_at(lower[s], upper[s], step[s], n_active[s], price[i], side[i])
            j += 1
    return out_account, out_stock, out_side, out_price, out_lots, out_duress, out_level


@entry
@numba.njit(cache=True, nogil=True)
def split_fills(
    account: np.ndarray,
    instrument: np.ndarray,
    side: np.ndarray,
    lots: np.ndarray,
    duress: np.ndarray,
    filled: np.ndarray,
    clearing_price: np.ndarray,
    n_stocks: int,
    lot: int,
) -> tuple[
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray,
]:
    """The filled orders of the book (n,), in book order, split by instrument kind, and
    what the auction leaves of the book.

    Returns the stock fills (account, stock, signed shares, price in fen); the futures
    fills (account, contract ``instrument - n_stocks``, signed contracts); the (n,) lots
    left to each order (``lots - filled``); and, for each kind of ``duress``
    (:data:`model.orders.CALM`, ``FORCED``, ``PANIC``), the lots times clearing price
    filled for the (n,) orders of that kind, in integers (for forced sales, the sum
    ``np.dot(filled[forced], clearing_price[instrument[forced]])``). ``filled`` is the
    auction's (n,) lots, ``clearing_price`` (I,).
    """
    n = filled.shape[0]
    left = np.empty(n, np.int64)
    duress_lot_fen = np.zeros(N_DURESS, np.int64)  # (3,) CALM, FORCED, PANIC
    n_stock_fills, n_futures_fills = 0, 0
    for i in range(n):
        left[i] = lots[i] - filled[i]
        duress_lot_fen[duress[i]] += filled[i] * clearing_price[instrument[i]]
        if filled[i] > 0:
            if instrument[i] < n_stocks:
                n_stock_fills += 1
            else:
                n_futures_fills += 1
    s_account = np.empty(n_stock_fills, np.int64)
    s_stock = np.empty(n_stock_fills, np.int64)
    s_shares = np.empty(n_stock_fills, np.int64)
    s_price = np.empty(n_stock_fills, np.int64)
    f_account = np.empty(n_futures_fills, np.int64)
    f_contract = np.empty(n_futures_fills, np.int64)
    f_lots = np.empty(n_futures_fills, np.int64)
    j, k = 0, 0
    for i in range(n):
        if filled[i] <= 0:
            continue
        signed = np.int64(side[i]) * filled[i]
        if instrument[i] < n_stocks:
            s_account[j], s_stock[j] = account[i], instrument[i]
            s_shares[j], s_price[j] = signed * lot, clearing_price[instrument[i]]
            j += 1
        else:
            f_account[k], f_contract[k], f_lots[k] = account[i], instrument[i] - n_stocks, signed
            k += 1
    return (
        s_account, s_stock, s_shares, s_price, f_account, f_contract, f_lots, left,
        duress_lot_fen,
    )  # fmt: skip


@numba.njit(cache=True, nogil=True, inline="always")
def _in_blocks(account: int, blocks: np.ndarray) -> bool:
    """Whether ``account`` is in one of ``blocks`` ((k, 2): first and last account of each)."""
    j = 0
    while j < blocks.shape[0] and not blocks[j, 0] <= account <= blocks[j, 1]:
        j += 1
    return j < blocks.shape[0]


@entry
@numba.njit(cache=True, nogil=True)
def withdraw_blocks(account: np.ndarray, blocks: np.ndarray, withdrawn: np.ndarray) -> np.ndarray:
    """(n,) bool: ``withdrawn`` (n,; or empty: none yet) plus the orders (``account``, (n,))
    of the accounts in any of ``blocks`` ((k, 2): first and last account of each), in one
    pass over the book for a step's k cancelling populations instead of one each."""
    out = np.empty(account.shape[0], np.bool_)
    some = withdrawn.shape[0] == account.shape[0]
    for i in range(account.shape[0]):
        out[i] = (some and withdrawn[i]) or _in_blocks(account[i], blocks)
    return out


@entry
@numba.njit(cache=True, nogil=True)
def withdraw_share(
    account: np.ndarray,
    withdrawn: np.ndarray,
    first: int,
    last: int,
    uniform: np.ndarray,
    rate: float,
) -> np.ndarray:
    """(n,) bool: ``withdrawn`` (n,; or empty: none yet) plus each resting order of the
    accounts ``first..last`` whose uniform is below ``rate``, in one pass over the book.

    ``uniform`` holds one draw per resting order (those not withdrawn), in book order:
    the resting orders' ``(account in block) & (uniform < rate)`` spread over the book,
    with no compacted account column, mask or spread copy on the way.
    """
    out = np.empty(account.shape[0], np.bool_)
    some = withdrawn.shape[0] == account.shape[0]
    j = 0  # the resting order's draw
    for i in range(account.shape[0]):
        if some and withdrawn[i]:
            out[i] = True
        else:
            out[i] = first <= account[i] <= last and uniform[j] < rate
            j += 1
    return out
