"""Interactive browser view of the spiral: a Mesa ``SolaraViz`` page for MarketModel.

Run it with ``solara run experiments.view`` (or :func:`serve`). The sidebar holds
Mesa's controls (Reset, Play/Pause, Step, "Time: N") and sliders for the channels
of the unwind; the main area shows six charts that redraw after every step:

* index levels by size tier, normalized to 100 at the start;
* the annualized basis of IF, IC and IM;
* forced sales per step;
* quant-neutral products in warning, stopped, and liquidated so far, with the value
  investors' bid as a share of their full bid;
* every stock's return since the start against its free-float cap, by tier;
* a 60-investor patch of the retail network, red where an investor is selling.

Charts are ECharts (Solara's ``EchartsWidget``) rather than Plotly or Altair:
Solara serves ``echarts@5.4.0`` from the offline asset cache that the
``solara-assets`` package installs under ``<venv>/share/solara/cdn``, while
Altair charts ask for ``vega@5`` (not in that cache, so a CDN fetch) and
``solara.FigurePlotly`` needs ``anywidget`` (not installed). The charts sit in
one :func:`Dashboard` beside SolaraViz rather than in its draggable grid of
components: one redraw is then one render pass, not one per chart.

The sliders start at the ``jan2024`` values. A slider left at its starting value
keeps whatever the chosen scenario says (so the counterfactual scenarios stay
what they are); a moved slider overrides it. The universe is kept small (300
stocks by default) so a step and its redraw take about 60 ms of CPU.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import time
import urllib.request
import weakref
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

# Before solara is first imported: its settings read the environment once.
os.environ.setdefault("SOLARA_TELEMETRY_MIXPANEL_ENABLE", "false")

import networkx as nx
import numpy as np
import solara
from mesa.visualization import SolaraViz
from mesa.visualization.utils import update_counter
from solara.components.echarts import EchartsWidget

from experiments.scenarios import load_scenario, scenario_names, scenario_path
from model.config import ScenarioConfig, flat_keys
from model.indices import BASE
from model.market_model import MarketModel
from model.universe import CSI300, INDEX_NAMES, REST

DEFAULT_SCENARIO = "jan2024"
DEFAULT_SEED = 1
SCENARIO_ENV = "UNWIND_VIEW_SCENARIO"  # how serve() tells the server process the scenario
STOCK_CHOICES = (300, 1000)
NETWORK_NODES = 60
LAYOUT_SEED = 7
CHART_HEIGHT_PX = 300
PLAY_INTERVAL_MS = 20

BUDGET_KEY = "fundamental_traders.drawdown_budget"
FREE_KEY = "fundamental_traders.drawdown_free"

# Dotted key -> (label, min, max, step). Bounds keep every combination valid: the
# stop line's range lies wholly below the warning line's.
SLIDERS: dict[str, tuple[str, float, float, float]] = {
    "neutral.dma_leverage": ("DMA leverage (x equity)", 1.0, 4.0, 0.1),
    "neutral.aum_bn": ("Quant-neutral equity (bn CNY, full scale)", 0.0, 1000.0, 10.0),
    "neutral.warning_line": ("Warning line (NAV per unit)", 0.75, 0.95, 0.01),
    "neutral.stop_line": ("Stop line (NAV per unit)", 0.5, 0.74, 0.01),
    "lending.institutional_pct_float": ("Lendable stock (share of float)", 0.0, 0.02, 0.001),
    "snowball.notional_bn": ("Snowball notional (bn CNY, full scale)", 0.0, 400.0, 10.0),
    "retail.herding": ("Retail herding", 0.0, 1.0, 0.05),
    "national_team.late_bn": ("National team, total (bn CNY, full scale)", 0.0, 800.0, 10.0),
    "speculators.capital_bn": ("Futures speculators (bn CNY, full scale)", 0.0, 300.0, 10.0),
    BUDGET_KEY: ("Value investors' risk budget", 0.0, 0.3, 0.01),
}
T1_KEY = "lending.t1_date"
T1_DATES = ("2024-01-08", "2024-01-15", "2024-01-22", "2024-01-29", "2024-02-05")
STOCKS_KEY = "universe.n_stocks"
PANIC_SERIES = "retail panic sales"
BID_SERIES = "value investors' bid (% of full)"

TIER_LABELS = ("CSI 300", "CSI 500", "CSI 1000", "CSI 2000", "below CSI 2000")
INDEX_LABELS = (*TIER_LABELS[:4], "micro-cap")


def baseline() -> dict[str, Any]:
    """Starting slider values: the jan2024 scenario's, so the page opens on the episode."""
    keys = flat_keys(load_scenario(DEFAULT_SCENARIO))
    values: dict[str, Any] = {key: keys[key] for key in SLIDERS}
    values[T1_KEY] = str(keys[T1_KEY])  # flat_keys gives dates as ISO strings
    return values


BASELINE = baseline()


# -- the model the view builds ------------------------------------------------------------
def view_overrides(params: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted overrides from slider values: clamped, and only those moved off the baseline.

    A slider left where it started keeps the chosen scenario's own value, so choosing
    ``jan2024-no-snowball`` is not undone by the snowball slider's jan2024 default.
    Keys the view has no control for pass through unchanged (the config checks them).
    A moved risk-budget slider sets the value investors' loss-free allowance to half
    the budget, so the allowance never exceeds it.
    """
    out: dict[str, Any] = {}
    for key, value in params.items():
        if key in SLIDERS:
            _, lo, hi, _ = SLIDERS[key]
            value = min(max(float(value), lo), hi)
            if not math.isclose(value, BASELINE[key], rel_tol=1e-9, abs_tol=1e-12):
                out[key] = value
        elif key == T1_KEY:
            if str(value) != BASELINE[T1_KEY]:
                out[key] = str(value)
        else:
            out[key] = value
    if BUDGET_KEY in out:  # the loss-free allowance follows: half the budget, as in jan2024
        out[FREE_KEY] = out[BUDGET_KEY] / 2.0
    out[STOCKS_KEY] = int(params.get(STOCKS_KEY, STOCK_CHOICES[0]))
    return out


def consistent(config: ScenarioConfig) -> ScenarioConfig:
    """Repair the two cross-field relations a mix of scenario and sliders can break.

    The stop line must lie below the warning line, and the national team's total
    must not be less than what it has bought by its early date (else its schedule
    would go backwards).
    """
    fixes: dict[str, Any] = {}
    neutral, team = config.neutral, config.national_team
    if neutral.stop_line >= neutral.warning_line:
        fixes["neutral.stop_line"] = max(neutral.warning_line - 0.05, 0.01)
    if team.late_bn < team.early_bn:
        fixes["national_team.late_bn"] = team.early_bn
    return config.with_overrides(fixes) if fixes else config


def view_config(scenario: str, params: Mapping[str, Any]) -> ScenarioConfig:
    """The scenario with the view's overrides applied and made consistent."""
    return consistent(load_scenario(scenario, overrides=view_overrides(params)))


class ViewModel(MarketModel):
    """MarketModel built from a scenario name, as Mesa's Reset button rebuilds it.

    SolaraViz's Reset calls ``type(model)(**slider_values, scenario=<mesa Scenario>)``;
    hence the scenario *name* travels as ``scenario_name`` and Mesa's own ``scenario``
    argument is accepted and ignored. The DataCollector also records how many
    neutral products sit in warning and stopped, which the view charts.

    Args:
        scenario_name: a name from experiments/scenarios/ or a TOML path.
        seed: the model's seed.
        scenario: Mesa's experiment object; unused.
        **params: slider values by dotted key (see :func:`view_overrides`).
    """

    def __init__(
        self,
        scenario_name: str = DEFAULT_SCENARIO,
        seed: int = DEFAULT_SEED,
        scenario: Any = None,
        **params: Any,
    ) -> None:
        super().__init__(view_config(scenario_name, params), rng=int(seed))
        self.scenario_name = scenario_name
        self.seed = int(seed)


def make_model(
    scenario: str = DEFAULT_SCENARIO, seed: int = DEFAULT_SEED, **params: Any
) -> ViewModel:
    """A model for the view: ``MarketModel(load_scenario(scenario, overrides=...), rng=seed)``.

    Args:
        scenario: scenario name or TOML path.
        seed: random seed.
        **params: dotted keys, e.g. ``**{"neutral.dma_leverage": 4.0}``; slider keys are
            clamped to their bounds, ``universe.n_stocks`` defaults to 300.
    """
    return ViewModel(scenario_name=scenario, seed=seed, **params)


def model_params(scenario: str = DEFAULT_SCENARIO) -> dict[str, Any]:
    """SolaraViz ``model_params``: the scenario and seed, then one control per channel."""
    names = scenario_names()
    if scenario not in names:
        names = [scenario, *names]
    params: dict[str, Any] = {
        "scenario_name": {
            "type": "Select",
            "value": scenario,
            "values": names,
            "label": "Scenario",
        },
        "seed": {
            "type": "SliderInt",
            "value": DEFAULT_SEED,
            "min": 0,
            "max": 99,
            "step": 1,
            "label": "Seed",
        },
        STOCKS_KEY: {
            "type": "Select",
            "value": STOCK_CHOICES[0],
            "values": list(STOCK_CHOICES),
            "label": "Stocks",
        },
    }
    for key, (label, lo, hi, step) in SLIDERS.items():
        params[key] = {
            "type": "SliderFloat",
            "value": BASELINE[key],
            "min": lo,
            "max": hi,
            "step": step,
            "label": label,
        }
    params[T1_KEY] = {
        "type": "Select",
        "value": BASELINE[T1_KEY],
        "values": sorted({*T1_DATES, BASELINE[T1_KEY]}),
        "label": "Lending to T+1 on",
    }
    return params


# -- chart options: plain dicts for ECharts, built from the model alone -------------------
Chart = tuple[str, dict[str, Any]]  # (caption shown above the chart, ECharts option)


def _clean(values: Any, digits: int = 4) -> list[float | None]:
    """JSON-safe numbers: NaN and inf become gaps (JSON has no NaN)."""
    return [round(float(v), digits) if math.isfinite(v) else None for v in values]


def _history(model: MarketModel, name: str) -> list[Any]:
    """A copy of a recorded column.

    The collector appends to its lists in place: an option holding them would
    compare equal to its successor, and the widget would not redraw.
    """
    return list(model.datacollector.model_vars.get(name, ()))


def _dates(model: MarketModel) -> list[str]:
    return _history(model, "date")


def _line_option(
    dates: list[str], series: Mapping[str, list[float | None]], y_name: str, kind: str = "line"
) -> dict[str, Any]:
    """A time-series option over the recorded steps (x: trading date of each step)."""
    return {
        "animation": False,
        "grid": {"left": 55, "right": 20, "top": 55, "bottom": 45},
        "legend": {"top": 0, "type": "scroll"},
        "tooltip": {"trigger": "axis"},
        "xAxis": {"type": "category", "data": dates, "boundaryGap": kind == "bar"},
        "yAxis": {"type": "value", "name": y_name, "scale": True},
        "series": [
            {"name": name, "type": kind, "data": data, "showSymbol": False, "connectNulls": False}
            for name, data in series.items()
        ],
    }


def _status(model: MarketModel) -> str:
    dates = _dates(model)
    return f"step {model.steps}, {dates[-1]}" if dates else "step 0, start"


def index_chart(model: MarketModel) -> Chart:
    """Index levels by size tier, 100 at the start: the micro-caps falling away from the rest."""

    def levels(column: str) -> list[float | None]:
        return _clean(np.asarray(_history(model, column), dtype=float) * (100.0 / BASE), 2)

    tiers = list(zip(INDEX_NAMES, INDEX_LABELS, strict=True))
    series = {label: levels(name) for name, label in tiers}
    # Each tier's members on fundamental values, dotted and off until picked in the legend.
    news = {f"{label} news": levels(f"{name}_news") for name, label in tiers}
    now = model.indices.level * (100.0 / BASE)
    caption = (
        f"Index levels (start = 100), {_status(model)}: "
        f"CSI 300 {now[0]:.1f}, micro-cap {now[-1]:.1f} (dotted, in the legend: the news)"
    )
    option = _line_option(_dates(model), series | news, "level")
    for line in option["series"][len(series) :]:
        line["lineStyle"] = {"type": "dotted"}
    option["legend"]["selected"] = {name: False for name in news}
    return caption, option


def basis_chart(model: MarketModel) -> Chart:
    """Annualized basis of IF, IC, IM: the hedgers' pressure on the futures."""
    names = ("IF", "IC", "IM")
    series = {
        name: _clean(np.asarray(_history(model, f"{name.lower()}_basis"), dtype=float) * 100.0, 2)
        for name in names
    }
    now = model.recorded_basis() * 100.0  # as the session closed, before any expiry's settlement
    shown = ", ".join(f"{n} {v:.1f}%" for n, v in zip(names, now, strict=True) if math.isfinite(v))
    caption = f"Annualized basis (%), {_status(model)}: {shown or 'no futures'}"
    return caption, _line_option(_dates(model), series, "% a year")


def forced_sales_chart(model: MarketModel) -> Chart:
    """Forced sales each step (risk lines, margin calls, buy-ins, redemptions), and
    retail's panic sales beside them, counted apart."""
    forced = np.asarray(_history(model, "forced_sales"), dtype=float) / 1e6
    panic = np.asarray(_history(model, "panic_sales"), dtype=float) / 1e6
    caption = (
        f"Forced sales (mn CNY a step), {_status(model)}: "
        f"last {model.forced_sales / 1e6:.1f}, total {model.forced_sales_total / 1e6:.0f}; "
        f"retail panic sales total {panic.sum():.0f}"
    )
    series = {"forced sales": _clean(forced, 3), PANIC_SERIES: _clean(panic, 3)}
    return caption, _line_option(_dates(model), series, "mn CNY", "bar")


def neutral_chart(model: MarketModel) -> Chart:
    """Quant-neutral products at their risk lines: warned, stopped, liquidated so far; and,
    on the right axis, the share of their full bid the value investors (the micro-caps'
    anchor) still make, which falls when their own risk budget binds."""
    series = {
        "warning": _history(model, "neutral_warned"),
        "stopped": _history(model, "neutral_stopped"),
        "liquidated (cumulative)": _history(model, "liquidated_funds"),
    }
    funds = model.neutral
    if funds is None:
        caption = f"Quant-neutral products, {_status(model)}: none in this scenario"
    else:
        warned, stopped = (int((funds.state == c).sum()) for c in (1, 2))
        caption = (
            f"Quant-neutral products ({funds.n}), {_status(model)}: {warned} warning, "
            f"{stopped} stopped, {model.liquidated_funds()} liquidated"
        )
    bid = np.asarray(_history(model, "value_appetite"), dtype=float) * 100.0
    if math.isfinite(share := model.value_appetite()):
        caption += f"; value investors bid {share:.0%} of their full bid"
    option = _line_option(_dates(model), series, "products")
    option["grid"]["right"] = 55
    option["yAxis"] = [option["yAxis"], {"type": "value", "name": "% of bid", "min": 0, "max": 100}]
    option["series"].append(
        {
            "name": BID_SERIES,
            "type": "line",
            "data": _clean(bid, 1),
            "showSymbol": False,
            "yAxisIndex": 1,
            "lineStyle": {"type": "dashed"},
        }
    )
    return caption, option


def size_return_chart(model: MarketModel) -> Chart:
    """Every stock's return since the start against its cap: the size gradient of the crash."""
    n = model.universe.n
    caps_bn = model.market.caps() / 1e9
    ret = (model.market.last[:n] / model.universe.price0 - 1.0) * 100.0
    tier = model.indices.tier
    series = []
    for code, label in enumerate(TIER_LABELS):
        mine = tier == code
        points = np.column_stack([caps_bn[mine], ret[mine]]).round(3).tolist()
        series.append({"name": label, "type": "scatter", "data": points, "symbolSize": 5})
    small = ret[tier == REST]
    median_small = float(np.median(small)) if small.size else float("nan")
    median_large = float(np.median(ret[tier == CSI300]))
    caption = (
        f"Return since start vs free-float cap, {_status(model)}: median "
        f"CSI 300 {median_large:+.1f}%, below CSI 2000 {median_small:+.1f}%"
    )
    option = {
        "animation": False,
        "grid": {"left": 55, "right": 20, "top": 55, "bottom": 45},
        "legend": {"top": 0, "type": "scroll"},
        "tooltip": {"trigger": "item"},
        "xAxis": {"type": "log", "name": "cap, bn CNY", "nameLocation": "middle", "nameGap": 25},
        "yAxis": {"type": "value", "name": "return %", "scale": True},
        "series": series,
    }
    return caption, option


_LAYOUTS: weakref.WeakKeyDictionary[MarketModel, tuple[frozenset[int], dict[int, list[float]]]]
_LAYOUTS = weakref.WeakKeyDictionary()


def network_layout(model: MarketModel, graph: nx.Graph) -> dict[int, list[float]]:
    """Spring layout of the sampled patch, computed once per model (fixed seed) and cached.

    The patch is the same investors every step, so the picture only changes colour;
    a new layout each redraw would make the nodes jump and cost ~10x the drawing.
    Positions are scaled from networkx's [-1, 1] to [0, 1000]: ECharts draws stray
    straight lines across a graph laid out in coordinates that small.
    """
    nodes = frozenset(graph.nodes)
    cached = _LAYOUTS.get(model)
    if cached is None or cached[0] != nodes:
        pos = nx.spring_layout(graph, seed=LAYOUT_SEED, center=(500.0, 500.0), scale=500.0)
        cached = (
            nodes,
            {int(k): [round(float(x), 1), round(float(y), 1)] for k, (x, y) in pos.items()},
        )
        _LAYOUTS[model] = cached
    return cached[1]


def network_chart(model: MarketModel) -> Chart:
    """A patch of the retail graph around its biggest hub, red where an investor sells."""
    retail = model.retail
    graph = retail.sample_graph(NETWORK_NODES) if retail is not None else nx.Graph()
    pos = network_layout(model, graph) if graph.number_of_nodes() else {}
    selling = nx.get_node_attributes(graph, "selling")
    order = list(graph.nodes)
    index = {node: i for i, node in enumerate(order)}
    nodes = [
        {
            "name": f"investor {node}",
            "x": pos[node][0],
            "y": pos[node][1],
            "itemStyle": {"color": "#d62728" if selling.get(node) else "#1f77b4"},
        }
        for node in order
    ]
    # Links by position in ``nodes``: unambiguous, unlike digit-only names.
    links = [{"source": index[a], "target": index[b]} for a, b in graph.edges]
    n_selling = sum(bool(v) for v in selling.values())
    caption = (
        f"Retail network sample, {_status(model)}: {n_selling} of {len(nodes)} selling (red)"
        if nodes
        else f"Retail network sample, {_status(model)}: no retail investors in this scenario"
    )
    option = {
        "animation": False,
        "tooltip": {},
        "series": [
            {
                "type": "graph",
                "layout": "none",
                "roam": True,
                "symbolSize": 8,
                "data": nodes,
                "links": links,
                "lineStyle": {"color": "#999", "opacity": 0.5},
            }
        ],
    }
    return caption, option


def config_summary(model: MarketModel) -> str:
    """One line naming what this model was built with, so a Reset can be checked by eye."""
    c = model.config
    n = c.neutral
    products = 0 if model.neutral is None else model.neutral.n
    parts = [
        getattr(model, "scenario_name", c.name),
        f"seed {getattr(model, 'seed', '?')}",
        f"{model.universe.n} stocks",
        f"DMA leverage {n.dma_leverage:.1f}x",
        f"neutral equity {n.aum_bn:.0f} bn ({products} products)",
        f"warning {n.warning_line:.2f} / stop {n.stop_line:.2f}",
        f"lendable {c.lending.institutional_pct_float:.1%} of float",
        f"lending T+1 from {c.lending.t1_date}",
        f"snowballs {c.snowball.notional_bn:.0f} bn",
        f"herding {c.retail.herding:.2f}",
        f"national team {c.national_team.late_bn:.0f} bn",
        f"speculators {c.speculators.capital_bn:.0f} bn",
        f"value budget {c.fundamental_traders.drawdown_budget:.0%}",
    ]
    return " · ".join(parts)


CHARTS: dict[str, Callable[[MarketModel], Chart]] = {
    "index": index_chart,
    "basis": basis_chart,
    "forced-sales": forced_sales_chart,
    "neutral": neutral_chart,
    "size-return": size_return_chart,
    "network": network_chart,
}


# -- components ---------------------------------------------------------------------------
class Opaque:
    """Wraps an ECharts option so that reacton passes it along without walking into it.

    Reacton walks every list and dict inside element properties looking for child
    elements; for options thousands of numbers long that walk took most of a redraw.
    Compared by identity, so every new option is a change.
    """

    __slots__ = ("value",)

    def __init__(self, value: dict[str, Any]) -> None:
        self.value = value


@solara.component
def EchartsFigure(option: Opaque, height_px: int = CHART_HEIGHT_PX) -> Any:
    """``solara.FigureEcharts`` with the option set on the widget in an effect."""
    figure = EchartsWidget.element(
        attributes={"style": f"height: {height_px}px; width: 100%;"}, responsive=True
    )

    def push() -> None:
        solara.get_widget(figure).option = option.value

    solara.use_effect(push, [option])
    return figure


@solara.component
def ChartCard(name: str, model: MarketModel, tick: int) -> None:
    """Chart ``name`` of ``model`` under a text caption; ``tick`` is Mesa's update counter.

    CSS classes let the browser test find each chart and its caption.
    """
    caption, option = CHARTS[name](model)
    with solara.Column(classes=["unwind-chart", f"unwind-{name}"], gap="4px"):
        solara.Text(caption, classes=["unwind-caption"])
        EchartsFigure(Opaque(option))


@solara.component
def Dashboard(model: MarketModel) -> None:
    """All six charts for ``model``, two to a row, redrawn whenever Mesa steps or resets.

    Reading Mesa's ``update_counter`` subscribes this component to the counter that
    Step, Play and Reset bump. One subscriber for all charts, outside SolaraViz's
    draggable grid, keeps a redraw to one render pass: as six Mesa components each
    subscribed on its own, a redraw took six passes over the whole page (measured
    ~190 ms against ~55 ms for a 60-stock model).
    """
    tick = update_counter.get()
    summary = solara.use_memo(lambda: config_summary(model), dependencies=[model])
    solara.Text(summary, classes=["unwind-config"])
    with solara.GridFixed(columns=2, column_gap="16px", row_gap="16px"):
        for name in CHARTS:
            ChartCard(name, model, tick)


@solara.component
def Page() -> None:
    """The app: Mesa's controls in the sidebar, the dashboard in the main area.

    Each browser session builds its own model once; SolaraViz's Reset replaces
    ``model.value``, which re-renders this page with the new model.
    """
    scenario = os.environ.get(SCENARIO_ENV, DEFAULT_SCENARIO)
    first = solara.use_memo(lambda: make_model(scenario, DEFAULT_SEED), dependencies=[])
    model = solara.use_reactive(first)
    SolaraViz(
        model,
        components=[],
        model_params=model_params(scenario),
        name="microcap-unwind: the 2024 small-cap spiral",
        play_interval=PLAY_INTERVAL_MS,
    )
    Dashboard(model.value)


page = Page()


# -- server -------------------------------------------------------------------------------
# Debian's chromium, for the browser test and the view benchmark (never a downloaded build);
# without the networking flags it keeps trying to reach the internet from a closed sandbox.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def server_command(port: int, host: str = "127.0.0.1") -> list[str]:
    """``solara run`` for this module in production mode (minified, offline assets)."""
    return [
        sys.executable,
        "-m",
        "solara",
        "run",
        "experiments.view",
        "--host",
        host,
        "--port",
        str(port),
        "--production",
        "--no-open",
    ]


def server_env(scenario: str) -> dict[str, str]:
    """Environment of the server process: the scenario, no telemetry, assets from the cache.

    ``SOLARA_ASSETS_PROXY`` stays on (its default): Solara then serves ``/_solara/cdn/``
    from ``<venv>/share/solara/cdn``, which ``solara-assets`` fills, so the browser
    never needs the public CDN. Turning it off would point the page at the CDN.
    Solara's warning that a plain-http 127.0.0.1 page gets a ``samesite=lax``
    cookie is silenced: that is the intended set-up, and it repeats on every load.
    """
    env = dict(os.environ)
    warning_filters = [env.get("PYTHONWARNINGS", ""), "ignore:Cookies with samesite"]
    env.update(
        {
            SCENARIO_ENV: scenario,
            "SOLARA_TELEMETRY_MIXPANEL_ENABLE": "false",
            "SOLARA_ASSETS_PROXY": "true",
            "PYTHONWARNINGS": ",".join(f for f in warning_filters if f),
        }
    )
    return env


def start_server(
    scenario: str, port: int, host: str = "127.0.0.1", output: Any = None
) -> subprocess.Popen:
    """Start the view server in a child process (the caller stops it).

    ``output`` takes the server's stdout and stderr (a file, or ``subprocess.DEVNULL``);
    None leaves them on the caller's.
    """
    scenario_path(scenario)  # a bad name fails here, with the list of known ones
    stderr = None if output is None else subprocess.STDOUT
    return subprocess.Popen(
        server_command(port, host), env=server_env(scenario), stdout=output, stderr=stderr
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on now, for a server started next."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, proc: subprocess.Popen, timeout_s: float) -> None:
    """Return once ``url`` answers 200; raise RuntimeError if the server exits or is late."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"view server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"view server not up at {url} after {timeout_s:.0f} s")


def serve(scenario: str = DEFAULT_SCENARIO, port: int = 8765, host: str = "127.0.0.1") -> int:
    """Serve the view until interrupted; print the address to open. Returns the exit code."""
    proc = start_server(scenario, port, host)
    print(f"unwind view: {scenario} at http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        return 0
