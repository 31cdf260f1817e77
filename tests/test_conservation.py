"""The clearing house keeps the books: cash and shares are conserved to the fen and share."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from model import MarketModel
from model.orders import Orders


def _check_books(model: MarketModel) -> None:
    cash_drift, share_drift = model.ledger.conservation_error()
    assert cash_drift == 0
    assert not share_drift.any()
    assert (model.ledger.shares >= 0).all()
    floor = -model.ledger.credit
    assert (model.ledger.cash >= floor).all()


@settings(max_examples=25, deadline=None)
@given(
    n_stocks=st.integers(10, 80),
    seed=st.integers(0, 2**32 - 1),
    n_orders=st.integers(0, 400),
    limit_main=st.floats(0.01, 0.5),
    n_levels=st.integers(5, 201),
)
def test_random_orders_in_random_universes_conserve(n_stocks, seed, n_orders, limit_main, n_levels):
    model = MarketModel(
        rng=seed,
        **{
            "universe.n_stocks": n_stocks,
            "universe.limit_main": limit_main,
            "market.n_levels": n_levels,
            "market.end": "2023-01-10",
            "noise_traders.n_agents": 50,
            "fundamental_traders.n_agents": 10,
        },
    )
    rng = np.random.default_rng(seed)
    model.step()
    market = model.market
    for _ in range(3):
        account = rng.integers(0, model.ledger.n_accounts, n_orders)
        stock = rng.integers(0, n_stocks, n_orders)
        side = rng.choice([-1, 1], n_orders)
        price = market.last[stock] * np.exp(rng.normal(0, 0.1, n_orders))
        lots = rng.integers(1, 2000, n_orders)
        market.submit(Orders(account, stock, side, price, lots))
        market.clear()
        _check_books(model)
        model.step()
        _check_books(model)


def test_a_calm_run_conserves_every_step(small_model):
    while small_model.running:
        small_model.step()
        _check_books(small_model)
    assert small_model.steps == small_model.total_steps


def test_external_flows_are_recorded():
    model = MarketModel(rng=3, **{"universe.n_stocks": 20, "market.end": "2023-01-05"})
    model.ledger.external_cash(np.array([0, 1]), np.array([500_00, -200_00]))
    _check_books(model)
    assert model.ledger.external == 300_00
    model.ledger.cash[0] += 1  # a fen from nowhere is caught
    assert model.ledger.conservation_error()[0] == 1
