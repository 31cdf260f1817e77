"""The offline HTML report of a sweep directory: figures and tables over the cells."""

from __future__ import annotations

import html
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from experiments.episode import BASIS_FIGURES, CRASH_END, CRASH_START
from experiments.sweep_spec import canonical_json
from experiments.sweep_store import load_summary, now, read_manifest

DD = "microcap_max_drawdown"
TITLE_HEATMAP = "Micro-cap max drawdown over two parameters"
TITLE_RESPONSE = "Micro-cap max drawdown against"
TITLE_SPREAD = "Micro-cap max drawdown across cells"
MAX_LEVELS = 12  # more distinct values than this (random/LHS) are binned for the heatmap
BINS = 8


def _numeric(frame: pd.DataFrame, key: str) -> bool:
    return pd.api.types.is_numeric_dtype(frame[key]) and not pd.api.types.is_bool_dtype(frame[key])


def _levels(frame: pd.DataFrame, key: str) -> pd.Series:
    """A parameter's values, binned to interval midpoints when there are too many."""
    values = frame[key]
    if values.nunique() <= MAX_LEVELS or not _numeric(frame, key):
        return values
    bins = pd.cut(values, BINS)
    return bins.map(lambda b: round(b.mid, 6)).astype(float)


def fig_heatmap(ok: pd.DataFrame, keys: list[str]) -> Any:
    """Mean micro-cap drawdown over seeds on a grid of the first two varied parameters."""
    import plotly.graph_objects as go

    from experiments.report import _layout

    if len(keys) < 2:
        return "needs two varied parameters"
    x, y = keys[0], keys[1]
    table = ok.assign(_x=_levels(ok, x), _y=_levels(ok, y))
    grid = table.pivot_table(index="_y", columns="_x", values=DD, aggfunc="mean").sort_index()
    grid = grid.reindex(sorted(grid.columns), axis=1)
    fig = go.Figure(
        go.Heatmap(
            x=[str(v) for v in grid.columns],
            y=[str(v) for v in grid.index],
            z=grid.to_numpy(),
            colorscale="Reds",
            texttemplate="%{z:.1%}",
            colorbar={"title": "max DD", "tickformat": ".0%"},
            hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>mean max DD %{{z:.2%}}<extra></extra>",
        )
    )
    rest = [k for k in keys if k not in (x, y)]
    note = f" (mean over seeds and {', '.join(rest)})" if rest else " (mean over seeds)"
    return _layout(
        fig, TITLE_HEATMAP + note, y, xaxis_title=x, xaxis_type="category", yaxis_type="category"
    )


def fig_response(ok: pd.DataFrame, key: str, keys: list[str]) -> Any:
    """Drawdown against one parameter: mean over seeds, with the min-max band.

    With exactly one other parameter of few values, one curve per value of it;
    otherwise the band also spans the other parameters.
    """
    import plotly.graph_objects as go

    from experiments.report import _layout

    if not _numeric(ok, key):
        return f"{key} is not numeric"
    table = ok.assign(_x=_levels(ok, key))
    others = [k for k in keys if k != key]
    split = others[0] if len(others) == 1 and ok[others[0]].nunique() <= 6 else None
    groups = table.groupby(split, sort=True) if split else [(None, table)]
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]
    fig = go.Figure()
    for i, (value, part) in enumerate(groups):
        stats = part.groupby("_x")[DD].agg(["mean", "min", "max"]).sort_index()
        colour = palette[i % len(palette)]
        label = f"{split} = {value[0] if isinstance(value, tuple) else value}" if split else "mean"
        xs = list(stats.index) + list(stats.index[::-1])
        band = list(stats["max"]) + list(stats["min"][::-1])
        fig.add_scatter(
            x=xs,
            y=band,
            fill="toself",
            line={"width": 0},
            fillcolor=colour,
            opacity=0.2,
            hoverinfo="skip",
            showlegend=False,
            legendgroup=label,
        )
        fig.add_scatter(
            x=stats.index,
            y=stats["mean"],
            mode="lines+markers",
            name=label,
            line={"color": colour},
            legendgroup=label,
        )
    _layout(
        fig,
        f"{TITLE_RESPONSE} {key}",
        "micro-cap max drawdown",
        xaxis_title=key,
        yaxis_tickformat=".0%",
    )
    return fig.update_layout(legend={"y": -0.3}, margin={"b": 70})  # clear of the axis title


def fig_spread(ok: pd.DataFrame) -> Any:
    """Histogram of the drawdown over all cells: the seed-to-seed spread at a glance."""
    import plotly.graph_objects as go

    from experiments.report import _layout

    fig = go.Figure(go.Histogram(x=ok[DD], nbinsx=min(30, max(5, len(ok))), name="cells"))
    return _layout(
        fig, TITLE_SPREAD, "cells", xaxis_title="micro-cap max drawdown", xaxis_tickformat=".0%"
    )


def _points(ok: pd.DataFrame, keys: list[str]) -> Iterator[tuple[tuple[Any, ...], pd.DataFrame]]:
    """(values of the varied keys, that point's cells) for each parameter point; one point
    of every cell when nothing varies."""
    if not keys:
        yield (), ok
        return
    for value, part in ok.groupby(keys, sort=True):
        yield (value if isinstance(value, tuple) else (value,)), part


def _cell_table(summary: pd.DataFrame, keys: list[str]) -> str:
    """Mean and spread over seeds of the headline figures for each parameter point."""
    from experiments.report import _pct, _table

    ok = summary[summary["status"] == "ok"]
    if ok.empty:
        return "<p class='note'>No cell finished.</p>"
    rows = []
    for values, part in _points(ok, keys):
        dd = part[DD]
        rows.append(
            [
                *[str(v) for v in values],
                str(len(part)),
                _pct(dd.mean(), sign=False),
                _pct(dd.std(), sign=False) if len(part) > 1 else "n/a",
                _pct(part["microcap_total_return"].mean()),
                _pct(part["csi300_total_return"].mean()),
                _pct(part["forced_sale_share"].mean(), sign=False),
            ]
        )
    header = [
        *keys,
        "seeds",
        "micro-cap max DD (mean)",
        "sd",
        "micro-cap return",
        "CSI 300 return",
        "forced-sale share",
    ]
    return _table(header, rows[:500], "cells")


def _episode_table(summary: pd.DataFrame, keys: list[str]) -> str:
    """The crash window over seeds for each parameter point: how often the spiral's
    signatures appear (counts of cells) and their medians. Empty for sweeps whose runs
    do not span the window, or summaries written before these columns existed."""
    from experiments.report import _pct, _table

    if "size_gradient" not in summary.columns:
        return ""
    ok = summary[(summary["status"] == "ok") & summary["size_gradient"].notna()]
    if ok.empty:
        return ""
    rows = []
    for values, part in _points(ok, keys):
        n = len(part)

        def count(col: str, part: pd.DataFrame = part, n: int = n) -> str:
            return f"{int(part[col].sum())} of {n}" if part[col].notna().all() else "n/a"

        def basis(col: str, part: pd.DataFrame = part) -> str:
            return " / ".join(_pct(part[f"{col}_{k}"].median()) for k in BASIS_FIGURES)

        rows.append(
            [
                *[str(v) for v in values],
                str(n),
                count("size_gradient"),
                count("flow_gradient"),
                count("first_stop_in_window"),
                _pct(part["microcap_crash_drawdown"].median()),
                _pct(part["csi300_crash_drawdown"].median()),
                _pct(part[DD].median()),
                basis("im_basis"),
                basis("ic_basis"),
                _pct(part["microcap_worst_session"].median()),
                str(int(part["limit_down_peak"].max())),
                _pct(part["microcap_rebound"].median()),
            ]
        )
    header = [
        *keys,
        "seeds",
        "full order",
        "flows in order",
        "first stop-out in window",
        "micro-cap window (median)",
        "CSI 300 window",
        "micro-cap max DD",
        "IM basis: late Jan / worst / after",
        "IC basis: late Jan / worst / after",
        "micro-cap worst session",
        "most stocks limit-down",
        "micro-cap rebound",
    ]
    return (
        "<h2>The crash window over seeds</h2>\n"
        f"<p class='note'>Window {CRASH_START} to {CRASH_END}. Full order: the window's "
        "drawdowns run micro-cap, CSI 2000, 1000, 500, 300 from worst to best; flows in "
        "order: the same for the drawdowns less their news indices'. First stop-out: a "
        "product crossed its stop line inside the window. Basis: annualized, medians of "
        "each run's late-January mean, worst close in the window and mean after the "
        "rescue. Other figures are medians over seeds, but the limit-downs, a maximum."
        "</p>\n" + _table(header, rows[:500], "episode")
    )


def _failed_table(summary: pd.DataFrame, keys: list[str]) -> str:
    from experiments.report import _table

    bad = summary[summary["status"] != "ok"]
    if bad.empty:
        return ""
    rows = [
        [*[str(r[k]) for k in keys], str(r["seed"]), r["cell_id"], r["error"]]
        for _, r in bad.head(200).iterrows()
    ]
    return "<h2>Failed cells</h2>\n" + _table([*keys, "seed", "cell", "error"], rows, "failed")


def render_sweep(out: Path) -> str:
    """The sweep report page as a string, plotly.js inlined once in the head."""
    import plotly.offline

    from experiments.report import STYLE, figure_section

    manifest = read_manifest(out)
    summary = load_summary(out)
    keys = [k for k in manifest.get("vary", []) if k in summary.columns]
    ok = summary[(summary["status"] == "ok") & summary[DD].notna()]
    session = manifest.get("session", {})
    facts = (
        f"Scenario <b>{html.escape(str(manifest.get('scenario')))}</b> "
        f"(scale {html.escape(str(manifest.get('scale')))}), mode {manifest.get('mode')}, "
        f"{manifest.get('n_cells')} cells: {len(ok)} ok, {int((summary['status'] != 'ok').sum())}"
        f" failed. Seeds "
        f"{html.escape(str(manifest.get('seeds')))}; varied: "
        f"{html.escape(', '.join(keys) or 'nothing (seeds only)')}; fixed: "
        f"{html.escape(canonical_json(manifest.get('set', {})))}. Git "
        f"{html.escape(str(manifest.get('git_revision')))}"
        f"{' (with local edits)' if manifest.get('git_dirty') else ''}; last session "
        f"{html.escape(str(session.get('started')))} to {html.escape(str(session.get('finished')))}"
        f" on {html.escape(str(session.get('scheduler')))}."
    )
    sections = [
        f"<h1>Sweep report: {html.escape(str(manifest.get('sweep', Path(out).name)))}</h1>",
        f"<p>{facts}</p>",
        f"<p>Generated {now()} from {html.escape(str(out))}. Works offline.</p>",
    ]
    figures: list[tuple[str, Any, str]] = []
    if not ok.empty:
        figures.append(
            (
                TITLE_HEATMAP,
                fig_heatmap(ok, keys),
                "Each square: the micro-cap index's maximum drawdown, averaged over "
                "seeds, for one pair of values of the first two varied parameters.",
            )
        )
        for key in keys:
            figures.append(
                (
                    f"{TITLE_RESPONSE} {key}",
                    fig_response(ok, key, keys),
                    "Line: mean over seeds; band: lowest to highest seed.",
                )
            )
        figures.append(
            (
                TITLE_SPREAD,
                fig_spread(ok),
                "Every finished cell once: how much the outcome moves with the seed.",
            )
        )
    for title, fig, explain in figures:
        sections.append(figure_section(title, fig, explain))
    sections += [
        _episode_table(summary, keys),
        "<h2>Cells (mean over seeds)</h2>",
        _cell_table(summary, keys),
        _failed_table(summary, keys),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        "<title>microcap-unwind sweep report</title>\n"
        f"<style>{STYLE}</style>\n"
        f'<script type="text/javascript">{plotly.offline.get_plotlyjs()}</script>\n'
        "</head>\n<body>\n" + "\n".join(sections) + "\n</body>\n</html>\n"
    )


def sweep_report(out: Path, path: Path | None = None) -> Path:
    """Write the offline HTML report of a sweep directory.

    Args:
        out: The sweep's output directory.
        path: A directory (the report becomes ``path/report.html``) or an .html file;
            default ``out/report.html``.

    Returns:
        The written report's path.
    """
    from experiments.outputs import write_text
    from experiments.report import _ensure_parent, report_path

    target = report_path(Path(path) if path is not None else Path(out))
    page = render_sweep(Path(out))
    _ensure_parent(target)
    write_text(page, target)
    return target
