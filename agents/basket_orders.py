"""The quant-neutral products' basket rule, compiled: one pass over the (products, stocks) grid.

At full scale 500 products trade 500 basket stocks each every step; in numpy the
rule below is some fifteen passes over 250,000 cells, each with its temporary, and
the grid of orders would then be cut down to the cells that hold one. The arithmetic
is the same, operation for operation, so the floats are too.
"""

from __future__ import annotations

import numba
import numpy as np

from model.aot import entry
from model.orders import CALM, FORCED


@entry
@numba.njit(cache=True, nogil=True)
def basket_orders(
    accounts: np.ndarray,
    basket: np.ndarray,
    target: np.ndarray,
    weights: np.ndarray,
    price: np.ndarray,
    held: np.ndarray,
    urgent: np.ndarray,
    margin_call: np.ndarray,
    need: np.ndarray,
    pace: float,
    hurry: float,
    lot: int,
    forced_discount: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Each product's basket orders, as the columns of the cells that hold one, row by row.

    Cells of no lots are left out: the exchange would drop them at admission (at full
    scale some 110,000 of 250,000 cells), so they need not go through the concatenations
    before it.

    Args:
        accounts: (r,) int64; basket: (r, B) int64 stocks of each product.
        target: (r,) CNY of long exposure wanted; weights: (r, B) of it per stock.
        price: (r, B) float64 fen, last prices; held: (r, B) int64 shares held.
        urgent: (r,) bool, distressed or under a margin call: trade at ``hurry`` a step
            (else ``pace``) and cross the spread by up to ``forced_discount`` when selling.
        margin_call: (r,) bool; need: (r,) share of the book a margin call sells at least
            (read only where ``margin_call``).

    Returns:
        (account, stock, side, price, lots, duress) columns as ``Orders`` takes them
        (int64, int8 for the side; prices cut to whole fen as ``Orders`` cuts them; int8
        ``duress``: ``FORCED`` for the urgent rows' sells, whose fills the model counts as
        forced sales, else ``CALM``).
    """
    n_rows, n_stocks = price.shape
    cells = n_rows * n_stocks
    out_account = np.empty(cells, np.int64)
    out_stock = np.empty(cells, np.int64)
    out_side = np.empty(cells, np.int8)
    out_price = np.empty(cells, np.int64)
    out_lots = np.empty(cells, np.int64)
    out_duress = np.empty(cells, np.int8)
    k = 0
    for i in range(n_rows):
        share = hurry if urgent[i] else pace
        cut = min(need[i], 1) if margin_call[i] else 0.0
        for j in range(n_stocks):
            p = price[i, j]
            want = target[i] * weights[i, j] * 100.0 / p  # shares wanted
            trade = (want - held[i, j]) * share
            if margin_call[i]:
                floor = -held[i, j] * cut  # sells at least its share of the book
                trade = trade if trade <= floor else floor
            signed = np.trunc(trade / lot)
            lots = abs(signed)
            if not lots > 0:
                continue
            s = np.int8(np.sign(signed))
            if urgent[i]:
                order_price = p * (1.0 - forced_discount * (1.0 if s < 0 else 0.0))
            else:
                order_price = p * (1.002 if s > 0 else 0.998)
            out_account[k], out_stock[k], out_side[k] = accounts[i], basket[i, j], s
            out_price[k], out_lots[k] = np.int64(order_price), np.int64(lots)
            out_duress[k] = FORCED if urgent[i] and s < 0 else CALM
            k += 1
    return (
        out_account[:k],
        out_stock[:k],
        out_side[:k],
        out_price[:k],
        out_lots[:k],
        out_duress[:k],
    )
