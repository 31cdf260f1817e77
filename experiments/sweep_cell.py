"""One cell of a sweep: the Dask task that runs it, and the file it leaves.

The task lives in this importable module, not in ``__main__``, so Dask workers
can unpickle it. Each cell file carries its own summary row in the Parquet footer,
which is what lets a sweep resume from its cell files alone.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.episode import BASIS_FIGURES, in_window
from experiments.outputs import atomic_write, one_line
from experiments.run import run
from experiments.scenarios import load_scenario
from model.universe import INDEX_NAMES

CELLS_DIR = "cells"
ROW_KEY = b"microcap_unwind.sweep_row"  # Parquet footer key holding the cell's summary row
WRITE_FAILED = "write failed"  # a cell's status when its file could not be written
ERROR_LIMIT = 300  # characters of a failed cell's error kept in its summary row


def headline(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The figures a sweep compares across cells, flattened from a run's summary."""
    row: dict[str, Any] = {"steps": int(summary["steps"])}
    for name in INDEX_NAMES:
        stats = summary["indices"][name]
        row[f"{name}_total_return"] = float(stats["total_return"])
        row[f"{name}_max_drawdown"] = float(stats["max_drawdown"])
    row["forced_sale_share"] = float(summary["reflexivity"]["forced_sale_share"])
    row.update(episode_headline(summary.get("episode")))
    return row


def episode_headline(episode: Mapping[str, Any] | None) -> dict[str, Any]:
    """The crash window's figures that a sweep over seeds counts or takes medians of.

    Yes/no figures are 1.0 or 0.0, so a mean is a share; a run that does not span
    the window has NaN throughout (and no date), so every row has the same columns.
    """
    nan = float("nan")
    row: dict[str, Any] = {f"{name}_crash_drawdown": nan for name in INDEX_NAMES}
    row.update(size_gradient=nan, flow_gradient=nan, first_stop_date=None)
    row.update(first_stop_in_window=nan, microcap_rebound=nan)
    row.update(microcap_worst_session=nan, limit_down_peak=nan)
    row.update({f"{c}_{k}": nan for c in ("ic_basis", "im_basis") for k in BASIS_FIGURES})
    row.update({f"{c}_vs_forced_sales": nan for c in ("ic_basis", "im_basis")})
    if not episode:
        return row
    for name in INDEX_NAMES:
        row[f"{name}_crash_drawdown"] = float(episode["crash_drawdown"][name])
    row["size_gradient"] = float(episode["size_gradient"])
    if "flow_gradient" in episode:
        row["flow_gradient"] = float(episode["flow_gradient"])
    stop = episode.get("first_stop_date")
    row["first_stop_date"] = stop
    row["first_stop_in_window"] = float(in_window(stop))
    if episode.get("microcap_rebound") is not None:
        row["microcap_rebound"] = float(episode["microcap_rebound"])
    pace = episode.get("pace", {})
    row["microcap_worst_session"] = float(pace.get("worst_session", {}).get("microcap", nan))
    row["limit_down_peak"] = float(pace.get("limit_down_peak", nan))
    for c in ("ic_basis", "im_basis"):
        for k in BASIS_FIGURES:
            row[f"{c}_{k}"] = float(episode.get(c, {}).get(k, nan))
        corr = episode.get(c, {}).get("vs_forced_sales")  # None: nothing to correlate
        row[f"{c}_vs_forced_sales"] = nan if corr is None else float(corr)
    return row


def empty_headline() -> dict[str, Any]:
    """NaN figures for a failed cell, so every summary row has the same columns."""
    nan = float("nan")
    row: dict[str, Any] = {"steps": 0}
    for name in INDEX_NAMES:
        row[f"{name}_total_return"] = nan
        row[f"{name}_max_drawdown"] = nan
    row["forced_sale_share"] = nan
    row.update(episode_headline(None))
    return row


def tag_frame(frame: pd.DataFrame, params: Mapping[str, Any], seed: int, cid: str) -> pd.DataFrame:
    """The model table with the cell's parameters, seed and id in front (one column each)."""
    tags = pd.DataFrame({**{k: [v] * len(frame) for k, v in params.items()}})
    tags["seed"] = np.full(len(frame), seed, dtype=np.int64)
    tags["cell_id"] = cid
    return pd.concat([tags, frame.reset_index(drop=True)], axis=1)


def write_cell(frame: pd.DataFrame, row: Mapping[str, Any], path: Path) -> None:
    """Write a cell's table with its summary row in the Parquet footer, atomically.

    Table and row land in one file in one rename, so they can never disagree. The
    row's wall time stays out of the file: the same cell and seed give the same bytes,
    whichever worker ran it and however busy it was.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False)
    meta = dict(table.schema.metadata or {})
    stored = {k: v for k, v in row.items() if k != "wall_time_s"}
    meta[ROW_KEY] = json.dumps(stored).encode()
    table = table.replace_schema_metadata(meta)
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def read_cell_row(path: Path) -> dict[str, Any]:
    """The summary row stored in a cell file's footer; raises if the file is damaged.

    Reading the footer alone is quick, and it fails on a truncated or foreign file.
    """
    import pyarrow.parquet as pq

    meta = pq.read_metadata(path)
    stored = (meta.metadata or {}).get(ROW_KEY)
    if stored is None or meta.num_rows == 0:
        raise ValueError("no sweep row in the footer")
    return json.loads(stored)


def run_cell(cell: Mapping[str, Any], out_dir: str) -> dict[str, Any]:
    """Run one cell and write ``out_dir/cells/<cell_id>.parquet``; the Dask task.

    It never raises for a model failure: the error becomes the row's status, so one
    bad corner of a grid does not stop the sweep. A file that cannot be written (a
    full disk, a read-only directory) gives the status ``WRITE_FAILED``, on which the
    driver stops the sweep. Only the small row goes back to the driver; the table
    goes straight to disk from the worker.

    Args:
        cell: The payload from :meth:`SweepSpec.task`.
        out_dir: The sweep's output directory (shared with the driver).

    Returns:
        The summary row: parameters, seed, cell id, status, error, wall time, headline.
    """
    started = time.perf_counter()
    row: dict[str, Any] = {**cell["params"], "seed": cell["seed"], "cell_id": cell["cell_id"]}
    try:
        config = load_scenario(cell["scenario"], scale=cell["scale"], overrides=cell["overrides"])
        result = run(config, cell["seed"], check=cell.get("check"))
        row.update(status="ok", error="", **headline(result.summary))
        row["wall_time_s"] = round(time.perf_counter() - started, 3)
        frame = tag_frame(result.frame, cell["params"], cell["seed"], cell["cell_id"])
    except Exception as exc:  # recorded, not raised: the sweep goes on
        row.update(status="error", error=one_line(f"{type(exc).__name__}: {exc}", ERROR_LIMIT))
        row.update(empty_headline())
        row["wall_time_s"] = round(time.perf_counter() - started, 3)
        return row
    try:
        write_cell(frame, row, Path(out_dir) / CELLS_DIR / f"{cell['cell_id']}.parquet")
    except OSError as exc:
        row.update(status=WRITE_FAILED, error=one_line(exc.strerror or str(exc), 120))
    return row
