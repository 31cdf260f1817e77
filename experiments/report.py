"""One offline HTML report of one or more run directories.

The report is a single file with plotly.js embedded once, so it can be mailed,
archived next to the runs, or opened on a machine without network access. It
only reads what ``unwind run`` wrote; it never imports the model, so building
it stays fast (well under two seconds for small runs).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.colors
import plotly.graph_objects as go
import plotly.offline

from experiments.frames import daily
from experiments.outputs import one_line, write_text
from experiments.stylized import max_drawdown
from model.config import ConfigError
from model.universe import INDEX_NAMES

REPORT_NAME = "report.html"
INDEX_BASE = 1000.0  # every index starts at this level (see experiments.run.index_stats)
BASES = (("if_basis", "IF (CSI 300)"), ("ic_basis", "IC (CSI 500)"), ("im_basis", "IM (CSI 1000)"))
TIER_COLOURS = {
    "csi300": "#1f77b4",
    "csi500": "#2ca02c",
    "csi1000": "#ff7f0e",
    "csi2000": "#d62728",
    "rest": "#7f7f7f",
}
RUN_FILES = ("model.parquet", "prices.parquet", "stocks.parquet", "summary.json")

# Figure titles: the tests look for them, and readers jump between runs by them.
TITLE_INDICES = "Index paths by tier"
TITLE_BASIS = "Annualized futures basis"
TITLE_FORCED = "Forced sales per day"
TITLE_FUNDS = "Liquidated funds and neutral NAV"
TITLE_LIMIT = "Limit-down count per day"
TITLE_SCATTER = "Return against size"
TITLE_ATTRIBUTION = "Drawdown attribution"
TITLE_OVERLAY = "Micro-cap index across runs"
TITLE_CRASH = "Crash window: news and flows"
TITLE_BUYERS = "Crash window: who traded each tier"
TITLE_RUNUP = "Micro-cap run-up before the window: its parts"

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.5em 0 1em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
p.note { color: #a05000; font-style: italic; }
p.explain { color: #444; max-width: 60em; }
"""


@dataclass
class RunData:
    """Everything one run directory holds, read once."""

    path: Path
    model: pd.DataFrame
    prices: pd.DataFrame
    stocks: pd.DataFrame
    summary: dict[str, Any]

    @property
    def label(self) -> str:
        """Scenario and seed: enough to tell runs apart in legends and tables."""
        return (
            f"{self.summary.get('scenario', self.path.name)} (seed {self.summary.get('seed', '?')})"
        )


# ---------------------------------------------------------------------------- loading


def _run_error(path: Path, what: str) -> ConfigError:
    return ConfigError(f"report PATH = {str(path)!r}: {what}")


def _read(path: Path, name: str) -> Any:
    """Read one run file, turning any failure into a one-line ConfigError naming the file."""
    file = path / name
    if not file.is_file():
        raise _run_error(file, "missing; expected a directory written by 'unwind run'")
    try:
        if name.endswith(".json"):
            with open(file) as fh:
                data = json.load(fh)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            return data
        return pd.read_parquet(file)
    except Exception as exc:  # any reader error means the same thing to the user
        raise _run_error(file, f"unreadable ({type(exc).__name__}: {one_line(exc, 160)})") from None


def load_run(path: Path) -> RunData:
    """Load a run directory written by ``unwind run``.

    Args:
        path: The run directory.

    Returns:
        Its tables and summary.

    Raises:
        ConfigError: One line naming the path, if the directory or a file is missing
            or cannot be read; a user pointing at the wrong folder is not a bug.
    """
    path = Path(path)
    if not path.is_dir():
        raise _run_error(path, "not a directory; expected a directory written by 'unwind run'")
    model, prices, stocks, summary = (_read(path, name) for name in RUN_FILES)
    return RunData(path, model, prices, stocks, summary)


# ---------------------------------------------------------------------------- data helpers


def _x(frame: pd.DataFrame) -> pd.Series:
    """Dates for the x axis, or steps for old tables without dates."""
    return frame["date"] if "date" in frame.columns else frame.get("step", frame.index.to_series())


def column(frame: pd.DataFrame, name: str) -> pd.Series | None:
    """A numeric column, or None when it is absent or entirely NaN (a switched-off channel)."""
    if name not in frame.columns:
        return None
    values = pd.to_numeric(frame[name], errors="coerce")
    return None if values.isna().all() else values


def microcap_drawdown(run: RunData) -> float:
    """Micro-cap max drawdown from summary.json, recomputed from the table if absent."""
    stats = run.summary.get("indices", {}).get("microcap", {})
    if isinstance(stats.get("max_drawdown"), (int, float)):
        return float(stats["max_drawdown"])
    levels = column(run.model, "microcap")
    if levels is None:
        return float("nan")
    return max_drawdown(np.concatenate([[INDEX_BASE], levels.to_numpy(dtype=float)]))


def explained_share(dd_base: float, dd_run: float) -> float:
    """Share of the baseline drawdown that disappears in a counterfactual run.

    The counterfactual removes one channel, so what it no longer loses is what that
    channel caused: ``(dd_base - dd_run) / dd_base``. NaN when the baseline never fell.
    """
    if not (np.isfinite(dd_base) and np.isfinite(dd_run)) or dd_base <= 0.0:
        return float("nan")
    return (dd_base - dd_run) / dd_base


def stock_returns(run: RunData, window: tuple[str, str] | None = None) -> pd.DataFrame:
    """Each stock's return, start cap and tier: over the run, or between two ISO dates."""
    prices = run.prices
    names = [c for c in prices.columns if c != "date"]
    if window is None:
        start = prices[names].iloc[0] if "price0" not in run.stocks else None
        end = prices[names].iloc[-1]
    else:
        inside = prices[(prices["date"] >= window[0]) & (prices["date"] <= window[1])]
        if inside.empty:
            return pd.DataFrame(columns=["stock", "ret", "log_cap", "tier"])
        start, end = inside[names].iloc[0], inside[names].iloc[-1]
    stocks = run.stocks.set_index("stock").reindex(names)
    base = stocks["price0"] if start is None else start
    return pd.DataFrame(
        {
            "stock": names,
            "ret": (end / base - 1.0).to_numpy(dtype=float),
            "log_cap": np.log10(stocks["cap0"].to_numpy(dtype=float)),
            "tier": stocks["tier0"].fillna("rest").to_numpy(),
        }
    )


# ---------------------------------------------------------------------------- figures

Figure = go.Figure | str  # a figure, or a note saying why it was skipped


def _layout(fig: go.Figure, title: str, y_title: str, **extra: Any) -> go.Figure:
    fig.update_layout(
        title=title,
        yaxis_title=y_title,
        height=380,
        margin={"l": 60, "r": 60, "t": 50, "b": 40},
        legend={"orientation": "h", "y": -0.15},
        # A full template costs ~0.1 s per figure to copy; these few settings look the same.
        template="none",
        plot_bgcolor="white",
        font={"family": "system-ui, sans-serif", "size": 12},
        **extra,
    )
    fig.update_xaxes(showgrid=True, gridcolor="#eee", zeroline=False)
    fig.update_yaxes(showgrid=True, gridcolor="#eee", zeroline=False)
    return fig


def _right_axis(title: str) -> dict[str, Any]:
    """A second y axis on the right, for a level drawn over a flow or a count."""
    return {"title": title, "overlaying": "y", "side": "right"}


def fig_indices(run: RunData) -> Figure:
    """Index levels by tier, as growth of 1 from the common base, so tiers compare directly.

    Each tier's news index (the same members on fundamental values) is a dotted line of
    its colour, hidden until picked in the legend: the gap is what trading did.
    """
    day = daily(run.model)
    fig = go.Figure()
    for name, colour in zip(INDEX_NAMES, plotly.colors.qualitative.Plotly, strict=False):
        for suffix, dash, visible in (("", "solid", True), ("_news", "dot", "legendonly")):
            levels = column(day, name + suffix)
            if levels is not None:
                fig.add_scatter(
                    x=_x(day),
                    y=levels / INDEX_BASE,
                    name=name + suffix,
                    mode="lines",
                    line={"color": colour, "dash": dash},
                    legendgroup=name,
                    visible=visible,
                )
    if not fig.data:
        return "no index columns in model.parquet"
    return _layout(fig, TITLE_INDICES, "level / start")


def fig_basis(run: RunData) -> Figure:
    """Annualized basis of the three contracts: deep discounts are the neutral funds' cost."""
    day = daily(run.model)
    fig = go.Figure()
    for name, label in BASES:
        values = column(day, name)
        if values is not None:
            fig.add_scatter(x=_x(day), y=values, name=label, mode="lines")
    if not fig.data:
        return "no basis data: futures are off in this run"
    fig.add_hline(y=0.0, line={"color": "#999", "width": 1})
    held = column(day, "speculator_futures")
    if held is None or not held.any():
        return _layout(fig, TITLE_BASIS, "annualized basis", yaxis_tickformat=".0%")
    # The speculators' net position, where there are any: their sales against the discount.
    fig.add_scatter(
        x=_x(day),
        y=held / 1e9,
        name="speculators' futures (bn CNY)",
        mode="lines",
        line={"dash": "dot"},
        yaxis="y2",
    )
    return _layout(
        fig,
        TITLE_BASIS,
        "annualized basis",
        yaxis_tickformat=".0%",
        yaxis2=_right_axis("speculators' futures, bn CNY (long +)"),
    )


def fig_forced(run: RunData) -> Figure:
    """Forced selling per day against the micro-cap index: the reflexive loop in one view."""
    if column(run.model, "forced_sales") is None:
        return "no forced_sales column in model.parquet"
    day = daily(run.model)  # forced sales summed over each day
    fig = go.Figure()
    fig.add_bar(x=_x(day), y=column(day, "forced_sales"), name="forced sales (CNY)")
    panic = column(day, "panic_sales")
    if panic is not None:  # retail's panic sales, beside the deleveraging (older runs lack them)
        fig.add_bar(x=_x(day), y=panic, name="retail panic sales (CNY)")
    micro = column(day, "microcap")
    if micro is not None:
        fig.add_scatter(x=_x(day), y=micro, name="micro-cap index", mode="lines", yaxis="y2")
    return _layout(fig, TITLE_FORCED, "CNY per day", yaxis2=_right_axis("micro-cap index"))


def fig_funds(run: RunData) -> Figure:
    """Cumulative fund liquidations with the neutral funds' NAV: who failed, and when."""
    day = daily(run.model)
    liquidated, nav = column(day, "liquidated_funds"), column(day, "neutral_nav")
    if liquidated is None and nav is None:
        return "no liquidated_funds or neutral_nav data: no funds in this run"
    fig = go.Figure()
    if liquidated is not None:
        fig.add_scatter(x=_x(day), y=liquidated, name="liquidated funds", line_shape="hv")
    if nav is not None:
        fig.add_scatter(x=_x(day), y=nav, name="neutral NAV", mode="lines", yaxis="y2")
    for kind in ("plain", "dma"):  # absent from tables written before 2026-11
        nav_kind = column(day, f"neutral_nav_{kind}")
        if nav_kind is not None:
            fig.add_scatter(
                x=_x(day),
                y=nav_kind,
                name=f"{kind} NAV",
                mode="lines",
                line={"dash": "dot"},
                yaxis="y2",
            )
    appetite = column(day, "value_appetite")  # absent from tables written before 2026-11-26
    if appetite is not None and (appetite < 1.0).any():
        fig.add_scatter(
            x=_x(day),
            y=appetite,
            name="value investors' bid (share of full)",
            mode="lines",
            line={"dash": "dash"},
            yaxis="y2",
        )
    return _layout(
        fig, TITLE_FUNDS, "funds liquidated (cumulative)", yaxis2=_right_axis("neutral NAV")
    )


def fig_limit_down(run: RunData) -> Figure:
    """Stocks locked limit-down at each close: a market that cannot clear."""
    day = daily(run.model)
    counts = column(day, "limit_down_count")
    if counts is None:
        return "no limit_down_count column in model.parquet"
    fig = go.Figure()
    fig.add_bar(x=_x(day), y=counts, name="stocks at limit down")
    return _layout(fig, TITLE_LIMIT, "stocks")


def fig_scatter(run: RunData, window: tuple[str, str] | None = None) -> Figure:
    """Each stock's return against its starting size: the crash should slope up to the left."""
    needed = {"stock", "cap0", "tier0"}
    if not needed <= set(run.stocks.columns) or "date" not in run.prices.columns:
        return "stocks.parquet or prices.parquet lacks stock, cap0, tier0 or date"
    table = stock_returns(run, window)
    table = table[np.isfinite(table["ret"]) & np.isfinite(table["log_cap"])]
    if table.empty:
        return "no stock returns in the chosen window"
    fig = go.Figure()
    for tier, colour in TIER_COLOURS.items():
        part = table[table["tier"] == tier]
        if not part.empty:
            fig.add_scatter(
                x=part["log_cap"],
                y=part["ret"],
                text=part["stock"],
                mode="markers",
                name=tier,
                marker={"color": colour, "size": 5, "opacity": 0.7},
            )
    span = f" ({window[0]} to {window[1]})" if window else ""
    return _layout(
        fig,
        TITLE_SCATTER + span,
        "total return",
        xaxis_title="log10 starting market cap (CNY)",
        yaxis_tickformat=".0%",
    )


def fig_overlay(runs: list[RunData]) -> Figure:
    """Micro-cap path of every run on one chart, the baseline first."""
    fig = go.Figure()
    for run in runs:
        day = daily(run.model)
        levels = column(day, "microcap")
        if levels is not None:
            fig.add_scatter(x=_x(day), y=levels / INDEX_BASE, name=run.label, mode="lines")
    if not fig.data:
        return "no micro-cap index in any run"
    return _layout(fig, TITLE_OVERLAY, "level / start")


# ---------------------------------------------------------------------------- html pieces


def _figure(value: Any, spec: str) -> str:
    """A figure in format ``spec``, or n/a where there is none (missing or not finite: a
    basis the run does not reach, no name entering or leaving)."""
    if not (isinstance(value, (int, float)) and np.isfinite(value)):
        return "n/a"
    return format(value, spec)


def _pct(value: Any, sign: bool = True) -> str:
    """A percentage; changes carry their sign, sizes (a drawdown) are written without one."""
    return _figure(value, "+.1%" if sign else ".1%")


def _table(header: list[str], rows: list[list[str]], css_class: str) -> str:
    """An HTML table; cells are escaped here so callers pass plain text."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f'<table class="{css_class}"><tr>{head}</tr>{body}</table>'


def header_table(runs: list[RunData]) -> str:
    """Scenario, seed, size and the headline index moves of each run, from summary.json."""
    header = ["run", "scenario", "seed", "steps", "wall time (s)"]
    header += [f"{name} {what}" for name in INDEX_NAMES for what in ("return", "max DD")]
    rows = []
    for run in runs:
        s = run.summary
        wall = s.get("wall_time_s")
        row = [
            str(run.path),
            s.get("scenario", "?"),
            s.get("seed", "?"),
            s.get("steps", len(run.model)),
            f"{wall:.1f}" if isinstance(wall, (int, float)) else "n/a",
        ]
        for name in INDEX_NAMES:
            stats = s.get("indices", {}).get(name, {})
            row += [_pct(stats.get("total_return")), _pct(stats.get("max_drawdown"), sign=False)]
        rows.append(row)
    return _table(header, rows, "runs")


def attribution_rows(runs: list[RunData]) -> list[dict[str, Any]]:
    """Baseline first, then each counterfactual with the share of drawdown it explains."""
    dd_base = microcap_drawdown(runs[0])
    rows = []
    for i, run in enumerate(runs):
        dd = microcap_drawdown(run)
        rows.append(
            {
                "run": str(run.path),
                "scenario": run.summary.get("scenario", "?"),
                "seed": run.summary.get("seed", "?"),
                "microcap_max_drawdown": dd,
                "share_explained": float("nan") if i == 0 else explained_share(dd_base, dd),
            }
        )
    return rows


def attribution_table(runs: list[RunData]) -> str:
    """The attribution rows as HTML; the baseline's share is marked rather than left blank."""
    header = ["run", "scenario", "seed", "micro-cap max DD", "share of baseline DD explained"]
    rows = [
        [
            r["run"],
            r["scenario"],
            r["seed"],
            _pct(r["microcap_max_drawdown"], sign=False),
            "baseline" if i == 0 else _pct(r["share_explained"]),
        ]
        for i, r in enumerate(attribution_rows(runs))
    ]
    return _table(header, rows, "attribution")


EXPLAIN = {
    TITLE_INDICES: "Closing level of each size-tier index divided by its start. A small-cap "
    "crash shows as the lower tiers (CSI 2000, micro-cap) falling away from the CSI 300. "
    "The dotted news lines (click them in the legend) follow the same members on their "
    "fundamental values: the gap between a tier's two lines is what the agents' trading did.",
    TITLE_BASIS: "Annualized basis of the index futures (future over spot). Market-neutral "
    "funds are short futures, so a deep discount is the cost of their hedge; when they are "
    "forced to unwind they buy the futures back, which narrows it (summary.json: each "
    "contract's vs_forced_sales, the correlation of a day's forced sales with the day's "
    "change in the basis; positive where the unwind narrows it).",
    TITLE_FORCED: "Bars: CNY sold each day because of a risk line, a margin call, a buy-in "
    "or a redemption (forced sales), and by retail investors in a panic, apart. Line: the "
    "micro-cap index on the right axis.",
    TITLE_FUNDS: "Cumulative number of quant-neutral funds liquidated, and their "
    "unit-weighted NAV per unit on the right axis; dashed, where their risk budget binds, "
    "the share of their full bid the value investors (the micro-caps' anchor) still make.",
    TITLE_LIMIT: "Number of stocks closing locked at the daily down limit: sellers who "
    "cannot find buyers.",
    TITLE_SCATTER: "Each dot is one stock: its return against log10 of its starting market "
    "cap, coloured by its starting index tier. Small caps losing most is the signature.",
    TITLE_OVERLAY: "Micro-cap index of every run, divided by its start; the first run is "
    "the baseline.",
}


def _figure_html(fig: Figure, title: str) -> str:
    return figure_section(title, fig, EXPLAIN[title])


def figure_section(title: str, fig: Figure | str, explain: str) -> str:
    """One figure section: heading, explanation, then the chart or the reason it is missing."""
    parts = [f"<h3>{html.escape(title)}</h3>", f'<p class="explain">{html.escape(explain)}</p>']
    if isinstance(fig, str):
        parts.append(f'<p class="note">Skipped: {html.escape(fig)}.</p>')
    else:
        # plotly.js is in the page head once; each figure only carries its data.
        parts.append(
            fig.to_html(full_html=False, include_plotlyjs=False, config={"displaylogo": False})
        )
    return "\n".join(parts)


def crash_table(run: RunData) -> str:
    """Each tier's crash-window drawdown split into news and flows, from summary.json;
    empty for a run that does not span the window or predates the news indices."""
    episode = run.summary.get("episode") or {}
    if "flow_drawdown" not in episode:
        return ""
    keys = ("crash_drawdown", "news_drawdown", "flow_drawdown")
    rows = [[name, *(_pct(episode[key][name]) for key in keys)] for name in INDEX_NAMES]
    header = ["index", "drawdown", "news", "flows"]
    explain = (
        "Drawdown of each tier over the crash window (to its lowest close), of its news "
        "index (the same members on fundamental values), and the difference: what the "
        "agents' trading did. Flows that grow more negative from the CSI 300 to the "
        "micro-caps are the size gradient the agents made."
    )
    pace = episode.get("pace")
    if pace:  # how fast: each tier's worst session, and the most stocks locked limit-down
        header.append("worst session")
        for row, name in zip(rows, INDEX_NAMES, strict=True):
            row.append(f"{_pct(pace['worst_session'][name])} ({pace['worst_session_day'][name]})")
        if "limit_down_peak" in pace:
            explain += (
                f" At most {pace['limit_down_peak']} stocks were locked limit-down in one "
                f"session of the window ({pace['limit_down_peak_day']})."
            )
    return "\n".join(
        [
            f"<h3>{TITLE_CRASH}</h3>",
            f'<p class="explain">{html.escape(explain)}</p>',
            _table(header, rows, "crash"),
        ]
    )


def buyers_table(run: RunData) -> str:
    """Each agent type's net purchase of each tier's members over the crash window, from
    summary.json; empty for a run that does not span the window or predates the field."""
    buying = (run.summary.get("episode") or {}).get("net_buying")
    if not buying:
        return ""
    tiers = [name for name in INDEX_NAMES if name in buying]
    types = dict.fromkeys(t for name in tiers for t in buying[name])
    last = tiers[-1]  # the micro-caps where the run has them: sellers of the smallest first
    order = sorted(types, key=lambda t: buying[last].get(t, 0.0))
    rows = [[t, *(_pct(buying[name].get(t, 0.0)) for name in tiers)] for t in order]
    explain = (
        "Net purchase of each index's members from the close before the crash window to "
        "its last close, at the prices before it, as a share of their free float; members "
        "as at that first close. Sellers of the micro-caps first. Every share bought is a "
        "share sold, so each column sums to zero."
    )
    return "\n".join(
        [
            f"<h3>{TITLE_BUYERS}</h3>",
            f'<p class="explain">{html.escape(explain)}</p>',
            _table(["agent type", *tiers], rows, "crash"),
        ]
    )


def runup_table(run: RunData) -> str:
    """The micro-cap index's rise before the crash window split into its parts, from
    summary.json; empty for a run that does not span the window or predates the field."""
    runup = (run.summary.get("episode") or {}).get("microcap_runup") or {}
    if not runup.get("days"):
        return ""
    rows = [
        ["index", _pct(runup["index"]), _log(runup["index_log"])],
        ["of it: the members' mean log returns", "", _log(runup["members_log"])],
        ["of it: the daily equal weights", "", _log(runup["equal_weights_log"])],
        ["news twin", _pct(runup["news"]), _log(runup["news_log"])],
        [
            f"{runup['entered']} names entering: log price/value",
            "",
            _log(runup["entering_mispricing"]),
        ],
        [f"{runup['left']} names leaving: log price/value", "", _log(runup["leaving_mispricing"])],
        ["members' daily spread of log returns (s.d.)", _pct(runup["dispersion"], sign=False), ""],
    ]
    explain = (
        f"The micro-cap index from {runup['first']} to {runup['last']}: its log gain is its "
        "members' mean log return on each day plus what its equal weights, reset every "
        "morning, add. The smallest caps are re-picked every few days: a name that enters "
        "below its value and leaves above it adds to the index what no fixed set of "
        "stocks shows. Price over value at the close before each re-pick."
    )
    return "\n".join(
        [
            f"<h3>{TITLE_RUNUP}</h3>",
            f'<p class="explain">{html.escape(explain)}</p>',
            _table(["", "change", "log points"], rows, "crash"),
        ]
    )


def _log(value: Any) -> str:
    """A change in log points."""
    return _figure(value, "+.3f")


def run_section(run: RunData, window: tuple[str, str] | None = None) -> str:
    """All per-run figures for one run."""
    figures: list[tuple[str, Callable[[], Figure]]] = [
        (TITLE_INDICES, lambda: fig_indices(run)),
        (TITLE_BASIS, lambda: fig_basis(run)),
        (TITLE_FORCED, lambda: fig_forced(run)),
        (TITLE_FUNDS, lambda: fig_funds(run)),
        (TITLE_LIMIT, lambda: fig_limit_down(run)),
        (TITLE_SCATTER, lambda: fig_scatter(run, window)),
    ]
    tables = [crash_table(run), buyers_table(run), runup_table(run)]
    body = "\n".join([*tables, *(_figure_html(make(), title) for title, make in figures)])
    return f"<h2>Run: {html.escape(run.label)}</h2>\n<p>{html.escape(str(run.path))}</p>\n{body}"


def comparison_section(runs: list[RunData]) -> str:
    """Attribution table and micro-cap overlay: only meaningful with a baseline and others."""
    intro = (
        "The first run is the baseline; each other run is a counterfactual with one channel "
        "removed. Share explained = (baseline DD − run DD) / baseline DD, using the micro-cap "
        "index's maximum drawdown: the part of the fall that channel accounts for."
    )
    return "\n".join(
        [
            "<h2>Comparison</h2>",
            f"<h3>{TITLE_ATTRIBUTION}</h3>",
            f'<p class="explain">{html.escape(intro)}</p>',
            attribution_table(runs),
            _figure_html(fig_overlay(runs), TITLE_OVERLAY),
        ]
    )


def render(runs: list[RunData], window: tuple[str, str] | None = None) -> str:
    """The whole page as a string, with plotly.js inlined once in the head."""
    stamp = dt.datetime.now().isoformat(timespec="seconds")
    sections = [
        "<h1>microcap-unwind report</h1>",
        f"<p>Generated {stamp} from {len(runs)} run(s). Works offline: no external scripts.</p>",
        "<h2>Runs</h2>",
        header_table(runs),
    ]
    if len(runs) > 1:
        sections.append(comparison_section(runs))
    sections += [run_section(run, window) for run in runs]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<title>microcap-unwind report</title>\n"
        f"<style>{STYLE}</style>\n"
        f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>\n'
        "</head>\n<body>\n" + "\n".join(sections) + "\n</body>\n</html>\n"
    )


# ---------------------------------------------------------------------------- writing


def report_path(out: Path) -> Path:
    """Where the report goes: ``out/report.html`` for a directory, else ``out`` itself.

    A path that does not exist yet counts as a directory unless it ends in .html/.htm,
    so ``--out reports/`` and ``--out reports/jan.html`` both do the obvious thing.
    """
    out = Path(out)
    if out.is_dir() or (not out.exists() and out.suffix.lower() not in (".html", ".htm")):
        return out / REPORT_NAME
    return out


def _ensure_parent(path: Path) -> None:
    """Create the report's directory or say, in one line, why it cannot be used."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"--out = {str(path)!r}: cannot create directory ({exc.strerror})"
        ) from None
    if not os.access(path.parent, os.W_OK):
        raise ConfigError(f"--out = {str(path)!r}: directory is not writable")


def build_report(runs: list[Path], out: Path, *, window: tuple[str, str] | None = None) -> Path:
    """Build one self-contained HTML report of ``runs`` (the first is the baseline).

    Args:
        runs: Run directories written by ``unwind run``.
        out: A directory (the report becomes ``out/report.html``) or an .html file.
        window: Optional (start, end) ISO dates for the return-against-size scatter;
            the whole run when None.

    Returns:
        The path of the written report.

    Raises:
        ConfigError: No runs, a run directory that is missing or unreadable, or an
            unusable output path. Everything is read before anything is written, so a
            failure leaves no file behind.
    """
    if not runs:
        raise ConfigError("report PATH = []: give at least one run directory")
    loaded = [load_run(Path(p)) for p in runs]
    path = report_path(Path(out))
    _ensure_parent(path)
    write_text(render(loaded, window), path)
    return path
