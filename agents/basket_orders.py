"""The quant-neutral products' basket rule, compiled: one pass over the (products, stocks) grid.

At full scale 500 products trade 500 basket stocks each every step; in numpy the
rule below is some fifteen passes over 250,000 cells, each with its temporary.
The arithmetic is the same, operation for operation, so the floats are too.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def basket_orders(
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
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each product's basket orders: (lots, side, limit price), (r, B) each.

    Args:
        target: (r,) CNY of long exposure wanted; weights: (r, B) of it per stock.
        price: (r, B) float64 fen, last prices; held: (r, B) int64 shares held.
        urgent: (r,) bool, distressed or under a margin call: trade at ``hurry`` a step
            (else ``pace``) and cross the spread by up to ``forced_discount`` when selling.
        margin_call: (r,) bool; need: (r,) share of the book a margin call sells at least
            (read only where ``margin_call``).

    Returns:
        lots (r, B) float64 >= 0, whole; side (r, B) int8 (0: no order); price (r, B)
        float64 fen.
    """
    n_rows, n_stocks = price.shape
    lots = np.empty((n_rows, n_stocks))
    side = np.empty((n_rows, n_stocks), np.int8)
    order_price = np.empty((n_rows, n_stocks))
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
            s = np.int8(np.sign(signed))
            side[i, j] = s
            lots[i, j] = abs(signed)
            if urgent[i]:
                order_price[i, j] = p * (1.0 - forced_discount * (1.0 if s < 0 else 0.0))
            else:
                order_price[i, j] = p * (1.002 if s > 0 else 0.998)
    return lots, side, order_price


@numba.njit(cache=True, nogil=True)
def order_rows(
    accounts: np.ndarray,
    basket: np.ndarray,
    lots: np.ndarray,
    side: np.ndarray,
    price: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The (account, stock, side, price, lots) columns of the cells of :func:`basket_orders`'
    grids that hold an order, row by row: the orders the exchange would admit from the
    whole (r, B) grid, since it drops those of no lots (at full scale some 110,000 of the
    250,000 cells), without carrying them through the concatenations before it.

    Args:
        accounts: (r,) int64; basket: (r, B) int64 stocks; lots, side, price: (r, B) as
            :func:`basket_orders` returns them (prices are cut to whole fen, as
            ``Orders`` would cut them).
    """
    n = 0
    for i in range(lots.shape[0]):
        for j in range(lots.shape[1]):
            n += lots[i, j] > 0
    out_account = np.empty(n, np.int64)
    out_stock = np.empty(n, np.int64)
    out_side = np.empty(n, np.int8)
    out_price = np.empty(n, np.int64)
    out_lots = np.empty(n, np.int64)
    k = 0
    for i in range(lots.shape[0]):
        for j in range(lots.shape[1]):
            if lots[i, j] > 0:
                out_account[k], out_stock[k], out_side[k] = accounts[i], basket[i, j], side[i, j]
                out_price[k], out_lots[k] = np.int64(price[i, j]), np.int64(lots[i, j])
                k += 1
    return out_account, out_stock, out_side, out_price, out_lots
