"""Quant-neutral products: risk lines, margin calls, redemptions, hedges, lending recalls."""

from __future__ import annotations

import numpy as np
import pytest

from agents.neutral_fund import NORMAL, STOPPED, WARNED
from model import MarketModel

EPISODE = {
    "universe.n_stocks": 80,
    "market.start": "2024-01-22",
    "market.end": "2024-02-09",
    "noise_traders.n_agents": 300,
    "fundamental_traders.n_agents": 20,
    "futures.enabled": True,
    "neutral.n_funds": 500,  # 8 products at 80 stocks
    "neutral.aum_bn": 300.0,
    "neutral.dma_share": 0.5,
}


@pytest.fixture
def model() -> MarketModel:
    m = MarketModel(rng=4, **EPISODE)
    m.step()
    return m


def _books_balance(m: MarketModel) -> None:
    cash, drift = m.ledger.conservation_error()
    assert cash == 0 and not drift.any()


def test_products_start_hedged_and_nearly_market_neutral(model):
    f = model.neutral
    spec = model.futures
    value = model.indices.level[spec.underlying] * spec.multiplier
    futures_short = -(model.ledger.futures_position(f.accounts) * value).sum()
    borrowed = f.lend_share * f.target_exposure(f.rows)
    longs = f.holdings_value(f.rows).sum()
    assert futures_short > 0
    assert 0.8 < (futures_short + borrowed.sum()) / longs < 1.2
    assert (f.leverage[f.is_dma] > f.leverage[~f.is_dma].max()).all()
    _books_balance(model)


def test_warning_line_cuts_and_stop_line_liquidates(model):
    f = model.neutral
    before = f.target_exposure(f.rows)
    # Make product 0 look like it lost 25% and product 1 like it lost 40% (more units, same money).
    f.units[0] *= f.nav[0] / (f.warning[0] - 0.02)
    f.units[1] *= f.nav[1] / (f.stop[1] - 0.02)
    f.begin_day()
    assert f.state[0] == WARNED and f.state[1] == STOPPED
    assert (f.state[2:] == NORMAL).all()
    after = f.target_exposure(f.rows)
    assert after[0] == pytest.approx(before[0] * (1 - f.cfg.warning_cut), rel=0.05)
    assert after[1] == 0.0
    orders = f.decide(f.rows)
    mine = orders.account == f.accounts[1]
    stock_sells = mine & (orders.side < 0) & (orders.stock < model.universe.n)
    assert stock_sells.sum() > 0 and f.forced_sales > 0
    assert model.liquidated_funds() == 1
    # A stopped product also buys back its futures shorts.
    fut_buys = mine & (orders.side > 0) & (orders.stock >= model.universe.n)
    assert fut_buys.any()


def test_drawdown_line_cuts_exposure_until_nav_wins_back_half_of_it():
    m = MarketModel(rng=4, **EPISODE, **{"neutral.drawdown_line": 0.1, "neutral.line_spread": 0.0})
    m.step()
    f = m.neutral
    before = f.target_exposure(f.rows)
    # Product 0 falls 12% from its peak: still far above the warning line on NAV per unit.
    f.peak[0] = f.nav[0] / 0.88
    f.begin_day()
    assert f.nav[0] > f.warning[0]
    assert f.state[0] == WARNED and (f.state[1:] == NORMAL).all()
    after = f.target_exposure(f.rows)
    assert after[0] == pytest.approx(before[0] * (1 - f.cfg.warning_cut), rel=0.05)
    f.peak[0] = f.nav[0] / 0.94  # won back less than half of the 10% budget: still cut
    f.begin_day()
    assert f.state[0] == WARNED
    f.peak[0] = f.nav[0] / 0.97  # a 3% drawdown: back to normal
    f.begin_day()
    assert f.state[0] == NORMAL


def test_a_cut_held_without_a_new_low_is_rebuilt_from_a_new_base():
    m = MarketModel(
        rng=4,
        **EPISODE,
        **{"neutral.drawdown_line": 0.1, "neutral.line_spread": 0.0, "neutral.recovery_days": 3},
    )
    m.step()
    f = m.neutral
    f.peak[:2] = f.nav[:2] / 0.88  # both 12% below their peaks: cut
    f.begin_day()
    assert (f.state[:2] == WARNED).all()
    for _ in range(2):
        f.units[1] *= 1.01  # product 1 keeps making new lows; product 0 holds still
        f.begin_day()
        assert (f.state[:2] == WARNED).all()
    f.units[1] *= 1.01
    f.begin_day()
    # Three mornings after the cut, no new low: product 0 rebuilds, its NAV the new peak.
    assert f.state[0] == NORMAL and f.peak[0] == f.nav[0]
    assert f.state[1] == WARNED and f.peak[1] > f.nav[1] / 0.88


def test_a_discount_beyond_the_expected_alpha_stops_subscriptions_and_shrinks_books(model):
    f = model.neutral
    f.trailing[:] = 0.1  # a good quarter: investors want in
    units = f.units.copy()
    f.hedge_cost = 0.0
    f.begin_day()
    assert (f.units > units).all() and f.carry == 1.0
    planned = f.target_exposure(f.rows)
    # The cost is read off the futures: IC and IM below the index are a cost, at it none.
    level = model.indices.level[model.futures.underlying]
    model.market.last[model.universe.n :] = np.round(level * 0.98 / 0.2).astype(np.int64)
    assert f._discount() > 0.05
    model.market.last[model.universe.n :] = np.round(level / 0.2).astype(np.int64)
    assert f._discount() < 0.01
    # A discount that has cost 1.6 times the alpha for a while: no new money, a smaller book.
    f.hedge_cost = 1.6 * f.cfg.expected_alpha
    units = f.units.copy()
    f.begin_day()
    assert f.hedge_cost > f.cfg.expected_alpha
    assert np.allclose(f.units, units)
    assert 0.4 < f.carry < 0.7
    assert (f.target_exposure(f.rows) < 0.75 * planned).all()


def test_margin_call_forces_sales_whatever_the_nav(model):
    f = model.neutral
    dma = int(np.flatnonzero(f.is_dma)[0])
    account = f.accounts[dma]
    model.ledger.credit[account] = 0  # the broker pulls the credit line
    assert model.ledger.cash[account] < 0
    orders = f.decide(f.rows)
    basket_only = np.setdiff1d(f.basket[dma], f.hedge_stocks[dma])  # not the short-sale leg
    sells = (orders.account == account) & (orders.side < 0) & np.isin(orders.stock, basket_only)
    assert f.state[dma] == NORMAL
    assert sells.any() and f.forced_sales > 0
    prices = orders.price[sells]
    assert (prices < model.market.last[orders.stock[sells]]).all()  # priced to go


def test_redemptions_follow_drawdowns(model):
    f = model.neutral
    external = model.ledger.external
    units = f.units.copy()
    f.peak[:] = f.nav * 1.15  # every product is 13% below its peak
    f.begin_day()
    assert model.ledger.external < external  # money left the system
    assert (f.units < units).all()
    _books_balance(model)


def test_lending_curb_recalls_loans_and_moves_the_hedge_to_futures():
    # Plain products only: the test is about the hedge moving, not about DMA stop-outs.
    curb = {
        "lending.t1_cut": 0.9,
        "lending.t0_cut": 0.9,
        "lending.recall_per_day": 0.3,
        "neutral.dma_share": 0.0,
    }
    m = MarketModel(rng=4, **{**EPISODE, **curb})
    f, desk = m.neutral, m.lending
    _, _, owed0 = desk.loans(f.accounts)
    fut0 = -m.ledger.futures_position(f.accounts)[:, 1:].sum()
    assert owed0.sum() > 0
    while m.running:  # to 2024-02-09: nine sessions into the cut
        m.step()
        _books_balance(m)
    _, _, owed = desk.loans(f.accounts)
    assert owed.sum() < 0.6 * owed0.sum()  # recalled and repaid (bought in where needed)
    fut = -m.ledger.futures_position(f.accounts)[:, 1:].sum()
    assert (f.state == NORMAL).all()
    assert fut > fut0  # the lost stock hedge reappears as futures shorts


def test_loans_of_a_block_of_borrowers_are_those_of_the_same_set_in_any_order(model):
    accounts = model.neutral.accounts
    block = model.lending.loans(accounts)  # consecutive: one slice of the loan table
    shuffled = model.lending.loans(accounts[::-1])  # not consecutive: a search of every loan
    assert block[0].size and [b.tolist() for b in block] == [s.tolist() for s in shuffled]


def test_nav_by_kind_pools_back_to_the_whole(model):
    """The plain and DMA NAVs are unit-weighted over their own products and pool, by
    units, to the whole book's; a kind with no products reports NaN."""
    for _ in range(6):
        model.step()
    f = model.neutral
    f.nav = f.nav * np.linspace(0.8, 1.1, f.n)  # let the products differ
    plain, dma = model.neutral_nav(dma=False), model.neutral_nav(dma=True)
    u_plain, u_dma = f.units[~f.is_dma].sum(), f.units[f.is_dma].sum()
    assert u_plain > 0 and u_dma > 0 and plain != dma
    pooled = (plain * u_plain + dma * u_dma) / (u_plain + u_dma)
    assert model.neutral_nav() == pytest.approx(pooled, rel=1e-12)
    assert np.isnan(MarketModel(rng=4, **{**EPISODE, "neutral.dma_share": 0.0}).neutral_nav(True))
