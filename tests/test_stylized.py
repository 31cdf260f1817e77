"""A calm market's daily returns look like a real market's: the stylized facts."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.stylized import autocorr, stylized_facts
from model import MarketModel


@pytest.fixture(scope="module")
def facts() -> dict[str, float]:
    model = MarketModel(rng=1, **{"universe.n_stocks": 200, "market.end": "2023-06-30"})
    model.run()
    return stylized_facts(np.array(model.closes))


def test_fat_tails(facts):
    assert facts["excess_kurtosis"] > 1.0


def test_volatility_clusters(facts):
    assert facts["abs_acf_lags1_5"] > 0.04 and facts["abs_acf_lag1"] > 0.06


def test_raw_returns_barely_autocorrelated(facts):
    for lag in (1, 2, 5):
        assert abs(facts[f"acf_lag{lag}"]) < 0.1


def test_daily_volatility_is_plausible(facts):
    assert 0.008 < facts["daily_vol"] < 0.04


def test_the_measures_detect_what_they_claim():
    rng = np.random.default_rng(0)
    iid = rng.standard_normal((400, 50))
    assert abs(autocorr(iid, 1)) < 0.03
    trend = np.cumsum(iid, axis=0)  # a random walk's levels are strongly autocorrelated
    assert autocorr(trend, 1) > 0.9
    closes = np.exp(np.cumsum(0.01 * iid, axis=0))
    assert abs(stylized_facts(closes)["excess_kurtosis"]) < 0.5  # Gaussian: no fat tails


def test_lead_lag_of_a_run_that_barely_sold_is_missing_not_a_warning():
    """Forced sales in one step only: most lags see a flat series, which has no
    correlation; that is reported as missing, without numpy's divide warnings."""
    import warnings

    import pandas as pd

    from experiments.run import reflexivity

    steps = 12
    frame = pd.DataFrame(
        {
            "forced_sales": [0.0] * (steps - 1) + [5e6],
            "panic_sales": [2e6] * steps,
            "turnover": [1e9] * steps,
            "microcap": 1000.0 * np.exp(np.cumsum(np.linspace(-0.01, 0.01, steps))),
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        figures = reflexivity(frame, max_lag=3)
    lags = figures["lead_lag"]
    # Retail's panic sales are counted apart from the forced sales, each against turnover.
    assert figures["forced_sale_share"] == pytest.approx(5e6 / 12e9)
    assert figures["panic_sale_share"] == pytest.approx(2e-3)
    assert lags["0"] is not None and -1.0 <= lags["0"] <= 1.0
    assert lags["3"] is None  # the sales that lead by 3 steps are all zero
