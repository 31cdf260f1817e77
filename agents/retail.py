"""Retail chasers: small investors on a social graph who chase winners and panic on losses.

China's retail investors hold a large share of the small-cap float and trade it
actively. They watch what their friends do (herding along a social graph), pile
into small caps that have run up (chasing), and sell into a fall once their own
account is well below its peak (panic). Together these turn a small-cap decline
into a self-feeding unwind: sellers make their neighbours sell next step, and
falling prices deepen everyone's drawdown.

Each step an investor is active with a small probability, higher when the
market is moving. An active investor's score is ``herding * neighbours' last
action + (1 - herding) * own signal``, where the own signal is ``chase`` times
the 20-day return of the few small caps it looks at minus ``panic`` times its
own drawdown, plus a pull towards holding half its wealth in cash (``REBALANCE``);
``tanh`` of the score tilts a coin between buying and selling.
Neighbour influence is one sparse matrix product over the row-normalized
adjacency. Holdings are sparse in the ledger: a handful of stocks each.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import TYPE_CHECKING

import networkx as nx
import numba
import numpy as np
import scipy.sparse as sp

from agents.base import ArrayAgent, Population
from agents.sampling import choice
from agents.social import barabasi_albert_edges, row_normalized_adjacency_from_edges, to_networkx
from model.aot import entry
from model.config import RetailConfig
from model.orders import CALM, PANIC, Orders, market_order_price

if TYPE_CHECKING:
    from model.market_model import MarketModel

CASH_SHARE = 0.5  # share of each investor's capital that starts as cash (the rest in stock)
WEALTH_TAIL = 1.5  # Pareto exponent of the wealth distribution (a classic wealth tail)
SIZE_TILT = 1.0  # weight of size_z (standardized -log cap) in which stocks investors look at
LOOKED_AT = 3  # stocks an active investor looks at in a step
RETURN_DAYS = 20  # look-back of the return investors chase
PANIC_DRAWDOWN = 0.10  # drawdown beyond which an investor sells whole positions at market
MARKET_ORDER_SHARE = 0.5  # share of calm orders sent as market orders
LIMIT_OFFSET = 0.005  # mean relative distance of a limit order from the last price
MAX_ATTENTION = 3.0  # cap on the activity multiplier from market volatility
_NO_ROWS = np.zeros(0, dtype=np.int64)  # no rows picked (read-only)
_NO_ROWS.flags.writeable = False


REBALANCE = 4.0  # pull of the buy odds towards a half-cash portfolio


class RetailChaser(ArrayAgent):
    """One retail investor."""


def draw_capital(cfg: RetailConfig, scale: float, rng: np.random.Generator) -> np.ndarray:
    """(n,) capital in CNY: ``capital_bn * scale`` bn split with a Pareto wealth tail.

    A few rich investors hold a large share of retail money, which is why their
    decisions (and the neighbours who copy them) weigh on prices.
    """
    weight = rng.pareto(WEALTH_TAIL, size=cfg.n_agents) + 1.0  # (n,)
    return cfg.capital_bn * scale * 1e9 * weight / max(weight.sum(), 1e-12)


def row_normalized_adjacency(graph: nx.Graph, n: int) -> sp.csr_array:
    """(n, n) CSR adjacency whose rows sum to one (zero rows for isolated nodes).

    Multiplying it by an (n,) vector gives each node's neighbour average in one
    sparse product, so herding costs O(edges) rather than a loop over agents.
    """
    if n == 0:
        return sp.csr_array((0, 0), dtype=np.float64)
    adjacency = nx.to_scipy_sparse_array(graph, nodelist=range(n), dtype=np.float64, format="csr")
    degree = np.asarray(adjacency.sum(axis=1)).ravel()  # (n,)
    inverse = np.divide(1.0, degree, out=np.zeros(n), where=degree > 0)
    return sp.csr_array(sp.diags_array(inverse) @ adjacency)


@numba.njit(cache=True, nogil=True)
def _row_products(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, rows: np.ndarray, x: np.ndarray
) -> np.ndarray:
    """(r,) ``(A @ x)[rows]`` of a CSR matrix ``A`` (indptr, indices, data) without a copy.

    Each row is summed in storage order from 0.0, as scipy's CSR product does, so the
    results are the same to the bit.
    """
    out = np.empty(rows.shape[0])
    for i in range(rows.shape[0]):
        total = 0.0
        for j in range(indptr[rows[i]], indptr[rows[i] + 1]):
            total += data[j] * x[indices[j]]
        out[i] = total
    return out


@entry
@numba.njit(cache=True, nogil=True)
def _neighbour_means(
    indptr: np.ndarray, neighbour: np.ndarray, rows: np.ndarray, x: np.ndarray
) -> np.ndarray:
    """(r,) :func:`_row_products` of a row-normalized graph's adjacency, whose row ``i``
    holds ``1.0 / degree`` at each of its columns ``neighbour[indptr[i]:indptr[i + 1]]``.

    The same products (``(1.0 / degree) * x[j]``, ``x`` (n,) as float64; the division is
    IEEE's, as numpy's) summed in the same order: the same bits. But only the row's
    bounds and its int32 columns are read, not a float per entry: in a run the rows are
    out of cache, and what is fetched is most of the time.
    """
    out = np.empty(rows.shape[0])
    for i in range(rows.shape[0]):
        r = rows[i]
        start, end = indptr[r], indptr[r + 1]
        weight = 1.0 / (end - start) if end > start else 0.0
        total = 0.0
        for j in range(start, end):
            total += weight * np.float64(x[neighbour[j]])
        out[i] = total
    return out


def neighbour_lists(adjacency: sp.csr_array) -> np.ndarray | None:
    """(nnz,) int32 columns of a CSR ``adjacency`` (n, n) for :func:`_neighbour_means`: when
    each row holds exactly ``1.0 / its number of entries`` (a row-normalized unweighted
    graph, as :func:`row_normalized_adjacency` makes it); None otherwise."""
    n = adjacency.shape[0]
    counts = np.diff(adjacency.indptr)  # (n,)
    with np.errstate(divide="ignore"):
        weight = 1.0 / counts  # (n,) inf for isolated rows, which hold no entry
    if n > np.iinfo(np.int32).max or not np.array_equal(adjacency.data, np.repeat(weight, counts)):
        return None
    return adjacency.indices.astype(np.int32)


def attachments(degree: int) -> int:
    """Edges each new node brings in a Barabasi-Albert graph of mean degree about ``degree``."""
    return max((degree + 1) // 2, 1)


@entry
@numba.njit(cache=True, nogil=True)
def _mark_rows(
    rows: np.ndarray,
    accounts: np.ndarray,
    cash: np.ndarray,
    held_fen: np.ndarray,
    wealth: np.ndarray,
    peak_wealth: np.ndarray,
    panicking: np.ndarray,
) -> None:
    """Wealth (CNY) of ``rows`` (r,) from their accounts' cash (A,) and holdings (r,) fen,
    their new peaks, and whether their drawdown exceeds ``PANIC_DRAWDOWN``, in place.

    The arithmetic of ``(max(cash, 0) + held) / 100``, ``np.maximum`` and
    :attr:`RetailChasers.drawdown`, row by row: the same floats.
    """
    for i in range(rows.shape[0]):
        r = rows[i]
        w = (max(cash[accounts[i]], 0) + held_fen[i]) / 100.0
        wealth[r] = w
        peak = peak_wealth[r] if peak_wealth[r] >= w else w
        peak_wealth[r] = peak
        panicking[r] = 1.0 - w / max(peak, 1e-9) > PANIC_DRAWDOWN


@entry
@numba.njit(cache=True, nogil=True)
def _scores(
    looked: np.ndarray,
    ret20: np.ndarray,
    neighbours: np.ndarray,
    accounts: np.ndarray,
    cash: np.ndarray,
    wealth: np.ndarray,
    peak_wealth: np.ndarray,
    rows: np.ndarray,
    chase: float,
    panic: float,
    herding: float,
) -> np.ndarray:
    """(r,) buy score of ``rows`` (r,): herding on ``neighbours`` (r,) and each one's own
    view, which chases the mean 20-day return (``ret20``, (S,)) of the (r, L) stocks it
    ``looked`` at, fears its drawdown and pulls towards half its wealth in cash.

    One pass for what were a dozen numpy passes over the active rows, with their
    arithmetic in the same order: the same floats. (``tanh`` stays with numpy, whose
    own implementation rounds differently from the C library's.)
    """
    score = np.empty(rows.shape[0])
    for i in range(rows.shape[0]):
        w, peak = wealth[rows[i]], max(peak_wealth[rows[i]], 1e-9)
        drawdown = min(max(1.0 - w / peak, 0.0), 1.0)
        total = 0.0
        for j in range(looked.shape[1]):
            total += ret20[looked[i, j]]
        own = chase * (total / looked.shape[1]) - panic * drawdown
        cash_share = max(cash[accounts[i]], 0) / 100.0
        own += REBALANCE * (cash_share / max(w, 1.0) - 0.5)
        score[i] = herding * neighbours[i] + (1.0 - herding) * own
    return score


@entry
@numba.njit(cache=True, nogil=True)
def _retail_orders(
    rows: np.ndarray,
    accounts: np.ndarray,
    buy: np.ndarray,
    looked: np.ndarray,
    gumbel: np.ndarray,
    pick_u: np.ndarray,
    limit_u: np.ndarray,
    offset: np.ndarray,
    slot: np.ndarray,
    h_stock: np.ndarray,
    h_sellable: np.ndarray,
    ret20: np.ndarray,
    cash: np.ndarray,
    wealth: np.ndarray,
    panicking: np.ndarray,
    last: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    chase: float,
    holdings: int,
    lot: int,
    action: np.ndarray,
    selling: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The orders of the active ``rows`` (r,), given their draws; ``action`` and
    ``selling`` (n,) of the rows are written in place.

    A buyer picks among the (r, L) ``looked`` at stocks by softmax of ``chase`` times
    the 20-day return (Gumbel-max over ``gumbel`` (r, L)), unless its portfolio is full
    (``holdings`` stocks): then it adds to one of its positions. A seller picks one of
    its positions with whole lots sellable today and sells all of it when panicking or
    down to one lot, else half (rounded up). Both pick a position with the same
    uniform ``pick_u`` (r,). Prices sit ``offset`` (r,) from the last price (buyers
    below, sellers above) or, for a share of the calm (``limit_u``) and every
    panicking seller, as a market order: ``MARKET_ORDER_REACH`` through the last
    price, within the day's limits. A buy is worth about what a sale of half a
    position brings (wealth over ``4 * holdings``), or the cash there is.

    Positions come as ``slot`` (ascending, into ``rows``), ``h_stock``, ``h_sellable``
    (p,). The numpy rules these replace are kept in ``tests/test_retail.py``, which
    holds this pass to them.

    Returns:
        (account, stock, side, price, lots, duress) of the orders sent: those with lots;
        ``duress`` (int8) is ``PANIC`` for the panicking sellers', whose fills the model
        counts as panic sales, else ``CALM``.
    """
    r = rows.shape[0]
    out_stock = np.empty(r, np.int64)
    out_side = np.empty(r, np.int8)
    out_price = np.empty(r, np.int64)
    out_lots = np.empty(r, np.int64)
    out_duress = np.empty(r, np.int8)
    sent = np.zeros(r, np.bool_)
    n_pos, lo = slot.shape[0], 0  # positions; the row's first
    for i in range(r):
        while lo < n_pos and slot[lo] < i:
            lo += 1
        hi, n_ok = lo, 0  # the row's positions are lo .. hi - 1, n_ok sellable
        while hi < n_pos and slot[hi] == i:
            n_ok += h_sellable[hi] >= lot
            hi += 1
        count = hi - lo

        # Buy: the best looked-at stock by chase plus Gumbel noise (the first best),
        # or, with a full portfolio, one of the positions.
        best, best_j = -np.inf, 0
        for j in range(looked.shape[1]):
            value = chase * ret20[looked[i, j]] + gumbel[i, j]
            if value > best:
                best, best_j = value, j
        stock_buy = looked[i, best_j]
        if count >= holdings:
            stock_buy = h_stock[lo + np.int64(np.floor(pick_u[i] * count))]

        # Sell: the k-th of the row's positions with whole lots sellable today, if any.
        stock_sell, sell_lots = 0, 0
        if n_ok > 0:
            k, p = np.int64(np.floor(pick_u[i] * n_ok)), lo
            while h_sellable[p] < lot or k > 0:
                k -= h_sellable[p] >= lot
                p += 1
            stock_sell, sell_lots = h_stock[p], h_sellable[p] // lot
        if not (panicking[rows[i]] or sell_lots <= 1):
            sell_lots = -(-sell_lots // 2)

        side = 1 if buy[i] else -1
        s = stock_buy if buy[i] else stock_sell
        near = min(max(np.int64(np.rint(last[s] * np.exp(-side * offset[i]))), lower[s]), upper[s])
        market = limit_u[i] < MARKET_ORDER_SHARE or (panicking[rows[i]] and side < 0)
        price = market_order_price(last[s], side, lower[s], upper[s]) if market else near
        cash_fen = max(cash[accounts[i]], 0)
        budget = min(float(cash_fen), wealth[rows[i]] * 100.0 / (4 * holdings))
        lots = np.int64(np.floor(budget / (price * lot))) if buy[i] else sell_lots
        sent[i] = lots > 0
        action[rows[i]] = side if sent[i] else 0
        selling[rows[i]] = sent[i] and side < 0
        out_stock[i], out_side[i], out_price[i], out_lots[i] = s, side, price, lots
        out_duress[i] = PANIC if panicking[rows[i]] and side < 0 else CALM
    keep = np.flatnonzero(sent)
    return (
        accounts[keep], out_stock[keep], out_side[keep], out_price[keep], out_lots[keep],
        out_duress[keep],
    )  # fmt: skip


def social_graph(n: int, degree: int, seed: int) -> nx.Graph:
    """Barabasi-Albert graph on ``n`` nodes with mean degree about ``degree``.

    Preferential attachment gives a few hubs (influencers) with many followers,
    which is how stock tips spread among retail investors. (The population builds
    the same graph from edge arrays: :mod:`agents.social`.)
    """
    m = attachments(degree)
    if n <= m:
        return nx.complete_graph(n)
    return nx.barabasi_albert_graph(n, m, seed=seed)


class RetailChasers(Population):
    """Retail investors on a social graph: state arrays, one row per investor.

    Args:
        model: the market model (its generator seeds the graph and all draws).
        accounts: (n,) ledger accounts, ascending, opened with
            :meth:`initial_cash_fen` so each holds ``CASH_SHARE`` of its capital.
        cfg: the ``retail`` config section.
        scale: ``n_stocks / 5000``; the capital of ``cfg`` is given at full scale.
    """

    agent_class = RetailChaser

    def __init__(
        self, model: MarketModel, accounts: np.ndarray, cfg: RetailConfig, scale: float
    ) -> None:
        super().__init__(model, accounts)
        self.cfg = cfg
        self.scale = scale
        n, n_stocks = self.n, model.universe.n
        self.capital = model.ledger.cash[self.accounts] / 100.0 / CASH_SHARE  # (n,) CNY
        # The graph of social_graph(n, cfg.degree, seed), as edges: networkx's object is
        # built only if something asks for ``graph`` (a run needs only the adjacency).
        m, seed = attachments(cfg.degree), int(self.rng.integers(2**31))
        self._graph: nx.Graph | None = None
        # The adjacency's int32 columns (neighbour_lists) and the matrix they are of.
        self._neighbours: tuple[sp.csr_array | None, np.ndarray | None] = (None, None)
        self._edges = np.zeros((0, 2), dtype=np.int64)  # (E, 2) in networkx's order
        if n <= m:
            self.use_graph(nx.complete_graph(n))
        else:
            self._edges = barabasi_albert_edges(n, m, seed)
            # (n, n) CSR, rows sum to 1
            self.adjacency = row_normalized_adjacency_from_edges(n, self._edges)
        self.wealth = np.zeros(n)  # (n,) CNY at last prices, as of the last decision
        self.peak_wealth = np.zeros(n)  # (n,) CNY, highest wealth seen (for the drawdown)
        self.last_action = np.zeros(n, dtype=np.int8)  # (n,) +1 sent a buy, -1 a sell, last step
        self.action = np.zeros(n, dtype=np.int8)  # (n,) the same, this step (so far)
        self.selling = np.zeros(n, dtype=bool)  # (n,) sent a sell order this step
        self.panicking = np.zeros(n, dtype=bool)  # (n,) drawdown beyond PANIC_DRAWDOWN
        self.ret20 = np.zeros(n_stocks)  # (S,) log return over the last RETURN_DAYS closes
        self.closes: deque[np.ndarray] = deque(maxlen=RETURN_DAYS + 1)  # (S,) fen each
        self._look_weights: np.ndarray | None = None  # (S,) see :meth:`look_weights`

    # -- set-up ---------------------------------------------------------------------------
    @staticmethod
    def initial_cash_fen(cfg: RetailConfig, scale: float, rng: np.random.Generator) -> np.ndarray:
        """(n,) fen to open the accounts with: ``CASH_SHARE`` of each drawn capital."""
        return np.rint(draw_capital(cfg, scale, rng) * CASH_SHARE * 100.0).astype(np.int64)

    @property
    def graph(self) -> nx.Graph:
        """The social graph as a ``nx.Graph``, built from the edges at first use."""
        if self._graph is None:
            self._graph = to_networkx(self.n, attachments(self.cfg.degree), self._edges)
        return self._graph

    def use_graph(self, graph: nx.Graph) -> None:
        """Replace the social graph (nodes ``0..n-1``), e.g. a hand-built one in tests."""
        self._graph = graph
        self.adjacency = row_normalized_adjacency(graph, self.n)

    def look_weights(self) -> np.ndarray:
        """(S,) probabilities of looking at each stock: small caps draw the eye.

        A function of the universe's sizes alone, which never change: worked out at first
        use and kept (read-only), where every step's decision worked it out again.
        """
        if self._look_weights is None:
            z = SIZE_TILT * self.model.universe.size_z
            w = np.exp(z - z.max())
            self._look_weights = w / w.sum()
            self._look_weights.flags.writeable = False
        return self._look_weights

    def endow(self, float_lots: np.ndarray, lot: int) -> np.ndarray:
        """Hand each investor ``cfg.holdings`` small caps worth its non-cash capital.

        Picks are tilted to small caps (no return history exists before trading).
        Where retail demand for a stock exceeds ``float_lots`` (what is left of its
        float), every allotment in it is scaled down, so retail never gets more.

        Returns:
            (S,) lots handed out per stock.
        """
        n_stocks = self.model.universe.n
        stock = self._distinct_picks(min(self.cfg.holdings, n_stocks))  # (n, k)
        k = stock.shape[1]
        value_fen = (self.capital * (1.0 - CASH_SHARE) * 100.0 / k)[:, None]  # (n, 1)
        lots = np.floor(value_fen / (self.model.universe.price0[stock] * lot))  # (n, k)
        demand = np.bincount(stock.ravel(), lots.ravel(), minlength=n_stocks)  # (S,)
        fit = np.minimum(1.0, float_lots / np.maximum(demand, 1.0))  # (S,)
        lots = np.floor(lots * fit[stock]).astype(np.int64).ravel()  # (n*k,)
        give = lots > 0
        account = np.repeat(self.accounts, k)[give]
        self.model.ledger.endow(account, stock.ravel()[give], lots[give] * lot)
        return np.bincount(stock.ravel()[give], lots[give], minlength=n_stocks).astype(np.int64)

    def _distinct_picks(self, k: int, rounds: int = 50) -> np.ndarray:
        """(n, k) stocks per investor, drawn by :meth:`look_weights`, distinct in each row.

        Duplicates are redrawn round by round (rare for k much below S); any left after
        ``rounds`` are kept, which only means that investor holds fewer stocks.
        """
        p = self.look_weights()
        stock = choice(self.rng, p, (self.n, k))
        for _ in range(rounds):
            order = np.sort(stock, axis=1)
            dup = np.zeros_like(stock, dtype=bool)
            dup[:, 1:] = order[:, 1:] == order[:, :-1]
            if not dup.any():
                return order
            order[dup] = choice(self.rng, p, int(dup.sum()))
            stock = order
        return stock

    # -- state ----------------------------------------------------------------------------
    def begin_day(self) -> None:
        """Record yesterday's close and refresh the 20-day returns investors chase; with
        ``peak_halflife_days``, let each investor's peak fade towards its wealth.

        An investor's drawdown is measured from its peak wealth. A peak that never fades
        keeps a crash's losers panicking for months, selling into any rebound; one that
        fades is a reference point that adapts, as the value investors' old losses do.
        """
        self.closes.append(self.market.prev_close[: self.market.n_stocks].astype(np.float64))
        self.ret20 = np.log(self.closes[-1] / self.closes[0])
        halflife = self.cfg.peak_halflife_days
        if halflife > 0.0:  # the lead of the peak over the last marked wealth shrinks
            fade = 0.5 ** (1.0 / halflife)
            self.peak_wealth[:] = self.wealth + (self.peak_wealth - self.wealth) * fade

    @property
    def drawdown(self) -> np.ndarray:
        """(n,) share of its peak wealth each investor has lost, as of its last decision."""
        return self._drawdown(self.rows)

    def neighbour_action(self, rows: np.ndarray) -> np.ndarray:
        """(r,) average last-step action of each row's neighbours, in [-1, 1].

        The rows' products with the adjacency are taken in place: slicing the CSR matrix
        first (``adjacency[rows] @ x``) copies the rows and costs more than the products.
        A row-normalized graph's rows hold one value each, 1 / the degree, so only the
        columns are read (:func:`neighbour_lists`, :func:`_neighbour_means`): in a run
        the rows are out of cache, and the bytes fetched are most of the time.
        """
        a = self.adjacency
        rows = np.asarray(rows, np.int64)
        if self._neighbours[0] is not a:  # the adjacency was set since: list it again
            self._neighbours = (a, neighbour_lists(a))
        neighbour = self._neighbours[1]
        if neighbour is None:
            x = self.last_action.astype(np.float64)
            return _row_products(a.indptr, a.indices, a.data, rows, x)
        return _neighbour_means(a.indptr, neighbour, rows, self.last_action)

    def positions(self, rows: np.ndarray) -> tuple[np.ndarray, ...]:
        """(slot, stock, shares, sellable) of the rows' positions, grouped by slot.

        ``slot`` indexes into ``rows`` (ascending, so their accounts are too).
        """
        return self.model.ledger.positions_of(self.accounts[rows])

    def _roll(self) -> None:
        """At a step's first decision, this step's actions become last step's."""
        if self.begins_step():
            self.last_action = self.action.copy()
            self.action[:] = 0
            self.selling[:] = False

    def _mark(self, rows: np.ndarray, picked: np.ndarray = _NO_ROWS) -> tuple[np.ndarray, ...]:
        """Mark the rows' wealth to last prices, raise their peaks where it is new, and flag
        those beyond ``PANIC_DRAWDOWN`` (one compiled pass over the rows); return the
        positions (:meth:`positions`) of ``rows[picked]``, read in the same walk of the
        ledger that values every row."""
        ledger, accounts = self.model.ledger, self.take(self.accounts, rows)
        held, positions = ledger.value_and_positions(accounts, self.market.last, picked)
        _mark_rows(rows, accounts, ledger.cash, held, self.wealth, self.peak_wealth, self.panicking)
        return positions

    def _drawdown(self, rows: np.ndarray) -> np.ndarray:
        """(r,) :attr:`drawdown` of ``rows`` alone."""
        peak = np.maximum(self.peak_wealth[rows], 1e-9)
        return np.clip(1.0 - self.wealth[rows] / peak, 0.0, 1.0)

    # -- rules ----------------------------------------------------------------------------
    def decide(self, rows: np.ndarray) -> Orders:
        """This step's orders of ``rows``: at most one order per active investor.

        Every row is marked to market (drawdowns feed the panic flag the model
        reports), then only the active few draw the rest of their decision.
        """
        self._roll()
        market, c = self.market, self.cfg
        market.cancel_accounts(self.take(self.accounts, rows))  # any order: rows ascend in a run
        every = slice(None) if self.all_rows(rows) else rows  # no fancy index for all rows
        self.action[every] = 0
        self.selling[every] = False
        attention = np.clip(market.vol_ratio().mean(), 1.0, MAX_ATTENTION)
        active = self.rng.random(rows.shape[0]) < min(c.activity * attention, 1.0)
        # Marking draws nothing, so who is active is drawn first and their positions are
        # read as the marking walks the ledger.
        positions = self._mark(rows, np.flatnonzero(active))
        return self._orders(rows[active], positions) if active.any() else Orders.empty()

    def _orders(self, rows: np.ndarray, positions: tuple[np.ndarray, ...]) -> Orders:
        """Orders of the active ``rows``: buy or sell by the herding and own score.

        The random numbers drawn do not depend on state, so two equal populations
        differing only in state draw the same numbers and differ only where their
        state leads them to. What follows the draws is two compiled passes over the
        rows (:func:`_scores`, :func:`_retail_orders`).
        """
        market, c, rng = self.market, self.cfg, self.rng
        r, accounts, cash = rows.shape[0], self.accounts[rows], self.model.ledger.cash
        slot, h_stock, _, h_sellable = positions  # the rows' (:meth:`positions`)
        looked = choice(rng, self.look_weights(), (r, LOOKED_AT))  # (r, L)
        score = _scores(
            looked,
            self.ret20,
            self.neighbour_action(rows),
            accounts,
            cash,
            self.wealth,
            self.peak_wealth,
            rows,
            c.chase,
            c.panic,
            c.herding,
        )
        buy = rng.random(r) < 0.5 * (1.0 + np.tanh(score))  # (r,)
        gumbel = rng.gumbel(size=looked.shape)  # (r, L)
        pick_u = rng.random(r)  # (r,) which position to add to or sell
        limit_u = rng.random(r)  # (r,) whether a calm order goes as a market order
        offset = rng.exponential(LIMIT_OFFSET, r)  # (r,) relative distance from the last price
        grid = market.grid
        orders = _retail_orders(
            rows,
            accounts,
            buy,
            looked,
            gumbel,
            pick_u,
            limit_u,
            offset,
            slot,
            h_stock,
            h_sellable,
            self.ret20,
            cash,
            self.wealth,
            self.panicking,
            market.last,
            grid.lower,
            grid.upper,
            c.chase,
            c.holdings,
            market.lot,
            self.action,
            self.selling,
        )
        return Orders(*orders)

    # -- reporting ------------------------------------------------------------------------
    def rows_of(self, account: np.ndarray) -> np.ndarray:
        """(m,) row of each ledger account, -1 where it is not one of this population's."""
        if self.n == 0:
            return np.full(np.shape(account), -1, dtype=np.int64)
        row = np.asarray(account) - self.accounts[0]  # accounts are contiguous
        return np.where((row >= 0) & (row < self.n), row, -1)

    def sample_graph(self, n: int, source: int | None = None) -> nx.Graph:
        """A connected patch of up to ``n`` investors for the browser view.

        A breadth-first ball around ``source`` (default: the biggest hub), so the
        patch shows how selling spreads; it draws no random numbers, so viewing
        never changes a run. Nodes carry ``selling``, ``action`` and ``drawdown``.
        """
        if self.n == 0 or n <= 0:
            return nx.Graph()
        if source is None:
            source = int(np.argmax(np.diff(self.adjacency.indptr)))
        reached = (v for _, v in nx.bfs_edges(self.graph, source))
        nodes = np.array([source, *itertools.islice(reached, n - 1)], dtype=np.int64)
        sub = self.graph.subgraph(nodes.tolist()).copy()
        for name, values in (
            ("selling", self.selling[nodes]),
            ("action", self.action[nodes]),
            ("drawdown", self.drawdown[nodes]),
        ):
            nx.set_node_attributes(
                sub, dict(zip(nodes.tolist(), values.tolist(), strict=True)), name
            )
        return sub
