"""Fundamental value per stock: a market factor, a size factor and idiosyncratic news.

Values move once a day. Prices are free to wander from them; the fundamental
traders are what pulls prices back.
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from model.config import FundamentalsConfig


class Fundamentals:
    """Log fundamental value per stock, ``log_value`` (S,)."""

    def __init__(
        self,
        cfg: FundamentalsConfig,
        price0: np.ndarray,
        size_z: np.ndarray,
        rng: np.random.Generator,
    ) -> None:
        self.cfg = cfg
        self.size_z = size_z
        n = price0.shape[0]
        self.beta = np.clip(1.0 + 0.25 * rng.standard_normal(n), 0.2, 2.0)  # (S,) market beta
        self.log_value = np.log(price0 / 100.0) + cfg.initial_mispricing * rng.standard_normal(n)
        self.rng = rng

    def value_fen(self) -> np.ndarray:
        return np.exp(self.log_value) * 100.0

    def new_day(self, day: dt.date) -> None:
        """One day of news for every stock; inside the scenario's dip the market drifts down."""
        c, n = self.cfg, self.log_value.shape[0]
        drift = c.market_drift + (c.dip_drift if c.dip_start <= day <= c.dip_end else 0.0)
        market = drift + c.market_vol * self.rng.standard_normal()
        size = c.size_drift + c.size_vol * self.rng.standard_normal()
        idio = c.idio_vol * self.rng.standard_normal(n)
        self.log_value += self.beta * market + self.size_z * size + idio
