"""MarketModel as a Mesa model: agents, DataCollector, batch_run, determinism, engines."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt

import mesa
import numpy as np
import pandas as pd
import pytest

from agents.base import ArrayAgent
from agents.fundamental_trader import FundamentalTraders
from agents.market_maker import (
    FuturesMakers,
    MarketMaker,
    MarketMakers,
    _taken_off,
    ladder_orders,
)
from agents.noise_trader import NoiseTrader
from experiments.scenarios import load_scenario, scenario_names
from model import ConfigError, MarketModel
from model.calendar import trading_days
from model.futures import FuturesSpec, expiry_days
from model.indices import Indices
from model.orders import Orders
from tests.conftest import SMALL


def _frame(seed: int, **extra) -> pd.DataFrame:
    model = MarketModel(rng=seed, **{**SMALL, **extra})
    model.run()
    return model.datacollector.get_model_vars_dataframe()


def test_agents_are_mesa_agents_viewing_their_rows(small_model):
    m = small_model
    assert all(isinstance(a, mesa.Agent) and isinstance(a, ArrayAgent) for a in m.agents)
    counts = {t.__name__: len(s) for t, s in m.agents_by_type.items()}
    assert counts["NoiseTrader"] == 300 and counts["MarketMaker"] == 4
    trader = m.agents_by_type[NoiseTrader][5]
    m.ledger.cash[trader.account] += 12_345
    assert trader.cash == pytest.approx(m.ledger.cash[trader.account] / 100)
    maker = m.agents_by_type[MarketMaker][0]
    held = maker.holdings()
    assert set(maker.stocks.tolist()) <= set(held)


def test_agents_are_built_at_first_use_numbered_as_at_set_up():
    """Set-up makes no mesa agents (a vectorized run never reads them); the first to ask,
    here the last population, gets every population's, numbered in population order."""
    model = MarketModel(rng=1, **SMALL)
    assert all(pop._agents is None for pop in model.populations)
    assert len(model._all_agents) == 0
    last = model.populations[-1]
    ids = [a.unique_id for a in last.agents]
    assert all(pop._agents is not None for pop in model.populations)
    total = sum(pop.n for pop in model.populations)
    assert ids == list(range(total - last.n + 1, total + 1))
    assert len(model.agents) == total


def test_populations_hold_the_agents_create_agents_would_make(small_model):
    """Each population's AgentSet: one agent of its class per row, in row order, numbered
    on from the population before, as ``Agent.create_agents`` makes them."""
    next_id = 1
    for pop in small_model.populations:
        agents = list(pop.agents)
        assert type(pop.agents) is mesa.agent.AgentSet and len(agents) == pop.n
        assert all(type(a) is pop.agent_class and a.population is pop for a in agents)
        assert [a.row for a in agents] == list(range(pop.n))
        assert [a.unique_id for a in agents] == list(range(next_id, next_id + pop.n))
        next_id += pop.n
    assert next_id - 1 == len(small_model.agents)
    model = mesa.Model(rng=1)
    pop = small_model.populations[0]
    made = pop.agent_class.create_agents(model, 3, population=pop, row=[0, 1, 2])
    assert [(a.unique_id, a.row) for a in made] == [(1, 0), (2, 1), (3, 2)]


def test_datacollector_has_a_row_per_step_with_index_levels(small_model):
    small_model.run()
    df = small_model.datacollector.get_model_vars_dataframe()
    assert len(df) == small_model.total_steps
    for col in ("step", "date", "csi300", "csi500", "csi1000", "csi2000", "microcap", "turnover"):
        assert col in df.columns
    assert df["step"].tolist() == list(range(1, small_model.total_steps + 1))
    assert (df["turnover"] > 0).all()
    assert df["date"].iloc[0] == "2023-01-03"


def test_same_seed_same_output_other_seed_different():
    a, b, c = _frame(3), _frame(3), _frame(4)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["microcap"], c["microcap"])


def test_batch_run_varies_dotted_parameters():
    results = mesa.batch_run(
        MarketModel,
        parameters={
            **{k: v for k, v in SMALL.items() if k != "universe.n_stocks"},
            "universe.n_stocks": [30, 50],
        },
        rng=[1],
        number_processes=1,
        max_steps=8,
        display_progress=False,
    )
    frame = pd.DataFrame(results)
    assert sorted(frame["universe.n_stocks"].unique()) == [30, 50]
    assert {"microcap", "csi300", "turnover"} <= set(frame.columns)


def test_bad_override_is_refused_early():
    with pytest.raises(ConfigError, match=r"universe.n_stocks = 5: must be in \[10, 20000\]"):
        MarketModel(rng=1, **{"universe.n_stocks": 5})
    with pytest.raises(ConfigError, match="unknown key"):
        MarketModel(rng=1, **{"universe.nstocks": 50})


def test_per_agent_engine_runs_the_same_rules():
    vec = MarketModel(rng=9, **SMALL)
    per = MarketModel(rng=9, engine="agents", **SMALL)
    for _ in range(8):
        vec.step()
        per.step()
    # Same universe and rules; order of execution changes draws, so prices differ only a little.
    assert np.array_equal(vec.universe.price0, per.universe.price0)
    gap = np.abs(np.log(vec.market.last / per.market.last))
    assert np.median(gap) < 0.05
    for m in (vec, per):
        assert m.ledger.conservation_error()[0] == 0


def _fills_by_key(m: MarketModel) -> dict[int, int]:
    """Shares each (account, stock) traded in the last auction, keyed as the ledger keys."""
    account, stock, signed, _ = m.market.last_fills
    key = account * m.ledger.n_stocks + stock
    unique, inverse = np.unique(key, return_inverse=True)
    traded = np.bincount(inverse, signed).astype(int)
    return dict(zip(unique.tolist(), traded.tolist(), strict=True))


def test_engines_agree_exactly_when_the_rules_draw_no_random_numbers():
    """Makers and fundamental traders only (no draws): the same prices and volumes every step.

    Fills may differ by a lot an order: at an auction's marginal level the leftover lots
    of the pro rata go one each to the earliest orders, and ``shuffle_do`` orders the
    agents differently from the vectorized engine's row order. So in each auction an
    account's fill in a stock differs by at most a lot for each order it has there (a
    value investor with two buy orders in a stock locked limit-up can differ by two).
    Totals per stock are the same.
    """
    config = {**SMALL, "noise_traders.n_agents": 0}
    vec = MarketModel(rng=9, **config)
    per = MarketModel(rng=9, engine="agents", **config)
    lot, n = vec.config.market.lot, vec.ledger.n_stocks
    orders: dict[int, int] = {}  # (account, stock) key -> orders in the auction's book
    clear = vec.market.clear

    def counting_clear():
        book = vec.market.book
        unique, count = np.unique(book.account * n + book.stock, return_counts=True)
        orders.clear()
        orders.update(zip(unique.tolist(), count.tolist(), strict=True))
        return clear()

    vec.market.clear = counting_clear
    differed = 0
    while vec.running:
        vec.step()
        per.step()
        assert np.array_equal(vec.market.last, per.market.last)
        assert np.array_equal(vec.market.volume, per.market.volume)
        fills, other = _fills_by_key(vec), _fills_by_key(per)
        for key in fills.keys() | other.keys():
            gap = abs(fills.get(key, 0) - other.get(key, 0))
            assert gap <= lot * orders.get(key, 0), (vec.steps, divmod(key, n), gap)
            differed += gap > 0
    assert per.steps == vec.total_steps
    assert np.array_equal(vec.ledger.key, per.ledger.key)
    assert np.array_equal(vec.ledger.shares_by_stock(), per.ledger.shares_by_stock())
    assert differed  # the order of execution shows, and is bounded
    for m in (vec, per):
        cash, shares = m.ledger.conservation_error()
        assert cash == 0 and not shares.any()


ORDER_COLUMNS = ("account", "stock", "side", "price", "lots", "duress")


def _order_rows(orders: Orders) -> list[np.ndarray]:
    """The orders' columns, rows sorted: the same orders in any order compare equal."""
    cols = [np.asarray(getattr(orders, k)).astype(np.int64) for k in ORDER_COLUMNS]
    at = np.lexsort(cols[::-1])
    return [c[at] for c in cols]


def test_every_rule_without_draws_decides_row_by_row_as_for_all_rows_at_once():
    """What the per-agent engine asks of each rule, one row at a time, gives the orders
    and state the vectorized engine's one call for all rows gives, on the episode's
    populations under the lending curb, with products cutting and stopped. Noise traders
    and retail investors draw random numbers in their rules, so their draws, and with
    them their orders, follow the order of the calls (``test_per_agent_engine_...``)."""
    from agents.neutral_fund import STOPPED, WARNED

    overrides = {
        "universe.n_stocks": 200,
        "retail.n_agents": 500,
        "public_funds.n_funds": 150,  # 6 funds at 200 stocks
        "market.start": "2024-01-22",
        "market.end": "2024-02-08",
    }
    model = MarketModel(load_scenario("jan2024", overrides=overrides), rng=3)
    while model.date < dt.date(2024, 2, 7):
        model.step()
    model.neutral.state[::3] = WARNED
    model.neutral.state[1::5] = STOPPED
    assert (model.lending.recall_due > 0).any()
    random_rules = {"NoiseTraders", "RetailChasers"}
    checked = []
    for i, population in enumerate(model.populations):
        name = type(population).__name__
        if name in random_rules:
            continue
        together, apart = copy.deepcopy(model), copy.deepcopy(model)
        for m in (together, apart):
            m.steps += 1  # the next step's decisions
        mine = together.populations[i]
        theirs = apart.populations[i]
        all_rows = Orders.concat(mine.decide_parts(mine.rows))
        # As the engines call them: the per-agent one ``decide``, the vectorized one
        # ``decide_parts``.
        by_row = Orders.concat([theirs.decide(np.array([r])) for r in theirs.rows])
        for a, b in zip(_order_rows(all_rows), _order_rows(by_row), strict=True):
            np.testing.assert_array_equal(a, b, err_msg=name)
        for key, value in vars(mine).items():
            if isinstance(value, np.ndarray):
                np.testing.assert_array_equal(value, vars(theirs)[key], err_msg=f"{name}.{key}")
        checked.append((name, len(all_rows)))
    traded = {name for name, n in checked if n > 0}
    assert {"NeutralFunds", "Arbitrageurs", "Speculators", "PublicMicroCapFunds"} <= traded
    assert {"SnowballIssuers", "NationalTeam", "FundamentalTraders"} <= traded


def test_counterfactuals_of_one_seed_share_the_news():
    """Common random numbers: removing an agent type leaves the fundamental path alone."""
    a = MarketModel(rng=5, **SMALL)
    b = MarketModel(rng=5, **{**SMALL, "noise_traders.n_agents": 50})
    for _ in range(12):
        a.step()
        b.step()
    assert np.array_equal(a.fundamentals.log_value, b.fundamentals.log_value)
    assert not np.array_equal(a.market.last, b.market.last)  # the agents did differ


def test_news_indices_follow_values_and_nothing_else():
    """Without news the news indices stay at their base while prices move; with news a
    cap-weighted tier's news level is its members' float value against the start."""
    quiet = {"fundamentals.market_vol": 0.0, "fundamentals.idio_vol": 0.0}
    quiet |= {"fundamentals.size_vol": 0.0, "fundamentals.market_drift": 0.0}
    frame = _frame(3, **quiet)
    news = frame[[f"{n}_news" for n in ("csi300", "csi500", "csi1000", "csi2000", "microcap")]]
    assert (news.to_numpy() == 1000.0).all()
    assert frame["csi300"].nunique() > 1  # the agents still traded

    model = MarketModel(rng=3, **{**SMALL, "universe.csi_rebalance_days": 1000})
    value0 = model.fundamentals.value_fen()
    model.run()
    value, tier, shares = (
        model.fundamentals.value_fen(),
        model.indices.tier,
        model.universe.float_shares,
    )
    for t in range(4):
        members = tier == t
        expected = (shares * value)[members].sum() / (shares * value0)[members].sum()
        assert model.indices.news[t] == pytest.approx(1000.0 * expected, rel=1e-9)


def test_every_stock_has_a_value_investor_watching_it():
    # 10 investors x 20 stocks would leave 100 of 300 stocks without an anchor.
    m = MarketModel(rng=1, **{"universe.n_stocks": 300, "fundamental_traders.n_agents": 10})
    funds = next(p for p in m.populations if isinstance(p, FundamentalTraders))
    covered = np.unique(funds.coverage)
    assert covered.size == m.universe.n


@pytest.mark.parametrize("name", scenario_names())
def test_every_shipped_scenario_builds_and_trades_a_week(name: str):
    """Each scenario file, shrunk to 150 stocks and its first week, runs with its agent
    types all trading and the books conserved."""
    cfg = load_scenario(name)
    small = {"universe.n_stocks": 150, "market.end": cfg.market.start + dt.timedelta(days=7)}
    if cfg.retail.n_agents:
        small["retail.n_agents"] = 500
    model = MarketModel(cfg.with_overrides(small), rng=1)
    model.run()
    cash, shares = model.ledger.conservation_error()
    assert cash == 0 and not shares.any()
    assert model.datacollector.get_model_vars_dataframe()["turnover"].sum() > 0
    kinds = {type(p).__name__ for p in model.populations}
    if cfg.speculators.capital_bn > 0:
        assert {"Speculators", "CarryArbitrageurs"} <= kinds


def _numpy_taken_off(makers, chosen: np.ndarray) -> np.ndarray:
    """The makers' (Q, 2) lots taken, as the numpy passes found them before ``_taken_off``."""
    account, traded, signed = makers.taken()
    maker = account - makers.accounts[0]
    mine = (maker >= 0) & (maker < makers.n)
    mine[mine] = chosen[maker[mine]]
    slot = np.searchsorted(makers.instrument, traded[mine])
    flat = 2 * slot + (signed[mine] < 0)
    taken = np.bincount(flat, np.abs(signed[mine]), minlength=makers.depth.size)
    return taken.reshape(makers.depth.shape)


def test_lots_taken_off_the_makers_match_the_numpy_passes():
    """Stock and futures makers, all of them or some: the compiled pass adds up the lots
    the last auction took off each ladder side, bit for bit as the bincount did."""
    model = MarketModel(rng=3, **SMALL)
    seen = 0
    for _ in range(6):
        model.step()
        for makers in model.populations:
            if not isinstance(makers, MarketMakers | FuturesMakers):
                continue
            for rows in (makers.rows, makers.rows[1:], makers.rows[:1]):
                chosen = np.zeros(makers.n, dtype=bool)
                chosen[rows] = True
                account, traded, signed = makers.taken()
                got = _taken_off(
                    account, traded, signed, makers.accounts[0], chosen, makers.instrument
                )
                want = _numpy_taken_off(makers, chosen)
                np.testing.assert_array_equal(got, want)
                assert got.dtype == want.dtype
                seen += int((want > 0).sum())
                # Instruments with gaps between them: each fill's slot by bisection.
                spread = _taken_off(
                    account, 3 * traded + 1, signed, makers.accounts[0], chosen,
                    3 * makers.instrument + 1,
                )  # fmt: skip
                np.testing.assert_array_equal(spread, want)
    assert seen > 0


def _gathered_decide(makers, rows: np.ndarray):
    """The makers' ``decide`` as it was before the slices: every array gathered at ``q``."""
    market = makers.market
    chosen = np.zeros(makers.n, dtype=bool)
    chosen[rows] = True
    q = np.flatnonzero(chosen[makers.maker_of])
    instrument = makers.instrument[q]
    accounts = makers.accounts[makers.maker_of[q]]
    market.cancel_accounts(makers.accounts[rows])
    taken = _taken_off(*makers.taken(), makers.accounts[0], chosen, makers.instrument)
    depth = np.maximum(makers.depth[q] - taken[q], 0.0)
    depth += makers.replenish * (makers.target_depth(q)[:, None] - depth)
    makers.depth[q] = depth
    ref = makers.reference(q, accounts)
    k = makers.rung
    shown = depth * makers.side_scale(q, accounts)
    return Orders(
        *ladder_orders(
            accounts,
            instrument,
            ref,
            shown,
            1.0 - makers.spacing * k,
            1.0 + makers.spacing * k,
            k / makers.rung.sum(),
            makers.market.grid.lower,
            makers.market.grid.upper,
        )
    )


def test_ladder_rungs_beyond_the_limits_get_no_lots():
    """A bid rung below the day's lower limit or an ask rung above the upper one is not
    sent (no lots); rungs at the limits or within them keep theirs."""
    k = np.arange(1.0, 6.0)
    spacing = 0.02
    lower = np.array([0, 960, 0], np.int64)  # instrument 1: limits 960 .. 1040 fen
    upper = np.array([0, 1040, 0], np.int64)
    account, stock, side, price, lots = ladder_orders(
        np.array([7], np.int64),
        np.array([1], np.int64),
        np.array([1000.0]),
        np.array([[150.0, 150.0]]),
        1.0 - spacing * k,
        1.0 + spacing * k,
        k / k.sum(),
        lower,
        upper,
    )
    bid, ask = side > 0, side < 0
    np.testing.assert_array_equal(price[bid], [980, 960, 940, 920, 900])
    np.testing.assert_array_equal(price[ask], [1020, 1040, 1060, 1080, 1100])
    np.testing.assert_array_equal(lots[bid], [10, 20, 0, 0, 0])
    np.testing.assert_array_equal(lots[ask], [10, 20, 0, 0, 0])
    assert (account == 7).all() and (stock == 1).all()


def test_makers_deciding_together_take_slices_to_the_same_orders():
    """When every maker decides, ``decide`` reads the depth and the instruments as slices:
    the same orders, depth and news as the gathers at every quoted instrument, and the
    same as before for some makers alone."""
    a, b = (MarketModel(rng=3, **SMALL, **{"futures.enabled": True}) for _ in range(2))
    futures = 0
    for step in range(8):
        for model in (a, b):
            model.step()
        for mine, theirs in zip(a.populations, b.populations, strict=True):
            if not isinstance(mine, MarketMakers | FuturesMakers):
                continue
            rows = mine.rows if step % 3 else mine.rows[1:]
            got = mine.decide(rows)
            want = _gathered_decide(theirs, np.array(rows))
            for g, w in zip(got.columns(), want.columns(), strict=True):
                np.testing.assert_array_equal(g, w)
                assert g.dtype == w.dtype
            np.testing.assert_array_equal(mine.depth, theirs.depth)
            if isinstance(mine, MarketMakers):
                np.testing.assert_array_equal(mine.news, theirs.news)
            assert a.market._pending == b.market._pending
            futures += isinstance(mine, FuturesMakers)
    assert futures > 0


def test_recorded_basis_is_the_basis_after_each_step():
    """The data collector's three basis columns: ``basis()`` after the step, worked out once."""
    model = MarketModel(rng=2, **SMALL, **{"futures.enabled": True})
    seen = []
    for _ in range(5):
        model.step()
        seen.append(model.basis())
    frame = model.datacollector.get_model_vars_dataframe()
    basis = frame[["if_basis", "ic_basis", "im_basis"]].to_numpy()
    assert np.isfinite(basis).all() and len(np.unique(basis[:, 1])) > 1
    np.testing.assert_array_equal(basis, seen)


def test_step_records_are_what_mesas_collector_records():
    """The model's collector (no deep copy per value) against mesa's own ``collect`` of
    the same reporters, step by step over days with futures, products and speculators:
    the same table, values and dtypes; with a reporter added it falls back to mesa's."""
    extra = {
        "futures.enabled": True,
        "speculators.capital_bn": 200.0,
        "speculators.n_agents": 4,
        "neutral.n_funds": 500,  # some 4 products at 60 stocks
        "neutral.aum_bn": 300.0,
        "neutral.dma_share": 0.5,
    }
    model = MarketModel(rng=3, **{**SMALL, **extra})
    plain = mesa.DataCollector(model_reporters=model._reporters())
    for _ in range(9):
        model.step()
        plain.collect(model)
    got, want = model.datacollector.get_model_vars_dataframe(), plain.get_model_vars_dataframe()
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert got["speculator_futures"].abs().sum() > 0
    assert got[["neutral_nav", "neutral_nav_plain", "neutral_nav_dma"]].notna().all(axis=None)
    assert [type(v) for v in model.datacollector.model_vars["if_basis"]] == [
        type(v) for v in plain.model_vars["if_basis"]
    ]
    model.datacollector._new_model_reporter("doubled", lambda m: 2 * m.steps)
    model.step()
    assert model.datacollector.model_vars["doubled"] == [2 * model.steps]
    assert model.datacollector.model_vars["step"][-1] == model.steps


def _numpy_chain(indices, level, float_shares, old, new, day_level, day_base) -> None:
    """``Indices._chain`` in numpy passes: the reference for the compiled pass."""
    n_tiers = 4
    cap_old = float_shares * old.astype(np.float64)
    cap_gain = float_shares * (new - old).astype(np.float64)
    in_csi = indices.tier < n_tiers
    base = np.bincount(indices.tier[in_csi], cap_old[in_csi], minlength=n_tiers)
    gain = np.bincount(indices.tier[in_csi], cap_gain[in_csi], minlength=n_tiers)
    level[:n_tiers] *= 1.0 + gain / np.maximum(base, 1e-300)
    level[n_tiers] = day_level * np.mean(new[indices.micro] / day_base[indices.micro])


@pytest.mark.parametrize("n_stocks, microcap_count", [(1000, 400), (5000, 1500), (60, 400)])
def test_compiled_index_chain_matches_the_numpy_passes(n_stocks, microcap_count):
    """Prices (int64 fen) and fundamental values (float fen), a tier left empty, micro-caps
    under 8 and beyond 128, days of 4 slices with the micro-caps re-picked at some opens:
    the same levels to the bit, step after step."""
    rng = np.random.default_rng(n_stocks)
    float_shares = rng.integers(1, 10**6, n_stocks) * 100
    caps = rng.lognormal(20, 1.5, n_stocks)
    indices = Indices(caps, microcap_count)
    want = indices.level.copy()
    news = indices.news.copy()
    prices = rng.integers(100, 10**5, n_stocks)
    values = prices * rng.lognormal(0, 0.01, n_stocks)
    for step in range(20):
        if step % 4 == 0:
            if step % 8 == 4:
                indices.rebalance_micro(caps * rng.lognormal(0, 1.0, n_stocks))
            indices.open_day(prices, values)
            day = (want[4], news[4], prices.astype(np.float64), values.copy())
        new_prices = np.maximum(prices + rng.integers(-500, 500, n_stocks), 1)
        new_values = values * rng.lognormal(0, 0.02, n_stocks)
        indices.update(float_shares, prices, new_prices)
        _numpy_chain(indices, want, float_shares, prices, new_prices, day[0], day[2])
        np.testing.assert_array_equal(indices.level, want)
        indices.update_news(float_shares, values, new_values)
        _numpy_chain(indices, news, float_shares, values, new_values, day[1], day[3])
        np.testing.assert_array_equal(indices.news, news)
        prices, values = new_prices, new_values
    assert (want != 1000.0).all()


def test_indices_refuse_an_update_before_the_days_base():
    """The micro-cap index moves from the day's base, which ``open_day`` sets (a run calls
    it at its first step): an update before it fails, instead of guessing a base."""
    n = 50
    indices = Indices(np.geomspace(1e12, 1e8, n), 20)
    float_shares = np.full(n, 10**6, np.int64)
    prices = np.full(n, 1000, np.int64)
    with pytest.raises(RuntimeError, match="open_day"):
        indices.update(float_shares, prices, prices)
    with pytest.raises(RuntimeError, match="open_day"):
        indices.update_news(float_shares, prices * 1.0, prices * 1.0)
    assert (indices.level == 1000.0).all() and (indices.news == 1000.0).all()


def test_microcap_index_holds_the_previous_closes_weights_through_the_day():
    """Within a day the micro-cap level is the previous close's level times the members'
    mean relative since that close (weights reset once a day, not every slice): a member
    up 10% in one slice and back in the next leaves the level where it was; chained slice
    by slice it would not. The news twin alike; the CSI levels stay chain-linked."""
    n = 200
    caps = np.geomspace(1e12, 1e8, n)
    indices = Indices(caps, 400)
    members = np.flatnonzero(indices.micro)
    assert len(members) == 16
    float_shares = np.full(n, 10**6, np.int64)
    rng = np.random.default_rng(0)
    close = rng.integers(500, 5000, n).astype(np.int64)
    values = close * rng.lognormal(0, 0.05, n)
    indices.open_day(close, values)
    indices.update(float_shares, close, close)  # a first slice at the close's prices
    opened, news_opened = indices.level[4], indices.news[4]
    # Another day: the base is the previous close.
    day_close = np.maximum(close + rng.integers(-200, 200, n), 1)
    indices.update(float_shares, close, day_close)
    indices.open_day(day_close, values)
    level0, news0, csi0 = indices.level[4], indices.news[4], indices.level[:4].copy()
    assert level0 != opened
    prices = day_close.copy()
    moved = rng.lognormal(0, 0.03, n)
    for k in range(1, 4):  # three slices, members drifting
        new = np.maximum(np.rint(day_close * moved**k).astype(np.int64), 1)
        indices.update(float_shares, prices, new)
        prices = new
        want = level0 * np.mean(prices[members] / day_close[members])
        assert indices.level[4] == pytest.approx(want, rel=1e-13)
    # The CSI levels are still chained: buy-and-hold over the day for cap weights.
    for t in range(4):
        in_t = indices.tier == t
        if in_t.any():
            cap0 = (float_shares * day_close)[in_t].sum()
            want = csi0[t] * (float_shares * prices)[in_t].sum() / cap0
            assert indices.level[t] == pytest.approx(want, rel=1e-12)
    # A bounce: one member up 10% in a slice and back in the next.
    before = indices.level[4]
    bounced = prices.copy()
    bounced[members[0]] = np.rint(prices[members[0]] * 1.1)
    indices.update(float_shares, prices, bounced)
    assert indices.level[4] > before
    indices.update(float_shares, bounced, prices)
    assert indices.level[4] == before
    chained = before * (1 + (bounced[members[0]] / prices[members[0]] - 1) / len(members))
    chained *= 1 + (prices[members[0]] / bounced[members[0]] - 1) / len(members)
    assert abs(chained / before - 1) > 1e-5  # what chaining slice by slice would have left
    # The news twin: values move at the open; its level from the previous close's.
    new_values = values * rng.lognormal(0, 0.05, n)
    indices.update_news(float_shares, values, new_values)
    want = news0 * np.mean(new_values[members] / values[members])
    assert indices.news[4] == pytest.approx(want, rel=1e-13)
    assert news_opened == news0


def _numpy_book_mid(market, result) -> np.ndarray:
    """``Market._book_mid`` as it was in numpy passes: the reference for the compiled pass."""
    fut = slice(market.n_stocks, None)
    n_levels = market.n_levels
    has_bid = result.bid_qty[fut] > 0
    has_ask = result.ask_qty[fut] > 0
    best_bid = n_levels - 1 - np.argmax(has_bid[:, ::-1], axis=1)
    best_ask = np.argmax(has_ask, axis=1)
    contract = np.arange(market.n_stocks, market.grid.n_stocks)
    mid = np.rint(
        (market.grid.price_of(contract, best_bid) + market.grid.price_of(contract, best_ask)) / 2
    ).astype(np.int64)
    return np.where(has_bid.any(axis=1) & has_ask.any(axis=1), mid, 0)


def test_compiled_book_mid_matches_the_numpy_passes():
    """The futures books as the auctions left them, then random books, one of them with a
    side empty, on grids of odd steps (mids halfway between two ticks round to even)."""
    model = MarketModel(rng=3, **SMALL, **{"futures.enabled": True})
    market = model.market
    rng = np.random.default_rng(3)
    zeros = 0
    for _ in range(5):
        model.step()
        result = market.last_clearing
        np.testing.assert_array_equal(market._book_mid(result), _numpy_book_mid(market, result))
        shape = result.bid_qty.shape
        for _ in range(20):
            bid = rng.integers(0, 3, shape) * (rng.random(shape) < 0.1)
            ask = rng.integers(0, 3, shape) * (rng.random(shape) < 0.1)
            one = int(rng.integers(shape[0] - 3, shape[0]))  # a futures book with a side empty
            (bid if rng.random() < 0.5 else ask)[one, :] = 0
            fake = dataclasses.replace(result, bid_qty=bid.astype(float), ask_qty=ask.astype(float))
            grid = market.grid
            market.grid = dataclasses.replace(grid, step=grid.step | 1)  # odd: mids at x.5
            want = _numpy_book_mid(market, fake)
            np.testing.assert_array_equal(market._book_mid(fake), want)
            market.grid = grid
            zeros += int((want == 0).sum())
    assert zeros > 0 and (want > 0).any()


def test_days_to_expiry_count_on_the_calendar_whatever_days_a_run_covers():
    """February 2024's contract expired on 02-19 (its third Friday, 02-16, fell in the
    Spring Festival closure): a run ending 02-08 counts to it as one ending 02-29 does,
    and a run starting 02-19 settles it on its first day."""
    trading = trading_days(dt.date(2024, 1, 22), dt.date(2024, 3, 1))
    full = FuturesSpec(10, expiry_days(trading), tuple(trading))
    cut = [d for d in trading if d <= dt.date(2024, 2, 8)]
    short = FuturesSpec(10, expiry_days(cut), tuple(cut))
    for i in range(len(cut)):
        assert short.days_to_expiry(i) == full.days_to_expiry(i)
    assert short.days_to_expiry(len(cut) - 1) == 11  # 02-08 to 02-19
    assert short.days_to_expiry(cut.index(dt.date(2024, 1, 31))) == 19
    late = [d for d in trading if d >= dt.date(2024, 2, 19)]
    assert expiry_days(late).tolist() == [0]
    assert FuturesSpec(10, expiry_days(late), tuple(late)).days_to_expiry(1) == 24  # to 03-15


def test_a_month_whose_expiry_came_before_the_first_day_has_none():
    days = [dt.date(2024, 1, 22), dt.date(2024, 1, 23), dt.date(2024, 2, 15)]
    days += [dt.date(2024, 2, 19), dt.date(2024, 2, 20)]
    # January's third Friday (01-19) is before the first day; February's (02-16) is a
    # holiday here, so its contract expires the next trading day.
    assert expiry_days(days).tolist() == [3]
    assert expiry_days([dt.date(2024, 1, 19), dt.date(2024, 1, 22)]).tolist() == [0]
