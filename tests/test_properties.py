"""Random scenarios within the documented ranges keep every invariant; a long calm run stays sane.

The scenarios draw every numeric key of model/config.py from its documented range
(the field metadata the config validates against), every switch, and every date of
the timelines from 2022-12 to 2024-03, on top of the calm or the jan2024 scenario;
counts of agents, stocks and baskets are kept small so each
example runs in well under a second. The invariant checker is on (conftest), so
running a few steps is the test.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import typing
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import model.market_model as market_model
from agents.market_maker import FuturesMakers
from experiments.scenarios import load_scenario
from model import MarketModel
from model.config import ConfigError, ScenarioConfig, Section

# Keys whose size sets the run time: drawn from a small range inside the documented one.
SMALL = {
    "universe.n_stocks": (10, 50),
    "universe.microcap_count": (1, 400),
    "market.n_levels": (5, 201),
    "market.steps_per_day": (1, 6),
    "market_makers.n_agents": (1, 20),
    "market_makers.ladder_levels": (1, 20),
    "fundamental_traders.n_agents": (0, 50),
    "fundamental_traders.stocks_watched": (1, 50),
    "noise_traders.n_agents": (0, 200),
    "noise_traders.orders_per_stock_step": (0.0, 5.0),
    "neutral.n_funds": (0, 1000),
    "neutral.basket_size": (1, 500),
    "public_funds.n_funds": (0, 100),
    "public_funds.basket_size": (1, 500),
    "enhanced_funds.n_funds": (0, 100),
    "retail.n_agents": (0, 300),
    "retail.degree": (1, 20),
    "retail.holdings": (1, 10),
    "speculators.n_agents": (1, 20),
}
SIZES = (
    "universe.n_stocks",
    "market_makers.n_agents",
    "fundamental_traders.n_agents",
    "noise_traders.n_agents",
    "retail.n_agents",
    "speculators.n_agents",
)


def documented_ranges() -> dict[str, tuple[type, float, float, bool]]:
    """Dotted key -> (type, low, high, open) for every numeric key with a range."""
    out = {}

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            kind = hints[f.name]
            key = f"{prefix}{f.name}"
            if isinstance(kind, type) and issubclass(kind, Section):
                walk(kind, key + ".")
            elif kind in (int, float) and f.metadata.get("lo") is not None:
                meta = f.metadata
                out[key] = (kind, meta["lo"], meta["hi"], meta.get("open", False))

    walk(ScenarioConfig, "")
    return out


RANGES = documented_ranges()


def switches_and_dates() -> dict[str, st.SearchStrategy]:
    """Dotted key -> strategy for every on/off switch and every date of the policy and
    agent timelines (the run's own start and end are drawn apart, below)."""
    out: dict[str, st.SearchStrategy] = {}

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            kind, key = hints[f.name], f"{prefix}{f.name}"
            if isinstance(kind, type) and issubclass(kind, Section):
                walk(kind, key + ".")
            elif kind is bool:
                out[key] = st.booleans()
            elif kind is dt.date and key not in ("market.start", "market.end"):
                out[key] = st.dates(dt.date(2022, 12, 1), dt.date(2024, 3, 31))

    walk(ScenarioConfig, "")
    return out


OTHER_KEYS = switches_and_dates()


def value_of(key: str) -> st.SearchStrategy:
    kind, lo, hi, is_open = RANGES[key]
    if key in SMALL:
        lo, hi = SMALL[key]
    if kind is int:
        return st.integers(int(lo), int(hi))
    return st.floats(lo, hi, exclude_min=is_open, exclude_max=is_open, allow_nan=False)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[ScenarioConfig, int]:
    """A base scenario, a random subset of keys drawn in range, and a short window."""
    base = draw(st.sampled_from(["calm", "jan2024", "jan2024-no-speculators"]))
    keys = draw(st.lists(st.sampled_from(sorted(RANGES)), max_size=12, unique=True))
    overrides = {k: draw(value_of(k)) for k in keys}
    others = draw(st.lists(st.sampled_from(sorted(OTHER_KEYS)), max_size=4, unique=True))
    overrides.update({k: draw(OTHER_KEYS[k]) for k in others})
    for key in SIZES:  # the run time stays small when they are not drawn
        if key not in overrides:
            overrides[key] = draw(value_of(key))
    start = draw(st.sampled_from(["2023-01-03", "2023-10-16", "2024-01-25", "2024-02-05"]))
    first = dt.date.fromisoformat(start)
    overrides["market.start"] = first
    overrides["market.end"] = first + dt.timedelta(days=draw(st.integers(0, 6)))
    try:
        config = load_scenario(base, overrides=overrides)
    except ConfigError:  # a cross-key rule (e.g. max cap above min cap): not this scenario
        assume(False)
    return config, draw(st.integers(0, 2**32 - 1))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(scenario=scenarios())
def test_random_scenarios_keep_every_invariant(scenario):
    config, seed = scenario
    model = MarketModel(config, rng=seed)
    assert model.checker is not None
    for _ in range(min(model.total_steps, 12)):
        model.step()  # raises InvariantError at the first broken invariant
    frame = model.datacollector.get_model_vars_dataframe()
    # NaN by design where a channel is off: NAVs without neutral products, bases without
    # futures, the value investors' bid share without value investors.
    maybe_nan = [
        c
        for c in frame.columns
        if c.startswith("neutral_nav") or c.endswith("_basis") or c == "value_appetite"
    ]
    numeric = frame.drop(columns=["date", *maybe_nan])
    assert np.isfinite(numeric.to_numpy(dtype=float)).all()


@settings(max_examples=5, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_stocks=st.integers(10, 30))
def test_the_reference_engine_keeps_every_invariant(seed, n_stocks):
    """The per-agent engine (Mesa shuffle_do) runs the same rules agent by agent."""
    config = load_scenario(
        "jan2024",
        overrides={
            "universe.n_stocks": n_stocks,
            "retail.n_agents": 50,
            "noise_traders.n_agents": 60,
            "fundamental_traders.n_agents": 10,
            "market.start": "2024-01-29",
            "market.end": "2024-01-29",
        },
    )
    model = MarketModel(config, rng=seed, engine="agents")
    model.run()


def weekdays(start: dt.date, end: dt.date) -> list[dt.date]:
    """Every weekday: a synthetic calendar long enough for a ten-year run."""
    days = (start + dt.timedelta(days=i) for i in range((end - start).days + 1))
    return [d for d in days if d.weekday() < 5]


@pytest.mark.slow
def test_ten_calm_years_without_drift_nan_or_overflow(monkeypatch):
    """2,600 trading days at 40 stocks, one auction a day, the books checked every step.

    The holiday calendar covers 2022-2025 only, so this run trades on every weekday.
    """
    monkeypatch.setattr(
        market_model,
        "trading_days",
        lambda start, end: weekdays(start, start + dt.timedelta(days=3652)),
    )
    model = MarketModel(
        rng=11,
        **{
            "universe.n_stocks": 40,
            "market.steps_per_day": 1,
            "noise_traders.n_agents": 200,
            "fundamental_traders.n_agents": 30,
            "market_makers.n_agents": 4,
        },
    )
    assert len(model.days) > 2600
    model.run()
    assert model.steps == model.total_steps
    frame = model.datacollector.get_model_vars_dataframe()
    levels = frame[["csi300", "csi500", "csi1000", "csi2000", "microcap"]].to_numpy()
    assert np.isfinite(levels).all()
    # No drift: prices still follow values after ten years (fundamental traders pull them
    # back), and no index has run off to zero or to the sky.
    price = model.market.last[: model.universe.n] / 100.0
    gap = np.log(price) - model.fundamentals.log_value
    assert np.median(np.abs(gap)) < 0.3
    assert (np.abs(np.log(levels[-1] / 1000.0)) < 3.0).all()
    # The books still balance to the fen (the checker also ran every step).
    assert model.ledger.conservation_error()[0] == 0
    assert np.abs(model.ledger.cash).max() < 2**53  # far from int64 overflow


def test_a_vanishing_futures_makers_limit_leans_fully_without_overflow():
    """The smallest limit the config allows (a denormal float) once overflowed the
    makers' lean (inventory over limit) into a numpy warning; it must just lean fully."""
    overrides = {
        "universe.n_stocks": 20,
        "futures.enabled": True,
        "futures.mm_inventory_limit_bn": 5e-324,
        "neutral.n_funds": 500,
        "market.start": "2024-01-22",
        "market.end": "2024-01-26",
    }
    model = MarketModel(rng=3, **overrides)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.run()
    makers = next(p for p in model.populations if isinstance(p, FuturesMakers))
    lean = makers._lean(np.arange(3), makers.accounts)  # one maker per contract
    assert np.isfinite(lean).all() and (np.abs(lean) <= 1.0).all()
    held = makers.market.ledger.futures_position(makers.accounts)[np.arange(3), np.arange(3)]
    assert held.any()
    np.testing.assert_array_equal(np.abs(lean), (held != 0).astype(float))
