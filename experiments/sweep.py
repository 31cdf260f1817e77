"""Parameter sweeps: many runs of one scenario, on one machine or a Dask cluster.

A sweep file (TOML) names a base scenario, fixes some keys, varies others and
lists seeds; every (parameter values, seed) pair is a *cell*. Cells run in
parallel as Dask tasks, on a local cluster of worker processes or on an existing
scheduler, through the same code path: the driver submits the importable
function :func:`run_cell`, which runs the model and writes one Parquet file.

This module is the public face of the sweep; the work is done in one module a job:

* :mod:`experiments.sweep_spec`: the sweep file read, checked and expanded into cells;
* :mod:`experiments.sweep_cell`: one cell, the Dask task, and its file;
* :mod:`experiments.sweep_store`: the output directory: lock, manifest, summary, readers;
* :mod:`experiments.sweep_run`: the driver: Dask client, submission, resume, failures;
* :mod:`experiments.sweep_report`: the HTML report of a sweep directory.

Names are re-exported here unchanged. To patch one (tests, worker preloads), patch it
in the module that uses it, e.g. ``experiments.sweep_cell.run``.

Results live in one output directory::

    OUT/manifest.json          what ran: the sweep file, versions, git revision, times
    OUT/cells/<cell_id>.parquet  one cell's model table, tagged with its parameters
    OUT/summary.parquet        one row per cell: parameters, headline figures, status

Each cell file is written atomically (temp name, then ``os.replace``) and
carries its own summary row in the Parquet footer, so the cell files are the
single source of truth: a sweep killed at any moment resumes by skipping the
cells whose file reads back, and rebuilds the summary from them. The driver
never holds a model table, only small summary rows.

Example sweep file::

    scenario = "jan2024"
    seeds = {count = 2, start = 1}

    [set]
    "universe.n_stocks" = 300

    [vary]
    "neutral.dma_leverage" = [1.5, 2.5, 3.5]
    "lending.institutional_pct_float" = {start = 0.002, stop = 0.008, num = 3}
"""

from __future__ import annotations

from experiments.sweep_cell import (
    CELLS_DIR,
    ROW_KEY,
    WRITE_FAILED,
    headline,
    read_cell_row,
    run_cell,
    tag_frame,
    write_cell,
)
from experiments.sweep_report import (
    BINS,
    DD,
    MAX_LEVELS,
    TITLE_HEATMAP,
    TITLE_RESPONSE,
    TITLE_SPREAD,
    fig_heatmap,
    fig_response,
    fig_spread,
    render_sweep,
    sweep_report,
)
from experiments.sweep_run import (
    CONNECT_TIMEOUT_S,
    SweepResult,
    dask_client,
    default_out,
    run_sweep,
)
from experiments.sweep_spec import (
    GRID_RANGE,
    ID_LENGTH,
    MAX_CELLS,
    MODES,
    RANGE_KEYS,
    SAMPLE_RANGE,
    TOP_KEYS,
    Cell,
    SweepSpec,
    canonical_json,
    cell_id,
    load_spec,
    parse_spec,
)
from experiments.sweep_store import (
    LOCK,
    MANIFEST,
    SUMMARY,
    SUMMARY_INTERVAL_S,
    SWEEP_PACKAGES,
    git_revision,
    is_sweep_dir,
    load_summary,
    load_sweep,
    previous_sessions,
    read_manifest,
    scan_cells,
    summary_frame,
    sweep_versions,
)

__all__ = [
    "BINS",
    "CELLS_DIR",
    "CONNECT_TIMEOUT_S",
    "DD",
    "GRID_RANGE",
    "ID_LENGTH",
    "LOCK",
    "MANIFEST",
    "MAX_CELLS",
    "MAX_LEVELS",
    "MODES",
    "RANGE_KEYS",
    "ROW_KEY",
    "SAMPLE_RANGE",
    "SUMMARY",
    "SUMMARY_INTERVAL_S",
    "SWEEP_PACKAGES",
    "TITLE_HEATMAP",
    "TITLE_RESPONSE",
    "TITLE_SPREAD",
    "TOP_KEYS",
    "WRITE_FAILED",
    "Cell",
    "SweepResult",
    "SweepSpec",
    "canonical_json",
    "cell_id",
    "dask_client",
    "default_out",
    "fig_heatmap",
    "fig_response",
    "fig_spread",
    "git_revision",
    "headline",
    "is_sweep_dir",
    "load_spec",
    "load_summary",
    "load_sweep",
    "parse_spec",
    "previous_sessions",
    "read_cell_row",
    "read_manifest",
    "render_sweep",
    "run_cell",
    "run_sweep",
    "scan_cells",
    "summary_frame",
    "sweep_report",
    "sweep_versions",
    "tag_frame",
    "write_cell",
]
