"""Vectorized call-auction clearing of every stock in one pass.

The kernel knows nothing of agents: it sees order arrays (stock, side, price
level, lots) and a per-stock price grid spanning the day's limits. For each
stock it finds the price level that maximizes executed volume, fills every order
beyond its side's marginal level in full and the orders at it pro rata in whole
lots, earliest orders first for the leftover lots. Of the levels that trade the
most, the price is one the exchanges' rule allows: every buy above the price and
every sell below it fills in full, so a side left with lots at its marginal level
sets the price there (a wall of sells at limit-down clears at limit-down and
locks). Among the levels the rule allows: the least imbalance, then the level
nearest the reference. Everything is integer: lots and fen, so fills balance
exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from model.aot import entry

BUY, SELL = np.int8(1), np.int8(-1)


@dataclass(frozen=True)
class Grid:
    """The day's price levels per stock: ``lower + j * step``, capped at ``upper``."""

    lower: np.ndarray  # (S,) int64 fen, limit-down price
    upper: np.ndarray  # (S,) int64 fen, limit-up price
    step: np.ndarray  # (S,) int64 fen between adjacent levels
    n_active: np.ndarray  # (S,) int64, levels in use; the top one is ``upper``
    n_levels: int  # L, width of the (S, L) arrays

    @classmethod
    def from_close(cls, prev_close: np.ndarray, limit: np.ndarray, n_levels: int) -> Grid:
        """Grid within ``prev_close * (1 -/+ limit)``, on whole fen, at least a fen apart."""
        upper = np.round(prev_close * (1.0 + limit)).astype(np.int64)
        lower = np.maximum(np.round(prev_close * (1.0 - limit)).astype(np.int64), 1)
        span = np.maximum(upper - lower, 1)
        upper = lower + span
        step = -(-span // (n_levels - 1))  # ceil division: levels never exceed n_levels
        n_active = -(-span // step) + 1
        return cls(lower, upper, step, n_active, n_levels)

    @property
    def n_stocks(self) -> int:
        return self.lower.shape[0]

    def prices(self) -> np.ndarray:
        """(S, L) int64 price of every level; inactive levels repeat ``upper``."""
        j = np.arange(self.n_levels, dtype=np.int64)
        return np.minimum(
            self.lower[:, None] + j[None, :] * self.step[:, None], self.upper[:, None]
        )

    def price_of(self, stock: np.ndarray, level: np.ndarray) -> np.ndarray:
        """Price in fen of ``level`` of ``stock`` (element-wise)."""
        return np.minimum(self.lower[stock] + level * self.step[stock], self.upper[stock])

    def level_of(self, stock: np.ndarray, price: np.ndarray, side: np.ndarray) -> np.ndarray:
        """Grid level where an order rests: buys round down, sells round up, clipped to limits.

        An order priced beyond a limit rests at the limit: that is how a market order
        behaves under daily price limits.
        """
        return _level_of(
            self.lower,
            self.upper,
            self.step,
            self.n_active,
            np.asarray(stock, np.int64),
            np.asarray(price, np.int64),
            np.asarray(side),
        )

    def nearest_level(self, stock: np.ndarray, price: np.ndarray) -> np.ndarray:
        """Level closest to ``price`` (int64 fen) of ``stock`` (the reference for tie-breaks).

        One compiled pass (:func:`_nearest_level`): the auction asks it for every instrument
        each step, where numpy's gathers, division, rounding and clip were six passes.
        """
        return _nearest_level(
            self.lower,
            self.upper,
            self.step,
            self.n_active,
            np.asarray(stock, np.int64),
            np.asarray(price, np.int64),
        )


@entry
@numba.njit(cache=True, nogil=True)
def _nearest_level(
    lower: np.ndarray,
    upper: np.ndarray,
    step: np.ndarray,
    n_active: np.ndarray,
    stock: np.ndarray,
    price: np.ndarray,
) -> np.ndarray:
    """(n,) :meth:`Grid.nearest_level`: ``np.rint`` of the offset over the step (half to
    even, the true division's float), clipped to the stock's active levels; between the
    two top levels, whichever price is nearer (the top one is ``upper``, closer than a
    step to the one below when the span is not a whole number of steps)."""
    level = np.empty(stock.shape[0], np.int64)
    for i in range(stock.shape[0]):
        s = stock[i]
        top = n_active[s] - 1
        nearest = min(max(np.int64(np.rint((price[i] - lower[s]) / step[s])), 0), top)
        if nearest >= top - 1:
            below_top = lower[s] + (top - 1) * step[s]
            nearest = top if upper[s] - price[i] < price[i] - below_top else top - 1
        level[i] = nearest
    return level


@numba.njit(cache=True, nogil=True)
def _level_of(
    lower: np.ndarray,
    upper: np.ndarray,
    step: np.ndarray,
    n_active: np.ndarray,
    stock: np.ndarray,
    price: np.ndarray,
    side: np.ndarray,
) -> np.ndarray:
    """(n,) :meth:`Grid.level_of` in one compiled pass (int64 floor division is slow in numpy).

    Numba's integer ``//`` floors like Python's, so the levels are the same.
    """
    level = np.empty(stock.shape[0], np.int64)
    for i in range(stock.shape[0]):
        s = stock[i]
        level[i] = level_at(lower[s], upper[s], step[s], n_active[s], price[i], side[i])
    return level


@numba.njit(cache=True, nogil=True, inline="always")
def level_at(lower: int, upper: int, step: int, n_active: int, price: int, side: int) -> int:
    """Grid level of one order (:meth:`Grid.level_of`): buys round down, sells up.

    The top level is priced at ``upper``, which is below ``lower + top * step`` when the
    span is not a whole number of steps: a buy at the limit-up price rests there, not a
    level below, or the stock could never lock limit-up.
    """
    if side > 0 and price >= upper:
        return n_active - 1
    # Down: offset // step; up: ceil(offset / step) = (offset + step - 1) // step.
    offset = price - lower + (0 if side > 0 else step - 1)
    return min(max(offset // step, 0), n_active - 1)


@dataclass(frozen=True)
class Clearing:
    """Result of one call auction over all stocks."""

    level: np.ndarray  # (S,) int64 clearing level (reference level where nothing trades)
    price: np.ndarray  # (S,) int64 clearing price in fen
    volume: np.ndarray  # (S,) int64 lots executed
    filled: np.ndarray  # (n_orders,) int64 lots each order executed
    lock: np.ndarray  # (S,) int8: +1 locked limit-up, -1 locked limit-down, 0 otherwise
    bid_qty: np.ndarray  # (S, L) float64 (whole) lots bid at each level before clearing
    ask_qty: np.ndarray  # (S, L) float64 (whole) lots offered at each level before clearing


def clear(
    grid: Grid,
    stock: np.ndarray,
    side: np.ndarray,
    level: np.ndarray,
    lots: np.ndarray,
    ref_level: np.ndarray,
) -> Clearing:
    """Clear every stock's call auction at once (compiled; same results as :func:`clear_numpy`).

    Args:
        grid: the day's price grid.
        stock, side, level, lots: (n_orders,) order arrays; side is BUY or SELL,
            lots are positive integers.
        ref_level: (S,) level of the last price, the final tie-break.
    """
    n_stocks = grid.n_stocks
    level_star, price, volume, filled, lock, qty = _clear_compiled(
        np.asarray(stock, np.int64),
        np.asarray(side, np.int8),
        np.asarray(level, np.int64),
        np.asarray(lots, np.int64),
        np.asarray(ref_level, np.int64),
        np.asarray(grid.n_active, np.int64),
        np.asarray(grid.lower, np.int64),
        np.asarray(grid.step, np.int64),
        np.asarray(grid.upper, np.int64),
        n_stocks,
        grid.n_levels,
    )
    return Clearing(
        level=level_star,
        price=price,
        volume=volume,
        filled=filled,
        lock=lock,
        bid_qty=qty[1],
        ask_qty=qty[0],
    )


@entry
@numba.njit(cache=True, nogil=True)
def _clear_compiled(
    stock, side, level, lots, ref_level, n_active, lower, step, upper, n_stocks, n_levels
):
    """The auction of :func:`clear_numpy`, one stock at a time: a pass over its levels.

    The same rules in loops: the book per level, cumulative demand and supply, the
    volume-maximizing level with its tie-breaks and its price on the grid (``lower``,
    ``step``, ``upper``, as :meth:`Grid.price_of`), each side's marginal level and what
    the orders at it share, then pro rata fills and the leftover lots earliest first.
    """
    n = stock.shape[0]
    qty = np.zeros((2, n_stocks, n_levels))  # [sells, buys] lots per stock and level
    for i in range(n):
        qty[1 if side[i] > 0 else 0, stock[i], level[i]] += lots[i]
    level_star = ref_level.copy()
    price = np.empty(n_stocks, np.int64)
    volume = np.zeros(n_stocks, np.int64)
    lock = np.zeros(n_stocks, np.int8)
    # Per stock and side [sell, buy]: the level an order must reach to fill in full or pro
    # rata (its marginal level; past the book's edge where the stock does not trade, so
    # no order reaches it), the lots resting there and the lots they share.
    reach = np.empty((n_stocks, 2), np.int64)
    resting = np.ones((n_stocks, 2), np.int64)
    owed = np.zeros((n_stocks, 2), np.int64)
    # Lots are whole and their sums far below 2**53: cumulative demand and supply in
    # int64 equal the float64 sums exactly, and integer adds and min/max chain faster.
    demand = np.empty(n_levels, np.int64)  # (L,)
    supply = np.empty(n_levels, np.int64)  # (L,)
    for s in range(n_stocks):
        acc = 0
        for j in range(n_levels - 1, -1, -1):
            acc += np.int64(qty[1, s, j])
            demand[j] = acc
        acc, best = 0, 0
        for j in range(n_levels):
            acc += np.int64(qty[0, s, j])
            supply[j] = acc
            best = max(best, min(demand[j], acc))
        # Demand falls with the level and supply rises, so the marginal levels (the last
        # with demand >= volume, the first with supply >= volume) follow from counting
        # levels (one branch-free pass; a bisection's branches mispredict), and the
        # levels that trade the most volume are exactly those between them.
        # The exchanges' rule: every buy above the price and every sell below it fills in
        # full, so the price lies at or above the last level bidding more than the volume
        # and at or below the first offering more (lots are whole: "more" is "at least
        # one more"). A side left over at its margin pins the price there.
        bid_at_least = bid_more = ask_at_least = ask_more = 0
        for j in range(n_levels):
            bid_at_least += demand[j] >= best
            bid_more += demand[j] > best
            ask_at_least += supply[j] >= best
            ask_more += supply[j] > best
        buy_margin = bid_at_least - 1
        sell_margin = n_levels - ask_at_least
        if best > 0:
            lo = max(sell_margin, bid_more - 1)
            hi = min(buy_margin, n_levels - ask_more)
            # Ties among those levels: least imbalance, then nearest the reference level,
            # then the lowest level.
            pick, pick_imb, pick_dist = -1, 0, 0
            for j in range(lo, hi + 1):
                imb = abs(demand[j] - supply[j])
                dist = abs(j - ref_level[s])
                if pick < 0 or imb < pick_imb or (imb == pick_imb and dist < pick_dist):
                    pick, pick_imb, pick_dist = j, imb, dist
            level_star[s] = pick
        price[s] = min(lower[s] + level_star[s] * step[s], upper[s])
        vol = best
        volume[s] = vol
        if vol > 0:
            above = demand[buy_margin + 1] if buy_margin + 1 < n_levels else 0
            below = supply[sell_margin - 1] if sell_margin > 0 else 0
            owed[s, 0], owed[s, 1] = vol - below, vol - above
            reach[s, 0], reach[s, 1] = sell_margin, buy_margin
            resting[s, 0] = max(np.int64(qty[0, s, sell_margin]), 1)
            resting[s, 1] = max(np.int64(qty[1, s, buy_margin]), 1)
        else:
            reach[s, 0], reach[s, 1] = -1, n_levels
        top = n_active[s] - 1
        if level_star[s] == top and demand[top] > vol:
            lock[s] = 1
        if level_star[s] == 0 and supply[0] > vol:
            lock[s] = -1

    # Fills: in full beyond a side's marginal level, pro rata in whole lots at it, and the
    # leftover lots (fewer than the orders with a remainder) one each, earliest first.
    # past: how far an order lies beyond its side's marginal level (> 0 in full, 0 at it).
    # The first pass has no branch (whether an order fills is a coin toss to the CPU): a
    # select for the full fills, and the orders at a margin (a quarter) listed in time
    # order, for the pro rata pass and the leftover lots.
    filled = np.empty(n, np.int64)  # (n,)
    at = np.empty(n, np.int64)  # (n_at,) the orders at a margin, earliest first
    n_at = 0
    for i in range(n):
        b = 1 if side[i] > 0 else 0
        past = (level[i] - reach[stock[i], b]) * (2 * b - 1)
        filled[i] = lots[i] if past > 0 else 0
        at[n_at] = i
        n_at += past == 0
    remainder = np.empty(n_at, np.int64)  # (n_at,) what their pro rata share left over
    given = np.zeros((n_stocks, 2), np.int64)
    for k in range(n_at):
        i = at[k]
        s, b = stock[i], 1 if side[i] > 0 else 0
        share = lots[i] * owed[s, b] // resting[s, b]
        filled[i] = share
        given[s, b] += share
        remainder[k] = lots[i] * owed[s, b] - share * resting[s, b]
    for k in range(n_at):
        if remainder[k] > 0:
            i = at[k]
            s, b = stock[i], 1 if side[i] > 0 else 0
            if given[s, b] < owed[s, b]:
                filled[i] += 1
                given[s, b] += 1
    return level_star, price, volume, filled, lock, qty


def clear_numpy(
    grid: Grid,
    stock: np.ndarray,
    side: np.ndarray,
    level: np.ndarray,
    lots: np.ndarray,
    ref_level: np.ndarray,
) -> Clearing:
    """Clear every stock's call auction at once, in numpy passes: the reference for :func:`clear`.

    Args:
        grid: the day's price grid.
        stock, side, level, lots: (n_orders,) order arrays; side is BUY or SELL,
            lots are positive integers.
        ref_level: (S,) level of the last price, the final tie-break.
    """
    n_stocks, n_levels = grid.n_stocks, grid.n_levels
    cell = stock.astype(np.int64) * n_levels + level
    is_buy = side > 0
    size = n_stocks * n_levels
    # Lots are whole numbers far below 2**53, so float64 sums are exact; float64 keeps the
    # (S, L) passes few and fast. Orders never rest beyond a stock's active levels.
    # qty[side, s, j] with side 0 = sells, 1 = buys: one pass over the orders, no copies.
    qty = np.bincount(cell + is_buy * size, lots, minlength=2 * size)
    qty = qty.reshape(2, n_stocks, n_levels)
    ask_qty, bid_qty = qty[0], qty[1]

    # demand[s, j]: lots bid at level j or higher; supply[s, j]: lots offered at j or lower.
    # (Contiguous copies: reversed views slow every later pass over them.)
    demand = np.ascontiguousarray(np.cumsum(bid_qty[:, ::-1], axis=1)[:, ::-1])
    supply = np.cumsum(ask_qty, axis=1)
    volume_at = np.minimum(demand, supply)  # (S, L)
    best = volume_at.max(axis=1)  # (S,)

    # The exchanges' rule: every buy above the price and every sell below it fills in full,
    # so a candidate level has no more than the volume bid above it or offered below it.
    zeros = np.zeros((n_stocks, 1))
    bid_above = np.concatenate([demand[:, 1:], zeros], axis=1)  # (S, L) lots bid above j
    ask_below = np.concatenate([zeros, supply[:, :-1]], axis=1)  # (S, L) lots offered below j
    allowed = (bid_above <= best[:, None]) & (ask_below <= best[:, None])
    # Ties for the most volume (a few cells a stock): least imbalance, then nearest reference.
    cand_stock, cand_level = np.nonzero((volume_at == best[:, None]) & allowed)
    traded = best[cand_stock] > 0
    cand_stock, cand_level = cand_stock[traded], cand_level[traded]
    imbalance = np.abs(demand[cand_stock, cand_level] - supply[cand_stock, cand_level])
    distance = np.abs(cand_level - ref_level[cand_stock])
    order = np.lexsort((distance, imbalance, cand_stock))
    first = order[np.r_[True, np.diff(cand_stock[order]) != 0]] if order.size else order
    level_star = np.asarray(ref_level, dtype=np.int64).copy()
    level_star[cand_stock[first]] = cand_level[first]
    volume = np.rint(best).astype(np.int64)
    rows = np.arange(n_stocks)

    # Each side fills from its best level inwards until the volume is used up: the marginal
    # level is the last one a side reaches (it can lie beyond the price when levels are empty).
    # Demand falls with the level and supply rises, so counting the levels suffices.
    buy_margin = (demand >= best[:, None]).sum(axis=1) - 1  # last j with D >= V
    sell_margin = n_levels - (supply >= best[:, None]).sum(axis=1)  # first j with S >= V
    above = np.where(
        buy_margin + 1 < n_levels, demand[rows, np.minimum(buy_margin + 1, n_levels - 1)], 0
    )
    below = np.where(sell_margin > 0, supply[rows, np.maximum(sell_margin - 1, 0)], 0)
    above, below = np.rint(above).astype(np.int64), np.rint(below).astype(np.int64)
    # Per side (column 0 sells, 1 buys): the marginal level and the lots it still gets.
    margin = np.stack([sell_margin, buy_margin], axis=1)  # (S, 2)
    owed = np.where((volume > 0)[:, None], volume[:, None] - np.stack([below, above], axis=1), 0)
    filled = _fills(
        stock,
        level,
        lots,
        is_buy.astype(np.int64),
        volume > 0,
        margin,
        owed,
        qty,
    )

    top = grid.n_active - 1
    lock = np.zeros(n_stocks, dtype=np.int8)
    lock[(level_star == top) & (demand[rows, top] > volume)] = 1
    lock[(level_star == 0) & (supply[:, 0] > volume)] = -1
    return Clearing(
        level=level_star,
        price=grid.price_of(rows, level_star),
        volume=volume,
        filled=filled,
        lock=lock,
        bid_qty=bid_qty,
        ask_qty=ask_qty,
    )


def _fills(
    stock: np.ndarray,
    level: np.ndarray,
    lots: np.ndarray,
    side: np.ndarray,
    traded: np.ndarray,
    margin: np.ndarray,
    owed: np.ndarray,
    qty: np.ndarray,
) -> np.ndarray:
    """Lots filled per order: in full beyond its side's marginal level, pro rata at it.

    Args:
        stock, level, lots: (n,) orders; side: (n,) 0 sell, 1 buy.
        traded: (S,) whether the stock trades at all.
        margin: (S, 2) marginal level per stock and side; owed: (S, 2) lots the orders at
            it share; qty: (2, S, L) lots resting per side, stock and level.
    """
    order_margin = margin[stock, side]
    trades = traded[stock]
    beyond = np.where(side == 1, level > order_margin, level < order_margin)
    filled = np.where(trades & beyond, lots, 0).astype(np.int64)

    # Pro rata at the marginal level: floor(lots * owed / resting), exact in integers.
    at = np.flatnonzero(trades & (level == order_margin))  # the few orders at a margin
    s_at, side_at = stock[at], side[at]
    resting = np.maximum(np.rint(qty[side_at, s_at, order_margin[at]]).astype(np.int64), 1)
    share, remainder = np.divmod(lots[at] * owed[s_at, side_at], resting)
    filled[at] += share

    # Leftover lots (fewer than the orders with a remainder) go one each, earliest first.
    group_at = s_at * 2 + side_at
    given = np.bincount(group_at, share, minlength=owed.size)
    owed = owed.ravel() - np.rint(given).astype(np.int64)
    with_rem = np.flatnonzero(remainder > 0)
    if with_rem.size:
        group = group_at[with_rem]
        order = np.argsort(group, kind="stable")  # keeps time priority within a group
        group_sorted = group[order]
        first = np.searchsorted(group_sorted, group_sorted, side="left")
        rank = np.arange(group_sorted.shape[0]) - first
        lucky = at[with_rem[order][rank < owed[group_sorted]]]
        filled[lucky] += 1
    return filled
