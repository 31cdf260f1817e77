"""Basis arbitrageurs buy deep discounts, only as far as stock can be borrowed, and unwind."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from agents.arbitrage import (
    NEAR,
    Arbitrageurs,
    CarryArbitrageurs,
    IndexSwitchers,
    _borrow_shares,
    _Legs,
)
from agents.base import ArrayAgent, Population
from agents.market_maker import OVER_LIMIT_BID, FuturesMakers
from model import MarketModel
from model.lending import LendingDesk
from model.orders import Orders

BASE = {
    "universe.n_stocks": 80,
    "market.start": "2024-01-02",
    "market.end": "2024-02-09",
    "noise_traders.n_agents": 200,
    "fundamental_traders.n_agents": 20,
    "futures.enabled": True,
    "arbitrage.capital_bn": 20.0,
}
IC_IM = np.array([1, 2])  # futures rows the arbitrageurs trade by default


class Dumper(Population):
    """A test hedger: sells (``side`` -1) or buys (+1) IC and IM at the limit price."""

    agent_class = ArrayAgent

    def __init__(self, model, accounts, lots: int) -> None:
        super().__init__(model, accounts)
        self.lots = lots
        self.side = 0  # -1 dump, +1 buy, 0 idle

    def decide(self, rows: np.ndarray) -> Orders:
        accounts = self.accounts[rows]
        self.market.cancel_accounts(accounts)
        shape = (rows.size, 2)
        instrument = np.broadcast_to(self.model.futures.instrument[IC_IM], shape)
        side = np.full(shape, self.side, dtype=np.int8)
        price = self.market.limit_price(instrument, side)
        lots = np.full(shape, self.lots if self.side else 0)
        return Orders(
            np.repeat(accounts, 2), instrument.ravel(), side.ravel(), price.ravel(), lots.ravel()
        )


def build(**overrides) -> tuple[MarketModel, Arbitrageurs, Dumper]:
    """A small model (which wires its arbitrageurs and lending desk) plus a futures dumper."""
    model = MarketModel(rng=1, **{**BASE, **overrides})
    assert isinstance(model.lending, LendingDesk)
    arbs = next(p for p in model.populations if isinstance(p, Arbitrageurs))
    dumper = Dumper(model, model.ledger.open_accounts(np.array([1e13])), lots=150)
    model.populations.insert(model.populations.index(arbs), dumper)
    return model, arbs, dumper


def run_days(model: MarketModel, days: int) -> list[np.ndarray]:
    """Step ``days`` trading days, checking the books every step; return the bases seen."""
    seen = []
    for _ in range(days * model.steps_per_day):
        model.step()
        cash_drift, drift = model.ledger.conservation_error()
        assert cash_drift == 0
        assert not drift.any()
        seen.append(model.basis())
    return seen


def short_shares(model: MarketModel, arbs: Arbitrageurs) -> tuple[int, int]:
    """(shares owed on loans, shares of borrowed stock sold) of all arbitrageurs."""
    borrower, stock, owed = model.lending.loans(arbs.accounts)
    held = model.ledger.holding(borrower, stock)
    return int(owed.sum()), int(owed.sum() - held.sum())


def deep_discount(model: MarketModel) -> None:
    """Hold the signal at a deep discount (the dumper supplies the contracts to buy)."""
    model.basis = lambda: np.array([0.0, -0.3, -0.3])


def test_a_dumped_future_draws_the_arbitrage_bid():
    model, arbs, dumper = build()
    run_days(model, 1)
    assert not arbs.futures(arbs.rows).any()  # a normal basis: nothing to do
    dumper.side = -1
    bases = run_days(model, 3)
    assert min(b[1:].min() for b in bases) < -model.config.arbitrage.threshold
    assert (arbs.futures(arbs.rows).sum(axis=0) > 0).all()  # long IC and IM
    owed, sold = short_shares(model, arbs)
    assert owed > 0 and sold > 0  # short the stock, with borrowed shares


def test_the_position_is_hedged_and_capped_by_capital():
    model, arbs, dumper = build()
    dumper.side = -1
    deep_discount(model)
    run_days(model, 6)
    fut = arbs.futures(arbs.rows)  # (2, 2)
    notional = float((fut * arbs.contract_value()).sum())
    capital = float(arbs.capital.sum())
    assert 0.8 * capital < notional <= capital * 1.01
    # The short leg follows the futures a step behind.
    _, stock, shares = model.lending.loans(arbs.accounts)
    short_cny = float((shares * model.market.last[stock]).sum()) / 100
    assert 0.85 * notional < short_cny < 1.05 * notional
    assert short_shares(model, arbs)[1] > 0.8 * short_shares(model, arbs)[0]  # mostly sold


def test_without_lendable_stock_no_futures_are_bought():
    model, arbs, dumper = build(
        **{"lending.institutional_pct_float": 0.0, "lending.restricted_pct_float": 0.0}
    )
    dumper.side = -1
    deep_discount(model)
    run_days(model, 3)
    assert arbs.active.all()  # they wanted to
    assert not arbs.futures(arbs.rows).any()
    assert short_shares(model, arbs) == (0, 0)


def test_without_a_lending_desk_they_do_nothing():
    model, arbs, dumper = build()
    model.lending = None
    dumper.side = -1
    deep_discount(model)
    run_days(model, 2)
    assert not arbs.futures(arbs.rows).any()


def test_they_unwind_when_the_basis_normalizes():
    model, arbs, dumper = build()
    dumper.side = -1
    deep_discount(model)
    run_days(model, 3)
    assert arbs.futures(arbs.rows).any()
    dumper.side = 1  # hedgers buy back: the discount closes
    model.basis = lambda: np.zeros(3)  # and stays closed
    run_days(model, 6)
    assert not arbs.futures(arbs.rows).any()
    assert short_shares(model, arbs) == (0, 0)
    assert not model.ledger.holding(
        np.repeat(arbs.accounts, arbs.hedge_stock.size), np.tile(arbs.hedge_stock, arbs.n)
    ).any()


def test_recalled_loans_are_bought_in_and_the_futures_cut():
    curb = {"market.start": "2024-01-22", "lending.t1_cut": 1.0, "lending.recall_per_day": 0.5}
    model, arbs, dumper = build(**curb)
    dumper.side = -1
    deep_discount(model)
    run_days(model, 4)  # to 2024-01-25: positions open
    fut_before = np.abs(arbs.futures(arbs.rows)).sum()
    owed_before, _ = short_shares(model, arbs)
    assert fut_before > 0 and owed_before > 0
    bought_in = 0.0
    for _ in range(3 * model.steps_per_day):  # 01-26, then 01-29 on: institutional supply gone
        model.step()
        bought_in += arbs.buy_ins_cny
    assert bought_in > 0
    assert short_shares(model, arbs)[0] < owed_before
    assert np.abs(arbs.futures(arbs.rows)).sum() < fut_before


def test_one_row_at_a_time_gives_the_same_kind_of_orders():
    model, arbs, dumper = build()
    dumper.side = -1
    deep_discount(model)
    run_days(model, 2)
    orders = arbs.decide(np.array([1]))
    assert len(orders) > 0 and set(orders.account.tolist()) == {int(arbs.accounts[1])}


def test_the_agent_engine_runs_the_same_rules():
    model, arbs, dumper = build(engine="agents")
    dumper.side = -1
    deep_discount(model)
    run_days(model, 2)
    assert (arbs.futures(arbs.rows) > 0).all()
    assert short_shares(model, arbs)[1] > 0


def _leg_cny(arbs: Arbitrageurs, legs: _Legs, shares: np.ndarray) -> np.ndarray:
    """(r, K) CNY value at last prices of ``shares`` (r*H,) summed per contract leg."""
    value = shares * arbs.market.last[legs.stock] / 100.0
    return np.bincount(legs.slot, value, minlength=legs.size).reshape(legs.shape)


def _numpy_borrow_shares(arbs: Arbitrageurs, rows, legs, room: np.ndarray) -> np.ndarray:
    """The shares ``Arbitrageurs._borrow`` asks for, as numpy passes worked them out."""
    owed, due = arbs._loans(legs)
    unhedged = arbs.futures(rows) * arbs.contract_value()[None, :] - _leg_cny(
        arbs, legs, owed - due
    )
    amount = np.where(arbs.active[rows], np.maximum(unhedged, 0.0), 0.0)
    first = np.minimum(amount.ravel()[legs.slot] * legs.weight, room)
    left = room - first
    short = amount.ravel() - np.bincount(legs.slot, first, minlength=legs.size)
    spare = np.bincount(legs.slot, left, minlength=legs.size)
    share = np.clip(short / np.maximum(spare, 1e-9), 0.0, 1.0)[legs.slot]
    return (first + left * share) * 100.0 / arbs.market.last[legs.stock]


def _numpy_orders(arbs: Arbitrageurs, rows: np.ndarray, legs: _Legs) -> Orders:
    """``Arbitrageurs._orders`` as it was in numpy passes (stock orders, then futures)."""
    market, ledger, lot = arbs.market, arbs.model.ledger, arbs.market.lot
    spec, thr = arbs.model.futures, arbs.cfg.threshold
    owed, due = arbs._loans(legs)
    stock = legs.stock
    active = arbs.active[rows].ravel()[legs.slot]
    held, sellable = ledger.holding_and_sellable(legs.account, stock)
    price = market.last[stock].astype(np.float64)
    buy_in = np.maximum(due - held, 0)
    lent = _leg_cny(arbs, legs, owed - due)
    excess = np.maximum(lent - arbs.futures(rows) * arbs.contract_value()[None, :], 0.0)
    share = (excess / np.maximum(lent, 1e-9)).ravel()[legs.slot]
    cover = np.where(active, 0.0, share * np.maximum(owed - due - held, 0))
    sell = np.where(active, np.minimum(sellable, held - due), 0)
    bought_in = float((buy_in * price).sum()) / 100.0
    arbs.buy_ins_cny += bought_in
    arbs.model.lending.buy_ins_total += bought_in
    buy_lots = np.ceil((buy_in + cover) / lot)
    side = np.where(buy_lots > 0, 1, -1).astype(np.int8)
    lots = np.where(side > 0, buy_lots, np.maximum(sell, 0) // lot)
    near = np.where(side > 0, price * (1.0 + NEAR), price)
    order_price = np.where(buy_in > 0, market.limit_price(stock, side), near)
    stock_orders = Orders(legs.account, stock, side, order_price, lots)

    value = arbs.contract_value()[None, :]
    held = arbs.futures(rows)
    target = (arbs.capital[rows] / arbs.contracts.size)[:, None] * arbs.active[rows]
    gap = arbs.cfg.speed * np.maximum(target - lent, 0.0)
    room = np.bincount(legs.slot, arbs._room_cny(legs), minlength=legs.size)
    capacity = np.minimum(gap, room.reshape(legs.shape))
    opening = np.floor((lent + capacity) / value)
    unwinding = np.minimum(np.floor(lent / value), np.floor((1.0 - arbs.cfg.speed) * held))
    want = np.where(arbs.active[rows], opening, np.maximum(unwinding, 0))
    recalled = _leg_cny(arbs, legs, due) > 0
    want = np.where(recalled, np.minimum(want, np.floor(lent / value)), want)
    trade = want - held
    side = np.sign(trade).astype(np.int8)
    instrument = np.broadcast_to(spec.instrument[arbs.contracts], trade.shape)
    band = np.where(side > 0, np.floor(arbs.band_ticks(-thr / 2)), np.ceil(arbs.band_ticks(-thr)))
    price = np.where(recalled & (side < 0), market.limit_price(instrument, side), band)
    futures_orders = Orders(
        np.repeat(arbs.accounts[rows], arbs.contracts.size),
        instrument.ravel(),
        side.ravel(),
        price.ravel(),
        np.abs(trade).ravel(),
    )
    return Orders.concat([stock_orders, futures_orders])


def _recalled() -> tuple[MarketModel, Arbitrageurs, _Legs]:
    """Desks with one leg open and one unwinding, loans recalled in full, in half and not at
    all, some shares gone (buy-ins), and the first desk's loans beyond its futures."""
    model, arbs, dumper = build(**{"market.start": "2024-01-22"})
    dumper.side = -1
    deep_discount(model)
    run_days(model, 4)
    desk, ledger, lot = model.lending, model.ledger, model.market.lot
    rows = arbs.rows
    arbs.active[:] = [[True, False], [False, True]]  # one leg of each desk unwinding
    legs = arbs._legs(rows)
    loan = desk.loan_rows(arbs.accounts)
    assert loan.size > 10
    third = np.arange(loan.size) % 3  # recalled in full, in half, not at all
    half = desk.owed[loan] // 2 // lot * lot
    desk.recall_due[loan] = np.select([third == 0, third == 1], [desk.owed[loan], half], 0)
    gone = loan[::4]  # these shares went elsewhere: a recall of them is bought in
    borrower, stock = np.divmod(desk.key[gone], desk.n_stocks)
    give = ledger.holding(borrower, stock)
    ledger.transfer(borrower, np.full(gone.size, desk.lender), stock, give, locked=False)
    # The first desk sells three quarters of its futures to the dumper: its loans outgrow
    # them (covers); the second's outgrow what is left on loan (futures sold at the limit).
    cut = arbs.futures(rows[:1])[0] // 4 * 3
    ledger.settle_futures(np.full(2, arbs.accounts[0]), arbs.contracts, -cut)
    ledger.settle_futures(np.full(2, dumper.accounts[0]), arbs.contracts, cut)
    return model, arbs, legs


def test_compiled_orders_match_the_numpy_rules_bit_for_bit():
    """Desks opening and unwinding, loans recalled in part and in full, some beyond what is
    held (buy-ins) and some covered by futures no more: the same orders and buy-ins."""
    model, arbs, legs = _recalled()
    desk, rows = model.lending, arbs.rows
    kept = copy.deepcopy((arbs.buy_ins_cny, desk.buy_ins_total))

    got = arbs._orders(rows, legs)
    got_buy_ins = arbs.buy_ins_cny, desk.buy_ins_total
    arbs.buy_ins_cny, desk.buy_ins_total = kept
    want = _numpy_orders(arbs, rows, legs)
    for name in ("account", "stock", "side", "price", "lots"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
        assert getattr(got, name).dtype == getattr(want, name).dtype
    assert got_buy_ins == (arbs.buy_ins_cny, desk.buy_ins_total) and got_buy_ins[0] > 0
    is_stock = got.stock < model.universe.n
    buy, sell = is_stock & (got.side > 0) & (got.lots > 0), is_stock & (got.side < 0)
    limit = model.market.limit_price(got.stock, got.side)
    assert (buy & (got.price == limit)).any() and (buy & (got.price != limit)).any()
    assert (sell & (got.lots > 0)).any() and (sell & (got.lots == 0)).any()
    fut = ~is_stock & (got.lots > 0)
    assert (fut & (got.side > 0)).any() and (fut & (got.side < 0) & (got.price == limit)).any()


def test_compiled_borrowing_matches_the_numpy_rules_bit_for_bit():
    """Open legs short of loans, with the desk's room as it is, and cut so that names fill up
    and what they can't take goes to the others in their leg: the same shares asked for."""
    model, arbs, legs = _recalled()
    rows, market = arbs.rows, model.market
    owed, due = arbs._loans(legs)
    room = arbs._room_cny(legs)
    # A third of the names can lend nothing, a third a thousandth of their room (they fill
    # up), a third all of it (they take what the others can't); then every name a tenth of
    # it, so that the names with room left can't take all that the others can't.
    third = np.arange(room.size) % 3
    cut = room * np.select([third == 0, third == 1], [0, 1e-3], 1)
    for lendable in (room, room / 10, cut):
        got = _borrow_shares(
            arbs.active[rows],
            legs.slot,
            legs.weight,
            owed,
            due,
            market.last[legs.stock],
            lendable,
            arbs.futures(rows),
            arbs.contract_value(),
        )
        want = _numpy_borrow_shares(arbs, rows, legs, lendable)
        np.testing.assert_array_equal(got, want)
        assert (got > 0).any()
    full = got == lendable * 100.0 / market.last[legs.stock]
    assert (full & (got > 0)).any() and (~full & (got > 0)).any() and (got == 0).any()


# -- the mirror trade: short futures at a premium, long stock bought with cash -------------
def build_desks(
    kind: type, capital: str, bn: float, **overrides
) -> tuple[MarketModel, Population, Dumper]:
    """A small model whose only basis desks are ``kind``, with ``bn`` under their capital
    key ``capital``, plus a futures dumper deciding just before them."""
    overrides = {**BASE, "arbitrage.capital_bn": 0.0, capital: bn, **overrides}
    model = MarketModel(rng=1, **overrides)
    desks = next(p for p in model.populations if type(p) is kind)
    dumper = Dumper(model, model.ledger.open_accounts(np.array([1e13])), lots=150)
    model.populations.insert(model.populations.index(desks), dumper)
    return model, desks, dumper


def build_carry(**overrides) -> tuple[MarketModel, CarryArbitrageurs, Dumper]:
    """A small model with cash-and-carry desks only, plus a futures buyer."""
    return build_desks(CarryArbitrageurs, "arbitrage.carry_capital_bn", 20.0, **overrides)


def carry_stock(model: MarketModel, carry: CarryArbitrageurs) -> float:
    """CNY of hedge names the carry desks hold at last prices."""
    accounts = np.repeat(carry.accounts, carry.hedge_stock.size)
    stock = np.tile(carry.hedge_stock, carry.n)
    shares = model.ledger.holding(accounts, stock)
    return float((shares * model.market.last[stock]).sum()) / 100


def test_a_bought_future_draws_the_carry_offer():
    model, carry, dumper = build_carry()
    run_days(model, 1)
    assert not carry.futures(carry.rows).any()  # a normal basis: nothing to do
    dumper.side = 1
    bases = run_days(model, 3)
    assert max(b[1:].max() for b in bases) > model.config.arbitrage.threshold
    assert (carry.futures(carry.rows).sum(axis=0) < 0).all()  # short IC and IM
    assert carry_stock(model, carry) > 0  # long the stock


def test_the_carry_position_is_hedged_capped_and_needs_no_lender():
    model, carry, dumper = build_carry()
    assert model.lending is None  # no desk to borrow from: the carry trade needs none
    dumper.side = 1
    model.basis = lambda: np.array([0.0, 0.3, 0.3])
    run_days(model, 6)
    notional = -float((carry.futures(carry.rows) * carry.contract_value()).sum())
    capital = float(carry.capital.sum())
    assert 0.8 * capital < notional <= capital * 1.01
    assert 0.85 * notional < carry_stock(model, carry) < 1.05 * notional


def test_the_carry_trade_unwinds_when_the_premium_closes():
    model, carry, dumper = build_carry()
    dumper.side = 1
    model.basis = lambda: np.array([0.0, 0.3, 0.3])
    run_days(model, 3)
    assert carry.futures(carry.rows).any() and carry_stock(model, carry) > 0
    dumper.side = -1
    model.basis = lambda: np.zeros(3)
    run_days(model, 8)
    assert not carry.futures(carry.rows).any()
    assert carry_stock(model, carry) == 0


def test_the_agent_engine_runs_the_carry_rules():
    model, carry, dumper = build_carry(engine="agents")
    dumper.side = 1
    model.basis = lambda: np.array([0.0, 0.3, 0.3])
    run_days(model, 2)
    assert (carry.futures(carry.rows) < 0).all()


# -- the index switchers: long-only baskets swapped into futures at a discount ----------
def build_switchers(**overrides) -> tuple[MarketModel, IndexSwitchers, Dumper]:
    """A small model with index switchers only (no arbitrageurs), plus a futures dumper."""
    return build_desks(IndexSwitchers, "arbitrage.switch_capital_bn", 40.0, **overrides)


def switched_share(model: MarketModel, switchers: IndexSwitchers) -> tuple[float, np.ndarray]:
    """(share of the start's basket shares still held, (K,) futures held / full)."""
    accounts = np.repeat(switchers.accounts, switchers.hedge_stock.size)
    held = model.ledger.holding(accounts, switchers.basket.ravel())
    futures = switchers.futures(switchers.rows).sum(axis=0) / switchers.full.sum(axis=0)
    return float(held.sum() / switchers.shares0.sum()), futures


def test_index_switchers_start_with_their_baskets_worth_their_capital():
    model, switchers, _ = build_switchers()
    assert model.lending is None  # no lender: a switch needs none
    worth = switchers.shares0 * model.market.last[switchers.hedge_stock][None, :] / 100.0
    capital = float(switchers.capital.sum())
    assert 0.9 * capital < worth.sum() <= capital
    # A basket for each of IF, IC and IM, each worth a third, as whole contracts.
    value = switchers.contract_value()
    per_contract = (switchers.full * value[None, :]).sum(axis=0)
    np.testing.assert_allclose(per_contract, capital / 3, rtol=0.1)
    assert not switchers.futures(switchers.rows).any()


def lasting(model: MarketModel, switchers: IndexSwitchers, basis: float) -> None:
    """A basis of ``basis`` on every contract, and one that has lasted: the switchers'
    smoothed view of it too."""
    model.basis = lambda: np.full(3, basis)
    switchers.smoothed[:] = basis


def test_the_switch_waits_for_a_discount_that_lasts():
    """A discount past the threshold moves the smoothed basis a tenth of the way an open:
    two sessions of it switch nothing, and it switches once the smoothed basis is past."""
    model, switchers, dumper = build_switchers()
    dumper.side = -1
    model.basis = lambda: np.full(3, -0.3)  # three times the 10% threshold
    run_days(model, 2)  # two opens: -0.057
    assert not switchers.futures(switchers.rows).any()
    assert switchers.smoothed == pytest.approx(np.full(3, -0.3 * (1 - 0.9**2)))
    run_days(model, 3)  # the fourth open: -0.103
    assert (switchers.futures(switchers.rows)[:, 1:] > 0).all()


def test_a_discount_past_the_threshold_swaps_the_basket_for_futures_and_back():
    """Past ``switch_threshold`` the desks buy futures and sell the basket as they fill,
    their exposure kept, at the pace of ``switch_days``; back above half of it they sell
    the futures and buy the basket."""
    model, switchers, dumper = build_switchers(**{"arbitrage.switch_days": 2.0})
    lasting(model, switchers, -0.05)  # inside the threshold: hold
    run_days(model, 1)
    assert switched_share(model, switchers)[0] == 1.0
    assert not switchers.futures(switchers.rows).any()
    lasting(model, switchers, -0.3)
    dumper.side, dumper.lots = -1, 5000  # sellers of IC and IM to buy from, plenty
    run_days(model, 1)  # half of the way at most, two days to switch all
    futures = switched_share(model, switchers)[1]
    assert (futures[1:] > 0.4).all() and (futures <= 0.5 + 1.0 / switchers.full.min()).all()
    run_days(model, 5)
    stock, futures = switched_share(model, switchers)
    assert (futures[1:] > 0.8).all() and (futures <= 1.0).all()
    assert stock < 0.4
    # The index exposure held the same: stock's and futures' shares sum to about one.
    legs = switchers.hedge_leg
    accounts = np.repeat(switchers.accounts, switchers.hedge_stock.size)
    held = model.ledger.holding(accounts, switchers.basket.ravel()).reshape(switchers.basket.shape)
    for k in (1, 2):
        kept = held[:, legs == k].sum() / switchers.shares0[:, legs == k].sum()
        assert kept + futures[k] == pytest.approx(1.0, abs=0.1)
    lasting(model, switchers, -0.02)  # the discount closed
    dumper.side = 1  # buyers of IC and IM to sell to
    run_days(model, 8)
    stock, futures = switched_share(model, switchers)
    assert not switchers.futures(switchers.rows)[:, 1:].any()
    assert stock > 0.95


def test_a_settled_desk_looks_nothing_up_until_its_trade_opens():
    """A switch desk that is closed, flat and holds its basket can send no order, so it
    skips the look-ups until the discount opens its trade; then it trades as before."""
    model, switchers, dumper = build_switchers()
    lasting(model, switchers, -0.05)
    run_days(model, 1)
    assert switchers.quiet.all()
    looked_up = []
    holdings = model.ledger.holding_and_sellable
    model.ledger.holding_and_sellable = lambda *a: looked_up.append(1) or holdings(*a)
    run_days(model, 1)
    assert not looked_up and not switchers.futures(switchers.rows).any()
    lasting(model, switchers, -0.3)
    dumper.side = -1
    run_days(model, 1)
    assert looked_up and not switchers.quiet.any()
    assert switchers.futures(switchers.rows)[:, 1:].sum() > 0


def test_the_agent_engine_runs_the_switch_rules():
    model, switchers, dumper = build_switchers(engine="agents")
    dumper.side = -1
    lasting(model, switchers, -0.3)
    run_days(model, 2)
    assert (switchers.futures(switchers.rows)[:, 1:] > 0).all()


# -- the futures makers' long book, bound by lending (futures.mm_long_needs_lending) ------
def test_lending_bound_makers_carry_less_long_once_the_curb_cuts_supply():
    """A futures maker long hedges with borrowed stock: with ``mm_long_needs_lending`` its
    long limit is the limit times today's lendable supply over the first day's. Before
    the T+1 rule (2024-01-29) nothing differs from the plain makers (the restricted-share
    ban of October 2023 is before the start); after it, under the same dumping, their long
    limit is cut, they lean further and the discount is deeper. Past the limit they still
    bid a tenth of their depth."""
    runs = {}
    for bound in (False, True):
        model, _, dumper = build(**{"futures.mm_long_needs_lending": bound})
        makers = next(p for p in model.populations if isinstance(p, FuturesMakers))
        dumper.side = -1  # hedgers sell IC and IM all along: the makers end up long
        bases, limits = [], []
        while model.running:
            model.step()
            bases.append((model.date, model.basis()[IC_IM]))
            limits.append(makers._long_limit())
        runs[bound] = (model, makers, bases, limits)
    _, plain, base_plain, limit_plain = runs[False]
    model, bound, base_bound, limit_bound = runs[True]
    t1 = model.config.lending.t1_date
    before = [i for i, (day, _) in enumerate(base_plain) if day < t1]
    after = [i for i, (day, _) in enumerate(base_plain) if day >= t1]
    assert before and after
    for i in before:  # the same run, step for step, while supply is uncut
        np.testing.assert_array_equal(base_plain[i][1], base_bound[i][1])
        assert limit_bound[i] == limit_plain[i] == plain.limit_cny
    desk = model.lending
    ratio = desk.supply(model.date).sum() / desk.supply(model.days[0]).sum()
    assert ratio < 0.5
    assert limit_bound[-1] == pytest.approx(bound.limit_cny * ratio)
    assert set(limit_plain) == {plain.limit_cny}
    deeper = np.mean([base_bound[i][1] for i in after]) - np.mean([base_plain[i][1] for i in after])
    assert deeper < -0.02, deeper
    # Both long IC and IM; with a limit far below that, the plain makers bid nothing, the
    # bound ones a tenth of their depth.
    q = np.arange(3)
    for makers in (plain, bound):
        assert (makers.market.ledger.futures_position(makers.accounts)[q, q][1:] > 0).all()
        makers.limit_cny = 1.0
    np.testing.assert_array_equal(plain.side_scale(q, plain.accounts)[1:, 0], 0.0)
    np.testing.assert_allclose(bound.side_scale(q, bound.accounts)[1:, 0], OVER_LIMIT_BID)
