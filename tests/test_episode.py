"""The spiral, mechanism by mechanism, at small scale over several seeds.

The whole jan2024 episode, as calibrated (the 2023 run-up, the January dip, the
lending curb, the rescue), at 400 stocks is run three times per seed: as is, with
nobody forced to sell (``neutral.forced_selling = false``), and without
quant-neutral products. Forced selling must deepen the micro-cap fall, widen the
gap between the smallest caps and the CSI 300 in the crash window, and come before
further falls, and the products must account for much of the fall. Three scenarios
run beside it: without leverage (jan2024-no-leverage) no product may fail in the
crash window; without the trend followers (jan2024-no-speculators) the futures
discount must be shallower, and with them IC and IM must trade at a discount in late
January that deepens into the unwind; in jan2024-no-value-budget (value investors who
never step back) the fall must be shallower. The crash window's claims are held in
the seeds whose products all reach the window alive; a seed whose products failed
before it had its spiral then.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from experiments.episode import (
    CRASH_END,
    CRASH_START,
    basis_vs_forced_sales,
    crash_pace,
    daily,
    episode_figures,
    first_cut_date,
)
from experiments.run import run
from experiments.scenarios import load_scenario
from model.universe import INDEX_NAMES

SMALL = {"universe.n_stocks": 400, "retail.n_agents": 6000}
SEEDS = (1, 2, 3)
# The runs are shared by every test here: one xdist worker builds them once.
pytestmark = pytest.mark.xdist_group("episode")


def _micro_drawdown(frame) -> float:
    levels = np.concatenate([[1000.0], frame["microcap"].to_numpy()])
    return float(np.max(1 - levels / np.maximum.accumulate(levels)))


def _deepening(frame, twin) -> float:
    """How many times deeper the micro-cap's maximum drawdown is in ``frame`` than in its
    ``twin`` (the same seed with a channel switched off)."""
    return _micro_drawdown(frame) / max(_micro_drawdown(twin), 1e-9)


@pytest.fixture(scope="module")
def results():
    base = load_scenario("jan2024", overrides=SMALL)
    calm = base.with_overrides({"neutral.forced_selling": False})
    without = base.with_overrides({"neutral.n_funds": 0})
    return [tuple(run(config, seed) for config in (base, calm, without)) for seed in SEEDS]


@pytest.fixture(scope="module")
def runs(results):
    return [tuple(result.frame for result in trio) for trio in results]


@pytest.fixture(scope="module")
def pairs(runs):
    return [(with_fs, calm) for with_fs, calm, _ in runs]


def test_forced_selling_happens_only_when_allowed(pairs):
    for with_fs, without in pairs:
        assert with_fs["forced_sales"].sum() > 0
        assert without["liquidated_funds"].max() == 0


def test_forced_selling_deepens_the_micro_cap_fall(pairs):
    ratios = [_deepening(a, b) for a, b in pairs]
    assert all(r > 1.0 for r in ratios), ratios
    assert np.mean(ratios) > 1.2, ratios


def test_without_neutral_products_the_micro_cap_falls_less(runs):
    """The products deepen the micro-cap's fall in every seed, by over a tenth in every
    seed whose products meet the dip alive, and on average (at 400 stocks, seeds 1-3:
    2.1x, 2.4x and 2.6x; seed 2's products stop out from 2023-10-24; at 1,000 stocks,
    seeds 1-20, in all 20, a median 2.5x)."""
    ratios = [_deepening(a, c) for a, _, c in runs]
    assert all(r > 1.0 for r in ratios), ratios
    assert np.mean(ratios) > 1.3, ratios
    alive = [_deepening(a, c) for a, _, c in _alive(runs)]
    assert all(r > 1.1 for r in alive), alive


def _window_gap(frame) -> float:
    """Micro-cap drawdown over the crash window minus the CSI 300's, in points."""
    drawdown = episode_figures(frame)["crash_drawdown"]
    return 100 * (drawdown["microcap"] - drawdown["csi300"])


def _entered_alive(frame) -> bool:
    """Whether every product reached the crash window unliquidated.

    The window's claims are about an unwind inside it: where products failed before it
    (at 400 stocks, seed 2: from 2023-12-15) the spiral ran then, and the window holds
    what was left of it.
    """
    d = daily(frame).set_index("date")
    return bool(d.loc[d.index < CRASH_START, "liquidated_funds"].max() == 0)


def _alive(seeds: list) -> list:
    """The seeds' tuples whose first frame's products entered the window alive; not none."""
    kept = [item for item in seeds if _entered_alive(item[0])]
    assert kept, "no seed's products all reached the crash window"
    return kept


def test_forced_selling_widens_the_size_gap_in_the_crash_window(pairs):
    gaps = [(_window_gap(a), _window_gap(b)) for a, b in _alive(pairs)]
    assert all(with_fs < calm - 1.0 for with_fs, calm in gaps), gaps


def test_forced_sales_come_before_further_falls(pairs):
    # Pool seeds: today's forced sales against tomorrow's micro-cap return.
    sales, nxt = [], []
    for with_fs, _ in pairs:
        d = daily(with_fs)
        ret = np.diff(np.log(d["microcap"].to_numpy()))
        sales.append(d["forced_sales"].to_numpy()[:-1] / d["turnover"].to_numpy()[:-1])
        nxt.append(ret)
    corr = np.corrcoef(np.concatenate(sales), np.concatenate(nxt))[0, 1]
    assert corr < -0.1, corr


def test_the_unwind_is_dated_by_the_products_own_states(pairs):
    for with_fs, calm in pairs:
        d = daily(with_fs).set_index("date")
        first = first_cut_date(d)
        cutting = d["neutral_warned"] + d["neutral_stopped"]
        assert first is not None
        assert cutting.loc[first] > 0
        assert (cutting.loc[:first].iloc[:-1] == 0).all()
        assert first_cut_date(daily(calm).set_index("date")) is None  # nobody may cut


def test_flows_not_news_put_the_micro_caps_below_the_csi_300(runs):
    """In the crash window the agents' part (price drawdown minus news drawdown) of the
    micro-cap's fall is deeper than of the CSI 300's, with forced selling, in every seed
    whose products enter the window alive."""
    for with_fs, _, _ in _alive(runs):
        flows = episode_figures(with_fs)["flow_drawdown"]
        # The same from the table's own columns: each index's and its news twin's
        # deepest close in the window against the close before it.
        d = daily(with_fs).set_index("date")
        base, window = d.loc[d.index < CRASH_START].iloc[-1], d.loc[CRASH_START:CRASH_END]
        for name, value in flows.items():
            price = window[name].min() / base[name]
            news = window[f"{name}_news"].min() / base[f"{name}_news"]
            assert value == pytest.approx(price - news)
        assert flows["microcap"] < flows["csi300"] - 0.05, flows


def test_dma_products_lose_a_multiple_of_what_plain_ones_lose(runs):
    """Leverage at work: over the DMA products' worst three sessions from the crash window
    on (3x gross from their broker), they lose more than the plain products (about 1x)
    over the same sessions in every seed, and more than twice as much in every seed whose
    products all enter the window alive. Compared on the same sessions, not each kind's
    own worst: DMA products stopped out early lose nothing in the plain products' worst
    sessions, which may come weeks later. A seed whose DMA products were liquidated before
    the window (at 400 stocks, seed 2: from 2023-12-15) has less DMA exposure left to
    lose (measured: 2.5x, against 3.9x and 3.3x in seeds 1 and 3)."""
    for with_fs, _, _ in runs:
        worst = episode_figures(with_fs)["neutral_worst_three_days"]["dma"]
        d = daily(with_fs).set_index("date")
        nav = d["neutral_nav_plain"]
        end = nav.index.get_loc(worst["ended"])
        plain = nav.iloc[end] / nav.iloc[end - 3] - 1.0
        assert plain < 0.0 and worst["change"] < plain, (worst, plain)
        if _entered_alive(with_fs):
            assert worst["change"] < 2.0 * plain, (worst, plain)
    _alive(runs)


def _beside(scenario: str, runs) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """(jan2024 as is, ``scenario``) frames, seed by seed, at the same small scale."""
    cfg = load_scenario(scenario, overrides=SMALL)
    return [(base, run(cfg, seed).frame) for seed, (base, _, _) in zip(SEEDS, runs, strict=True)]


@pytest.fixture(scope="module")
def unlevered(runs):
    """jan2024-no-leverage (the same products, none run as DMA), seed by seed, beside jan2024."""
    return _beside("jan2024-no-leverage", runs)


def test_without_leverage_no_product_fails_in_the_crash_window(unlevered):
    """The stop-outs are the levered products': with every product at about 1x none is
    liquidated by the window's end, where jan2024 liquidates some in every seed.

    The size gap does not close seed by seed at this scale: the unlevered products still
    shrink their books as the hedge's cost passes the alpha their investors expect (at
    400 stocks, seeds 1 and 3, the micro-cap's shortfall against the CSI 300 in the
    window is 27.9 and 10.9 points without leverage, 24.4 and 36.4 with it). At 1,000
    stocks, seeds 1-20, leverage accounts for a median 16.3 of the shortfall's points in
    the 17 seeds whose products reach the window alive (by over 3 in 15), and the full
    order holds in 14 seeds with it, 8 without.
    """
    for base, flat in unlevered:
        assert base["liquidated_funds"].max() > 0
        d = daily(flat).set_index("date")
        assert d.loc[:CRASH_END, "liquidated_funds"].max() == 0


@pytest.fixture(scope="module")
def steadfast(runs):
    """jan2024-no-value-budget (value investors who bid whatever their book has lost)."""
    return _beside("jan2024-no-value-budget", runs)


def test_value_investors_who_step_back_let_the_fall_overshoot(steadfast):
    """The anchor is the value investors' bid: when a market-wide fall costs them their
    risk budget (jan2024), forced selling meets fewer bids, and the micro-cap's maximum
    drawdown over the run is deeper by over 5 points than with value investors who never
    step back, in every seed whose products meet the dip alive (at 400 stocks, seeds 1
    and 3: 23.2 and 25.9; seed 2's products fail in December, before the dip costs the
    value investors their budget: -0.3)."""
    for base, steady in _alive(steadfast):
        drawdowns = _micro_drawdown(base), _micro_drawdown(steady)
        assert drawdowns[0] > drawdowns[1] + 0.05, drawdowns
    for base, steady in steadfast:
        # The budget binds in the episode (at 400 stocks, seeds 1-3: down to 5%, 28% and
        # 5% of the full bid); without it the value investors always bid in full.
        assert episode_figures(base)["value_appetite_low"]["share"] < 0.5
        assert (steady["value_appetite"] == 1.0).all()
        assert "value_appetite_low" not in episode_figures(steady)


PESSIMIST_SEEDS = (1, 2, 3, 4, 5, 6)


@pytest.fixture(scope="module")
def pessimists(runs):
    """(jan2024-no-speculators, jan2024) frames, seeds 1-6 (1-3 are the module's runs)."""
    base = load_scenario("jan2024", overrides=SMALL)
    more = [run(base, seed).frame for seed in PESSIMIST_SEEDS[len(SEEDS) :]]
    frames = [frame for frame, _, _ in runs] + more
    cfg = load_scenario("jan2024-no-speculators", overrides=SMALL)
    return [(run(cfg, seed).frame, f) for seed, f in zip(PESSIMIST_SEEDS, frames, strict=True)]


def _basis(frame: pd.DataFrame, contract: str, figure: str) -> float:
    return episode_figures(frame)[contract][figure]


def test_pessimists_in_the_futures_deepen_the_discount(pessimists):
    """Trend followers selling futures in the fall, with the lending curb holding the
    arbitrageurs and the makers back: late January's IC and IM basis and their worst
    closes in the window sit lower than without them, by over 2 points a year, on
    average over the seeds and in most of them.

    Not in every seed: the speculators' selling also moves the products' unwind, and the
    products' buy-backs narrow the discount. Six seeds, not the module's three: a claim
    that holds in nine seeds of ten fails in two of three seeds about one time in forty,
    for each of four figures.
    """
    for contract in ("ic_basis", "im_basis"):
        for figure in ("late_january_mean", "worst_in_window"):
            change = np.array(
                [
                    _basis(spec, contract, figure) - _basis(base, contract, figure)
                    for base, spec in pessimists
                ]
            )
            assert change.mean() < -0.02, (contract, figure, change)
            assert (change < -0.02).sum() > len(change) / 2, (contract, figure, change)
    for base, spec in pessimists:
        assert (spec["speculator_futures"] != 0).any() and not base["speculator_futures"].any()


def test_ic_and_im_trade_at_a_discount_that_deepens_into_the_unwind(pessimists):
    """History's futures complex in January 2024: IC and IM below their indices in late
    January and further below at the window's worst close in most seeds, back up after
    the rescue in every seed, and IM's worst close after the January expiry (2024-01-19)
    in most seeds, in the weeks of the unwind.

    At 1,000 stocks, seeds 1-20, both trade at a discount in late January in all 20, and
    IM's worst close falls after 01-19 in 19 (on 02-05..08 in 19). Before the trend
    followers, the routed hedge and the lending-bound makers, IC traded at a premium in
    late January in all 20 and IM's worst close fell by 01-19 in 18.
    """
    frames = [spec for _, spec in pessimists]
    for contract in ("ic_basis", "im_basis"):
        late, worst, after = (
            np.array([_basis(f, contract, figure) for f in frames])
            for figure in ("late_january_mean", "worst_in_window", "after_rescue_mean")
        )
        assert (late < 0.0).sum() > len(frames) / 2, (contract, late)
        assert (worst < late - 0.05).sum() > len(frames) / 2, (contract, worst, late)
        assert (after > worst + 0.05).all(), (contract, after, worst)
    # Deepest in the unwind's weeks, not before them: after the January expiry.
    worst_day = [episode_figures(f)["im_basis"]["worst_day"] for f in frames]
    assert sum(day > "2024-01-19" for day in worst_day) > len(frames) / 2, worst_day


def test_forced_selling_makes_the_products_sellers_of_the_micro_caps_in_the_window(results):
    """Net purchases of the micro-cap members over the crash window, by agent type: over
    the seeds whose products enter the window alive the products buy less (or sell) when
    forced selling is on, in some seed forced selling makes sellers of buyers, and every
    share bought is a share someone sold.

    Not seed by seed: products cut just before the window rebuild their books in it, and
    where the first stop-out comes only near the window's end that can outweigh it. At 400
    stocks, seeds 1 and 3 (first stop-outs on 2024-01-22 and 02-02): -2.86% and +0.02% of
    the float bought against +2.22% and +1.18% without forced selling.
    """
    with_fs, calm = [], []
    for base, no_forcing, _ in results:
        a = base.summary["episode"]["net_buying"]["microcap"]
        b = no_forcing.summary["episode"]["net_buying"]["microcap"]
        assert abs(sum(a.values())) < 1e-4 and abs(sum(b.values())) < 1e-4
        if _entered_alive(base.frame):
            with_fs.append(a["NeutralFunds"])
            calm.append(b["NeutralFunds"])
    assert with_fs, "no seed's products all reached the crash window"
    assert sum(with_fs) < sum(calm), (with_fs, calm)
    # Where the unwind runs through the window, forced selling turns buyers into sellers
    # in some seed (at 400 stocks, seed 1).
    assert any(x < 0.0 < y for x, y in zip(with_fs, calm, strict=True)), (with_fs, calm)


def test_net_buying_by_tier_follows_each_buyer_to_its_tier(results):
    """Every tier's column sums to zero, and the national team, which buys the CSI 300 from
    01-22 and the CSI 500 and 1000 from 02-06, is a net buyer of those three tiers in the
    window and has bought none of the CSI 2000 or the micro-caps. Mislabelled tiers or
    prices read from the wrong stocks would break one of the three."""
    for base, _, _ in results:
        net = base.summary["episode"]["net_buying"]
        assert list(net) == ["csi300", "csi500", "csi1000", "csi2000", "microcap"]
        for tier, shares in net.items():
            assert abs(sum(shares.values())) < 1e-4, (tier, shares)
        team = {tier: shares["NationalTeam"] for tier, shares in net.items()}
        assert min(team["csi300"], team["csi500"], team["csi1000"]) > 0.0, team
        assert team["csi2000"] == 0.0 and team["microcap"] == 0.0, team


def test_the_run_up_is_split_up_to_the_close_before_the_window(results):
    """``microcap_runup`` covers the run's first day to the last close before the crash
    window, and its log gain is the micro-cap level's at that close, as the model's table
    has it. Without the products the index runs up further while the names' spread of
    daily returns widens (the products hold fixed weights, so they buy what falls)."""
    for base, _, without in results:
        runup = base.summary["episode"]["microcap_runup"]
        daily = base.frame.groupby("date").last()
        before = daily[daily.index < CRASH_START]
        assert runup["first"] == str(daily.index[0]) and runup["last"] == str(before.index[-1])
        assert runup["days"] == len(before)
        assert abs(runup["index_log"] - np.log(before["microcap"].iloc[-1] / 1000.0)) < 1e-9
        assert abs(runup["index"] - (before["microcap"].iloc[-1] / 1000.0 - 1.0)) < 1e-9
        bare = without.summary["episode"]["microcap_runup"]
        assert bare["dispersion"] > runup["dispersion"]
        assert bare["index_log"] > runup["index_log"]


def test_crash_pace_reads_closes_and_the_window_only():
    # Four slices a day. Slices before the close sit at 500, which a pace read off
    # every slice would take for a 50% fall. The CSI 1000's worst day is the first
    # one, measured against the close before the window. Locks outside the window
    # (40 before it, 50 after) must not count; inside it, 7 stocks lock mid-session.
    days = ["2023-12-28", "2023-12-29", "2024-01-02", "2024-01-03", "2024-01-04", "2024-02-08"]
    days += ["2024-02-19"]
    micro = [1000, 1000, 990, 960, 902.4, 900, 700]  # 01-04: -6%
    csi1000 = [1000, 1000, 930, 930, 920, 920, 600]  # 01-02: -7%
    locks = {("2023-12-29", 3): 40, ("2024-01-03", 1): 7, ("2024-02-19", 3): 50}
    rows = []
    for i, day in enumerate(days):
        for k in range(4):
            close = k == 3
            row = {n: 1000.0 if close else 500.0 for n in INDEX_NAMES}
            row.update(
                microcap=micro[i] if close else 500.0, csi1000=csi1000[i] if close else 500.0
            )
            rows.append({"date": day, **row, "limit_down_count": locks.get((day, k), 0)})
    frame = pd.DataFrame(rows)
    pace = crash_pace(frame)
    assert pace["worst_session"]["microcap"] == pytest.approx(-0.06)
    assert pace["worst_session_day"]["microcap"] == "2024-01-04"
    assert pace["worst_session"]["csi1000"] == pytest.approx(-0.07)
    assert pace["worst_session_day"]["csi1000"] == "2024-01-02"
    assert pace["worst_session"]["csi300"] == 0.0
    assert (pace["limit_down_peak"], pace["limit_down_peak_day"]) == (7, "2024-01-03")


def test_basis_against_forced_sales_leaves_out_rolls_and_the_days_before():
    # Daily closes from 2023-12-28. On the window's days the basis rises (the discount
    # narrows) when there are forced sales and falls when there are none. Two days would
    # turn the sign if counted: 2024-01-22, the session after the January expiry, when
    # the basis drops to the next contract's on the heaviest forced sales; and
    # 2023-12-29, before the window.
    days = ["2023-12-28", "2023-12-29", "2024-01-02", "2024-01-03", "2024-01-04"]
    days += ["2024-01-05", "2024-01-18", "2024-01-19", "2024-01-22", "2024-01-23"]
    sales = [0.0, 9e9, 5e8, 0.0, 7e8, 0.0, 6e8, 4e8, 9e9, 0.0]
    basis = [0.0, -0.5, -0.45, -0.5, -0.44, -0.5, -0.43, -0.40, -0.9, -0.95]
    d = pd.DataFrame({"forced_sales": sales, "im_basis": basis}, index=pd.Index(days))
    corr = basis_vs_forced_sales(d, "im_basis")
    change = np.diff(basis)[1:]  # the window's changes, from 2024-01-02's on
    counted = np.delete(np.arange(change.size), 6)  # without 2024-01-22's
    expected = np.corrcoef(np.array(sales[2:])[counted], change[counted])[0, 1]
    assert corr == pytest.approx(expected) and corr > 0.9
    # First change counted: 2024-01-02 against 2023-12-29's close.
    d.loc["2024-01-02", "im_basis"] = -1.5
    assert basis_vs_forced_sales(d, "im_basis") < 0
    # Nothing to correlate without forced sales.
    assert basis_vs_forced_sales(d.assign(forced_sales=0.0), "im_basis") is None


def test_a_day_sums_its_flows_and_reads_its_levels_at_the_close():
    """Turnover and forced sales are per-step amounts (a day is their sum); index levels
    are read at the day's last step. Turnover was read at the close alone, a quarter of
    the day, so a day's forced sales as a share of turnover were about four times too
    large."""
    frame = pd.DataFrame(
        {
            "date": ["2024-01-02"] * 4 + ["2024-01-03"] * 4,
            "turnover": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
            "forced_sales": [0.0, 1.0, 0.0, 2.0, 0.0, 0.0, 3.0, 0.0],
            "microcap": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0],
        }
    )
    d = daily(frame)
    assert d["turnover"].tolist() == [10.0, 26.0]
    assert d["forced_sales"].tolist() == [3.0, 3.0]
    assert d["microcap"].tolist() == [4.0, 8.0]


def test_basis_figures_of_dates_a_run_does_not_reach_are_none():
    """A run that ends on the window's last day has no after-the-rescue basis: None, as
    its rebound, not the NaN of an empty mean (which JSON cannot hold)."""
    days = pd.bdate_range("2023-12-20", "2024-02-08")
    frame = pd.DataFrame({"date": days.strftime("%Y-%m-%d")})
    for name in INDEX_NAMES:
        frame[name] = 1000.0
    frame["ic_basis"], frame["im_basis"] = -0.1, -0.2
    frame["forced_sales"] = np.arange(len(frame), dtype=float)
    frame["liquidated_funds"] = 0
    figures = episode_figures(frame)
    assert figures["microcap_rebound"] is None
    assert figures["im_basis"]["after_rescue_mean"] is None
    assert figures["im_basis"]["late_january_mean"] == pytest.approx(-0.2)
