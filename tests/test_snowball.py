"""Snowball issuers: the delta table's shape, the book's bookkeeping, the hedge's direction."""

from __future__ import annotations

import copy
import warnings
from types import SimpleNamespace

import mesa
import numpy as np
import pytest

from agents.snowball import (
    DELTA_BOUNDS,
    FUTURES_ROWS,
    OBSERVATION_DAYS,
    DeltaTable,
    SnowballIssuers,
    _transition_weights,
    build_delta_table,
    observe_close,
)
from model.config import SnowballConfig
from model.futures import TICK_POINTS
from model.orders import Orders

CFG = SnowballConfig(notional_bn=100.0)
KI = CFG.knock_in


@pytest.fixture(scope="module")
def table():
    return build_delta_table(CFG)


def _delta(table, x: float, tau: int, knocked_in: bool) -> float:
    return float(table.lookup(np.array([x]), np.array([tau]), np.array([knocked_in]))[0])


# -- the delta table ----------------------------------------------------------------------
def _numpy_lookup(table: DeltaTable, x, tau, knocked_in) -> np.ndarray:
    """``DeltaTable.lookup`` as it was in numpy passes."""
    nz = table.delta.shape[2]
    fz = np.clip((np.log(np.maximum(x, 1e-12)) - table.z0) / table.dz, 0.0, nz - 1.0)
    iz = np.minimum(fz.astype(np.int64), nz - 2)
    wz = fz - iz
    ft = np.clip(np.asarray(tau, dtype=np.float64), 0.0, float(table.tenor))
    it = np.minimum(ft.astype(np.int64), max(table.tenor - 1, 0))
    wt = ft - it
    s = np.asarray(knocked_in, dtype=np.int64)
    d = table.delta
    near = (1.0 - wz) * d[s, it, iz] + wz * d[s, it, iz + 1]
    far = (1.0 - wz) * d[s, it + 1, iz] + wz * d[s, it + 1, iz + 1]
    return (1.0 - wt) * near + wt * far


def test_compiled_lookup_matches_the_numpy_passes_bit_for_bit(table):
    """Spots and days left inside the grid, on its nodes and edges and beyond both ends,
    days left whole and fractional, in either state: the same deltas as the numpy passes."""
    rng = np.random.default_rng(3)
    n = 4000
    edges = np.exp(table.z0 + table.dz * np.array([0, table.delta.shape[2] - 1]))
    x = np.concatenate([rng.uniform(0.3, 1.6, n), table.spot, edges * [0.5, 2.0], [0.0]])
    m = x.size
    tau = np.concatenate(
        [rng.uniform(-20, table.tenor + 20, m // 2), rng.integers(0, table.tenor + 1, m - m // 2)]
    )
    knocked_in = rng.random(m) < 0.5
    for days in (tau, np.floor(tau).astype(np.int64)):
        np.testing.assert_array_equal(
            table.lookup(x, days, knocked_in), _numpy_lookup(table, x, days, knocked_in)
        )


def test_table_builds_deterministic():
    first = build_delta_table(CFG)
    second = build_delta_table(CFG)
    assert np.array_equal(first.delta, second.delta)
    assert np.array_equal(first.value, second.value)


def _np_pad_table(cfg: SnowballConfig, dz: float = 0.004) -> tuple[np.ndarray, np.ndarray]:
    """(value, delta) by the induction with ``np.pad`` each day, as the table was first
    built: the reference for the one padded buffer :func:`build_delta_table` reuses."""
    from agents.snowball import YEAR_DAYS, _observe

    z_ki = np.log(cfg.knock_in)
    lo = int(np.floor((np.log(0.2) - z_ki) / dz))
    hi = int(np.ceil((np.log(2.5) - z_ki) / dz))
    x = np.exp(z_ki + dz * np.arange(lo, hi + 1))
    weights = _transition_weights(cfg.vol, dz)[::-1]
    half, tenor = weights.size // 2, cfg.tenor_days
    value = np.empty((2, tenor + 1, x.size))
    value[0, 0] = 1.0 + cfg.coupon * tenor / YEAR_DAYS
    value[1, 0] = np.minimum(1.0, x)
    after_close = _observe(value[:, 0], x, tenor, cfg)
    for tau in range(1, tenor + 1):
        for state in range(2):
            padded = np.pad(after_close[state], half, mode="edge")
            value[state, tau] = np.convolve(padded, weights, mode="valid")
        after_close = _observe(value[:, tau], x, tenor - tau, cfg)
    return value, np.clip(np.gradient(value, dz, axis=2), *DELTA_BOUNDS)


@pytest.mark.parametrize("cfg", [CFG, SnowballConfig(notional_bn=1.0, vol=0.6, tenor_days=60)])
def test_table_is_the_np_pad_induction_to_the_bit(cfg):
    value, delta = _np_pad_table(cfg)
    table = build_delta_table(cfg)
    np.testing.assert_array_equal(table.value, value)
    np.testing.assert_array_equal(table.delta, delta)


@pytest.mark.parametrize("tau", [504, 400, 252, 126, 63])
def test_delta_is_higher_just_above_knock_in_than_at_issue_level(table, tau):
    assert _delta(table, KI * 1.01, tau, False) > _delta(table, 1.0, tau, False) + 0.2


@pytest.mark.parametrize("tau", [504, 252, 126, 63])
@pytest.mark.parametrize("above", [1.005, 1.02, 1.05])
def test_knocked_in_delta_is_lower_near_the_barrier(table, tau, above):
    assert _delta(table, KI * above, tau, True) < _delta(table, KI * above, tau, False)


def test_deltas_are_finite_and_plausible(table):
    assert np.isfinite(table.delta).all()
    assert table.delta.min() >= DELTA_BOUNDS[0]
    assert table.delta.max() <= DELTA_BOUNDS[1]
    # Unclipped, away from the last months' digital steps, the deltas are in range anyway.
    raw = np.gradient(table.value, table.dz, axis=2)
    x = table.spot
    inner = raw[:, 126:, (x > 0.5) & (x < 1.2)]
    assert inner.min() > -0.5
    assert inner.max() < 3.0


def test_fresh_note_is_priced_near_par_with_a_modest_long_delta(table):
    at_par = np.argmin(np.abs(table.spot - 1.0))
    assert 0.9 < table.value[0, CFG.tenor_days, at_par] < 1.1
    assert 0.0 < _delta(table, 1.0, CFG.tenor_days, False) < 0.8


def test_deep_knocked_in_note_is_hedged_like_the_index(table):
    # Far below the barrier the note pays ~S_T/S0: exposure ~x per unit notional.
    assert _delta(table, 0.5, 252, True) == pytest.approx(0.5, abs=0.03)


def test_lookup_interpolates_between_nodes(table):
    i, tau = 100, 300
    x = table.spot[i : i + 2]
    mid = np.sqrt(x[0] * x[1])  # halfway in log-spot
    got = table.lookup(np.array([mid]), np.array([tau + 0.5]), np.array([False]))[0]
    corners = table.delta[0, tau : tau + 2, i : i + 2]
    assert got == pytest.approx(corners.mean())


# -- bookkeeping on a path ----------------------------------------------------------------
def _run_path(path: np.ndarray) -> tuple[list[int], list[int], list[int]]:
    """Days of knock-in, knock-out and maturity of one tranche issued at day 0 on ``path``."""
    knocked_in = np.array([False])
    ins, outs, ends = [], [], []
    for day, x in enumerate(path):
        k_in, k_out, matured = observe_close(np.array([x]), np.array([day]), knocked_in, CFG)
        knocked_in |= k_in
        ins += [day] * int(k_in[0])
        outs += [day] * int(k_out[0])
        ends += [day] * int(matured[0])
    return ins, outs, ends


def test_knock_in_on_the_first_close_below_the_barrier():
    path = np.linspace(1.0, 0.6, 60)
    first_below = int(np.argmax(path < KI))
    ins, outs, _ = _run_path(path)
    assert ins == [first_below]
    assert outs == []


def test_knock_out_only_on_an_observation_day():
    path = np.full(3 * OBSERVATION_DAYS, 1.10)  # above the knock-out level all along
    _, outs, _ = _run_path(path)
    assert outs[0] == OBSERVATION_DAYS  # not day 1: the first observation is a month in


def test_knocked_in_note_can_still_knock_out():
    path = np.r_[np.full(5, 0.7), np.full(40, 1.05)]
    ins, outs, _ = _run_path(path)
    assert ins == [0]
    assert outs[0] == OBSERVATION_DAYS


def test_maturity_without_knock_out():
    path = np.full(CFG.tenor_days + 1, 0.9)
    ins, outs, ends = _run_path(path)
    assert ins == [] and outs == []
    assert ends[0] == CFG.tenor_days


# -- the issuers in a small fake model ----------------------------------------------------
class _FakeMarket:
    def __init__(self) -> None:
        self.last = np.zeros(63, dtype=np.int64)  # 60 stocks, then IF, IC, IM in ticks
        self.cancelled: list[np.ndarray] = []

    def cancel_accounts(self, accounts: np.ndarray) -> None:
        self.cancelled.append(np.asarray(accounts))

    def limit_price(self, instrument: np.ndarray, side: np.ndarray) -> np.ndarray:
        upper = np.rint(self.last[instrument] * 1.1)
        lower = np.rint(self.last[instrument] * 0.9)
        return np.where(side > 0, upper, lower).astype(np.int64)


class _FakeLedger:
    def __init__(self) -> None:
        self.futures = np.zeros((2, 3), dtype=np.int64)  # accounts 0, 1

    def futures_position(self, accounts: np.ndarray) -> np.ndarray:
        return self.futures[np.asarray(accounts)]


class _FakeModel(mesa.Model):
    def __init__(self, seed: int) -> None:
        super().__init__(rng=seed)
        self.indices = SimpleNamespace(level=np.full(5, 1000.0))
        self.futures = SimpleNamespace(
            instrument=np.array([60, 61, 62]),
            underlying=np.array([0, 1, 2]),
            multiplier=np.array([300, 200, 200]),
        )
        self.market = _FakeMarket()
        self.ledger = _FakeLedger()
        self.day_index = 0

    def set_level(self, level: float) -> None:
        self.indices.level[:] = level
        self.market.last[60:] = round(level / 0.2)


def _issuers(seed: int = 3) -> tuple[_FakeModel, SnowballIssuers]:
    model = _FakeModel(seed)
    model.set_level(1000.0)
    return model, SnowballIssuers(model, np.array([0, 1]), CFG, scale=0.2)


def _uniform_book(issuers: SnowballIssuers, model: _FakeModel) -> None:
    """All tranches issued 100 days before day 0 at 1000, none knocked in."""
    issuers.tranche_s0[:] = 1000.0
    issuers.tranche_issue_day[:] = -100
    issuers.tranche_knocked_in[:] = False
    model.day_index = 5  # last close is 104 days after issue: no observation


def test_initial_book_notional_split_and_barriers():
    model, issuers = _issuers()
    total = CFG.notional_bn * 1e9 * 0.2
    by_book = np.bincount(issuers.tranche_underlying, issuers.tranche_notional)
    assert by_book == pytest.approx([total * CFG.ic_share, total * (1 - CFG.ic_share)])
    x = model.indices.level[1] / issuers.tranche_s0
    assert (x < CFG.knock_out).all()
    assert (issuers.tranche_knocked_in[x < KI]).all()
    assert len(issuers.agents) == 2
    np.testing.assert_array_equal(_issuers()[1].tranche_s0, issuers.tranche_s0)


def test_hedge_target_rises_towards_knock_in_then_falls_after_it():
    model, issuers = _issuers()
    _uniform_book(issuers, model)
    targets = []
    for level in (1000.0, 900.0, 820.0, 760.0):
        model.set_level(level)
        targets.append(issuers.hedge_target())
    targets = np.array(targets)  # (4, 2)
    assert (targets > 0).all()
    assert (np.diff(targets, axis=0) > 0).all()

    model.set_level(740.0)  # closes below the barrier
    model.day_index += 1
    issuers.begin_day()
    assert issuers.tranche_knocked_in.all()
    assert issuers.knock_in_count == issuers.tranche_s0.size
    assert issuers.knocked_in_notional == pytest.approx(issuers.tranche_notional.sum())
    assert (issuers.hedge_target() < targets[-1]).all()


def test_knock_out_reissues_at_the_current_level():
    model, issuers = _issuers()
    _uniform_book(issuers, model)
    notional = issuers.tranche_notional.sum()
    model.day_index = OBSERVATION_DAYS * 5 - 100 + 1  # last close is an observation day
    model.set_level(1050.0)
    issuers.begin_day()
    assert issuers.knock_out_count == issuers.tranche_s0.size
    assert issuers.tranche_s0 == pytest.approx(1050.0)
    assert (issuers.tranche_issue_day == model.day_index - 1).all()
    assert issuers.tranche_notional.sum() == pytest.approx(notional)


def test_decide_buys_towards_the_target_at_the_limit_price():
    model, issuers = _issuers()
    _uniform_book(issuers, model)
    orders = issuers.decide(issuers.rows)
    target = issuers.hedge_target()
    assert orders.side.tolist() == [1, 1]
    assert orders.stock.tolist() == [61, 62]  # IC, IM
    np.testing.assert_array_equal(orders.lots, np.ceil(CFG.hedge_lag * np.rint(target)))
    assert (orders.price == model.market.limit_price(orders.stock, orders.side)).all()
    assert issuers.forced_sales_cny == 0.0
    assert model.market.cancelled  # own resting orders withdrawn first


def test_knock_in_dump_is_sold_and_counted_as_forced_sales():
    model, issuers = _issuers()
    _uniform_book(issuers, model)
    model.set_level(760.0)
    model.steps = 1
    issuers.decide(issuers.rows)  # records each tranche's hedge
    model.ledger.futures[:, 1:] = np.rint(issuers.hedge_target())

    model.set_level(740.0)
    model.day_index += 1
    issuers.begin_day()
    model.steps = 2
    orders = issuers.decide(issuers.rows)
    assert orders.side.tolist() == [-1, -1]
    price = model.market.last[orders.stock] * 0.2 * np.array([200, 200])
    assert 0.0 < issuers.forced_sales_cny <= float(np.dot(orders.lots, price)) + 1e-6

    model.steps = 3
    together = copy.deepcopy(issuers)
    together.decide(together.rows)
    issuers.decide(np.array([0]))  # one row at a time, as the per-agent engine does
    issuers.decide(np.array([1]))
    assert issuers.forced_sales_cny == together.forced_sales_cny


def test_per_agent_rows_match_vectorized():
    _, issuers = _issuers()
    together = issuers.decide(issuers.rows)
    apart = [issuers.decide(np.array([r])) for r in issuers.rows]
    np.testing.assert_array_equal(together.lots, np.concatenate([o.lots for o in apart]))
    agents = issuers.agents.to_list()
    assert agents[0].hedge_target > 0
    assert agents[1].tranches.size == CFG.issue_span_days


def test_a_vol_too_small_to_move_keeps_the_level_without_warnings():
    """Found by the property test: a tiny vol squared the far nodes to inf (a numpy
    overflow warning); their weight is zero, so the level stays put, silently."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        w = _transition_weights(1e-160, 0.01)
    assert w.sum() == 1.0 and w[w.size // 2] == 1.0


def _numpy_record_dump(issuers: SnowballIssuers, mine: np.ndarray, contracts: np.ndarray):
    """``SnowballIssuers._record_dump`` as it was in numpy passes."""
    now = np.where(mine, contracts, 0.0)  # (m,) contracts of the tranches of ``mine``
    x = issuers._levels()[issuers.tranche_underlying] / issuers.tranche_s0
    past_barrier = (
        mine & issuers.tranche_alive & (issuers.tranche_knocked_in | (x < issuers.cfg.knock_in))
    )
    drop = np.fmax(issuers.tranche_contracts - now, 0.0)  # (m,) 0 where there is no record
    released = np.where(past_barrier, drop, 0.0)
    issuers.tranche_contracts = np.where(mine, now, issuers.tranche_contracts)
    return np.bincount(issuers.tranche_underlying, released, minlength=2)


def _numpy_decide(issuers: SnowballIssuers, rows: np.ndarray) -> Orders:
    """``SnowballIssuers.decide`` as it was in numpy passes (without the cancels), with
    ``_book_forced_sales``."""
    model, market = issuers.model, issuers.market
    accounts = issuers.accounts[rows]
    chosen = np.zeros(issuers.n, dtype=bool)
    chosen[rows] = True
    mine = chosen[issuers.tranche_underlying]
    contracts = issuers._contracts()
    issuers.pending_dump += _numpy_record_dump(issuers, mine, contracts)
    target = issuers.hedge_target(contracts)[rows]  # (r,)
    held = model.ledger.futures_position(accounts)[np.arange(rows.size), FUTURES_ROWS[rows]]
    gap = np.rint(target) - held  # (r,) contracts
    lots = np.ceil(issuers.cfg.hedge_lag * np.abs(gap))
    side = np.sign(gap).astype(np.int64)
    instrument = np.asarray(model.futures.instrument)[FUTURES_ROWS[rows]]
    excess = held - np.rint(target)
    dump = issuers.pending_dump
    dump[rows] = np.clip(dump[rows], 0.0, np.maximum(excess, 0.0))
    forced = np.where(side < 0, np.minimum(lots, dump[rows]), 0.0)  # (r,)
    dump[rows] -= forced
    points = np.asarray(market.last, dtype=np.float64)[instrument] * TICK_POINTS
    value = forced * points * np.asarray(model.futures.multiplier)[FUTURES_ROWS[rows]]
    issuers.forced_sales_cny += float(value.sum())
    orders = Orders(accounts, instrument, side, market.limit_price(instrument, side), lots)
    return orders.select(orders.lots > 0)


def _assert_decides_as_numpy(issuers: SnowballIssuers, rows: np.ndarray) -> Orders:
    issuers.forced_sales_cny, issuers._step_begun = 0.0, issuers.model.steps  # no reset
    kept = copy.deepcopy(
        (issuers.pending_dump, issuers.tranche_contracts, issuers.forced_sales_cny)
    )
    got = issuers.decide(rows)
    got_state = copy.deepcopy(
        (issuers.pending_dump, issuers.tranche_contracts, issuers.forced_sales_cny)
    )
    issuers.pending_dump, issuers.tranche_contracts, issuers.forced_sales_cny = kept
    want = _numpy_decide(issuers, rows)
    for name in ("account", "stock", "side", "price", "lots"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
        assert getattr(got, name).dtype == getattr(want, name).dtype
    np.testing.assert_array_equal(got_state[0], issuers.pending_dump)
    np.testing.assert_array_equal(got_state[1], issuers.tranche_contracts)
    assert got_state[2] == issuers.forced_sales_cny
    return got


def test_compiled_hedge_step_matches_the_numpy_rules_bit_for_bit():
    """Books hedging up, then dumping after a knock-in (some tranches ended, some without a
    record, one book's dump beyond what it holds over its target), all rows and one at a
    time: the same orders, dumps pending, records and forced sales."""
    model, issuers = _issuers()
    _uniform_book(issuers, model)
    model.futures.multiplier = np.array([300, 200, 250])  # IC and IM apart
    model.set_level(760.0)
    model.steps = 1
    up = _assert_decides_as_numpy(issuers, issuers.rows)
    assert (up.side > 0).all()
    model.ledger.futures[:, 1:] = np.rint(issuers.hedge_target())
    model.set_level(740.0)
    model.day_index += 1
    issuers.begin_day()
    issuers.tranche_alive[::5] = False  # ended
    issuers.tranche_contracts[1::7] = np.nan  # no record yet
    issuers.pending_dump[1] = 1e6  # more than the book holds over its target
    model.steps = 2
    down = _assert_decides_as_numpy(issuers, issuers.rows)
    assert (down.side < 0).all() and issuers.forced_sales_cny > 0
    model.set_level(735.0)
    model.steps = 3
    _assert_decides_as_numpy(issuers, np.array([1]))
    _assert_decides_as_numpy(issuers, np.array([0]))
