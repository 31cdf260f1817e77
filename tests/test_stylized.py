"""A calm market's daily returns look like a real market's: the stylized facts.

Returns are pooled over stocks after removing each day's cross-sectional mean, so
the one common market path (whose sample autocorrelation is noise of order
1/sqrt(days)) does not decide the test.
"""

from __future__ import annotations

import numpy as np
import pytest

from model import MarketModel


def _autocorr(x: np.ndarray, lag: int) -> float:
    x = x - x.mean(axis=0)
    return float((x[lag:] * x[:-lag]).sum() / (x * x).sum())


@pytest.fixture(scope="module")
def residual_returns() -> np.ndarray:
    model = MarketModel(rng=1, **{"universe.n_stocks": 200, "market.end": "2023-06-30"})
    model.run()
    closes = np.array(model.closes, dtype=np.float64)
    r = np.diff(np.log(closes), axis=0)  # (days - 1, stocks)
    return r - r.mean(axis=1, keepdims=True)


def test_fat_tails(residual_returns):
    r = residual_returns / residual_returns.std(axis=0)
    excess_kurtosis = float((r**4).mean() - 3.0)
    assert excess_kurtosis > 1.0


def test_volatility_clusters(residual_returns):
    a = np.abs(residual_returns)
    lags = [_autocorr(a, lag) for lag in range(1, 6)]
    assert np.mean(lags) > 0.04 and lags[0] > 0.06


def test_raw_returns_barely_autocorrelated(residual_returns):
    for lag in (1, 2, 5):
        assert abs(_autocorr(residual_returns, lag)) < 0.1


def test_daily_volatility_is_plausible(residual_returns):
    assert 0.008 < residual_returns.std() < 0.04
