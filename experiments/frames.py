"""Reductions of a run's per-step model table, shared by the summary and the report.

A run records one row per intraday step; the episode figures, the report's
charts and the notebooks read one row per trading day. Reducing in one place
keeps the closes they show and the forced sales they add up the same.
"""

from __future__ import annotations

import pandas as pd

# Per-step amounts: a day's figure is their sum, not the last step's.
FLOWS = ("forced_sales", "panic_sales", "turnover")


def daily(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per trading day: the last step (the close), with flows summed over the day.

    Levels (indices, basis, NAV, counts) are read at the close, which is what daily
    charts and drawdowns should show; a flow at the close alone would miss the day's
    other steps. The ``date`` column is kept, in trading order, with a fresh index;
    a table without dates (written before they were recorded) is returned as it is.
    """
    if "date" not in frame.columns:
        return frame
    out = frame.drop_duplicates("date", keep="last").reset_index(drop=True)
    for name in FLOWS:
        if name in frame.columns:
            out[name] = frame.groupby("date", sort=False)[name].sum().to_numpy()
    return out
