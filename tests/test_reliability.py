"""Determinism and fault tolerance of runs and sweeps.

* The same scenario and seed give byte-identical Parquet, run after run, checked
  or not (sweeps: serial, local workers and a real scheduler in test_sweep.py).
* A worker killed mid-cell, after its temp file is written and before the rename,
  has the cell rerun: every cell ends up once, identical to a serial run, and the
  half-written file is never visible.
* A full or read-only disk mid-sweep ends the sweep with one line and exit code 2;
  the finished cells stay intact, and the sweep resumes once there is room.
"""

from __future__ import annotations

import errno
import json
import os
import textwrap
from pathlib import Path

import dask
import numpy as np
import pandas as pd
import pytest

# Imported up front: see the note in test_sweep.py on distributed's config defaults.
from distributed import Client  # noqa: F401

from experiments.cli import main
from experiments.outputs import wide_parquet_writer
from experiments.sweep import load_spec, load_summary, run_cell, run_sweep

TINY = ["--set", "universe.n_stocks=20", "--set", "market.end=2023-01-06", "--quiet"]
SPEC = textwrap.dedent(
    """\
    scenario = "calm"
    seeds = [1, 2, 3]

    [set]
    "universe.n_stocks" = 30
    "market.end" = 2023-01-06
    "noise_traders.n_agents" = 100
    "fundamental_traders.n_agents" = 10

    [vary]
    "noise_traders.attention" = [1.0, 3.0]
    """
)
KILL_ONCE = """\
# Dask worker preload: the first cell to be written kills its worker after writing the
# temp file and before renaming it into place. Idempotent: preloads may run twice.
import os
import signal

import experiments.sweep_cell as sweep_cell

sweep_cell.__dict__.setdefault("_unpatched_write", sweep_cell.atomic_write)
MARKER = {marker!r}


def _write_then_die(path, write, _atomic=sweep_cell._unpatched_write):
    def dying(tmp):
        write(tmp)
        try:
            os.close(os.open(MARKER, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        os.kill(os.getpid(), signal.SIGKILL)

    _atomic(path, dying)


sweep_cell.atomic_write = _write_then_die
"""
DISK_FULL = """\
# Dask worker preload: writing a cell of seed 3 fails halfway with errno {errno}.
import os

import experiments.sweep_cell as sweep_cell

sweep_cell.__dict__.setdefault("_unpatched_write", sweep_cell.atomic_write)


def _failing_write(path, write, _atomic=sweep_cell._unpatched_write):
    def half(tmp):
        write(tmp)
        with open(tmp, "rb") as fh:
            seed_3 = b'"seed": 3,' in fh.read()
        if seed_3:
            raise OSError({errno}, os.strerror({errno}))

    _atomic(path, half)


sweep_cell.atomic_write = _failing_write
"""


def cell_files(out: Path) -> dict[str, bytes]:
    cells = out / "cells"
    return {p.name: p.read_bytes() for p in sorted(cells.iterdir())} if cells.is_dir() else {}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes]]:
    """The sweep's cells run one by one in this process: the files every run must match."""
    base = tmp_path_factory.mktemp("reference")
    spec_path = base / "s.toml"
    spec_path.write_text(SPEC)
    spec = load_spec(spec_path)
    (base / "out" / "cells").mkdir(parents=True)
    for cell in spec.cells:
        assert run_cell(spec.task(cell), str(base / "out"))["status"] == "ok"
    return spec_path, cell_files(base / "out")


def test_a_run_gives_the_same_bytes_every_time_checked_or_not(tmp_path: Path):
    outs = [tmp_path / name for name in ("a", "b", "c")]
    for out in outs[:2]:
        assert main(["run", "calm", *TINY, "--seed", "4", "--out", str(out)]) == 0
    os.environ["UNWIND_CHECK"] = "0"
    try:
        assert main(["run", "calm", *TINY, "--seed", "4", "--out", str(outs[2])]) == 0
    finally:
        os.environ["UNWIND_CHECK"] = "1"
    for name in ("model.parquet", "prices.parquet", "stocks.parquet"):
        first = (outs[0] / name).read_bytes()
        assert all((out / name).read_bytes() == first for out in outs[1:]), name
    checked = [json.loads((out / "summary.json").read_text()) for out in outs]
    assert [s["invariants_checked"] for s in checked] == [True, True, False]


def test_the_wide_parquet_writer_writes_the_bytes_of_to_parquet(tmp_path: Path):
    """The daily closes' writer (pyarrow, column arrays) against pandas' ``to_parquet``:
    the same file, byte for byte, NaN and infinities included."""
    rng = np.random.default_rng(8)
    closes = rng.random((30, 60)) * 100.0
    closes[3, 5], closes[7, 9], closes[8, 1] = np.nan, np.inf, -0.0
    frame = pd.DataFrame(closes, columns=[f"s{i}" for i in range(60)])
    frame.insert(0, "date", [f"2024-01-{d:02d}" for d in range(1, 31)])
    frame.to_parquet(tmp_path / "pandas.parquet", index=False)
    wide_parquet_writer(frame)(str(tmp_path / "wide.parquet"))
    assert (tmp_path / "wide.parquet").read_bytes() == (tmp_path / "pandas.parquet").read_bytes()
    with pytest.raises(ValueError, match="float64"):
        wide_parquet_writer(frame.astype({"s3": np.int64}))


def test_a_cell_gives_the_same_bytes_on_every_run(reference, tmp_path: Path):
    spec_path, want = reference
    spec = load_spec(spec_path)
    (tmp_path / "cells").mkdir()
    row = run_cell(spec.task(spec.cells[0], check=False), str(tmp_path))
    name = f"{row['cell_id']}.parquet"
    assert cell_files(tmp_path) == {name: want[name]}


@pytest.mark.slow
def test_a_worker_killed_mid_cell_is_replaced_and_the_cell_rerun(reference, tmp_path: Path):
    spec_path, want = reference
    marker = tmp_path / "killed"
    preload = tmp_path / "kill_once.py"
    preload.write_text(KILL_ONCE.format(marker=str(marker)))
    with dask.config.set({"distributed.worker.preload": [str(preload)]}):
        result = run_sweep(spec_path, workers=2, out=tmp_path / "out")
    assert marker.exists(), "no worker was killed"
    assert (result.cells, result.ran, result.failed) == (6, 6, 0)
    assert cell_files(tmp_path / "out") == want  # once each, identical, no temp file left
    assert (load_summary(tmp_path / "out")["status"] == "ok").all()


@pytest.mark.slow
@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EROFS], ids=["full", "read-only"])
def test_a_full_or_read_only_disk_stops_the_sweep_and_keeps_finished_cells(
    error, reference, tmp_path: Path, capsys
):
    spec_path, want = reference
    out = tmp_path / "out"
    preload = tmp_path / "disk_full.py"
    preload.write_text(DISK_FULL.format(errno=error))
    with dask.config.set({"distributed.worker.preload": [str(preload)]}):
        code = main(["sweep", str(spec_path), "--workers", "1", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert f"unwind: error: --out = '{out}': cannot write cell files ({os.strerror(error)})" in err
    got = cell_files(out)
    assert got, "the cells before the failure should have finished"
    assert all(name in want and data == want[name] for name, data in got.items())
    seeds = {pd.read_parquet(out / "cells" / name)["seed"].iloc[0] for name in got}
    assert 3 not in seeds  # the failed write left nothing visible
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["session"]["status"].startswith("stopped: --out")
    summary = load_summary(out)  # the rows the driver had; a cell running at the stop may
    assert (summary["status"] == "ok").all()  # still have finished its file since
    assert {f"{cid}.parquet" for cid in summary["cell_id"]} <= set(got)
    if error == errno.EROFS:
        return  # the resume is the same for both; once is enough
    # Room again: the same command resumes and finishes the sweep.
    assert main(["sweep", str(spec_path), "--workers", "1", "--out", str(out), "--quiet"]) == 0
    assert cell_files(out) == want
