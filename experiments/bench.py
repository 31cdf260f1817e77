"""Benchmarks: speed, measured as medians of repeated runs (never asserted in tests).

- ``engines``: the vectorized engine against the per-agent reference engine on one
  scenario (1,000 stocks, 10,000 agents), both measured in this process: seconds per
  trading day (four steps) of each, the ratio of the medians.
- ``scaling``: steps per second as the stocks grow (500 to 5,000: the whole market
  scaled, and the stocks alone with every population's number held) and as the agents
  grow (1,000 to 200,000 retail investors on top of the other types), with the log-log
  slope of cost against size (1 = linear).
- ``episodes``: ``unwind run jan2024`` at default and full scale in a fresh process:
  wall time including start-up and writing the results, and peak resident memory.
- ``kernel``: one call auction over 5,000 stocks and 100,000 orders, the shape of a
  full-scale step: milliseconds per clearing, stocks and orders cleared per second.
- ``sweep`` (optional): cells per second of a sweep of tiny cells on 1 and 2 workers.

``run_benchmarks`` writes ``bench.json`` and ``bench.png`` (or ``bench.html`` when no
browser is there to render the PNG).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from experiments.outputs import ensure_dir, write_json
from model import aot
from model.kernel import Grid, clear

STEPS_PER_DAY = 4  # jan2024's session slices a day; costs are timed over whole days


def median_seconds(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall time of ``repeats`` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def _say(progress: bool, text: str) -> None:
    if progress:
        print(f"bench: {text}", file=sys.stderr, flush=True)


# -- kernel -----------------------------------------------------------------------------------
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


# -- the model, step by step ----------------------------------------------------------------
def _model(
    n_stocks: int,
    n_retail: int,
    engine: str = "vectorized",
    seed: int = 1,
    overrides: dict | None = None,
):
    """jan2024 at ``n_stocks`` stocks with ``n_retail`` retail investors (and ``overrides``)."""
    from experiments.scenarios import load_scenario
    from model.market_model import MarketModel

    sizes = {"universe.n_stocks": n_stocks, "retail.n_agents": n_retail}
    config = load_scenario("jan2024", overrides={**(overrides or {}), **sizes})
    return MarketModel(config, rng=seed, engine=engine)


# The populations whose numbers grow with the market's scale (their counts are set at full
# scale, :func:`model.universe.scaled_count`), and whether the model keeps at least one of
# each (as ``MarketModel`` calls it); every other population's number is fixed.
SCALED_COUNTS = {"neutral.n_funds": False, "public_funds.n_funds": True}


def agents_held(n_stocks: int, base_stocks: int, overrides: dict | None = None) -> dict:
    """Overrides that give jan2024 at ``n_stocks`` the funds' numbers it has at
    ``base_stocks`` (their money still grows with the market): the same agents at every size,
    so the cost measured against stocks is the stocks' alone."""
    from experiments.scenarios import load_scenario
    from model.universe import REFERENCE_N, scaled_count

    config = load_scenario("jan2024", overrides=overrides or {})
    held = {}
    for key, at_least_one in SCALED_COUNTS.items():
        section, name = key.split(".")
        at_full = getattr(getattr(config, section), name)
        count = scaled_count(at_full, base_stocks, at_least_one=at_least_one)
        held[key] = round(count * REFERENCE_N / n_stocks)
    return held


# The scaling series in ``bench.json``: key, the size it is measured against, label.
SCALING_SERIES = (
    ("stocks_alone", "n_stocks", "stocks alone (agents held)"),
    ("stocks", "n_stocks", "stocks, the funds growing with them"),
    ("agents", "n_agents", "agents (retail added)"),
)


def other_agents(n_stocks: int, overrides: dict | None = None) -> int:
    """Agents of every type but retail in jan2024 at ``n_stocks`` stocks."""
    return len(_model(n_stocks, 0, overrides=overrides).agents)


def day_seconds(model: Any, days: int, warm_days: int = 1) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of each of ``days`` trading days, after ``warm_days`` untimed."""
    for _ in range(warm_days * STEPS_PER_DAY):
        model.step()
    wall, cpu = [], []
    for _ in range(days):
        start, start_cpu = time.perf_counter(), time.process_time()
        for _ in range(STEPS_PER_DAY):
            model.step()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return wall, cpu


def bench_engines(
    n_stocks: int = 1000,
    n_agents: int = 10_000,
    days: int = 3,
    agent_days: int = 1,
    overrides: dict | None = None,
) -> dict:
    """Seconds per step of both engines on the same scenario and seed, in this process.

    The per-agent engine is slow, so it runs ``agent_days`` days (after the same one-day
    warm-up as the vectorized engine), not the whole episode.
    """
    n_retail = max(n_agents - other_agents(n_stocks, overrides), 0)
    vec = _model(n_stocks, n_retail, overrides=overrides)
    per = _model(n_stocks, n_retail, engine="agents", overrides=overrides)
    vec_days, vec_cpu = day_seconds(vec, days)
    per_days, per_cpu = day_seconds(per, agent_days)
    vec_step = float(np.median(vec_days)) / STEPS_PER_DAY
    per_step = float(np.median(per_days)) / STEPS_PER_DAY
    cpu_ratio = float(np.median(per_cpu)) / float(np.median(vec_cpu))
    return {
        "scenario": "jan2024",
        "n_stocks": n_stocks,
        "n_agents": len(vec.agents),
        "n_retail": n_retail,
        "vectorized_days_timed": days,
        "agents_days_timed": agent_days,
        "vectorized_ms_per_step": round(vec_step * 1e3, 2),
        "agents_ms_per_step": round(per_step * 1e3, 1),
        "speed_ratio": round(per_step / vec_step, 1),
        "cpu_speed_ratio": round(cpu_ratio, 1),
    }


def _slope(size: list[int], ms: list[float]) -> float:
    """Log-log slope of cost against size: 1 is linear growth, below 1 is better."""
    return round(float(np.polyfit(np.log(size), np.log(ms), 1)[0]), 3)


def bench_scaling(
    stocks: tuple[int, ...] = (500, 1000, 2000, 5000),
    retail: tuple[int, ...] = (1000, 10_000, 50_000, 200_000),
    base_stocks: int = 1000,
    base_retail: int = 20_000,
    days: int = 3,
    overrides: dict | None = None,
    progress: bool = False,
) -> dict:
    """Steps per second of the vectorized engine as stocks grow, then as agents grow.

    Each point is a fresh jan2024 model; its cost is the median of ``days`` timed days.
    Stocks grow two ways: the whole market scaled (the quant products and public funds
    grow in number with it, as their sizes are set at full scale, and so do the products'
    baskets: their orders grow with the square of the stocks), and the stocks alone (every
    population's number held at its ``base_stocks`` size, :func:`agents_held`). Growing
    the agents adds retail investors.
    """

    def point(n_stocks: int, n_retail: int, held: dict | None = None) -> dict:
        _say(progress, f"scaling: {n_stocks:,} stocks, {n_retail:,} retail investors")
        model = _model(n_stocks, n_retail, overrides={**(overrides or {}), **(held or {})})
        wall, cpu = day_seconds(model, days)
        step = float(np.median(wall)) / STEPS_PER_DAY
        return {
            "n_stocks": n_stocks,
            "n_agents": len(model.agents),
            "n_retail": n_retail,
            "ms_per_step": round(step * 1e3, 2),
            "steps_per_s": round(1.0 / step, 2),
            "cpu_ms_per_step": round(float(np.median(cpu)) / STEPS_PER_DAY * 1e3, 2),
        }

    by_stocks = [point(s, base_retail) for s in stocks]
    alone = [point(s, base_retail, agents_held(s, base_stocks, overrides)) for s in stocks]
    if len({p["n_agents"] for p in alone}) != 1:
        raise RuntimeError(f"agents not held as the stocks grow: {alone}")
    by_agents = [point(base_stocks, r) for r in retail]
    return {
        "days_timed": days,
        "stocks": by_stocks,
        "stocks_alone": alone,
        "agents": by_agents,
        "slope_stocks": _slope(
            [p["n_stocks"] for p in by_stocks], [p["ms_per_step"] for p in by_stocks]
        ),
        "slope_stocks_alone": _slope(
            [p["n_stocks"] for p in alone], [p["ms_per_step"] for p in alone]
        ),
        "slope_agents": _slope(
            [p["n_agents"] for p in by_agents], [p["ms_per_step"] for p in by_agents]
        ),
    }


# -- whole episodes in a fresh process ------------------------------------------------------
# The child runs the console script's own entry point, so the bench times what a user's
# ``unwind run`` does (the collector off, the exit without teardown), and reports from an
# atexit handler: registered first, it runs last, after the run's own. It reports its
# own peak: VmHWM, the high-water mark of its own memory. (ru_maxrss would not do: Linux
# carries the parent's peak into a child across fork and exec.)
CHILD = """
import atexit, json, resource, sys
from pathlib import Path

def report():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    peak_mb = usage.ru_maxrss / 1024
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                peak_mb = int(line.split()[1]) / 1024
    cpu = usage.ru_utime + usage.ru_stime
    print(json.dumps({"peak_rss_mb": peak_mb, "cpu_s": cpu}), flush=True)

atexit.register(report)
sys.argv = ["unwind", *sys.argv[1:]]
from experiments.cli import entry
sys.exit(entry())
"""


def timed_run(args: list[str]) -> dict:
    """Wall time (start-up, run and writing included), CPU time and peak RSS of ``unwind ARGS``.

    CPU time is what the wall time would be on a core of its own: on a shared machine
    the wall time also counts the waits for a core.
    """
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CHILD, *args], capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"unwind {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return {"wall_s": wall, "cpu_s": report["cpu_s"], "peak_rss_mb": report["peak_rss_mb"]}


@dataclass(frozen=True)
class Episode:
    """One ``unwind run`` case: a label, its arguments, how often to time it, and targets."""

    label: str
    args: tuple[str, ...]
    repeats: int
    target_wall_s: float
    target_rss_mb: float | None = None


def bench_episodes(episodes: list[Episode], workdir: Path, progress: bool = False) -> dict:
    """Median wall time and the largest peak RSS of each episode over its repeats."""
    out = {}
    for ep in episodes:
        runs = []
        for k in range(ep.repeats):
            _say(progress, f"episode {ep.label}: run {k + 1} of {ep.repeats}")
            runs.append(timed_run(["run", *ep.args, "--quiet", "--out", str(workdir / ep.label)]))
        summary = json.loads((workdir / ep.label / "summary.json").read_text())
        wall = float(np.median([r["wall_s"] for r in runs]))
        rss = max(r["peak_rss_mb"] for r in runs)
        out[ep.label] = {
            "command": "unwind run " + " ".join(ep.args),
            "repeats": ep.repeats,
            "steps": summary["steps"],
            "wall_s": round(wall, 2),
            "wall_s_runs": [round(r["wall_s"], 2) for r in runs],
            "cpu_s": round(float(np.median([r["cpu_s"] for r in runs])), 2),
            "model_s": summary["wall_time_s"],
            "peak_rss_mb": round(rss, 1),
            "target_wall_s": ep.target_wall_s,
            "target_rss_mb": ep.target_rss_mb,
            "meets_target": bool(
                wall < ep.target_wall_s and (ep.target_rss_mb is None or rss < ep.target_rss_mb)
            ),
        }
    return out


# -- sweep ------------------------------------------------------------------------------------
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


# -- the suite ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Suite:
    """Sizes of every benchmark; :data:`QUICK` shrinks them for a smoke test."""

    engines: dict
    scaling: dict
    episodes: tuple[Episode, ...]
    kernel: dict
    view: dict


FULL = Suite(
    engines={"n_stocks": 1000, "n_agents": 10_000, "days": 3, "agent_days": 1},
    scaling={},
    episodes=(
        Episode("jan2024-default", ("jan2024", "--seed", "1"), 3, 10.0),
        Episode("jan2024-full", ("jan2024", "--seed", "1", "--scale", "full"), 1, 60.0, 2048.0),
    ),
    kernel={"n_stocks": 5000, "n_orders": 100_000},
    view={"n_stocks": 1000, "steps": 40, "warm_steps": 40},
)
TINY_SET = ("--set", "market.end=2023-07-07", "--set", "universe.n_stocks=60")
FEW = {"noise_traders.n_agents": 50, "fundamental_traders.n_agents": 10}
QUICK = Suite(
    engines={"n_stocks": 60, "n_agents": 200, "days": 1, "agent_days": 1, "overrides": FEW},
    scaling={
        "stocks": (60, 120),
        "retail": (100, 400),
        "base_stocks": 60,
        "base_retail": 100,
        "days": 1,
        "overrides": FEW,
    },
    episodes=(Episode("jan2024-tiny", ("jan2024", "--seed", "1", *TINY_SET), 1, 60.0, 2048.0),),
    kernel={"n_stocks": 200, "n_orders": 2000},
    view={"n_stocks": 60, "steps": 3, "warm_steps": 2},
)


def bench_view(n_stocks: int, steps: int, warm_steps: int, scenario: str = "jan2024") -> dict:
    """The browser view's server-side cost of one Step: the model step, then all six chart
    options built and serialized as they are sent to the page.

    The page's own redraw (ECharts in the browser) comes on top; the browser test
    times Step clicks end to end at its small size.
    """
    from experiments.view import CHARTS, make_model

    model = make_model(scenario, **{"universe.n_stocks": n_stocks})
    for _ in range(warm_steps):
        model.step()
    step_ms, chart_ms, payload = [], [], 0
    for _ in range(steps):
        t0 = time.perf_counter()
        model.step()
        t1 = time.perf_counter()
        payload = len(json.dumps([CHARTS[name](model) for name in CHARTS], default=str))
        t2 = time.perf_counter()
        step_ms.append((t1 - t0) * 1e3)
        chart_ms.append((t2 - t1) * 1e3)
    total = [a + b for a, b in zip(step_ms, chart_ms, strict=True)]
    return {
        "n_stocks": n_stocks,
        "steps": steps,
        "after_steps": warm_steps,
        "step_ms_median": round(statistics.median(step_ms), 2),
        "charts_ms_median": round(statistics.median(chart_ms), 2),
        "total_ms_median": round(statistics.median(total), 2),
        "total_ms_max": round(max(total), 2),
        "payload_bytes": payload,
        "target_ms": 200.0,
    }


def bench_view_browser(n_stocks: int, clicks: int = 25, warm_clicks: int = 5) -> dict:
    """One Step as a user sees it: from the click in headless Chromium until every chart
    holds the new step and the browser has painted two frames.

    Starts the view server on a free local port, picks ``n_stocks`` in the page and
    Resets, then clicks Step ``clicks`` times. Needs Debian's chromium and the
    playwright package (both come with ``make setup`` / ``make test``); without them
    the result says why it was skipped.
    """
    from experiments import view

    if not view.CHROMIUM.exists():
        return {"skipped": f"{view.CHROMIUM} missing"}
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {"skipped": "playwright not installed"}
    port = view.free_port()
    url = f"http://127.0.0.1:{port}/"
    proc = view.start_server("jan2024", port, output=subprocess.DEVNULL)
    wait_ms = 120_000
    # Timed inside the page, so the driver's own round trips do not count: click Step,
    # wait for the index chart's caption to name the new step, then for two frames.
    step_and_paint = """async (k) => {
        const step = [...document.querySelectorAll('button')]
            .find(b => b.textContent.trim() === 'Step');
        const caption = () => document.querySelector('.unwind-index .unwind-caption');
        const t0 = performance.now();
        step.click();
        while (!caption().textContent.includes(`step ${k},`)) {
            await new Promise(r => requestAnimationFrame(r));
        }
        await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
        return performance.now() - t0;
    }"""
    try:
        view.wait_until_up(url, proc, wait_ms / 1e3)
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=str(view.CHROMIUM), args=list(view.CHROMIUM_ARGS)
            )
            try:
                page = browser.new_page(viewport={"width": 1500, "height": 1250})
                page.goto(url)
                page.wait_for_function(
                    f"document.querySelectorAll('.unwind-chart canvas').length == "
                    f"{len(view.CHARTS)}",
                    timeout=wait_ms,
                )
                page.locator(".v-select", has_text="Stocks").click()
                page.locator(".v-list-item", has_text=f"{n_stocks}").click()
                page.get_by_role("button", name="Reset").click()
                page.locator(".unwind-config", has_text=f"{n_stocks} stocks").wait_for(
                    timeout=wait_ms
                )
                page.locator(".unwind-index .unwind-caption", has_text="step 0,").wait_for()
                ms = [page.evaluate(step_and_paint, k) for k in range(1, warm_clicks + clicks + 1)]
            finally:
                browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    timed = ms[warm_clicks:]
    return {
        "n_stocks": n_stocks,
        "clicks": clicks,
        "click_to_painted_ms_median": round(statistics.median(timed), 1),
        "click_to_painted_ms_max": round(max(timed), 1),
        "target_ms": 200.0,
    }


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def run_benchmarks(
    out: Path,
    *,
    repeats: int = 15,
    sweep_cells: int = 0,
    quick: bool = False,
    episodes: bool = True,
    progress: bool = False,
) -> dict:
    """Run the benchmarks, write ``out/bench.json`` and the chart; return the results.

    ``quick`` runs every benchmark at a tiny size (a smoke test of the suite, not a
    measurement). ``episodes=False`` skips the whole-episode runs (the slow part).
    With ``sweep_cells``, also time a sweep of that many tiny cells on 1 and 2 workers.
    """
    ensure_dir(out)
    suite = QUICK if quick else FULL
    aot_build = aot.load(aot.BUILD_DIR)[1]  # what every timed process will find
    if aot_build != "loaded":  # said even with --quiet: the timings are not the usual ones
        print(
            f"unwind bench: the ahead-of-time build is {aot_build}, so the runs pay numba's "
            "loading of the compiled passes (make warm builds it)",
            file=sys.stderr,
        )
    results: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "processor": platform.machine(),
            "cpus": os.cpu_count(),
            "load_average_start": load_average(),
            "aot_build": aot_build,
        },
        "quick": quick,
    }
    _say(
        progress,
        f"kernel: {suite.kernel['n_stocks']:,} stocks x {suite.kernel['n_orders']:,} orders",
    )
    results["kernel"] = bench_kernel(**suite.kernel, repeats=repeats)
    _say(
        progress,
        f"engines: {suite.engines['n_stocks']:,} stocks, {suite.engines['n_agents']:,} agents",
    )
    results["engines"] = bench_engines(**suite.engines)
    results["scaling"] = bench_scaling(**suite.scaling, progress=progress)
    _say(progress, f"view: step and six charts at {suite.view['n_stocks']:,} stocks")
    results["view"] = bench_view(**suite.view)
    if not quick:
        _say(progress, "view in headless Chromium: Step clicks until the charts are painted")
        results["view_browser"] = bench_view_browser(suite.view["n_stocks"])
    if episodes:
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
            results["episodes"] = bench_episodes(list(suite.episodes), Path(tmp), progress)
    if sweep_cells:
        runs = [bench_sweep(sweep_cells, w, ensure_dir(out / "sweep")) for w in (1, 2)]
        results["sweep"] = {
            "runs": runs,
            "speedup_2_over_1": round(runs[1]["cells_per_s"] / runs[0]["cells_per_s"], 3),
        }
    results["machine"]["load_average_end"] = load_average()
    results["chart"] = write_chart(results, out)
    write_json(results, out / "bench.json")
    return results


# -- the chart ---------------------------------------------------------------------------------
def chart(results: dict) -> Any:
    """Cost per step against stocks and against agents (log-log, with a linear guide), and
    the two engines side by side."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    scaling, engines = results["scaling"], results["engines"]
    fig = make_subplots(
        rows=1,
        cols=3,
        subplot_titles=(
            f"Cost per step vs stocks (slope {scaling['slope_stocks_alone']} alone, "
            f"{scaling['slope_stocks']} with the funds)",
            f"Cost per step vs agents (slope {scaling['slope_agents']})",
            f"Engines, {engines['n_stocks']:,} stocks, {engines['n_agents']:,} agents",
        ),
        horizontal_spacing=0.09,
    )
    for key, size_key, label in SCALING_SERIES:
        col = 2 if size_key == "n_agents" else 1
        points = scaling[key]
        size = np.array([p[size_key] for p in points], dtype=float)
        ms = np.array([p["ms_per_step"] for p in points])
        fig.add_trace(go.Scatter(x=size, y=ms, mode="lines+markers", name=label), 1, col)
        if key == "stocks":
            continue  # one linear guide a panel, from the series the target is read on
        linear = ms[0] * size / size[0]  # what linear growth from the first point would cost
        fig.add_trace(
            go.Scatter(x=size, y=linear, mode="lines", line={"dash": "dot"}, name="linear"),
            1,
            col,
        )
    for col, x_title in ((1, "stocks"), (2, "agents")):
        fig.update_xaxes(type="log", title_text=x_title, row=1, col=col)
        fig.update_yaxes(type="log", title_text="ms per step", row=1, col=col)
    fig.add_trace(
        go.Bar(
            x=["vectorized", "per-agent"],
            y=[engines["vectorized_ms_per_step"], engines["agents_ms_per_step"]],
            text=[f"{engines['vectorized_ms_per_step']} ms", f"{engines['agents_ms_per_step']} ms"],
            textposition="outside",
            name="engines",
        ),
        1,
        3,
    )
    fig.update_yaxes(type="log", title_text="ms per step", row=1, col=3)
    fig.update_layout(
        width=1400,
        height=450,
        template="plotly_white",
        title=f"unwind bench: vectorized {engines['speed_ratio']}x the per-agent engine",
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def write_chart(results: dict, out: Path) -> str:
    """Write ``bench.png`` (kaleido, which needs a Chromium) or else offline ``bench.html``;
    return the file name written."""
    fig = chart(results)
    try:
        fig.write_image(out / "bench.png", scale=1)
        return "bench.png"
    except Exception:  # no browser for kaleido: the offline page says the same
        fig.write_html(out / "bench.html", include_plotlyjs=True)
        return "bench.html"
