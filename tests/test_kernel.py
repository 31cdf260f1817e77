"""The call auction: volume-maximizing price, exact fills, locks and carry-over."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from model.kernel import Grid, clear, clear_numpy


def _grid(n_stocks: int, n_levels: int = 21) -> Grid:
    return Grid.from_close(np.full(n_stocks, 1000), np.full(n_stocks, 0.10), n_levels)


def _brute_volume(bid: np.ndarray, ask: np.ndarray) -> int:
    """Max over levels of min(bids at or above, asks at or below), for one stock."""
    return max(min(bid[j:].sum(), ask[: j + 1].sum()) for j in range(bid.shape[0]))


books = st.lists(
    st.tuples(st.integers(0, 3), st.sampled_from([1, -1]), st.integers(0, 20), st.integers(1, 50)),
    min_size=1,
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(books, st.integers(0, 20))
def test_clearing_maximizes_volume_and_fills_balance(orders, ref):
    grid = _grid(4)
    stock, side, level, lots = (np.array(c, dtype=np.int64) for c in zip(*orders, strict=True))
    side = side.astype(np.int8)
    res = clear(grid, stock, side, level, lots, ref_level=np.full(4, ref))
    for s in range(4):
        bid = np.bincount(level[(stock == s) & (side > 0)], lots[(stock == s) & (side > 0)], 21)
        ask = np.bincount(level[(stock == s) & (side < 0)], lots[(stock == s) & (side < 0)], 21)
        assert res.volume[s] == _brute_volume(bid, ask)
        buys, sells = (stock == s) & (side > 0), (stock == s) & (side < 0)
        assert res.filled[buys].sum() == res.volume[s] == res.filled[sells].sum()
    assert np.all(res.filled <= lots) and np.all(res.filled >= 0)
    # The exchanges' rule: every buy above the price and every sell below it fills in full.
    beyond = np.where(side > 0, level > res.level[stock], level < res.level[stock])
    beyond &= res.volume[stock] > 0
    assert np.all(res.filled[beyond] == lots[beyond])
    # Nobody trades through their limit: buyers at or above, sellers at or below the price.
    traded = res.filled > 0
    assert np.all(
        np.where(
            side[traded] > 0,
            level[traded] >= res.level[stock[traded]],
            level[traded] <= res.level[stock[traded]],
        )
    )


def test_tie_breaks_on_imbalance_then_reference():
    grid = _grid(1)
    # 10 lots bid at level 12, 10 offered at level 8: every level 8..12 trades 10 lots with
    # no imbalance, so the reference level decides.
    stock = np.zeros(2, np.int64)
    side = np.array([1, -1], np.int8)
    level = np.array([12, 8])
    lots = np.array([10, 10])
    for ref, expect in ((10, 10), (0, 8), (20, 12)):
        res = clear(grid, stock, side, level, lots, np.array([ref]))
        assert res.level[0] == expect and res.volume[0] == 10


def test_a_side_left_over_at_its_margin_sets_the_price():
    """A wall of sells at limit-down against thin bids higher up trades the bids at
    limit-down and locks it (at a higher price sells that asked less would go unfilled);
    a wall of buys at limit-up mirrors it."""
    grid = _grid(1)
    top = int(grid.n_active[0] - 1)
    stock = np.zeros(4, np.int64)
    for side, level, wall in ((-1, 0, 0), (1, top, top)):
        sides = np.array([side, -side, -side, -side], np.int8)
        levels = np.array([level, 8, 10, 12] if side < 0 else [level, 12, 10, 8])
        for clearing in (clear, clear_numpy):
            res = clearing(grid, stock, sides, levels, np.array([100, 10, 10, 10]), np.array([10]))
            assert res.level[0] == wall and res.volume[0] == 30
            assert res.lock[0] == side and res.filled.tolist() == [30, 10, 10, 10]


def test_no_trade_through_where_neither_side_is_left_over_at_its_margin():
    # Grid 900..1100 fen, 20 fen a level. Buys: 3 lots at level 2, 4 at level 4; sells: 4
    # at level 0, 1 at level 3. Levels 0-4 all trade 4 lots, but at level 4 (nearest the
    # reference) the sell at level 3 would sit below the price unfilled: only levels 2 and
    # 3 leave every buy above and every sell below the price filled. Level 3 has the
    # least imbalance.
    grid = Grid.from_close(np.array([1000]), np.array([0.10]), 11)
    stock, side = np.zeros(4, np.int64), np.array([1, 1, -1, -1], np.int8)
    level, lots = np.array([2, 4, 0, 3]), np.array([3, 4, 4, 1])
    for kernel in (clear, clear_numpy):
        res = kernel(grid, stock, side, level, lots, ref_level=np.array([4]))
        assert res.level[0] == 3 and res.volume[0] == 4
        np.testing.assert_array_equal(res.filled, [0, 4, 4, 0])


def test_pro_rata_at_the_margin_in_whole_lots_earliest_first():
    grid = _grid(1)
    # Three buyers at one level share 10 lots offered: 7/7/7 -> 3.33 each -> 4, 3, 3.
    stock = np.zeros(4, np.int64)
    side = np.array([1, 1, 1, -1], np.int8)
    level = np.array([10, 10, 10, 10])
    lots = np.array([7, 7, 7, 10])
    res = clear(grid, stock, side, level, lots, np.array([10]))
    assert res.filled.tolist() == [4, 3, 3, 10]


def test_limit_down_locks_and_the_queue_stays():
    grid = _grid(1)
    top = int(grid.n_active[0] - 1)
    # A flood of sells at the limit-down price against a thin bid.
    stock = np.zeros(2, np.int64)
    side = np.array([-1, 1], np.int8)
    level = np.array([0, 0])
    lots = np.array([500, 20])
    res = clear(grid, stock, side, level, lots, np.array([10]))
    assert res.level[0] == 0 and res.lock[0] == -1 and res.volume[0] == 20
    assert res.price[0] == grid.lower[0]
    left = lots - res.filled
    assert left.tolist() == [480, 0]
    # Same queue next slice with a new bid: it fills from the queue, still at the limit.
    res2 = clear(grid, stock, side, level, np.array([480, 30]), np.array([0]))
    assert res2.volume[0] == 30 and res2.lock[0] == -1
    # And a limit-up lock mirrors it.
    res3 = clear(
        grid,
        stock,
        np.array([1, -1], np.int8),
        np.array([top, top]),
        np.array([500, 5]),
        np.array([10]),
    )
    assert res3.lock[0] == 1 and res3.price[0] == grid.upper[0]


def test_no_orders_no_trade_price_stays_at_reference():
    grid = _grid(3)
    res = clear(
        grid,
        np.zeros(0, np.int64),
        np.zeros(0, np.int8),
        np.zeros(0, np.int64),
        np.zeros(0, np.int64),
        np.array([3, 10, 17]),
    )
    assert res.volume.tolist() == [0, 0, 0]
    assert res.level.tolist() == [3, 10, 17]


def test_grid_spans_limits_on_ticks():
    prev = np.array([1000, 1000, 1000, 1000, 237])
    limit = np.array([0.10, 0.05, 0.20, 0.30, 0.10])
    grid = Grid.from_close(prev, limit, 101)
    prices = grid.prices()
    assert grid.upper.tolist() == [1100, 1050, 1200, 1300, 261]
    assert grid.lower.tolist() == [900, 950, 800, 700, 213]
    for s in range(5):
        active = prices[s, : grid.n_active[s]]
        assert active[0] == grid.lower[s] and active[-1] == grid.upper[s]
        assert np.all(np.diff(active) > 0)  # distinct whole-fen levels
    # Buys round down, sells round up, and nothing rests beyond a limit.
    s = np.array([0, 0, 0, 0])
    lv = grid.level_of(s, np.array([1001, 1001, 5000, 1]), np.array([1, -1, 1, -1]))
    assert grid.price_of(s, lv).tolist() == [1000, 1002, 1100, 900]


@settings(max_examples=100, deadline=None)
@given(books, st.integers(0, 20), st.sampled_from([5, 21]))
def test_compiled_kernel_equals_the_numpy_reference(orders, ref, n_levels):
    """The compiled auction and the numpy passes it replaces give the same clearing."""
    grid = _grid(4, n_levels)
    stock, side, level, lots = (np.array(c, dtype=np.int64) for c in zip(*orders, strict=True))
    side, level = side.astype(np.int8), np.minimum(level, n_levels - 1)
    args = (grid, stock, side, level, lots, np.full(4, min(ref, n_levels - 1)))
    fast, slow = clear(*args), clear_numpy(*args)
    for field in ("level", "price", "volume", "filled", "lock", "bid_qty", "ask_qty"):
        assert np.array_equal(getattr(fast, field), getattr(slow, field)), field
        assert getattr(fast, field).dtype == getattr(slow, field).dtype, field


def test_compiled_kernel_equals_the_numpy_reference_on_a_large_book():
    from experiments.bench import kernel_case

    for seed in range(3):
        case = kernel_case(300, 20_000, seed=seed)
        fast, slow = clear(*case), clear_numpy(*case)
        for field in ("level", "volume", "filled", "lock", "bid_qty"):
            assert np.array_equal(getattr(fast, field), getattr(slow, field)), field


def _numpy_nearest_level(grid: Grid, stock: np.ndarray, price: np.ndarray) -> np.ndarray:
    """``Grid.nearest_level`` in numpy passes: the reference for the compiled pass."""
    top = grid.n_active[stock] - 1
    level = np.rint((price - grid.lower[stock]) / grid.step[stock]).astype(np.int64)
    level = np.clip(level, 0, top)
    # Between the two top levels the nearer price wins; the top one is the limit.
    below_top = grid.lower[stock] + (top - 1) * grid.step[stock]
    nearer_top = grid.upper[stock] - price < price - below_top
    return np.where(level >= top - 1, np.where(nearer_top, top, top - 1), level)


def test_nearest_level_is_the_level_whose_price_is_nearest():
    """Against every active level's price: the nearest one (ties aside), the capped top too."""
    rng = np.random.default_rng(2)
    grid = Grid.from_close(rng.integers(50, 5000, 300), np.full(300, 0.10), 21)
    prices = grid.prices()  # (S, L)
    for _ in range(20):
        stock = np.arange(300)
        price = rng.integers(grid.lower, grid.upper + 1)
        dist = np.abs(prices - price[:, None]).astype(float)
        dist[np.arange(grid.n_levels)[None, :] >= grid.n_active[:, None]] = np.inf
        level = grid.nearest_level(stock, price)
        got = dist[stock, level]
        assert (got == dist.min(axis=1)).all()
    at_limit = grid.nearest_level(stock, grid.upper)
    assert (at_limit == grid.n_active - 1).all()


def test_compiled_nearest_level_matches_the_numpy_passes():
    """Prices on, between and halfway between levels (ties to even), beyond either limit,
    for every stock in order and for stocks in any order with repeats."""
    rng = np.random.default_rng(0)
    for n_levels in (5, 21, 101):
        prev = rng.integers(50, 5000, 300)
        grid = Grid.from_close(prev, rng.choice([0.05, 0.1, 0.2], 300), n_levels)
        every = np.arange(300)
        for stock in (every, rng.integers(0, 300, 2000)):
            span = grid.upper[stock] - grid.lower[stock]
            price = grid.lower[stock] + rng.integers(-span // 4 - 2, span + span // 4 + 3)
            half = grid.lower[stock] + (2 * rng.integers(0, n_levels, stock.size) + 1) * (
                grid.step[stock] // 2
            )  # on a half step wherever the step is even
            for p in (price, half):
                want = _numpy_nearest_level(grid, stock, p)
                np.testing.assert_array_equal(grid.nearest_level(stock, p), want)
    assert (want == 0).any() and (want == grid.n_active[stock] - 1).any()


def test_a_buy_at_limit_up_rests_at_the_top_level_and_can_lock_it():
    """Where the span is not a whole number of steps the top level is priced at the limit,
    closer than a step to the one below: a buy at the limit rests there (not a level
    below, out of reach of the sells at the limit), so the stock can lock limit-up."""
    grid = Grid.from_close(np.array([1037]), np.array([0.10]), 21)
    top = int(grid.n_active[0] - 1)
    assert grid.lower[0] + top * grid.step[0] > grid.upper[0]  # the capped case
    s = np.zeros(2, np.int64)
    upper = np.full(2, grid.upper[0])
    level = grid.level_of(s, upper, np.array([1, -1], np.int8))
    assert level.tolist() == [top, top]
    # A flood of buys at the limit against a thin offer: the stock locks at the limit.
    res = clear(grid, s, np.array([1, -1], np.int8), level, np.array([500, 5]), np.array([10]))
    assert res.volume[0] == 5 and res.lock[0] == 1 and res.price[0] == grid.upper[0]
    # A buy a fen below the limit still rounds down to the level below the top.
    below = grid.level_of(s[:1], upper[:1] - 1, np.array([1], np.int8))
    assert below.tolist() == [top - 1]


def test_compiled_kernel_prices_stocks_cleared_at_a_capped_top_level():
    """Where the grid's top level lies beyond the limit-up price (a span the step does not
    divide), an auction cleared there prices at the limit, as ``Grid.price_of`` caps it."""
    rng = np.random.default_rng(1)
    n_stocks, n_levels = 200, 5
    grid = Grid.from_close(rng.integers(30, 300, n_stocks), np.full(n_stocks, 0.10), n_levels)
    top = grid.n_active - 1  # (S,)
    stocks = np.arange(n_stocks)
    stock = np.concatenate([stocks, stocks, rng.integers(0, n_stocks, 1000)])
    side = np.concatenate([np.ones(n_stocks), -np.ones(n_stocks), rng.choice([1, -1], 1000)])
    level = np.concatenate([top, top, rng.integers(0, n_levels, 1000)])
    level = np.minimum(level, top[stock])
    lots = np.concatenate([np.full(2 * n_stocks, 50), rng.integers(1, 5, 1000)])
    args = (grid, stock, side.astype(np.int8), level, lots, np.zeros(n_stocks, np.int64))
    fast, slow = clear(*args), clear_numpy(*args)
    for field in ("level", "price", "volume", "filled", "lock"):
        assert np.array_equal(getattr(fast, field), getattr(slow, field)), field
    capped = (fast.level == top) & (grid.lower + top * grid.step > grid.upper)
    assert capped.sum() > 10 and (fast.price[capped] == grid.upper[capped]).all()
