"""Sweep files: a TOML spec read, checked and expanded into the grid of cells.

Everything a sweep will run is known and validated here, before any worker
starts: a mistake in the file is one line, not a failed cell an hour in.
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from experiments.scenarios import SCALES, SCENARIO_DIR, load_scenario, read_toml
from model.calendar import trading_days
from model.config import ConfigError, ScenarioConfig, flat_keys

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


def cell_id(base: Mapping[str, Any], params: Mapping, seed: int) -> str:
    """Hash of the canonical JSON of everything that determines a cell's run.

    ``base`` is the sweep's scenario as resolved (:meth:`Section.to_dict`, with its scale
    and fixed keys applied): hashed whole with the varied parameters and the seed, so a
    cell file can never be mistaken for a run with different settings, even after the
    scenario file is edited; adding values or seeds to a sweep keeps the ids of the cells
    already done.
    """
    payload = {"scenario": base, "params": params, "seed": seed}
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
    # One value per setting (3 and 3.0 for a float key are the same run), as for [vary].
    fixed_kinds = _key_kinds(base, list(fixed))
    fixed = {k: _tidy(v, fixed_kinds[k]) for k, v in fixed.items()}
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
    cells = _cells(base.to_dict(), points, seeds)
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
    base: Mapping[str, Any], points: list[dict[str, Any]], seeds: tuple[int, ...]
) -> tuple[Cell, ...]:
    """Every (point, seed) pair once, in file order; repeated points collapse."""
    cells = []
    for point in _distinct(points):
        for seed in seeds:
            cid = cell_id(base, point, seed)
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
