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

Two more desks trade the basis without borrowing, on the same bands:
``CarryArbitrageurs`` sell futures at a premium against stock bought with cash, and
``IndexSwitchers``, long-only holders of the indices, swap their stock for futures at
a discount and back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from agents.base import ArrayAgent, Population
from model.aot import entry
from model.config import ArbitrageConfig
from model.futures import UNDERLYING, smooth_basis
from model.orders import Orders

CONTRACTS = (1, 2)  # rows of model.futures arrays traded by default: IC, IM
SWITCH_CONTRACTS = (0, 1, 2)  # the index switchers hold IF, IC and IM
SWITCH_MEMORY_DAYS = 10  # trading days over which the index switchers smooth the basis
HEDGE_NAMES = 20  # largest constituents shorted per contract
NEAR = 0.01  # distance of cover bids above the last price


class Arbitrageur(ArrayAgent):
    """One basis-arbitrage desk."""


class Arbitrageurs(Population):
    """Long futures at a discount, short borrowed stock; capacity set by capital and lending."""

    agent_class = Arbitrageur
    side = -1  # the side of par the trade opens on: below it, a discount

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
        self.capital = self._capital(cfg, scale)  # (n,) CNY of notional per desk
        self.active = np.zeros((self.n, k), dtype=bool)  # (n, K) holding the trade open
        self.hedge_stock, self.hedge_leg, self.hedge_weight = self._hedge_baskets()
        self.buy_ins_cny = 0.0  # CNY of buy-in orders sent this step (loans recalled)
        self._all_legs: _Legs | None = None  # the legs of every row, once built
        # (n,) rows of a cash desk (carry, switch) that can send no order until their trade
        # opens: closed, flat in futures, no stock to buy or sell; only their own trades
        # move what they hold, so the next steps need no look-up
        self.quiet = np.zeros(self.n, dtype=bool)

    def _capital(self, cfg: ArbitrageConfig, scale: float) -> np.ndarray:
        """(n,) CNY of notional per desk: ``capital_bn * scale`` split evenly."""
        return np.full(self.n, cfg.capital_bn * scale * 1e9 / max(self.n, 1))

    @property
    def threshold(self) -> float:
        """Annualized distance from par at which the trade opens."""
        return self.cfg.threshold

    def basis_seen(self) -> np.ndarray:
        """(K,) annualized basis the desks act on: the last prices'."""
        return self.model.basis()[self.contracts]

    def _open_or_close(self, rows: np.ndarray) -> None:
        """Open a contract's trade once its basis is ``threshold`` past par on this desk's
        side, close it once back within half of that, hold it in between, and while the
        contracts have no price (NaN, the morning after an expiry)."""
        past_par = self.side * self.basis_seen()  # (K,) annualized
        thr = self.threshold
        self.active[rows] = np.where(
            past_par > thr, True, np.where(past_par < thr / 2, False, self.active[rows])
        )

    hedge_names = HEDGE_NAMES  # the largest members of each contract's index held

    def _hedge_baskets(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(H,) stock, contract slot and cap weight within its contract of each short name.

        Fixed at the start: loans are per stock, and a fixed list keeps them matched.
        """
        caps, tier = self.market.caps(), self.model.indices.tier
        tiers = UNDERLYING[self.contracts]  # (K,) CSI tier code of each contract's index
        in_leg = tier[None, :] == tiers[:, None]  # (K, S)
        rank = np.argsort(np.argsort(-np.where(in_leg, caps, -1.0), axis=1), axis=1)
        pick = in_leg & (rank < self.hedge_names)  # (K, S)
        leg, stock = np.nonzero(pick)
        leg_cap = np.bincount(leg, caps[stock], minlength=self.contracts.size)
        return stock, leg, caps[stock] / np.maximum(leg_cap[leg], 1e-9)

    def _new_step(self) -> None:
        """Reset the per-step counter on the first call of a step (either engine)."""
        if self.begins_step():
            self.buy_ins_cny = 0.0

    # -- read-outs --------------------------------------------------------------------------
    def contract_value(self) -> np.ndarray:
        """(K,) CNY per contract at today's index levels."""
        return self.model.futures.contract_value(self.model.indices.level)[self.contracts]

    def futures(self, rows: np.ndarray) -> np.ndarray:
        """(r, K) contracts held, long positive."""
        return self.model.ledger.futures_position(self.accounts[rows])[:, self.contracts]

    def band_ticks(self, basis: float) -> np.ndarray:
        """(K,) futures price, in ticks, at which the annualized basis would be ``basis``."""
        model = self.model
        ticks = model.futures.price_at_basis(basis, model.indices.level, model.day_index)
        return ticks[self.contracts]

    # -- orders -----------------------------------------------------------------------------
    def decide(self, rows: np.ndarray) -> Orders:
        """Open, hold or unwind the basis trade of ``rows``."""
        return Orders.concat(self.decide_parts(rows))

    def decide_parts(self, rows: np.ndarray) -> list[Orders]:
        """Open, hold or unwind the basis trade of ``rows``: the stock orders, then the
        futures orders.

        What the three steps read (loans, holdings, the desk's room, futures held, the
        contracts' value, last prices) is looked up once and again only after a step that
        changed it: a repayment or a loan (most steps have neither).
        """
        self._new_step()
        model, market = self.model, self.market
        accounts = self.accounts[rows]
        market.cancel_accounts(accounts)
        if model.futures is None or model.lending is None or self.hedge_stock.size == 0:
            return [Orders.empty()]
        self._open_or_close(rows)
        legs = self._legs(rows)
        book = _Book(
            *self._loans(legs),
            *model.ledger.holding_and_sellable(legs.account, legs.stock),
            market.last[legs.stock],
            None,
            self.futures(rows),
            self.contract_value(),
        )
        active = self.active[rows].ravel()[legs.slot]  # (r*H,)
        if self._hand_back(legs, active, book):
            book = self._looked_up_again(legs, book)
        book.room = self._room_cny(legs, book.last)
        if self._borrow(rows, legs, book):
            book = self._looked_up_again(legs, book)
            book.room = self._room_cny(legs, book.last)
        return self._order_parts(rows, legs, book)

    def _legs(self, rows: np.ndarray) -> _Legs:
        """The short names of ``rows``, flat (read-only; kept for every row in order, as the
        vectorized engine asks each step: the accounts and hedge names never change)."""
        every = self.all_rows(rows)
        if every and self._all_legs is not None:
            return self._all_legs
        r, h = rows.size, self.hedge_stock.size
        legs = _Legs(
            account=np.repeat(self.accounts[rows], h),
            stock=np.tile(self.hedge_stock, r),
            slot=np.repeat(np.arange(r), h) * self.contracts.size + np.tile(self.hedge_leg, r),
            weight=np.tile(self.hedge_weight, r),
            shape=(r, self.contracts.size),
        )
        if every:
            for column in (legs.account, legs.stock, legs.slot, legs.weight):
                column.flags.writeable = False
            self._all_legs = legs
        return legs

    def _loans(self, legs: _Legs) -> tuple[np.ndarray, np.ndarray]:
        """(r*H,) shares owed and shares recalled per short name, zero where no loan."""
        desk = self.model.lending
        key = legs.account * desk.n_stocks + legs.stock
        if desk.key.size == 0:
            return np.zeros(key.size, np.int64), np.zeros(key.size, np.int64)
        row = np.minimum(np.searchsorted(desk.key, key), desk.key.size - 1)
        found = desk.key[row] == key
        return np.where(found, desk.owed[row], 0), np.where(found, desk.recall_due[row], 0)

    def _looked_up_again(self, legs: _Legs, book: _Book) -> _Book:
        """``book`` with the loans and holdings read again (after a repayment or a loan)."""
        owed, due = self._loans(legs)
        held, sellable = self.model.ledger.holding_and_sellable(legs.account, legs.stock)
        return _Book(owed, due, held, sellable, book.last, None, book.futures, book.value)

    def _hand_back(self, legs: _Legs, active: np.ndarray, book: _Book) -> bool:
        """Repay recalled loans from what is held; repay everything held when unwinding.
        Whether anything was asked to be repaid."""
        give = np.minimum(np.where(active, np.minimum(book.held, book.due), book.held), book.owed)
        if (give > 0).any():
            self.model.lending.repay(legs.account, legs.stock, give)
            return True
        return False

    def _borrow(self, rows: np.ndarray, legs: _Legs, book: _Book) -> bool:
        """Borrow stock worth the futures not yet matched by a loan, and no more. Whether a
        loan was asked for."""
        market, desk = self.market, self.model.lending
        shares = _borrow_shares(
            self.active[rows],
            legs.slot,
            legs.weight,
            book.owed,
            book.due,
            book.last,
            book.room,
            book.futures,
            book.value,
        )
        ask = (shares >= market.lot) & (book.due == 0)
        if ask.any():
            desk.borrow(legs.account[ask], legs.stock[ask], shares[ask], self.model.date)
            return True
        return False

    def _room_cny(self, legs: _Legs, last: np.ndarray | None = None) -> np.ndarray:
        """(r*H,) CNY the desk can still lend in each short name (``last``: the names' last
        prices, if looked up already)."""
        desk = self.model.lending
        room = np.maximum(desk.supply(self.model.date) - desk.owed_by_stock(), 0)  # (S,)
        last = self.market.last[legs.stock] if last is None else last
        return room[legs.stock] * last / 100.0

    def _orders(self, rows: np.ndarray, legs: _Legs, book: _Book | None = None) -> Orders:
        """:meth:`_order_parts` joined."""
        return Orders.concat(self._order_parts(rows, legs, book))

    def _order_parts(
        self, rows: np.ndarray, legs: _Legs, book: _Book | None = None
    ) -> list[Orders]:
        """Stock orders of the short names (r*H,), then futures orders (r*K,), of ``rows``.

        Stock: sell borrowed shares short; buy back what the futures no longer cover; buy
        in what a recall wants back. Futures lead both ways; stock follows their fills.
        Open: hold futures worth the loans plus this step's lendable capacity (none
        without stock to borrow). Unwind: sell ``speed`` of the position a step. Never
        hold more than the loans that stay open cover (recalls cut the futures too).
        Bids go up to the price of the exit band (basis ``-threshold / 2``) and offers
        down to the entry band (``-threshold``), so the desk never pushes the basis
        through its own bands; futures sold because loans were recalled go at the limit.
        ``book``: what ``decide`` looked up (else it is looked up here).
        """
        market, spec, thr = self.market, self.model.futures, self.threshold
        if book is None:
            book = self._looked_up_again(
                legs,
                _Book(
                    None,
                    None,
                    None,
                    None,
                    market.last[legs.stock],
                    None,
                    self.futures(rows),
                    self.contract_value(),
                ),
            )
            book.room = self._room_cny(legs, book.last)
        instrument = spec.instrument[self.contracts]  # (K,)
        stock_side, stock_price, stock_lots, bought, side, price, lots = _basis_orders(
            self.active[rows],
            legs.slot,
            book.owed,
            book.due,
            book.held,
            book.sellable,
            book.last,
            market.limit_price(legs.stock, 1),
            book.room,
            book.futures,
            book.value,
            self.capital[rows] / self.contracts.size,
            self.cfg.speed,
            np.floor(self.band_ticks(-thr / 2)),
            np.ceil(self.band_ticks(-thr)),
            market.limit_price(instrument, -1),
            market.lot,
        )
        bought_in = float(bought.sum()) / 100.0
        self.buy_ins_cny += bought_in
        self.model.lending.buy_ins_total += bought_in
        return [
            Orders(legs.account, legs.stock, stock_side, stock_price, stock_lots),
            Orders(
                np.repeat(self.accounts[rows], instrument.size),
                np.tile(instrument, rows.size),
                side,
                price,
                lots,
            ),
        ]


@entry
@numba.njit(cache=True, nogil=True)
def _borrow_shares(
    active: np.ndarray,
    slot: np.ndarray,
    weight: np.ndarray,
    owed: np.ndarray,
    due: np.ndarray,
    last: np.ndarray,
    room: np.ndarray,
    futures: np.ndarray,
    value: np.ndarray,
) -> np.ndarray:
    """(r*H,) shares to borrow per short name: the CNY of open legs' futures not yet matched
    by a loan, spread by cap weight, what a full name can't take going to the names with
    room left in its leg. The numpy passes' floats (per-leg sums in name order).

    Args:
        active: (r, K) bool; slot: (r*H,) int64 flat (row, contract) of each short name;
            weight: (r*H,) cap weight within its leg. owed, due: (r*H,) int64 shares on loan
            and recalled; last: (r*H,) int64 fen. room: (r*H,) CNY the desk can still lend.
        futures: (r, K) int64 contracts held; value: (K,) CNY per contract.
    """
    n_rows, n_contracts = futures.shape
    n = slot.shape[0]
    lent = np.zeros(n_rows * n_contracts)  # (r*K,) CNY still on loan
    for j in range(n):
        lent[slot[j]] += (owed[j] - due[j]) * last[j] / 100.0
    need = np.zeros(n_rows * n_contracts)  # (r*K,) CNY of futures not yet matched by a loan
    for i in range(n_rows):
        for c in range(n_contracts):
            if active[i, c]:
                need[i * n_contracts + c] = max(
                    futures[i, c] * value[c] - lent[i * n_contracts + c], 0.0
                )
    first = np.empty(n)  # (r*H,) CNY by cap weight, up to the room
    placed = np.zeros(n_rows * n_contracts)  # (r*K,) CNY of it
    spare = np.zeros(n_rows * n_contracts)  # (r*K,) room left after it
    for j in range(n):
        first[j] = min(need[slot[j]] * weight[j], room[j])
        placed[slot[j]] += first[j]
        spare[slot[j]] += room[j] - first[j]
    shares = np.empty(n)
    for j in range(n):
        k = slot[j]
        share = min(max((need[k] - placed[k]) / max(spare[k], 1e-9), 0.0), 1.0)
        shares[j] = (first[j] + (room[j] - first[j]) * share) * 100.0 / last[j]
    return shares


@entry
@numba.njit(cache=True, nogil=True)
def _basis_orders(
    active: np.ndarray,
    slot: np.ndarray,
    owed: np.ndarray,
    due: np.ndarray,
    held: np.ndarray,
    sellable: np.ndarray,
    last: np.ndarray,
    limit_up: np.ndarray,
    room: np.ndarray,
    futures: np.ndarray,
    value: np.ndarray,
    capital: np.ndarray,
    speed: float,
    bid_band: np.ndarray,
    offer_band: np.ndarray,
    limit_down: np.ndarray,
    lot: int,
) -> tuple[np.ndarray, ...]:
    """The desks' stock and futures orders, in two passes over the short names and one over
    the (row, contract) legs; the floats of the numpy passes they replaced (the per-leg sums
    in name order, as a bincount adds them).

    Args:
        active: (r, K) bool, the trade open; slot: (r*H,) int64 flat (row, contract) of each
            short name. owed, due: (r*H,) int64 shares on loan and recalled.
        held, sellable: (r*H,) int64 shares held, and sellable now; last, limit_up: (r*H,)
            int64 fen, last and limit-up prices. room: (r*H,) CNY the desk can still lend.
        futures: (r, K) int64 contracts held; value: (K,) CNY per contract; capital: (r,)
            CNY of notional per contract leg. bid_band, offer_band: (K,) ticks at the exit
            and entry bands; limit_down: (K,) ticks.

    Returns:
        Stock (side, price, lots) (r*H,) and fen bought in (r*H,), then futures (side,
        price, lots) (r*K,), as ``Orders`` takes them (prices cut to whole fen or ticks).
    """
    n_rows, n_contracts = futures.shape
    lent = np.zeros(n_rows * n_contracts)  # (r*K,) CNY still on loan
    recalled_cny = np.zeros(n_rows * n_contracts)  # (r*K,) CNY recalled
    spare = np.zeros(n_rows * n_contracts)  # (r*K,) CNY the desk can still lend
    for j in range(slot.shape[0]):
        lent[slot[j]] += (owed[j] - due[j]) * last[j] / 100.0
        recalled_cny[slot[j]] += due[j] * last[j] / 100.0
        spare[slot[j]] += room[j]
    # Stock: unwinding, the futures lead; buy back the loans they no longer cover, pro rata.
    n = slot.shape[0]
    stock_side = np.empty(n, np.int8)
    stock_price = np.empty(n, np.int64)
    stock_lots = np.empty(n, np.int64)
    bought = np.empty(n)  # (r*H,) fen
    for j in range(n):
        i, c = divmod(slot[j], n_contracts)
        buy_in = max(due[j] - held[j], 0)  # shares the desk wants back and we lack
        p = np.float64(last[j])
        if active[i, c]:
            cover, sell = 0.0, min(sellable[j], held[j] - due[j])
        else:
            k = slot[j]
            excess = max(lent[k] - futures[i, c] * value[c], 0.0)
            cover, sell = excess / max(lent[k], 1e-9) * max(owed[j] - due[j] - held[j], 0), 0
        bought[j] = buy_in * p
        buy_lots = np.ceil((buy_in + cover) / lot)
        # Short sales may not be priced below the last trade (the uptick rule for
        # securities lending); covers bid a little above it, buy-ins at the limit.
        if buy_lots > 0:
            stock_side[j], stock_lots[j] = 1, np.int64(buy_lots)
            stock_price[j] = limit_up[j] if buy_in > 0 else np.int64(p * (1.0 + NEAR))
        else:
            stock_side[j], stock_lots[j], stock_price[j] = -1, max(sell, 0) // lot, np.int64(p)
    # Futures.
    side = np.empty(n_rows * n_contracts, np.int8)
    price = np.empty(n_rows * n_contracts, np.int64)
    lots = np.empty(n_rows * n_contracts, np.int64)
    for i in range(n_rows):
        for c in range(n_contracts):
            k = i * n_contracts + c
            have = futures[i, c]
            if active[i, c]:
                gap = speed * max(capital[i] - lent[k], 0.0)  # CNY
                want = np.floor((lent[k] + min(gap, spare[k])) / value[c])
            else:
                unwinding = min(np.floor(lent[k] / value[c]), np.floor((1.0 - speed) * have))
                want = max(unwinding, 0.0)
            recalled = recalled_cny[k] > 0
            if recalled:
                want = min(want, np.floor(lent[k] / value[c]))
            trade = want - have
            s = np.int8(np.sign(trade))
            band = bid_band[c] if s > 0 else offer_band[c]
            side[k], lots[k] = s, np.int64(abs(trade))
            price[k] = limit_down[c] if recalled and s < 0 else np.int64(band)
    return stock_side, stock_price, stock_lots, bought, side, price, lots


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


@dataclass
class _Book:
    """What a desk's step reads, per short name (r*H,) unless said: shares ``owed`` and
    recalled (``due``), ``held`` and ``sellable``, ``last`` price (fen), the desk's ``room``
    (CNY it can still lend), ``futures`` (r, K) held and the contracts' ``value`` (K,)."""

    owed: np.ndarray | None
    due: np.ndarray | None
    held: np.ndarray | None
    sellable: np.ndarray | None
    last: np.ndarray
    room: np.ndarray | None
    futures: np.ndarray
    value: np.ndarray


class CarryArbitrageurs(Arbitrageurs):
    """Short futures at a premium, long the same names bought with cash: the mirror trade.

    Buying stock needs no lender, so nothing but capital limits this side, and a premium
    never lasts the way a discount does under a lending curb. A desk opens a contract's
    trade when its annualized basis is above ``threshold`` and unwinds below
    ``threshold / 2``: it offers futures no lower than the exit band and bids no higher
    than the entry band, ``speed`` of the gap to its target a step, and holds the hedge
    names worth what its futures are short, by cap weight, bought and sold a little
    through the last price. Capital is ``carry_capital_bn * scale``, split evenly over the
    contracts, less the futures margin.
    """

    side = 1  # above par: a premium

    def _capital(self, cfg: ArbitrageConfig, scale: float) -> np.ndarray:
        """(n,) CNY of notional per desk: ``carry_capital_bn * scale`` split evenly, less
        the futures margin it must set aside."""
        margin = self.model.config.futures.margin
        return np.full(self.n, cfg.carry_capital_bn * scale * 1e9 / max(self.n, 1)) / (1 + margin)

    def decide_parts(self, rows: np.ndarray) -> list[Orders]:
        """:meth:`decide`'s orders, one batch (not the basis trade's)."""
        return [self.decide(rows)]

    def decide(self, rows: np.ndarray) -> Orders:
        """Open, hold or unwind the trade of ``rows``: futures ``speed`` of the gap to the
        target a step, inside the bands, and the hedge names following the futures held."""
        self._new_step()
        model, market = self.model, self.market
        accounts = self.accounts[rows]
        market.cancel_accounts(accounts)
        if model.futures is None or self.hedge_stock.size == 0:
            return Orders.empty()
        self._open_or_close(rows)
        if self.quiet[rows].all() and not self.active[rows].any():
            return Orders.empty()
        value = self.contract_value()  # (K,)
        have = self.futures(rows)  # (r, K)
        want = np.where(self.active[rows], self._open_position(rows, value), 0.0)  # (r, K)
        side = np.sign(want - have).astype(np.int64)  # (r, K)
        trade = self._lots(rows, np.abs(want - have))  # (r, K)
        instrument = np.asarray(model.futures.instrument)[self.contracts]  # (K,)
        # Bids no higher than the band nearer par's other side, offers no lower than the
        # one further: the desk never pushes the basis through its own bands.
        entry, exit_ = self.side * self.threshold, self.side * self.threshold / 2
        bid, offer = max(entry, exit_), min(entry, exit_)
        band = np.where(side > 0, np.floor(self.band_ticks(bid)), np.ceil(self.band_ticks(offer)))
        futures = Orders(
            np.repeat(accounts, instrument.size),
            np.tile(instrument, rows.size),
            side.ravel(),
            band.ravel(),
            trade.ravel(),
        )
        legs = self._legs(rows)
        last = market.last[legs.stock]
        target = self._stock_target(rows, legs, have, value, last)  # (r*H,) shares
        held, sellable = model.ledger.holding_and_sellable(legs.account, legs.stock)
        gap = target - held
        buy = gap >= market.lot
        lots = np.where(buy, gap // market.lot, np.minimum(-gap, sellable) // market.lot)
        stock_side = np.where(buy, 1, -1)
        price = np.where(buy, last * (1.0 + NEAR), last * (1.0 - NEAR))
        stock = Orders(legs.account, legs.stock, stock_side, price, lots)
        unsettled = (gap < 0) | buy  # (r*H,) a sale waiting (perhaps on T+1) or a buy
        row_unsettled = np.bincount(legs.slot // self.contracts.size, unsettled, rows.size)
        self.quiet[rows] = ~self.active[rows].any(axis=1) & ~have.any(axis=1) & (row_unsettled == 0)
        return Orders.concat([stock.select(stock.lots > 0), futures.select(futures.lots > 0)])

    def _lots(self, rows: np.ndarray, gap: np.ndarray) -> np.ndarray:
        """(r, K) contracts to trade this step: ``speed`` of the ``gap`` (r, K)."""
        return np.ceil(self.cfg.speed * gap)

    def _open_position(self, rows: np.ndarray, value: np.ndarray) -> np.ndarray:
        """(r, K) contracts held while the trade is open: short all the capital allows."""
        return -np.floor(self.capital[rows, None] / self.contracts.size / value[None, :])

    def _stock_target(
        self, rows: np.ndarray, legs: _Legs, have: np.ndarray, value: np.ndarray, last: np.ndarray
    ) -> np.ndarray:
        """(r*H,) shares of the hedge names: worth what the futures ``have`` (r, K) are
        short, by cap weight, at ``last`` (r*H,) fen."""
        short = -have.ravel()[legs.slot] * value[legs.slot % self.contracts.size]  # (r*H,) CNY
        return np.maximum(short, 0.0) * legs.weight * 100.0 / last


class IndexSwitchers(CarryArbitrageurs):
    """Long-only holders of index baskets who switch them into futures at a discount.

    An index fund or an enhanced-index product can hold its index as stock or as futures
    and cash. When a contract trades at a discount the futures are the cheaper way to
    hold it, and the swap needs no lender: sell the stock it owns, buy the futures. So
    these desks, not the arbitrageurs, are what the lending curb leaves to buy a deep
    discount, and their capacity is what they hold. Each desk starts with every member
    of IF's, IC's and IM's indices, by cap weight, worth ``switch_capital_bn * scale``
    split evenly over desks and contracts, and cash for the futures margin. Once the
    basis, smoothed over ``SWITCH_MEMORY_DAYS``, is past the entry band
    (``switch_threshold`` below par: the alpha its stock picking would have earned) it
    buys futures up to the basket's worth at the start, over ``switch_days``
    trading days, and sells the basket's shares as its futures fill; back within half the band
    it sells the futures and buys the shares back. Its exposure to the index stays the
    same throughout.
    """

    side = -1  # below par: a discount
    hedge_names = 1_000_000  # every member of each index: what an index fund holds

    def __init__(self, model, accounts, cfg: ArbitrageConfig, scale: float) -> None:
        super().__init__(model, accounts, cfg, scale, contracts=SWITCH_CONTRACTS)
        self.basket = np.tile(self.hedge_stock, (self.n, 1))  # (n, H) names each desk holds
        self.shares0 = np.zeros((self.n, self.hedge_stock.size))  # (n, H) shares at the start
        self.full = np.zeros((self.n, self.contracts.size))  # (n, K) contracts' worth held
        self.smoothed = np.zeros(self.contracts.size)  # (K,) basis over SWITCH_MEMORY_DAYS

    def begin_day(self) -> None:
        """Smooth each contract's basis at the open over ``SWITCH_MEMORY_DAYS``: a fund
        moves its index between stock and futures on a discount that has lasted, not on
        a session's swing (none while the contracts have no price, after an expiry)."""
        if self.model.futures is None:
            return
        smooth_basis(self.smoothed, self.model.basis()[self.contracts], SWITCH_MEMORY_DAYS)

    def basis_seen(self) -> np.ndarray:
        """(K,) the basis smoothed over ``SWITCH_MEMORY_DAYS``."""
        return self.smoothed

    @property
    def threshold(self) -> float:
        """The discount that pays for the stock picking given up (``switch_threshold``)."""
        return self.cfg.switch_threshold

    def _capital(self, cfg: ArbitrageConfig, scale: float) -> np.ndarray:
        """(n,) CNY of index baskets per desk."""
        return np.full(self.n, cfg.switch_capital_bn * scale * 1e9 / max(self.n, 1))

    def basket_value(self) -> np.ndarray:
        """(n, H) CNY of each hedge name each desk is endowed with."""
        per_contract = self.capital[:, None] / self.contracts.size  # (n, 1)
        return per_contract * self.hedge_weight[None, :]

    def adopt_holdings(self) -> None:
        """Take the endowed basket as the exposure to keep: its shares, and its worth in
        contracts of each index at the first prices."""
        accounts = np.repeat(self.accounts, self.hedge_stock.size)
        held = self.model.ledger.holding(accounts, self.basket.ravel())
        self.shares0 = held.reshape(self.basket.shape).astype(np.float64)
        worth = self.shares0 * self.market.last[self.hedge_stock][None, :] / 100.0  # (n, H)
        legs = np.stack(
            [worth[:, self.hedge_leg == k].sum(axis=1) for k in range(self.contracts.size)],
            axis=1,
        )  # (n, K) CNY
        self.full = np.floor(legs / self.contract_value()[None, :])

    def _lots(self, rows: np.ndarray, gap: np.ndarray) -> np.ndarray:
        """(r, K) contracts to trade this step: a fund of this size switches over
        ``switch_days``, an even share of its whole basket a step, not of the gap."""
        pace = self.full[rows] / (self.cfg.switch_days * self.model.steps_per_day)
        return np.ceil(np.minimum(gap, pace))

    def _open_position(self, rows: np.ndarray, value: np.ndarray) -> np.ndarray:
        """(r, K) contracts held while switched: the basket's worth at the start."""
        return self.full[rows]

    def _stock_target(
        self, rows: np.ndarray, legs: _Legs, have: np.ndarray, value: np.ndarray, last: np.ndarray
    ) -> np.ndarray:
        """(r*H,) shares: the start's basket less the share of it the futures ``have``
        (r, K) now hold."""
        switched = np.clip(have / np.maximum(self.full[rows], 1.0), 0.0, 1.0)  # (r, K)
        return (1.0 - switched.ravel()[legs.slot]) * self.shares0[rows].ravel()
