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


def run_benchmarks(out: Path, *, repeats: int = 15) -> dict:
    """Run every benchmark and write ``out/bench.json``; return the results."""
    ensure_dir(out)
    results = {
        "machine": {"python": platform.python_version(), "processor": platform.machine()},
        "kernel": bench_kernel(repeats=repeats),
    }
    write_json(results, out / "bench.json")
    return results
