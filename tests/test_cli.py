"""The command line: a run writes its files; a user mistake is one line and exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from experiments.cli import main

TINY = [
    "--set",
    "universe.n_stocks=30",
    "--set",
    "market.end=2023-01-06",
    "--set",
    "noise_traders.n_agents=100",
    "--set",
    "fundamental_traders.n_agents=10",
]


def test_run_writes_model_table_and_summary(tmp_path):
    out = tmp_path / "calm"
    assert main(["run", "calm", "--seed", "1", "--out", str(out), "--quiet", *TINY]) == 0
    frame = pd.read_parquet(out / "model.parquet")
    for col in ("step", "date", "csi300", "csi500", "csi1000", "csi2000", "microcap", "turnover"):
        assert col in frame.columns
    assert len(frame) == 4 * 4  # 4 trading days x 4 slices
    summary = json.loads((out / "summary.json").read_text())
    assert summary["scenario"] == "calm" and summary["seed"] == 1
    assert summary["parameters"]["universe"]["n_stocks"] == 30
    assert set(summary["indices"]) == {"csi300", "csi500", "csi1000", "csi2000", "microcap"}
    last = frame["microcap"].iloc[-1]
    assert summary["indices"]["microcap"]["total_return"] == pytest.approx(last / 1000 - 1)
    assert summary["versions"]["mesa"].startswith("3.")
    assert not list(out.glob(".*tmp"))  # no temporary files left


def test_a_run_over_the_crash_window_prints_its_drawdowns_and_flows(tmp_path, capsys):
    window = ["--set", "market.start=2023-12-25", "--set", "market.end=2024-02-09"]
    small = ["--set", "universe.n_stocks=60", "--set", "retail.n_agents=600"]
    # Every product starts at NAV 1 with its lines just under it, so they stop out early.
    lines = ["--set", "neutral.nav0_spread=0", "--set", "neutral.warning_line=0.98"]
    lines += ["--set", "neutral.stop_line=0.96"]
    argv = ["run", "jan2024", "--out", str(tmp_path / "ep"), "--quiet", *window, *small, *lines]
    assert main(argv) == 0
    printed = capsys.readouterr().out.splitlines()
    line = next(x for x in printed if x.startswith("crash window"))
    episode = json.loads((tmp_path / "ep" / "summary.json").read_text())["episode"]
    micro, flows = episode["crash_drawdown"]["microcap"], episode["flow_drawdown"]["microcap"]
    assert f"microcap {micro:+.1%} (flows {flows:+.1%})" in line
    pace = next(x for x in printed if x.startswith("worst session in the window"))
    worst, locked = episode["pace"]["worst_session"]["microcap"], episode["pace"]["limit_down_peak"]
    assert f"microcap {worst:+.1%}" in pace and f"limit-down: {locked} of 60 (" in pace
    products = next(x for x in printed if x.startswith("quant-neutral products"))
    cut, stop = episode["first_cut_date"], episode["first_stop_date"]
    where = "inside" if "2024-01-02" <= stop <= "2024-02-08" else "outside"
    assert f"first cut {cut}, first stop-out {stop} ({where} the window)" in products
    assert f"{episode['liquidated_funds_by_crash_end']} liquidated by 2024-02-08" in products
    basis = next(x for x in printed if x.startswith("futures basis"))
    im = episode["im_basis"]
    assert f"IM late January {im['late_january_mean']:+.1%}, worst " in basis
    assert f"({im['worst_day']})" in basis and f"r = {im['vs_forced_sales']:+.2f}" in basis
    head = printed.index(
        "net buying in the window, % of each tier's float: "
        "csi300 / csi500 / csi1000 / csi2000 / microcap"
    )
    net = episode["net_buying"]
    name, share = max(net["microcap"].items(), key=lambda kv: abs(kv[1]))
    line = next(x for x in printed[head + 1 :] if x.split()[0] == name)
    assert line.split()[-1] == f"{100 * share:+.1f}"
    listed = {x.split()[0] for x in printed[head + 1 :] if x.startswith("  ")}
    quiet = {t for t in net["microcap"] if all(abs(net[i][t]) < 0.0005 for i in net)}
    assert name in listed and not listed & quiet


BAD = [
    (["run", "nosuch"], "scenario = 'nosuch': unknown scenario"),
    (["run", "calm", "--set", "universe.n_stock=30"], "did you mean 'universe.n_stocks'"),
    (["run", "calm", "--set", "universe.n_stocks=5"], "universe.n_stocks = 5: must be in"),
    (["run", "calm", "--set", "universe.n_stocks=abc"], "universe.n_stocks = 'abc': must be an"),
    (["run", "calm", "--set", "universe.limit_main=1.5"], "universe.limit_main = 1.5: must be in"),
    (["run", "calm", "--set", "universe.min_cap_bn=-1"], "universe.min_cap_bn = -1.0: must be"),
    (["run", "calm", "--set", "fundamentals.idio_vol=nan"], "fundamentals.idio_vol = nan"),
    (["run", "calm", "--set", "market.end=2022-12-01"], "market.end = 2022-12-01: must not be"),
    (
        ["run", "calm", "--set", "market.start=2031-01-05", "--set", "market.end=2031-02-01"],
        "market.start = 2031-01-05: must be within",
    ),
    (["run", "calm", "--set", "nonsense"], "must be KEY=VALUE"),
    (["run", "calm", "--scale", "huge"], "--scale = 'huge': must be one of"),
    (["run", "calm", "--seed", "-3"], "--seed = '-3': must be an integer"),
]


def test_a_scenario_name_wins_over_a_directory_of_that_name(tmp_path, monkeypatch):
    """``--out calm`` leaves a directory ``calm``; running calm again from there still works."""
    monkeypatch.chdir(tmp_path)
    argv = ["run", "calm", "--seed", "1", "--quiet", *TINY]
    assert main([*argv, "--out", "calm"]) == 0
    assert (tmp_path / "calm").is_dir()
    assert main([*argv, "--out", "calm-again"]) == 0
    assert (tmp_path / "calm-again" / "summary.json").is_file()


@pytest.mark.parametrize(("argv", "message"), BAD, ids=[m for _, m in BAD])
def test_user_mistakes_get_one_line_and_exit_2(argv, message, capsys, tmp_path):
    code = (
        main([*argv, "--out", str(tmp_path / "x")])
        if argv[0] == "run" and "--seed" not in argv
        else _exit_code(argv)
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and err.count("\n") == 0 and "Traceback" not in err
    assert not (tmp_path / "x" / "model.parquet").exists()


def _exit_code(argv):
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def test_malformed_toml_and_unwritable_out(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[universe\nn_stocks = 3")
    assert main(["run", str(bad)]) == 2
    assert "malformed TOML" in capsys.readouterr().err
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    assert main(["run", "calm", "--out", str(blocker / "sub"), *TINY]) == 2
    assert "--out" in capsys.readouterr().err


def test_console_script_runs_as_a_process(tmp_path):
    exe = Path(sys.executable).with_name("unwind")
    proc = subprocess.run(
        [str(exe), "run", "calm", "--set", "universe.n_stock=1"],
        capture_output=True,
        text=True,
        env={**os.environ},
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("unwind: error: universe.n_stock: unknown key")


def test_a_reader_that_stops_early_gets_no_traceback():
    """``unwind scenarios | head -1``: the pipe closes under the listing, and the command
    stops quietly with the shell's status for it."""
    exe = Path(sys.executable).with_name("unwind")
    proc = subprocess.Popen(
        [str(exe), "scenarios"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    first = proc.stdout.readline()
    proc.stdout.close()  # the reader goes away after one line
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait() in (0, 141)  # 0 if the listing fitted the pipe before it closed
    assert first.startswith("calm")
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_a_run_keeps_the_collector_off_and_gives_it_back(tmp_path, monkeypatch):
    """``unwind run`` runs with the garbage collector off (it ends after the run) and hands
    the caller the collector as it was, nothing left frozen."""
    import gc

    import experiments.run

    seen = []
    real = experiments.run.run

    def run(*args, **kwargs):
        seen.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(experiments.run, "run", run)
    assert gc.isenabled()
    assert main(["run", "calm", "--out", str(tmp_path / "calm"), "--quiet", *TINY]) == 0
    assert seen == [False]
    assert gc.isenabled() and gc.get_freeze_count() == 0


def test_the_console_script_run_never_collects(tmp_path):
    """``unwind run`` as a process (:func:`entry`) runs no collection from the command's
    start to its end: turned back on after the run, the collector would pass over
    everything the run allocated."""
    code = (
        "import gc, sys\n"
        "from experiments.cli import entry\n"
        "gc.callbacks.append(lambda phase, info: phase == 'start' and print('collected'))\n"
        f"sys.argv = ['unwind', 'run', 'calm', '--out', {str(tmp_path / 'calm')!r}, '--quiet',"
        f" *{TINY!r}]\n"
        "sys.exit(entry())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "calm" / "model.parquet").exists()
    assert "collected" not in proc.stdout


def test_run_imports_numpy_only_once_the_command_starts():
    """numpy waits for ``unwind run`` to choose one BLAS thread: nothing :func:`main`
    imports before the command's function runs brings it in."""
    code = (
        "import sys\n"
        "import experiments.cli as cli\n"
        "cli._cmd_run = lambda args: print('numpy' in sys.modules) or 0\n"
        "sys.exit(cli.main(['run', 'calm']))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"


def test_import_frames_named_for_inspect_read_as_before(tmp_path, monkeypatch):
    """After :func:`name_stack_modules`, ``inspect.stack()`` from inside an import (as mesa
    calls it) gives the import machinery's frames as before: the same files, lines and
    functions, no source lines; and inspect finds their modules by table."""
    import importlib
    import inspect

    from experiments.cli import IMPORT_FRAME_MODULES, name_stack_modules

    (tmp_path / "walks_the_stack.py").write_text(
        "import inspect\n"
        "FRAMES = [(f.filename, f.lineno, f.function, f.code_context) for f in inspect.stack()]\n"
    )
    monkeypatch.syspath_prepend(tmp_path)
    table = {f: m for f, m in inspect.modulesbyfile.items() if f not in IMPORT_FRAME_MODULES}
    monkeypatch.setattr(inspect, "modulesbyfile", table)  # restored after the test

    def import_frames() -> list[tuple]:
        frames = importlib.import_module("walks_the_stack").FRAMES
        del sys.modules["walks_the_stack"]
        return [f for f in frames if f[0] in IMPORT_FRAME_MODULES]

    before = import_frames()
    name_stack_modules("json")
    assert {f: inspect.modulesbyfile[f] for f in IMPORT_FRAME_MODULES} == IMPORT_FRAME_MODULES
    after = import_frames()
    assert before and after == before
    assert all(context is None for *_, context in after)


def test_stack_files_named_for_inspect_read_as_before(tmp_path):
    """After :func:`name_stack_modules`, a stack walk from inside a package's import (as mesa
    walks it) reads the same frames and finds the same modules, without ``inspect``
    mapping every loaded module's file (a ``realpath`` each). In a process of its own,
    started from a script as ``unwind`` is."""
    package = tmp_path / "walkpkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("from walkpkg.sub import inner\n")
    (package / "sub" / "__init__.py").write_text("")
    (package / "sub" / "inner.py").write_text(
        "import inspect\n"
        "STACK = inspect.stack()\n"
        "FRAMES = [(f.filename, f.lineno, f.function, f.code_context) for f in STACK]\n"
        "REAL = [f.frame for f in STACK if not f.filename.startswith('<')]  # as mesa asks\n"
        "MODULES = [inspect.getmodule(frame).__name__ for frame in REAL]\n"
    )
    script = tmp_path / "walk.py"
    script.write_text(
        "import inspect, json, os, sys\n"
        f"sys.path.insert(0, {str(tmp_path)!r})\n"
        "from experiments.cli import name_stack_modules\n"
        "if sys.argv[1] == 'named':\n"
        "    name_stack_modules('walkpkg')\n"
        "realpaths = []\n"
        "realpath = os.path.realpath\n"
        "os.path.realpath = lambda p, **k: realpaths.append(p) or realpath(p, **k)\n"
        "from walkpkg.sub import inner\n"
        "named = {f: m for f, m in inspect.modulesbyfile.items() if 'walkpkg' in f}\n"
        "print(json.dumps([inner.FRAMES, inner.MODULES, len(realpaths), named]))\n"
    )

    def walk(mode: str) -> list:
        proc = subprocess.run(
            [sys.executable, str(script), mode], capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)

    frames, modules, mapped, _ = walk("plain")
    assert mapped > 50  # inspect mapped every loaded module's file
    assert modules[0] == "walkpkg.sub.inner" and modules[-1] == "__main__"
    named_frames, named_modules, named_mapped, named = walk("named")
    assert (named_frames, named_modules, named_mapped) == (frames, modules, 0)
    assert named == {
        os.path.normcase(str(package / "__init__.py")): "walkpkg",
        os.path.normcase(str(package / "sub" / "__init__.py")): "walkpkg.sub",
        os.path.normcase(str(package / "sub" / "inner.py")): "walkpkg.sub.inner",
    }
