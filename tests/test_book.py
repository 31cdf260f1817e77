"""The compiled book edits (model.book) against the numpy they replace.

The edits compiled into ``Market.submit`` (resting rows, limits, appending the admitted)
are held to their numpy passes through it, in tests/test_rules.py.
"""

from __future__ import annotations

import numpy as np

from model.book import split_fills, withdraw_blocks
from model.orders import CALM, FORCED, PANIC, Orders


def _orders(rng: np.random.Generator, n: int, n_instruments: int) -> Orders:
    return Orders(
        rng.integers(0, 50, n),
        rng.integers(0, n_instruments, n),
        rng.choice(np.array([-1, 1], np.int8), n),
        rng.integers(900, 1100, n),
        rng.integers(0, 4, n),
    )


def test_split_fills_matches_numpy():
    """The fills split by kind, the lots left, and the lots times price filled of each
    kind of duress (calm, forced, panic)."""
    rng = np.random.default_rng(3)
    want = _orders(rng, 100, 12)
    filled = rng.integers(0, 3, len(want)).clip(max=want.lots)
    price = rng.integers(900, 1100, 12)
    duress = rng.choice(np.array([CALM, FORCED, PANIC], np.int8), len(want), p=[0.5, 0.3, 0.2])
    *fills, left, duress_lot_fen = split_fills(
        want.account, want.stock, want.side, want.lots, duress, filled, price, 10, 100
    )
    s_acc, s_stock, s_shares, s_price, f_acc, f_contract, f_lots = fills
    np.testing.assert_array_equal(left, want.lots - filled)
    assert (left <= 0).any() and (left > 0).any()  # orders filled in full and not
    for kind in (CALM, FORCED, PANIC):
        rows = np.flatnonzero(duress == kind)
        assert (filled[rows] > 0).any()
        assert duress_lot_fen[kind] == np.dot(filled[rows], price[want.stock[rows]])
    traded = filled > 0
    signed = want.side[traded].astype(np.int64) * filled[traded]
    is_stock = want.stock[traded] < 10
    assert is_stock.any() and (~is_stock).any()
    np.testing.assert_array_equal(s_acc, want.account[traded][is_stock])
    np.testing.assert_array_equal(s_stock, want.stock[traded][is_stock])
    np.testing.assert_array_equal(s_shares, signed[is_stock] * 100)
    np.testing.assert_array_equal(s_price, price[want.stock[traded][is_stock]])
    np.testing.assert_array_equal(f_acc, want.account[traded][~is_stock])
    np.testing.assert_array_equal(f_contract, want.stock[traded][~is_stock] - 10)
    np.testing.assert_array_equal(f_lots, signed[~is_stock])


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
