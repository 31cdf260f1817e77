"""A-share rules at the exchange: T+1, board lots, whole-fen ticks, price limits, funds."""

from __future__ import annotations

import numpy as np

from model.orders import Orders


def _one(account, stock, side, price, lots) -> Orders:
    return Orders(
        np.array([account]),
        np.array([stock]),
        np.array([side]),
        np.array([price]),
        np.array([lots]),
    )


def _fresh_account(model, cash_cny: float) -> int:
    return int(model.ledger.open_accounts(np.array([int(cash_cny * 100)]))[0])


def test_t_plus_one_shares_bought_today_sell_tomorrow(small_model):
    m = small_model
    m.step()  # day 0, slice 1: the book has market-maker quotes
    market = m.market
    buyer = _fresh_account(m, 1e9)
    stock = 3
    market.submit(_one(buyer, stock, 1, market.grid.upper[stock], 5))
    market.clear()
    held = int(m.ledger.holding(np.array([buyer]), np.array([stock]))[0])
    assert held == 5 * market.lot
    admitted = market.submit(_one(buyer, stock, -1, market.grid.lower[stock], 5))
    assert len(admitted) == 0  # bought today: not sellable
    market.close_day()
    market.open_day()
    admitted = market.submit(_one(buyer, stock, -1, market.grid.lower[stock], 5))
    assert admitted.lots.tolist() == [5]


def test_cannot_sell_what_is_not_held_or_buy_beyond_cash(small_model):
    m = small_model
    m.step()
    market = m.market
    poor = _fresh_account(m, 100.0)  # 100 CNY buys no lot of a 2+ CNY stock... check below
    price = int(market.last[0])
    lots_affordable = 100 * 100 // (price * market.lot)
    admitted = market.submit(_one(poor, 0, 1, price, 50))
    assert admitted.lots.sum() == lots_affordable
    assert len(market.submit(_one(poor, 1, -1, price, 1))) == 0


def test_resting_orders_count_against_what_an_account_can_sell(small_model):
    m = small_model
    m.step()
    market, ledger = m.market, m.ledger
    acct, stock, _shares, sellable = ledger.positions(m.populations[1].accounts)
    i = int(np.argmax(sellable))
    a, s, lots = int(acct[i]), int(stock[i]), int(sellable[i] // market.lot)
    market.cancel_accounts(np.array([a]))
    high = market.grid.upper[s]
    first = market.submit(_one(a, s, -1, high, lots))  # rests at limit-up
    second = market.submit(_one(a, s, -1, high, lots))
    assert first.lots.tolist() == [lots] and len(second) == 0


def test_prices_and_fills_respect_ticks_lots_and_limits(small_model):
    m = small_model
    lot = m.market.lot
    for _ in range(12):
        prev = m.market.prev_close.copy()
        m.step()
        market = m.market
        last = market.last
        limit = m.universe.limit
        assert np.all(last <= np.round(prev * (1 + limit)) + 0)
        assert np.all(last >= np.round(prev * (1 - limit)))
        assert last.dtype == np.int64  # prices are whole fen: the tick
        _, _, signed, _ = market.last_fills
        assert np.all(signed % lot == 0)
        _, _, shares, _ = m.ledger.positions()
        assert np.all(shares % lot == 0) and np.all(shares >= 0)
