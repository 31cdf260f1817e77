"""Stylized facts of daily returns: fat tails, volatility clustering, no autocorrelation.

Returns are pooled over stocks after removing each day's cross-sectional mean, so
the single common market path (whose sample autocorrelation is noise of order
1/sqrt(days)) does not decide the figures.
"""

from __future__ import annotations

import numpy as np


def max_drawdown(levels: np.ndarray) -> float:
    """Largest peak-to-trough fall as a positive fraction, ignoring missing levels."""
    levels = np.asarray(levels, dtype=np.float64)
    levels = levels[np.isfinite(levels)]
    if not levels.size:
        return float("nan")
    peak = np.maximum.accumulate(levels)
    return float(np.max(1.0 - levels / peak))


def correlation(a: np.ndarray, b: np.ndarray) -> float | None:
    """Pearson correlation of two equal-length series; None where either is flat or
    too short to say (a run that never forced a sale, or a few steps long)."""
    if a.size < 3 or a.std() == 0 or b.std() == 0:
        return None
    return float(np.corrcoef(a, b)[0, 1])


def residual_returns(closes: np.ndarray) -> np.ndarray:
    """(days - 1, stocks) daily log returns minus each day's cross-sectional mean."""
    r = np.diff(np.log(np.asarray(closes, dtype=np.float64)), axis=0)
    return r - r.mean(axis=1, keepdims=True)


def autocorr(x: np.ndarray, lag: int) -> float:
    """Pooled autocorrelation at ``lag`` of a (time, series) array, each series demeaned."""
    x = x - x.mean(axis=0)
    return float((x[lag:] * x[:-lag]).sum() / (x * x).sum())


def stylized_facts(closes: np.ndarray) -> dict[str, float]:
    """Excess kurtosis, |r| autocorrelation at lags 1..5, raw autocorrelation at 1, 2, 5."""
    r = residual_returns(closes)
    if r.shape[0] < 12:
        return {}
    z = r / np.maximum(r.std(axis=0), 1e-12)
    abs_acf = [autocorr(np.abs(r), lag) for lag in range(1, 6)]
    return {
        "daily_vol": float(r.std()),
        "excess_kurtosis": float((z**4).mean() - 3.0),
        "abs_acf_lag1": abs_acf[0],
        "abs_acf_lags1_5": float(np.mean(abs_acf)),
        "acf_lag1": autocorr(r, 1),
        "acf_lag2": autocorr(r, 2),
        "acf_lag5": autocorr(r, 5),
    }
