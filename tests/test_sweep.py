"""Parameter sweeps: spec parsing, Dask runs equal serial runs, resume after SIGKILL, failures.

Every sweep here runs the calm scenario at a toy size (30 stocks, 9 trading days),
well under a second a cell; the time goes into starting Dask worker processes.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import dask
import numpy as np
import pandas as pd
import plotly.offline
import pyarrow.parquet as pq
import pytest

# Imported up front on purpose: distributed adds its config defaults on import, and a
# `dask.config.set` on a distributed key made before that import would, on exit,
# delete the whole `distributed` section it had to create (KeyError in later Clients).
from distributed import Client

from experiments import sweep, sweep_cell, sweep_run
from experiments.episode import episode_figures, in_window
from experiments.sweep import (
    load_spec,
    load_summary,
    load_sweep,
    parse_spec,
    run_cell,
    run_sweep,
    sweep_report,
)
from model.config import ConfigError
from model.universe import INDEX_NAMES

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
TINY_SET = {
    "universe.n_stocks": 30,
    "market.end": "2023-01-13",
    "noise_traders.n_agents": 100,
    "fundamental_traders.n_agents": 10,
}
TINY_TOML = textwrap.dedent(
    """\
    scenario = "calm"
    seeds = {seeds}

    [set]
    "universe.n_stocks" = 30
    "market.end" = 2023-01-13
    "noise_traders.n_agents" = 100
    "fundamental_traders.n_agents" = 10

    [vary]
    "noise_traders.attention" = {attention}
    """
)
FAIL_SEED = 13
FAIL_PRELOAD = f"""\
# Dask worker preload: cells with seed {FAIL_SEED} raise inside the model run.
# Idempotent, since a preload may be executed more than once in a worker.
import experiments.sweep_cell as sweep_cell

sweep_cell.__dict__.setdefault("_unpatched_run", sweep_cell.run)


def _failing_run(config, seed, _run=sweep_cell._unpatched_run, **kwargs):
    if seed == {FAIL_SEED}:
        raise RuntimeError("injected failure for seed {FAIL_SEED}")
    return _run(config, seed, **kwargs)


sweep_cell.run = _failing_run
"""


def write_spec(path: Path, *, seeds: str = "[1, 2]", attention: str = "[1.0, 3.0]") -> Path:
    path.write_text(TINY_TOML.format(seeds=seeds, attention=attention))
    return path


def spec_of(data: dict[str, Any], tmp_path: Path | None = None):
    return parse_spec(data, (tmp_path or Path("/tmp")) / "s.toml")


def cell_tables(out: Path) -> dict[str, pd.DataFrame]:
    """Each cell file read on its own: id -> table."""
    return {p.stem: pd.read_parquet(p) for p in sorted((out / "cells").glob("*.parquet"))}


def serial_run(spec_path: Path, out: Path) -> list[dict[str, Any]]:
    """The same cells through run_cell in this process: the reference for Dask runs."""
    spec = load_spec(spec_path)
    (out / "cells").mkdir(parents=True)
    return [run_cell(spec.task(c), str(out)) for c in spec.cells]


def assert_same_cells(out: Path, reference: Path) -> None:
    """The same cell files, byte for byte (determinism whoever ran them)."""
    got, want = cell_tables(out), cell_tables(reference)
    assert sorted(got) == sorted(want)
    for cid, table in want.items():
        pd.testing.assert_frame_equal(got[cid], table)
        name = f"cells/{cid}.parquet"
        assert (out / name).read_bytes() == (reference / name).read_bytes(), cid


def without_times(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns="wall_time_s").sort_values("cell_id").reset_index(drop=True)


# ---------------------------------------------------------------------------- spec parsing


def test_grid_of_list_and_ranges_times_seeds():
    spec = spec_of(
        {
            "scenario": "calm",
            "seeds": {"count": 2, "start": 5},
            "set": TINY_SET,
            "vary": {
                "noise_traders.attention": [1.0, 2],
                "fundamentals.idio_vol": {"start": 0.004, "stop": 0.012, "num": 3},
                "market_makers.n_agents": {"start": 2, "stop": 8, "step": 3},
            },
        }
    )
    assert spec.mode == "grid" and spec.seeds == (5, 6)
    assert len(spec.cells) == 2 * 3 * 3 * 2
    first = spec.cells[0]
    assert first.params == {
        "noise_traders.attention": 1.0,
        "fundamentals.idio_vol": 0.004,
        "market_makers.n_agents": 2,
    }
    assert [c.seed for c in spec.cells[:2]] == [5, 6]
    assert {c.params["fundamentals.idio_vol"] for c in spec.cells} == {0.004, 0.008, 0.012}
    assert {c.params["market_makers.n_agents"] for c in spec.cells} == {2, 5, 8}
    assert isinstance(spec.cells[2].params["noise_traders.attention"], float)  # 2 -> 2.0
    assert len({c.cell_id for c in spec.cells}) == len(spec.cells)


def test_nested_tables_read_like_dotted_keys():
    """Unquoted dotted keys in TOML are nested tables; both spellings mean the same."""
    nested = {"scenario": "calm", "set": {"universe": {"n_stocks": 30}}}
    nested["vary"] = {"neutral": {"dma_leverage": {"start": 1.0, "stop": 2.0, "num": 2}}}
    dotted = {
        "scenario": "calm",
        "set": {"universe.n_stocks": 30},
        "vary": {"neutral.dma_leverage": [1.0, 2.0]},
    }
    a, b = spec_of(nested), spec_of(dotted)
    assert [c.cell_id for c in a.cells] == [c.cell_id for c in b.cells]


def test_cell_ids_are_stable_and_depend_on_everything_that_matters():
    data = {"scenario": "calm", "set": TINY_SET, "vary": {"neutral.dma_leverage": [1.0, 2.0]}}
    ids = [c.cell_id for c in spec_of(data).cells]
    assert ids == [c.cell_id for c in spec_of(data).cells]
    more = {**data, "seeds": [1, 2]}  # adding a seed keeps the existing cells' ids
    assert set(ids) < {c.cell_id for c in spec_of(more).cells}
    other = {**data, "set": {**TINY_SET, "universe.n_stocks": 40}}
    assert not set(ids) & {c.cell_id for c in spec_of(other).cells}
    # A fixed value written 2 or 2.0 for a float key is the same run, the same cell.
    whole = {**data, "set": {**TINY_SET, "neutral.dma_share": 1}}
    real = {**data, "set": {**TINY_SET, "neutral.dma_share": 1.0}}
    assert [c.cell_id for c in spec_of(whole).cells] == [c.cell_id for c in spec_of(real).cells]


def test_editing_the_scenario_file_gives_new_cell_ids(tmp_path: Path):
    """A resume must not take a cell run on the scenario as it was before an edit."""
    data = {"scenario": "mine.toml", "vary": {"neutral.dma_leverage": [1.0, 2.0]}}
    ids = []
    for aum in (300.0, 30.0):
        (tmp_path / "mine.toml").write_text(
            f'base = "calm"\nname = "mine"\n[neutral]\naum_bn = {aum}\n'
        )
        ids.append({c.cell_id for c in spec_of(data, tmp_path).cells})
    assert len(ids[0]) == 2 and not ids[0] & ids[1]


@pytest.mark.parametrize(
    ("seeds", "expected"),
    [
        (None, (1,)),
        ([3, 1, 2], (3, 1, 2)),
        ({"count": 3}, (1, 2, 3)),
        ({"count": 2, "start": 0}, (0, 1)),
    ],
)
def test_seed_forms(seeds, expected):
    data = {"scenario": "calm"} if seeds is None else {"scenario": "calm", "seeds": seeds}
    assert spec_of(data).seeds == expected


def test_latin_hypercube_covers_every_stratum_once_and_is_reproducible():
    n = 10
    data = {
        "scenario": "calm",
        "mode": "lhs",
        "samples": n,
        "sweep_seed": 7,
        "seeds": [1, 2],
        "vary": {
            "neutral.dma_leverage": {"low": 1.0, "high": 4.0},
            "lending.institutional_pct_float": {"low": 0.0, "high": 0.01},
        },
    }
    spec = spec_of(data)
    assert len(spec.cells) == n * 2
    points = [c.params for c in spec.cells if c.seed == 1]
    for key, (low, high) in (
        ("neutral.dma_leverage", (1, 4)),
        ("lending.institutional_pct_float", (0, 0.01)),
    ):
        strata = sorted(int((p[key] - low) / (high - low) * n) for p in points)
        assert strata == list(range(n))
    assert [c.params for c in spec_of(data).cells] == [c.params for c in spec.cells]
    other = spec_of({**data, "sweep_seed": 8})
    assert [c.params for c in other.cells] != [c.params for c in spec.cells]


def test_random_mode_stays_in_bounds_and_keeps_integer_keys_integer():
    spec = spec_of(
        {
            "scenario": "calm",
            "mode": "random",
            "samples": 20,
            "vary": {
                "universe.n_stocks": {"low": 20, "high": 40},
                "fundamentals.idio_vol": {"low": 0.004, "high": 0.012},
                "noise_traders.attention": [1.0, 3.0],
            },
        }
    )
    assert 1 <= len(spec.cells) <= 20
    for cell in spec.cells:
        n = cell.params["universe.n_stocks"]
        assert isinstance(n, int) and 20 <= n <= 40
        assert 0.004 <= cell.params["fundamentals.idio_vol"] <= 0.012
        assert cell.params["noise_traders.attention"] in (1.0, 3.0)


def test_example_sweeps_parse():
    lev = load_spec(ROOT / "experiments/sweeps/leverage_lending.toml")
    assert lev.vary == ("neutral.dma_leverage", "lending.institutional_pct_float")
    assert len(lev.cells) == 18 and lev.fixed["universe.n_stocks"] == 300
    seeds = load_spec(ROOT / "experiments/sweeps/seeds.toml")
    assert seeds.vary == () and seeds.seeds == tuple(range(1, 9)) and len(seeds.cells) == 8
    readme = load_spec(ROOT / "experiments/sweeps/jan2024_20_seeds.toml")
    assert (readme.scenario, readme.scale, readme.fixed) == ("jan2024", "default", {})
    assert readme.seeds == tuple(range(1, 21)) and readme.vary == ()


BAD_SPECS = [
    ({"vary": {"neutral.dma_leverag": [1.0]}}, "vary.neutral.dma_leverag: unknown key"),
    ({"vary": {"neutral.dma_leverage": [2.0, 5.0]}}, "neutral.dma_leverage = 5.0: must be in"),
    ({"vary": {"neutral.dma_leverage": []}}, "vary.neutral.dma_leverage = []"),
    ({"vary": {"neutral.dma_leverage": [1.0, 1.0]}}, "values must be distinct"),
    ({"vary": {"neutral.dma_leverage": 2.0}}, "vary.neutral.dma_leverage = 2.0: must be a list"),
    ({"vary": {"neutral.dma_leverage": {"start": 1.0, "stop": 2.0}}}, "vary.neutral.dma_leverage"),
    ({"vary": {"neutral.dma_leverage": {"start": 1, "stop": 2, "num": 0}}}, "num = 0"),
    ({"vary": {"neutral.dma_leverage": {"start": 2, "stop": 1, "step": 0.5}}}, ".step = 0.5"),
    ({"vary": {"neutral.dma_leverage": {"low": 1.0, "high": 2.0}}}, "needs mode = 'random'"),
    ({"mode": "lhs", "vary": {"neutral.dma_leverage": [1.0]}}, "samples: missing"),
    (
        {"mode": "lhs", "samples": 4, "vary": {"neutral.dma_leverage": {"low": 3, "high": 1}}},
        "low <= high",
    ),
    ({"mode": "lhs", "samples": 0, "vary": {"neutral.dma_leverage": [1.0]}}, "samples = 0"),
    ({"mode": "random", "samples": 3}, "vary: empty"),
    ({"mode": "grid", "samples": 3}, "samples = 3: only with mode"),
    ({"mode": "sobol"}, "mode = 'sobol'"),
    ({"seeds": []}, "seeds = []"),
    ({"seeds": [1, 1]}, "seeds must be distinct"),
    ({"seeds": [-1]}, "seeds[0] = -1"),
    ({"seeds": {"count": 0}}, "seeds.count = 0"),
    ({"seeds": {"n": 3}}, "seeds = "),
    ({"scenarios": "calm"}, "scenarios: unknown sweep key; did you mean 'scenario'?"),
    ({"scenario": "nope"}, "scenario = 'nope': unknown scenario"),
    ({"scale": "huge"}, "scale = 'huge'"),
    ({"set": {"universe.n_stock": 30}}, "universe.n_stock: unknown key"),
    ({"set": {"neutral.dma_leverage": 2.0}, "vary": {"neutral.dma_leverage": [1.0]}}, "also fixed"),
    (
        {"vary": {"market.end": ["2023-06-30", "2026-06-30"]}},
        "market.end = 2026-06-30: must be within",
    ),
    ({"vary": {"mode": "lhs"}}, "vary.mode: put mode"),
]


@pytest.mark.parametrize(("data", "fragment"), BAD_SPECS)
def test_bad_specs_fail_in_one_line_naming_the_key(data, fragment):
    with pytest.raises(ConfigError) as err:
        spec_of({"scenario": "calm", **data})
    message = str(err.value)
    assert fragment in message and "\n" not in message


def test_missing_scenario_and_malformed_file(tmp_path: Path):
    with pytest.raises(ConfigError, match="scenario: missing"):
        spec_of({"vary": {}})
    bad = tmp_path / "bad.toml"
    bad.write_text("scenario = \n")
    with pytest.raises(ConfigError, match="malformed TOML"):
        load_spec(bad)
    with pytest.raises(ConfigError, match="no such file"):
        load_spec(tmp_path / "absent.toml")


def test_scenario_path_is_relative_to_the_sweep_file(tmp_path: Path):
    (tmp_path / "base.toml").write_text('base = "calm"\nname = "mine"\n')
    spec = spec_of({"scenario": "base.toml"}, tmp_path)
    assert spec.scenario_ref == str((tmp_path / "base.toml").resolve())


def test_driver_arguments_are_checked_before_anything_runs(tmp_path: Path, monkeypatch):
    spec = write_spec(tmp_path / "s.toml")
    with pytest.raises(ConfigError, match="--workers = 0"):
        run_sweep(spec, workers=0, out=tmp_path / "o")
    with pytest.raises(ConfigError, match="--scheduler brings its own workers"):
        run_sweep(spec, workers=2, scheduler="tcp://127.0.0.1:1", out=tmp_path / "o")
    monkeypatch.setattr(sweep_run, "CONNECT_TIMEOUT_S", 1)
    with pytest.raises(
        ConfigError, match=re.escape("--scheduler = 'tcp://127.0.0.1:9': cannot connect")
    ):
        run_sweep(spec, scheduler="tcp://127.0.0.1:9", out=tmp_path / "o")


def test_readers_refuse_a_directory_that_is_not_a_sweep(tmp_path: Path):
    for reader in (load_sweep, load_summary, sweep_report):
        with pytest.raises(ConfigError, match="sweep PATH"):
            reader(tmp_path)


# ---------------------------------------------------------------------------- running


@pytest.fixture(scope="module")
def serial_sweep(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Any]:
    """A 2 x 2 sweep whose cells ran in this process; run_sweep then only resumes it.

    No Dask workers are started: every cell file is already there, so run_sweep
    reads them back and writes the summary and manifest. Cheap enough to be a
    fixture under xdist, where each worker process builds its own.
    """
    base = tmp_path_factory.mktemp("serial")
    spec = write_spec(base / "tiny.toml")
    serial_run(spec, base / "out")
    result = run_sweep(spec, workers=2, out=base / "out")
    return spec, base / "out", result


def test_resume_of_finished_cells_starts_no_workers(serial_sweep):
    spec, out, result = serial_sweep
    assert (result.cells, result.skipped, result.ran, result.failed) == (4, 4, 0, 0)
    assert result.workers == 0  # no cluster: nothing to run
    again = run_sweep(spec, out=out)
    assert (again.skipped, again.ran, again.workers) == (4, 0, 0)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["session"]["skipped"] == 4 and len(manifest["history"]) == 1


def test_local_cluster_gives_the_same_cells_as_a_serial_run(serial_sweep, tmp_path: Path):
    spec, reference, _ = serial_sweep
    result = run_sweep(spec, workers=2, out=tmp_path / "out")
    assert (result.cells, result.ran, result.failed, result.workers) == (4, 4, 0, 2)
    assert_same_cells(tmp_path / "out", reference)
    pd.testing.assert_frame_equal(
        without_times(load_summary(tmp_path / "out")), without_times(load_summary(reference))
    )


def test_one_table_from_one_path(serial_sweep):
    spec, out, _ = serial_sweep
    table = load_sweep(out)
    summary = load_summary(out)
    assert list(table.columns[:3]) == ["noise_traders.attention", "seed", "cell_id"]
    assert table.groupby("cell_id", sort=False).size().tolist() == summary["steps"].tolist()
    assert table["cell_id"].unique().tolist() == summary["cell_id"].tolist()  # same order
    assert (summary["status"] == "ok").all() and (summary["error"] == "").all()
    assert summary["microcap_max_drawdown"].between(0, 1).all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["spec_text"] == spec.read_text() and manifest["n_cells"] == 4
    assert manifest["session"]["status"] == "complete" and "distributed" in manifest["versions"]


def test_a_different_sweep_cannot_reuse_the_directory(serial_sweep, tmp_path: Path):
    _, out, _ = serial_sweep
    other = write_spec(tmp_path / "other.toml", attention="[5.0]")
    with pytest.raises(ConfigError, match="of a different sweep"):
        run_sweep(other, out=out)


def test_report_is_one_offline_page(serial_sweep, tmp_path: Path):
    _, out, _ = serial_sweep
    path = sweep_report(out, tmp_path / "sweep.html")
    page = path.read_text(encoding="utf-8")
    assert page.count(plotly.offline.get_plotlyjs()[:200]) == 1  # the library once, inlined
    assert not re.search(r"""<(script|link)[^>]*(src|href)\s*=\s*['"]?https?://""", page)
    assert sweep.TITLE_SPREAD in page and f"{sweep.TITLE_RESPONSE} noise_traders.attention" in page
    assert "Skipped: needs two varied parameters" in page  # only one key varies here


EPISODE_TOML = """\
scenario = "jan2024"
seeds = [1, 2]

[set]
"universe.n_stocks" = 60
"market.start" = 2023-12-01
"retail.n_agents" = 400
"noise_traders.n_agents" = 100
"fundamental_traders.n_agents" = 10
# Lines close under the starting NAV, so products stop out: in the window in seed 2,
# after it in seed 1.
"neutral.warning_line" = 0.97
"neutral.stop_line" = 0.95
"""


def test_episode_headline_flattens_a_summary_episode():
    drawdown = dict(zip(INDEX_NAMES, (-0.05, -0.08, -0.1, -0.2, -0.3), strict=True))
    basis = {"late_january_mean": -0.2, "worst_in_window": -0.5, "after_rescue_mean": 0.01}
    episode = {
        "crash_drawdown": drawdown,
        "size_gradient": True,
        "flow_gradient": False,
        "first_stop_date": "2024-02-05",
        "microcap_rebound": 0.04,
        "pace": {"worst_session": {"microcap": -0.06}, "limit_down_peak": 12},
        "im_basis": basis,
    }
    row = sweep_cell.episode_headline(episode)
    assert row["microcap_crash_drawdown"] == -0.3 and row["csi300_crash_drawdown"] == -0.05
    assert (row["size_gradient"], row["flow_gradient"]) == (1.0, 0.0)
    assert (row["first_stop_date"], row["first_stop_in_window"]) == ("2024-02-05", 1.0)
    assert (row["microcap_worst_session"], row["limit_down_peak"]) == (-0.06, 12.0)
    assert row["im_basis_worst_in_window"] == -0.5 and row["microcap_rebound"] == 0.04
    assert np.isnan(row["ic_basis_worst_in_window"])  # no IC figures: NaN, same columns
    late = sweep_cell.episode_headline({**episode, "first_stop_date": "2024-02-19"})
    assert late["first_stop_in_window"] == 0.0
    assert set(row) == set(sweep_cell.episode_headline(None))


def test_a_seed_sweep_over_the_crash_counts_the_episode_figures(tmp_path: Path, serial_sweep):
    """Each cell's row carries its run's crash-window figures, recomputed here from the
    cell's own table, and the report counts them; a calm sweep's rows have none."""
    spec = tmp_path / "episode.toml"
    spec.write_text(EPISODE_TOML)
    out = tmp_path / "out"
    serial_run(spec, out)
    run_sweep(spec, out=out)
    summary = load_summary(out).set_index("cell_id")
    for cid, table in cell_tables(out).items():
        row = summary.loc[cid]
        figures = episode_figures(table.drop(columns=["seed", "cell_id"]))
        for name in INDEX_NAMES:
            assert row[f"{name}_crash_drawdown"] == figures["crash_drawdown"][name]
        assert row["size_gradient"] == float(figures["size_gradient"])
        assert row["first_stop_date"] == figures["first_stop_date"]
        assert row["first_stop_in_window"] == float(in_window(figures["first_stop_date"]))
        assert row["im_basis_worst_in_window"] == figures["im_basis"]["worst_in_window"]
        assert row["limit_down_peak"] == figures["pace"]["limit_down_peak"]
    page = sweep_report(out, tmp_path / "report.html").read_text(encoding="utf-8")
    assert "The crash window over seeds" in page
    table = page[page.index('<table class="episode">') :]
    table = table[: table.index("</table>")]
    cells = re.findall(r"<td>([^<]*)</td>", table)
    assert cells[0] == "2"  # seeds
    assert cells[1] == f"{int(summary['size_gradient'].sum())} of 2"
    assert cells[3] == f"{int(summary['first_stop_in_window'].sum())} of 2"
    _, calm, _ = serial_sweep
    assert load_summary(calm)["size_gradient"].isna().all()
    assert (
        "The crash window over seeds" not in sweep_report(calm, tmp_path / "calm.html").read_text()
    )


def test_failing_cells_are_recorded_and_the_rest_finish(tmp_path: Path):
    preload = tmp_path / "fail_preload.py"
    preload.write_text(FAIL_PRELOAD)
    spec = write_spec(tmp_path / "s.toml", seeds=f"[1, {FAIL_SEED}]", attention="[1.0]")
    with dask.config.set({"distributed.worker.preload": [str(preload)]}):
        result = run_sweep(spec, workers=1, out=tmp_path / "out")
    assert (result.cells, result.failed, result.ok) == (2, 1, 1)
    summary = load_summary(tmp_path / "out").set_index("seed")
    assert summary.loc[1, "status"] == "ok"
    assert summary.loc[FAIL_SEED, "status"] == "error"
    assert "injected failure for seed 13" in summary.loc[FAIL_SEED, "error"]
    assert len(cell_tables(tmp_path / "out")) == 1  # a failed cell writes nothing, reruns next time
    manifest = json.loads((tmp_path / "out/manifest.json").read_text())
    assert manifest["session"]["status"] == "failed cells"


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_existing_scheduler_with_two_worker_processes(tmp_path: Path):
    """A real scheduler and two workers started apart on 127.0.0.1: same cells as serial."""
    spec = write_spec(tmp_path / "s.toml")
    file = tmp_path / "scheduler.json"
    logs = (tmp_path / "dask.log").open("w")
    procs: list[subprocess.Popen] = []
    try:
        procs.append(
            subprocess.Popen(
                [PYTHON, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                 "--port", "0", "--scheduler-file", str(file), "--no-dashboard"],
                cwd=tmp_path, stdout=logs, stderr=logs,
            )
        )  # fmt: skip
        _wait_for(file.exists, 60, "scheduler file")
        _wait_for(lambda: "address" in file.read_text(), 10, "scheduler address")
        address = json.loads(file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for _ in range(2):
            procs.append(
                subprocess.Popen(
                    [PYTHON, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                     "--no-nanny", "--host", "127.0.0.1", "--no-dashboard"],
                    cwd=tmp_path, stdout=logs, stderr=logs,
                )
            )  # fmt: skip
        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=90)
        result = run_sweep(spec, scheduler=address, out=tmp_path / "out")
        assert (result.ran, result.failed, result.workers) == (4, 0, 2)
        assert result.scheduler == address
    finally:
        _stop(procs)
        logs.close()
    serial_run(spec, tmp_path / "serial")
    assert_same_cells(tmp_path / "out", tmp_path / "serial")


DRIVER = """\
import sys
from pathlib import Path

from experiments.sweep import run_sweep

if __name__ == "__main__":
    run_sweep(Path(sys.argv[1]), workers=1, out=Path(sys.argv[2]))
"""


def _finished(out: Path) -> list[Path]:
    cells = out / "cells"
    return (
        [p for p in cells.glob("*.parquet") if not p.name.startswith(".")] if cells.is_dir() else []
    )


@pytest.mark.slow
def test_sigkill_midway_then_resume_leaves_every_cell_exactly_once(tmp_path: Path):
    spec = write_spec(tmp_path / "s.toml", seeds="{count = 6}", attention="[1.0, 2.0, 3.0, 4.0]")
    n_cells = 24
    out = tmp_path / "out"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    proc = subprocess.Popen(
        [PYTHON, str(driver), str(spec), str(out)],
        cwd=tmp_path,
        start_new_session=True,  # its own process group: the kill takes its workers too
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: len(_finished(out)) >= 3 or proc.poll() is not None, 180, "3 cells")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done = _finished(out)
    assert 3 <= len(done) < n_cells, "the kill should land midway"
    for path in done:  # whatever the kill interrupted, no visible cell is damaged
        assert pq.read_metadata(path).num_rows > 0

    result = run_sweep(spec, workers=1, out=out)
    assert result.cells == n_cells and result.failed == 0
    assert result.skipped == len(done) and result.ran == n_cells - len(done)
    files = sorted(p.stem for p in (out / "cells").iterdir())
    assert files == sorted(c.cell_id for c in load_spec(spec).cells)  # once each, no temp left
    summary = load_summary(out)
    assert len(summary) == n_cells and summary["cell_id"].is_unique
    assert (summary["status"] == "ok").all()
    table = load_sweep(out)
    assert table.groupby("cell_id").size().eq(summary["steps"].iloc[0]).all()
    assert table["cell_id"].nunique() == n_cells
