"""Quant-neutral products: long a basket of small caps, short index futures or borrowed stock.

Each product holds many small positions picked by a noisy signal with a tilt to
the smallest caps, and hedges the basket's market exposure by shorting IC and IM
futures and, where lending allows, borrowed stock. With ``core_share`` a part of
the basket's names are members of the indices the hedge shorts, as an
index-enhanced book holds part of its benchmark. Plain products run about 1x
gross long; DMA products borrow from their broker for up to 4x (3x in jan2024).

The rules that make the spiral, per product and per day:
- NAV per unit is marked at every open, where the day's decisions are taken (the
  model's records mark it at every step); investors redeem after drawdowns from
  the same peak the manager's budget runs from, so a rebuilt book's redemptions
  start afresh with it.
- Below the warning line, or after a drawdown from its peak beyond the manager's
  budget (``drawdown_line``; times the leverage with ``drawdown_per_leverage``), the
  product cuts exposure; below the stop line it liquidates everything. Either way
  it sells the long basket at the market.
  A cut is not for ever: once NAV is 5% over the warning line and has won back
  half the budget, or once the cut has lasted ``recovery_days``, the first
  morning whose NAV is not below every NAV of the ``recovery_days`` before it
  (with ``recovery_holds_low``, only once NAV has held above the cut's low for
  ``recovery_days``), the manager takes that NAV as the new peak and rebuilds
  the book, at its leverage on that morning's equity. So losses in calm times
  come and go, and what breaks the products is a fall that outruns its cuts.
- The futures discount is the hedge's running cost: as it nears the alpha
  investors expect, subscriptions stop; beyond it, managers shrink the book.
- Futures losses are paid in cash every step (variation margin); when cash runs
  below what the broker and the exchange require, the product sells longs.
- Recalled stock loans must be bought in, and that hedge moves to futures.
What they sell is the micro-caps' main bid: selling lowers the basket, which
lowers NAV, which triggers more selling.
"""

from __future__ import annotations

import numba
import numpy as np

from agents.base import ArrayAgent, Population
from agents.basket_orders import basket_orders
from model.aot import entry
from model.config import NeutralFundConfig
from model.futures import smooth_basis
from model.ledger import search_near
from model.orders import CALM, FORCED, Orders
from model.universe import CSI500, CSI1000, scaled_basket

NORMAL, WARNED, STOPPED = 0, 1, 2
HEDGE_COST_DAYS = 10  # days over which the discount investors look at is smoothed
NAV_DUST = 1e-9  # relative NAV change that is the floats' dust (fen-rounded flows), not a low
STATE_NAMES = ("normal", "warned", "stopped")


class NeutralFund(ArrayAgent):
    """One quant-neutral product."""

    @property
    def nav_per_unit(self) -> float:
        return float(self.population.nav[self.row])

    @property
    def state(self) -> str:
        return STATE_NAMES[int(self.population.state[self.row])]


class NeutralFunds(Population):
    agent_class = NeutralFund

    def __init__(
        self, model, accounts, cfg: NeutralFundConfig, scale: float, equity_cny: np.ndarray
    ) -> None:
        super().__init__(model, accounts)
        self.cfg = cfg
        rng, n = self.rng, self.n
        uni = model.universe
        self.is_dma = rng.random(n) < cfg.dma_share  # (n,)
        self.leverage = np.where(self.is_dma, cfg.dma_leverage, cfg.plain_leverage)
        offset = rng.random(n) * cfg.line_spread  # some set their lines higher
        self.warning = cfg.warning_line + offset
        self.stop = cfg.stop_line + offset
        # The same cautious funds keep a tighter drawdown budget. With
        # ``drawdown_per_leverage`` a levered book's budget grows with its leverage, so it
        # allows the same loss on the strategy underneath (3x: 30% for a 10% line).
        budget = cfg.drawdown_line * (
            np.maximum(self.leverage, 1.0) if cfg.drawdown_per_leverage else 1.0
        )  # (n,) or scalar
        self.drawdown_line = np.maximum(budget - offset, 0.01)
        self.nav = 1.0 + rng.random(n) * cfg.nav0_spread  # (n,) NAV per unit
        self.units = equity_cny / self.nav
        self.peak = self.nav.copy()
        self.state = np.full(n, NORMAL, dtype=np.int8)
        self.liquidated = np.zeros(n, dtype=bool)  # stop line crossed at some point
        self.warned_days = np.zeros(n, dtype=np.int64)  # (n,) days in the WARNED state
        # With ``recovery_holds_low``: each cut's lowest NAV and the mornings it has held.
        self.cut_low = self.nav.copy()  # (n,)
        self.held_days = np.zeros(n, dtype=np.int64)  # (n,)
        self.nav_history: list[np.ndarray] = []

        # Baskets: (n, B) stocks picked by a noisy signal tilted to small caps, after a
        # benchmark core of the hedged indices' members.
        basket = scaled_basket(cfg.basket_size, scale, uni.n)
        score = cfg.size_tilt * uni.size_z[None, :] + rng.standard_normal((n, uni.n))  # (n, N)
        core = round(cfg.core_share * basket)  # names from the hedged indices' members
        if core > 0:
            ic_core = round(core * (1.0 - cfg.im_share))
            tier = model.indices.tier  # (N,)
            for code, k in ((CSI500, ic_core), (CSI1000, core - ic_core)):
                members = np.flatnonzero(tier == code)
                k = min(k, members.size)  # a tier short of members leaves the rest to the score
                draw = rng.random((n, members.size))  # (n, M) a random k of them each
                picked = members[np.argsort(draw, axis=1)[:, :k]]  # (n, k)
                np.put_along_axis(score, picked, np.inf, axis=1)
        self.basket = np.argsort(-score, axis=1)[:, :basket]  # (n, B)
        # Fixed for the product's life (read-only, so the sort below stays true): each row's
        # stocks in ascending order, for lookups that walk the sorted ledger.
        self.basket.flags.writeable = False
        self.basket_order = np.argsort(self.basket, axis=1)  # (n, B)
        # Hedge split: futures (IC/IM) and borrowed stock from the CSI 500/1000 tiers.
        self.hedge_split = np.array([1.0 - cfg.im_share, cfg.im_share])  # (2,) IC, IM shares
        mid = np.flatnonzero((model.indices.tier == CSI500) | (model.indices.tier == CSI1000))
        if mid.size == 0:
            mid = np.arange(uni.n)
        n_hedge = max(1, min(20, mid.size))
        # A product does not short what it holds long: that would sell its own basket.
        in_basket = np.zeros((n, uni.n), dtype=bool)  # (n, N)
        np.put_along_axis(in_basket, self.basket, True, axis=1)
        draw = rng.random((n, mid.size)) + in_basket[:, mid]  # (n, M) held names sort last
        pick = np.argsort(draw, axis=1)[:, :n_hedge]
        self.hedge_stocks = mid[pick]  # (n, H) stocks shorted with borrowed shares
        # In a universe too small for H names outside every basket, a product borrows none
        # of those it holds long: its short leg would sell the basket's own shares.
        self.hedge_free = ~np.take_along_axis(in_basket[:, mid], pick, axis=1)  # (n, H)
        self.lend_share = np.zeros(n)  # share of the hedge actually done with borrowed stock
        self.weights = np.full(self.basket.shape, 1.0 / self.basket.shape[1])  # (n, B) of longs
        self.exposure = self.leverage * equity_cny  # (n,) CNY long exposure planned
        self.trailing = np.zeros(n)  # 60-day excess return, for subscriptions
        self.hedge_cost = 0.0  # yearly cost of the futures hedge: the discount, smoothed
        # (2,) IC, IM annualized basis, smoothed alike; kept only with ``route_by_cost``.
        self.basis_seen = np.zeros(2)
        self.carry = 1.0  # share of planned exposure worth running at that cost

    def adopt_holdings(self) -> None:
        """Take the basket weights from what each product holds (its starting portfolio)."""
        b = self.basket.shape[1]
        held = self.model.ledger.holding(np.repeat(self.accounts, b), self.basket.ravel())
        value = held.reshape(self.basket.shape) * self.model.market.last[self.basket]
        self.weights = value / np.maximum(value.sum(axis=1, keepdims=True), 1.0)

    # -- marking ----------------------------------------------------------------------------
    def equity(self, rows: np.ndarray) -> np.ndarray:
        """(r,) CNY: cash + longs - shares owed on loans, at last prices."""
        model, market = self.model, self.market
        accounts = self.accounts[rows]
        owed = np.zeros(rows.size)
        if model.lending is not None:
            owed = model.lending.owed_value(accounts, market.last)
        return model.ledger.cash[accounts] / 100.0 + self.holdings_value(rows) - owed

    def mark(self) -> np.ndarray:
        """NAV per unit of every product at the last prices; returns the (n,) equity, CNY,
        so the day's flows need not mark the same books again."""
        eq = self.equity(self.rows)
        self.nav = self._nav_of(eq)
        return eq

    def marked_nav(self) -> np.ndarray:
        """(n,) NAV per unit at the last prices, leaving the day's mark (``nav``), on which
        the products decide, as it is: what a record of this step shows."""
        return self._nav_of(self.equity(self.rows))

    def _nav_of(self, equity: np.ndarray) -> np.ndarray:
        """(n,) NAV per unit of ``equity`` (n,) CNY; a product with no units keeps its last.

        Never below zero: a product's investors lose at most what they put in. A DMA
        product whose liquidation loses more than its equity leaves the rest to its
        broker, whose credit line has paid for it (the ledger keeps that debt).
        """
        live = self.units > 0
        return np.where(live, np.maximum(equity, 0.0) / np.maximum(self.units, 1e-9), self.nav)

    # -- daily decisions --------------------------------------------------------------------
    def begin_day(self) -> None:
        c, model = self.cfg, self.model
        eq = self.mark()  # (n,) CNY; nothing trades before the flows below use it
        self.nav_history.append(self.nav.copy())
        self.peak = np.maximum(self.peak, self.nav)
        # Risk lines: the stop line is final. The warning line on NAV per unit, or a
        # drawdown from the peak beyond the manager's risk budget, cuts exposure until
        # NAV is 5% over the line and has won back half of that budget, or has been cut
        # for ``recovery_days`` and is off its low. (With forced_selling off, the
        # counterfactual, no line is ever crossed, no margin called, nothing redeemed.)
        drawdown = 1.0 - self.nav / self.peak
        crossed_stop = (self.nav <= self.stop) & (self.state != STOPPED) & c.forced_selling
        self.state[crossed_stop] = STOPPED
        self.liquidated |= crossed_stop
        breach = (self.nav <= self.warning) | (drawdown >= self.drawdown_line)
        warn = breach & (self.state == NORMAL) & c.forced_selling
        # A manager whose cut has lasted ``recovery_days`` takes the first morning that
        # is not a new low of those days as the new base and rebuilds: the budget is
        # for fresh losses. With ``recovery_holds_low`` the cut's low must have held for
        # ``recovery_days`` mornings first (tracked from the morning of the cut on).
        days = c.recovery_days
        cut = self.state == WARNED
        if c.recovery_holds_low:
            settled = self._mornings_off_low(cut, warn) >= days
        else:
            settled = np.zeros(self.n, dtype=bool)
            if len(self.nav_history) > days:
                low = np.min(self.nav_history[-days - 1 : -1], axis=0)
                settled = self.nav >= low * (1.0 - NAV_DUST)
            settled &= self.warned_days >= days
        recovered = cut & (self.nav > self.warning * 1.05)
        recovered &= (drawdown < self.drawdown_line / 2) | settled
        self.state[warn] = WARNED
        self.state[recovered] = NORMAL
        self.peak[recovered] = self.nav[recovered]
        # The rebuilt book is the leverage on today's equity: the plan held through the cut
        # was sized on the equity before its losses (rebuilding to it ran recovered
        # products at up to the broker's ceiling, 1.3 times their leverage).
        self.exposure[recovered] = self.leverage[recovered] * np.maximum(eq[recovered], 0.0)
        self.warned_days = np.where(self.state == WARNED, self.warned_days + 1, 0)
        # Flows: redemptions after drawdowns; subscriptions after excess returns.
        if len(self.nav_history) > 60:
            self.trailing = self.nav / self.nav_history[-61] - 1.0
        # The hedge eats the alpha: new money stops as the discount nears the expected
        # alpha, and managers scale the book down as it goes beyond, to nothing at twice it.
        self._route_hedge()
        discount = self._discount()
        if not np.isnan(discount):  # none the morning after an expiry: the cost stands
            self.hedge_cost += (discount - self.hedge_cost) / HEDGE_COST_DAYS
        cost = self.hedge_cost / c.expected_alpha
        # The counterfactual without forced selling holds the book through the hedge's
        # cost too: a cut for the cost is a sale the discount forces, as a margin call is.
        self.carry = float(np.clip(2.0 - cost, 0.0, 1.0)) if c.forced_selling else 1.0
        flow = c.inflow * np.clip(self.trailing, 0.0, None) * 10.0 * np.clip(1.0 - cost, 0.0, 1.0)
        if c.forced_selling:
            flow -= c.redemption_sensitivity * np.maximum(drawdown - 0.02, 0.0) / 20.0
        flow = np.where(self.state == STOPPED, 0.0, np.clip(flow, -0.2, 0.05))
        cash_flow = flow * np.maximum(eq, 0.0)
        model.ledger.external_cash(self.accounts, np.rint(cash_flow * 100).astype(np.int64))
        self.units = np.maximum(self.units + cash_flow / np.maximum(self.nav, 1e-9), 0.0)
        # Healthy products follow their equity; a warned one holds the plan it was cut from.
        follow = (self.leverage * np.maximum(eq, 0.0) - self.exposure) / c.rebalance_days
        self.exposure += np.where(self.state == NORMAL, follow, 0.0)
        if model.lending is not None:
            self._manage_loans()

    def _mornings_off_low(self, cut: np.ndarray, warn: np.ndarray) -> np.ndarray:
        """(n,) mornings each product in a ``cut`` (n,) has held above its cut's low, with
        today's NAV counted; products cut this morning (``warn``, n,) start their low here.
        Kept only for ``recovery_holds_low``, so read only where it is set."""
        new_low = cut & (self.nav < self.cut_low * (1.0 - NAV_DUST))
        self.cut_low = np.where(new_low | warn, self.nav, self.cut_low)
        self.held_days = np.where(cut & ~new_low, self.held_days + 1, 0)
        return self.held_days

    def _route_hedge(self) -> None:
        """Move the futures hedge towards the cheaper contract (``route_by_cost``).

        A short in a contract at a deeper discount costs more a year, so managers shift
        the split away from it, as far as ``route_by_cost`` times the spread of the
        smoothed bases moves the IM share from ``im_share``. The basket is micro-caps,
        so the manager's own mix (``im_share``) is where a free choice rests.
        """
        c = self.cfg
        if c.route_by_cost == 0.0 or self.model.futures is None:
            return
        smooth_basis(self.basis_seen, self.model.basis()[1:], HEDGE_COST_DAYS)  # IC, IM
        spread = self.basis_seen[1] - self.basis_seen[0]  # < 0: IM's short costs more
        im = float(np.clip(c.im_share + c.route_by_cost * spread, 0.0, 1.0))
        self.hedge_split = np.array([1.0 - im, im])

    def _discount(self) -> float:
        """Yearly discount of the IC/IM hedge mix at the last prices (0 at a premium; NaN
        while the contracts have no price, after an expiry)."""
        if self.model.futures is None:
            return 0.0
        basis = self.model.basis()[1:]  # (2,) IC, IM annualized
        if np.isnan(basis).any():
            return float("nan")
        return float(max(-np.dot(self.hedge_split, basis), 0.0))

    def _manage_loans(self) -> None:
        """Repay what is recalled (or everything, once stopped); borrow up to the plan."""
        model, desk, market = self.model, self.model.lending, self.market
        loan = desk.loan_rows(self.accounts)  # (l,) rows of the desk's arrays
        borrower, stock = np.divmod(desk.key[loan], desk.n_stocks)
        stopped = self.state[np.searchsorted(self.accounts, borrower)] == STOPPED
        desk.recall_due[loan[stopped]] = desk.owed[loan[stopped]]
        desk.repay(borrower, stock, desk.recall_due[loan])
        # Borrow towards the planned stock hedge while the product is healthy.
        healthy = np.flatnonzero(self.state == NORMAL)
        if healthy.size == 0:
            return
        plan = self.target_exposure(healthy) * self.cfg.lending_hedge_share  # CNY
        have = desk.owed_value(self.accounts[healthy], market.last)  # (h,) CNY
        short = np.maximum(plan - have, 0.0)  # (h,)
        hedge = self.hedge_stocks[healthy]  # (h, H)
        shares = self.hedge_shares(healthy, short, market.last[hedge])  # (h, H)
        desk.borrow(
            np.repeat(self.accounts[healthy], hedge.shape[1]),
            hedge.ravel(),
            shares.ravel(),
            model.date,
        )

    def hedge_shares(self, rows: np.ndarray, cny: np.ndarray, price: np.ndarray) -> np.ndarray:
        """(r, H) shares to borrow of the rows' hedge names at ``price`` (r, H) fen: ``cny``
        (r,) spread evenly over the names each may borrow (none it holds long)."""
        free = self.hedge_free[rows]  # (r, H)
        each = cny / np.maximum(free.sum(axis=1), 1)  # (r,) CNY a name
        return np.where(free, each[:, None] * 100.0 / price, 0.0)

    def target_exposure(self, rows: np.ndarray) -> np.ndarray:
        """(r,) gross long exposure wanted, CNY.

        Healthy products follow their equity slowly (``self.exposure``, moved over
        ``rebalance_days``) but never plan above ``max_leverage_ratio`` times their
        leverage: past that the plan drops to the broker's ceiling at once (the sales are
        worked at the calm pace; what forces them is the margin call). Warned products
        cut, stopped products hold nothing.
        """
        eq = np.maximum(self.equity(rows), 0.0)
        ceiling = self.cfg.max_leverage_ratio * self.leverage[rows] * eq
        if not self.cfg.forced_selling:
            ceiling = np.full_like(ceiling, np.inf)
        state = self.state[rows]
        kept = np.where(state == WARNED, 1.0 - self.cfg.warning_cut, 0.0)
        scale = self.carry * np.where(state == NORMAL, 1.0, kept)
        return np.minimum(self.exposure[rows], ceiling) * scale

    # -- orders ---------------------------------------------------------------------------
    def decide(self, rows: np.ndarray) -> Orders:
        return Orders.concat(self.decide_parts(rows))

    def decide_parts(self, rows: np.ndarray) -> list[Orders]:
        """The basket's orders, the short leg's and the futures hedge's, in that order."""
        model, market, c = self.model, self.market, self.cfg
        accounts = self.accounts[rows]
        market.cancel_accounts(accounts)
        target = self.target_exposure(rows)  # (r,)
        pace = 1.0 / (c.trade_days * model.steps_per_day)
        distressed = self.state[rows] != NORMAL

        # Margin: cash plus the broker's credit line must cover the futures margin; a product
        # short of it must sell longs now (a margin call), whatever its NAV says.
        ledger = model.ledger
        room = (ledger.cash[accounts] + ledger.credit[accounts]) / 100.0  # CNY
        if model.futures is not None:
            room -= ledger.futures_margin_used(accounts, market.futures_margin) / 100.0
        short_cash = np.maximum(-room, 0.0)
        margin_call = (short_cash > 0) & c.forced_selling

        # Long basket: the starting weights (about equal); sell what is beyond target, buy
        # what is short of it.
        basket = self.take(self.basket, rows)  # (r, B)
        price = market.last.astype(np.float64)[basket]  # (r, B) fen
        held = model.ledger.basket_holding(accounts, basket, self.take(self.basket_order, rows))
        urgent = distressed | margin_call  # (r,)
        hurry = 1.0 / (c.liquidation_days * model.steps_per_day)
        # A margin call sells at least what it needs, pro rata over the basket.
        need = np.zeros(rows.size)  # (r,) share of the book
        if margin_call.any():
            need = short_cash * 1.2 * 100.0 / np.maximum(held * price, 1).sum(axis=1)
        # Buy what is short of target, sell what is beyond, a share of the gap a step; forced
        # sellers cross the spread by up to ``forced_discount``, others rest near last.
        columns = basket_orders(
            accounts,
            basket,
            target,
            self.take(self.weights, rows),
            price,
            held,
            urgent,
            margin_call,
            need,
            pace,
            hurry,
            market.lot,
            c.forced_discount,
        )
        parts = [Orders(*columns)]
        # The book the hedge covers: the one held, so a cut's longs not yet sold stay
        # hedged, or (``hedge_held_book`` off) the one planned, which a cut leads.
        hedged = (held * price).sum(axis=1) / 100.0 if c.hedge_held_book else target  # (r,)
        if model.lending is not None:
            # Only the short leg's orders of a lot or more go to the exchange (most loans
            # have nothing to trade on a step, some 1,600 of 1,800): it admits nothing of
            # the others and they claim no shares or cash, so the book and every fill are
            # the same without them.
            short = self._short_leg(rows, accounts, hedged)
            parts.append(short.select(short.lots > 0))
        if model.futures is not None:
            # Hedging the book held, an urgent product closes the whole gap each step, so its
            # futures come off as its longs are sold; hedging the book planned, it works the
            # gap over the liquidation, as it does its longs.
            cover_pace = 1.0 if c.hedge_held_book else hurry
            parts.append(self._hedge(rows, accounts, hedged, urgent, cover_pace))
        return parts

    def _short_leg(self, rows, accounts, book) -> Orders:
        """Sell borrowed shares short; buy in what a recall wants back and is no longer held;
        note what share of ``book`` (r,), the long book hedged, the loans cover.

        One compiled pass finds the accounts' open loans on the desk, looks up what each
        borrower holds of the stock, and writes the orders (:func:`_short_orders`).
        """
        model, market, desk, ledger = self.model, self.market, self.model.lending, self.model.ledger
        # Buy-ins are worked over liquidation_days, like any other forced trade.
        pace = 1.0 / (self.cfg.liquidation_days * model.steps_per_day)
        borrower, stock, side, price, lots, bought, value = _short_orders(
            np.asarray(accounts, np.int64),
            desk.key,
            desk.owed,
            desk.recall_due,
            desk.n_stocks,
            ledger.key,
            ledger.shares,
            ledger.bought_today,
            market.last,
            pace,
            market.lot,
            self.cfg.forced_discount,
        )
        self.lend_share[rows] = np.clip(value / np.maximum(book, 1.0), 0.0, 1.0)
        desk.buy_ins_total += float(bought.sum()) / 100.0
        # A buy-in is forced: what of it fills counts in the model's forced sales.
        return Orders(borrower, stock, side, price, lots, duress=np.where(side > 0, FORCED, CALM))

    def _hedge(self, rows, accounts, book, urgent, hurry: float) -> Orders:
        """Short IC and IM against the futures share of ``book`` (r,), the long book's CNY;
        ``urgent`` (r,) products buy a cover back ``hurry`` of its gap a step."""
        model, market, c = self.model, self.market, self.cfg
        spec = model.futures
        value = spec.contract_value(model.indices.level)[1:]  # (2,) CNY per IC, IM contract
        held = model.ledger.futures_position(accounts)[:, 1:]  # (r, 2) contracts
        instrument = spec.instrument[1:]  # (2,)
        columns = _hedge_orders(
            accounts,
            instrument,
            book * (1.0 - self.lend_share[rows]),
            self.hedge_split,
            value,
            held,
            urgent,
            market.last[instrument],
            hurry,
            1.0 / c.trade_days / model.steps_per_day,
            c.forced_discount,
        )
        return Orders(*columns)


@entry
@numba.njit(cache=True, nogil=True)
def _short_orders(
    accounts: np.ndarray,
    loan_key: np.ndarray,
    loan_owed: np.ndarray,
    loan_due: np.ndarray,
    n_stocks: int,
    table_key: np.ndarray,
    table_shares: np.ndarray,
    table_bought: np.ndarray,
    last: np.ndarray,
    pace: float,
    lot: int,
    forced_discount: float,
) -> tuple[np.ndarray, ...]:
    """The short leg's order per open loan of ``accounts``, in one pass over the loans.

    The loans are the desk's rows with shares owed in each account's slice of the keys,
    in key order (:meth:`LendingDesk.loan_rows`); what the borrower holds of the stock,
    and may sell now, is looked up in the ledger's table, each search starting at the
    last answer (the loans' keys ascend, and a loan's key is the position's key).

    What is owed and not recalled stays short: the shares held beyond the recall are
    sold (no lower than last, the uptick rule); what a recall wants back and is not held
    is bought in, ``pace`` of it a step, paying up to ``forced_discount`` over last, and
    hedges until it is.

    Args:
        accounts: (r,) int64 sorted, distinct borrowers' accounts. loan_key, loan_owed,
            loan_due: (L,) int64 the desk's loans, sorted by key ``borrower * n_stocks +
            stock``, shares owed and recalled. table_key, table_shares, table_bought: (P,)
            int64 the ledger's positions, sorted by the same key. last: (S,) int64 fen.

    Returns:
        (borrower, stock) (l,) int64 of each loan; (side, price, lots) per loan as
        ``Orders`` takes them (int8, fen cut to whole fen, int64; no lots where nothing is
        to trade); the (l,) fen ``buy * last`` bought in; and the (r,) CNY of each
        account's stock hedge (shares owed and not recalled, and recalled shares not yet
        bought back), summed in loan order.
    """
    r = accounts.shape[0]
    lo = np.empty(r, np.int64)
    hi = np.empty(r, np.int64)
    n = 0
    for i in range(r):
        lo[i] = np.searchsorted(loan_key, accounts[i] * n_stocks)
        hi[i] = np.searchsorted(loan_key, (accounts[i] + 1) * n_stocks)
        for j in range(lo[i], hi[i]):
            n += loan_owed[j] > 0
    borrower = np.empty(n, np.int64)
    stock = np.empty(n, np.int64)
    side = np.empty(n, np.int8)
    price = np.empty(n, np.int64)
    lots = np.empty(n, np.int64)
    bought = np.empty(n)  # (l,) fen
    value = np.zeros(r)  # (r,) CNY
    k, at = 0, 0
    for i in range(r):
        for j in range(lo[i], hi[i]):
            if loan_owed[j] <= 0:
                continue
            key = loan_key[j]
            at = search_near(table_key, key, at)
            held, sellable = 0, 0
            if at < table_key.shape[0] and table_key[at] == key:
                held, sellable = table_shares[at], table_shares[at] - table_bought[at]
            owed, due = loan_owed[j], loan_due[j]
            borrower[k], stock[k] = accounts[i], key - accounts[i] * n_stocks
            p = last[stock[k]]
            # Short: what is owed and not recalled, and what is recalled but not yet
            # bought back (a recalled short hedges until it is bought in).
            value[i] += (owed - due + max(due - held, 0)) * p / 100.0
            buy = np.ceil(max(due - held, 0) * pace)
            bought[k] = buy * p
            if buy > 0:
                side[k] = 1
                lots[k] = np.int64(-(-buy // lot))
                price[k] = np.int64(p * (1.0 + forced_discount))
            else:
                side[k] = -1
                lots[k] = min(sellable, max(held - due, 0)) // lot
                price[k] = p
            k += 1
    return borrower, stock, side, price, lots, bought, value


@entry
@numba.njit(cache=True, nogil=True)
def _hedge_orders(
    accounts: np.ndarray,
    instrument: np.ndarray,
    futures_book: np.ndarray,
    split: np.ndarray,
    value: np.ndarray,
    held: np.ndarray,
    urgent: np.ndarray,
    last: np.ndarray,
    hurry: float,
    pace: float,
    forced_discount: float,
) -> tuple[np.ndarray, ...]:
    """Each product's IC and IM orders towards short ``split`` of its futures book.

    A step trades ``pace`` of the gap to the target in contracts (``hurry`` when urgent
    and buying back), at least one contract, none when the gap is under one; near last,
    or up to ``forced_discount`` through it when urgent and buying back.

    Args:
        accounts: (r,) int64 the products'; instrument: (2,) the IC and IM instruments.
        futures_book: (r,) CNY of long book hedged with futures; split: (2,) IC, IM shares.
        value: (2,) CNY per contract; held: (r, 2) contracts held, long positive.
        urgent: (r,) bool; last: (2,) ticks, the contracts' last prices.

    Returns:
        (account, instrument, side, price, lots), (r * 2,) row by row, as ``Orders`` takes
        them (int64, int64, int8, prices cut to whole ticks, int64).
    """
    n, k = held.shape
    account = np.empty(n * k, np.int64)
    stock = np.empty(n * k, np.int64)
    side = np.empty(n * k, np.int8)
    price = np.empty(n * k, np.int64)
    lots = np.empty(n * k, np.int64)
    for i in range(n):
        for j in range(k):
            gap = -futures_book[i] * split[j] / value[j] - held[i, j]  # contracts to trade
            # Urgency hurries a cover, never a new short: a product cutting under a line
            # buys its hedge back at once but adds to it only at the calm pace and price.
            cover = urgent[i] and gap > 0
            trade = np.trunc(gap * (hurry if cover else pace))
            if abs(gap) < 1:
                trade = 0.0
            elif trade == 0:
                trade = np.sign(gap)
            s = np.int8(np.sign(trade))
            through = forced_discount if cover else 0.001  # share of last to pay or give
            p = last[j] * (1.0 + through * s)
            account[i * k + j], stock[i * k + j] = accounts[i], instrument[j]
            side[i * k + j], price[i * k + j], lots[i * k + j] = (
                s,
                np.int64(p),
                np.int64(abs(trade)),
            )
    return account, stock, side, price, lots
