"""The micro-cap index's gains split into its members' moves and its equal weights."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from experiments.index_rotation import IndexRotation
from experiments.scenarios import load_scenario
from model.market_model import MarketModel

SMALL = {"universe.n_stocks": 200, "retail.n_agents": 2000, "market.end": "2023-08-31"}


def _closes(model: MarketModel) -> pd.DataFrame:
    """The model's table at each close, by date."""
    frame = model.datacollector.get_model_vars_dataframe()
    return frame.groupby("date").last()


@pytest.mark.parametrize("steps_per_day", [4, 1])
def test_the_days_add_up_to_the_index_and_its_news_twin(steps_per_day):
    """Summed over the run, the days give the model's own micro-cap level and its news
    twin's, to the float: each day is taken on the members the index weighed that day (the
    re-pick at the open for prices, the members before it for the news, which moves
    before the re-pick). The names each re-pick takes in and lets go, with their log price
    over value at the close before, are what a step-by-step watch of the model sees."""
    model = MarketModel(
        load_scenario("jan2024", overrides={**SMALL, "market.steps_per_day": steps_per_day}),
        rng=1,
    )
    rotation = IndexRotation(model)
    n = model.universe.n
    expected = []  # (date, entered, left, their summed log price/value at the close before)
    members = model.indices.micro.copy()
    mispricing = np.log(model.market.last[:n] / model.fundamentals.value_fen()[:n])
    while model.running:
        model.step()
        rotation(model)
        if (model.steps - 1) % steps_per_day == 0:  # the open: the day's re-pick is done
            now = model.indices.micro
            entering, leaving = now & ~members, members & ~now
            expected.append(
                (
                    entering.sum(),
                    leaving.sum(),
                    mispricing[entering].sum(),
                    mispricing[leaving].sum(),
                )
            )
            members = now.copy()
        if model.steps % steps_per_day == 0:
            mispricing = np.log(model.market.last[:n] / model.fundamentals.value_fen()[:n])
    days = rotation.frame()
    closes = _closes(model)
    assert len(days) == len(closes) == len(model.days)
    assert abs(days["index_log"].sum() - np.log(closes["microcap"].iloc[-1] / 1000.0)) < 1e-9
    assert abs(days["news_log"].sum() - np.log(closes["microcap_news"].iloc[-1] / 1000.0)) < 1e-9
    got = days[["entered", "left", "entering_mispricing", "leaving_mispricing"]].to_numpy()
    np.testing.assert_allclose(got, np.array(expected, dtype=float), rtol=1e-12, atol=1e-12)
    assert days["entered"].sum() > 0  # the test saw re-picks that changed the members
    assert (days["dispersion"] > 0).all()


def test_a_span_counts_its_own_days_and_adds_up_to_the_index_over_them():
    start, end = dt.date(2023, 7, 17), dt.date(2023, 8, 11)
    model = MarketModel(load_scenario("jan2024", overrides=SMALL), rng=1)
    rotation = IndexRotation(model, start, end)
    model.run(progress=rotation)
    days = rotation.frame()
    assert list(days["date"]) == [d for d in model.days if start <= d <= end]
    level = _closes(model)["microcap"]
    dates = [str(d) for d in model.days]
    before = dates[dates.index(str(start)) - 1]
    assert abs(days["index_log"].sum() - np.log(level[str(end)] / level[before])) < 1e-9
    summary = rotation.summary()
    assert (summary["first"], summary["last"]) == (str(start), str(end))
    assert abs(summary["news"] - np.expm1(summary["news_log"])) < 1e-15


def test_it_refuses_a_start_inside_a_day_or_a_span_that_ends_before_it_starts():
    model = MarketModel(load_scenario("jan2024", overrides=SMALL), rng=1)
    with pytest.raises(ValueError, match="start 2023-08-01 is after end 2023-07-31"):
        IndexRotation(model, dt.date(2023, 8, 1), dt.date(2023, 7, 31))
    model.step()
    with pytest.raises(ValueError, match="inside a day"):
        IndexRotation(model)
