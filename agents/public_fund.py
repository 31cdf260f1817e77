"""Public micro-cap funds: mutual funds whose flows chase their own past returns.

Each fund holds the same mandate basket, the ``basket_size`` smallest caps, in
equal value, and keeps ``cash_buffer`` of its assets in cash. The mandate is
about size, not about names: whenever the micro-cap index is rebalanced the
basket is re-picked from the smallest caps of the day, and a stock that has
left it is sold over ``EXIT_DAYS``. (With a basket fixed at the start, the
funds' own subscriptions would lift their few names out of the micro caps and
the funds would end up owning a bubble of their own making.) Every morning
its NAV per unit is marked and investors move money by the trailing 20-day
return: ``flow = flow_sensitivity * trailing`` of assets a day, subscriptions
after a run-up (the 2023 micro-cap rally), redemptions after losses. Money
enters and leaves the system through ``Ledger.external_cash``.

Redemptions are paid from cash; what cash cannot cover is owed (``payable``)
and paid on later mornings, as fund redemptions settle T+1 and later. A fund
whose cash is below its buffer sells the basket pro rata. When the shortfall
comes from redemptions the sale is forced, at the limit-down price, and counted
in ``forced_sales``: this is the second selling spiral next to the quant funds,
losses bring redemptions, which bring selling, which brings losses.

Set-up: open one account per fund holding its assets in cash (units are issued at
NAV 1 from that cash when the population is built), build the population, then
calls :meth:`PublicMicroCapFunds.endow` before the long-term holders take the
rest of the float. ``endow`` reuses ``MarketModel._endow_baskets``, so the
initial holdings are bought with the funds' own cash at the opening prices.
"""

from __future__ import annotations

import numpy as np

from agents.base import ArrayAgent, Population
from model.config import PublicFundConfig
from model.orders import Orders

TRAILING_DAYS = 20  # window of the return that flows chase
MAX_FLOW = 0.10  # largest daily flow, share of assets, either way
TOLERANCE = 0.01  # cash gap (share of assets) a fund leaves alone when not forced
NEAR = 0.002  # distance of a rebalancing limit order from the last price
EXIT_DAYS = 5  # days over which a stock that left the mandate is sold


class PublicMicroCapFund(ArrayAgent):
    """One mutual fund with a micro-cap mandate."""

    @property
    def nav_per_unit(self) -> float:
        return float(self.population.nav[self.row])


class PublicMicroCapFunds(Population):
    """Mutual funds holding the smallest caps; investors chase their trailing return."""

    agent_class = PublicMicroCapFund

    def __init__(self, model, accounts, cfg: PublicFundConfig, scale: float) -> None:
        super().__init__(model, accounts)
        self.cfg = cfg
        n, n_stocks = self.n, model.universe.n
        size = max(1, min(round(cfg.basket_size * max(scale, 0.2)), n_stocks))
        self.basket = np.zeros((n, size), dtype=np.int64)  # (n, B) mandate stocks
        self.in_mandate = np.zeros(n_stocks, dtype=bool)  # (S,)
        self.follow_mandate(self.market.caps())
        self.units = model.ledger.cash[self.accounts] / 100.0  # (n,) units, NAV 1 at start
        self.nav = np.ones(n)  # (n,) NAV per unit
        self.nav_history: list[np.ndarray] = []  # one (n,) array per morning
        self.trailing = np.zeros(n)  # (n,) trailing return the flows chase
        self.flow = np.zeros(n)  # (n,) today's flow, share of assets (< 0: redemptions)
        self.payable = np.zeros(n)  # (n,) CNY redeemed but not yet paid out
        self.forced_sales = 0.0  # CNY sold this step to meet redemptions
        self._step = -1  # model step the counters belong to

    # -- set-up -----------------------------------------------------------------------------
    def endow(self, available_lots: np.ndarray) -> np.ndarray:
        """Buy the initial baskets with (1 - cash_buffer) of cash; return (S,) lots taken.

        Call before the long-term holders are endowed; ``available_lots`` (S,) is the
        float still unallocated. Reuses ``MarketModel._endow_baskets``: never more than
        80% of what is available, paid from the funds' cash at the opening prices.
        """
        value = (1.0 - self.cfg.cash_buffer) * self.model.ledger.cash[self.accounts] / 100.0
        return self.model._endow_baskets(self.accounts, self.basket, value, available_lots)

    def follow_mandate(self, caps: np.ndarray) -> None:
        """Re-pick the mandate: the ``B`` smallest of ``caps`` (S,), the same for every fund."""
        smallest = np.sort(np.argsort(caps, kind="stable")[: self.basket.shape[1]])
        self.basket = np.broadcast_to(smallest, self.basket.shape).copy()
        self.in_mandate[:] = False
        self.in_mandate[smallest] = True

    # -- marking ----------------------------------------------------------------------------
    def equity(self, rows: np.ndarray) -> np.ndarray:
        """(r,) CNY: cash + holdings at last prices - redemptions owed."""
        cash = self.model.ledger.cash[self.accounts[rows]] / 100.0
        return cash + self.holdings_value(rows) - self.payable[rows]

    def mark(self) -> None:
        """NAV per unit of every fund at the last prices."""
        live = self.units > 1e-9
        self.nav = np.where(live, self.equity(self.rows) / np.maximum(self.units, 1e-9), self.nav)

    # -- the day ----------------------------------------------------------------------------
    def begin_day(self) -> None:
        """Mark NAV, take subscriptions or redemptions, pay what is owed from cash."""
        self.mark()
        self.nav_history.append(self.nav.copy())
        past = self.nav_history[max(len(self.nav_history) - 1 - TRAILING_DAYS, 0)]
        self.trailing = self.nav / np.maximum(past, 1e-9) - 1.0
        self.flow = np.clip(self.cfg.flow_sensitivity * self.trailing, -MAX_FLOW, MAX_FLOW)
        cash_flow = self.flow * np.maximum(self.equity(self.rows), 0.0)  # (n,) CNY
        self.units = np.maximum(self.units + cash_flow / np.maximum(self.nav, 1e-9), 0.0)
        self.payable += np.maximum(-cash_flow, 0.0)
        ledger = self.model.ledger
        cash = ledger.cash[self.accounts] + np.rint(np.maximum(cash_flow, 0.0) * 100).astype(
            np.int64
        )
        paid = np.minimum(np.rint(self.payable * 100).astype(np.int64), np.maximum(cash, 0))
        subscribed = cash - ledger.cash[self.accounts]
        ledger.external_cash(self.accounts, subscribed - paid)
        self.payable = np.maximum(self.payable - paid / 100.0, 0.0)

    # -- orders -----------------------------------------------------------------------------
    def _new_step(self) -> None:
        """Reset the per-step counter on the first call of a step (either engine)."""
        if self._step != self.model.steps:
            self._step, self.forced_sales = self.model.steps, 0.0

    def decide(self, rows: np.ndarray) -> Orders:
        """Invest cash above the buffer; sell pro rata when cash is below it."""
        self._new_step()
        model, market, ledger = self.model, self.market, self.model.ledger
        accounts = self.accounts[rows]
        market.cancel_accounts(accounts)
        basket = self.basket[rows]  # (r, B)
        r, b = basket.shape
        account = np.repeat(accounts, b)  # (r*B,)
        stock = basket.ravel()  # (r*B,)
        price = market.last[stock].astype(np.float64)  # (r*B,) fen
        held, sellable = ledger.holding_and_sellable(account, stock)  # (r*B,) shares each
        held = held.reshape(r, b)
        value = held * price.reshape(r, b) / 100.0  # (r, B) CNY
        assets = np.maximum(self.equity(rows), 0.0)  # (r,)
        free_cash = ledger.cash[accounts] / 100.0 - self.payable[rows]
        gap = free_cash - self.cfg.cash_buffer * assets  # (r,) > 0: cash to invest
        tol = TOLERANCE * assets
        # Selling is forced when redemptions pushed cash below the buffer or are still owed.
        forced = ((self.flow[rows] < 0) & (gap < -tol)) | (self.payable[rows] > 0)
        act = forced | (np.abs(gap) > tol)
        steps_left = model.steps_per_day - (model.steps - 1) % model.steps_per_day
        trade = np.where(act, gap / steps_left, 0.0)  # (r,) CNY this step, < 0: sell

        # Buys go to the underweight stocks; sells are pro rata to what is held.
        want = (1.0 - self.cfg.cash_buffer) * assets[:, None] / b  # (r, 1) CNY per stock
        under = np.maximum(want - value, 0.0)  # (r, B)
        buy_cny = under * (np.maximum(trade, 0.0) / np.maximum(under.sum(axis=1), 1e-9))[:, None]
        sell_cny = value * (np.maximum(-trade, 0.0) / np.maximum(value.sum(axis=1), 1e-9))[:, None]
        buy_cny = np.minimum(buy_cny, under)
        lot_cny = (market.lot * price / 100.0).reshape(r, b)  # (r, B) CNY per lot
        sellable_lots = sellable.reshape(r, b) // market.lot
        sell_lots = np.minimum(np.ceil(sell_cny / lot_cny), sellable_lots)
        buy_lots = np.floor(buy_cny / lot_cny)
        side = np.where(sell_lots > 0, -1, 1).astype(np.int8)  # (r, B)
        lots = np.where(side < 0, sell_lots, buy_lots)
        forced_sell = forced[:, None] & (side < 0)
        self.forced_sales += float((lots * lot_cny)[forced_sell].sum())
        near = price.reshape(r, b) * (1.0 + NEAR * side)
        order_price = np.where(forced_sell, market.limit_price(basket, side), near)
        mandate = Orders(account, stock, side.ravel(), order_price.ravel(), lots.ravel())
        return Orders.concat([mandate, self._exits(accounts)])

    def _exits(self, accounts: np.ndarray) -> Orders:
        """Sell what has left the mandate, a ``1 / EXIT_DAYS`` share of a day's steps."""
        model, market = self.model, self.market
        account, stock, _, sellable = model.ledger.positions(accounts)
        out = ~self.in_mandate[stock]
        account, stock, sellable = account[out], stock[out], sellable[out]
        lots_left = sellable // market.lot
        pace = 1.0 / (EXIT_DAYS * model.steps_per_day)
        lots = np.minimum(np.ceil(lots_left * pace), lots_left)
        price = market.last[stock] * (1.0 - NEAR)
        return Orders(account, stock, np.full(stock.size, -1, np.int8), price, lots)
