"""Figures of the January-February 2024 episode, read off a run's model table.

The crash window runs from the first trading day of 2024 to 2024-02-08, the last
session before the Spring Festival closure, two sessions after the rescue widened
to small caps (02-06); the rebound is measured over the sessions after it.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from experiments.frames import daily
from experiments.stylized import correlation
from model.futures import expiry_days
from model.universe import INDEX_NAMES

CRASH_START, CRASH_END = "2024-01-02", "2024-02-08"
LATE_JANUARY = ("2024-01-15", "2024-01-31")
AFTER_RESCUE = ("2024-02-19", "2024-02-29")
BASIS_FIGURES = ("late_january_mean", "worst_in_window", "after_rescue_mean")


def covers_crash(frame: pd.DataFrame) -> bool:
    dates = frame["date"]
    return bool(dates.min() < CRASH_START and dates.max() >= CRASH_END)


def first_cut_date(d: pd.DataFrame) -> str | None:
    """First close (of a daily table indexed by date) with a quant-neutral product cutting
    or stopped: when the unwind began, or None if it never did."""
    if "neutral_warned" not in d.columns:  # a table written before the counts were recorded
        return None
    cutting = (d["neutral_warned"] + d["neutral_stopped"]) > 0
    return str(cutting.idxmax()) if cutting.any() else None


def first_stop_date(d: pd.DataFrame) -> str | None:
    """First close (of a daily table indexed by date) by which a quant-neutral product
    had crossed its stop line: when forced liquidation began, or None if it never did."""
    stopped = d["liquidated_funds"] > 0
    return str(stopped.idxmax()) if stopped.any() else None


def last_close_before_window(days: Sequence[dt.date]) -> dt.date | None:
    """The last of ``days`` (trading days, ascending) before the crash window: the close
    the window's figures start from. None if the days start inside it or after."""
    start = dt.date.fromisoformat(CRASH_START)
    before = [d for d in days if d < start]
    return before[-1] if before else None


def in_window(date: str | None) -> bool:
    """True for a date inside the crash window."""
    return date is not None and CRASH_START <= date <= CRASH_END


def in_size_order(drawdown: dict[str, float]) -> bool:
    """True where the drawdowns run from the micro-caps' (worst) to the CSI 300's (best)."""
    order = [drawdown[n] for n in reversed(INDEX_NAMES)]
    return bool(all(a <= b for a, b in itertools.pairwise(order)))


def worst_three_days(before: pd.DataFrame, since: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """The worst three-session NAV change of the neutral products (all, plain, DMA) from
    the crash window's start on, and the day it ended; ``before`` holds the closes just
    before it, so the first sessions count too. Empty for tables without the NAVs."""
    out: dict[str, dict[str, Any]] = {}
    for group, col in (
        ("all", "neutral_nav"),
        ("plain", "neutral_nav_plain"),
        ("dma", "neutral_nav_dma"),
    ):
        if col not in since.columns or since[col].isna().all():
            continue
        nav = pd.concat([before[col], since[col]])
        change = (nav / nav.shift(3) - 1.0).loc[since.index]
        if change.notna().any():
            out[group] = {"change": float(change.min()), "ended": str(change.idxmin())}
    return out


def basis_vs_forced_sales(d: pd.DataFrame, col: str) -> float | None:
    """Correlation of each day's forced sales with the day's change in the basis ``col``,
    from the crash window's first session to the end of a daily table indexed by date.

    Positive: the discount narrows on the days the products sell under duress (they buy
    their futures hedges back); negative: it deepens with the liquidations, as in
    February 2024. The day after each expiry is left out: its change is from the expired
    contract's last close to the next contract's first.
    """
    days = [dt.date.fromisoformat(str(day)) for day in d.index]
    counted = np.array([str(day) >= CRASH_START for day in d.index])
    rolled = expiry_days(days) + 1
    counted[rolled[rolled < len(days)]] = False
    change = d[col].diff().to_numpy(dtype=float)
    counted &= ~np.isnan(change)
    return correlation(d["forced_sales"].to_numpy(dtype=float)[counted], change[counted])


def crash_pace(frame: pd.DataFrame) -> dict[str, Any]:
    """How fast the window fell, from a run's per-step table: each index's worst session
    (close to close, the first against the close before the window) and the most stocks
    locked limit-down after any slice of a session in it, with the days. 2024's crash
    came in days of -6% and worse with over a thousand stocks limit-down; a grind of
    small days reaches the same depth another way."""
    d = daily(frame).set_index("date")
    closes = pd.concat([d.loc[d.index < CRASH_START].tail(1), d.loc[CRASH_START:CRASH_END]])
    session = closes[list(INDEX_NAMES)].pct_change().iloc[1:]  # (days, 5) daily returns
    pace: dict[str, Any] = {
        "worst_session": {n: float(session[n].min()) for n in INDEX_NAMES},
        "worst_session_day": {n: str(session[n].idxmin()) for n in INDEX_NAMES},
    }
    if "limit_down_count" in frame.columns:
        dates = frame["date"].astype(str)
        inside = (dates >= CRASH_START) & (dates <= CRASH_END)
        locked = frame["limit_down_count"][inside].groupby(dates[inside]).max()
        pace["limit_down_peak"] = int(locked.max())
        pace["limit_down_peak_day"] = str(locked.idxmax())
    return pace


def episode_figures(frame: pd.DataFrame) -> dict[str, Any]:
    """Size gradient, basis, forced-sale timing and rebound of the crash window."""
    d = daily(frame).set_index("date")  # the crash window is sliced by date
    before = d.loc[d.index < CRASH_START]
    base = before.iloc[-1]
    window = d.loc[CRASH_START:CRASH_END]
    drawdown = {n: float(window[n].min() / base[n] - 1.0) for n in INDEX_NAMES}
    after = d.loc[CRASH_END:]
    trough = float(window["microcap"].min())
    figures: dict[str, Any] = {
        "crash_drawdown": drawdown,
        "size_gradient": in_size_order(drawdown),
        "microcap_rebound": float(after["microcap"].iloc[1:].max() / trough - 1.0)
        if len(after) > 1
        else None,
        "forced_sales_in_window_cny": float(window["forced_sales"].sum()),
        # Over the whole run, as the dates of the first cut and stop-out below.
        "forced_sales_peak_day": str(d["forced_sales"].idxmax())
        if d["forced_sales"].any()
        else None,
        "liquidated_funds_by_crash_end": int(window["liquidated_funds"].iloc[-1]),
        "first_cut_date": first_cut_date(d),
        "first_stop_date": first_stop_date(d),
        "pace": crash_pace(frame),
    }
    if all(f"{n}_news" in d.columns for n in INDEX_NAMES):  # tables of 2026-11 on
        # The same window on the news indices; what is left is the agents' doing.
        news = {n: float(window[f"{n}_news"].min() / base[f"{n}_news"] - 1.0) for n in INDEX_NAMES}
        flows = {n: drawdown[n] - news[n] for n in INDEX_NAMES}
        figures["news_drawdown"] = news
        figures["flow_drawdown"] = flows
        figures["flow_gradient"] = in_size_order(flows)
    if "value_appetite" in d.columns and d["value_appetite"].lt(1.0).any():
        # When the micro-caps' anchor stepped back: the value investors' lowest bid share
        # over the whole run (it may come after the window, as the loss fades slowly).
        figures["value_appetite_low"] = {
            "share": float(d["value_appetite"].min()),
            "day": str(d["value_appetite"].idxmin()),
        }
    worst = worst_three_days(before.tail(3), d.loc[CRASH_START:])
    if worst:
        figures["neutral_worst_three_days"] = worst
    for col in ("ic_basis", "im_basis"):
        if d[col].notna().any():
            late = d.loc[LATE_JANUARY[0] : LATE_JANUARY[1], col].mean()
            after = d.loc[AFTER_RESCUE[0] : AFTER_RESCUE[1], col].mean()
            values = (late, window[col].min(), after)
            # A stretch the run does not reach (a run ending before the rescue) has no
            # figure: None, as JSON writes it, not the NaN of an empty mean.
            values = [float(v) if np.isfinite(v) else None for v in values]
            figures[col] = dict(zip(BASIS_FIGURES, values, strict=True))
            figures[col]["worst_day"] = str(window[col].idxmin())
            figures[col]["vs_forced_sales"] = basis_vs_forced_sales(d, col)
    sales = d["forced_sales"].to_numpy(dtype=float)
    ret = np.diff(np.log(d["microcap"].to_numpy(dtype=float)))
    corr = correlation(sales[:-1], ret)
    if corr is not None:
        figures["forced_sales_vs_next_day_return"] = corr
    return figures
