"""Shared fixtures: small models that run in a blink.

Every model in the tests checks its books each step (model.invariants): the
environment variable is set before anything runs, so it reaches the command-line
subprocesses and the Dask workers the tests start too.
"""

from __future__ import annotations

import os

import pytest

from model import MarketModel
from model.invariants import ENV

os.environ[ENV] = "1"

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
