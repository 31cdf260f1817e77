"""Shared fixtures: small models that run in a blink."""

from __future__ import annotations

import pytest

from model import MarketModel

SMALL = {
    "universe.n_stocks": 60,
    "market.end": "2023-01-20",
    "noise_traders.n_agents": 300,
    "fundamental_traders.n_agents": 40,
    "market_makers.n_agents": 4,
}


@pytest.fixture
def small_model() -> MarketModel:
    return MarketModel(rng=7, **SMALL)
