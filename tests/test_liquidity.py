"""Liquidity is a finite book: square-root impact, depth consumed and slowly replenished."""

from __future__ import annotations

import itertools

import numpy as np

from model import MarketModel
from model.kernel import clear
from model.orders import Orders
from tests.conftest import SMALL

MAKERS_ONLY = {
    "universe.n_stocks": 200,
    "market.end": "2023-01-31",
    "noise_traders.n_agents": 0,
    "fundamental_traders.n_agents": 0,
}


def _ask_depth(model: MarketModel) -> np.ndarray:
    """(S,) lots offered on the book."""
    book = model.market.book
    sell = book.side < 0
    return np.bincount(book.stock[sell], book.lots[sell], minlength=model.universe.n)


def test_meta_order_impact_grows_like_the_square_root_of_size():
    model = MarketModel(rng=11, **MAKERS_ONLY)
    model.step()
    for population in model.populations:
        population.act(population.rows)
    market = model.market
    book, grid = market.book, market.grid
    n = model.universe.n
    depth = _ask_depth(model)
    ref = grid.nearest_level(np.arange(n), market.last)
    fractions = np.geomspace(0.04, 0.9, 8)
    impacts = []
    for q in fractions:
        lots = np.maximum(np.floor(q * depth), 1).astype(np.int64)
        meta = Orders(np.zeros(n), np.arange(n), np.ones(n), grid.upper, lots)
        level = np.concatenate(
            [market.book_level, grid.level_of(meta.stock, meta.price, meta.side)]
        )
        res = clear(
            grid,
            np.concatenate([book.stock, meta.stock]),
            np.concatenate([book.side, meta.side]),
            level,
            np.concatenate([book.lots, meta.lots]),
            ref,
        )
        impacts.append(np.median(np.log(res.price / market.last)))
    slope = np.polyfit(np.log(fractions), np.log(impacts), 1)[0]
    assert 0.35 <= slope <= 0.7, f"impact exponent {slope:.2f}"
    assert np.all(np.diff(impacts) >= 0) and impacts[-1] > 2 * impacts[0]


def test_depth_is_consumed_then_replenished_at_a_finite_rate():
    model = MarketModel(rng=5, **MAKERS_ONLY)
    model.step()
    before = _ask_depth(model)
    stocks = np.arange(50)
    # Take most of the ask side of 50 stocks with a market buy from a rich outsider. Not
    # all of it: a buy left over at the limit would lock the stock limit-up, where the
    # makers show no asks (beyond the limit) until the next day.
    outsider = model.ledger.open_accounts(np.array([10**15]))[0]
    market = model.market
    market.submit(
        Orders(
            np.full(50, outsider),
            stocks,
            np.ones(50),
            market.grid.upper[stocks],
            np.floor(before[stocks] * 0.9),
        )
    )
    market.clear()
    market.cancel_accounts(np.array([outsider]))
    history = []
    for _ in range(10):
        model.step()
        history.append(_ask_depth(model)[stocks].sum() / before[stocks].sum())
    assert history[0] < 0.5  # most of it is gone: depth is finite
    assert all(b >= a - 0.02 for a, b in itertools.pairwise(history))  # recovers
    assert history[-1] > history[0] + 0.3
    assert history[-1] < 1.2  # ... towards its target, not beyond


def test_the_close_fills_come_off_before_the_nights_refill():
    """At the open the makers' depth is what the close's auction left, refilled once for
    the night, then once for the step: the close's takings get both refills, as any
    other step's do (they came off a step late, after the night's refill)."""
    m = MarketModel(rng=3, **SMALL)
    makers = m.populations[0]
    for _ in range(m.steps_per_day):
        m.step()
    depth = makers.depth.copy()
    account, stock, signed, _ = m.market.last_fills
    mine = np.isin(account, makers.accounts)
    taken = np.zeros_like(depth)
    lots = np.abs(signed[mine]) // m.market.lot
    np.add.at(taken, (stock[mine], (signed[mine] < 0).astype(int)), lots)
    assert taken.sum() > 0  # the close took some of their depth
    seen = {}
    decide = makers.decide

    def spy(rows):
        seen["target"] = makers.target_depth(np.arange(m.universe.n))[:, None]
        return decide(rows)

    makers.decide = spy
    m.step()  # the next morning
    rho, target = makers.replenish, seen["target"]
    left = np.maximum(depth - taken, 0.0)
    night = left + rho * (target - left)
    np.testing.assert_allclose(makers.depth, night + rho * (target - night), rtol=1e-12)
