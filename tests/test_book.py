"""The compiled book edits (model.book) against the numpy they replace."""

from __future__ import annotations

import numpy as np

from model.book import (
    append_admitted,
    keep_resting,
    split_fills,
    withdraw_blocks,
    within_limits,
)
from model.kernel import Grid
from model.orders import Orders


def _orders(rng: np.random.Generator, n: int, n_instruments: int) -> Orders:
    return Orders(
        rng.integers(0, 50, n),
        rng.integers(0, n_instruments, n),
        rng.choice(np.array([-1, 1], np.int8), n),
        rng.integers(900, 1100, n),
        rng.integers(0, 4, n),
    )


def test_append_keep_and_split_match_numpy():
    rng = np.random.default_rng(3)
    grid = Grid.from_close(np.full(12, 1000), np.full(12, 0.1), 21)
    book = _orders(rng, 40, 12).with_lots(rng.integers(1, 5, 40))
    level = grid.level_of(book.stock, book.price, book.side)
    new = _orders(rng, 60, 12)
    admitted = new.lots
    *columns, out_level = append_admitted(
        *(getattr(book, f) for f in ("account", "stock", "side", "price", "lots")),
        level,
        new.account,
        new.stock,
        new.side,
        new.price,
        admitted,
        grid.lower,
        grid.step,
        grid.n_active,
    )
    want = Orders.concat([book, new.with_lots(admitted)])
    for got, name in zip(columns, ("account", "stock", "side", "price", "lots"), strict=True):
        np.testing.assert_array_equal(got, getattr(want, name))
        assert got.dtype == getattr(want, name).dtype
    np.testing.assert_array_equal(out_level, grid.level_of(want.stock, want.price, want.side))

    left = want.lots - rng.integers(0, 3, len(want)).clip(max=want.lots)
    *kept, kept_level = keep_resting(
        want.account, want.stock, want.side, want.price, out_level, left
    )
    want_kept = want.with_lots(left)
    for got, name in zip(kept, ("account", "stock", "side", "price", "lots"), strict=True):
        np.testing.assert_array_equal(got, getattr(want_kept, name))
    np.testing.assert_array_equal(kept_level, out_level[left > 0])

    filled = want.lots - left
    price = rng.integers(900, 1100, 12)
    s_acc, s_stock, s_shares, s_price, f_acc, f_contract, f_lots = split_fills(
        want.account, want.stock, want.side, filled, price, 10, 100
    )
    traded = filled > 0
    signed = want.side[traded].astype(np.int64) * filled[traded]
    is_stock = want.stock[traded] < 10
    np.testing.assert_array_equal(s_acc, want.account[traded][is_stock])
    np.testing.assert_array_equal(s_stock, want.stock[traded][is_stock])
    np.testing.assert_array_equal(s_shares, signed[is_stock] * 100)
    np.testing.assert_array_equal(s_price, price[want.stock[traded][is_stock]])
    np.testing.assert_array_equal(f_acc, want.account[traded][~is_stock])
    np.testing.assert_array_equal(f_contract, want.stock[traded][~is_stock] - 10)
    np.testing.assert_array_equal(f_lots, signed[~is_stock])


def test_within_limits_clips_prices_and_keeps_lots_at_or_above_zero():
    rng = np.random.default_rng(4)
    grid = Grid.from_close(np.full(12, 1000), np.full(12, 0.1), 21)
    orders = _orders(rng, 80, 12)
    lots = orders.lots - 2  # some none, some negative
    orders = Orders(orders.account, orders.stock, orders.side, orders.price * 2 - 1000, lots)
    got = within_limits(orders.stock, orders.price, orders.lots, grid.lower, grid.upper)
    clipped = np.clip(orders.price, grid.lower[orders.stock], grid.upper[orders.stock])
    want = (clipped, np.maximum(orders.lots, 0))
    for g, w in zip(got, want, strict=True):
        np.testing.assert_array_equal(g, w)
        assert g.dtype == np.int64
    assert (orders.lots < 0).any() and (orders.lots == 0).any()


def test_withdraw_blocks_adds_blocks_of_accounts_to_the_withdrawn():
    rng = np.random.default_rng(5)
    account = rng.integers(0, 50, 200)
    before = rng.random(200) < 0.3
    blocks = np.array([[10, 19], [30, 30], [45, 60]])
    block = ((account >= 10) & (account <= 19)) | (account == 30) | (account >= 45)
    np.testing.assert_array_equal(withdraw_blocks(account, blocks, before), before | block)
    np.testing.assert_array_equal(withdraw_blocks(account, blocks, np.zeros(0, bool)), block)
    none = np.zeros((0, 2), np.int64)
    np.testing.assert_array_equal(withdraw_blocks(account, none, before), before)
