"""One run of one scenario: step the model, then write its tables and summary."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.episode import covers_crash, episode_figures, last_close_before_window
from experiments.index_rotation import IndexRotation
from experiments.outputs import (
    ensure_dir,
    json_writer,
    output_error,
    parquet_writer,
    wide_parquet_writer,
    write_together,
)
from experiments.stylized import correlation, max_drawdown, stylized_facts
from experiments.window_flows import WindowFlows
from model.config import ScenarioConfig
from model.market_model import MarketModel
from model.universe import BOARD_NAMES, INDEX_NAMES, TIERS, assign_tiers

PACKAGES = ("microcap-unwind", "mesa", "numpy", "pandas", "networkx", "pyarrow")


def versions(extra: tuple[str, ...] = ()) -> dict[str, str]:
    """Python's and the packages' versions (``PACKAGES`` plus ``extra``)."""
    out = {"python": platform.python_version()}
    for name in (*PACKAGES, *extra):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def index_stats(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Total return and maximum drawdown of each index column (base 1000 at the start)."""
    out = {}
    for name in INDEX_NAMES:
        levels = np.concatenate([[1000.0], frame[name].to_numpy(dtype=float)])
        out[name] = {
            "total_return": float(levels[-1] / levels[0] - 1.0),
            "max_drawdown": max_drawdown(levels),
        }
    return out


def reflexivity(frame: pd.DataFrame, max_lag: int = 8) -> dict[str, Any]:
    """Forced-sale share of turnover (and retail's panic sales' share, counted apart), and
    how forced sales line up with later returns.

    ``lead_lag`` holds, for each lag k in steps, the correlation between this step's
    forced sales and the micro-cap return k steps later (k < 0: returns leading sales).
    A spiral shows as negative correlations at small positive k.
    """
    sales = frame["forced_sales"].to_numpy(dtype=float)
    turnover = frame["turnover"].to_numpy(dtype=float)
    micro = np.log(np.concatenate([[1000.0], frame["microcap"].to_numpy(dtype=float)]))
    ret = np.diff(micro)
    panic = frame["panic_sales"].to_numpy(dtype=float)
    out: dict[str, Any] = {
        "forced_sales_cny": float(sales.sum()),
        "forced_sale_share": float(sales.sum() / max(turnover.sum(), 1.0)),
        "panic_sales_cny": float(panic.sum()),
        "panic_sale_share": float(panic.sum() / max(turnover.sum(), 1.0)),
        "lead_lag": {},
    }
    if sales.std() > 0:
        for k in range(-max_lag, max_lag + 1):
            a, b = (sales[: len(sales) - k], ret[k:]) if k >= 0 else (sales[-k:], ret[:k])
            c = correlation(a, b)
            out["lead_lag"][str(k)] = None if c is None else round(c, 4)
    return out


@dataclass
class RunResult:
    model: MarketModel
    frame: pd.DataFrame  # one row per step
    summary: dict[str, Any]


def run(
    config: ScenarioConfig,
    seed: int,
    *,
    progress: bool = False,
    engine: str = "vectorized",
    check: bool | None = None,
) -> RunResult:
    """Run ``config`` with ``seed`` to the end and return the model, its table and summary.

    ``check`` turns on the invariant checker (model.invariants); None leaves it to
    the ``UNWIND_CHECK`` environment variable.
    """
    started = time.perf_counter()
    model = MarketModel(config, rng=seed, engine=engine, check=check)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=model.total_steps, unit="step", desc=config.name, file=sys.stderr)
    flows = WindowFlows(model)
    # The micro-cap index's days up to the window (none for a run that starts in it).
    runup = IndexRotation(model, end=last_close_before_window(model.days) or dt.date.min)

    def observe(m: MarketModel) -> None:
        flows(m)
        runup(m)
        if bar is not None:
            bar.update(1)

    model.run(progress=observe)
    if bar is not None:
        bar.close()
    frame = model.datacollector.get_model_vars_dataframe().reset_index(drop=True)
    summary = {
        "scenario": config.name,
        "seed": seed,
        "engine": engine,
        "invariants_checked": model.checker is not None,
        "steps": int(model.steps),
        "trading_days": len(model.days),
        "wall_time_s": round(time.perf_counter() - started, 3),
        "indices": index_stats(frame),
        "reflexivity": reflexivity(frame),
        "stylized_facts": stylized_facts(np.array(model.closes)),
        "episode": _episode(frame, flows.net_buying(model), runup.summary()),
        "parameters": config.to_dict(),
        "versions": versions(),
    }
    return RunResult(model, frame, summary)


def _episode(
    frame: pd.DataFrame,
    net_buying: dict[str, dict[str, float]] | None,
    runup: dict[str, Any],
) -> dict[str, Any] | None:
    """The episode figures of a run that spans the crash window, with who traded each
    tier over it (``net_buying``: index -> agent type -> share of the members' float)
    and the micro-cap index's run-up before it split into its parts (``runup``:
    :meth:`IndexRotation.summary` up to the close before the window)."""
    if not covers_crash(frame):
        return None
    return {**episode_figures(frame), "net_buying": net_buying, "microcap_runup": runup}


def add_amplification(result: RunResult, seed: int) -> None:
    """Run the same scenario and seed with nobody forced to sell; compare micro-cap drawdowns.

    amplification = micro-cap max drawdown with forced selling / without it. It is only
    defined when the scenario has quant-neutral products (the forced sellers).
    """
    config = result.model.config
    if config.neutral.n_funds == 0 or not config.neutral.forced_selling:
        result.summary["amplification"] = None
        return
    twin = run(
        config.with_overrides({"neutral.forced_selling": False}),
        seed,
        check=result.model.checker is not None,
    )
    with_fs = result.summary["indices"]["microcap"]["max_drawdown"]
    without = twin.summary["indices"]["microcap"]["max_drawdown"]
    result.summary["amplification"] = {
        "microcap_max_drawdown": with_fs,
        "microcap_max_drawdown_without_forced_selling": without,
        "ratio": round(with_fs / without, 4) if without > 0 else None,
    }


def daily_closes(model: MarketModel) -> pd.DataFrame:
    """Close price per trading day (rows) and stock (columns ``s0``, ``s1``, ...), in CNY."""
    closes = np.array(model.closes, dtype=np.float64) / 100.0
    frame = pd.DataFrame(closes, columns=[f"s{i}" for i in range(closes.shape[1])])
    frame.insert(0, "date", [d.isoformat() for d in model.days[: len(model.closes)]])
    return frame


def stock_table(model: MarketModel) -> pd.DataFrame:
    """One row per stock: board, free float, start price and cap, size tier at the start."""
    uni = model.universe
    tier, micro = assign_tiers(uni.caps(uni.price0), model.config.universe.microcap_count)
    return pd.DataFrame(
        {
            "stock": [f"s{i}" for i in range(uni.n)],
            "board": [BOARD_NAMES[b] for b in uni.board],
            "float_shares": uni.float_shares,
            "price0": uni.price0 / 100.0,
            "cap0": uni.caps(uni.price0),
            "tier0": [(*TIERS, "rest")[t] for t in tier],
            "microcap0": micro,
        }
    )


def write_run(result: RunResult, out: Path) -> None:
    """Write model.parquet, prices.parquet, stocks.parquet and summary.json into ``out``.

    All four appear together or not at all.

    Raises:
        ConfigError: ``out`` cannot be written (a full disk, a read-only directory).
    """
    ensure_dir(out)
    writers = {
        "model.parquet": parquet_writer(result.frame),
        "prices.parquet": wide_parquet_writer(daily_closes(result.model)),
        "stocks.parquet": parquet_writer(stock_table(result.model)),
        "summary.json": json_writer(result.summary),
    }
    try:
        write_together(out, writers)
    except OSError as exc:
        raise output_error("--out", out, exc) from None
