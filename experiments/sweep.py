"""Parameter sweeps: many runs of one scenario, on one machine or a Dask cluster.

A sweep file (TOML) names a base scenario, fixes some keys, varies others and
lists seeds; every (parameter values, seed) pair is a *cell*. Cells run in
parallel as Dask tasks, on a local cluster of worker processes or on an existing
scheduler, through the same code path: the driver submits the importable
function :func:`run_cell`, which runs the model and writes one Parquet file.

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

import contextlib
import datetime as dt
import difflib
import fcntl
import hashlib
import html
import itertools
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.outputs import atomic_write, ensure_dir, output_error, write_json, write_parquet
from experiments.run import run, versions
from experiments.scenarios import SCALES, SCENARIO_DIR, load_scenario, read_toml
from model.calendar import trading_days
from model.config import ConfigError, ScenarioConfig, flat_keys
from model.universe import INDEX_NAMES

CELLS_DIR = "cells"
MANIFEST = "manifest.json"
SUMMARY = "summary.parquet"
LOCK = ".sweep.lock"
ROW_KEY = b"microcap_unwind.sweep_row"  # Parquet footer key holding the cell's summary row

MODES = ("grid", "random", "lhs")
TOP_KEYS = (
    "scenario",
    "scale",
    "name",
    "description",
    "mode",
    "samples",
    "sweep_seed",
    "seeds",
    "set",
    "vary",
)
GRID_RANGE = ({"start", "stop", "num"}, {"start", "stop", "step"})
SAMPLE_RANGE = {"low", "high"}
RANGE_KEYS = {"start", "stop", "num", "step", "low", "high"}
MAX_CELLS = 100_000
ID_LENGTH = 16  # hex digits of sha256: collisions are out of reach for any sweep size
SUMMARY_INTERVAL_S = 2.0  # how often the driver rewrites summary.parquet while cells finish
CONNECT_TIMEOUT_S = 10
SWEEP_PACKAGES = ("dask", "distributed", "tqdm", "plotly")
WRITE_FAILED = "write failed"  # a cell's status when its file could not be written


# ---------------------------------------------------------------------------- the spec


@dataclass(frozen=True)
class Cell:
    """One run of the sweep: parameter values and a seed.

    Attributes:
        index: Position in the sweep (grid order), so tables sort the way the file reads.
        params: Varied dotted key -> value for this cell.
        seed: The model seed.
        cell_id: Stable hash of everything that determines the run, the cell's file name.
    """

    index: int
    params: dict[str, Any]
    seed: int
    cell_id: str


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep file: every cell is known and its config builds."""

    name: str
    path: Path
    text: str
    scenario: str
    scenario_ref: str  # what load_scenario gets: a bundled name, or an absolute path
    scale: str
    fixed: dict[str, Any]
    vary: tuple[str, ...]
    mode: str
    samples: int | None
    sweep_seed: int
    seeds: tuple[int, ...]
    cells: tuple[Cell, ...] = field(repr=False)

    def task(self, cell: Cell, check: bool | None = None) -> dict[str, Any]:
        """The plain-dict payload a worker needs for ``cell`` (small and picklable).

        ``check`` turns the invariant checker on; it never changes a cell's results.
        """
        return {
            "cell_id": cell.cell_id,
            "params": cell.params,
            "seed": cell.seed,
            "scenario": self.scenario_ref,
            "scale": self.scale,
            "overrides": {**self.fixed, **cell.params},
            "check": check,
        }


def canonical_json(data: Any) -> str:
    """Key-sorted compact JSON: the same data always gives the same text (and hash)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


def cell_id(scenario: str, scale: str, fixed: Mapping[str, Any], params: Mapping, seed: int) -> str:
    """Hash of the canonical JSON of everything that determines a cell's run.

    Fixed keys, scenario and scale are included with the varied parameters and the
    seed, so a cell file can never be mistaken for a run with different settings;
    adding values or seeds to a sweep keeps the ids of the cells already done.
    """
    payload = {"scenario": scenario, "scale": scale, "set": fixed, "params": params, "seed": seed}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:ID_LENGTH]


def _flatten(table: Mapping[str, Any], prefix: str, *, keep_ranges: bool) -> dict[str, Any]:
    """``{"neutral": {"dma_leverage": x}}`` -> ``{"neutral.dma_leverage": x}``.

    TOML reads an unquoted dotted key as nested tables, so both spellings are
    accepted. With ``keep_ranges`` a table made only of range words is a value.
    """
    out: dict[str, Any] = {}
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        is_range = keep_ranges and isinstance(value, dict) and value and set(value) <= RANGE_KEYS
        if isinstance(value, dict) and not is_range:
            out.update(_flatten(value, dotted + ".", keep_ranges=keep_ranges))
        else:
            out[dotted] = value
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _int_at_least(key: str, value: Any, lo: int) -> int:
    """An integer >= lo, or a one-line ConfigError naming ``key``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < lo:
        raise ConfigError(f"{key} = {value!r}: must be an integer >= {lo}")
    return value


def _tidy(value: Any, kind: type) -> Any:
    """One canonical Python value per parameter, so Parquet columns get one type.

    Dates become ISO strings (the config accepts them), ints become floats for float
    keys, integral floats become ints for int keys, and range arithmetic noise such
    as 0.30000000000000004 is rounded away.
    """
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if kind is float and _is_number(value):
        return float(f"{float(value):.12g}")
    if kind is int and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _grid_values(key: str, value: Any, kind: type) -> list[Any]:
    """The values one key takes in a grid: a list, or a start/stop range table."""
    where = f"vary.{key}"
    if isinstance(value, list):
        if not value:
            raise ConfigError(f"{where} = []: must list at least one value")
        values = [_tidy(v, kind) for v in value]
    elif isinstance(value, dict):
        values = [_tidy(v, kind) for v in _range_values(where, value)]
    else:
        raise ConfigError(
            f"{where} = {value!r}: must be a list or a range {{start, stop, num}} or "
            "{start, stop, step}"
        )
    if len({canonical_json(v) for v in values}) != len(values):
        raise ConfigError(f"{where} = {value!r}: values must be distinct")
    return values


def _range_values(where: str, table: Mapping[str, Any]) -> list[float | int]:
    """Expand ``{start, stop, num}`` (linear, both ends) or ``{start, stop, step}``."""
    shown = canonical_json(table)
    if set(table) == SAMPLE_RANGE:
        raise ConfigError(f"{where} = {shown}: {{low, high}} needs mode = 'random' or 'lhs'")
    if set(table) not in GRID_RANGE:
        raise ConfigError(
            f"{where} = {shown}: a range is {{start, stop, num}} or {{start, stop, step}}"
        )
    start, stop = table["start"], table["stop"]
    if not (_is_number(start) and _is_number(stop)):
        raise ConfigError(f"{where} = {shown}: start and stop must be finite numbers")
    if "num" in table:
        num = _int_at_least(f"{where}.num", table["num"], 1)
        if num > MAX_CELLS:
            raise ConfigError(f"{where}.num = {num}: must be at most {MAX_CELLS}")
        return list(np.linspace(start, stop, num))
    step = table["step"]
    if not _is_number(step) or step == 0 or (stop - start) * step < 0:
        raise ConfigError(
            f"{where}.step = {step!r}: must be a non-zero number going from start to stop"
        )
    count = math.floor((stop - start) / step + 1e-9) + 1
    if count > MAX_CELLS:
        raise ConfigError(f"{where} = {shown}: gives {count} values, at most {MAX_CELLS} allowed")
    values = [start + i * step for i in range(count)]
    all_int = all(isinstance(v, int) and not isinstance(v, bool) for v in (start, stop, step))
    return values if all_int else [float(v) for v in values]


def _sample_dims(vary: Mapping[str, Any], kinds: Mapping[str, type]) -> list[tuple[str, Any]]:
    """Check each key of a random/LHS sweep: ``{low, high}`` or a list to pick from."""
    dims = []
    for key, value in vary.items():
        where = f"vary.{key}"
        if isinstance(value, list):
            if not value:
                raise ConfigError(f"{where} = []: must list at least one value")
            dims.append((key, [_tidy(v, kinds[key]) for v in value]))
            continue
        shown = canonical_json(value) if isinstance(value, dict) else repr(value)
        if not isinstance(value, dict) or set(value) != SAMPLE_RANGE:
            raise ConfigError(
                f"{where} = {shown}: with mode random/lhs give {{low, high}} or a list"
            )
        low, high = value["low"], value["high"]
        if not (_is_number(low) and _is_number(high)) or high < low:
            raise ConfigError(f"{where} = {shown}: low and high must be numbers with low <= high")
        if kinds[key] not in (int, float):
            raise ConfigError(f"{where} = {shown}: {{low, high}} only for numeric keys")
        dims.append((key, (low, high)))
    return dims


def _sample_points(
    dims: list[tuple[str, Any]], kinds: Mapping[str, type], mode: str, samples: int, seed: int
) -> list[dict[str, Any]]:
    """``samples`` points drawn uniformly (random) or by Latin hypercube (lhs).

    LHS splits each axis into ``samples`` equal strata and puts one point in each,
    shuffled independently per axis: every range is covered evenly even with few
    samples. Integer keys draw whole numbers in [low, high]; list keys pick by stratum.
    """
    rng = np.random.default_rng(seed)
    columns = []
    for _key, _spec in dims:
        if mode == "lhs":
            columns.append((rng.permutation(samples) + rng.random(samples)) / samples)
        else:
            columns.append(rng.random(samples))
    points = []
    for i in range(samples):
        point = {}
        for (key, spec), u in zip(dims, columns, strict=True):
            if isinstance(spec, list):
                value = spec[min(int(u[i] * len(spec)), len(spec) - 1)]
            elif kinds[key] is int:
                low, high = math.ceil(spec[0]), math.floor(spec[1])
                value = min(low + int(u[i] * (high - low + 1)), high)
            else:
                value = spec[0] + u[i] * (spec[1] - spec[0])
            point[key] = _tidy(value, kinds[key])
        points.append(point)
    return points


def _seeds(value: Any) -> tuple[int, ...]:
    """``[1, 2, 3]`` or ``{count = 5, start = 1}``; one seed (1) when absent."""
    if value is None:
        return (1,)
    if isinstance(value, dict):
        unknown = set(value) - {"count", "start"}
        if unknown or "count" not in value:
            raise ConfigError(f"seeds = {canonical_json(value)}: must be {{count = N, start = S}}")
        count = _int_at_least("seeds.count", value["count"], 1)
        start = _int_at_least("seeds.start", value.get("start", 1), 0)
        return tuple(range(start, start + count))
    if not isinstance(value, list) or not value:
        raise ConfigError(f"seeds = {value!r}: must be a list of integers or {{count, start}}")
    seeds = tuple(_int_at_least(f"seeds[{i}]", s, 0) for i, s in enumerate(value))
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds = {value!r}: seeds must be distinct")
    return seeds


def _scenario_ref(scenario: Any, spec_dir: Path) -> str:
    """The absolute path of the scenario file, so workers read it wherever they run.

    A bundled name resolves to its file in ``experiments/scenarios`` (by name, so a
    stray file of that name in the working directory cannot shadow it); a path is
    taken relative to the sweep file, then to the working directory.
    """
    if not isinstance(scenario, str) or not scenario:
        raise ConfigError(f"scenario = {scenario!r}: must be a scenario name or a .toml path")
    path = Path(scenario)
    if path.suffix != ".toml" and "/" not in scenario:
        bundled = SCENARIO_DIR / f"{scenario}.toml"
        return str(bundled.resolve()) if bundled.is_file() else scenario
    if not path.is_absolute() and (spec_dir / path).is_file():
        path = spec_dir / path
    return str(path.resolve())


def _key_kinds(base: ScenarioConfig, keys: list[str]) -> dict[str, type]:
    """Python type of each varied key, refusing keys the scenario does not have."""
    flat = flat_keys(base)
    kinds = {}
    for key in keys:
        if key not in flat:
            close = difflib.get_close_matches(key, list(flat), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"vary.{key}: unknown key{hint} (model/config.py lists every key)")
        kinds[key] = type(flat[key])  # dates show as ISO strings, which is what cells carry
    return kinds


def _validate(base: ScenarioConfig, point: Mapping[str, Any]) -> None:
    """Build the cell's config and its calendar: everything that can be a user mistake.

    The trading calendar is checked here too because the model only checks it when
    it is built, which for a sweep would be on a worker, long after the start.
    """
    try:
        config = base.with_overrides(point) if point else base
        trading_days(config.market.start, config.market.end)
    except ConfigError as exc:
        where = ", ".join(f"{k}={v}" for k, v in point.items())
        raise ConfigError(f"{exc} (sweep cell {where})" if where else str(exc)) from None


def parse_spec(data: Mapping[str, Any], path: Path, text: str = "") -> SweepSpec:
    """Turn a parsed sweep file into a validated :class:`SweepSpec`.

    Every cell's config is built before anything runs, so a typo in the last value
    of a long sweep fails in a second rather than after hours.

    Raises:
        ConfigError: One line naming the offending key, its value and what is allowed.
    """
    unknown = [k for k in data if k not in TOP_KEYS]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), TOP_KEYS, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ConfigError(f"{unknown[0]}: unknown sweep key{hint} (allowed: {', '.join(TOP_KEYS)})")
    if "scenario" not in data:
        raise ConfigError(f"scenario: missing; the sweep file {path} must name a base scenario")
    scale = data.get("scale", "default")
    if scale not in SCALES:
        raise ConfigError(f"scale = {scale!r}: must be one of {', '.join(SCALES)}")
    for table in ("set", "vary"):
        if not isinstance(data.get(table, {}), dict):
            raise ConfigError(f"{table} = {data[table]!r}: must be a table of dotted keys")
    fixed = _flatten(data.get("set", {}), "", keep_ranges=False)
    vary = _flatten(data.get("vary", {}), "", keep_ranges=True)
    for key in ("mode", "samples", "seeds", "sweep_seed"):
        if key in vary:
            raise ConfigError(f"vary.{key}: put {key} at the top of the sweep file, above [set]")
    both = sorted(set(fixed) & set(vary))
    if both:
        raise ConfigError(f"vary.{both[0]}: also fixed in [set]; give each key in one place")
    scenario = data["scenario"]
    ref = _scenario_ref(scenario, path.parent)
    fixed = {k: _tidy(v, object) for k, v in fixed.items()}
    base = load_scenario(ref, scale=scale, overrides=fixed)
    kinds = _key_kinds(base, list(vary))
    mode, samples, sweep_seed = _mode(data, bool(vary))
    if mode == "grid":
        axes = [_grid_values(k, v, kinds[k]) for k, v in vary.items()]
        total = math.prod(len(a) for a in axes) * len(_seeds(data.get("seeds")))
        if total > MAX_CELLS:
            raise ConfigError(f"vary: the grid has {total} cells, at most {MAX_CELLS} allowed")
        points = [dict(zip(vary, combo, strict=True)) for combo in itertools.product(*axes)]
    else:
        points = _sample_points(_sample_dims(vary, kinds), kinds, mode, samples, sweep_seed)
    seeds = _seeds(data.get("seeds"))
    for point in _distinct(points):
        _validate(base, point)
    cells = _cells(str(scenario), scale, fixed, points, seeds)
    name = data.get("name", path.stem)
    if not isinstance(name, str) or not name or "/" in name:
        raise ConfigError(f"name = {name!r}: must be a non-empty string without '/'")
    return SweepSpec(
        name=name,
        path=path,
        text=text,
        scenario=str(scenario),
        scenario_ref=ref,
        scale=scale,
        fixed=fixed,
        vary=tuple(vary),
        mode=mode,
        samples=samples,
        sweep_seed=sweep_seed,
        seeds=seeds,
        cells=cells,
    )


def _mode(data: Mapping[str, Any], has_vary: bool) -> tuple[str, int | None, int]:
    """Mode, sample count and sampling seed, with the combinations that make sense."""
    mode = data.get("mode", "grid")
    if mode not in MODES:
        raise ConfigError(f"mode = {mode!r}: must be one of {', '.join(MODES)}")
    sweep_seed = _int_at_least("sweep_seed", data.get("sweep_seed", 0), 0)
    if mode == "grid":
        if "samples" in data:
            raise ConfigError(f"samples = {data['samples']!r}: only with mode = 'random' or 'lhs'")
        return mode, None, sweep_seed
    if "samples" not in data:
        raise ConfigError(f"samples: missing; mode = {mode!r} needs samples = N")
    samples = _int_at_least("samples", data["samples"], 1)
    if samples > MAX_CELLS:
        raise ConfigError(f"samples = {samples}: must be at most {MAX_CELLS}")
    if not has_vary:
        raise ConfigError(f"vary: empty; mode = {mode!r} needs at least one key to sample")
    return mode, samples, sweep_seed


def _distinct(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Points without repeats (random draws of integer or list keys can repeat)."""
    seen: dict[str, dict[str, Any]] = {}
    for point in points:
        seen.setdefault(canonical_json(point), point)
    return list(seen.values())


def _cells(
    scenario: str,
    scale: str,
    fixed: Mapping[str, Any],
    points: list[dict[str, Any]],
    seeds: tuple[int, ...],
) -> tuple[Cell, ...]:
    """Every (point, seed) pair once, in file order; repeated points collapse."""
    cells = []
    for point in _distinct(points):
        for seed in seeds:
            cid = cell_id(scenario, scale, fixed, point, seed)
            cells.append(Cell(len(cells), point, seed, cid))
    if not cells:
        raise ConfigError("vary: the sweep has no cells")
    if len(cells) > MAX_CELLS:
        raise ConfigError(f"vary: the sweep has {len(cells)} cells, at most {MAX_CELLS} allowed")
    return tuple(cells)


def load_spec(path: Path) -> SweepSpec:
    """Read and validate a sweep file.

    Raises:
        ConfigError: The file is missing or malformed, or any cell is invalid.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"sweep = {str(path)!r}: no such file")
    data = read_toml(path)
    return parse_spec(data, path, path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------- one cell


def headline(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The figures a sweep compares across cells, flattened from a run's summary."""
    row: dict[str, Any] = {"steps": int(summary["steps"])}
    for name in INDEX_NAMES:
        stats = summary["indices"][name]
        row[f"{name}_total_return"] = float(stats["total_return"])
        row[f"{name}_max_drawdown"] = float(stats["max_drawdown"])
    row["forced_sale_share"] = float(summary["reflexivity"]["forced_sale_share"])
    return row


def _empty_headline() -> dict[str, Any]:
    """NaN figures for a failed cell, so every summary row has the same columns."""
    nan = float("nan")
    row: dict[str, Any] = {"steps": 0}
    for name in INDEX_NAMES:
        row[f"{name}_total_return"] = nan
        row[f"{name}_max_drawdown"] = nan
    row["forced_sale_share"] = nan
    return row


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


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
        row.update(status="error", error=_one_line(f"{type(exc).__name__}: {exc}"))
        row.update(_empty_headline())
        row["wall_time_s"] = round(time.perf_counter() - started, 3)
        return row
    try:
        write_cell(frame, row, Path(out_dir) / CELLS_DIR / f"{cell['cell_id']}.parquet")
    except OSError as exc:
        row.update(status=WRITE_FAILED, error=_one_line(exc.strerror or str(exc), 120))
    return row


# ---------------------------------------------------------------------------- the output dir


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on OUT so two drivers never write the same sweep.

    The kernel drops the lock when the process dies, even by SIGKILL.
    """
    fh = open(out / LOCK, "a")  # noqa: SIM115 - held for the whole sweep
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(
                f"--out = {str(out)!r}: another sweep is writing into this directory"
            ) from None
        yield
    finally:
        fh.close()


def scan_cells(cells_dir: Path, wanted: set[str]) -> dict[str, dict[str, Any]]:
    """Rows of the finished cells; removes temp files and damaged cells of this sweep.

    Raises:
        ConfigError: The directory holds cells of a different sweep (another scenario,
            other fixed keys, or values since removed): mixing them would corrupt
            every table read from it.
    """
    done: dict[str, dict[str, Any]] = {}
    for path in sorted(cells_dir.iterdir()):
        if path.name.startswith("."):
            if path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)  # a write cut short: never a result
            continue
        if path.suffix != ".parquet":
            continue
        if path.stem not in wanted:
            raise ConfigError(
                f"--out = {str(cells_dir.parent)!r}: holds cell {path.stem} of a different "
                "sweep; use a new --out directory"
            )
        try:
            row = read_cell_row(path)
        except Exception:
            path.unlink(missing_ok=True)  # damaged: run it again
            continue
        done[path.stem] = row
    return done


def git_revision() -> dict[str, Any]:
    """The code's git commit and whether the work tree had edits, or None outside git."""
    root = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=5, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    rev = git("rev-parse", "HEAD")
    dirty = git("status", "--porcelain", "--untracked-files=no") if rev else None
    return {"git_revision": rev, "git_dirty": None if dirty is None else bool(dirty)}


def sweep_versions() -> dict[str, str]:
    return versions(SWEEP_PACKAGES)


def _now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def previous_sessions(out: Path) -> list[dict[str, Any]]:
    """Sessions recorded in an existing manifest: a resumed sweep keeps its history."""
    try:
        previous = json.loads((out / MANIFEST).read_text())
        history = [*previous.get("history", []), previous.get("session")]
    except (OSError, ValueError, AttributeError, TypeError):
        return []
    return [h for h in history if isinstance(h, dict)]


def _manifest(spec: SweepSpec, session: dict[str, Any], history: list[Any]) -> dict[str, Any]:
    """What ran and how: the sweep file verbatim, versions, git revision, this session."""
    return {
        "sweep": spec.name,
        "spec_path": str(spec.path.resolve()),
        "spec_text": spec.text,
        "scenario": spec.scenario,
        "scale": spec.scale,
        "set": spec.fixed,
        "vary": list(spec.vary),
        "mode": spec.mode,
        "samples": spec.samples,
        "sweep_seed": spec.sweep_seed,
        "seeds": list(spec.seeds),
        "n_cells": len(spec.cells),
        "versions": sweep_versions(),
        **git_revision(),
        "session": session,
        "history": history,
    }


class _Summary:
    """Summary rows of the finished cells, rewritten to Parquet now and then.

    Only rows are kept (a few dozen numbers per cell), never model tables, so the
    driver's memory stays flat however many cells the sweep has.
    """

    def __init__(self, spec: SweepSpec, path: Path, rows: dict[str, dict[str, Any]]) -> None:
        self.order = {c.cell_id: c.index for c in spec.cells}
        self.vary = spec.vary
        self.path = path
        self.rows = dict(rows)
        self.written = 0.0

    def add(self, row: dict[str, Any]) -> None:
        self.rows[row["cell_id"]] = row
        if time.monotonic() - self.written > SUMMARY_INTERVAL_S:
            self.write()

    def frame(self) -> pd.DataFrame:
        rows = sorted(self.rows.values(), key=lambda r: self.order.get(r["cell_id"], 0))
        return summary_frame(rows, self.vary)

    def write(self) -> None:
        frame = self.frame()
        write_parquet(frame, self.path)
        self.written = time.monotonic()


def summary_frame(rows: list[dict[str, Any]], vary: tuple[str, ...]) -> pd.DataFrame:
    """Rows as a table with a fixed column order: parameters, seed, id, status, figures."""
    head = [*vary, "seed", "cell_id", "status", "error", "wall_time_s", "steps"]
    figures = [f"{n}_{w}" for n in INDEX_NAMES for w in ("total_return", "max_drawdown")]
    columns = [*head, *figures, "forced_sale_share"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["error"] = frame["error"].fillna("").astype(str)
    return frame


# ---------------------------------------------------------------------------- the driver


@dataclass
class SweepResult:
    """What a sweep did; ``failed > 0`` is the CLI's cue to exit 1."""

    out: Path
    cells: int
    skipped: int  # finished in an earlier session and read back
    ran: int
    failed: int
    wall_time_s: float
    workers: int
    scheduler: str

    @property
    def ok(self) -> int:
        return self.cells - self.failed


def _check_workers(workers: int | None, scheduler: str | None) -> None:
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)):
        raise ConfigError(f"--workers = {workers!r}: must be an integer >= 1")
    if workers is not None and workers < 1:
        raise ConfigError(f"--workers = {workers}: must be an integer >= 1")
    if workers is not None and scheduler:
        raise ConfigError(
            f"--workers = {workers}: only for a local cluster; --scheduler brings its own workers"
        )


@contextlib.contextmanager
def dask_client(workers: int | None, scheduler: str | None, n_tasks: int) -> Iterator[Any]:
    """A Dask client: on ``scheduler``, or on a local cluster of worker processes.

    Local workers are separate processes with one thread each: the model is numpy
    and Python, so threads would fight over the GIL. No more workers than tasks.

    Raises:
        ConfigError: The scheduler cannot be reached.
    """
    from distributed import Client, LocalCluster

    if scheduler:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError) as exc:
            raise ConfigError(
                f"--scheduler = {scheduler!r}: cannot connect ({_one_line(exc, 120)})"
            ) from None
        with client:
            yield client
        return
    n = max(1, min(workers or os.cpu_count() or 1, n_tasks))
    with (
        LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,  # no dashboard; its health routes on a free local port
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _n_threads(client: Any) -> int:
    workers = client.scheduler_info().get("workers", {})
    return max(1, sum(int(w.get("nthreads", 1)) for w in workers.values()))


def _drive(
    client: Any,
    spec: SweepSpec,
    todo: list[Cell],
    out: Path,
    on_row: Any,
    check: bool | None = None,
) -> None:
    """Submit cells a window at a time and hand each finished row to ``on_row``.

    A bounded window keeps the driver's and scheduler's memory flat for big sweeps
    while keeping every worker busy. A worker that dies mid-cell (killed, out of
    memory) has its cell rerun on another worker by the scheduler, up to Dask's
    ``distributed.scheduler.allowed-failures`` times; a cell file is renamed into
    place only when complete, so a half-written one is never visible.

    Raises:
        ConfigError: A cell file could not be written (``out`` is full or read-only):
            the remaining cells are cancelled; the finished ones stay.
    """
    from distributed import as_completed

    window = max(16, 4 * _n_threads(client))
    pending = iter(todo)
    in_flight: dict[str, Cell] = {}
    queue = as_completed()

    def submit(cell: Cell) -> None:
        key = f"run_cell-{cell.cell_id}"
        in_flight[key] = cell
        task = spec.task(cell, check)
        queue.add(client.submit(run_cell, task, str(out), key=key, pure=False))

    for cell in itertools.islice(pending, window):
        submit(cell)
    for future in queue:
        cell = in_flight.pop(future.key)
        try:
            row = future.result()
        except Exception as exc:  # the worker itself died (KilledWorker etc.)
            row = _error_row(cell, exc)
        future.release()
        if row["status"] == WRITE_FAILED:
            client.cancel(list(queue.futures))
            raise ConfigError(
                f"--out = {str(out)!r}: cannot write cell files ({row['error']}); "
                "the finished cells are kept, rerun the sweep to resume"
            )
        on_row(row)
        nxt = next(pending, None)
        if nxt is not None:
            submit(nxt)


def _error_row(cell: Cell, exc: BaseException) -> dict[str, Any]:
    return {
        **cell.params,
        "seed": cell.seed,
        "cell_id": cell.cell_id,
        "status": "error",
        "error": _one_line(f"{type(exc).__name__}: {exc}"),
        "wall_time_s": float("nan"),
        **_empty_headline(),
    }


def _progress_bar(total: int, initial: int, name: str, enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=name,
        unit="cell",
        file=sys.stderr,
        disable=not enabled,
        dynamic_ncols=True,
    )


def default_out(spec: SweepSpec) -> Path:
    return Path("runs") / "sweeps" / spec.name


def run_sweep(
    spec_path: Path,
    *,
    workers: int | None = None,
    scheduler: str | None = None,
    out: Path | None = None,
    progress: bool = False,
    check: bool | None = None,
) -> SweepResult:
    """Run (or resume) every cell of a sweep file and write its results into ``out``.

    Cells whose file is already in ``out/cells`` and reads back are skipped, so the
    same command resumes an interrupted sweep, or extends one whose file gained
    values or seeds. Failed cells are recorded and retried on the next run.

    Args:
        spec_path: The sweep TOML file.
        workers: Local worker processes (default: one per CPU); not with ``scheduler``.
        scheduler: Address of a running Dask scheduler, e.g. ``tcp://10.0.0.5:8786``.
            Its workers must import this package and see ``out`` at the same path.
        out: Output directory (default ``runs/sweeps/NAME``).
        progress: Show a progress bar (cells done, failed, time left) on stderr.
        check: Check the books' invariants every step of every cell (None: as the
            workers' ``UNWIND_CHECK`` environment variable says).

    Returns:
        Counts of cells skipped, run and failed, and where the results are.

    Raises:
        ConfigError: A mistake in the sweep file, an unusable ``out``, a bad
            ``workers`` value or an unreachable scheduler (nothing has run then); or
            ``out`` became full or read-only during the sweep (finished cells stay).
    """
    started = time.perf_counter()
    _check_workers(workers, scheduler)
    spec = load_spec(Path(spec_path))
    out = Path(out if out is not None else default_out(spec)).resolve()
    cells_dir = ensure_dir(ensure_dir(out) / CELLS_DIR)
    with _writing(out), _locked(out):
        done = scan_cells(cells_dir, {c.cell_id for c in spec.cells})
        _restore_wall_times(done, out / SUMMARY)
        todo = [c for c in spec.cells if c.cell_id not in done]
        session: dict[str, Any] = {
            "started": _now(),
            "finished": None,
            "status": "running",
            "scheduler": scheduler or "local",
            "workers": None,
            "skipped": len(done),
        }
        history = previous_sessions(out)
        write_json(_manifest(spec, session, history), out / MANIFEST)
        summary = _Summary(spec, out / SUMMARY, done)
        summary.write()
        failed = ran = 0
        stopped = False
        bar = _progress_bar(len(spec.cells), len(done), spec.name, progress)

        def on_row(row: dict[str, Any]) -> None:
            nonlocal failed, ran
            failed += row["status"] != "ok"
            ran += 1
            summary.add(row)
            bar.set_postfix(failed=failed, refresh=False)
            bar.update(1)

        try:
            if todo:
                with dask_client(workers, scheduler, len(todo)) as client:
                    session["workers"] = len(client.scheduler_info().get("workers", {}))
                    _drive(client, spec, todo, out, on_row, check)
            session["status"] = "failed cells" if failed else "complete"
            _remove_temp_files(cells_dir)  # left by workers killed mid-write, never visible
        except KeyboardInterrupt:
            stopped = True
            session["status"] = "interrupted"
            raise
        except BaseException as exc:
            stopped = True
            session["status"] = f"stopped: {_one_line(exc, 200)}"
            raise
        finally:
            bar.close()
            session.update(finished=_now(), ran=ran, failed=failed)
            try:
                summary.write()
                write_json(_manifest(spec, session, history), out / MANIFEST)
            except OSError:
                if not stopped:  # else the error that stopped the sweep says more
                    raise
    return SweepResult(
        out=out,
        cells=len(spec.cells),
        skipped=len(done),
        ran=ran,
        failed=failed,
        wall_time_s=round(time.perf_counter() - started, 3),
        workers=session["workers"] or 0,
        scheduler=session["scheduler"],
    )


@contextlib.contextmanager
def _writing(out: Path) -> Iterator[None]:
    """Turn a failed write into ``out`` (full disk, read-only) into a one-line error."""
    try:
        yield
    except OSError as exc:
        raise output_error("--out", out, exc) from None


def _restore_wall_times(done: dict[str, dict[str, Any]], path: Path) -> None:
    """Wall times of finished cells from the last summary (cell files leave them out)."""
    try:
        old = pd.read_parquet(path, columns=["cell_id", "wall_time_s"])
    except Exception:  # no summary yet, or an unreadable one: the times are only informative
        return
    for cid, wall in zip(old["cell_id"], old["wall_time_s"], strict=True):
        if cid in done:
            done[cid]["wall_time_s"] = wall


def _remove_temp_files(cells_dir: Path) -> None:
    for path in cells_dir.glob(".*.tmp"):
        path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------- reading results


def is_sweep_dir(path: Path) -> bool:
    """True for a directory written by ``run_sweep`` (how ``unwind report`` can dispatch)."""
    path = Path(path)
    return (path / MANIFEST).is_file() or (path / CELLS_DIR).is_dir()


def _sweep_error(path: Path, what: str) -> ConfigError:
    return ConfigError(f"sweep PATH = {str(path)!r}: {what}")


def read_manifest(out: Path) -> dict[str, Any]:
    path = Path(out) / MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise _sweep_error(
            out, "no manifest.json; expected a directory written by a sweep"
        ) from None
    except (OSError, ValueError) as exc:
        raise _sweep_error(path, f"unreadable ({_one_line(exc, 120)})") from None


def load_sweep(out: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Every finished cell's model table as one table (one row per cell and step).

    Args:
        out: The sweep's output directory.
        columns: Only these columns (cheaper for big sweeps), e.g. the parameters,
            ``seed``, ``date`` and ``microcap``.

    Returns:
        Rows sorted by the varied parameters, seed and step.
    """
    cells = Path(out) / CELLS_DIR
    if not cells.is_dir():
        raise _sweep_error(out, "no cells/ directory; expected a directory written by a sweep")
    if not any(p.suffix == ".parquet" and not p.name.startswith(".") for p in cells.iterdir()):
        raise _sweep_error(out, "no finished cells yet")
    frame = pd.read_parquet(cells, columns=columns)
    vary = read_manifest(out).get("vary", []) if (Path(out) / MANIFEST).is_file() else []
    keys = [k for k in (*vary, "seed", "step") if k in frame.columns]
    return frame.sort_values(keys, kind="stable").reset_index(drop=True) if keys else frame


def load_summary(out: Path) -> pd.DataFrame:
    """One row per cell: parameters, seed, cell id, status, error and headline figures."""
    path = Path(out) / SUMMARY
    if not path.is_file():
        raise _sweep_error(out, "no summary.parquet; expected a directory written by a sweep")
    return pd.read_parquet(path)


# ---------------------------------------------------------------------------- report

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


def _cell_table(summary: pd.DataFrame, keys: list[str]) -> str:
    """Mean and spread over seeds of the headline figures for each parameter point."""
    from experiments.report import _pct, _table

    ok = summary[summary["status"] == "ok"]
    if ok.empty:
        return "<p class='note'>No cell finished.</p>"
    grouped = ok.groupby(keys, sort=True) if keys else [((), ok)]
    rows = []
    for value, part in grouped:
        values = value if isinstance(value, tuple) else (value,)
        dd = part[DD]
        rows.append(
            [
                *[str(v) for v in values],
                str(len(part)),
                _pct(dd.mean()),
                _pct(dd.std()) if len(part) > 1 else "n/a",
                _pct(part["microcap_total_return"].mean()),
                _pct(part["csi300_total_return"].mean()),
                _pct(part["forced_sale_share"].mean()),
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
        f"<p>Generated {_now()} from {html.escape(str(out))}. Works offline.</p>",
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
