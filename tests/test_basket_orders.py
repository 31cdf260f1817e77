"""The compiled basket rule against the numpy it replaced, on every branch."""

from __future__ import annotations

import numpy as np

from agents.basket_orders import basket_orders, order_rows
from model.orders import Orders


def _numpy_rule(target, weights, price, held, urgent, margin_call, need, pace, hurry, lot, fd):
    want = target[:, None] * weights * 100.0 / price
    gap = want - held
    urgent = urgent[:, None]
    trade = gap * np.where(urgent, hurry, pace)
    trade = np.where(
        margin_call[:, None], np.minimum(trade, -held * np.minimum(need, 1)[:, None]), trade
    )
    lots = np.trunc(trade / lot)
    side = np.sign(lots).astype(np.int8)
    near = price * np.where(side > 0, 1.002, 0.998)
    order_price = np.where(urgent, price * (1.0 - fd * (side < 0)), near)
    return np.abs(lots), side, order_price


def test_basket_orders_match_the_numpy_rule_bit_for_bit():
    rng = np.random.default_rng(9)
    r, b = 40, 30
    target = rng.lognormal(18.0, 1.0, r)
    weights = rng.dirichlet(np.ones(b), r)
    price = rng.integers(100, 5000, (r, b)).astype(np.float64)
    held = rng.integers(0, 200, (r, b)) * 100
    urgent = rng.random(r) < 0.4
    margin_call = urgent & (rng.random(r) < 0.5)
    need = rng.random(r) * 1.5  # some above 1: capped
    args = (target, weights, price, held, urgent, margin_call, need, 1 / 80, 1 / 12, 100, 0.02)
    for got, want in zip(basket_orders(*args), _numpy_rule(*args), strict=True):
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype
    assert margin_call.any() and (urgent & ~margin_call).any()


def test_order_rows_are_the_grid_orders_the_exchange_would_admit():
    """The compacted columns equal the whole grid as ``Orders``, less the cells of no lots."""
    rng = np.random.default_rng(10)
    r, b = 12, 25
    accounts = np.arange(100, 100 + r, dtype=np.int64)
    basket = rng.integers(0, 400, (r, b))
    lots = np.where(rng.random((r, b)) < 0.4, 0.0, rng.integers(1, 50, (r, b)).astype(float))
    side = np.where(lots > 0, np.where(rng.random((r, b)) < 0.5, 1, -1), 0).astype(np.int8)
    price = rng.uniform(100.0, 5000.0, (r, b))
    grid = Orders(np.repeat(accounts, b), basket.ravel(), side.ravel(), price.ravel(), lots.ravel())
    want = grid.select(grid.lots > 0)
    got = Orders(*order_rows(accounts, basket, lots, side, price))
    for name in ("account", "stock", "side", "price", "lots"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
        assert getattr(got, name).dtype == getattr(want, name).dtype
