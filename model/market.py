"""The exchange: admits orders, keeps the resting book, clears it and settles.

Orders are day orders: they rest on the book across the day's session slices
until filled or cancelled, and expire at the close. Each slice every stock
clears one call auction (model.kernel). The exchange refuses what an account
cannot honour: a sell beyond the shares it may sell today (T+1) or a buy beyond
its cash and credit, counting what it already has resting on the book.
"""

from __future__ import annotations

import numpy as np

from model.kernel import Clearing, Grid, clear
from model.ledger import Ledger
from model.orders import Orders
from model.universe import Universe


def _fit(keys_old, need_old, keys_new, need_new, capacity_of) -> np.ndarray:
    """How much of each new row's ``need`` fits its key's capacity, in row order.

    ``capacity_of(unique_keys)`` gives each key's capacity; resting rows
    (``keys_old``/``need_old``) have used theirs already.
    """
    n_old = keys_old.shape[0]
    ukeys, inverse = np.unique(np.concatenate([keys_old, keys_new]), return_inverse=True)
    used = np.bincount(inverse[:n_old], need_old.astype(np.float64), minlength=ukeys.size)
    avail = capacity_of(ukeys).astype(np.float64) - used
    inv_new = inverse[n_old:]
    order = np.argsort(inv_new, kind="stable")
    need_sorted = need_new[order].astype(np.float64)
    cum = np.cumsum(need_sorted)
    group_sorted = inv_new[order]
    first = np.searchsorted(group_sorted, group_sorted, side="left")
    before_sorted = cum - need_sorted - (cum[first] - need_sorted[first])
    before = np.empty_like(before_sorted)
    before[order] = before_sorted
    return np.clip(avail[inv_new] - before, 0.0, need_new.astype(np.float64))


class Market:
    """Exchange state: price grid, resting book, prices, and the clearing house."""

    def __init__(
        self, universe: Universe, ledger: Ledger, n_levels: int, lot: int, base_var: float
    ) -> None:
        self.universe = universe
        self.ledger = ledger
        self.n_levels = n_levels
        self.lot = lot
        n = universe.n
        self.prev_close = universe.price0.copy()  # (S,) fen
        self.last = universe.price0.copy()  # (S,) fen, last clearing price
        self.grid = Grid.from_close(self.prev_close, universe.limit, n_levels)
        self.book = Orders.empty()
        self.book_level = np.zeros(0, dtype=np.int64)
        self.turnover = 0.0  # CNY traded in the last slice
        self.volume = np.zeros(n, dtype=np.int64)  # (S,) lots in the last slice
        self.lock = np.zeros(n, dtype=np.int8)  # (S,) limit lock after the last slice
        self.step_return = np.zeros(n)  # (S,) log return of the last slice
        # Volatility trackers per stock: squared slice returns, fast and slow averages,
        # both starting at the variance a quiet market would have (``base_var``).
        self.var_fast = np.full(n, base_var)
        self.var_slow = np.full(n, base_var)
        self.last_clearing: Clearing | None = None
        self.last_fills: tuple[np.ndarray, ...] = (np.zeros(0, np.int64),) * 4

    # -- the day --------------------------------------------------------------------------
    def open_day(self) -> None:
        """New limits from yesterday's close; yesterday's orders have expired."""
        self.grid = Grid.from_close(self.prev_close, self.universe.limit, self.n_levels)
        self.book = Orders.empty()
        self.book_level = np.zeros(0, dtype=np.int64)
        self.ledger.new_day()

    def close_day(self) -> None:
        self.prev_close = self.last.copy()

    # -- orders ---------------------------------------------------------------------------
    def limit_price(self, stock: np.ndarray, side: np.ndarray) -> np.ndarray:
        """Today's limit-up price for buys, limit-down for sells: a market order's price."""
        return np.where(side > 0, self.grid.upper[stock], self.grid.lower[stock])

    def clip_price(self, stock: np.ndarray, price: np.ndarray) -> np.ndarray:
        """Prices rounded to the fen and held within today's limits."""
        price = np.rint(price).astype(np.int64)
        return np.clip(price, self.grid.lower[stock], self.grid.upper[stock])

    def submit(self, orders: Orders) -> Orders:
        """Admit what the accounts can honour, rest it on the book; return what was admitted."""
        orders = orders.select(orders.lots > 0)
        if not len(orders):
            return orders
        orders = Orders(
            orders.account,
            orders.stock,
            orders.side,
            self.clip_price(orders.stock, orders.price),
            orders.lots,
        )
        lots = orders.lots.copy()
        n_stocks, lot, book = self.ledger.n_stocks, self.lot, self.book

        sell, old_sell = orders.side < 0, book.side < 0
        if sell.any():

            def sellable(keys):
                return self.ledger.sellable(keys // n_stocks, keys % n_stocks)

            shares = _fit(
                book.account[old_sell] * n_stocks + book.stock[old_sell],
                book.lots[old_sell] * lot,
                orders.account[sell] * n_stocks + orders.stock[sell],
                orders.lots[sell] * lot,
                sellable,
            )
            lots[sell] = (shares // lot).astype(np.int64)
        buy, old_buy = ~sell, ~old_sell
        if buy.any():

            def power(accounts):
                return self.ledger.cash[accounts] + self.ledger.credit[accounts]

            cost = orders.lots[buy] * lot * orders.price[buy]
            fen = _fit(
                book.account[old_buy],
                book.lots[old_buy] * lot * book.price[old_buy],
                orders.account[buy],
                cost,
                power,
            )
            lots[buy] = (fen // (lot * orders.price[buy])).astype(np.int64)
        admitted = orders.with_lots(lots)
        level = self.grid.level_of(admitted.stock, admitted.price, admitted.side)
        self.book = Orders.concat([book, admitted])
        self.book_level = np.concatenate([self.book_level, level])
        return admitted

    def cancel(self, mask: np.ndarray) -> None:
        """Withdraw the resting orders where ``mask`` (shape of the book) is true."""
        keep = ~mask
        self.book = self.book.select(keep)
        self.book_level = self.book_level[keep]

    def cancel_accounts(self, accounts: np.ndarray) -> None:
        """Withdraw every resting order of ``accounts`` (a sorted id array or a range)."""
        if len(self.book):
            self.cancel(np.isin(self.book.account, accounts))

    # -- clearing -------------------------------------------------------------------------
    def clear(self) -> Clearing:
        """One call auction in every stock; settle fills; keep the unfilled orders resting."""
        book, grid = self.book, self.grid
        ref = grid.nearest_level(np.arange(grid.n_stocks), self.last)
        result = clear(grid, book.stock, book.side, self.book_level, book.lots, ref)
        traded = result.filled > 0
        account, stock = book.account[traded], book.stock[traded]
        signed = book.side[traded].astype(np.int64) * result.filled[traded] * self.lot
        price = result.price[stock]
        self.ledger.settle(account, stock, signed, price)
        self.last_fills = (account, stock, signed, price)

        left = book.lots - result.filled
        self.book = book.with_lots(left)
        self.book_level = self.book_level[left > 0]

        new_last = np.where(result.volume > 0, result.price, self.last)
        self.step_return = np.log(new_last / self.last)
        self.last = new_last
        self.volume = result.volume
        self.lock = result.lock
        self.turnover = float(np.dot(result.volume, result.price)) * self.lot / 100.0
        self._track_volatility()
        self.last_clearing = result
        return result

    def _track_volatility(self, fast: float = 0.03, slow: float = 0.003) -> None:
        r2 = self.step_return**2
        self.var_fast += fast * (r2 - self.var_fast)
        self.var_slow += slow * (r2 - self.var_slow)

    def vol_ratio(self) -> np.ndarray:
        """(S,) recent volatility over its long-run level; 1 in a quiet market."""
        return np.sqrt(self.var_fast / np.maximum(self.var_slow, 1e-12))

    def caps(self) -> np.ndarray:
        """(S,) free-float caps in CNY at the last price."""
        return self.universe.caps(self.last)
