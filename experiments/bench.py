"""Benchmarks: speed, measured as medians of repeated runs (never asserted in tests).

``kernel``: one call auction over 5,000 stocks and 100,000 orders, the shape of a
full-scale step. Reported as milliseconds per clearing, stocks cleared per second
and orders per second.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from experiments.outputs import ensure_dir, write_json
from model.kernel import Grid, clear


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def kernel_case(n_stocks: int, n_orders: int, n_levels: int = 101, seed: int = 0):
    """A realistic book: orders clustered around each stock's last price on both sides."""
    rng = np.random.default_rng(seed)
    prev = np.rint(np.exp(rng.normal(np.log(1200), 0.7, n_stocks))).astype(np.int64)
    grid = Grid.from_close(prev, np.full(n_stocks, 0.10), n_levels)
    stock = rng.integers(0, n_stocks, n_orders)
    side = rng.choice(np.array([1, -1], dtype=np.int8), n_orders)
    mid = grid.nearest_level(stock, prev[stock])
    level = np.rint(mid - side * np.abs(rng.normal(0, 8, n_orders))).astype(np.int64)
    level = np.clip(level, 0, grid.n_active[stock] - 1)
    lots = rng.integers(1, 200, n_orders)
    ref = grid.nearest_level(np.arange(n_stocks), prev)
    return grid, stock, side, level, lots, ref


def bench_kernel(n_stocks: int = 5000, n_orders: int = 100_000, repeats: int = 15) -> dict:
    case = kernel_case(n_stocks, n_orders)
    seconds = median_seconds(lambda: clear(*case), repeats)
    return {
        "n_stocks": n_stocks,
        "n_orders": n_orders,
        "n_levels": case[0].n_levels,
        "repeats": repeats,
        "median_ms": round(seconds * 1e3, 2),
        "stocks_per_s": round(n_stocks / seconds),
        "orders_per_s": round(n_orders / seconds),
    }


SWEEP_CELL = """\
scenario = "calm"
seeds = {{count = {n}, start = 1}}

[set]
"universe.n_stocks" = 30
"market.end" = 2023-01-13
"noise_traders.n_agents" = 100
"fundamental_traders.n_agents" = 10
"""


def bench_sweep(n_cells: int, workers: int, workdir: Path) -> dict:
    """Cells per second of a sweep of ``n_cells`` tiny calm cells on ``workers`` local
    workers (Dask start-up included), and the driver's peak resident memory."""
    import resource

    from experiments.sweep import run_sweep

    spec = workdir / f"bench_{n_cells}_{workers}.toml"
    spec.write_text(SWEEP_CELL.format(n=n_cells))
    out = workdir / f"bench_{n_cells}_{workers}"
    start = time.perf_counter()
    result = run_sweep(spec, workers=workers, out=out)
    seconds = time.perf_counter() - start
    return {
        "cells": n_cells,
        "workers": workers,
        "failed": result.failed,
        "wall_s": round(seconds, 2),
        "cells_per_s": round(n_cells / seconds, 3),
        "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def run_benchmarks(out: Path, *, repeats: int = 15, sweep_cells: int = 0) -> dict:
    """Run every benchmark and write ``out/bench.json``; return the results.

    With ``sweep_cells``, also time a sweep of that many tiny cells on 1 and 2 workers.
    """
    ensure_dir(out)
    results: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
        "kernel": bench_kernel(repeats=repeats),
    }
    if sweep_cells:
        runs = [bench_sweep(sweep_cells, w, ensure_dir(out / "sweep")) for w in (1, 2)]
        results["sweep"] = {
            "runs": runs,
            "speedup_2_over_1": round(runs[1]["cells_per_s"] / runs[0]["cells_per_s"], 3),
        }
    write_json(results, out / "bench.json")
    return results
