"""A sweep's output directory: the lock, the manifest, the summary table and readers.

The cell files are the single source of truth; the manifest records what ran and
the summary is rebuilt from the cells' rows, so both can be rewritten at any time.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from experiments.outputs import one_line, write_parquet
from experiments.run import versions
from experiments.sweep_cell import CELLS_DIR, empty_headline, read_cell_row
from experiments.sweep_spec import SweepSpec
from model.config import ConfigError

MANIFEST = "manifest.json"
SUMMARY = "summary.parquet"
LOCK = ".sweep.lock"
SUMMARY_INTERVAL_S = 2.0  # how often the driver rewrites summary.parquet while cells finish
SWEEP_PACKAGES = ("dask", "distributed", "tqdm", "plotly")


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
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


def now() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def previous_sessions(out: Path) -> list[dict[str, Any]]:
    """Sessions recorded in an existing manifest: a resumed sweep keeps its history."""
    try:
        previous = json.loads((out / MANIFEST).read_text())
        history = [*previous.get("history", []), previous.get("session")]
    except (OSError, ValueError, AttributeError, TypeError):
        return []
    return [h for h in history if isinstance(h, dict)]


def build_manifest(spec: SweepSpec, session: dict[str, Any], history: list[Any]) -> dict[str, Any]:
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


class SummaryTable:
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
    head = [*vary, "seed", "cell_id", "status", "error", "wall_time_s"]
    frame = pd.DataFrame(rows, columns=[*head, *empty_headline()])
    frame["error"] = frame["error"].fillna("").astype(str)
    return frame


def restore_wall_times(done: dict[str, dict[str, Any]], path: Path) -> None:
    """Wall times of finished cells from the last summary (cell files leave them out)."""
    try:
        old = pd.read_parquet(path, columns=["cell_id", "wall_time_s"])
    except Exception:  # no summary yet, or an unreadable one: the times are only informative
        return
    for cid, wall in zip(old["cell_id"], old["wall_time_s"], strict=True):
        if cid in done:
            done[cid]["wall_time_s"] = wall


def remove_temp_files(cells_dir: Path) -> None:
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
        raise _sweep_error(path, f"unreadable ({one_line(exc, 120)})") from None


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
