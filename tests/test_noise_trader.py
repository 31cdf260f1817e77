"""The noise traders' compiled order pass against the numpy rules it replaced."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from agents.noise_trader import NoiseTraders
from agents.sampling import choice
from experiments.scenarios import load_scenario
from model import MarketModel
from model.orders import MARKET_ORDER_REACH, Orders
from tests.conftest import SMALL


def _numpy_decide(pop: NoiseTraders, rows: np.ndarray) -> Orders:
    """``NoiseTraders.decide`` as it was in numpy passes (the same draws, in the same order)."""
    market, c, rng = pop.market, pop.cfg, pop.rng
    accounts = pop.accounts[rows]
    market.cancel_share(accounts, c.cancel_rate, rng)
    attention = 1.0 + c.attention * np.maximum(market.vol_ratio() - 1.0, 0.0)
    rate = c.orders_per_stock_step * market.universe.n * attention.mean() / max(pop.n, 1)
    owner = np.repeat(np.arange(rows.shape[0]), rng.poisson(rate, size=rows.shape[0]))
    n = owner.shape[0]
    positions = market.ledger.positions_of(accounts)
    slot, h_stock, _, sellable = positions
    tilt = c.rebalancing * (pop.cash_share(rows, positions) - pop.cash_target[rows])
    buy = rng.random(n) < 0.5 * (1.0 + np.tanh(tilt))[owner]
    stock = choice(rng, attention / attention.sum(), n)
    cap_lots = np.full(n, np.iinfo(np.int64).max)
    count = np.bincount(slot, minlength=rows.shape[0])
    first = np.cumsum(count) - count
    held = count[owner]
    pick = first[owner] + np.floor(rng.random(n) * held).astype(np.int64)
    pick = np.minimum(pick, max(slot.shape[0] - 1, 0))
    sell = ~buy & (held > 0)
    if slot.shape[0]:
        stock = np.where(held > 0, h_stock[pick], stock)
        cap_lots = np.where(sell, sellable[pick] // market.lot, cap_lots)
    sell &= cap_lots > 0
    keep = buy | sell
    side = np.where(buy, 1, -1).astype(np.int8)
    price = market.last[stock].astype(np.float64)
    value = c.order_pct_cap * market.caps()[stock] * np.exp(c.size_sigma * rng.standard_normal(n))
    lots = np.maximum(np.floor(value * 100.0 / (price * market.lot)), 1)
    lots = np.where(cap_lots < 2 * lots, cap_lots, lots)
    price = price * np.exp(-side * rng.exponential(c.limit_offset, size=n))
    at_limit = rng.random(n) < c.market_order_share
    through = np.rint(market.last[stock] * (1.0 + side * MARKET_ORDER_REACH))
    market_price = np.where(
        side > 0,
        np.minimum(market.grid.upper[stock], through),
        np.maximum(market.grid.lower[stock], through),
    )
    price = np.where(at_limit, market_price, price)
    return Orders(accounts[owner], stock, side, price, lots).select(keep)


@pytest.mark.parametrize(("seed", "steps"), [(7, 3), (8, 6)])
def test_compiled_orders_match_the_numpy_rules_bit_for_bit(seed, steps):
    """Mid-day, with positions bought today (not yet sellable): the same orders, the same
    cancels and the generator left in the same state."""
    model = MarketModel(rng=seed, **SMALL)
    for _ in range(steps):
        model.step()
    pop = next(p for p in model.populations if isinstance(p, NoiseTraders))
    # A hundred of them hand on all but one to three lots of what they may sell, so some
    # sellers sell out.
    lot = model.market.lot
    slot, stock, shares, sellable = model.ledger.positions_of(pop.accounts[:100])
    left = (np.arange(shares.shape[0]) % 3 + 1) * lot + sellable % lot
    give = np.where(sellable == shares, np.maximum(shares - left, 0), 0)
    taker = np.full(give.shape[0], pop.accounts[-1])
    model.ledger.transfer(pop.accounts[slot], taker, stock, give, locked=False)
    pop.cash_target[:100] = 1.0  # and want all cash, so they sell rather than buy back
    market, state = model.market, model.rng.bit_generator.state
    kept = copy.deepcopy(market)
    got = pop.decide(pop.rows)
    got_state, got_resting = model.rng.bit_generator.state, market.book.account
    model.market, model.rng.bit_generator.state = kept, state
    want = _numpy_decide(pop, pop.rows)
    model.market = market
    for name in ("account", "stock", "side", "price", "lots"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
        assert getattr(got, name).dtype == getattr(want, name).dtype
    assert model.rng.bit_generator.state == got_state
    np.testing.assert_array_equal(got_resting, kept.book.account)
    sellable = model.ledger.sellable(got.account, got.stock)
    assert (got.side > 0).any() and (got.side < 0).any()
    assert (got.lots == sellable // lot)[got.side < 0].any()  # sold out
    through = np.rint(market.last[got.stock] * (1.0 + got.side * MARKET_ORDER_REACH))
    market_price = np.where(
        got.side > 0,
        np.minimum(market.grid.upper[got.stock], through),
        np.maximum(market.grid.lower[got.stock], through),
    ).astype(np.int64)
    assert (got.price == market_price).any()  # market orders among them
    assert (got.price != market.limit_price(got.stock, got.side)).any()


def test_positions_and_tilt_of_a_block_match_the_numpy_passes():
    """The compiled pass over a block's slice of the holdings table gives the positions of
    ``Ledger.positions_of`` and, bit for bit, the tilts of the bincount and numpy arithmetic
    it replaced, for the whole population, a part of it and one trader."""
    model = MarketModel(rng=7, **SMALL)
    for _ in range(3):
        model.step()
    pop = next(p for p in model.populations if isinstance(p, NoiseTraders))
    ledger, market, c = model.ledger, model.market, pop.cfg
    # A position sold out today stays in the table with no shares until the night.
    slot, stock, shares, _ = ledger.positions_of(pop.accounts[:5])
    ledger.transfer(pop.accounts[slot[:1]], pop.accounts[-1:], stock[:1], shares[:1], locked=False)
    pop.cash_target = np.random.default_rng(1).uniform(0.0, 1.0, pop.n)
    ledger.cash[pop.accounts[1]] = -12_345  # drawing on credit: no cash share
    for rows in (pop.rows, pop.rows[3:40], pop.rows[:1], pop.rows[7:8]):
        accounts = pop.accounts[rows]
        slot, stock, shares, sellable = ledger.positions_of(accounts)
        held = np.bincount(slot, shares * market.last[stock] / 100.0, minlength=rows.shape[0])
        cash = np.maximum(ledger.cash[accounts] / 100.0, 0.0)
        tilt = c.rebalancing * (cash / np.maximum(cash + held, 1.0) - pop.cash_target[rows])
        got = pop._positions_and_tilt(rows, accounts)
        for got_column, want in zip(got, (slot, stock, sellable, tilt), strict=True):
            np.testing.assert_array_equal(got_column, want)
            assert got_column.dtype == want.dtype
    assert (tilt != 0).all()


def test_noise_traders_carry_no_flow_between_sizes():
    """With no news and no value investors, noise traders with no view (and the makers
    who quote for them) leave large and small caps where they started, relative to each
    other. Buying new names drawn across the market, sized by their caps and paid for by
    selling the small names most traders held, lifted the CSI 300/500 tiers some 10-12%
    above the smaller tiers over a year (seeds 1-2 at 500 stocks); now 2-5% either way."""
    quiet = {
        "universe.n_stocks": 500,
        "fundamental_traders.n_agents": 0,
        "fundamentals.market_vol": 0.0,
        "fundamentals.idio_vol": 0.0,
        "fundamentals.size_vol": 0.0,
    }
    slopes = []
    for seed in (1, 2):
        model = MarketModel(load_scenario("calm"), rng=seed, **quiet)
        tier, start = model.indices.tier.copy(), model.market.last[:500].astype(np.float64)
        model.run()
        moved = np.log(model.market.last[:500] / start)  # (S,) no news: all of it is trading
        slopes.append(moved[tier <= 1].mean() - moved[tier >= 3].mean())
    assert abs(np.mean(slopes)) < 0.07, slopes
