"""The compiled basket rule against the numpy it replaced, on every branch."""

from __future__ import annotations

import numpy as np

from agents.basket_orders import basket_orders


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
