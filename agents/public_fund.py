"""Public micro-cap funds: mutual funds whose flows chase their own past returns.

Each fund holds the same mandate basket, the ``basket_size`` smallest caps, in
equal value, and keeps ``cash_buffer`` of its assets in cash. The mandate is
about size, not about names: whenever the micro-cap index is rebalanced the
basket is re-picked from the smallest caps of the day, and a stock that has
left it is sold off at ``1 / EXIT_DAYS`` of what is left a day (a third is
left after ``EXIT_DAYS``, a twentieth after three times that). (With a basket
fixed at the start, the funds' own subscriptions would lift their few names out
of the micro caps and the funds would end up owning a bubble of their own
making.) Every morning
its NAV per unit is marked and investors move money by the trailing 20-day
return: ``flow = flow_sensitivity * trailing`` of assets a day, subscriptions
after a run-up (the 2023 micro-cap rally), redemptions after losses. Money
enters and leaves the system through ``Ledger.external_cash``.

Redemptions are paid from cash; what cash cannot cover is owed (``payable``)
and paid on later mornings, as fund redemptions settle T+1 and later. A fund
whose cash is below its buffer sells the basket pro rata. When the shortfall
comes from redemptions the sale is forced, at the limit-down price, and what of
it fills counts in the model's ``forced_sales``: this is the second selling
spiral next to the quant funds,
losses bring redemptions, which bring selling, which brings losses.

Set-up: open one account per fund holding its assets in cash (units are issued at
NAV 1 from that cash when the population is built), build the population, then
calls :meth:`PublicMicroCapFunds.endow` before the long-term holders take the
rest of the float. ``endow`` reuses ``MarketModel._endow_baskets``, so the
initial holdings are bought with the funds' own cash at the opening prices.
"""

from __future__ import annotations

import numba
import numpy as np

from agents.base import ArrayAgent, Population
from model.aot import entry
from model.config import EnhancedFundConfig, PublicFundConfig
from model.ledger import search_near
from model.orders import CALM, FORCED, Orders
from model.pairwise import pairwise_sum
from model.universe import scaled_basket, tier_counts

TRAILING_DAYS = 20  # window of the return that flows chase
MAX_FLOW = 0.10  # largest daily flow, share of assets, either way
TOLERANCE = 0.01  # cash gap (share of assets) a fund leaves alone when not forced
NEAR = 0.002  # distance of a rebalancing limit order from the last price
EXIT_DAYS = 5  # a stock that left the mandate is sold at 1/EXIT_DAYS of what is left a day
HALF_FEN = 0.005  # CNY: what is left owed after paying in whole fen, when nothing is


class PublicMicroCapFund(ArrayAgent):
    """One mutual fund with a micro-cap mandate."""

    @property
    def nav_per_unit(self) -> float:
        return float(self.population.nav[self.row])


class PublicMicroCapFunds(Population):
    """Mutual funds holding the smallest caps; investors chase their trailing return."""

    agent_class = PublicMicroCapFund
    # Where new money goes: True, to the names furthest below equal value (a fund that
    # holds its mandate in equal value); False, evenly over the names, so the weights
    # drift with prices (a fund that buys its benchmark with new money).
    top_up = True

    def __init__(
        self, model, accounts, cfg: PublicFundConfig | EnhancedFundConfig, scale: float
    ) -> None:
        super().__init__(model, accounts)
        self.cfg = cfg
        n, n_stocks = self.n, model.universe.n
        size = self.mandate_size(scale)
        self.basket = np.zeros((n, size), dtype=np.int64)  # (n, B) mandate stocks
        self.in_mandate = np.zeros(n_stocks, dtype=bool)  # (S,)
        self.follow_mandate(self.market.caps())
        self.units = model.ledger.cash[self.accounts] / 100.0  # (n,) units, NAV 1 at start
        self.nav = np.ones(n)  # (n,) NAV per unit
        self.nav_history: list[np.ndarray] = []  # one (n,) array per morning
        self.trailing = np.zeros(n)  # (n,) trailing return the flows chase
        self.flow = np.zeros(n)  # (n,) today's flow, share of assets (< 0: redemptions)
        self.payable = np.zeros(n)  # (n,) CNY redeemed but not yet paid out

    # -- set-up -----------------------------------------------------------------------------
    def endow(self, available_lots: np.ndarray) -> np.ndarray:
        """Buy the initial baskets with (1 - cash_buffer) of cash; return (S,) lots taken.

        Call before the long-term holders are endowed; ``available_lots`` (S,) is the
        float still unallocated. Reuses ``MarketModel._endow_baskets``: never more than
        80% of what is available, paid from the funds' cash at the opening prices.
        """
        value = (1.0 - self.cfg.cash_buffer) * self.model.ledger.cash[self.accounts] / 100.0
        return self.model._endow_baskets(self.accounts, self.basket, value, available_lots)

    def mandate_size(self, scale: float) -> int:
        """Stocks in the mandate: ``basket_size`` at full scale, scaled."""
        return scaled_basket(self.cfg.basket_size, scale, self.model.universe.n)

    def mandate(self, caps: np.ndarray) -> np.ndarray:
        """(B,) the mandate's stocks, ascending: the ``B`` smallest of ``caps`` (S,)."""
        return np.sort(np.argsort(caps, kind="stable")[: self.basket.shape[1]])

    def follow_mandate(self, caps: np.ndarray) -> None:
        """Re-pick the mandate from ``caps`` (S,), the same for every fund."""
        stocks = self.mandate(caps)
        self.basket = np.broadcast_to(stocks, self.basket.shape).copy()
        self.in_mandate[:] = False
        self.in_mandate[stocks] = True

    # -- marking ----------------------------------------------------------------------------
    def equity(self, rows: np.ndarray) -> np.ndarray:
        """(r,) CNY: cash + holdings at last prices - redemptions owed."""
        cash = self.model.ledger.cash[self.accounts[rows]] / 100.0
        return cash + self.holdings_value(rows) - self.payable[rows]

    def mark(self) -> np.ndarray:
        """NAV per unit of every fund at the last prices; returns the (n,) equity, CNY, so
        the day's flows need not mark the same books again."""
        live = self.units > 1e-9
        eq = self.equity(self.rows)  # (n,) CNY
        self.nav = np.where(live, eq / np.maximum(self.units, 1e-9), self.nav)
        return eq

    # -- the day ----------------------------------------------------------------------------
    def begin_day(self) -> None:
        """Mark NAV, take subscriptions or redemptions, pay what is owed from cash."""
        eq = self.mark()  # (n,) CNY; nothing trades before the flows below use it
        self.nav_history.append(self.nav.copy())
        past = self.nav_history[max(len(self.nav_history) - 1 - TRAILING_DAYS, 0)]
        self.trailing = self.nav / np.maximum(past, 1e-9) - 1.0
        self.flow = np.clip(self.cfg.flow_sensitivity * self.trailing, -MAX_FLOW, MAX_FLOW)
        cash_flow = self.flow * np.maximum(eq, 0.0)  # (n,) CNY
        self.units = np.maximum(self.units + cash_flow / np.maximum(self.nav, 1e-9), 0.0)
        self.payable += np.maximum(-cash_flow, 0.0)
        ledger = self.model.ledger
        cash = ledger.cash[self.accounts] + np.rint(np.maximum(cash_flow, 0.0) * 100).astype(
            np.int64
        )
        paid = np.minimum(np.rint(self.payable * 100).astype(np.int64), np.maximum(cash, 0))
        subscribed = cash - ledger.cash[self.accounts]
        ledger.external_cash(self.accounts, subscribed - paid)
        # Paid in whole fen: a residue under half a fen is rounding, not a debt (left
        # "payable" it would mark the fund a forced seller for ever).
        rest = self.payable - paid / 100.0
        self.payable = np.where(rest < HALF_FEN, 0.0, rest)

    # -- orders -----------------------------------------------------------------------------
    def decide(self, rows: np.ndarray) -> Orders:
        return Orders.concat(self.decide_parts(rows))

    def decide_parts(self, rows: np.ndarray) -> list[Orders]:
        """Invest cash above the buffer; sell pro rata when cash is below it; the mandate's
        orders, then the exits'.

        Each fund's cash gap is worked out here; its orders over the basket come from
        one compiled pass (:func:`_mandate_orders`), which looks up what the fund holds.
        """
        market, ledger = self.market, self.model.ledger
        accounts = self.accounts[rows]
        market.cancel_accounts(accounts)
        assets, trade, forced = self.cash_gap_trades(rows)
        columns = _mandate_orders(
            accounts,
            self.take(self.basket, rows),
            assets,
            trade,
            forced,
            market.last,
            market.grid.lower,
            ledger.key,
            ledger.shares,
            ledger.bought_today,
            ledger.n_stocks,
            self.cfg.cash_buffer,
            market.lot,
            self.top_up,
        )
        return [Orders(*columns), self._exits(accounts)]

    def cash_gap_trades(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(r,) assets (CNY), the CNY each fund trades this step (< 0: sells) to close the gap
        between its free cash and its buffer over the day's remaining steps, and whether
        that selling is forced (redemptions pushed cash below the buffer or are still owed).
        """
        model, ledger = self.model, self.model.ledger
        assets = np.maximum(self.equity(rows), 0.0)  # (r,)
        free_cash = ledger.cash[self.accounts[rows]] / 100.0 - self.payable[rows]
        gap = free_cash - self.cfg.cash_buffer * assets  # (r,) > 0: cash to invest
        tol = TOLERANCE * assets
        forced = ((self.flow[rows] < 0) & (gap < -tol)) | (self.payable[rows] > 0)
        act = forced | (np.abs(gap) > tol)
        steps_left = model.steps_per_day - (model.steps - 1) % model.steps_per_day
        trade = np.where(act, gap / steps_left, 0.0)  # (r,) CNY this step, < 0: sell
        return assets, trade, forced

    def _exits(self, accounts: np.ndarray) -> Orders:
        """Sell what has left the mandate: of what is left, ``1 / EXIT_DAYS`` a day, spread
        over the day's steps (a share of the rest, so the sale tails off)."""
        model, market = self.model, self.market
        account, stock, _, sellable = model.ledger.positions(accounts)
        out = ~self.in_mandate[stock]
        account, stock, sellable = account[out], stock[out], sellable[out]
        lots_left = sellable // market.lot
        pace = 1.0 / (EXIT_DAYS * model.steps_per_day)
        lots = np.minimum(np.ceil(lots_left * pace), lots_left)
        price = market.last[stock] * (1.0 - NEAR)
        return Orders(account, stock, np.full(stock.size, -1, np.int8), price, lots)


class IndexEnhancedFund(PublicMicroCapFund):
    """One quant index-enhanced fund."""


class IndexEnhancedFunds(PublicMicroCapFunds):
    """Quant long-only funds benchmarked to a CSI index: the public funds' rules on the
    index's members (``enhanced_funds.tier``: 1 for the CSI 500) instead of the smallest
    caps.

    China's index-enhanced products held the CSI 500 and 1000 and leaned, within and
    beyond them, towards the small names the neutral products held; when small caps
    fell their excess return went with them and investors redeemed. Here a fund holds
    its index's members and, as ``enhanced_funds.beyond`` of its names, the smallest
    caps outside the index, re-picked when the tiers are rebalanced. It buys them in
    equal value at the start; after that its new money goes first to the names a re-pick
    brought in and then evenly over the names, and its sales are pro rata, so the
    weights drift with prices and the fund does not buy its fallen names back to equal
    value, as an index fund tracking its benchmark does not. Its investors chase its
    trailing return as the public funds' do, so a fall brings redemptions and forced
    sales of both.
    """

    agent_class = IndexEnhancedFund
    top_up = False

    def _counts(self) -> tuple[int, int, int]:
        """(first rank, members, names beyond): the benchmark's place in the cap ranking,
        its size, and how many of the smallest caps outside it the mandate adds."""
        universe = self.model.config.universe
        sizes, _ = tier_counts(self.model.universe.n, universe.microcap_count)
        tier, beyond = self.cfg.tier, self.cfg.beyond
        outside = self.model.universe.n - sizes[tier]
        extra = min(round(sizes[tier] * beyond / (1.0 - beyond)), outside)
        return sum(sizes[:tier]), sizes[tier], extra

    def mandate_size(self, scale: float) -> int:
        """The benchmark's member count at this universe's size, and the names beyond."""
        _, members, extra = self._counts()
        return members + extra

    def mandate(self, caps: np.ndarray) -> np.ndarray:
        """(B,) the benchmark's members by ``caps`` (S,) rank and the smallest caps outside
        it, ascending."""
        first, members, extra = self._counts()
        order = np.argsort(-caps, kind="stable")  # largest first, as the tiers are ranked
        index = order[first : first + members]
        outside = np.concatenate([order[:first], order[first + members :]])[::-1]
        return np.sort(np.concatenate([index, outside[:extra]]))


@numba.njit(cache=True, nogil=True)
def _maximum(a: float, b: float) -> float:
    """``np.maximum`` of two floats (the first if NaN)."""
    return a if a >= b or a != a else b


@numba.njit(cache=True, nogil=True)
def _minimum(a: float, b: float) -> float:
    """``np.minimum`` of two floats (the first if NaN)."""
    return a if a <= b or a != a else b


@entry
@numba.njit(cache=True, nogil=True)
def _mandate_orders(
    accounts: np.ndarray,
    basket: np.ndarray,
    assets: np.ndarray,
    trade: np.ndarray,
    forced: np.ndarray,
    last: np.ndarray,
    lower: np.ndarray,
    table_key: np.ndarray,
    table_shares: np.ndarray,
    table_bought: np.ndarray,
    n_stocks: int,
    cash_buffer: float,
    lot: int,
    top_up: bool,
) -> tuple:
    """The funds' orders over their baskets, one per (fund, stock), row by row, in one pass.

    Buys, ``trade`` (r,) CNY (> 0), go to the underweight stocks, spread by how far each
    is below the target ``(1 - cash_buffer) * assets / B`` (``top_up``); or (not
    ``top_up``) first to the stocks held none of, up to the target each, and the rest
    evenly over the basket, at most the target a stock a step. Sells (``trade`` < 0) are
    pro rata to what is held, and no more than is sellable now. A ``forced`` (r,) fund
    sells at the limit down, and those sells are flagged forced (what of them fills
    counts as forced sales). What each fund holds of each stock is looked up in the ledger's table
    (``table_key`` sorted, ``table_shares``, ``table_bought``: (P,) int64), each search
    from the last answer.

    The numpy passes this replaced, one (r, B) array after another, are kept in
    ``tests/test_public_fund.py``, which holds the pass to them; the per-fund sums are
    added as numpy adds them (:func:`~model.pairwise.pairwise_sum`): the same floats.

    Returns:
        (account, stock, side, price, lots, duress) (r * B,) as ``Orders`` takes them (int8
        sides, prices and lots cut to whole numbers, int8 ``duress``: ``FORCED`` for a
        forced fund's sells, else ``CALM``; cells without lots included).
    """
    r, b = basket.shape
    cells = r * b
    out_account = np.empty(cells, np.int64)
    out_stock = np.empty(cells, np.int64)
    out_side = np.empty(cells, np.int8)
    out_price = np.empty(cells, np.int64)
    out_lots = np.empty(cells, np.int64)
    price = np.empty(b)  # (B,) fen, the row's
    value = np.empty(b)  # (B,) CNY held
    under = np.empty(b)  # (B,) CNY below the target (read when topping up)
    entrant = np.empty(b, np.bool_)  # (B,) held none of
    sellable = np.empty(b, np.int64)
    out_duress = np.empty(cells, np.int8)
    at = 0
    for i in range(r):
        want = (1.0 - cash_buffer) * assets[i] / b  # CNY per stock
        for j in range(b):
            s = basket[i, j]
            k = accounts[i] * n_stocks + s
            at = search_near(table_key, k, at)
            held, sellable[j] = 0, 0
            if at < table_key.shape[0] and table_key[at] == k:
                held, sellable[j] = table_shares[at], table_shares[at] - table_bought[at]
            price[j] = np.float64(last[s])
            value[j] = held * price[j] / 100.0
            under[j] = _maximum(want - value[j], 0.0)
            entrant[j] = held == 0
        buy_scale = _maximum(trade[i], 0.0) / _maximum(0.0 + pairwise_sum(under, 0, b), 1e-9)
        sell_scale = _maximum(-trade[i], 0.0) / _maximum(0.0 + pairwise_sum(value, 0, b), 1e-9)
        # Not topping up: the names held none of (a re-pick's entrants) are bought first,
        # each up to the target; what is left of the buy is spread evenly.
        n_new = 0 if top_up else np.count_nonzero(entrant)
        to_new = _minimum(_maximum(trade[i], 0.0), n_new * want)
        rest = (_maximum(trade[i], 0.0) - to_new) / b
        for j in range(b):
            s = basket[i, j]
            if top_up:
                buy_cny = _minimum(under[j] * buy_scale, under[j])
            else:
                first = to_new / n_new if entrant[j] else 0.0
                buy_cny = _minimum(first + rest, want)
            sell_cny = value[j] * sell_scale
            lot_cny = lot * price[j] / 100.0  # CNY per lot
            sell_lots = _minimum(np.ceil(sell_cny / lot_cny), np.float64(sellable[j] // lot))
            buy_lots = np.floor(buy_cny / lot_cny)
            side = -1 if sell_lots > 0 else 1
            lots = sell_lots if side < 0 else buy_lots
            forced_sell = forced[i] and side < 0
            near = price[j] * (1.0 + NEAR * side)
            c = i * b + j
            out_account[c], out_stock[c], out_side[c] = accounts[i], s, side
            out_price[c] = lower[s] if forced_sell else np.int64(near)
            out_lots[c], out_duress[c] = np.int64(lots), FORCED if forced_sell else CALM
    return out_account, out_stock, out_side, out_price, out_lots, out_duress
