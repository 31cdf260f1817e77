"""The browser view without a browser: its model factory, chart options and Solara page.

Solara renders the page into ipywidgets in-process (``solara.render``), so these
tests click Mesa's real Step and Reset buttons and read the chart widgets, at a
small scale so they stay quick.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from typing import Any

import ipyvuetify as v
import pytest
import solara
from mesa.visualization import SolaraViz
from solara.components.echarts import EchartsWidget

from experiments import view
from model import MarketModel

# A few seconds a model: 60 stocks, 2,000 retail investors.
SMALL: dict[str, Any] = {"universe.n_stocks": 60, "retail.n_agents": 2000}
# Smaller still for the whole 644-step run (about 10 ms a step).
TINY: dict[str, Any] = {
    "universe.n_stocks": 40,
    "retail.n_agents": 500,
    "noise_traders.n_agents": 300,
    "fundamental_traders.n_agents": 40,
    "market_makers.n_agents": 4,
}


def small_model(scenario: str = "jan2024", **params: Any) -> view.ViewModel:
    return view.make_model(scenario, 3, **{**SMALL, **params})


def render_app(model: solara.Reactive, params: dict[str, Any]) -> Any:
    """Render SolaraViz's controls and the dashboard as the server does (inside AppLayout)."""

    @solara.component
    def App() -> None:
        with solara.AppLayout():
            SolaraViz(model, components=[], model_params=params, name="test")
            view.Dashboard(model.value)

    _, rc = solara.render(App(), handle_error=False)
    return rc


def small_params() -> dict[str, Any]:
    """The page's controls, with the scale pinned small (fixed values pass through Reset)."""
    return {**view.model_params(), **SMALL}


def texts(rc: Any) -> list[str]:
    """Every text on the page, depth first."""
    out: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, str):
            out.append(node)
        for child in getattr(node, "children", None) or ():
            walk(child)
        for item in getattr(node, "items", None) or ():  # the grid and drawer keep widgets here
            walk(item)

    walk(rc.container)
    return out


def time_text(rc: Any) -> str:
    return next(t for t in texts(rc) if t.startswith("Time: "))


def json_safe(option: dict[str, Any]) -> None:
    json.dumps(option, allow_nan=False)  # what the browser's JSON.parse would accept


# -- the model factory --------------------------------------------------------------------
def test_overrides_clamp_and_keep_baseline_to_the_scenario():
    out = view.view_overrides(
        {
            "neutral.dma_leverage": 9.0,  # above the slider: clamped to 4
            "retail.herding": view.BASELINE["retail.herding"],  # untouched: not an override
            "lending.t1_date": "2024-01-15",
            "market.end": "2023-08-01",  # no control for it: passed through
        }
    )
    assert out == {
        "neutral.dma_leverage": 4.0,
        "lending.t1_date": "2024-01-15",
        "market.end": "2023-08-01",
        "universe.n_stocks": view.STOCK_CHOICES[0],
    }


def test_counterfactual_scenarios_are_not_undone_by_slider_defaults():
    defaults = {k: p["value"] for k, p in view.model_params().items() if isinstance(p, dict)}
    defaults.pop("scenario_name"), defaults.pop("seed")
    assert view.view_config("jan2024-no-snowball", defaults).snowball.notional_bn == 0.0
    assert view.view_config("jan2024-no-retail-herding", defaults).retail.herding == 0.0
    assert view.view_config("jan2024-no-speculators", defaults).speculators.capital_bn == 0.0
    assert view.view_config("jan2024-no-leverage", defaults).neutral.dma_share == 0.0
    budget = view.view_config("jan2024-no-value-budget", defaults).fundamental_traders
    assert budget.drawdown_budget == 0.0
    moved = {**defaults, "snowball.notional_bn": 100.0}
    assert view.view_config("jan2024-no-snowball", moved).snowball.notional_bn == 100.0


def test_consistent_repairs_cross_field_relations():
    config = view.load_scenario(
        "jan2024",
        overrides={
            "neutral.warning_line": 0.6,
            "neutral.stop_line": 0.65,
            "national_team.late_bn": 10.0,
        },
    )
    fixed = view.consistent(config)
    assert fixed.neutral.stop_line < fixed.neutral.warning_line
    assert fixed.national_team.late_bn == config.national_team.early_bn


def test_a_budget_slid_below_the_allowance_takes_the_allowance_down():
    value = view.view_config("jan2024", {view.BUDGET_KEY: 0.02}).fundamental_traders
    assert (value.drawdown_budget, value.drawdown_free) == (0.02, 0.01)
    off = view.view_config("jan2024", {view.BUDGET_KEY: 0.0}).fundamental_traders
    assert off.drawdown_budget == 0.0


def test_slider_bounds_keep_stop_below_warning():
    _, _, stop_hi, _ = view.SLIDERS["neutral.stop_line"]
    _, warning_lo, _, _ = view.SLIDERS["neutral.warning_line"]
    assert stop_hi < warning_lo


def test_model_params_start_inside_their_bounds():
    for key, param in view.model_params().items():
        if param["type"] == "Select":
            assert param["value"] in param["values"], key
        else:
            assert param["min"] <= param["value"] <= param["max"], key


@pytest.mark.parametrize("end", [1, 2], ids=["all-low", "all-high"])
def test_every_slider_at_its_bounds_builds_steps_and_draws(end):
    params = {key: spec[end] for key, spec in view.SLIDERS.items()}
    model = small_model(**params)
    for _ in range(3):
        model.step()
    for build in view.CHARTS.values():
        caption, option = build(model)
        assert "step 3" in caption
        json_safe(option)


def test_scenarios_without_channels_still_draw():
    model = view.make_model("calm", 3, **{"universe.n_stocks": 60})  # background traders only
    model.step()
    for build in view.CHARTS.values():
        json_safe(build(model)[1])
    assert "none in this scenario" in view.neutral_chart(model)[0]
    assert "no retail investors" in view.network_chart(model)[0]


def test_neutral_chart_shows_the_value_investors_bid_on_its_own_axis():
    model = small_model("jan2024-no-value-budget")  # no budget: the share stays as set
    model.step()
    model.value_investors.appetite[:] = 0.3
    model.step()
    caption, option = view.neutral_chart(model)
    bid = next(s for s in option["series"] if s["name"] == view.BID_SERIES)
    assert bid["yAxisIndex"] == 1 and bid["data"] == [100.0, 30.0]
    assert option["yAxis"][1]["max"] == 100
    assert "value investors bid 30% of their full bid" in caption
    json_safe(option)


def test_index_chart_carries_each_tiers_news_hidden_until_picked():
    model = small_model()
    for _ in range(5):
        model.step()
    option = view.index_chart(model)[1]
    names = [line["name"] for line in option["series"]]
    news = [name for name in names if name.endswith(" news")]
    assert len(names) == 10 and len(news) == 5
    assert option["legend"]["selected"] == dict.fromkeys(news, False)
    by_name = {line["name"]: line for line in option["series"]}
    assert all(by_name[name]["lineStyle"]["type"] == "dotted" for name in news)
    assert len(by_name[news[0]]["data"]) == 5 and by_name[news[0]]["data"][0] is not None


def test_network_layout_is_computed_once_per_model():
    model = small_model()
    first = view.network_chart(model)[1]["series"][0]["data"]
    model.step()
    second = view.network_chart(model)[1]["series"][0]["data"]
    assert [(n["x"], n["y"]) for n in first] == [(n["x"], n["y"]) for n in second]
    assert len(first) == view.NETWORK_NODES


def test_network_chart_colours_the_sampled_investors_who_sell():
    model = small_model()
    selling: set[int] = set()
    for _ in range(40):  # ten days at most: someone in the sample sells
        model.step()
        graph = model.retail.sample_graph(view.NETWORK_NODES)
        selling = {node for node, flag in graph.nodes(data="selling") if flag}
        if selling:
            break
    assert selling
    caption, option = view.network_chart(model)
    data = option["series"][0]["data"]
    red = {d["name"] for d in data if d["itemStyle"]["color"] == "#d62728"}
    assert red == {f"investor {node}" for node in selling}
    assert f": {len(selling)} of {len(data)} selling" in caption


# -- the page -----------------------------------------------------------------------------
def test_page_draws_every_chart_and_step_redraws_them():
    model = solara.reactive(small_model())
    rc = render_app(model, small_params())
    charts = rc.find(EchartsWidget).widgets
    assert len(charts) == len(view.CHARTS)
    assert time_text(rc) == "Time: 0.0"
    before = [c.option for c in charts]

    rc.find(v.Btn, children=["Step"]).widget.click()

    assert time_text(rc) == "Time: 1.0"
    after = [c.option for c in rc.find(EchartsWidget).widgets]
    changed = [name for name, a, b in zip(view.CHARTS, before, after, strict=True) if a != b]
    # Every chart redrew with new data, the network sample perhaps not: its colours change
    # only when one of its investors starts or stops selling, which one step need not
    # bring. Its redraw shows in its caption (below), its colours in their own test.
    assert set(changed) >= set(view.CHARTS) - {"network"}
    captions = [t for t in texts(rc) if "step 1," in t]
    assert len(captions) == len(view.CHARTS)
    for option in after:
        json_safe(option)


def test_reset_rebuilds_the_model_with_a_moved_slider():
    model = solara.reactive(small_model())
    rc = render_app(model, small_params())
    rc.find(v.Btn, children=["Step"]).widget.click()
    label = view.SLIDERS["neutral.dma_leverage"][0]
    rc.find(v.Slider, label=label).widget.v_model = 1.5

    rc.find(v.Btn, children=["Reset"]).widget.click()

    assert model.value.steps == 0
    assert model.value.config.neutral.dma_leverage == 1.5
    assert time_text(rc) == "Time: 0.0"
    assert any("DMA leverage 1.5x" in t for t in texts(rc))


def test_reset_with_the_value_budget_slider_at_zero_turns_the_budget_off():
    model = solara.reactive(small_model())
    rc = render_app(model, small_params())
    assert any("value budget 8%" in t for t in texts(rc))
    rc.find(v.Slider, label=view.SLIDERS[view.BUDGET_KEY][0]).widget.v_model = 0.0

    rc.find(v.Btn, children=["Reset"]).widget.click()

    assert model.value.config.fundamental_traders.drawdown_budget == 0.0
    assert any("value budget 0%" in t for t in texts(rc))


def test_whole_jan2024_run_through_the_page_controls():
    """Step through all 644 steps with Mesa's controller, redrawing every 28 steps."""
    model = solara.reactive(small_model(**TINY))
    rc = render_app(model, small_params())
    rc.find(v.Slider, label="Render Interval (steps)").widget.v_model = 28
    step = rc.find(v.Btn, children=["Step"]).widget
    total = model.value.total_steps
    for _ in range(math.ceil(total / 28)):
        step.click()
    assert model.value.steps == total
    assert not model.value.running
    assert step.disabled  # Mesa greys Step out at the end
    assert time_text(rc) == f"Time: {float(total)}"
    captions = [t for t in texts(rc) if f"step {total}, 2024-02-29" in t]
    assert len(captions) == len(view.CHARTS)
    assert not rc.find(v.Alert).widgets  # no "error in step" banner
    for chart in rc.find(EchartsWidget).widgets:
        json_safe(chart.option)


def test_the_basis_caption_after_an_expiry_shows_the_close_not_the_settlement():
    """After an expiry day's last session the contracts are settled at the index and
    have no price of their own until the next auction; the caption shows the basis the
    session closed at, as the chart's line does."""
    m = MarketModel(
        rng=4,
        **{"universe.n_stocks": 80, "market.start": "2024-01-15", "market.end": "2024-01-26"},
        **{"noise_traders.n_agents": 300, "fundamental_traders.n_agents": 20},
        **{"futures.enabled": True, "neutral.n_funds": 500, "neutral.aum_bn": 300.0},
    )
    while m.date < dt.date(2024, 1, 19) or m.steps % m.steps_per_day:
        m.step()
    assert m.futures.is_expiry(m.day_index) and m.market.rolled
    caption, option = view.basis_chart(m)
    im = next(s for s in option["series"] if s["name"] == "IM")["data"][-1]
    assert f"IM {im:.1f}%" in caption and im < -1.0, caption  # the hedgers' discount, not 0


def test_forced_sales_chart_sets_retail_panic_beside_the_forced_sales():
    """Two bar series, one value per recorded step each: the forced sales and, counted
    apart, retail's panic sales (an investor far below its peak sells in a panic)."""
    model = small_model()
    model.step()
    retail = model.retail
    retail.peak_wealth[:] = 2.0 * retail.wealth  # every investor half below its peak
    for _ in range(3):
        model.step()
    caption, option = view.forced_sales_chart(model)
    names = [s["name"] for s in option["series"]]
    assert names == ["forced sales", view.PANIC_SERIES]
    forced, panic = (s["data"] for s in option["series"])
    assert len(forced) == len(panic) == model.steps
    assert sum(panic) > 0 and "retail panic sales total" in caption
    json_safe(option)
