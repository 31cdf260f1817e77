"""Futures speculators follow each index's trend, and in a fall they deepen the discount."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from agents.speculator import CONTRACTS, Speculators
from model import MarketModel

BASE = {
    "universe.n_stocks": 80,
    "market.start": "2024-01-02",
    "market.end": "2024-02-09",
    "noise_traders.n_agents": 200,
    "fundamental_traders.n_agents": 20,
    "futures.enabled": True,
    "speculators.capital_bn": 200.0,
    "speculators.n_agents": 6,
    "speculators.lookback_days": 4,
}


def build(**overrides) -> tuple[MarketModel, Speculators]:
    model = MarketModel(rng=1, **{**BASE, **overrides})
    return model, next(p for p in model.populations if isinstance(p, Speculators))


def feed(model: MarketModel, specs: Speculators, path: list[float]) -> None:
    """Open a day at each index level of ``path`` (the same for every index)."""
    for level in path:
        model.indices.level[:] = level
        specs.begin_day()


def test_a_rise_makes_them_long_and_a_fall_short():
    model, specs = build()
    feed(model, specs, [1000.0] * 8)
    assert not specs.signal.any()  # no trend, no position
    assert not np.rint(specs.target(specs.rows)).any()
    feed(model, specs, [1000.0 * 1.01**k for k in range(1, 9)])
    assert (specs.signal > 0).all() and (specs.target(specs.rows) > 0).all()
    feed(model, specs, [1100.0 * 0.99**k for k in range(1, 9)])
    assert (specs.signal < 0).all() and (specs.target(specs.rows) < 0).all()


def test_all_in_is_leverage_times_equity_split_over_the_contracts():
    model, specs = build(**{"speculators.leverage": 2.0})
    feed(model, specs, [1000.0 * 0.9**k for k in range(12)])  # a crash: every signal all in
    assert (specs.signal == -1.0).all()
    value = model.indices.level[model.futures.underlying[CONTRACTS]] * model.futures.multiplier
    notional = -(specs.target(specs.rows) * value[CONTRACTS]).sum(axis=1)  # (n,) CNY
    equity = model.ledger.cash[specs.accounts] / 100.0
    np.testing.assert_allclose(notional, 2.0 * equity)


def test_a_trend_inside_the_dead_band_holds_nothing_and_past_it_grows_to_all_in():
    full = 0.05
    model, specs = build(**{"speculators.full_signal": full, "speculators.dead_band": 0.5})
    feed(model, specs, [1000.0] * 8)
    # A steady 0.3% a day: every desk's trailing fall is within half of full_signal.
    feed(model, specs, [1000.0 * 0.997**k for k in range(1, 7)])
    trend = model.indices.level[0] / specs.closes[-1 - specs.lookback, 0] - 1.0  # (n,)
    assert (np.abs(trend) < 0.5 * full).all() and (trend < 0).all()
    assert not specs.signal.any()
    # A steeper fall: past the band the position is the share of the rest of the way.
    feed(model, specs, [model.indices.level[0] * 0.99**k for k in range(1, 7)])
    trend = model.indices.level[0] / specs.closes[-1 - specs.lookback, 0] - 1.0
    want = -np.clip((np.abs(trend) / full - 0.5) / 0.5, 0.0, 1.0)
    np.testing.assert_allclose(specs.signal[:, 0], want)
    between = (specs.signal < 0.0) & (specs.signal > -1.0)
    assert between.any() and (specs.signal == -1.0).any()


def test_before_start_they_watch_but_hold_nothing():
    model, specs = build(**{"speculators.start": "2024-01-22"})
    feed(model, specs, [1000.0 * 0.9**k for k in range(12)])  # a crash before the start
    assert model.date < specs.cfg.start
    assert not specs.signal.any() and not np.rint(specs.target(specs.rows)).any()
    model.day_index = model.days.index(specs.cfg.start)  # the first day: the trend counts
    feed(model, specs, [1000.0 * 0.9**12])
    assert (specs.signal == -1.0).all()


def test_a_desk_without_equity_holds_nothing():
    model, specs = build()
    feed(model, specs, [1000.0 * 0.9**k for k in range(12)])
    model.ledger.cash[specs.accounts[0]] = -1
    assert not specs.target(specs.rows)[0].any()


def test_lookbacks_spread_around_the_mean():
    _, specs = build(**{"speculators.n_agents": 200, "speculators.lookback_days": 10})
    assert specs.lookback.min() >= 5 and specs.lookback.max() <= 15
    assert 9 <= specs.lookback.mean() <= 11


def _ic_im_basis(**overrides) -> float:
    """Mean IC/IM basis over the second half of a month-long fall of the news."""
    model = MarketModel(
        rng=1,
        **{
            **BASE,
            "fundamentals.dip_start": "2024-01-02",
            "fundamentals.dip_end": "2024-02-09",
            "fundamentals.dip_drift": -0.01,
            "futures.mm_inventory_limit_bn": 300.0,  # makers carry a finite book (jan2024's)
            **overrides,
        },
    )
    seen = []
    while model.running:
        model.step()
        if model.day_index >= 14 and model.steps % model.steps_per_day == 0:
            seen.append(model.basis()[1:])
    held = model.datacollector.get_model_vars_dataframe()["speculator_futures"]
    assert (held.iloc[len(held) // 2 :] < 0).all() if model.speculators else not held.any()
    return float(np.mean(seen))


@pytest.mark.xdist_group("speculator_fall")
def test_in_a_fall_they_push_the_futures_below_the_index():
    with_specs = _ic_im_basis()
    without = _ic_im_basis(**{"speculators.capital_bn": 0.0})
    assert with_specs < without - 0.04  # four points a year deeper


def test_the_agent_engine_runs_the_same_rules():
    model, specs = build(engine="agents")
    for _ in range(3 * model.steps_per_day):
        model.step()
    # A fall the futures can follow within their daily limit: fed further, the index sits
    # below limit-down, where the makers bid nothing and every futures sell is locked.
    feed(model, specs, [model.indices.level[1] * 0.99**k for k in range(1, 9)])
    assert (specs.signal < 0).all()
    model.step()
    assert (model.ledger.futures_position(specs.accounts)[:, CONTRACTS] < 0).any()


def test_a_vanishing_full_signal_is_all_in_without_overflow():
    """Found by the property test: a trend over a subnormal ``full_signal`` overflowed."""
    model, specs = build(**{"speculators.full_signal": 5e-324})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        feed(model, specs, [1000.0, 1001.0, 999.0])
    assert (specs.signal == -1.0).all()


@pytest.mark.parametrize("cap", [0.3, 100.0])
def test_a_desk_sells_no_lower_than_its_discount_and_buys_no_higher_than_its_premium(cap):
    """With ``max_basis`` a desk's sell is priced at the day's limit-down or at the price of
    that annualized discount, whichever is higher, and its buy at the limit-up or that
    premium, whichever is lower; at 100 (the default) the limits alone."""
    model, specs = build(**{"speculators.max_basis": cap})
    model.step()
    spec, level = model.futures, model.indices.level
    instrument = np.asarray(spec.instrument)[CONTRACTS]
    for side in (-1, 1):
        sides = np.full(CONTRACTS.size, side)
        price = specs._price(instrument, sides, 1)
        limit = model.market.limit_price(instrument, sides)
        at_cap = spec.price_at_basis(side * cap, level, model.day_index)[CONTRACTS]
        basis = spec.basis(np.asarray(price, dtype=float), level, model.day_index)[CONTRACTS]
        if cap == 100.0:
            np.testing.assert_array_equal(price, limit)
            continue
        assert (side * price < side * limit).all()  # inside the day's limit
        np.testing.assert_array_equal(price, np.ceil(at_cap) if side < 0 else np.floor(at_cap))
        assert (np.abs(basis) <= cap).all() and (np.abs(basis) > cap - 0.05).all()
