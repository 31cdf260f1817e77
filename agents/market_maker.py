"""Market makers: ladders of resting limit orders whose depth is finite and recovers slowly.

A maker's ladder has ``rungs`` price levels a side, the k-th one ``k * spacing``
from a reference price and holding depth proportional to k: latent liquidity
that grows linearly away from the price, which is what makes the impact of a
meta-order grow like the square root of its size. What the market takes is gone
until it is replenished, at ``replenish`` of the gap per step. A rung priced
beyond the day's limits is not sent: the exchange would reject it.

Stock makers thin out when recent volatility is high, lean against inventory,
and move their morning quotes by the overnight news about fundamental value,
which is public. Futures makers quote around the index and lean against the
inventory they can carry: persistent one-sided hedging pushes the futures away
from the index until someone with capital takes the other side. With
``futures.mm_long_needs_lending`` what they can carry long follows the lendable
supply, since a long futures book is hedged with borrowed stock.
"""

from __future__ import annotations

import numba
import numpy as np

from agents.base import ArrayAgent, Population
from model.aot import entry
from model.config import FuturesConfig, MarketMakerConfig
from model.orders import Orders


class MarketMaker(ArrayAgent):
    """One market maker: quotes the instruments assigned to it."""

    @property
    def stocks(self) -> np.ndarray:
        """Instruments this maker quotes."""
        pop = self.population
        return pop.instrument[pop.maker_of == self.row]


class LadderMakers(Population):
    """Makers quoting ladders on a set of instruments; subclasses say where and how deep."""

    agent_class = MarketMaker

    def __init__(
        self,
        model,
        accounts,
        instrument: np.ndarray,
        maker_of: np.ndarray,
        *,
        rungs: int,
        spacing: float,
        replenish: float,
    ) -> None:
        super().__init__(model, accounts)
        self.instrument = np.asarray(instrument, dtype=np.int64)  # (Q,) instruments quoted
        self.maker_of = np.asarray(maker_of, dtype=np.int64)  # (Q,) row quoting each one
        self.rung = np.arange(1, rungs + 1, dtype=np.float64)  # (K,)
        self.spacing = spacing
        self.replenish = replenish
        self.depth = np.zeros((self.instrument.shape[0], 2))  # (Q, 2) lots: [bid, ask]
        self._taken_at: object = None  # the auction whose fills are off ``depth`` already

    def fill_depth(self) -> None:
        """Start with full ladders."""
        self.depth[:] = self.target_depth(np.arange(self.instrument.shape[0]))[:, None]

    # -- what subclasses define ------------------------------------------------------------
    def target_depth(self, q: np.ndarray) -> np.ndarray:
        """(n,) lots a side wanted on the book for quoted instruments ``q``."""
        raise NotImplementedError

    def reference(self, q: np.ndarray, accounts: np.ndarray) -> np.ndarray:
        """(n,) price the ladder is centred on."""
        raise NotImplementedError

    def side_scale(self, q: np.ndarray, accounts: np.ndarray) -> np.ndarray:
        """(n, 2) share of the bid and ask depth actually shown; 1 by default."""
        return np.ones((q.shape[0], 2))

    def taken(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(account, instrument, signed lots) of every stock fill of the last auction, every
        account's, not only the makers' (``market.last_fills``, shares made lots):
        :func:`_taken_off` keeps the makers' own. Empty before the first auction."""
        account, stock, signed, _ = self.market.last_fills
        return account, stock, signed // self.market.lot

    # -- the rules ------------------------------------------------------------------------
    def begin_day(self) -> None:
        """Yesterday's book has expired: what the close's auction took comes off the depth,
        then the night's replenishment goes on (the close's takings were refilled a step
        late, at the morning's first decision: the open was short by ``replenish * (1 -
        replenish)`` of them)."""
        self.depth = self._fills_off(np.ones(self.n, dtype=bool), slice(None))
        self._taken_at = self.market.last_clearing  # so the morning's decisions skip them
        target = self.target_depth(np.arange(self.instrument.shape[0]))
        self.depth += self.replenish * (target[:, None] - self.depth)

    def _fills_off(self, chosen: np.ndarray, at: slice | np.ndarray) -> np.ndarray:
        """(n, 2) depth of the quoted instruments ``at`` less what the last auction's fills
        of the ``chosen`` (makers,) makers took, once an auction: the close's fills come
        off at the open (:meth:`begin_day`), so the morning's decisions find them gone."""
        depth = self.depth[at]
        if self.market.last_clearing is self._taken_at:
            return depth
        taken = _taken_off(*self.taken(), self.accounts[0], chosen, self.instrument)
        return np.maximum(depth - taken[at], 0.0)

    def decide(self, rows: np.ndarray) -> Orders:
        market = self.market
        chosen = np.zeros(self.n, dtype=bool)  # (makers,) which are among rows
        chosen[rows] = True
        q = np.flatnonzero(chosen[self.maker_of])  # (n,) quoted instruments of rows
        # When every instrument is quoted (all rows decide), q is 0 .. Q-1 and the gathers
        # over it are slices: a (Q, 2) fancy gather or scatter costs some 25 us.
        every = q.shape[0] == self.instrument.shape[0]
        at = slice(None) if every else q
        instrument = self.instrument[at]
        accounts = self.accounts[self.maker_of[at]]
        market.cancel_accounts(self.take(self.accounts, rows))  # quoting nothing: no orders

        # What survived the last auction is still "on the book": take fills off, replenish.
        depth = self._fills_off(chosen, at)  # (n, 2) the rows' depth, scattered back once
        depth += self.replenish * (self.target_depth(q)[:, None] - depth)
        self.depth[at] = depth

        ref = self.reference(q, accounts)  # (n,)
        k = self.rung  # (K,)
        shown = depth * self.side_scale(q, accounts)  # (n, 2)
        grid = market.grid
        return Orders(
            *ladder_orders(
                accounts,
                instrument,
                ref,
                shown,
                1.0 - self.spacing * k,
                1.0 + self.spacing * k,
                k / self.rung.sum(),
                grid.lower,
                grid.upper,
            )
        )


@entry
@numba.njit(cache=True, nogil=True)
def _taken_off(
    account: np.ndarray,
    traded: np.ndarray,
    signed: np.ndarray,
    first_account: int,
    chosen: np.ndarray,
    instrument: np.ndarray,
) -> np.ndarray:
    """(Q, 2) lots taken off each quoted instrument's bid and ask by the fills (m,)
    ``account``, ``traded`` instrument and ``signed`` lots (> 0: the maker bought, its bid
    was hit) of the ``chosen`` (n,) makers, whose accounts are ``first_account ..
    first_account + n - 1``; ``instrument`` (Q,) is sorted.

    One pass where numpy took a mask, a search, a flat index and a weighted bincount over
    the fills; the lots are added in fill order as the bincount's floats, so the sums are
    the same. Quoted instruments that run one by one (every stock; the three contracts)
    find a fill's slot by a subtraction instead of a bisection of ``instrument`` (some
    4,000 of the stock makers' fills a step, about 100 us in a run).
    """
    n_quoted = instrument.shape[0]
    taken = np.zeros((n_quoted, 2))
    n = chosen.shape[0]
    first = instrument[0] if n_quoted else 0
    in_a_row = n_quoted > 0 and instrument[n_quoted - 1] - first + 1 == n_quoted
    for i in range(account.shape[0]):
        maker = account[i] - first_account
        if maker < 0 or maker >= n or not chosen[maker]:
            continue
        slot = traded[i] - first if in_a_row else np.searchsorted(instrument, traded[i])
        taken[slot, 1 if signed[i] < 0 else 0] += abs(signed[i])
    return taken


@entry
@numba.njit(cache=True, nogil=True)
def ladder_orders(
    accounts: np.ndarray,
    instrument: np.ndarray,
    ref: np.ndarray,
    shown: np.ndarray,
    bid_factor: np.ndarray,
    ask_factor: np.ndarray,
    weight: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Order columns of the ladders: all bids (instrument by instrument, rung by rung),
    then all asks in the same order.

    One compiled pass writes the five typed columns; built with numpy, the (n, K) price
    and lot tables, their concatenations and the casts cost about twice as much. Rung j
    of instrument i bids ``floor(ref * bid_factor[j])`` for ``floor(shown[i, 0] *
    weight[j])`` lots and asks ``ceil(ref * ask_factor[j])`` for ``floor(shown[i, 1] *
    weight[j])``: the same float operations as the numpy expressions, so the same values.
    A bid rung priced below the day's ``lower`` limit or an ask rung above ``upper`` ((I,)
    fen or ticks, by instrument) gets no lots: the exchange rejects an order priced beyond
    the limits, and holding it within them would stack the deep rungs at the limit price.
    """
    n, n_rungs = ref.shape[0], weight.shape[0]
    m = n * n_rungs  # orders a side
    account = np.empty(2 * m, dtype=np.int64)
    stock = np.empty(2 * m, dtype=np.int64)
    side = np.empty(2 * m, dtype=np.int8)
    price = np.empty(2 * m, dtype=np.int64)
    lots = np.empty(2 * m, dtype=np.int64)
    for i in range(n):
        for j in range(n_rungs):
            bid = i * n_rungs + j
            ask = m + bid
            account[bid] = account[ask] = accounts[i]
            stock[bid] = stock[ask] = instrument[i]
            side[bid] = 1
            side[ask] = -1
            price[bid] = np.int64(np.floor(ref[i] * bid_factor[j]))
            price[ask] = np.int64(np.ceil(ref[i] * ask_factor[j]))
            lots[bid] = np.int64(np.floor(shown[i, 0] * weight[j]))
            lots[ask] = np.int64(np.floor(shown[i, 1] * weight[j]))
            if price[bid] < lower[instrument[i]]:
                lots[bid] = 0
            if price[ask] > upper[instrument[i]]:
                lots[ask] = 0
    return account, stock, side, price, lots


class MarketMakers(LadderMakers):
    """Stock makers: one per stock, holding inventory in it."""

    def __init__(self, model, accounts, cfg: MarketMakerConfig, maker_of: np.ndarray) -> None:
        n_stocks = maker_of.shape[0]
        super().__init__(
            model,
            accounts,
            np.arange(n_stocks),
            maker_of,
            rungs=cfg.ladder_levels,
            spacing=cfg.ladder_spacing,
            replenish=cfg.replenish,
        )
        self.cfg = cfg
        self.inventory0 = np.zeros(n_stocks, dtype=np.int64)  # (S,) shares, target
        self.news = np.zeros(n_stocks)  # (S,) log value change not yet in the quotes
        self.seen_value = model.fundamentals.log_value.copy()  # (S,)
        # Every stock's (maker, stock) holding key is fixed: the order that sorts them, so the
        # makers' inventory is looked up walking their part of the ledger one way.
        keys = self.accounts[self.maker_of] * n_stocks + np.arange(n_stocks)
        self._key_order = np.argsort(keys, kind="stable")  # (S,)
        self._key_order.flags.writeable = False
        self.fill_depth()

    def target_depth(self, q: np.ndarray) -> np.ndarray:
        """Depth a side in lots, a share of the cap, less when volatility runs high."""
        market, c = self.market, self.cfg
        lots = c.depth_pct_cap * market.caps()[q] * 100.0 / (market.last[q] * market.lot)
        return lots / (1.0 + c.vol_aversion * market.vol_stress()[q])

    def begin_day(self) -> None:
        super().begin_day()
        value = self.model.fundamentals.log_value
        self.news = value - self.seen_value
        self.seen_value = value.copy()

    def reference(self, q: np.ndarray, accounts: np.ndarray) -> np.ndarray:
        """Last price, moved by unpriced news, leaning against inventory.

        When every stock is quoted (as the vectorized engine asks), the holdings are looked
        up in key order: in stock order the keys jump between the makers' accounts, and
        each search gallops across their part of the table (in a run about 120 us a step).
        """
        ledger = self.market.ledger
        if q.shape[0] == self.instrument.shape[0]:
            order = self._key_order
            held = np.empty(q.shape[0], np.int64)
            held[order] = ledger.holding(accounts[order], q[order])
        else:
            held = ledger.holding(accounts, q)
        lean = np.clip(held / np.maximum(self.inventory0[q], 1) - 1.0, -1.0, 1.0)
        ref = self.market.last[q] * np.exp(self.news[q] - self.cfg.inventory_skew * lean)
        self.news[q] = 0.0
        return ref


OVER_LIMIT_BID = 0.1  # share of depth a futures maker past its long limit still bids


class FuturesMakers(LadderMakers):
    """Futures makers: one per contract, quoting around the index, lean on inventory."""

    def __init__(self, model, accounts, cfg: FuturesConfig, scale: float) -> None:
        spec = model.futures
        super().__init__(
            model,
            accounts,
            spec.instrument,
            np.arange(len(spec.instrument)),
            rungs=10,
            spacing=cfg.mm_spacing,
            replenish=cfg.mm_replenish,
        )
        self.cfg = cfg
        self.depth_cny = cfg.mm_depth_bn * 1e9 * scale
        self.limit_cny = cfg.mm_inventory_limit_bn * 1e9 * scale
        self._supply0: float | None = None  # lendable shares on the first day
        self.fill_depth()

    def _contract_value(self, q: np.ndarray) -> np.ndarray:
        return self.model.futures.contract_value(self.model.indices.level)[q]

    def target_depth(self, q: np.ndarray) -> np.ndarray:
        return self.depth_cny / self._contract_value(q)

    def _long_limit(self) -> float:
        """CNY of long inventory the makers carry: the limit, or with ``mm_long_needs_lending``
        the limit times today's lendable supply over the first day's. A maker long futures
        hedges by shorting the index with borrowed stock, so the lending curb cuts how long
        it can be; short futures are hedged with bought stock, which needs no lender."""
        lending = self.model.lending
        if not self.cfg.mm_long_needs_lending or lending is None:
            return self.limit_cny
        if self._supply0 is None:
            self._supply0 = float(lending.supply(self.model.days[0]).sum())
        now = float(lending.supply(self.model.date).sum())
        return self.limit_cny * now / max(self._supply0, 1.0)

    def _lean(self, q: np.ndarray, accounts: np.ndarray) -> np.ndarray:
        held = self.market.ledger.futures_position(accounts)[np.arange(q.shape[0]), q]
        value = held * self._contract_value(q)
        limit = np.where(value > 0, self._long_limit(), self.limit_cny)
        # Clipped before dividing, so a vanishing limit gives full lean, not an overflow;
        # no limit at all (no stock left to borrow) is full lean too.
        return np.divide(np.clip(value, -limit, limit), limit, out=np.sign(value), where=limit > 0)

    def reference(self, q: np.ndarray, accounts: np.ndarray) -> np.ndarray:
        """The index in ticks, shaded down when long (to sell) and up when short."""
        spec = self.model.futures
        index_ticks = self.model.indices.level[spec.underlying[q]] / 0.2
        return index_ticks * np.exp(-self.cfg.mm_inventory_skew * self._lean(q, accounts))

    def side_scale(self, q: np.ndarray, accounts: np.ndarray) -> np.ndarray:
        """No more bids once the inventory limit is reached long, no more asks short.

        With ``mm_long_needs_lending`` a maker at or past its long limit (which the
        lending curb cuts, often below what it holds) still bids ``OVER_LIMIT_BID`` of its
        depth, at its fully leaned price: it cannot hedge more, but it does not leave the
        futures without a bid (once no one bid, a day's futures sales ran the price to the
        limit).
        """
        lean = self._lean(q, accounts)
        bid = 1.0 - np.maximum(lean, 0.0)
        if self.cfg.mm_long_needs_lending:
            bid = np.maximum(bid, OVER_LIMIT_BID)
        return np.stack([bid, 1.0 + np.minimum(lean, 0.0)], axis=1)

    def taken(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(account, instrument, signed contracts) of every futures fill of the last auction,
        every account's (``market.futures_fills``, contracts numbered as instruments, after
        the stocks): :func:`_taken_off` keeps the makers' own. Empty before the first auction."""
        account, contract, signed = self.market.futures_fills
        return account, contract + self.market.n_stocks, signed
