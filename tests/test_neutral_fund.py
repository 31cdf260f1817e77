"""Quant-neutral products: risk lines, margin calls, redemptions, hedges, lending recalls."""

from __future__ import annotations

import copy
import datetime as dt

import numpy as np
import pytest

from agents.arbitrage import Arbitrageurs
from agents.neutral_fund import NORMAL, STOPPED, WARNED, NeutralFunds
from experiments.scenarios import load_scenario
from model import MarketModel
from model.lending import LendingDesk
from model.orders import CALM, FORCED, Orders
from model.universe import CSI500, CSI1000, REST

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
    assert stock_sells.sum() > 0 and (orders.duress[stock_sells] == FORCED).all()
    assert model.liquidated_funds() == 1
    # A stopped product buys its futures shorts back as its longs are sold, and sells
    # none on the way: its loans, all recalled, hedge until they are bought back.
    short = -model.ledger.futures_position(f.accounts[1:2])[0].sum()  # contracts
    longs = f.holdings_value(np.array([1]))[0]
    for _ in range(2 * model.steps_per_day):
        model.step()
        assert -model.ledger.futures_position(f.accounts[1:2])[0].sum() <= short
    assert f.state[1] == STOPPED
    sold = 1.0 - f.holdings_value(np.array([1]))[0] / longs
    covered = 1.0 + model.ledger.futures_position(f.accounts[1:2])[0].sum() / short
    assert sold > 0.1 and covered == pytest.approx(sold, abs=0.1)


def test_a_cut_hurries_buy_backs_never_a_new_short(model):
    """A product under-hedged when its warning line makes it urgent adds to its short
    only at the calm pace and near last: urgency hurries buying the hedge back, never
    selling more of it at a forced price."""
    f, ledger = model.neutral, model.ledger
    gone = ledger.fut_pos[f.accounts[0], 1:] // 2  # (2,) half its IC and IM shorts
    ledger.fut_pos[f.accounts[0], 1:] -= gone  # under-hedged (the books no longer net)
    f.units[0] *= f.nav[0] / (f.warning[0] - 0.02)
    f.begin_day()
    assert f.state[0] == WARNED
    futures = f.decide_parts(np.array([0]))[-1]
    assert (futures.side < 0).all()  # its held book wants the short back
    pace = 1.0 / f.cfg.trade_days / model.steps_per_day
    assert (futures.lots <= np.ceil(-gone * pace) + 1).all(), (futures.lots, gone)
    last = model.market.last[futures.stock]
    assert (futures.price >= np.floor(last * (1.0 - 0.001))).all()


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


def test_a_drawdown_budget_per_leverage_spares_a_levered_book_a_plain_one_cuts():
    """With ``drawdown_per_leverage`` a DMA product's budget is the line times its leverage:
    a 12% drawdown cuts a plain product and not a DMA one, which cuts past 30%."""
    m = MarketModel(
        rng=4,
        **EPISODE,
        **{
            "neutral.drawdown_line": 0.1,
            "neutral.line_spread": 0.0,
            "neutral.drawdown_per_leverage": True,
        },
    )
    m.step()
    f = m.neutral
    dma, plain = np.flatnonzero(f.is_dma)[0], np.flatnonzero(~f.is_dma)[0]
    assert f.leverage[dma] == 3.0
    assert f.drawdown_line[dma] == pytest.approx(0.3) and f.drawdown_line[plain] == 0.1
    f.peak[[dma, plain]] = f.nav[[dma, plain]] / 0.88
    f.begin_day()
    assert f.state[plain] == WARNED and f.state[dma] == NORMAL
    f.peak[dma] = f.nav[dma] / 0.68
    f.begin_day()
    assert f.nav[dma] > f.warning[dma] and f.state[dma] == WARNED


def _futures_orders(hedge_held_book: bool) -> tuple[np.ndarray, np.ndarray]:
    """A product just stopped, its longs not yet sold: its IC/IM orders of one decision
    (contracts, buys positive) and its IC/IM position, with the hedge sized on the book
    still held (``hedge_held_book``) or on the book planned (none left)."""
    m = MarketModel(rng=4, **EPISODE, **{"neutral.hedge_held_book": hedge_held_book})
    m.step()
    f = m.neutral
    f.state[0] = STOPPED  # its target is now nothing; its basket is still held
    parts = f.decide_parts(np.array([0]))
    futures = parts[-1]
    signed = futures.side.astype(np.int64) * futures.lots
    return signed, m.ledger.futures_position(f.accounts[:1])[0, 1:]


def test_the_hedge_covers_the_book_held_or_the_book_planned():
    """By default (``hedge_held_book``) a stopped product covers only what its held book no
    longer needs, so it stays short about as much as before; with the hedge sized on the
    book planned it buys its futures back at the liquidation pace whatever its longs."""
    planned, position = _futures_orders(False)
    held, same = _futures_orders(True)
    assert (position < 0).all() and (position == same).all()  # short IC and IM
    assert (planned > 0).all()  # buying back
    assert (np.abs(held) < np.abs(planned)).all()


@pytest.mark.parametrize("holds_low", [False, True])
def test_a_cut_held_without_a_new_low_is_rebuilt_from_a_new_base(holds_low):
    m = MarketModel(
        rng=4,
        **EPISODE,
        **{"neutral.drawdown_line": 0.1, "neutral.line_spread": 0.0, "neutral.recovery_days": 3},
        **{"neutral.recovery_holds_low": holds_low},
    )
    m.step()
    f = m.neutral
    f.peak[:3] = f.nav[:3] / 0.88  # all three 12% below their peaks: cut
    f.begin_day()
    assert (f.state[:3] == WARNED).all()
    for _ in range(2):
        f.units[1:3] *= 1.01  # products 1 and 2 keep making new lows; product 0 holds still
        f.begin_day()
        assert (f.state[:3] == WARNED).all()
    f.units[1:3] *= 1.01
    f.begin_day()
    # Three mornings after the cut, no new low: product 0 rebuilds, its NAV the new peak.
    assert f.state[0] == NORMAL and f.peak[0] == f.nav[0]
    assert f.state[1] == WARNED and f.peak[1] > f.nav[1] / 0.88
    # Product 2 turns up after its new lows (its drawdown stays beyond half its budget).
    # By default a cut that has lasted three mornings is rebuilt on the first morning
    # off its low; held to its low, it must hold that low three mornings first.
    f.units[2] /= 1.002
    f.begin_day()
    if not holds_low:
        assert f.state[2] == NORMAL and f.peak[2] == f.nav[2]
        return
    assert f.state[2] == WARNED
    f.units[2] /= 1.002
    f.begin_day()
    assert f.state[2] == WARNED
    f.begin_day()
    assert f.state[2] == NORMAL and f.peak[2] == f.nav[2]


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


def test_without_forced_selling_the_hedge_cost_cuts_no_book():
    """The counterfactual without forced selling holds its book through the hedge's cost
    as through its risk lines: the same cost that shrinks a book above stops new money
    here and cuts nothing."""
    m = MarketModel(rng=4, **{**EPISODE, "neutral.forced_selling": False})
    m.step()
    f = m.neutral
    f.trailing[:] = 0.1
    f.hedge_cost = 1.6 * f.cfg.expected_alpha
    units = f.units.copy()
    f.begin_day()
    assert f.hedge_cost > f.cfg.expected_alpha and np.allclose(f.units, units)
    assert f.carry == 1.0


@pytest.mark.parametrize("route", [0.0, 2.0])
def test_routing_by_cost_moves_the_hedge_to_the_cheaper_contract(route):
    m = MarketModel(rng=4, **{**EPISODE, "neutral.route_by_cost": route})
    m.step()
    f, n = m.neutral, m.universe.n
    level = m.indices.level[m.futures.underlying]  # (3,) IF, IC, IM
    im_share = f.cfg.im_share

    def price(ic: float, im: float) -> None:
        """IC and IM at these shares of their index (IF at its own)."""
        m.market.last[n:] = np.round(level * np.array([1.0, ic, im]) / 0.2).astype(np.int64)

    # IM 3% below its index and IC at it: IM's short costs far more a year.
    price(1.0, 0.97)
    for _ in range(30):
        f.begin_day()
    assert f.hedge_split.sum() == pytest.approx(1.0)
    if route == 0.0:
        assert f.hedge_split[1] == im_share
        return
    assert f.basis_seen[1] < f.basis_seen[0] - 0.1
    assert f.hedge_split[1] < im_share - 0.1
    # The products' cost is that of the mix they now hold, cheaper than their own mix's.
    basis = m.basis()[1:]
    assert f._discount() < -np.dot([1.0 - im_share, im_share], basis)
    # The other way round the hedge goes to IM, never past all of it.
    price(0.97, 1.0)
    for _ in range(60):
        f.begin_day()
    assert im_share < f.hedge_split[1] <= 1.0


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
    assert sells.any() and (orders.duress[sells] == FORCED).all()
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

    def futures_share() -> float:
        """The futures shorts' CNY over the long book's: what the futures hedge."""
        value = m.futures.contract_value(m.indices.level)[1:]  # (2,) CNY per IC, IM
        short = -(m.ledger.futures_position(f.accounts)[:, 1:] * value).sum()
        return float(short / f.holdings_value(f.rows).sum())

    def stock_share() -> float:
        """The borrowed stock's CNY over the long book's: what the short sales hedge."""
        _, stock, owed = desk.loans(f.accounts)
        return float((owed * m.market.last[stock]).sum() / 100 / f.holdings_value(f.rows).sum())

    fut0, stock0 = futures_share(), stock_share()
    assert owed0.sum() > 0
    peak = owed0.sum()  # what was owed before the recalls began (products borrow till then)
    while m.running:  # to 2024-02-09: nine sessions into the cut
        m.step()
        _books_balance(m)
        peak = max(peak, desk.loans(f.accounts)[2].sum())
    _, _, owed = desk.loans(f.accounts)
    due = desk.recall_due[desk.loan_rows(f.accounts)]
    # Nine sessions in, a third is repaid (bought in where needed, over the liquidation's
    # days) and nearly all the rest is recalled: what is owed and not recalled is about
    # the supply left (1% of the institutional part), and the recalls still to come.
    assert owed.sum() < 0.75 * peak
    assert (owed - due).sum() < 0.15 * peak
    assert (f.state == NORMAL).all()
    # The lost stock hedge reappears as futures shorts: the stock leg shrinks by over a
    # fifth, the futures grow, and together they still cover the book to within 5%.
    assert stock_share() < 0.8 * stock0
    assert futures_share() > fut0
    assert futures_share() + stock_share() > 0.95


def test_a_benchmark_core_holds_the_hedged_indices_members_split_as_the_hedge():
    cfg = {**EPISODE, "universe.n_stocks": 400, "neutral.im_share": 0.6}
    plain = MarketModel(rng=4, **cfg).neutral
    m = MarketModel(rng=4, **cfg, **{"neutral.core_share": 0.2})
    f, tier = m.neutral, m.indices.tier
    b = f.basket.shape[1]  # 60 names at 400 stocks
    core = round(0.2 * b)
    in_500 = (tier[f.basket] == CSI500).sum(axis=1)  # (n,) CSI 500 members held
    in_1000 = (tier[f.basket] == CSI1000).sum(axis=1)
    assert (in_500 >= round(core * 0.4)).all() and (in_1000 >= core - round(core * 0.4)).all()
    # The size tilt alone leaves the CSI 500 out; the rest of the basket is still its picks.
    assert (tier[plain.basket] == CSI500).sum(axis=1).max() < round(core * 0.4)
    assert (tier[f.basket] == REST).sum() > 0.5 * (tier[plain.basket] == REST).sum()
    # Each product draws its own core: the baskets are not all alike.
    assert len({tuple(np.sort(row)) for row in f.basket}) == f.n
    # The hedge still shorts no name a product holds long.
    held = np.zeros((f.n, m.universe.n), dtype=bool)
    np.put_along_axis(held, f.basket, True, axis=1)
    assert not np.take_along_axis(held, f.hedge_stocks, axis=1)[f.hedge_free].any()
    # A share that rounds to no names draws nothing: what is drawn after it (the names each
    # product shorts) is as without a core.
    tiny = MarketModel(rng=4, **cfg, **{"neutral.core_share": 0.001}).neutral
    assert np.array_equal(tiny.basket, plain.basket)
    assert np.array_equal(tiny.hedge_stocks, plain.hedge_stocks)


def test_no_product_borrows_a_name_it_holds_long():
    # At 80 stocks the baskets (60 names) leave some products fewer than their 20 hedge
    # names outside the basket: those borrow only the ones outside, or their short leg
    # would sell the basket's own shares as if short.
    m = MarketModel(rng=4, **EPISODE)
    f, desk = m.neutral, m.lending
    held = np.zeros((f.n, m.universe.n), dtype=bool)  # (n, S) names in each basket
    np.put_along_axis(held, f.basket, True, axis=1)
    assert np.take_along_axis(held, f.hedge_stocks, axis=1).any()  # the case in question
    for _ in range(3 * m.steps_per_day):  # products borrow each morning
        m.step()
        borrower, stock, owed = desk.loans(f.accounts)
        assert (owed > 0).sum() > 20
        assert not held[np.searchsorted(f.accounts, borrower), stock][owed > 0].any()


def test_borrowed_shares_sell_the_same_day_until_the_t1_rule():
    """Before 2024-01-29 borrowed shares may be sold short the day they are lent (the T+0
    route); from then on they wait a day, as bought shares do."""
    m = MarketModel(rng=4, **{**EPISODE, "market.start": "2024-01-25"})
    desk, ledger, lot = m.lending, m.ledger, m.market.lot
    idle = ledger.open_accounts(np.zeros(1))  # borrows, and trades nothing
    t1 = desk.cfg.t1_date
    assert t1 == dt.date(2024, 1, 29)

    def borrow_now() -> tuple[int, int, int]:
        """Borrow ten lots where the most is left to lend: (lent, held, sellable) gained."""
        room = desk.supply(m.date) - desk.owed_by_stock()
        stock = np.array([int(np.argmax(room))])
        held0, sell0 = ledger.holding_and_sellable(idle, stock)
        lent = int(desk.borrow(idle, stock, np.array([10.0 * lot]), m.date)[0])
        held1, sell1 = ledger.holding_and_sellable(idle, stock)
        return lent, int(held1[0] - held0[0]), int(sell1[0] - sell0[0])

    seen = {}
    while m.running and m.date <= t1 + dt.timedelta(days=1):
        m.step()
        if m.steps % m.steps_per_day == 1:  # each day's first slice, the day opened
            seen[m.date] = (borrow_now(), int(ledger.sellable(idle, np.arange(m.universe.n)).sum()))
    before, on, after = seen[dt.date(2024, 1, 26)], seen[t1], seen[dt.date(2024, 1, 30)]
    assert before[0][0] == before[0][1] == before[0][2] == 10 * lot  # lent, held, sellable
    assert on[0][0] == on[0][1] == 10 * lot and on[0][2] == 0  # held, not sellable today
    # The next morning the 01-29 loan is sellable with the earlier ones (30 lots before
    # the day's own borrowing).
    assert after[1] - after[0][2] == 30 * lot and after[0][2] == 0


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
    nav, units = model.recorded_nav(), f.units  # the step's record: each product's NAV
    assert np.ptp(nav[f.is_dma]) > 0 and np.ptp(nav[~f.is_dma]) > 0  # weights matter
    plain, dma = model.neutral_nav(dma=False), model.neutral_nav(dma=True)
    for got, kind in ((plain, ~f.is_dma), (dma, f.is_dma)):
        assert got == pytest.approx(np.dot(nav[kind], units[kind]) / units[kind].sum())
    u_plain, u_dma = f.units[~f.is_dma].sum(), f.units[f.is_dma].sum()
    assert u_plain > 0 and u_dma > 0 and plain != dma
    pooled = (plain * u_plain + dma * u_dma) / (u_plain + u_dma)
    assert model.neutral_nav() == pytest.approx(pooled, rel=1e-12)
    assert np.isnan(MarketModel(rng=4, **{**EPISODE, "neutral.dma_share": 0.0}).neutral_nav(True))


def _numpy_owed_value(desk: LendingDesk, accounts: np.ndarray, last: np.ndarray) -> np.ndarray:
    """``LendingDesk.owed_value`` as a bincount over the loans, as the products summed it."""
    b, s, sh = desk.loans(accounts)
    return np.bincount(np.searchsorted(accounts, b), sh * last[s] / 100.0, minlength=accounts.size)


def _numpy_short_leg(f: NeutralFunds, rows, accounts, target) -> Orders:
    """``NeutralFunds._short_leg`` as it was in numpy passes."""
    model, market, desk = f.model, f.market, f.model.lending
    borrower, stock, owed = desk.loans(accounts)
    key = borrower * desk.n_stocks + stock
    due = desk.recall_due[np.searchsorted(desk.key, key)] if key.size else owed
    held, sellable = model.ledger.holding_and_sellable(borrower, stock)
    keep_short = owed - due + np.maximum(due - held, 0)  # a recall hedges until bought in
    sell = np.minimum(sellable, np.maximum(held - due, 0))
    pace = 1.0 / (f.cfg.liquidation_days * model.steps_per_day)
    buy = np.ceil(np.maximum(due - held, 0) * pace)
    slot = np.searchsorted(accounts, borrower)
    value = np.bincount(slot, keep_short * market.last[stock] / 100.0, minlength=rows.size)
    f.lend_share[rows] = np.clip(value / np.maximum(target, 1.0), 0.0, 1.0)
    desk.buy_ins_total += float((buy * market.last[stock]).sum()) / 100.0
    lots = np.where(buy > 0, -(-buy // market.lot), sell // market.lot)
    side = np.where(buy > 0, 1, -1).astype(np.int8)
    last = market.last[stock]
    price = np.where(side > 0, last * (1.0 + f.cfg.forced_discount), last)
    return Orders(
        borrower, stock, side, price, lots, np.where(buy > 0, FORCED, CALM)
    )  # forced buy-ins


def _numpy_hedge(f: NeutralFunds, rows, accounts, target, urgent, hurry) -> Orders:
    """``NeutralFunds._hedge`` as it was in numpy passes."""
    model, market = f.model, f.market
    spec = model.futures
    level = model.indices.level[spec.underlying[1:]]
    value = level * spec.multiplier[1:]
    fut_share = 1.0 - f.lend_share[rows]
    want = -(target * fut_share)[:, None] * f.hedge_split[None, :] / value[None, :]
    held = model.ledger.futures_position(accounts)[:, 1:]
    c = f.cfg
    cover = urgent[:, None] & (want - held > 0)  # (r, 2) urgency hurries buy-backs only
    lots = np.trunc(
        (want - held) * np.where(cover, hurry, 1.0 / c.trade_days / model.steps_per_day)
    )
    lots = np.where(np.abs(want - held) < 1, 0, np.where(lots == 0, np.sign(want - held), lots))
    side = np.sign(lots).astype(np.int8)
    instr = np.broadcast_to(spec.instrument[1:], lots.shape)
    near = market.last[instr] * (1.0 + 0.001 * side)
    forced = market.last[instr] * (1.0 + c.forced_discount * side)
    price = np.where(cover, forced, near)
    return Orders(
        np.repeat(accounts, 2), instr.ravel(), side.ravel(), price.ravel(), np.abs(lots).ravel()
    )


def _assert_same_orders(got: Orders, want: Orders) -> None:
    for name in ("account", "stock", "side", "price", "lots", "duress"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
        assert getattr(got, name).dtype == getattr(want, name).dtype


def test_compiled_short_leg_and_hedge_match_the_numpy_rules_bit_for_bit(model):
    """Loans recalled in part and in full, some beyond what the borrower still holds (buy-
    ins), some not yet sold short, on products urgent and not, with targets from none to
    more than the book: the same orders (buy-ins flagged forced), lending shares and
    buy-ins as the numpy rules."""
    for _ in range(3):
        model.step()
    f, desk, ledger, lot = model.neutral, model.lending, model.ledger, model.market.lot
    rows, accounts = f.rows, f.accounts
    loan = desk.loan_rows(accounts)
    assert loan.size > 20
    third = np.arange(loan.size) % 3
    desk.recall_due[loan] = np.where(third == 0, desk.owed[loan], desk.owed[loan] // 2 // lot * lot)
    # Every fifth loan's shares go to another account (a recall of it must be bought in),
    # and the next's all but the recalled (nothing left to sell short).
    for gone, keep in ((loan[::5], 0), (loan[1::5], desk.recall_due[loan[1::5]])):
        borrower, stock = np.divmod(desk.key[gone], desk.n_stocks)
        give = np.maximum(ledger.holding(borrower, stock) - keep, 0)
        ledger.transfer(borrower, np.full(gone.size, desk.lender), stock, give, locked=False)
    # Every fifth from the fifth: shares borrowed and not yet sold short (held, to sell).
    borrower, stock = np.divmod(desk.key[loan[4::5]], desk.n_stocks)
    lender = np.full(borrower.size, desk.lender)
    ledger.transfer(lender, borrower, stock, desk.owed[loan[4::5]], locked=False)
    # Some loans repaid in full (their rows stay on the desk, owing nothing), and half of
    # some borrowed positions bought today (not sellable until tomorrow).
    desk.owed[loan[2::7]], desk.recall_due[loan[2::7]] = 0, 0
    borrower, stock = np.divmod(desk.key[loan[3::5]], desk.n_stocks)
    at = ledger.rows_of(borrower, stock)
    ledger.bought_today[at[at >= 0]] = ledger.shares[at[at >= 0]] // 2
    target = f.target_exposure(rows) * np.linspace(0.0, 1.5, rows.size)
    urgent = np.arange(rows.size) % 2 == 0
    kept = copy.deepcopy((f.lend_share, desk.buy_ins_total))

    got = f._short_leg(rows, accounts, target)
    got_share, got_buy_ins = f.lend_share.copy(), desk.buy_ins_total
    # The last product's IC target set to what it holds: a gap under one contract.
    spec = model.futures
    value = model.indices.level[spec.underlying[1]] * spec.multiplier[1]
    hedge_target = target.copy()
    hedge_target[-1] = -ledger.futures_position(accounts[-1:])[0, 1] * value
    hedge_target[-1] /= f.hedge_split[0] * (1.0 - f.lend_share[-1])
    # The second (not urgent) five contracts of IC short of it: a step trades one.
    hedge_target[1] = -(ledger.futures_position(accounts[1:2])[0, 1] - 5) * value
    hedge_target[1] /= f.hedge_split[0] * (1.0 - f.lend_share[1])
    c = f.cfg
    hurry = 1.0 if c.hedge_held_book else 1.0 / c.liquidation_days / model.steps_per_day
    got_hedge = f._hedge(rows, accounts, hedge_target, urgent, hurry)
    f.lend_share, desk.buy_ins_total = copy.deepcopy(kept)
    want = _numpy_short_leg(f, rows, accounts, target)
    _assert_same_orders(got, want)
    np.testing.assert_array_equal(got_share, f.lend_share)
    assert got_buy_ins == desk.buy_ins_total
    assert got_buy_ins > 0 and (got.side > 0).any() and (got.side < 0).any()
    assert ((got.side < 0) & (got.lots > 0)).any() and ((got.side < 0) & (got.lots == 0)).any()
    assert 0 < f.lend_share.max() <= 1.0
    # Some of the products (accounts not one block), with their loans among the others'.
    sub = rows[[0, 2, 3, rows.size - 1]]
    kept = copy.deepcopy((f.lend_share, desk.buy_ins_total))
    got_sub = f._short_leg(sub, accounts[sub], target[sub])
    got_sub_state = f.lend_share.copy(), desk.buy_ins_total
    f.lend_share, desk.buy_ins_total = copy.deepcopy(kept)
    _assert_same_orders(got_sub, _numpy_short_leg(f, sub, accounts[sub], target[sub]))
    np.testing.assert_array_equal(got_sub_state[0], f.lend_share)
    assert got_sub_state[1] == desk.buy_ins_total
    assert 0 < len(got_sub) < len(got)

    want_hedge = _numpy_hedge(f, rows, accounts, hedge_target, urgent, hurry)
    _assert_same_orders(got_hedge, want_hedge)
    # Both ways, at least one contract, and none under a contract's gap.
    assert (want_hedge.side > 0).any() and (want_hedge.side < 0).any()
    assert (want_hedge.lots == 0).any() and (want_hedge.lots == 1).any()


def test_owed_value_is_a_bincount_over_the_loans(model):
    desk, last = model.lending, model.market.last
    for accounts in (
        model.neutral.accounts,
        model.neutral.accounts[::2],
        model.neutral.accounts[3:4],
    ):
        np.testing.assert_array_equal(
            desk.owed_value(accounts, last), _numpy_owed_value(desk, accounts, last)
        )
    assert desk.owed_value(model.neutral.accounts, last).min() > 0


def _numpy_borrow(desk: LendingDesk, borrower, stock, shares, day) -> np.ndarray:
    """The lending desk's borrow before round 17: every request worked out, the lender's
    holdings looked up stock by stock."""
    room = np.maximum(desk.supply(day) - desk.owed_by_stock(), 0)
    held = desk.ledger.holding(np.full(desk.n_stocks, desk.lender), np.arange(desk.n_stocks))
    room = np.minimum(room, np.maximum(held, 0))
    order = np.argsort(stock, kind="stable")
    s_sorted = stock[order]
    want = np.floor(shares[order] / desk.lot) * desk.lot
    cum = np.cumsum(want)
    start = np.searchsorted(s_sorted, s_sorted)
    before = cum - want - (cum[start] - want[start])
    grant_sorted = np.clip(room[s_sorted] - before, 0, want)
    grant = np.empty_like(grant_sorted)
    grant[order] = grant_sorted
    grant = grant.astype(np.int64)
    ok = grant > 0
    if ok.any():
        desk.ledger.transfer(
            np.full(ok.sum(), desk.lender),
            borrower[ok],
            stock[ok],
            grant[ok],
            locked=not desk.same_day_route,
        )
        desk._add(borrower[ok], stock[ok], grant[ok])
        np.add.at(desk.lent_total, stock[ok], grant[ok])
    return grant


def _numpy_repay(desk: LendingDesk, borrower, stock, shares) -> np.ndarray:
    """The lending desk's repay before round 17: every request looked up."""
    key = borrower * desk.n_stocks + stock
    row = np.searchsorted(desk.key, key)
    found = np.append(desk.key, -1)[row] == key
    row = np.where(found, row, 0)
    owed = np.where(found, desk.owed[row] if desk.owed.size else 0, 0)
    held = desk.ledger.holding(borrower, stock)
    give = np.minimum(np.minimum(shares, owed), held)
    give = (give // desk.lot) * desk.lot
    ok = give > 0
    if ok.any():
        desk.ledger.transfer(
            borrower[ok], np.full(ok.sum(), desk.lender), stock[ok], give[ok], locked=False
        )
        np.subtract.at(desk.owed, row[ok], give[ok])
        np.add.at(desk.returned_total, stock[ok], give[ok])
        desk.recall_due[row[ok]] = np.maximum(desk.recall_due[row[ok]] - give[ok], 0)
    return give


def _same_books(a: MarketModel, b: MarketModel) -> None:
    for name in ("key", "owed", "recall_due", "lent_total", "returned_total"):
        np.testing.assert_array_equal(getattr(a.lending, name), getattr(b.lending, name))
    for name in ("key", "shares", "bought_today", "cash"):
        np.testing.assert_array_equal(getattr(a.ledger, name), getattr(b.ledger, name))


def test_borrow_and_repay_of_the_asked_requests_match_every_request_worked_out(model):
    """Requests for less than a lot (borrow) or nothing (repay) take no room and move
    nothing: working out only the others lends, repays and returns what working out
    every request did, with stocks asked for by several borrowers beyond their room."""
    rng = np.random.default_rng(14)
    f, day = model.neutral, model.date
    for _ in range(3):
        new, old = model, copy.deepcopy(model)
        borrower = rng.choice(f.accounts, 400)  # (n,) repeated borrowers and stocks
        desk = new.lending
        room = np.maximum(desk.supply(day) - desk.owed_by_stock(), 0)  # (S,) shares
        room = np.minimum(room, new.ledger.account_holdings(desk.lender))
        stock = rng.choice(np.flatnonzero(room > 0)[:12], 400)
        room = room[stock]
        shares = np.where(rng.random(400) < 0.5, 0.0, rng.random(400) * room / 5)
        shares[:20] = rng.random(20) * 99  # under a lot
        shares[20:60] = 100 + rng.random(40) * 99  # one lot
        grant = new.lending.borrow(borrower, stock, shares, day)
        np.testing.assert_array_equal(
            grant, _numpy_borrow(old.lending, borrower, stock, shares, day)
        )
        assert (grant > 0).any() and (grant == 0).any() and (grant < shares // 100 * 100).any()
        _same_books(new, old)
        loan_borrower, loan_stock, owed = new.lending.loans(f.accounts)
        ask = np.where(rng.random(owed.size) < 0.5, 0, owed // 2 + rng.integers(0, 300, owed.size))
        ask[::7] = rng.integers(1, 300, ask[::7].size)  # a lot or two, or less than one
        held = f.basket[0][~np.isin(f.basket[0], loan_stock[loan_borrower == f.accounts[0]])]
        loan_borrower = np.append(loan_borrower, np.full(held.size, f.accounts[0]))
        loan_stock = np.append(loan_stock, held)  # held, but never lent: nothing to repay
        ask = np.append(ask, np.full(held.size, 1_000))
        give = new.lending.repay(loan_borrower, loan_stock, ask)
        np.testing.assert_array_equal(
            give, _numpy_repay(old.lending, loan_borrower, loan_stock, ask)
        )
        assert (give > 0).any() and (give == 0).any()
        _same_books(new, old)


def test_the_record_marks_the_products_at_its_own_step(model):
    """The products mark their books at the open, for the day's decisions; a record marks
    them at its own step, so a close shows the close's NAV, which the next morning's
    mark, at the same prices, finds again."""
    f = model.neutral
    opened = f.nav.copy()
    while model.steps % model.steps_per_day:  # on to the day's close
        model.step()
    closing = model.recorded_nav().copy()
    assert np.abs(closing / opened - 1.0).max() > 1e-4  # the day's trading moved them
    model.step()  # the next morning's mark, before anything trades
    np.testing.assert_allclose(f.nav, closing, rtol=1e-12)


def test_forced_sales_are_each_steps_in_either_engine():
    """A step's forced sales, not a running total: the per-agent engine decides product
    by product, and the count must still start again each step."""
    sales = {}
    for engine in ("vectorized", "agents"):
        m = MarketModel(rng=4, engine=engine, **EPISODE)
        m.step()
        m.neutral.state[:] = STOPPED  # every product liquidates at its own pace
        sales[engine] = []
        for _ in range(3):
            m.step()
            sales[engine].append(m.forced_sales)
    for engine, series in sales.items():
        assert series[0] > 0 and series[2] < 1.5 * series[0], (engine, series)


@pytest.mark.parametrize("engine", ["vectorized", "agents"])
def test_forced_sales_are_what_the_forced_orders_filled(engine, monkeypatch):
    """Half the products stopped, liquidating into a thin book: a step's forced sales are
    the CNY of the fills of their forced orders, in the step they fill, not what they sent
    (more than fills; what does not fill is sent again the next step and counts only when
    it fills), and the healthy half's trades are not counted. No stock is lent, so every
    stock order of a stopped product is a forced sell: its fills are the reference."""
    m = MarketModel(rng=4, engine=engine, **EPISODE, **{"neutral.lending_hedge_share": 0.0})
    m.step()
    f, lot, n_stocks = m.neutral, m.market.lot, m.universe.n
    f.state[f.rows % 2 == 0] = STOPPED
    stopped = f.accounts[f.state == STOPPED]
    sent: list[Orders] = []
    decide_parts = f.decide_parts

    def spy(rows: np.ndarray) -> list[Orders]:
        parts = decide_parts(rows)
        sent.extend(parts)
        return parts

    monkeypatch.setattr(f, "decide_parts", spy)  # either engine decides through it
    for _ in range(3):
        sent.clear()
        m.step()
        orders = Orders.concat(sent)
        theirs = np.isin(orders.account, stopped) & (orders.stock < n_stocks)
        account, _, signed, price = m.market.last_fills
        filled = np.isin(account, stopped)
        shares = np.abs(signed[filled])
        assert m.forced_sales == float(np.dot(shares, price[filled])) / 100.0
        assert 0 < shares.sum() < orders.lots[theirs].sum() * lot  # partly filled
        sold = signed < 0
        assert m.forced_sales <= float(np.dot(-signed[sold], price[sold])) / 100.0
        # The reference holds: the stopped products' stock orders are sells, all forced,
        # and no other order is.
        assert (orders.side[theirs] < 0).all()
        np.testing.assert_array_equal(orders.duress == FORCED, theirs)


def test_an_expiry_close_records_the_markets_basis_not_the_settlement():
    """On an expiry day the futures settle at the index after the close; the record shows
    the session as it closed, so that close's basis is the hedgers' discount, not 0."""
    m = MarketModel(rng=4, **{**EPISODE, "market.start": "2024-01-15"})
    while m.date < dt.date(2024, 1, 19) or m.steps % m.steps_per_day:
        m.step()
    assert m.futures.is_expiry(m.day_index)
    closes = m.datacollector.get_model_vars_dataframe().groupby("date").last()
    im = closes["im_basis"]
    assert im.loc["2024-01-19"] < -0.02, im.to_dict()  # the products' short hedge


def test_the_morning_after_an_expiry_has_no_basis_and_nobody_acts_on_one():
    """After an expiry the futures' last prices are the settlement at the index: until the
    next auction the contracts have no price, so the basis is NaN and neither the basis
    desks (who closed every trade on a basis of 0) nor the products' hedge cost (which
    took 0 into its average) move on it; the auction gives it back."""
    small = {"universe.n_stocks": 400, "retail.n_agents": 6000, "market.end": "2023-07-26"}
    m = MarketModel(load_scenario("jan2024", overrides=small), rng=1)
    arbs = next(p for p in m.populations if type(p) is Arbitrageurs)
    expiry = int(m.futures.expiries[0])  # 2023-07-21
    while m.day_index < expiry or m.steps % m.steps_per_day:
        assert np.isfinite(m.basis()).all() or m.steps == 0
        m.step()
    assert np.isnan(m.basis()).all() and m.market.rolled
    active, hedge_cost = arbs.active.copy(), m.neutral.hedge_cost
    assert active.any() and hedge_cost > 0.05  # trades open, a discount priced in
    m.step()  # the next morning: the day opens, everybody decides, the auction runs
    assert (arbs.active == active).all()
    assert m.neutral.hedge_cost == hedge_cost
    assert not m.market.rolled and np.isfinite(m.basis()).all()


def test_a_rebuilt_book_is_the_leverage_on_the_days_equity_not_the_old_plan():
    m = MarketModel(rng=4, **EPISODE, **{"neutral.drawdown_line": 0.1, "neutral.line_spread": 0.0})
    m.step()
    f = m.neutral
    f.peak[0] = f.nav[0] / 0.88  # 12% off its peak: cut
    f.begin_day()
    assert f.state[0] == WARNED
    f.exposure[0] *= 1.5  # the plan the cut holds, sized on the equity before its losses
    f.peak[0] = f.nav[0] / 0.97  # won back: rebuilt this morning
    equity = f.equity(f.rows)[0]  # what the morning marks (nothing trades in between)
    f.begin_day()
    assert f.state[0] == NORMAL
    assert f.exposure[0] == pytest.approx(f.leverage[0] * equity, rel=1e-12)
    assert f.target_exposure(f.rows)[0] < f.cfg.max_leverage_ratio * f.leverage[0] * equity


def test_a_product_that_loses_more_than_its_equity_marks_nav_zero_not_below(model):
    """A DMA product's liquidation can lose more than its equity: the broker's credit pays
    the rest, and the investors' NAV per unit stops at zero (the records too), so the
    DMA products' worst days cannot read below -100%."""
    f = model.neutral
    dma = int(np.flatnonzero(f.is_dma)[0])
    ledger = model.ledger
    # Its longs go (to the long-term holders, so the books still balance) and leave the
    # broker's loan that bought them: equity below zero, within the credit line.
    _, stock, shares, _ = ledger.positions(f.accounts[[dma]])
    n = stock.size
    ledger.transfer(
        np.full(n, f.accounts[dma]), np.full(n, model.holders[0]), stock, shares, locked=False
    )
    assert f.equity(np.array([dma]))[0] < 0
    assert f.marked_nav()[dma] == 0.0
    assert (f.marked_nav() >= 0).all() and (f.marked_nav()[f.rows != dma] > 0).all()
    f.begin_day()
    assert f.nav[dma] == 0.0 and f.state[dma] == STOPPED
    model.step()  # the record of this step marks it at zero too
    assert model.neutral_nav(dma=True) >= 0.0
