"""Snowball issuers: a broker's book of autocallables on CSI 500 and CSI 1000, delta hedged.

A snowball (雪球) is a note sold to investors. Per tranche, with initial level S0 set
on the issue date:

* knock-out, observed every ``OBSERVATION_DAYS`` trading days after issue: if the
  index closes at or above ``knock_out * S0`` the note ends and the investor gets
  par plus the coupon pro rata for the time elapsed;
* knock-in, observed at every close: once the index closes below ``knock_in * S0``
  the investor bears the fall;
* at maturity (``tenor_days``) a note never knocked in pays par plus the full
  coupon; a knocked-in one pays ``min(1, S_T / S0)``.

The investor is short a down-and-in put, so the issuer, short the note, hedges
by holding the index LONG through futures (IC on CSI 500, IM on CSI 1000). The
hedge grows as the index falls towards the knock-in barrier and is dumped once
the barrier is breached: that selling into a falling market is what this agent
type adds to the model.

**Delta.** ``delta`` is the hedge as index exposure in CNY per CNY of notional:
with v = note value per unit notional and x = S / S0, ``delta = x dv/dx = dv/d(log x)``.
A tranche of notional N is hedged with ``delta * N / (S * multiplier)`` contracts.

**Delta table.** Built once per book by :func:`build_delta_table`, on a grid in
z = log(S/S0) (spacing ``dz``, one node on the knock-in barrier), every trading
day of the tenor, and both knock-in states. Backward induction one trading day
at a time: the next close is a convolution of today's value with the exact
one-day Gaussian transition of log S (flat ``vol``, zero rates, drift -vol²/2),
then the close's observations are applied: knock-in on every close, knock-out on
the closes where the days since issue are a multiple of ``OBSERVATION_DAYS``
(exact, not an approximation: a tranche with tau days left has run
``tenor - tau`` days, so the table's schedule is the tranche's). Deltas are
central differences in z, clipped to ``DELTA_BOUNDS``: near expiry the payoff's
digital steps make the raw delta unbounded, and a desk caps its hedge ratio.
No random numbers are used; the build takes ~0.15 s at the default grid.

**Book.** One issuer per underlying (row 0: CSI 500 via IC, row 1: CSI 1000 via IM),
the tranches in flat arrays. At the start one tranche per underlying was issued on
each of the ``issue_span_days`` days before day 0, its S0 the start level moved by
the index's log return since issue, drawn as N(0, vol²·age/252) from the model's
generator; tranches that would be above their knock-out level are redrawn (they
would have knocked out already), and each is knocked in with the Brownian-bridge
probability that its path dipped below the barrier. A tranche that ends (knock-out
or maturity) is replaced at once by a fresh one on the same row, S0 the current
level, so the outstanding notional stays constant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numba
import numpy as np

from agents.base import ArrayAgent, Population
from model.aot import entry
from model.config import SnowballConfig
from model.futures import TICK_POINTS, UNDERLYING
from model.orders import Orders

if TYPE_CHECKING:
    from model.market_model import MarketModel

OBSERVATION_DAYS = 21  # trading days between knock-out observations (monthly)
YEAR_DAYS = 252  # trading days a year: coupon accrual and vol scaling
DELTA_BOUNDS = (-0.5, 3.0)  # hedge ratio a desk will run, CNY exposure per CNY notional
FUTURES_ROWS = np.array([1, 2])  # rows of the book in model.futures arrays: IC, IM
INDEX_ROWS = UNDERLYING[FUTURES_ROWS]  # (2,) positions in model.indices.level: csi500, csi1000
_REDRAWS = 50  # attempts at drawing an initial S0 below the knock-out level


# -- the delta table ----------------------------------------------------------------------
@dataclass(frozen=True)
class DeltaTable:
    """Note value and hedge delta per unit notional on a (state, days left, log-spot) grid."""

    z0: float  # log(S/S0) of the first grid node
    dz: float  # grid spacing in log(S/S0)
    value: np.ndarray  # (2, tenor + 1, Z) note value per unit notional: [not knocked in, in]
    delta: np.ndarray  # (2, tenor + 1, Z) clipped hedge delta, CNY exposure per CNY notional

    @property
    def tenor(self) -> int:
        return self.value.shape[1] - 1

    @property
    def spot(self) -> np.ndarray:
        """(Z,) S/S0 at the grid nodes."""
        return np.exp(self.z0 + self.dz * np.arange(self.value.shape[2]))

    def lookup(self, x: np.ndarray, tau: np.ndarray, knocked_in: np.ndarray) -> np.ndarray:
        """Deltas of a whole book at once, bilinear in log-spot and days left.

        Args:
            x: (n,) index level over each tranche's initial level.
            tau: (n,) trading days left to maturity (clipped to [0, tenor]).
            knocked_in: (n,) bool knock-in state.

        Returns:
            (n,) delta: index exposure in CNY per CNY of notional.
        """
        return _bilinear(
            self.delta,
            np.log(np.maximum(x, 1e-12)),  # numpy's log: compiled, it would be the C library's
            np.asarray(tau, dtype=np.float64),
            np.asarray(knocked_in, dtype=np.bool_),
            self.z0,
            self.dz,
        )


@entry
@numba.njit(cache=True, nogil=True)
def _bilinear(
    delta: np.ndarray,
    log_x: np.ndarray,
    tau: np.ndarray,
    knocked_in: np.ndarray,
    z0: float,
    dz: float,
) -> np.ndarray:
    """(n,) ``delta`` (2, tenor + 1, Z) bilinear in log-spot ``log_x`` (n,) and days left
    ``tau`` (n,), each clipped to the grid, on the table of each ``knocked_in`` (n,) state.

    One pass over the book, with the float operations of the numpy passes it replaced
    (``np.clip``'s comparisons, truncation to the grid node below).
    """
    n_z, tenor = delta.shape[2], delta.shape[1] - 1
    out = np.empty(log_x.shape[0])
    for k in range(log_x.shape[0]):
        fz = _clip((log_x[k] - z0) / dz, 0.0, n_z - 1.0)
        iz = min(np.int64(fz), n_z - 2)
        wz = fz - iz
        ft = _clip(tau[k], 0.0, float(tenor))
        it = min(np.int64(ft), max(tenor - 1, 0))
        wt = ft - it
        s = 1 if knocked_in[k] else 0
        near = (1.0 - wz) * delta[s, it, iz] + wz * delta[s, it, iz + 1]
        far = (1.0 - wz) * delta[s, it + 1, iz] + wz * delta[s, it + 1, iz + 1]
        out[k] = (1.0 - wt) * near + wt * far
    return out


@numba.njit(cache=True, nogil=True)
def _clip(value: float, low: float, high: float) -> float:
    """``np.clip`` of one float: the larger of it and ``low`` (``low`` on a tie), then the
    smaller of that and ``high`` (``high`` on a tie); NaN stays NaN."""
    if np.isnan(value):
        return value
    value = value if value > low else low
    return value if value < high else high


def _transition_weights(vol: float, dz: float) -> np.ndarray:
    """(K,) probabilities of a one-day move of k nodes in log S, k = -half..half."""
    sd = vol / np.sqrt(YEAR_DAYS)
    if not sd > 0.0:  # a vol so small it underflows: the level does not move
        return np.ones(1)
    half = int(np.ceil(6.0 * sd / dz))
    move = np.arange(-half, half + 1) * dz
    with np.errstate(over="ignore"):  # a tiny sd: far nodes square to inf, weigh exp(-inf) = 0
        w = np.exp(-0.5 * ((move + 0.5 * sd * sd) / sd) ** 2)
    return w / w.sum()


def _observe(value: np.ndarray, x: np.ndarray, elapsed: int, cfg: SnowballConfig) -> np.ndarray:
    """Apply one close's observations to (2, Z) values of notes alive before it."""
    out = value.copy()
    below = x < cfg.knock_in
    out[0, below] = out[1, below]  # a close below the barrier knocks the note in
    if elapsed > 0 and elapsed % OBSERVATION_DAYS == 0:
        out[:, x >= cfg.knock_out] = 1.0 + cfg.coupon * elapsed / YEAR_DAYS
    return out


def build_delta_table(
    cfg: SnowballConfig, dz: float = 0.004, spot_range: tuple[float, float] = (0.2, 2.5)
) -> DeltaTable:
    """Price the note by backward induction and tabulate its hedge delta.

    Runs once per book: the whole book's deltas are then one table lookup a step,
    which is what lets the issuer rehedge hundreds of tranches every slice.

    Args:
        cfg: the product terms and pricing volatility.
        dz: grid spacing in log(S/S0); a few times finer than the daily st.dev.
        spot_range: S/S0 covered by the grid; the edges are far from the barriers.

    Returns:
        The value and delta table.
    """
    z_ki = np.log(cfg.knock_in)
    lo = int(np.floor((np.log(spot_range[0]) - z_ki) / dz))
    hi = int(np.ceil((np.log(spot_range[1]) - z_ki) / dz))
    z = z_ki + dz * np.arange(lo, hi + 1)  # (Z,) a node sits on the barrier
    x = np.exp(z)
    weights = _transition_weights(cfg.vol, dz)[::-1]  # reversed: convolve as correlation
    half = weights.size // 2
    tenor = cfg.tenor_days

    value = np.empty((2, tenor + 1, z.size))
    value[0, 0] = 1.0 + cfg.coupon * tenor / YEAR_DAYS
    value[1, 0] = np.minimum(1.0, x)
    after_close = _observe(value[:, 0], x, tenor, cfg)
    # Each day's values with ``half`` copies of the edge values on either side (what
    # ``np.pad(..., mode="edge")`` makes), written into one buffer: np.pad's own checks
    # were most of the table's time (1,000 calls a book).
    padded = np.empty(z.size + 2 * half)  # (Z + 2 * half,)
    for tau in range(1, tenor + 1):
        for state in range(2):
            padded[half : half + z.size] = after_close[state]
            padded[:half], padded[half + z.size :] = after_close[state, 0], after_close[state, -1]
            value[state, tau] = np.convolve(padded, weights, mode="valid")
        after_close = _observe(value[:, tau], x, tenor - tau, cfg)
    delta = np.clip(np.gradient(value, dz, axis=2), *DELTA_BOUNDS)
    return DeltaTable(z0=float(z[0]), dz=dz, value=value, delta=delta)


# -- the book -----------------------------------------------------------------------------
def observe_close(
    x: np.ndarray,
    elapsed: np.ndarray,
    knocked_in: np.ndarray,
    cfg: SnowballConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which tranches a close knocks in, knocks out, or brings to maturity.

    A pure function of the close so that the bookkeeping can be tested on a path.

    Args:
        x: (m,) close over each tranche's initial level.
        elapsed: (m,) trading days from issue to this close.
        knocked_in: (m,) bool state before this close.
        cfg: the product terms.

    Returns:
        (m,) bool each: knocked in at this close, knocked out, matured (not knocked out).
    """
    observed = (elapsed > 0) & (elapsed % OBSERVATION_DAYS == 0)
    knock_out = observed & (x >= cfg.knock_out)
    knock_in = ~knock_out & ~knocked_in & (x < cfg.knock_in)
    matured = ~knock_out & (elapsed >= cfg.tenor_days)
    return knock_in, knock_out, matured


class SnowballIssuer(ArrayAgent):
    """One issuer's book on one underlying: row 0 CSI 500 (hedged in IC), row 1 CSI 1000 (IM)."""

    @property
    def tranches(self) -> np.ndarray:
        """Indices of this book's tranches in the population's tranche arrays."""
        return np.flatnonzero(self.population.tranche_underlying == self.row)

    @property
    def hedge_target(self) -> float:
        """Futures contracts this book wants to hold."""
        return float(self.population.hedge_target()[self.row])


class SnowballIssuers(Population):
    """The snowball book: tranches in flat arrays, two issuers that hedge it with futures."""

    agent_class = SnowballIssuer

    def __init__(
        self, model: MarketModel, accounts: np.ndarray, cfg: SnowballConfig, scale: float
    ) -> None:
        super().__init__(model, accounts)
        if self.n != 2:
            raise ValueError(f"SnowballIssuers needs 2 accounts (CSI 500, CSI 1000), got {self.n}")
        self.cfg = cfg
        self.table = build_delta_table(cfg)
        self.reissue = True  # replace tranches that end, keeping the notional constant
        self._issue_initial_book(scale)
        self.knocked_in_notional = 0.0  # CNY, cumulative over the run (initial state excluded)
        self.knock_in_count = 0  # cumulative
        self.knock_out_count = 0  # cumulative
        self.forced_sales_cny = 0.0  # this step: futures sold as knocked-in hedges are dumped
        self.pending_dump = np.zeros(2)  # (2,) contracts released by knock-ins, not yet sold
        # (m,) contracts hedging each tranche at its book's last decision; NaN: none yet.
        self.tranche_contracts = np.full(self.tranche_s0.size, np.nan)

    def _issue_initial_book(self, scale: float) -> None:
        """One tranche per underlying on each of the ``issue_span_days`` days before day 0."""
        cfg, rng = self.cfg, self.rng
        span = cfg.issue_span_days
        days_ago = np.tile(np.arange(1, span + 1), 2)  # (m,) issued this many days before day 0
        self.tranche_underlying = np.repeat(np.arange(2), span)  # (m,) 0 CSI 500, 1 CSI 1000
        total = cfg.notional_bn * 1e9 * scale
        share = np.array([cfg.ic_share, 1.0 - cfg.ic_share])
        self.tranche_notional = total * share[self.tranche_underlying] / span  # (m,) CNY
        self.tranche_issue_day = -days_ago  # (m,) day index of the issuing close
        age = (days_ago - 1).astype(np.float64)  # (m,) trading days run at the start close
        sd = cfg.vol * np.sqrt(age / YEAR_DAYS)
        log_x = -sd * rng.standard_normal(age.size)  # (m,) log(start level / S0)
        for _ in range(_REDRAWS):  # a tranche above its knock-out level would have ended
            redo = log_x >= np.log(cfg.knock_out)
            if not redo.any():
                break
            log_x[redo] = -sd[redo] * rng.standard_normal(int(redo.sum()))
        log_x = np.minimum(log_x, np.log(cfg.knock_out) - 1e-6)
        self.tranche_s0 = self._levels()[self.tranche_underlying] * np.exp(-log_x)  # (m,) points
        # Brownian bridge from log 1 to log_x: chance the path closed below the barrier.
        b = np.log(cfg.knock_in)
        p_hit = np.exp(-2.0 * (0.0 - b) * np.maximum(log_x - b, 0.0) / np.maximum(sd**2, 1e-12))
        self.tranche_knocked_in = (log_x < b) | (rng.random(age.size) < p_hit)  # (m,) bool
        self.tranche_alive = np.ones(age.size, dtype=bool)  # (m,)

    # -- state ----------------------------------------------------------------------------
    def _levels(self) -> np.ndarray:
        """(2,) index levels of CSI 500 and CSI 1000 (last clearing)."""
        return np.asarray(self.model.indices.level, dtype=np.float64)[INDEX_ROWS]

    def _tau(self) -> np.ndarray:
        """(m,) trading days left, counted from the last close."""
        elapsed = self.model.day_index - 1 - self.tranche_issue_day
        return self.cfg.tenor_days - elapsed

    def deltas(self) -> np.ndarray:
        """(m,) hedge delta per tranche at the current level, 0 for ended tranches."""
        x = self._levels()[self.tranche_underlying] / self.tranche_s0
        delta = self.table.lookup(x, self._tau(), self.tranche_knocked_in)
        return np.where(self.tranche_alive, delta, 0.0)

    def _contracts(self) -> np.ndarray:
        """(m,) futures contracts hedging each tranche at the current levels."""
        per_contract = self._levels() * np.asarray(self.model.futures.multiplier)[FUTURES_ROWS]
        return self.deltas() * self.tranche_notional / per_contract[self.tranche_underlying]

    def hedge_target(self, contracts: np.ndarray | None = None) -> np.ndarray:
        """(2,) futures contracts to hold, IC and IM: sum of delta * notional / contract value.

        ``contracts`` is :meth:`_contracts`, when the caller has it already.
        """
        contracts = self._contracts() if contracts is None else contracts
        alive = np.where(self.tranche_alive, contracts, 0.0)
        return np.bincount(self.tranche_underlying, alive, minlength=2)

    def initial_hedge(self) -> np.ndarray:
        """(2,) int64 contracts of IC and IM to endow before day 0, so the book starts hedged."""
        return np.rint(self.hedge_target()).astype(np.int64)

    @property
    def knocked_in_outstanding(self) -> float:
        """CNY notional of live tranches that are knocked in."""
        return float(self.tranche_notional[self.tranche_alive & self.tranche_knocked_in].sum())

    # -- the day --------------------------------------------------------------------------
    def begin_day(self) -> None:
        """Observe yesterday's close: knock-ins, monthly knock-outs, maturities; reissue."""
        level = self._levels()  # (2,) yesterday's close: indices move only when the market clears
        elapsed = self.model.day_index - 1 - self.tranche_issue_day  # (m,)
        x = level[self.tranche_underlying] / self.tranche_s0
        knock_in, knock_out, matured = observe_close(x, elapsed, self.tranche_knocked_in, self.cfg)
        alive = self.tranche_alive
        knock_in &= alive
        knock_out &= alive
        self.tranche_knocked_in |= knock_in
        self.knock_in_count += int(knock_in.sum())
        self.knock_out_count += int(knock_out.sum())
        self.knocked_in_notional += float(self.tranche_notional[knock_in].sum())

        ended = alive & (knock_out | matured)
        if self.reissue:
            self.tranche_s0[ended] = level[self.tranche_underlying[ended]]
            self.tranche_issue_day[ended] = self.model.day_index - 1
            self.tranche_knocked_in[ended] = False
        else:
            self.tranche_alive &= ~ended
        # A new note's hedge is not a knock-in dump: start its contract record afresh.
        self.tranche_contracts[ended] = np.nan

    def decide(self, rows: np.ndarray) -> Orders:
        """Close ``hedge_lag`` of each book's gap to its delta hedge with market orders."""
        market, model = self.market, self.model
        rows = np.asarray(rows, dtype=np.int64)
        accounts = self.accounts[rows]
        market.cancel_accounts(np.sort(accounts))
        if self.begins_step():
            self.forced_sales_cny = 0.0

        chosen = np.zeros(self.n, dtype=bool)  # (n,) which books are among rows
        chosen[rows] = True
        contracts = self._contracts()  # (m,) once: the levels stay put while agents decide
        x = self._levels()[self.tranche_underlying] / self.tranche_s0  # (m,)
        held = model.ledger.futures_position(accounts)[np.arange(rows.size), FUTURES_ROWS[rows]]
        instrument = np.asarray(model.futures.instrument)[FUTURES_ROWS[rows]]
        # The knock-in dumps, the hedge targets, the trades and the forced sales: one pass
        # (:func:`_hedge_step`; the numpy rules are kept in tests/test_snowball.py).
        self.tranche_contracts, side, lots, forced_cny = _hedge_step(
            chosen,
            contracts,
            x,
            self.tranche_underlying,
            self.tranche_alive,
            self.tranche_knocked_in,
            self.tranche_contracts,
            self.cfg.knock_in,
            self.pending_dump,
            rows,
            held,
            self.cfg.hedge_lag,
            np.asarray(market.last)[instrument].astype(np.float64) * TICK_POINTS,
            np.asarray(model.futures.multiplier)[FUTURES_ROWS[rows]],
        )
        self.forced_sales_cny += forced_cny
        orders = Orders(
            account=accounts,
            stock=instrument,
            side=side,
            price=market.limit_price(instrument, side),
            lots=lots,
        )
        return orders.select(orders.lots > 0)


@entry
@numba.njit(cache=True, nogil=True)
def _hedge_step(
    chosen: np.ndarray,
    contracts: np.ndarray,
    x: np.ndarray,
    underlying: np.ndarray,
    alive: np.ndarray,
    knocked_in: np.ndarray,
    recorded: np.ndarray,
    knock_in: float,
    pending_dump: np.ndarray,
    rows: np.ndarray,
    held: np.ndarray,
    hedge_lag: float,
    points: np.ndarray,
    multiplier: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """A step of the ``chosen`` (2,) books: knock-in dumps, hedge targets, trades and the
    forced sales among them, in one pass over the tranches and one over the rows.

    What :meth:`SnowballIssuers._record_dump`, :meth:`~SnowballIssuers.hedge_target` and
    :meth:`~SnowballIssuers._book_forced_sales` did in numpy, with their floats (the
    per-book sums in tranche order, as ``np.bincount`` adds them).

    Args:
        contracts, x: (m,) each tranche's hedge in contracts and its index level over its
            initial one; underlying: (m,) its book; alive, knocked_in: (m,) bool.
        recorded: (m,) contracts recorded at the last step (NaN: none); knock_in: barrier.
        pending_dump: (2,) contracts of dumps not yet sold, updated in place.
        rows: (r,) books deciding; held: (r,) int64 contracts they hold; points: (r,)
            index points of their contract's last price; multiplier: (r,) CNY a point.

    Returns:
        The new (m,) record, the rows' (r,) int64 side and float lots of their orders
        (market orders towards ``hedge_lag`` of the gap), and the CNY of forced sales.
    """
    m, n = contracts.shape[0], pending_dump.shape[0]
    record = np.empty(m)
    released = np.zeros(n)  # (n,) contracts released by tranches past the barrier
    target = np.zeros(n)  # (n,) contracts to hold
    for t in range(m):
        mine = chosen[underlying[t]]
        now = contracts[t] if mine else 0.0
        past_barrier = mine and alive[t] and (knocked_in[t] or x[t] < knock_in)
        drop = recorded[t] - now
        drop = drop if drop >= 0.0 else 0.0  # np.fmax(drop, 0.0): 0 where no record (NaN)
        released[underlying[t]] += drop if past_barrier else 0.0
        record[t] = now if mine else recorded[t]
        target[underlying[t]] += contracts[t] if alive[t] else 0.0
    for b in range(n):
        pending_dump[b] += released[b]
    r = rows.shape[0]
    side = np.empty(r, np.int64)
    lots = np.empty(r)
    forced_cny = 0.0
    for i in range(r):
        goal = np.rint(target[rows[i]])
        gap = goal - held[i]  # contracts
        lots[i] = np.ceil(hedge_lag * abs(gap))
        side[i] = np.int64(np.sign(gap))
        # Sells that unload knock-in dumps are forced sales, in CNY at the last price.
        excess = held[i] - goal
        dump = pending_dump[rows[i]]
        dump = min(max(dump, 0.0), excess if excess >= 0.0 else 0.0)  # np.clip
        forced = min(lots[i], dump) if side[i] < 0 else 0.0
        pending_dump[rows[i]] = dump - forced
        forced_cny += forced * points[i] * multiplier[i]
    return record, side, lots, forced_cny
