"""Basis arbitrageurs: buy index futures at a discount, short the index with borrowed stock.

When quant funds short IC and IM to hedge, the futures trade below the index.
Arbitrageurs close that gap: long the cheap futures, short the index's largest
constituents (the ``HEDGE_NAMES`` biggest of the CSI 500 tier for IC, of the
CSI 1000 tier for IM, and of the CSI 300 for IF if asked for) with shares
borrowed from the lending desk. Each step, while a contract's trade is open,
they bid for futures worth ``speed`` of the gap between their target and what
they have on loan, but only as much as the desk still has shares to lend in
their short names; once futures fill they borrow that much stock and sell it.
So the position is capped by capital (``capital_bn * scale`` bn CNY of notional,
split evenly over the contracts) AND by lendable supply: without stock to borrow
they buy no futures. That is how the lending curb of January-February 2024 took
the arbitrage bid out of the futures and let the discount deepen.

Futures bids are limit orders at the price where the basis would be the exit
band (``-threshold / 2``), not at limit-up: an arbitrageur buys the discount, it
does not pay any price, and in thin books a market order would push the basis
through its own bands. They open when a contract's annualized basis is below
``-threshold`` and unwind once it is back above ``-threshold / 2``: hand back the
shares they hold, buy back ``speed`` of the rest each step, offer futures down to
the loans left (at the entry band price). Loans the desk recalls are handed back
from what is held, the rest bought in at the limit-up price (counted in
``buy_ins_cny``, not in forced sales), and the matching futures are sold at the
limit-down price.

Without a lending desk (``model.lending is None``) or without futures they do
nothing. Set-up: open each row's account with its capital in cash (futures
margin comes out of it; short-sale proceeds land in it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agents.base import ArrayAgent, Population
from model.config import ArbitrageConfig
from model.futures import MIN_DAYS, TICK_POINTS, UNDERLYING
from model.orders import Orders

CONTRACTS = (1, 2)  # rows of model.futures arrays traded by default: IC, IM
HEDGE_NAMES = 20  # largest constituents shorted per contract
NEAR = 0.01  # distance of cover bids above the last price


class Arbitrageur(ArrayAgent):
    """One basis-arbitrage desk."""


class Arbitrageurs(Population):
    """Long futures at a discount, short borrowed stock; capacity set by capital and lending."""

    agent_class = Arbitrageur

    def __init__(
        self,
        model,
        accounts,
        cfg: ArbitrageConfig,
        scale: float,
        contracts: tuple[int, ...] = CONTRACTS,
    ) -> None:
        super().__init__(model, accounts)
        self.cfg = cfg
        self.contracts = np.asarray(contracts, dtype=np.int64)  # (K,) rows of futures arrays
        k = self.contracts.size
        self.capital = np.full(self.n, cfg.capital_bn * scale * 1e9 / max(self.n, 1))  # (n,)
        self.active = np.zeros((self.n, k), dtype=bool)  # (n, K) holding the trade open
        self.hedge_stock, self.hedge_leg, self.hedge_weight = self._hedge_baskets()
        self.buy_ins_cny = 0.0  # CNY bought in this step because loans were recalled
        self._step = -1

    def _hedge_baskets(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(H,) stock, contract slot and cap weight within its contract of each short name.

        Fixed at the start: loans are per stock, and a fixed list keeps them matched.
        """
        caps, tier = self.market.caps(), self.model.indices.tier
        tiers = UNDERLYING[self.contracts]  # (K,) CSI tier code of each contract's index
        in_leg = tier[None, :] == tiers[:, None]  # (K, S)
        rank = np.argsort(np.argsort(-np.where(in_leg, caps, -1.0), axis=1), axis=1)
        pick = in_leg & (rank < HEDGE_NAMES)  # (K, S)
        leg, stock = np.nonzero(pick)
        leg_cap = np.bincount(leg, caps[stock], minlength=self.contracts.size)
        return stock, leg, caps[stock] / np.maximum(leg_cap[leg], 1e-9)

    def _new_step(self) -> None:
        """Reset the per-step counter on the first call of a step (either engine)."""
        if self._step != self.model.steps:
            self._step, self.buy_ins_cny = self.model.steps, 0.0

    # -- read-outs --------------------------------------------------------------------------
    def contract_value(self) -> np.ndarray:
        """(K,) CNY per contract at today's index levels."""
        spec = self.model.futures
        return (
            self.model.indices.level[spec.underlying[self.contracts]]
            * spec.multiplier[self.contracts]
        )

    def futures(self, rows: np.ndarray) -> np.ndarray:
        """(r, K) contracts held, long positive."""
        return self.model.ledger.futures_position(self.accounts[rows])[:, self.contracts]

    def band_ticks(self, basis: float) -> np.ndarray:
        """(K,) futures price, in ticks, at which the annualized basis would be ``basis``."""
        model, spec = self.model, self.model.futures
        days = max(spec.days_to_expiry(model.day_index), MIN_DAYS)
        level = model.indices.level[spec.underlying[self.contracts]]
        return level * (1.0 + basis * days / 365.0) / TICK_POINTS

    # -- orders -----------------------------------------------------------------------------
    def decide(self, rows: np.ndarray) -> Orders:
        """Open, hold or unwind the basis trade of ``rows``."""
        self._new_step()
        model, market = self.model, self.market
        accounts = self.accounts[rows]
        market.cancel_accounts(accounts)
        if model.futures is None or model.lending is None or self.hedge_stock.size == 0:
            return Orders.empty()
        basis = model.basis()[self.contracts]  # (K,)
        thr = self.cfg.threshold
        self.active[rows] = np.where(
            basis < -thr, True, np.where(basis > -thr / 2, False, self.active[rows])
        )
        r, h = rows.size, self.hedge_stock.size
        legs = _Legs(
            account=np.repeat(accounts, h),
            stock=np.tile(self.hedge_stock, r),
            slot=np.repeat(np.arange(r), h) * self.contracts.size + np.tile(self.hedge_leg, r),
            weight=np.tile(self.hedge_weight, r),
            shape=(r, self.contracts.size),
        )
        active = self.active[rows].ravel()[legs.slot]  # (r*H,)
        self._hand_back(legs, active)
        self._borrow(rows, legs)
        owed, due = self._loans(legs)
        return Orders.concat(
            [
                self._stock_orders(rows, legs, owed, due),
                self._futures_orders(rows, legs, owed, due),
            ]
        )

    def _loans(self, legs: _Legs) -> tuple[np.ndarray, np.ndarray]:
        """(r*H,) shares owed and shares recalled per short name, zero where no loan."""
        desk = self.model.lending
        key = legs.account * desk.n_stocks + legs.stock
        if desk.key.size == 0:
            return np.zeros(key.size, np.int64), np.zeros(key.size, np.int64)
        row = np.minimum(np.searchsorted(desk.key, key), desk.key.size - 1)
        found = desk.key[row] == key
        return np.where(found, desk.owed[row], 0), np.where(found, desk.recall_due[row], 0)

    def _leg_cny(self, legs: _Legs, shares: np.ndarray) -> np.ndarray:
        """(r, K) CNY value at last prices of ``shares`` (r*H,) summed per contract leg."""
        value = shares * self.market.last[legs.stock] / 100.0
        return np.bincount(legs.slot, value, minlength=legs.size).reshape(legs.shape)

    def _hand_back(self, legs: _Legs, active: np.ndarray) -> None:
        """Repay recalled loans from what is held; repay everything held when unwinding."""
        owed, due = self._loans(legs)
        held = self.model.ledger.holding(legs.account, legs.stock)
        give = np.minimum(np.where(active, np.minimum(held, due), held), owed)
        if (give > 0).any():
            self.model.lending.repay(legs.account, legs.stock, give)

    def _borrow(self, rows: np.ndarray, legs: _Legs) -> None:
        """Borrow stock worth the futures not yet matched by a loan, and no more."""
        market, desk = self.market, self.model.lending
        owed, due = self._loans(legs)
        unhedged = self.futures(rows) * self.contract_value()[None, :] - self._leg_cny(
            legs, owed - due
        )  # (r, K) CNY of futures not yet matched by a loan
        need = np.where(self.active[rows], np.maximum(unhedged, 0.0), 0.0)
        cny = self._spread(legs, need, self._room_cny(legs))
        shares = cny * 100.0 / market.last[legs.stock]  # (r*H,)
        ask = (shares >= market.lot) & (due == 0)
        if ask.any():
            desk.borrow(legs.account[ask], legs.stock[ask], shares[ask], self.model.date)

    def _room_cny(self, legs: _Legs) -> np.ndarray:
        """(r*H,) CNY the desk can still lend in each short name."""
        desk, market = self.model.lending, self.market
        room = np.maximum(desk.supply(self.model.date) - desk.owed_by_stock(), 0)  # (S,)
        return room[legs.stock] * market.last[legs.stock] / 100.0

    @staticmethod
    def _spread(legs: _Legs, amount: np.ndarray, room: np.ndarray) -> np.ndarray:
        """(r*H,) CNY per name: ``amount`` (r, K) by cap weight, what a full name can't take
        going to the names with room left in its leg."""
        first = np.minimum(amount.ravel()[legs.slot] * legs.weight, room)
        left = room - first
        short = amount.ravel() - np.bincount(legs.slot, first, minlength=legs.size)  # (r*K,)
        spare = np.bincount(legs.slot, left, minlength=legs.size)  # (r*K,)
        share = np.clip(short / np.maximum(spare, 1e-9), 0.0, 1.0)[legs.slot]
        return first + left * share

    def _capacity(self, rows: np.ndarray, legs: _Legs, lent: np.ndarray) -> np.ndarray:
        """(r, K) CNY of new position this step: ``speed`` of the gap to target, what lends.

        Where nothing can be borrowed in a leg's short names there is no capacity.
        """
        target = (self.capital[rows] / self.contracts.size)[:, None] * self.active[rows]
        gap = self.cfg.speed * np.maximum(target - lent, 0.0)  # (r, K)
        room = np.bincount(legs.slot, self._room_cny(legs), minlength=legs.size)
        return np.minimum(gap, room.reshape(legs.shape))

    def _stock_orders(
        self, rows: np.ndarray, legs: _Legs, owed: np.ndarray, due: np.ndarray
    ) -> Orders:
        """Sell borrowed shares short; buy back what the futures no longer cover; buy in
        what a recall wants back."""
        market, ledger, lot = self.market, self.model.ledger, self.market.lot
        stock = legs.stock
        active = self.active[rows].ravel()[legs.slot]  # (r*H,)
        held, sellable = ledger.holding_and_sellable(legs.account, stock)
        price = market.last[stock].astype(np.float64)  # (r*H,) fen
        buy_in = np.maximum(due - held, 0)  # (r*H,) shares the desk wants back and we lack
        # Unwinding: the futures lead; buy back the loans they no longer cover, pro rata.
        lent = self._leg_cny(legs, owed - due)  # (r, K)
        excess = np.maximum(lent - self.futures(rows) * self.contract_value()[None, :], 0.0)
        share = (excess / np.maximum(lent, 1e-9)).ravel()[legs.slot]  # (r*H,)
        cover = np.where(active, 0.0, share * np.maximum(owed - due - held, 0))
        sell = np.where(active, np.minimum(sellable, held - due), 0)
        bought_in = float((buy_in * price).sum()) / 100.0
        self.buy_ins_cny += bought_in
        self.model.lending.buy_ins += bought_in
        buy_lots = np.ceil((buy_in + cover) / lot)
        side = np.where(buy_lots > 0, 1, -1).astype(np.int8)
        lots = np.where(side > 0, buy_lots, np.maximum(sell, 0) // lot)
        # Short sales may not be priced below the last trade (the uptick rule for
        # securities lending); covers bid a little above it, buy-ins at the limit.
        near = np.where(side > 0, price * (1.0 + NEAR), price)
        order_price = np.where(buy_in > 0, market.limit_price(stock, side), near)
        return Orders(legs.account, stock, side, order_price, lots)

    def _futures_orders(
        self, rows: np.ndarray, legs: _Legs, owed: np.ndarray, due: np.ndarray
    ) -> Orders:
        """Futures lead both ways; stock follows their fills.

        Open: hold futures worth the loans plus this step's lendable capacity (none
        without stock to borrow). Unwind: sell ``speed`` of the position a step. Never
        hold more than the loans that stay open cover (recalls cut the futures too).

        Bids go up to the price of the exit band (basis ``-threshold / 2``) and offers
        down to the entry band (``-threshold``), so the desk never pushes the basis
        through its own bands; futures sold because loans were recalled go at the limit.
        """
        market, spec, thr = self.market, self.model.futures, self.cfg.threshold
        value = self.contract_value()[None, :]  # (1, K) CNY per contract
        held = self.futures(rows)  # (r, K) contracts
        lent = self._leg_cny(legs, owed - due)  # (r, K) CNY still on loan
        opening = np.floor((lent + self._capacity(rows, legs, lent)) / value)
        unwinding = np.minimum(np.floor(lent / value), np.floor((1.0 - self.cfg.speed) * held))
        want = np.where(self.active[rows], opening, np.maximum(unwinding, 0))
        recalled = self._leg_cny(legs, due) > 0  # (r, K)
        want = np.where(recalled, np.minimum(want, np.floor(lent / value)), want)
        trade = want - held  # (r, K) contracts
        side = np.sign(trade).astype(np.int8)
        instrument = np.broadcast_to(spec.instrument[self.contracts], trade.shape)
        band = np.where(
            side > 0, np.floor(self.band_ticks(-thr / 2)), np.ceil(self.band_ticks(-thr))
        )
        price = np.where(recalled & (side < 0), market.limit_price(instrument, side), band)
        return Orders(
            np.repeat(self.accounts[rows], self.contracts.size),
            instrument.ravel(),
            side.ravel(),
            price.ravel(),
            np.abs(trade).ravel(),
        )


@dataclass(frozen=True)
class _Legs:
    """The short names of some rows, flat: one entry per (row, hedge stock), shape (r*H,)."""

    account: np.ndarray  # (r*H,) ledger account
    stock: np.ndarray  # (r*H,) stock shorted
    slot: np.ndarray  # (r*H,) flat index into (r, K): row and contract leg
    weight: np.ndarray  # (r*H,) cap weight within its leg
    shape: tuple[int, int]  # (r, K)

    @property
    def size(self) -> int:
        return self.shape[0] * self.shape[1]
