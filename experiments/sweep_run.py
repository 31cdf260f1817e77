"""Running a sweep: a local Dask cluster or an existing scheduler, resume and failures.

The driver only submits cells and collects their small summary rows; it never
holds a model table, so its memory stays flat however large the sweep.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from experiments.outputs import ensure_dir, one_line, output_error, write_json
from experiments.sweep_cell import CELLS_DIR, ERROR_LIMIT, WRITE_FAILED, empty_headline, run_cell
from experiments.sweep_spec import Cell, SweepSpec, load_spec
from experiments.sweep_store import (
    MANIFEST,
    SUMMARY,
    SummaryTable,
    build_manifest,
    locked,
    now,
    previous_sessions,
    remove_temp_files,
    restore_wall_times,
    scan_cells,
)
from model.config import ConfigError

CONNECT_TIMEOUT_S = 10


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
                f"--scheduler = {scheduler!r}: cannot connect ({one_line(exc, 120)})"
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
        "error": one_line(f"{type(exc).__name__}: {exc}", ERROR_LIMIT),
        "wall_time_s": float("nan"),
        **empty_headline(),
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
    with _writing(out), locked(out):
        done = scan_cells(cells_dir, {c.cell_id for c in spec.cells})
        restore_wall_times(done, out / SUMMARY)
        todo = [c for c in spec.cells if c.cell_id not in done]
        session: dict[str, Any] = {
            "started": now(),
            "finished": None,
            "status": "running",
            "scheduler": scheduler or "local",
            "workers": None,
            "skipped": len(done),
        }
        history = previous_sessions(out)
        write_json(build_manifest(spec, session, history), out / MANIFEST)
        summary = SummaryTable(spec, out / SUMMARY, done)
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
            remove_temp_files(cells_dir)  # left by workers killed mid-write, never visible
        except KeyboardInterrupt:
            stopped = True
            session["status"] = "interrupted"
            raise
        except BaseException as exc:
            stopped = True
            session["status"] = f"stopped: {one_line(exc, 200)}"
            raise
        finally:
            bar.close()
            session.update(finished=now(), ran=ran, failed=failed)
            try:
                summary.write()
                write_json(build_manifest(spec, session, history), out / MANIFEST)
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
