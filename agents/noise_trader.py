"""Noise traders: liquidity demand with no view, whose attention follows volatility.

They send orders at a rate that rises with the market's recent volatility
(attention, which is what clusters volatility). Buy or sell is a coin flip
tilted towards keeping their initial cash share: a trader whose stocks have run
up sells a little more often. Either way a trader trades one of the stocks it
holds (a seller what it may sell today); only a trader holding nothing buys a new
one, drawn by attention, more often a stock that has been moving. Buying new
names drawn across the market and sized by their caps, paid for by selling the
small names most traders hold, carried a steady flow out of small caps into large
ones, which a trader with no view must not do.
Some orders are market orders (priced ``MARKET_ORDER_REACH`` through the last
price: an A-share market order walks a few levels and its remainder is cancelled),
the rest rest as limit orders near the last price, and part of those is withdrawn
each step.
"""

from __future__ import annotations

import numba
import numpy as np

from agents.base import ArrayAgent, Population
from agents.sampling import choice
from model.aot import entry
from model.config import NoiseTraderConfig
from model.ledger import consecutive
from model.orders import Orders, market_order_price


class NoiseTrader(ArrayAgent):
    """One noise trader."""


class NoiseTraders(Population):
    agent_class = NoiseTrader

    def __init__(self, model, accounts, cfg: NoiseTraderConfig) -> None:
        super().__init__(model, accounts)
        self.cfg = cfg
        self.cash_target = np.zeros(self.n)  # (n,) cash share of wealth each one keeps

    def begin_day(self) -> None:
        if self.model.day_index == 0:
            self.cash_target = self.cash_share(self.rows)

    def cash_share(
        self, rows: np.ndarray, positions: tuple[np.ndarray, ...] | None = None
    ) -> np.ndarray:
        """(r,) cash over cash plus holdings at last prices.

        ``positions`` is the rows' ``Ledger.positions_of``, when the caller has it already.
        """
        held = self.holdings_value(rows, positions)
        cash = np.maximum(self.model.ledger.cash[self.accounts[rows]] / 100.0, 0.0)
        return cash / np.maximum(cash + held, 1.0)

    def decide(self, rows: np.ndarray) -> Orders:
        market, c, rng = self.market, self.cfg, self.rng
        accounts = self.accounts[rows]  # sorted: rows are ascending and accounts contiguous
        market.cancel_share(accounts, c.cancel_rate, rng)

        n_stocks = market.universe.n
        attention = 1.0 + c.attention * market.vol_stress()  # (S,)
        rate = c.orders_per_stock_step * n_stocks * attention.mean() / max(self.n, 1)
        counts = rng.poisson(rate, size=rows.shape[0])  # (r,)
        owner = np.repeat(np.arange(rows.shape[0]), counts)  # (n,) index into rows
        n = owner.shape[0]
        # The ledger does not change while agents decide: one look at the rows' positions.
        slot, h_stock, sellable, tilt = self._positions_and_tilt(rows, accounts)
        buy_u = rng.random(n)  # (n,) a buyer where below the row's tilted coin
        coin = 0.5 * (1.0 + np.tanh(tilt))  # (r,) numpy's tanh, as the rule always had it
        stock = choice(rng, attention / attention.sum(), n)  # (n,) drawn by attention
        pick_u = rng.random(n)  # (n,) which position to sell or add to
        size_z = rng.standard_normal(n)  # (n,) log-normal order size
        offset = rng.exponential(c.limit_offset, size=n)  # (n,) distance from the last price
        limit_u = rng.random(n)  # (n,) whether the order goes as a market order
        grid = market.grid
        orders = _noise_orders(
            accounts,
            owner,
            buy_u,
            coin,
            stock,
            pick_u,
            size_z,
            offset,
            limit_u,
            slot,
            h_stock,
            sellable,
            market.last,
            market.caps(),
            grid.lower,
            grid.upper,
            market.lot,
            c.order_pct_cap,
            c.size_sigma,
            c.market_order_share,
        )
        return Orders(*orders)

    def _positions_and_tilt(
        self, rows: np.ndarray, accounts: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(slot, stock, sellable) of the rows' positions (``Ledger.positions_of``) and (r,)
        each row's tilt, ``rebalancing`` times its :meth:`cash_share` above its target.

        A block of consecutive accounts (both engines ask for one) is one compiled pass
        over its slice of the holdings table (:func:`_block_positions_and_tilt`), where
        the positions, their values, the bincount and the shares took some ten numpy passes.
        """
        ledger, c = self.model.ledger, self.cfg
        if not consecutive(accounts):
            positions = ledger.positions_of(accounts)
            slot, h_stock, _, sellable = positions
            tilt = c.rebalancing * (self.cash_share(rows, positions) - self.cash_target[rows])
            return slot, h_stock, sellable, tilt
        n_stocks = ledger.n_stocks
        key = ledger.key
        lo, hi = np.searchsorted(key, [accounts[0] * n_stocks, (accounts[-1] + 1) * n_stocks])
        return _block_positions_and_tilt(
            key[lo:hi],
            ledger.shares[lo:hi],
            ledger.bought_today[lo:hi],
            n_stocks,
            accounts[0],
            accounts.shape[0],
            ledger.cash,
            self.market.last,
            self.cash_target[rows],
            c.rebalancing,
        )


@entry
@numba.njit(cache=True, nogil=True)
def _block_positions_and_tilt(
    key: np.ndarray,
    shares: np.ndarray,
    bought_today: np.ndarray,
    n_stocks: int,
    first: int,
    n_accounts: int,
    cash: np.ndarray,
    last: np.ndarray,
    cash_target: np.ndarray,
    rebalancing: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Positions and tilts of the accounts ``first .. first + n_accounts - 1``, from their
    slice ``key``, ``shares``, ``bought_today`` (p,) of the sorted holdings table.

    Returns (slot, stock, sellable) of the held rows, ``slot`` counting from ``first``, and
    (n_accounts,) ``rebalancing * (cash share - cash_target)``: the cash share is cash
    (CNY, at least 0) over cash plus the holdings at ``last``, each position's
    ``shares * last / 100.0`` added in table order, as the bincount of
    :meth:`NoiseTraders.cash_share` added them, so the floats are the same.
    """
    n = 0
    for i in range(key.shape[0]):
        n += shares[i] != 0
    slot = np.empty(n, np.int64)
    stock = np.empty(n, np.int64)
    sellable = np.empty(n, np.int64)
    held = np.zeros(n_accounts)  # (r,) CNY at last prices
    a, first_key, j = 0, first * n_stocks, 0  # the slot of the current key and its first key
    for i in range(key.shape[0]):
        while key[i] >= first_key + n_stocks:
            a += 1
            first_key += n_stocks
        if shares[i] != 0:
            s = key[i] - first_key
            slot[j], stock[j], sellable[j] = a, s, shares[i] - bought_today[i]
            held[a] += shares[i] * last[s] / 100.0
            j += 1
    tilt = np.empty(n_accounts)
    for a in range(n_accounts):
        money = max(cash[first + a] / 100.0, 0.0)
        tilt[a] = rebalancing * (money / max(money + held[a], 1.0) - cash_target[a])
    return slot, stock, sellable, tilt


@entry
@numba.njit(cache=True, nogil=True)
def _noise_orders(
    accounts: np.ndarray,
    owner: np.ndarray,
    buy_u: np.ndarray,
    coin: np.ndarray,
    stock: np.ndarray,
    pick_u: np.ndarray,
    size_z: np.ndarray,
    offset: np.ndarray,
    limit_u: np.ndarray,
    slot: np.ndarray,
    h_stock: np.ndarray,
    sellable: np.ndarray,
    last: np.ndarray,
    caps: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    lot: int,
    order_pct_cap: float,
    size_sigma: float,
    market_order_share: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The noise traders' orders (n,) from their draws, in one pass instead of some thirty
    numpy passes over them (the same floats, in the same order).

    Order ``k`` belongs to ``owner[k]`` (ascending), a row of ``accounts`` (r,), whose
    positions are the rows of ``slot`` (ascending), ``h_stock``, ``sellable`` (p,) with
    that slot. It buys where ``buy_u[k]`` is below its row's ``coin`` (r,). Buyer or
    seller, it trades one of its positions (the ``pick_u``-th), a seller only if it may
    sell a lot of it today; a buyer holding nothing buys the ``stock`` drawn. The size
    is log-normal around ``order_pct_cap`` of the stock's cap (``size_z``), a lot at
    least; a seller left with less than two orders' worth sells out. The price sits
    ``offset`` from the last (buyers below, sellers above), or, for a
    ``market_order_share`` of the orders (``limit_u``), as a market order:
    ``MARKET_ORDER_REACH`` through the last price, within the day's limits.

    Returns:
        (account, stock, side, price, lots) of the buys and of the sells with lots; a
        price off the limits is the float price truncated to the fen, as ``Orders`` made it.
    """
    n, n_pos = owner.shape[0], slot.shape[0]
    out_account = np.empty(n, np.int64)
    out_stock = np.empty(n, np.int64)
    out_side = np.empty(n, np.int8)
    out_price = np.empty(n, np.int64)
    out_lots = np.empty(n, np.int64)
    lo, hi, kept = 0, 0, 0  # the owner's positions are lo .. hi - 1
    for k in range(n):
        if k == 0 or owner[k] != owner[k - 1]:
            lo = hi
            while lo < n_pos and slot[lo] < owner[k]:
                lo += 1
            hi = lo
            while hi < n_pos and slot[hi] == owner[k]:
                hi += 1
        held = hi - lo
        s, cap_lots = stock[k], np.iinfo(np.int64).max
        buy = buy_u[k] < coin[owner[k]]
        sell = not buy and held > 0
        if held > 0:
            pick = lo + np.int64(np.floor(pick_u[k] * held))
            s = h_stock[pick]
            if sell:
                cap_lots = sellable[pick] // lot
        if not (buy or (sell and cap_lots > 0)):
            continue
        side = 1 if buy else -1
        price = np.float64(last[s])
        value = order_pct_cap * caps[s] * np.exp(size_sigma * size_z[k])
        lots = max(np.floor(value * 100.0 / (price * lot)), 1.0)
        if cap_lots < 2 * lots:
            lots = np.float64(cap_lots)
        price = price * np.exp(-side * offset[k])
        if limit_u[k] < market_order_share:
            price = np.float64(market_order_price(last[s], side, lower[s], upper[s]))
        out_account[kept], out_stock[kept], out_side[kept] = accounts[owner[k]], s, side
        out_price[kept], out_lots[kept] = np.int64(price), np.int64(lots)
        kept += 1
    return (
        out_account[:kept],
        out_stock[:kept],
        out_side[:kept],
        out_price[:kept],
        out_lots[:kept],
    )
