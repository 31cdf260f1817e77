"""Public micro-cap funds: flows chase trailing returns, redemptions force selling."""

from __future__ import annotations

import numpy as np

from agents.public_fund import NEAR, IndexEnhancedFunds, PublicMicroCapFunds
from model import MarketModel
from model.orders import CALM, FORCED, PANIC, Orders
from model.universe import CSI500

BASE = {
    "universe.n_stocks": 80,
    "market.start": "2024-01-02",
    "market.end": "2024-01-31",
    "noise_traders.n_agents": 200,
    "fundamental_traders.n_agents": 20,
    "public_funds.aum_bn": 60.0,
}


def build(endow: bool = True, **overrides) -> tuple[MarketModel, PublicMicroCapFunds]:
    """A small model with three micro-cap funds, holding their baskets if ``endow``."""
    model = MarketModel(rng=1, **{**BASE, **overrides})
    cfg = model.config.public_funds
    cash_fen = np.full(3, cfg.aum_bn * 1e9 * model.scale * 100 / 3)
    funds = PublicMicroCapFunds(model, model.ledger.open_accounts(cash_fen), cfg, model.scale)
    if endow:  # the float is already handed out here: new shares, counted as float
        funds.endow(model.universe.float_shares // model.config.market.lot)
    model.populations.append(funds)
    return model, funds


def step_day(model: MarketModel, funds: PublicMicroCapFunds) -> float:
    """One trading day, books checked every step; return the CNY sold under duress (the
    model's forced sales: the funds are its only forced sellers here)."""
    forced = 0.0
    for _ in range(model.steps_per_day):
        model.step()
        cash_drift, drift = model.ledger.conservation_error()
        assert cash_drift == 0
        assert not drift.any()
        assert (model.ledger.cash[funds.accounts] >= 0).all()
        forced += model.forced_sales
    return forced


def cash_share(model: MarketModel, funds: PublicMicroCapFunds) -> np.ndarray:
    cash = model.ledger.cash[funds.accounts] / 100.0 - funds.payable
    return cash / funds.equity(funds.rows)


def test_baskets_are_the_smallest_caps_and_endowment_keeps_the_buffer():
    model, funds = build()
    caps = model.market.caps()
    assert caps[funds.basket[0]].max() <= np.sort(caps)[funds.basket.shape[1] - 1]
    assert funds.basket.shape[1] == round(200 * 0.2)  # basket_size * max(scale, 0.2)
    share = cash_share(model, funds)
    assert np.all(share >= 0.05 - 1e-9)
    assert np.all(share < 0.5)


def test_subscriptions_follow_good_trailing_returns():
    model, funds = build(**{"public_funds.flow_sensitivity": 0.05})
    step_day(model, funds)
    units = funds.units.copy()
    external = model.ledger.external
    funds.nav_history = [funds.nav / 1.2]  # as if up 20% over the window (the 2023 run-up)
    step_day(model, funds)
    assert np.all(funds.flow > 0.005)
    assert np.all(funds.units > units)
    assert model.ledger.external > external  # new money entered the system


def test_redemptions_after_a_drawdown_force_selling():
    model, funds = build(**{"public_funds.flow_sensitivity": 0.5})
    assert step_day(model, funds) == 0.0  # calm: nothing forced
    held0 = funds.equity(funds.rows) - model.ledger.cash[funds.accounts] / 100.0
    external = model.ledger.external
    funds.nav_history = [funds.nav * 1.5]  # as if down a third over the window
    forced = step_day(model, funds) + step_day(model, funds)
    assert np.all(funds.flow < 0)
    assert forced > 0
    assert model.ledger.external < external  # redemptions paid out of the system
    held = funds.equity(funds.rows) + funds.payable - model.ledger.cash[funds.accounts] / 100.0
    assert held.sum() < 0.95 * held0.sum()  # the basket was sold down
    assert np.all(cash_share(model, funds) > 0.05 - 0.01)  # and the buffer restored


def test_the_cash_buffer_is_kept_without_flows():
    model, funds = build(
        endow=False, **{"public_funds.flow_sensitivity": 0.0, "public_funds.aum_bn": 10.0}
    )
    assert np.allclose(cash_share(model, funds), 1.0)  # all cash at the start
    for _ in range(8):
        step_day(model, funds)
    share = cash_share(model, funds)
    assert np.all(share < 0.25)  # invested, down towards the buffer


def test_one_row_decides_for_itself():
    model, funds = build()
    step_day(model, funds)
    funds.nav_history = [funds.nav * 1.5]
    model.step()
    orders = funds.decide(np.array([2]))
    assert len(orders)
    assert set(orders.account.tolist()) == {int(funds.accounts[2])}


def test_the_agent_engine_runs_the_same_rules():
    model, funds = build(engine="agents", **{"public_funds.flow_sensitivity": 0.5})
    step_day(model, funds)
    funds.nav_history = [funds.nav * 1.5]
    assert step_day(model, funds) > 0


def test_a_stock_that_outgrows_the_mandate_leaves_it_and_is_sold_over_days():
    model, funds = build()
    gone = int(funds.basket[0, 0])
    accounts = funds.accounts
    held0 = model.ledger.holding(accounts, np.full(funds.n, gone)).sum()
    assert held0 > 0
    caps = model.market.caps().copy()
    caps[gone] = 2 * caps.max()  # it grew out of the smallest caps
    funds.follow_mandate(caps)
    assert gone not in funds.basket[0]
    assert np.array_equal(np.flatnonzero(funds.in_mandate), funds.basket[0])
    assert funds.basket.shape[1] == round(200 * 0.2)  # the same size, one new name
    step_day(model, funds)
    held1 = model.ledger.holding(accounts, np.full(funds.n, gone)).sum()
    assert 0 < held1 < held0  # sold, but worked over EXIT_DAYS, not dumped at once


def test_the_model_repicks_the_mandate_when_it_rebalances_the_micro_caps(monkeypatch):
    model = MarketModel(rng=1, **{**BASE, "public_funds.n_funds": 30})
    funds = model.public_funds
    calls = []
    real = funds.follow_mandate
    monkeypatch.setattr(funds, "follow_mandate", lambda caps: calls.append(caps) or real(caps))
    days = 2 * model.config.universe.microcap_rebalance_days + 1
    for _ in range(days * model.steps_per_day):
        model.step()
    assert len(calls) == 2
    smallest = np.sort(np.argsort(calls[-1], kind="stable")[: funds.basket.shape[1]])
    assert np.array_equal(funds.basket[0], smallest)


def _numpy_decide(funds: PublicMicroCapFunds, rows: np.ndarray) -> Orders:
    """``PublicMicroCapFunds.decide``'s orders as numpy passes worked them out (without the
    cancel), the forced ones flagged."""
    market, ledger = funds.market, funds.model.ledger
    accounts = funds.accounts[rows]
    basket = funds.basket[rows]  # (r, B)
    r, b = basket.shape
    account = np.repeat(accounts, b)  # (r*B,)
    stock = basket.ravel()  # (r*B,)
    price = market.last[stock].astype(np.float64)  # (r*B,) fen
    held, sellable = ledger.holding_and_sellable(account, stock)  # (r*B,) shares each
    held = held.reshape(r, b)
    value = held * price.reshape(r, b) / 100.0  # (r, B) CNY
    assets, trade, forced = funds.cash_gap_trades(rows)  # the rule's cash side, unchanged
    want = (1.0 - funds.cfg.cash_buffer) * assets[:, None] / b  # (r, 1) CNY per stock
    buy = np.maximum(trade, 0.0)[:, None]  # (r, 1) CNY
    if funds.top_up:  # to each stock's shortfall
        under = np.maximum(want - value, 0.0)  # (r, B)
        buy_cny = np.minimum(under * (buy / np.maximum(under.sum(axis=1), 1e-9)[:, None]), under)
    else:  # first the stocks held none of, up to the target, then evenly
        entrant = held == 0  # (r, B)
        n_new = entrant.sum(axis=1)[:, None]  # (r, 1)
        to_new = np.minimum(buy, n_new * want)
        first = np.where(entrant, to_new / np.maximum(n_new, 1), 0.0)
        buy_cny = np.minimum(first + (buy - to_new) / b, want)
    sell_cny = value * (np.maximum(-trade, 0.0) / np.maximum(value.sum(axis=1), 1e-9))[:, None]
    lot_cny = (market.lot * price / 100.0).reshape(r, b)  # (r, B) CNY per lot
    sellable_lots = sellable.reshape(r, b) // market.lot
    sell_lots = np.minimum(np.ceil(sell_cny / lot_cny), sellable_lots)
    buy_lots = np.floor(buy_cny / lot_cny)
    side = np.where(sell_lots > 0, -1, 1).astype(np.int8)  # (r, B)
    lots = np.where(side < 0, sell_lots, buy_lots)
    forced_sell = forced[:, None] & (side < 0)
    near = price.reshape(r, b) * (1.0 + NEAR * side)
    order_price = np.where(forced_sell, market.limit_price(basket, side), near)
    duress = np.where(forced_sell, FORCED, CALM).ravel()
    mandate = Orders(account, stock, side.ravel(), order_price.ravel(), lots.ravel(), duress)
    return Orders.concat([mandate, funds._exits(accounts)])


def _assert_decides_as_numpy(funds: PublicMicroCapFunds, rows: np.ndarray) -> Orders:
    want = _numpy_decide(funds, rows)
    got = funds.decide(rows)
    for name in ("account", "stock", "side", "price", "lots", "duress"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
        assert getattr(got, name).dtype == getattr(want, name).dtype
    return got


def test_compiled_mandate_orders_match_the_numpy_rules_bit_for_bit():
    """Funds investing all their cash, then, holding their baskets, one given more cash to
    invest and the others selling under redemptions (forced, at the limit), some of what
    they hold bought today: the same orders, the forced ones flagged, as the numpy passes,
    for all the funds and for some."""
    model, funds = build(endow=False, **{"public_funds.flow_sensitivity": 0.0})
    model.step()  # all cash: buying
    calm = _assert_decides_as_numpy(funds, funds.rows)
    assert ((calm.side > 0) & (calm.lots > 0)).any()
    model, funds = build(**{"public_funds.flow_sensitivity": 0.5})
    step_day(model, funds)
    funds.nav_history = [funds.nav * 1.5]  # as if down a third: redemptions
    for _ in range(model.steps_per_day + 1):
        model.step()
    ledger, lot = model.ledger, model.market.lot
    # Of some positions all but a lot bought today, of one all of it (not sellable yet).
    at = ledger.rows_of(np.repeat(funds.accounts, 40), funds.basket.ravel())[::3]
    at = at[at >= 0]
    ledger.bought_today[at] = np.maximum(ledger.shares[at] - lot, 0)
    ledger.bought_today[at[0]] = ledger.shares[at[0]]
    funds.payable[[0, 2]] += 0.2 * funds.equity(funds.rows[[0, 2]])  # selling everywhere
    funds.payable[1], funds.flow[1] = 0.0, 0.0
    ledger.external_cash(funds.accounts[1:2], np.array([10**12]))  # cash to invest
    sold = _assert_decides_as_numpy(funds, funds.rows)
    forced = sold.duress == FORCED
    assert forced.any() and (sold.side[forced] < 0).all() and not (sold.duress == PANIC).any()
    mine = sold.account[: funds.basket.size]
    limit = model.market.limit_price(sold.stock, sold.side)
    assert ((sold.side < 0) & (sold.lots > 0) & (sold.price == limit)).any()
    assert ((mine == funds.accounts[1]) & (sold.side > 0) & (sold.lots > 0)).any()
    _assert_decides_as_numpy(funds, np.array([2]))
    _assert_decides_as_numpy(funds, np.array([0, 1]))


def test_a_residue_under_half_a_fen_is_not_owed():
    """Redemptions are paid in whole fen: what rounding leaves is no debt, so a calm fund
    is no forced seller after paying one."""
    model, funds = build(**{"public_funds.flow_sensitivity": 0.0})
    step_day(model, funds)
    funds.payable[:] = [1000.004, 2000.0049, 3000.006]
    step_day(model, funds)
    np.testing.assert_array_equal(funds.payable, 0.0)
    assert not funds.cash_gap_trades(funds.rows)[2].any()


def test_index_enhanced_funds_hold_their_benchmark_and_sell_it_under_redemptions():
    """Wired by the model from ``enhanced_funds``: the mandate is the benchmark's members
    (the CSI 500's here, then the CSI 1000's), re-picked with the tiers; investors who
    redeem after a drawdown make the funds forced sellers of those members alone."""
    for tier in (1, 2):
        model = MarketModel(
            rng=1,
            **{
                **BASE,
                "enhanced_funds.n_funds": 30,
                "enhanced_funds.tier": tier,
                "enhanced_funds.flow_sensitivity": 0.5,
            },
        )
        funds = model.enhanced_funds
        assert isinstance(funds, IndexEnhancedFunds) and funds in model.populations
        members = np.flatnonzero(model.indices.tier == tier)
        np.testing.assert_array_equal(funds.basket[0], members)
        assert (funds.basket == members).all()
        _, stock, _, _ = model.ledger.positions(funds.accounts)
        assert set(np.unique(stock)) == set(members)  # endowed with the members alone
        assert step_day(model, funds) == 0.0  # calm: nothing forced
        funds.nav_history = [funds.nav * 1.5]  # as if down a third over the window
        sent: list[Orders] = []
        parts = funds.decide_parts

        def spy(rows: np.ndarray, parts=parts, sent=sent) -> list[Orders]:
            out = parts(rows)
            sent.extend(out)
            return out

        funds.decide_parts = spy
        assert step_day(model, funds) + step_day(model, funds) > 0.0  # forced, and filled
        orders = Orders.concat(sent)
        forced = orders.duress == FORCED
        assert forced.any() and np.isin(orders.stock[forced], members).all()


def test_index_enhanced_funds_reach_beyond_their_index_into_the_smallest_caps():
    """With ``beyond`` the mandate adds, as that share of its names, the smallest caps
    outside the index, and the funds are endowed with those too."""
    model = MarketModel(
        rng=1,
        **{**BASE, "enhanced_funds.n_funds": 30, "enhanced_funds.beyond": 0.4},
    )
    funds = model.enhanced_funds
    members = np.flatnonzero(model.indices.tier == CSI500)
    extra = round(len(members) * 0.4 / 0.6)
    outside = np.setdiff1d(np.arange(model.universe.n), members)
    caps = model.market.caps()
    smallest = outside[np.argsort(caps[outside], kind="stable")[:extra]]
    np.testing.assert_array_equal(funds.basket[0], np.sort(np.concatenate([members, smallest])))
    _, stock, _, _ = model.ledger.positions(funds.accounts)
    assert set(np.unique(stock)) == set(funds.basket[0])


def test_index_enhanced_funds_spread_new_money_evenly_where_micro_cap_funds_top_up():
    """A name that fell is bought back towards equal value by a micro-cap fund, which holds
    its mandate in equal value; an index-enhanced fund spreads the same new money evenly
    over its names, so its weights drift with prices. Both as the numpy rules say."""
    bought = {}
    for kind in ("public", "enhanced"):
        if kind == "public":
            model, funds = build(**{"public_funds.flow_sensitivity": 0.0})
        else:
            model = MarketModel(
                rng=1,
                **{**BASE, "enhanced_funds.n_funds": 30, "enhanced_funds.flow_sensitivity": 0.0},
            )
            funds = model.enhanced_funds
        step_day(model, funds)
        # The first name halves at the last price: the fund holds it at half the others'
        # value; then new money lands in each fund.
        fallen = funds.basket[0, 0]
        model.market.last[fallen] //= 2
        # 2% of assets: past the 1% a fund leaves alone, short of the fallen name's gap.
        fresh = np.rint(2.0 * funds.equity(funds.rows)).astype(np.int64)  # fen
        model.ledger.external_cash(funds.accounts, fresh)
        orders = _assert_decides_as_numpy(funds, funds.rows)
        first = (orders.account == funds.accounts[0]) & (orders.side > 0)
        cny = orders.lots * model.market.lot * orders.price / 100.0
        by_stock = dict(zip(orders.stock[first], cny[first], strict=True))
        others = np.array([v for s, v in by_stock.items() if s != fallen])
        bought[kind] = by_stock[fallen], np.median(others)
    fallen_public, typical_public = bought["public"]
    fallen_enhanced, typical_enhanced = bought["enhanced"]
    assert fallen_public > 0 and fallen_public > 2 * typical_public  # the top-up goes there
    # Evenly: the fallen name gets what the others get (to a lot at its halved price).
    assert typical_enhanced > 0
    assert abs(fallen_enhanced - typical_enhanced) < 0.05 * typical_enhanced


def test_index_enhanced_funds_buy_a_re_picks_entrants_first():
    """A name the fund holds none of (one a re-pick brought in) takes the new money first,
    up to its target; the names already held get what is left, here nothing. As the
    numpy rules say."""
    model = MarketModel(
        rng=1,
        **{**BASE, "enhanced_funds.n_funds": 30, "enhanced_funds.flow_sensitivity": 0.0},
    )
    funds = model.enhanced_funds
    step_day(model, funds)
    outside = np.setdiff1d(np.arange(model.universe.n), funds.basket[0])
    held = model.ledger.holding(np.repeat(funds.accounts, outside.size), np.tile(outside, funds.n))
    entrant = outside[(held.reshape(funds.n, -1) == 0).all(axis=0)][0]
    funds.basket[:, 0] = entrant  # as if the re-pick swapped the first name for it
    fresh = np.rint(2.0 * funds.equity(funds.rows)).astype(np.int64)  # 2% of assets, in fen
    model.ledger.external_cash(funds.accounts, fresh)
    orders = _assert_decides_as_numpy(funds, funds.rows)
    first = orders.account == funds.accounts[0]
    buys = first & (orders.side > 0) & (orders.lots > 0)
    assert set(orders.stock[buys]) == {entrant}
