"""The catalogue of bad input: each case gets one line naming what is wrong, and exit code 2.

Every case goes end to end through the command line (``experiments.cli.main``,
and a few through the ``unwind`` console script as a real process) and checks the
same four things: exit code 2; exactly one line on stderr that names the key or
argument, the value given and what is allowed; no traceback; and nothing left in
the output directory (it is not even created).
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import experiments.outputs as outputs
from experiments.cli import main

TINY = ["--set", "universe.n_stocks=20", "--set", "market.end=2023-01-05", "--quiet"]
SWEEP_HEAD = 'scenario = "calm"\n[set]\n"universe.n_stocks" = 20\n"market.end" = 2023-01-05\n'


@dataclass(frozen=True)
class Case:
    """One bad input: the command, files it needs, and what the error line must say."""

    name: str
    argv: list[str]
    says: list[str]
    files: dict[str, str] = field(default_factory=dict)


def run_case(*argv: str, scenario: str = "calm") -> list[str]:
    return ["run", scenario, *argv]


CATALOGUE = [
    # -- misspelt or unknown keys
    Case(
        "misspelt key",
        run_case("--set", "universe.n_stock=30"),
        ["universe.n_stock: unknown key", "did you mean 'universe.n_stocks'", "allowed: n_stocks"],
    ),
    Case(
        "unknown table",
        run_case("--set", "univers.n_stocks=30"),
        ["univers: unknown key", "did you mean 'universe'", "allowed:"],
    ),
    Case(
        "unknown key in a scenario file",
        ["run", "{tmp}/s.toml"],
        ["universe.n_stockz: unknown key", "did you mean 'universe.n_stocks'", "allowed:"],
        {"s.toml": "[universe]\nn_stockz = 30\n"},
    ),
    Case(
        "unknown top-level key in a scenario file",
        ["run", "{tmp}/s.toml"],
        ["nmae: unknown key", "did you mean 'name'", "allowed: name"],
        {"s.toml": 'nmae = "x"\n'},
    ),
    Case(
        "unknown key in a sweep file",
        ["sweep", "{tmp}/w.toml"],
        ["scenarios: unknown sweep key", "did you mean 'scenario'", "allowed: scenario"],
        {"w.toml": 'scenarios = "calm"\n'},
    ),
    Case(
        "unknown varied key in a sweep file",
        ["sweep", "{tmp}/w.toml"],
        ["vary.neutral.dma_leverag: unknown key", "did you mean 'neutral.dma_leverage'"],
        {"w.toml": SWEEP_HEAD + '[vary]\n"neutral.dma_leverag" = [1.0, 2.0]\n'},
    ),
    # -- wrong types
    Case(
        "text for an integer",
        run_case("--set", "universe.n_stocks=abc"),
        ["universe.n_stocks = 'abc'", "must be an integer"],
    ),
    Case(
        "fraction for an integer",
        run_case("--set", "universe.n_stocks=30.5"),
        ["universe.n_stocks = 30.5", "must be an integer"],
    ),
    Case(
        "number for a switch",
        run_case("--set", "futures.enabled=3"),
        ["futures.enabled = 3", "must be true or false"],
    ),
    Case(
        "text for an integer in a scenario file",
        ["run", "{tmp}/s.toml"],
        ["market.steps_per_day = 'four'", "must be an integer"],
        {"s.toml": '[market]\nsteps_per_day = "four"\n'},
    ),
    Case(
        "value for a table",
        run_case("--set", "universe=3"),
        ["universe = 3", "must be a table"],
    ),
    Case(
        "table under a value",
        run_case("--set", "universe.n_stocks.x=1"),
        ["universe.n_stocks.x = 1", "universe.n_stocks is a value, not a table"],
    ),
    Case("not a date", run_case("--set", "market.end=2023-13-01"), ["market.end = '2023-13-01'"]),
    Case(
        "a list for a sweep grid key",
        ["sweep", "{tmp}/w.toml"],
        ["vary.noise_traders.attention = 2.0", "must be a list or a range"],
        {"w.toml": SWEEP_HEAD + '[vary]\n"noise_traders.attention" = 2.0\n'},
    ),
    # -- NaN or infinite values
    Case(
        "NaN",
        run_case("--set", "fundamentals.idio_vol=nan"),
        ["fundamentals.idio_vol = nan", "must be a finite number"],
    ),
    Case(
        "infinity",
        run_case("--set", "fundamentals.idio_vol=inf"),
        ["fundamentals.idio_vol = inf", "must be a finite number"],
    ),
    Case(
        "minus infinity in a scenario file",
        ["run", "{tmp}/s.toml"],
        ["fundamentals.market_vol = -inf", "must be a finite number"],
        {"s.toml": "[fundamentals]\nmarket_vol = -inf\n"},
    ),
    Case(
        "NaN for an integer",
        run_case("--set", "universe.n_stocks=nan"),
        ["universe.n_stocks = nan", "must be an integer"],
    ),
    Case(
        "NaN in a sweep grid",
        ["sweep", "{tmp}/w.toml"],
        ["noise_traders.attention = nan", "must be a finite number", "sweep cell"],
        {"w.toml": SWEEP_HEAD + '[vary]\n"noise_traders.attention" = [1.0, nan]\n'},
    ),
    # -- out-of-range numbers
    Case(
        "limit above 100%",
        run_case("--set", "universe.limit_main=1.5"),
        ["universe.limit_main = 1.5", "must be in (0.0, 1.0)"],
    ),
    Case(
        "negative count",
        run_case("--set", "noise_traders.n_agents=-1"),
        ["noise_traders.n_agents = -1", "must be in [0, 10000000]"],
    ),
    Case(
        "negative cap",
        run_case("--set", "universe.min_cap_bn=-1"),
        ["universe.min_cap_bn = -1.0", "must be in (0.0, 1000.0)"],
    ),
    Case(
        "largest cap below smallest",
        run_case("--set", "universe.max_cap_bn=1.0"),
        ["universe.max_cap_bn = 1.0", "must exceed universe.min_cap_bn = 1.5"],
    ),
    Case(
        "out of range in a sweep grid",
        ["sweep", "{tmp}/w.toml"],
        ["neutral.dma_leverage = 5.0", "must be in [1.0, 4.0]", "sweep cell"],
        {"w.toml": SWEEP_HEAD + '[vary]\n"neutral.dma_leverage" = [2.0, 5.0]\n'},
    ),
    Case("negative seed", run_case("--seed", "-3"), ["--seed = '-3'", "must be an integer >= 0"]),
    Case(
        "unknown scale", run_case("--scale", "huge"), ["--scale = 'huge'", "one of default, full"]
    ),
    Case(
        "unknown engine",
        run_case("--engine", "bogus"),
        ["--engine", "'bogus'", "choose from 'vectorized', 'agents'"],
    ),
    Case("no workers", ["sweep", "x.toml", "--workers", "0"], ["--workers = 0", ">= 1"]),
    # -- empty universe
    Case(
        "no stocks",
        run_case("--set", "universe.n_stocks=0"),
        ["universe.n_stocks = 0", "must be in [10, 20000]"],
    ),
    Case(
        "no stocks in a scenario file",
        ["run", "{tmp}/s.toml"],
        ["universe.n_stocks = 0", "must be in [10, 20000]"],
        {"s.toml": "[universe]\nn_stocks = 0\n"},
    ),
    # -- dates out of order or outside the calendar
    Case(
        "end before start",
        run_case("--set", "market.end=2022-12-01"),
        ["market.end = 2022-12-01", "must not be before market.start = 2023-01-03"],
    ),
    Case(
        "dip ends before it starts",
        run_case("--set", "fundamentals.dip_end=2020-01-01"),
        ["fundamentals.dip_end = 2020-01-01", "must not be before fundamentals.dip_start"],
    ),
    Case(
        "rescue dates out of order",
        run_case("--set", "national_team.early_date=2025-01-01"),
        ["national_team.early_date = 2025-01-01", "must lie between national_team.start"],
    ),
    Case(
        "value investors' risk budget below where it starts to bind",
        run_case(
            "--set",
            "fundamental_traders.drawdown_budget=0.05",
            "--set",
            "fundamental_traders.drawdown_free=0.08",
        ),
        [
            "fundamental_traders.drawdown_free = 0.08",
            "must not exceed fundamental_traders.drawdown_budget = 0.05",
        ],
    ),
    Case(
        "after the calendar",
        run_case("--set", "market.start=2031-01-05", "--set", "market.end=2031-02-01"),
        ["market.start = 2031-01-05", "must be within 2022-01-01..2025-12-31"],
    ),
    Case(
        "before the calendar",
        run_case("--set", "market.start=2019-01-02"),
        ["market.start = 2019-01-02", "must be within 2022-01-01..2025-12-31"],
    ),
    Case(
        "no trading day in the range",
        run_case("--set", "market.start=2023-01-01", "--set", "market.end=2023-01-01"),
        ["market.start = 2023-01-01", "no trading day", "at least one"],
    ),
    Case(
        "sweep end outside the calendar",
        ["sweep", "{tmp}/w.toml"],
        ["market.end = 2026-06-30", "must be within"],
        {"w.toml": 'scenario = "calm"\n[vary]\n"market.end" = [2023-06-30, 2026-06-30]\n'},
    ),
    # -- malformed TOML
    Case(
        "malformed scenario file",
        ["run", "{tmp}/s.toml"],
        ["s.toml: malformed TOML", "line 1"],
        {"s.toml": "[universe\nn_stocks = 3\n"},
    ),
    Case(
        "malformed sweep file",
        ["sweep", "{tmp}/w.toml"],
        ["w.toml: malformed TOML", "line 1"],
        {"w.toml": "scenario = \n"},
    ),
    Case("malformed --set", run_case("--set", "nonsense"), ["--set 'nonsense'", "KEY=VALUE"]),
    # -- unknown scenario
    Case("unknown scenario", ["run", "nosuch"], ["scenario = 'nosuch'", "known: calm"]),
    Case("missing scenario file", ["run", "{tmp}/none.toml"], ["none.toml'", "no such file"]),
    Case(
        "unknown base scenario",
        ["run", "{tmp}/s.toml"],
        ["scenario = 'nope'", "unknown scenario", "known: calm"],
        {"s.toml": 'base = "nope"\n'},
    ),
    Case(
        "unknown scenario in a sweep file",
        ["sweep", "{tmp}/w.toml"],
        ["scenario = 'nope'", "unknown scenario"],
        {"w.toml": 'scenario = "nope"\n'},
    ),
    Case("missing sweep file", ["sweep", "{tmp}/none.toml"], ["sweep = ", "no such file"]),
    # -- a sweep whose grid is empty
    Case(
        "empty value list",
        ["sweep", "{tmp}/w.toml"],
        ["vary.noise_traders.attention = []", "at least one value"],
        {"w.toml": SWEEP_HEAD + '[vary]\n"noise_traders.attention" = []\n'},
    ),
    Case(
        "range of no values",
        ["sweep", "{tmp}/w.toml"],
        ["vary.noise_traders.attention.num = 0", "must be an integer >= 1"],
        {"w.toml": SWEEP_HEAD + '[vary]\n"noise_traders.attention" = {start=1, stop=2, num=0}\n'},
    ),
    Case(
        "range going the wrong way",
        ["sweep", "{tmp}/w.toml"],
        ["vary.noise_traders.attention.step = 0.5", "going from start to stop"],
        {
            "w.toml": SWEEP_HEAD
            + '[vary]\n"noise_traders.attention" = {start=2, stop=1, step=0.5}\n'
        },
    ),
    Case(
        "no seeds",
        ["sweep", "{tmp}/w.toml"],
        ["seeds = []", "must be a list of integers"],
        {"w.toml": 'scenario = "calm"\nseeds = []\n'},
    ),
    Case(
        "zero seeds",
        ["sweep", "{tmp}/w.toml"],
        ["seeds.count = 0", ">= 1"],
        {"w.toml": 'scenario = "calm"\nseeds = {count = 0}\n'},
    ),
    # -- an output directory that cannot be written
    Case(
        "run output under a file",
        [*run_case(*TINY), "--out", "{tmp}/file/out"],
        ["--out = ", "file/out'", "cannot create directory"],
        {"file": "not a directory"},
    ),
    Case(
        "sweep output under a file",
        ["sweep", "{tmp}/w.toml", "--out", "{tmp}/file/out"],
        ["--out = ", "cannot create directory"],
        {"file": "not a directory", "w.toml": SWEEP_HEAD},
    ),
    Case(
        "run output in /proc",
        [*run_case(*TINY), "--out", "/proc/unwind-out"],
        ["--out = '/proc/unwind-out'", "cannot create directory"],
    ),
]


def prepare(case: Case, tmp: Path) -> list[str]:
    """Write the case's files; its argv with paths filled in and a default --out."""
    for name, text in case.files.items():
        (tmp / name).write_text(text)
    argv = [a.replace("{tmp}", str(tmp)) for a in case.argv]
    if argv[0] in ("run", "sweep") and "--out" not in argv:
        argv += ["--out", str(tmp / "out")]
    return argv


def exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own errors
        return int(exc.code)


def assert_one_line_and_nothing_written(code: int, err: str, says: list[str], tmp: Path, files):
    assert code == 2, err
    assert err.startswith("unwind: error: ") and err.endswith("\n"), err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err
    for fragment in says:
        assert fragment in err, f"{fragment!r} not in {err!r}"
    left = sorted(p.name for p in tmp.iterdir())
    assert left == sorted(files), f"left behind: {left}"


@pytest.mark.parametrize("case", CATALOGUE, ids=[c.name for c in CATALOGUE])
def test_catalogue(case: Case, tmp_path: Path, capsys):
    argv = prepare(case, tmp_path)
    code = exit_code(argv)
    err = capsys.readouterr().err
    assert_one_line_and_nothing_written(code, err, case.says, tmp_path, case.files)


PROCESS_CASES = ["NaN", "empty value list"]


@pytest.mark.parametrize("name", PROCESS_CASES)
def test_catalogue_as_a_process(name: str, tmp_path: Path):
    """The console script itself: exit status and stderr as a shell sees them."""
    case = next(c for c in CATALOGUE if c.name == name)
    argv = prepare(case, tmp_path)
    exe = Path(sys.executable).with_name("unwind")
    proc = subprocess.run([str(exe), *argv], capture_output=True, text=True, check=False)
    assert_one_line_and_nothing_written(
        proc.returncode, proc.stderr, case.says, tmp_path, case.files
    )


def _read_only(monkeypatch, directory: Path, error: int = errno.EACCES) -> None:
    """Make ``directory`` refuse new files, for real or (as root) at the write layer."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        return
    mkstemp = outputs.tempfile.mkstemp

    def refuse(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve().is_relative_to(directory.resolve()):
            raise OSError(error, os.strerror(error))
        return mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(outputs.tempfile, "mkstemp", refuse)


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_read_only_output_directory(command, tmp_path: Path, capsys, monkeypatch):
    out = tmp_path / "ro"
    out.mkdir()
    spec = tmp_path / "w.toml"
    spec.write_text(SWEEP_HEAD)
    _read_only(monkeypatch, out)
    argv = ["run", "calm", *TINY] if command == "run" else ["sweep", str(spec)]
    try:
        code = exit_code([*argv, "--out", str(out)])
    finally:
        out.chmod(0o755)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert f"--out = '{out}': directory is not writable (Permission denied)" in err
    assert list(out.iterdir()) == []


def test_full_disk_while_writing_a_run_leaves_the_old_results(tmp_path: Path, capsys, monkeypatch):
    """ENOSPC after two of four files: none of the new files appears, the old ones stay."""
    out = tmp_path / "run"
    assert exit_code(["run", "calm", *TINY, "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    writer = outputs.json_writer

    def full(data):
        def write(tmp: str) -> None:
            Path(tmp).write_text("{")  # a start, then the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        return write

    monkeypatch.setattr("experiments.run.json_writer", full)
    code = exit_code(["run", "calm", *TINY, "--seed", "2", "--out", str(out)])
    monkeypatch.setattr("experiments.run.json_writer", writer)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert f"--out = '{out}': cannot write (No space left on device)" in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no temp files either
