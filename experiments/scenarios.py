"""Scenario files: find them, read them, apply the scale and ``--set`` overrides.

A scenario is a TOML file whose tables mirror :class:`model.config.ScenarioConfig`.
Names resolve to ``experiments/scenarios/NAME.toml``; anything else is a path.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from model.config import ConfigError, ScenarioConfig

SCENARIO_DIR = Path(__file__).parent / "scenarios"

SCALES = ("default", "full")
FULL_STOCKS = 5000  # full scale: the whole A-share market, five times the default
RETAIL_FACTOR = 5  # retail investors grow with it (20,000 -> 100,000)


def scenario_names() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def scenario_path(name: str) -> Path:
    """Path of a scenario given by name or by path.

    A ``.toml`` name or an existing file is a path. Anything else is a shipped
    scenario's name, even where a directory of that name exists (say, a run's
    output written with ``--out calm``).
    """
    candidate = Path(name)
    if candidate.suffix == ".toml" or candidate.is_file():
        if not candidate.is_file():
            raise ConfigError(f"scenario = {name!r}: no such file")
        return candidate
    path = SCENARIO_DIR / f"{name}.toml"
    if not path.is_file():
        known = ", ".join(scenario_names())
        raise ConfigError(
            f"scenario = {name!r}: unknown scenario (known: {known}; or a .toml path)"
        )
    return path


def read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: malformed TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def parse_set(items: Iterable[str]) -> dict[str, Any]:
    """``["a.b=3", "c=true"]`` -> ``{"a.b": 3, "c": True}``; values are TOML literals."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set {item!r}: must be KEY=VALUE, e.g. universe.n_stocks=2000")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()  # a bare word is a string
        out[key] = value
    return out


def load_scenario(
    name: str, *, scale: str = "default", overrides: Mapping[str, Any] | None = None
) -> ScenarioConfig:
    """The validated config of scenario ``name`` at ``scale`` with ``overrides`` applied."""
    if scale not in SCALES:
        raise ConfigError(f"--scale = {scale!r}: must be one of {', '.join(SCALES)}")
    config = ScenarioConfig.from_mapping(_resolve(name, ()))
    merged: dict[str, Any] = {}
    if scale == "full":
        merged = {
            "universe.n_stocks": FULL_STOCKS,
            "retail.n_agents": config.retail.n_agents * RETAIL_FACTOR,
        }
    merged.update(overrides or {})
    return config.with_overrides(merged) if merged else config


def _resolve(name: str, seen: tuple[str, ...]) -> dict[str, Any]:
    """The scenario's tables, on top of its ``base`` scenario's when it names one."""
    data = read_toml(scenario_path(name))
    base = data.pop("base", None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise ConfigError(f"base = {base!r}: must be a scenario name")
    if base in seen or base == name:
        raise ConfigError(f"base = {base!r}: scenarios inherit in a circle ({' -> '.join(seen)})")
    merged = _resolve(base, (*seen, name))
    for table, values in data.items():
        if isinstance(values, dict) and isinstance(merged.get(table), dict):
            merged[table] = {**merged[table], **values}
        else:
            merged[table] = values
    return merged
