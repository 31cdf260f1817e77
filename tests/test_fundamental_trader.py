"""The value investors' risk budget on their own book.

Each test puts every stock 30% below its value, so every investor bids for every
stock it covers, and reads the orders ``decide`` would send.
"""

from __future__ import annotations

import numpy as np

from agents.fundamental_trader import FundamentalTraders
from model import MarketModel
from tests.conftest import SMALL

KEY = "fundamental_traders."


def _investors(**limits: float) -> tuple[MarketModel, FundamentalTraders]:
    """A small model whose value investors lean hard, with ``limits`` (short keys) set."""
    settings = {**SMALL, KEY + "aggressiveness": 1.0}
    settings.update({KEY + k: v for k, v in limits.items()})
    model = MarketModel(rng=7, **settings)
    investors = next(p for p in model.populations if isinstance(p, FundamentalTraders))
    return model, investors


def _cheapen(model: MarketModel, ratio: float = 0.7) -> None:
    """Every stock's last price ``ratio`` of its fundamental value."""
    n = model.universe.n
    value_fen = np.exp(model.fundamentals.log_value[:n]) * 100.0
    model.market.last[:n] = np.maximum(np.rint(value_fen * ratio), 1).astype(np.int64)


def _bids(model: MarketModel, investors: FundamentalTraders):
    """(account, stock, shares bid, shares held) of each buy order ``decide`` sends."""
    orders = investors.decide(investors.rows)
    buy = orders.side > 0
    account, stock = orders.account[buy], orders.stock[buy]
    bid = orders.lots[buy] * model.market.lot
    return account, stock, bid, model.ledger.holding(account, stock)


def test_a_budget_that_does_not_bind_leaves_the_orders_as_they_are():
    plain, plain_investors = _investors()
    loose, loose_investors = _investors(drawdown_budget=1.0, drawdown_free=1.0)
    for model, investors in ((plain, plain_investors), (loose, loose_investors)):
        _cheapen(model)
        investors.begin_day()
    a = plain_investors.decide(plain_investors.rows)
    b = loose_investors.decide(loose_investors.rows)
    for column in ("account", "stock", "side", "price", "lots"):
        np.testing.assert_array_equal(getattr(a, column), getattr(b, column))


def test_drawdown_budget_shrinks_the_bid_and_gives_it_back_as_the_drawdown_ages():
    """Buying stops at the budget (10% drawdown), shrinks linearly from 5%, and comes back
    as an unchanged book's drawdown halves every 10 days or the book recovers."""
    model, investors = _investors(drawdown_budget=0.10, drawdown_free=0.05, drawdown_halflife=10.0)
    free_model, free_investors = _investors()
    for m in (model, free_model):
        _cheapen(m)
    investors.begin_day()  # the first mark: no drawdown yet
    np.testing.assert_array_equal(investors.appetite, 1.0)
    _, _, full_bid, _ = _bids(free_model, free_investors)
    _, _, bid, _ = _bids(model, investors)
    np.testing.assert_array_equal(bid, full_bid)

    mark = investors.equity.copy()
    investors.equity = mark * np.exp(0.2)  # the book was 20% (log) higher at the last open
    investors.begin_day()
    np.testing.assert_allclose(investors.drawdown, 0.2)
    np.testing.assert_array_equal(investors.appetite, 0.0)
    _, _, bid, _ = _bids(model, investors)
    assert bid.sum() == 0 and full_bid.sum() > 0

    for _ in range(15):  # fifteen opens with the book unchanged: 0.2 * 2**-1.5 = 0.0707
        investors.begin_day()
    np.testing.assert_allclose(investors.drawdown, 0.2 * 0.5**1.5)
    share = (0.10 - 0.2 * 0.5**1.5) / 0.05
    np.testing.assert_allclose(investors.appetite, share)
    _, _, bid, _ = _bids(model, investors)
    assert 0 < bid.sum() < full_bid.sum()
    assert (bid <= (full_bid + model.market.lot) * share + 1e-9).all()

    investors.equity = investors.equity * np.exp(-0.1)  # the book has gained 10% since
    investors.begin_day()
    np.testing.assert_array_equal(investors.drawdown, 0.0)
    np.testing.assert_array_equal(investors.appetite, 1.0)


def test_drawdown_floor_keeps_a_share_of_the_bid_however_deep_the_drawdown():
    model, investors = _investors(drawdown_budget=0.10, drawdown_free=0.05, drawdown_floor=0.25)
    free_model, free_investors = _investors()
    for m in (model, free_model):
        _cheapen(m)
    investors.begin_day()
    investors.equity = investors.equity * np.exp(0.5)  # far beyond the budget
    investors.begin_day()
    np.testing.assert_array_equal(investors.appetite, 0.25)
    assert model.value_appetite() == 0.25  # what model.parquet's value_appetite records
    _, _, full_bid, _ = _bids(free_model, free_investors)
    _, _, bid, _ = _bids(model, investors)
    lot = model.market.lot
    assert (bid <= full_bid * 0.25 + lot).all() and (bid >= full_bid * 0.25 - lot).all()
    assert bid.sum() > 0.2 * full_bid.sum()


def test_engines_run_the_same_budget():
    """The per-agent engine marks the same books and cuts the same bids: with only makers
    and value investors (no draws) and a budget that binds, the same prices every step."""
    config = {
        **SMALL,
        "noise_traders.n_agents": 0,
        KEY + "drawdown_budget": 0.004,
        KEY + "drawdown_free": 0.001,
        KEY + "drawdown_halflife": 2.0,
        KEY + "drawdown_floor": 0.1,
    }
    vec = MarketModel(rng=9, **config)
    per = MarketModel(rng=9, engine="agents", **config)
    investors = next(p for p in vec.populations if isinstance(p, FundamentalTraders))
    cut = False
    while vec.running:
        vec.step()
        per.step()
        assert np.array_equal(vec.market.last, per.market.last)
        cut |= bool((investors.appetite < 1.0).any())
    assert cut
