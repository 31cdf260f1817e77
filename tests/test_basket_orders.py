"""The compiled basket rule against the numpy it replaced, on every branch."""

from __future__ import annotations

import numpy as np

from agents.basket_orders import basket_orders
from model.orders import CALM, FORCED, Orders


def _numpy_rule(target, weights, price, held, urgent, margin_call, need, pace, hurry, lot, fd):
    """(r, B) lots, side, limit price of every cell, as the products computed them in numpy."""
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
    """The cells with lots, as the exchange would admit them from the whole grid, the
    urgent rows' sells flagged ``FORCED``."""
    rng = np.random.default_rng(9)
    r, b = 40, 30
    accounts = np.arange(100, 100 + r, dtype=np.int64)
    basket = rng.integers(0, 400, (r, b))
    target = rng.lognormal(18.0, 1.0, r)
    weights = rng.dirichlet(np.ones(b), r)
    price = rng.integers(100, 5000, (r, b)).astype(np.float64)
    held = rng.integers(0, 200, (r, b)) * 100
    urgent = rng.random(r) < 0.4
    margin_call = urgent & (rng.random(r) < 0.5)
    need = rng.random(r) * 1.5  # some above 1: capped
    rule = (target, weights, price, held, urgent, margin_call, need, 1 / 80, 1 / 12, 100, 0.02)
    lots, side, order_price = _numpy_rule(*rule)
    duress = np.where(urgent[:, None] & (side < 0), FORCED, CALM)
    grid = Orders(
        np.repeat(accounts, b),
        basket.ravel(),
        side.ravel(),
        order_price.ravel(),
        lots.ravel(),
        duress.ravel(),
    )
    want = grid.select(grid.lots > 0)

    columns = basket_orders(accounts, basket, *rule)
    names = ("account", "stock", "side", "price", "lots", "duress")
    for name, column in zip(names, columns, strict=True):
        np.testing.assert_array_equal(column, getattr(want, name))
        assert column.dtype == getattr(want, name).dtype
    assert (want.duress == FORCED).any() and (want.duress == CALM).any()
    assert margin_call.any() and (urgent & ~margin_call).any() and (grid.lots == 0).any()
