"""The micro-cap index's gains split into its members' moves and its equal weights."""

from __future__ import annotations

import datetime as dt

import numpy as np

from experiments.index_rotation import IndexRotation
from experiments.scenarios import load_scenario
from model.indices import BASE
from model.market_model import MarketModel
from model.universe import TIERS

SMALL = {"universe.n_stocks": 200, "retail.n_agents": 2000, "market.end": "2023-08-31"}


def _run(start=None, end=None) -> tuple[MarketModel, IndexRotation]:
    model = MarketModel(load_scenario("jan2024", overrides=SMALL), rng=1)
    rotation = IndexRotation(model, start, end)
    model.run(progress=rotation)
    return model, rotation


def test_the_days_add_up_to_the_index_and_its_news_twin():
    """Summed over the run, the day's parts give the model's own micro-cap level and its
    news twin's, to the float: the days are the index's days, each on the members the
    index weighed that day (the re-pick at the open for prices, the members before it for
    the news, which moves before the re-pick)."""
    model, rotation = _run()
    days = rotation.frame()
    assert len(days) == model.total_steps // model.steps_per_day
    micro = len(TIERS)
    assert abs(days["index_log"].sum() - np.log(model.indices.level[micro] / BASE)) < 1e-9
    assert abs(days["news_log"].sum() - np.log(model.indices.news[micro] / BASE)) < 1e-9
    np.testing.assert_allclose(
        days["members_log"] + days["equal_weights_log"], days["index_log"], atol=1e-15
    )
    # Every re-pick keeps the count: as many names enter as leave, and some do.
    assert (days["entered"] == days["left"]).all() and days["entered"].sum() > 0
    summary = rotation.summary()
    assert summary["entered"] == days["entered"].sum()
    assert summary["entering_mispricing"] is not None


def test_the_span_counts_only_its_own_days():
    start, end = dt.date(2023, 7, 17), dt.date(2023, 8, 11)
    model, rotation = _run(start, end)
    dates = rotation.frame()["date"]
    assert dates.min() == start and dates.max() == end
    whole = [d for d in model.days if start <= d <= end]
    assert list(dates) == whole
