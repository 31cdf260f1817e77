"""A-share rules at the exchange: T+1, board lots, whole-fen ticks, price limits, funds."""

from __future__ import annotations

import copy

import numpy as np

from model import MarketModel
from model.ledger import (
    Ledger,
    _add_positions_compiled,
    consecutive,
    key_order,
    search_from,
    search_near,
)
from model.orders import Orders
from tests.conftest import SMALL


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


def _fit(keys_old, need_old, keys_new, need_new, capacity_of) -> np.ndarray:
    """How much of each new row's ``need`` fits its key's capacity, in row order: the
    numpy reference the compiled admissions are held to.

    ``capacity_of(unique_keys)`` gives each key's capacity; resting rows
    (``keys_old``/``need_old``) have used theirs already.
    """
    # Group the new rows by key (a stable sort keeps row order within a key); resting rows
    # only matter where they share a key with a new one.
    order = np.argsort(keys_new, kind="stable")
    key_sorted = keys_new[order]
    starts = np.r_[True, key_sorted[1:] != key_sorted[:-1]] if key_sorted.size else key_sorted
    ukeys = key_sorted[starts]  # (u,) sorted
    group_sorted = np.cumsum(starts) - 1  # (n_new,) group of each sorted row
    at = np.minimum(np.searchsorted(ukeys, keys_old), max(ukeys.size - 1, 0))
    shared = ukeys[at] == keys_old if ukeys.size else np.zeros(keys_old.shape, bool)
    used = np.bincount(at[shared], need_old[shared].astype(np.float64), minlength=ukeys.size)
    avail = capacity_of(ukeys).astype(np.float64) - used
    need_sorted = need_new[order].astype(np.float64)
    cum = np.cumsum(need_sorted)
    first = np.maximum.accumulate(np.where(starts, np.arange(starts.size), 0))  # group's first
    before_sorted = cum - need_sorted - (cum[first] - need_sorted[first])
    before = np.empty_like(before_sorted)
    before[order] = before_sorted
    inv_new = np.empty_like(group_sorted)
    inv_new[order] = group_sorted
    return np.clip(avail[inv_new] - before, 0.0, need_new.astype(np.float64))


def _buying_power(market, accounts: np.ndarray) -> np.ndarray:
    """(a,) fen: cash plus credit of ``accounts``, the capacity buys and margin draw on."""
    return market.ledger.cash[accounts] + market.ledger.credit[accounts]


def _reference_admit_futures(market, orders: Orders) -> np.ndarray:
    """(n,) contracts admitted for futures ``orders`` (all futures, lots > 0), by plain
    loops over accounts and orders: the reference for the compiled futures admission.

    Per account and contract, the contracts an order closes pass free up to the position
    less what its resting orders, then its earlier new ones, close; the rest opens
    exposure and needs margin from the account's room, taken in time order.
    """
    ledger, margin, book = market.ledger, market.futures_margin, market.book
    first, tick_value = market.n_stocks, ledger.fut_tick_value
    lots = orders.lots.copy()
    for a in np.unique(orders.account):
        closable = np.abs(ledger.fut_pos[a]).copy()  # (F,)

        def opening(f: int, side: int, n: int, closable=closable, a=a) -> int:
            if np.sign(ledger.fut_pos[a, f]) != -side:
                return n
            taken = min(n, closable[f])
            closable[f] -= taken
            return n - taken

        used = 0.0
        for i in np.flatnonzero((book.account == a) & (book.stock >= first)):
            f = book.stock[i] - first
            used += margin * opening(f, book.side[i], book.lots[i]) * book.price[i] * tick_value[f]
        room = (
            _buying_power(market, np.array([a]))[0]
            - ledger.futures_margin_used(np.array([a]), margin)[0]
        )
        room -= used
        claimed = 0.0
        for i in np.flatnonzero(orders.account == a):
            f = orders.stock[i] - first
            opens = opening(f, orders.side[i], orders.lots[i])
            per_lot = margin * orders.price[i] * tick_value[f]
            need = margin * opens * orders.price[i] * tick_value[f]
            fen = min(max(room - claimed, 0.0), need)
            claimed += need
            lots[i] = orders.lots[i] - opens + int(np.floor(fen / per_lot))
    return lots


def _numpy_admit_stock(market, orders: Orders) -> np.ndarray:
    """(n,) lots the numpy passes admitted for stock ``orders`` (all stocks): sells within
    the holding's sellable shares, buys within the account's buying power, less what the
    resting book and earlier new orders claim. The reference for the compiled admission."""
    ledger, book, n_stocks, lot = market.ledger, market.book, market.n_stocks, market.lot
    lots = orders.lots.copy()
    sell, old_sell = orders.side < 0, book.side < 0
    old_stock = book.stock < n_stocks
    old_sell, old_buy = old_sell & old_stock, ~old_sell & old_stock
    shares = _fit(
        book.account[old_sell] * n_stocks + book.stock[old_sell],
        book.lots[old_sell] * lot,
        orders.account[sell] * n_stocks + orders.stock[sell],
        orders.lots[sell] * lot,
        lambda keys: ledger.sellable(keys // n_stocks, keys % n_stocks),
    )
    lots[sell] = (shares // lot).astype(np.int64)
    buy = ~sell
    fen = _fit(
        book.account[old_buy],
        book.lots[old_buy] * lot * book.price[old_buy],
        orders.account[buy],
        orders.lots[buy] * lot * orders.price[buy],
        lambda accounts: _buying_power(market, accounts),
    )
    lots[buy] = (fen // (lot * orders.price[buy])).astype(np.int64)
    return lots


def _numpy_submit(market, orders: Orders) -> tuple[np.ndarray, Orders, np.ndarray]:
    """What ``market.submit(orders)`` does, by the numpy passes it replaced: (n,) lots
    admitted per new order, and the book and its (m,) grid levels after.

    The book loses its withdrawn orders (masks, pending blocks of accounts) and those
    without lots; the new prices are clipped to today's limits and lots floored at zero;
    stock orders are admitted by :func:`_numpy_admit_stock`, futures orders by
    :func:`_reference_admit_futures`; the admitted join the book's tail at their grid levels.
    """
    ref = copy.deepcopy(market)  # the market itself stays as it is, for the compiled pass
    book, grid = ref._book, ref.grid
    gone = np.zeros(len(book), bool) if ref._withdrawn is None else ref._withdrawn.copy()
    for first, last in ref._pending:
        gone |= (book.account >= first) & (book.account <= last)
    keep = ~gone & (book.lots > 0)
    level = ref._book_level[keep]
    ref.book, ref.book_level = book.select(keep), level
    price = np.clip(orders.price, grid.lower[orders.stock], grid.upper[orders.stock])
    orders = Orders(orders.account, orders.stock, orders.side, price, np.maximum(orders.lots, 0))
    lots = orders.lots.copy()
    is_stock = orders.stock < ref.n_stocks
    lots[is_stock] = _numpy_admit_stock(ref, orders.select(is_stock))
    fut = ~is_stock & (orders.lots > 0)
    if fut.any():
        lots[fut] = _reference_admit_futures(ref, orders.select(fut))
    admitted = orders.with_lots(lots)
    new_level = grid.level_of(admitted.stock, admitted.price, admitted.side)
    return lots, Orders.concat([ref.book, admitted]), np.concatenate([level, new_level])


def _assert_submit_matches_numpy(market, orders: Orders) -> np.ndarray:
    """Submit ``orders`` and check the admitted orders, the book and its levels against
    :func:`_numpy_submit`; return the reference's (n,) admitted lots."""
    lots, book, level = _numpy_submit(market, orders)
    admitted = market.submit(orders)
    for name in ("account", "stock", "side", "price", "lots"):
        want = getattr(book, name)
        assert getattr(market.book, name).tolist() == want.tolist(), name
        assert getattr(admitted, name).tolist() == want[len(want) - len(admitted) :].tolist()
    assert len(admitted) == int((lots > 0).sum())
    assert market.book_level.tolist() == level.tolist()
    return lots


def _rest(market, orders: Orders, rng: np.random.Generator) -> None:
    """Put ``orders`` on the book as resting orders, then withdraw some: a random fifth
    by mask, and one account's as a pending block (as a population's cancel leaves it)."""
    market.book = orders
    market.book_level = market.grid.level_of(orders.stock, orders.price, orders.side)
    market.cancel(rng.random(len(orders)) < 0.2)
    market.cancel_accounts(orders.account[:1])


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


def _random_orders(market, ledger, rng, draw_lots) -> Orders:
    """400 orders on 40 held (account, stock) pairs and some unheld stocks, both sides,
    priced around the last price, with buying power that binds; ``draw_lots()`` draws
    their lots."""
    n_stocks = market.n_stocks
    account, stock = np.divmod(ledger.key, n_stocks)
    pick = rng.choice(rng.integers(0, account.size, 40), 400)  # shared pairs, some unheld
    stock_new = np.where(rng.random(400) < 0.8, stock[pick], rng.integers(0, n_stocks, 400))
    ledger.cash[account[pick]] = rng.integers(0, 10**9, 400)
    ledger.credit[account[pick]] = 0
    return Orders(
        account[pick],
        stock_new,
        np.where(rng.random(400) < 0.5, 1, -1),
        market.last[stock_new] + rng.integers(-60, 60, 400),
        draw_lots(),
    )


def test_compiled_submission_of_stocks_matches_the_numpy_passes(small_model):
    """Random books with withdrawals, and new orders, some beyond the limits: the compiled
    submission admits what :func:`_fit` admits and leaves the book the numpy passes did."""
    m = small_model
    for _ in range(6):
        m.step()
    market, ledger, rng = m.market, m.ledger, np.random.default_rng(3)
    cut = np.zeros(2, np.int64)  # (2,) buys, sells admitted less than they asked
    beyond = 0  # new orders priced beyond the day's limits
    for _ in range(20):
        # a few of no lots or below
        orders = _random_orders(market, ledger, rng, lambda: rng.integers(-2, 5000, 400))
        _rest(market, orders.select(np.arange(150)).with_lots(orders.lots[:150] + 1), rng)
        new = orders.select(np.arange(150, 400))
        grid = market.grid
        beyond += int(
            ((new.price < grid.lower[new.stock]) | (new.price > grid.upper[new.stock])).sum()
        )
        lots = _assert_submit_matches_numpy(market, new)
        buy = new.side > 0
        cut += [int((lots < new.lots)[buy].sum()), int((lots < new.lots)[~buy].sum())]
    assert min(cut) > 100  # the cash binds buys, and the sellable shares sells
    assert beyond > 50


def test_orders_of_no_lots_change_nothing_the_exchange_does(small_model):
    """Orders of no lots among the others (buys and sells, of held stocks and not, on
    accounts whose cash or shares bind): the exchange admits and rests exactly what it
    does without them. So a population may leave them out of what it hands over (the
    fundamental traders, the national team, the neutral products' short leg do)."""
    m = small_model
    for _ in range(6):
        m.step()
    market, ledger, rng = m.market, m.ledger, np.random.default_rng(11)
    for _ in range(10):
        orders = _random_orders(
            market,
            ledger,
            rng,
            lambda: np.where(rng.random(400) < 0.4, 0, rng.integers(1, 5000, 400)),
        )
        _rest(market, orders.select(np.arange(150)).with_lots(orders.lots[:150] + 1), rng)
        new = orders.select(np.arange(150, 400))
        without = copy.deepcopy(market)
        admitted = market.submit(new)
        admitted_without = without.submit(new.select(new.lots > 0))
        assert (new.lots == 0).sum() > 50
        for name in ("account", "stock", "side", "price", "lots"):
            assert getattr(market.book, name).tolist() == getattr(without.book, name).tolist()
            assert getattr(admitted, name).tolist() == getattr(admitted_without, name).tolist()
        assert market.book_level.tolist() == without.book_level.tolist()
        assert len(admitted) > 0


def test_compiled_submission_of_futures_matches_the_numpy_passes():
    """Random futures books and orders, among stock orders, with positions both ways and
    buying power that binds: the compiled submission admits what the numpy passes did."""
    m = MarketModel(rng=5, **{**SMALL, "futures.enabled": True})
    for _ in range(3):
        m.step()
    market, ledger, rng = m.market, m.ledger, np.random.default_rng(4)
    first, n_fut = market.n_stocks, ledger.n_futures
    accounts = rng.choice(ledger.n_accounts, 30, replace=False)
    binding = 0
    for _ in range(20):
        ledger.fut_pos[accounts] = rng.integers(-3, 4, (30, n_fut))
        ledger.cash[accounts] = rng.integers(0, 3 * 10**8, 30)
        ledger.credit[accounts] = 0
        n = 300
        stock = np.where(
            rng.random(n) < 0.7, first + rng.integers(0, n_fut, n), rng.integers(0, first, n)
        )
        orders = Orders(
            accounts[rng.integers(0, 30, n)],
            stock,
            np.where(rng.random(n) < 0.5, 1, -1),
            market.last[stock] + rng.integers(-5, 5, n),
            rng.integers(0, 8, n),
        )
        _rest(market, orders.select(np.arange(100)).with_lots(orders.lots[:100]), rng)
        new = orders.select(np.arange(100, n))
        lots = _assert_submit_matches_numpy(market, new)
        fut = (new.stock >= first) & (new.lots > 0)
        binding += int((lots[fut] < new.lots[fut]).sum())
    assert binding > 50


def test_a_futures_order_that_flips_a_position_needs_margin_beyond_flat():
    """Long 5 contracts with no room for margin: selling 8 closes the 5 and opens none;
    with the 5 already offered by a resting sell, a new sell closes nothing free."""
    m = MarketModel(rng=5, **{**SMALL, "futures.enabled": True})
    m.step()
    market, ledger = m.market, m.ledger
    a = _fresh_account(m, 0.0)
    contract = market.n_stocks  # the first futures contract's instrument
    ledger.fut_pos[a, 0] = 5
    ledger.cash[a] = int(ledger.futures_margin_used(np.array([a]), market.futures_margin)[0])
    price = int(market.last[contract])
    assert market.submit(_one(a, contract, -1, price, 8)).lots.tolist() == [5]
    assert len(market.submit(_one(a, contract, -1, price, 3))) == 0  # the 5 are on offer
    # Buying adds to the long: no room, nothing admitted; with room for two, two.
    assert len(market.submit(_one(a, contract, 1, price, 3))) == 0
    ledger.cash[a] += int(np.ceil(2 * market.futures_margin * price * ledger.fut_tick_value[0]))
    assert market.submit(_one(a, contract, 1, price, 3)).lots.tolist() == [2]


def test_cancels_add_up_before_the_book_is_read(small_model):
    """Withdrawals are removed lazily: the book read after several is as if each were at once."""
    m = small_model
    m.step()
    market = m.market
    book = market.book
    a, b = int(book.account[0]), int(book.account[-1])
    market.cancel_accounts(np.array([a]))
    market.cancel_accounts(np.array([b]))
    kept = (book.account != a) & (book.account != b)
    assert market.book.account.tolist() == book.account[kept].tolist()
    assert (
        market.book_level.tolist()
        == m.market.grid.level_of(book.stock[kept], book.price[kept], book.side[kept]).tolist()
    )
    market.cancel(market.book.lots > 1)
    assert np.all(market.book.lots == 1) and len(market.book_level) == len(market.book)


def test_cancel_over_pending_withdrawals_acts_on_the_resting_orders(small_model):
    m = small_model
    for _ in range(3):
        m.step()
    market = m.market
    book = market.book  # compacted: nothing withdrawn yet
    gone = book.account == book.account[0]
    market.cancel_accounts(np.array([book.account[0]]))  # pending, not yet removed
    assert market.n_resting == len(book) - gone.sum()
    resting = book.select(~gone)
    big = resting.lots > 1  # one entry per resting order
    market.cancel(big)
    assert market.book.account.tolist() == resting.account[~big].tolist()
    assert market.book.lots.tolist() == resting.lots[~big].tolist()


def test_cancel_share_is_a_masked_cancel_of_the_resting_orders(small_model):
    """The compiled random cancel withdraws what the masks over the resting orders do,
    with the same draws, over withdrawals still pending."""
    m = small_model
    for _ in range(3):
        m.step()
    market = m.market
    book = market.book
    accounts = np.unique(book.account)
    block = np.arange(accounts[len(accounts) // 3], accounts[2 * len(accounts) // 3] + 1)
    market.cancel_accounts(np.array([book.account[0]]))  # pending, not yet removed
    kept = copy.deepcopy(market)
    rng, reference_rng = np.random.default_rng(3), np.random.default_rng(3)
    market.cancel_share(block, 0.4, rng)
    mine = np.isin(kept.book.account, block)  # the resting orders of the block
    kept.cancel(mine & (reference_rng.random(kept.n_resting) < 0.4))
    assert 0 < len(book) - len(market.book) < len(book)
    assert market.book.account.tolist() == kept.book.account.tolist()
    assert market.book.lots.tolist() == kept.book.lots.tolist()
    assert rng.random() == reference_rng.random()


def test_consecutive_is_a_run_of_ids_each_one_more_than_the_last():
    assert consecutive(np.arange(7, 20_007))
    assert consecutive(np.array([3])) and not consecutive(np.zeros(0, np.int64))
    for ids in ([0, 2, 1, 3], [1, 2, 2, 3], [3, 2, 1, 0], [0, 1, 3, 4], [5, 6, 7, 9]):
        assert not consecutive(np.array(ids)), ids
    swapped = np.arange(20_000)
    swapped[[12_345, 12_346]] = swapped[[12_346, 12_345]]  # the right span, one swap far in
    assert not consecutive(swapped)


def test_search_from_is_searchsorted():
    """Searching on from the last answer finds what np.searchsorted finds."""
    rng = np.random.default_rng(5)
    table = np.unique(rng.integers(0, 10_000, 3000))
    for key in (
        rng.integers(-5, 10_005, 2000),  # any order, some beyond either end
        np.concatenate([np.sort(rng.integers(0, 10_000, 50)) for _ in range(40)]),  # runs
        table,
    ):
        row, last, found = 0, -(10**9), []
        for k in key.tolist():
            row, last = search_from(table, k, row if k >= last else 0), k
            found.append(row)
        assert found == np.searchsorted(table, key).tolist()
    assert search_from(np.zeros(0, np.int64), 3, 0) == 0


def test_key_order_is_a_stable_argsort():
    """The radix sort orders keys as np.argsort(kind="stable") does, ties in input order."""
    rng = np.random.default_rng(7)
    for key in (
        rng.integers(0, 50, 3000),  # many ties, one pass
        rng.integers(0, 5_000 * 100_000, 20_000),  # full-scale keys: three passes
        np.zeros(0, np.int64),
        np.array([0, 0, 0]),
    ):
        key = key.astype(np.int64)
        assert key_order(key).tolist() == np.argsort(key, kind="stable").tolist()


def test_search_near_is_searchsorted_from_any_hint():
    """Galloping up or down from any hint finds what np.searchsorted finds."""
    rng = np.random.default_rng(6)
    table = np.unique(rng.integers(0, 10_000, 3000))
    key = np.concatenate([rng.integers(-5, 10_005, 2000), table, table[::-1]])
    want = np.searchsorted(table, key)
    for hints in (np.r_[0, want[:-1]], rng.integers(0, table.size + 1, key.size)):
        found = [
            search_near(table, k, h) for k, h in zip(key.tolist(), hints.tolist(), strict=True)
        ]
        assert found == want.tolist()
    assert search_near(np.zeros(0, np.int64), 3, 0) == 0


def test_positions_of_a_block_of_accounts_are_the_held_rows_of_its_slice(small_model):
    m = small_model
    for _ in range(6):
        m.step()
    ledger = m.ledger
    account, stock = np.divmod(ledger.key, ledger.n_stocks)
    for accounts in (m.populations[-1].accounts, m.populations[0].accounts[:1], None):
        keep = ledger.shares != 0
        if accounts is not None:
            keep &= np.isin(account, accounts)
        expected = (
            account[keep],
            stock[keep],
            ledger.shares[keep],
            (ledger.shares - ledger.bought_today)[keep],
        )
        found = ledger.positions(accounts)
        assert [f.tolist() for f in found] == [e.tolist() for e in expected]


def test_positions_of_and_value_fen_match_a_scan_for_blocks_and_scattered_accounts(small_model):
    m = small_model
    for _ in range(6):
        m.step()
    ledger, price = m.ledger, m.market.last
    account, stock = np.divmod(ledger.key, ledger.n_stocks)
    block = m.populations[-1].accounts
    for accounts in (block, block[:1], block[::3], np.array([0, block[-1]], np.int64)):
        keep = (ledger.shares != 0) & np.isin(account, accounts)
        slot = np.searchsorted(accounts, account[keep])
        shares = ledger.shares[keep]
        expected = (slot, stock[keep], shares, (ledger.shares - ledger.bought_today)[keep])
        found = ledger.positions_of(accounts)
        assert [f.tolist() for f in found] == [e.tolist() for e in expected]
        value = np.bincount(slot, shares * price[stock[keep]], minlength=accounts.size)
        assert ledger.value_fen(accounts, price).tolist() == value.tolist()


def test_holdings_table_stays_sorted_and_sums_each_position():
    """Batches of new and old positions, inserted in place, give the table a dict would."""
    rng = np.random.default_rng(9)
    ledger, expected = Ledger(50), {}
    for _ in range(30):
        account, stock = rng.integers(0, 40, 300), rng.integers(0, 50, 300)
        shares = rng.integers(-5, 100, 300)
        ledger.transfer(account[:150], account[150:], stock[:150], shares[:150], locked=True)
        for a, b, s, n in zip(account[:150], account[150:], stock[:150], shares[:150], strict=True):
            expected[(a, s)] = expected.get((a, s), 0) - n
            expected[(b, s)] = expected.get((b, s), 0) + n
        if rng.random() < 0.3:
            ledger.new_day()
            expected = {k: v for k, v in expected.items() if v != 0}
    keys = sorted(expected)
    assert ledger.key.tolist() == [a * 50 + s for a, s in keys]
    assert ledger.shares.tolist() == [expected[k] for k in keys]


def test_basket_holding_is_holding_of_each_basket_pair():
    """Walking each basket in sorted order finds what holding() finds, in basket order."""
    rng = np.random.default_rng(8)
    ledger = Ledger(50)
    accounts = ledger.open_accounts(np.zeros(6))
    held_pairs = rng.integers(0, 50, (6, 12))
    ledger.endow(np.repeat(accounts, 12), held_pairs.ravel(), rng.integers(1, 9, 72) * 100)
    basket = np.stack([rng.permutation(50)[:15] for _ in accounts])  # (6, 15), pick order
    want = ledger.holding(np.repeat(accounts, 15), basket.ravel()).reshape(basket.shape)
    got = ledger.basket_holding(accounts, basket, np.argsort(basket, axis=1))
    np.testing.assert_array_equal(got, want)
    assert want.any() and not want.all()
    # Accounts in descending order: each account's first row is found below the last.
    flipped = basket[::-1].copy()
    got = ledger.basket_holding(accounts[::-1].copy(), flipped, np.argsort(flipped, axis=1))
    np.testing.assert_array_equal(got, want[::-1])


def test_value_cny_of_a_block_is_the_bincount_of_its_positions(small_model):
    """The compiled block sum adds the same floats in the same order as the bincount."""
    m = small_model
    for _ in range(6):
        m.step()
    ledger, price = m.ledger, m.market.last
    for pop in m.populations:
        slot, stock, shares, _ = ledger.positions_of(pop.accounts)
        want = np.bincount(slot, shares * price[stock] / 100.0, minlength=pop.n)
        np.testing.assert_array_equal(ledger.value_cny(pop.accounts, price), want)
        scattered = pop.accounts[::2]
        slot, stock, shares, _ = ledger.positions_of(scattered)
        want = np.bincount(slot, shares * price[stock] / 100.0, minlength=scattered.size)
        np.testing.assert_array_equal(ledger.value_cny(scattered, price), want)


def test_many_keys_are_found_whether_they_ascend_or_not():
    """rows_of gallops for ascending keys at any count and bisects scattered ones: the
    rows are np.searchsorted's either way; holding_and_sellable is holding and sellable."""
    rng = np.random.default_rng(11)
    ledger = Ledger(50)
    account, stock = rng.integers(0, 400, 20_000), rng.integers(0, 50, 20_000)
    ledger.endow(account, stock, rng.integers(1, 1_000, 20_000))
    ledger.transfer(account[:500], account[500:1000], stock[:500], np.full(500, 1), locked=True)
    for keys in (np.arange(0, 400 * 50, 2), rng.integers(0, 400 * 50, 10_000)):
        row = np.minimum(np.searchsorted(ledger.key, keys), ledger.key.size - 1)
        expected = np.where(ledger.key[row] == keys, row, -1)
        assert np.array_equal(ledger.rows_of(keys // 50, keys % 50), expected)
        held, sellable = ledger.holding_and_sellable(keys // 50, keys % 50)
        assert np.array_equal(held, ledger.holding(keys // 50, keys % 50))
        assert np.array_equal(sellable, ledger.sellable(keys // 50, keys % 50))


def test_settlement_cash_is_the_rounded_bincount_of_the_fills():
    """Cash comes off fill by fill in integers: what the float bincount over every
    account, rounded back, moved (repeated accounts, buys and sells, large amounts)."""
    rng = np.random.default_rng(12)
    ledger = Ledger(50)
    accounts = ledger.open_accounts(rng.integers(0, 10**12, 300))
    for _ in range(5):
        account = rng.choice(accounts[:40], 5_000)  # (m,) many fills per account
        stock = rng.integers(0, 50, 5_000)
        signed = rng.integers(-(10**6), 10**6, 5_000)
        price = rng.integers(1, 10**5, 5_000)
        cash = ledger.cash.copy()
        cash += np.rint(np.bincount(account, -(signed * price), minlength=cash.size)).astype(
            np.int64
        )
        ledger.settle(account, stock, signed, price)
        np.testing.assert_array_equal(ledger.cash, cash)


def test_variation_margin_is_the_matmul_of_positions_and_moves():
    """``mark_futures`` pays ``fut_pos @ move`` into cash and what was received, and returns
    it (A,): the numpy passes, with most accounts holding no futures (their cash is not
    written) and moves up, down and none."""
    rng = np.random.default_rng(5)
    ledger = Ledger(20)
    ledger.list_futures(np.array([3_800, 5_600, 6_100]), np.array([30_000, 20_000, 20_000]))
    ledger.open_accounts(rng.integers(0, 10**10, 500))
    holders = rng.choice(500, 40, replace=False)
    ledger.fut_pos[holders] = rng.integers(-50, 51, (40, 3))
    for move in ([12, -7, 0], [0, 0, 0], [-400, 310, 25]):
        mark = ledger.fut_mark + np.array(move)
        want = ledger.fut_pos @ ((mark - ledger.fut_mark) * ledger.fut_tick_value)
        cash, received = ledger.cash + want, ledger.variation_received + want
        paid = ledger.mark_futures(mark)
        np.testing.assert_array_equal(paid, want)
        assert paid.dtype == np.int64
        np.testing.assert_array_equal(ledger.cash, cash)
        np.testing.assert_array_equal(ledger.variation_received, received)
        np.testing.assert_array_equal(ledger.fut_mark, mark)


def test_account_holdings_are_holding_of_every_stock():
    """One account's slice of the table reads what holding() finds stock by stock,
    zero where none, for accounts first, inside and last in the table, and for none."""
    rng = np.random.default_rng(13)
    ledger = Ledger(50)
    accounts = ledger.open_accounts(np.zeros(8))
    ledger.endow(accounts.repeat(20), rng.integers(0, 50, 160), rng.integers(1, 9, 160) * 100)
    ledger.transfer(
        accounts[:3], accounts[3:6], np.array([1, 2, 3]), np.full(3, 10**6), locked=True
    )
    for account in (*accounts, 99):
        want = ledger.holding(np.full(50, account), np.arange(50))
        np.testing.assert_array_equal(ledger.account_holdings(int(account)), want)


def test_new_day_drops_empty_positions_and_clears_the_days_purchases():
    """The compiled overnight pass leaves what clearing ``bought_today`` and then keeping
    the positions with shares left: the held keys and shares, nothing bought today."""
    rng = np.random.default_rng(15)
    ledger = Ledger(50)
    accounts = ledger.open_accounts(np.full(40, 10**12))
    ledger.endow(rng.choice(accounts, 400), rng.integers(0, 50, 400), rng.integers(1, 9, 400) * 100)
    for _ in range(3):
        account, stock = rng.choice(accounts, 300), rng.integers(0, 50, 300)
        signed = rng.integers(-5, 6, 300) * 100
        ledger.settle(account, stock, signed, rng.integers(100, 5_000, 300))
        held = ledger.shares != 0
        key, shares = ledger.key[held].copy(), ledger.shares[held].copy()
        assert ledger.bought_today.any() and not held.all()
        ledger.new_day()
        np.testing.assert_array_equal(ledger.key, key)
        np.testing.assert_array_equal(ledger.shares, shares)
        assert not ledger.bought_today.any()


def test_value_of_a_block_sums_each_account_apart_across_gaps_and_empty_rows():
    """The compiled block sum keeps each account's running total apart: accounts with no
    rows, rows of no shares, a block that starts and ends without holdings, and no rows at
    all give the bincount of the positions (fen and CNY), bit for bit."""
    rng = np.random.default_rng(11)
    ledger = Ledger(40)
    accounts = ledger.open_accounts(np.zeros(30))
    held = accounts[3:-4][rng.random(23) < 0.6]  # gaps, and none at either end
    account = np.repeat(held, 5)
    ledger.endow(account, rng.integers(0, 40, account.size), rng.integers(1, 900, account.size))
    gone = rng.choice(ledger.key.size, 4, replace=False)  # positions handed over in full
    giver, stock = np.divmod(ledger.key[gone], 40)
    ledger.transfer(giver, np.full(4, held[0]), stock, ledger.shares[gone].copy(), locked=True)
    assert (ledger.shares == 0).any()
    price = rng.integers(100, 90_000, 40)
    for block in (accounts, accounts[:3], accounts[2:12], accounts[-4:]):
        slot, stock, shares, _ = ledger.positions_of(block)
        fen = np.bincount(slot, shares * price[stock], minlength=block.size)
        cny = np.bincount(slot, shares * price[stock] / 100.0, minlength=block.size)
        assert ledger.value_fen(block, price).tolist() == fen.tolist()
        assert ledger.value_cny(block, price).tolist() == cny.tolist()
        # One walk for both: every account's value, and the picked accounts' positions
        # (empty accounts at either end and between, positions emptied by a transfer).
        for picked in (
            np.arange(0),
            np.arange(block.size),
            np.arange(0, block.size, 2),
            np.array(sorted({0, block.size - 1})),
            np.flatnonzero(rng.random(block.size) < 0.5),
        ):
            value, found = ledger.value_and_positions(block, price, picked)
            assert value.tolist() == fen.tolist()
            expected = ledger.positions_of(block[picked])
            assert [f.tolist() for f in found] == [e.tolist() for e in expected]
    scattered = accounts[[1, 5, 6, 20]]  # not a block: the two lookups it stands for
    value, found = ledger.value_and_positions(scattered, price, np.array([0, 2]))
    assert value.tolist() == ledger.value_fen(scattered, price).tolist()
    expected = ledger.positions_of(scattered[[0, 2]])
    assert [f.tolist() for f in found] == [e.tolist() for e in expected]


def test_new_positions_go_in_on_either_side_of_the_table():
    """New keys are given room by moving the positions before them left or those after
    them right, within the room each side has: the same sorted table either way, and
    nothing written outside it."""
    rng = np.random.default_rng(21)
    for case in range(200):
        n_rows = int(rng.integers(0, 40))
        table_key = np.sort(rng.choice(1_000, n_rows, replace=False))
        held = rng.integers(1, 50, n_rows)
        today = rng.integers(0, 2, n_rows) * held
        n = int(rng.integers(1, 30))
        key = rng.integers(0, 1_000, n)
        if case % 4 == 0:  # every key new, or every one held
            key = np.setdiff1d(key, table_key) if case % 8 or not n_rows else table_key[:n]
        delta = rng.integers(-20, 20, key.shape[0])
        bought = rng.random(key.shape[0]) < 0.5
        lo = int(rng.integers(0, key.shape[0] + 1))  # room on the left: 0 .. n
        right = key.shape[0] - lo + int(rng.integers(0, 3))  # and enough on the right
        table = np.full((3, lo + n_rows + right), -7, dtype=np.int64)
        table[:, lo : lo + n_rows] = table_key, held, today

        pairs = zip(held.tolist(), today.tolist(), strict=True)
        expected = dict(zip(table_key.tolist(), pairs, strict=True))
        for k, d, b in zip(key.tolist(), delta.tolist(), bought.tolist(), strict=True):
            shares, bought_today = expected.get(k, (0, 0))
            expected[k] = (shares + d, bought_today + (d if b else 0))
        new_lo, new_rows = _add_positions_compiled(table, lo, n_rows, key, delta, bought)
        keys = sorted(expected)
        assert new_rows == len(keys)
        assert new_lo >= 0 and new_lo + new_rows <= table.shape[1]
        live = table[:, new_lo : new_lo + new_rows]
        assert live[0].tolist() == keys
        assert live[1].tolist() == [expected[k][0] for k in keys]
        assert live[2].tolist() == [expected[k][1] for k in keys]
        spare = np.ones(table.shape[1], bool)
        spare[min(lo, new_lo) : max(lo + n_rows, new_lo + new_rows)] = False
        assert (table[:, spare] == -7).all()  # beyond the old and new tables: untouched
