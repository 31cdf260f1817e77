"""The ``unwind`` command line.

User mistakes (bad keys, values, paths) and unusable output directories end with
one line on stderr and exit code 2, leaving no partial output; a broken invariant
of the books (``--check``) ends with one line and exit code 3; only another bug in
the model shows a traceback.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from pathlib import Path

from model.collector import collector_paused
from model.config import ConfigError

EXIT_USAGE = 2
EXIT_INVARIANT = 3  # the model broke an invariant of its books (model.invariants): a bug


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every other user error
        self.exit(EXIT_USAGE, f"unwind: error: {message}\n")


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seed = {text!r}: must be an integer >= 0") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"--seed = {text!r}: must be an integer >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="unwind", description="Reflexive liquidation in an A-share market.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run one scenario and write its results")
    run.add_argument("scenario", help="scenario name (experiments/scenarios) or .toml path")
    run.add_argument("--seed", type=_seed, default=1, help="random seed (default 1)")
    run.add_argument("--out", type=Path, default=None, help="output directory (default runs/NAME)")
    run.add_argument(
        "--set",
        dest="sets",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a scenario key, e.g. --set universe.n_stocks=2000",
    )
    run.add_argument("--scale", default="default", help="default or full")
    run.add_argument(
        "--engine",
        default="vectorized",
        choices=["vectorized", "agents"],
        help="vectorized (default) or the per-agent reference engine",
    )
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.add_argument(
        "--check",
        action="store_true",
        default=None,
        help="check the books' invariants every step (about 25%% slower)",
    )
    run.add_argument(
        "--amplification",
        action="store_true",
        help="also run the twin without forced selling (doubles the time)",
    )
    run.set_defaults(func=_cmd_run)

    sw = sub.add_parser("sweep", help="run a parameter sweep (resumable), locally or on Dask")
    sw.add_argument(
        "spec",
        type=Path,
        metavar="SPEC.toml",
        help="sweep file, e.g. experiments/sweeps/seeds.toml",
    )
    sw.add_argument(
        "--workers", type=int, default=None, help="local worker processes (default: one per CPU)"
    )
    sw.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="existing Dask scheduler, e.g. tcp://HOST:8786",
    )
    sw.add_argument(
        "--out", type=Path, default=None, help="output directory (default runs/sweeps/NAME)"
    )
    sw.add_argument("--quiet", action="store_true", help="no progress bar")
    sw.add_argument(
        "--check",
        action="store_true",
        default=None,
        help="check the books' invariants every step of every cell",
    )
    sw.set_defaults(func=_cmd_sweep)

    rep = sub.add_parser("report", help="offline HTML report of run or sweep directories")
    rep.add_argument(
        "paths",
        nargs="+",
        type=Path,
        metavar="PATH",
        help="run directories (first: baseline) or one sweep directory",
    )
    rep.add_argument("--out", type=Path, default=None, help="directory or .html file")
    rep.set_defaults(func=_cmd_report)

    vw = sub.add_parser("view", help="interactive browser view (Mesa/Solara) of a scenario")
    vw.add_argument("scenario", nargs="?", default="jan2024", help="scenario name or .toml path")
    vw.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    vw.add_argument("--host", default="127.0.0.1", help="host (default 127.0.0.1)")
    vw.set_defaults(func=_cmd_view)

    bench = sub.add_parser("bench", help="run the benchmarks and write bench.json")
    bench.add_argument("--out", type=Path, default=Path("runs/bench"), help="output directory")
    bench.add_argument("--repeats", type=int, default=15, help="timed repeats per case")
    bench.add_argument(
        "--sweep-cells",
        type=int,
        default=0,
        help="also time a sweep of N tiny cells on 1 and 2 workers",
    )
    bench.add_argument(
        "--quick", action="store_true", help="every benchmark at a tiny size (a smoke test)"
    )
    bench.add_argument(
        "--no-episodes",
        dest="episodes",
        action="store_false",
        help="skip the whole-episode runs (default and full-scale jan2024)",
    )
    bench.add_argument("--quiet", action="store_true", help="no progress lines")
    bench.set_defaults(func=_cmd_bench)

    scen = sub.add_parser("scenarios", help="list the bundled scenarios")
    scen.set_defaults(func=_cmd_scenarios)
    return parser


# The files Python gives the frames of its import machinery, and the modules they are.
IMPORT_FRAME_MODULES = {
    "<frozen importlib._bootstrap>": "_frozen_importlib",
    "<frozen importlib._bootstrap_external>": "_frozen_importlib_external",
}


def name_stack_modules(package: str) -> None:
    """Tell ``inspect`` the module of every file the stack walks of ``import package`` meet.

    ``import mesa`` calls ``inspect.stack()`` (and ``inspect.getouterframes``) to name its
    loggers, and ``inspect.getmodule`` looks each frame's file up in
    ``inspect.modulesbyfile``. Two kinds of miss are costly, and each entry here is what
    inspect's own search would have written:

    - The import machinery's frames (some 15 on the stack, three lookups each) have files
      that do not exist (the frozen importlib's), never in the table, so each lookup goes
      through every loaded module (some 1,270 by then) and fails. Entered here, each is one
      lookup; the frames' file, line, function and (absent) source lines stay as they were.
    - The first real file missing from the table (the command's frames, ``package``'s own
      modules importing one another) has inspect map every loaded module's file, a
      ``realpath`` each (0.2 s at a load of 2). Entered here: each stack frame's file under
      the name of the loaded module whose file it is, and each ``.py`` file of ``package``
      under the dotted name importing it gives.
    """
    import importlib.util
    import inspect

    table = inspect.modulesbyfile
    for filename, module in IMPORT_FRAME_MODULES.items():
        if module in sys.modules:
            table.setdefault(filename, module)
    frame = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__")
        module = sys.modules.get(name) if isinstance(name, str) else None
        path = getattr(module, "__file__", None)
        if path and os.path.abspath(path) == os.path.abspath(frame.f_code.co_filename):
            table.setdefault(os.path.normcase(os.path.abspath(path)), name)
        frame = frame.f_back
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return
    for root in spec.submodule_search_locations:
        for folder, _, files in os.walk(root):
            below = os.path.relpath(folder, root)
            parts = [package] if below == os.curdir else [package, *below.split(os.sep)]
            for file in files:
                if file.endswith(".py"):
                    name = ".".join(parts if file == "__init__.py" else [*parts, file[:-3]])
                    path = os.path.normcase(os.path.abspath(os.path.join(folder, file)))
                    table.setdefault(path, name)


def _cmd_run(args: argparse.Namespace) -> int:
    # One BLAS thread, unless the caller chose: numpy's and scipy's OpenBLAS each start a
    # worker per further core at import, which spins some 50 ms waiting for work a run never
    # hands it (no BLAS call of the model is large enough to split), on a shared machine
    # taking that time from the run itself. Read once, when numpy is first imported.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    # The collector stays off through the imports and the run: they leave some 130,000
    # objects that live as long as the process, whose collections (one of some 45 ms
    # after set-up, one of some 70 ms in the summary's pandas work) free nothing, while
    # the run leaves a few hundred objects in cycles. The process ends after the run; a
    # caller of :func:`main` gets the collector back as it was, with nothing frozen.
    with collector_paused():
        # mesa first, from here: at import it walks the call stack with inspect, which
        # searches every loaded module for each import frame on the stack. Imported
        # through the model, five imports deep and after numba, that took 0.3-0.4 s of
        # a run; from here 0.25 s, and with the import frames known beforehand less.
        name_stack_modules("mesa")
        import mesa  # noqa: F401

        import experiments.run  # noqa: F401  (pandas, numba and the model)

        try:
            return _run(args)
        finally:
            gc.unfreeze()  # and nothing left frozen for the caller, whatever it froze


def _net_buying_lines(buying: dict[str, dict[str, float]]) -> list[str]:
    """Who bought and sold each tier in the window: a header and one line per agent type
    that moved 0.05% of some tier's float, in points of each tier's float."""
    from model.universe import INDEX_NAMES

    tiers = [name for name in INDEX_NAMES if name in buying]
    types = list(dict.fromkeys(t for name in tiers for t in buying[name]))
    rows = [t for t in types if any(abs(buying[name].get(t, 0.0)) >= 0.0005 for name in tiers)]
    if not rows:
        return []
    width = max(len(t) for t in rows)
    lines = [f"net buying in the window, % of each tier's float: {' / '.join(tiers)}"]
    for t in rows:
        shares = " / ".join(f"{100 * buying[name].get(t, 0.0):+.1f}" for name in tiers)
        lines.append(f"  {t:<{width}}  {shares}")
    return lines


def _fmt(value: float | None, spec: str) -> str:
    """A figure for the console in format ``spec``, or n/a where there is none (a basis the
    run does not reach the dates of; a correlation without forced sales or on a flat basis)."""
    return "n/a" if value is None else format(value, spec)


def _run(args: argparse.Namespace) -> int:
    """``unwind run``: one scenario and seed, its results written and summed up."""
    from experiments.episode import CRASH_END, in_window
    from experiments.outputs import ensure_dir
    from experiments.run import run, write_run
    from experiments.scenarios import load_scenario, parse_set

    config = load_scenario(args.scenario, scale=args.scale, overrides=parse_set(args.sets))
    out = args.out if args.out is not None else Path("runs") / config.name
    created = not out.exists()
    ensure_dir(out)
    progress = not args.quiet and sys.stderr.isatty()
    try:
        result = run(config, args.seed, progress=progress, engine=args.engine, check=args.check)
        if args.amplification:
            from experiments.run import add_amplification

            add_amplification(result, args.seed)
        write_run(result, out)
    except BaseException:
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()  # leave nothing behind: not even the empty directory
        raise
    idx = result.summary["indices"]
    moves = ", ".join(f"{k} {v['total_return']:+.1%}" for k, v in idx.items())
    print(
        f"{config.name} seed {args.seed}: {result.summary['steps']} steps in "
        f"{result.summary['wall_time_s']:.1f} s; {moves}"
    )
    episode = result.summary.get("episode")
    if episode:  # the run spans the crash window: its drawdowns, and the agents' part
        window = ", ".join(
            f"{name} {dd:+.1%} (flows {episode['flow_drawdown'][name]:+.1%})"
            for name, dd in episode["crash_drawdown"].items()
        )
        print(f"crash window drawdowns: {window}")
        pace = episode["pace"]
        worst = ", ".join(f"{name} {r:+.1%}" for name, r in pace["worst_session"].items())
        locked = ""
        if "limit_down_peak" in pace:
            locked = (
                f"; most stocks locked limit-down: {pace['limit_down_peak']} of "
                f"{config.universe.n_stocks} ({pace['limit_down_peak_day']})"
            )
        print(f"worst session in the window: {worst}{locked}")
        cut, stop = episode.get("first_cut_date"), episode.get("first_stop_date")
        if cut or stop:  # when the quant-neutral products' unwind began
            where = ""
            if stop:
                where = " (inside the window)" if in_window(stop) else " (outside the window)"
            print(
                f"quant-neutral products: first cut {cut or 'never'}, first stop-out "
                f"{stop or 'never'}{where}; {episode['liquidated_funds_by_crash_end']} "
                f"liquidated by {CRASH_END}"
            )
        bases = [
            f"{contract} late January {_fmt(b['late_january_mean'], '+.1%')}, worst "
            f"{_fmt(b['worst_in_window'], '+.1%')} ({b['worst_day']}), after the rescue "
            f"{_fmt(b['after_rescue_mean'], '+.1%')}, daily change vs forced sales r = "
            f"{_fmt(b['vs_forced_sales'], '+.2f')}"
            for contract, b in (("IM", episode.get("im_basis")), ("IC", episode.get("ic_basis")))
            if b
        ]
        if bases:  # annualized futures basis; a positive correlation: liquidations narrow it
            print(f"futures basis (annualized): {'; '.join(bases)}")
        low = episode.get("value_appetite_low")
        if low:  # the value investors' risk budget at its tightest
            print(
                f"value investors: lowest bid {low['share']:.0%} of their full bid ({low['day']})"
            )
        for line in _net_buying_lines(episode.get("net_buying") or {}):
            print(line)
        runup = episode.get("microcap_runup") or {}
        if runup.get("days"):  # what the micro-cap index's rise before the window was made of
            print(
                f"micro-cap run-up, {runup['first']}..{runup['last']}: {runup['index']:+.1%} "
                f"(news {runup['news']:+.1%}); in log points, the members' moves "
                f"{runup['members_log']:+.3f} and the equal weights "
                f"{runup['equal_weights_log']:+.3f}; "
                f"{runup['entered']} names entered at a log price/value of "
                f"{_fmt(runup['entering_mispricing'], '+.3f')} and left at "
                f"{_fmt(runup['leaving_mispricing'], '+.3f')}"
            )
    print(f"wrote model.parquet, prices.parquet, stocks.parquet, summary.json in {out}")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    from experiments.sweep import run_sweep

    r = run_sweep(
        args.spec,
        workers=args.workers,
        scheduler=args.scheduler,
        out=args.out,
        progress=not args.quiet and sys.stderr.isatty(),
        check=args.check,
    )
    print(
        f"{r.cells} cells: {r.skipped} already done, {r.ran} run, {r.failed} failed "
        f"in {r.wall_time_s:.1f} s on {r.scheduler} ({r.workers} workers)"
    )
    print(f"wrote cells/*.parquet, summary.parquet, manifest.json in {r.out}")
    return 1 if r.failed else 0


def _cmd_report(args: argparse.Namespace) -> int:
    from experiments.report import build_report
    from experiments.sweep import is_sweep_dir, sweep_report

    sweeps = [p for p in args.paths if is_sweep_dir(p)]
    if sweeps:
        if len(args.paths) > 1:
            raise ConfigError(
                f"report PATH = {str(sweeps[0])!r}: a sweep directory is reported on its own"
            )
        print(f"wrote {sweep_report(sweeps[0], args.out)}")
        return 0
    out = args.out if args.out is not None else args.paths[0]
    print(f"wrote {build_report(args.paths, out)}")
    return 0


def _cmd_view(args: argparse.Namespace) -> int:
    from experiments.view import serve  # lazy: mesa.visualization and solara import slowly

    return serve(args.scenario, args.port, args.host)


def _cmd_bench(args: argparse.Namespace) -> int:
    from experiments.bench import SCALING_SERIES, run_benchmarks

    if args.repeats < 1:
        raise ConfigError(f"--repeats = {args.repeats}: must be an integer >= 1")
    if args.sweep_cells < 0:
        raise ConfigError(f"--sweep-cells = {args.sweep_cells}: must be an integer >= 0")
    results = run_benchmarks(
        args.out,
        repeats=args.repeats,
        sweep_cells=args.sweep_cells,
        quick=args.quick,
        episodes=args.episodes,
        progress=not args.quiet,
    )
    k, e, s = results["kernel"], results["engines"], results["scaling"]
    print(
        f"kernel: {k['n_stocks']:,} stocks x {k['n_orders']:,} orders cleared in "
        f"{k['median_ms']} ms (median of {k['repeats']}): {k['stocks_per_s']:,} stocks/s, "
        f"{k['orders_per_s']:,} orders/s"
    )
    print(
        f"engines: {e['n_stocks']:,} stocks, {e['n_agents']:,} agents: vectorized "
        f"{e['vectorized_ms_per_step']} ms/step, per-agent {e['agents_ms_per_step']} ms/step, "
        f"{e['speed_ratio']}x"
    )
    for key, size, label in SCALING_SERIES:
        points = ", ".join(f"{p[size]:,}: {p['steps_per_s']}" for p in s[key])
        print(f"steps/s by {label}: {points} (log-log slope {s[f'slope_{key}']})")
    for label, ep in results.get("episodes", {}).items():
        print(
            f"{label}: {ep['wall_s']} s wall (median of {ep['repeats']}; target "
            f"{ep['target_wall_s']} s), {ep['cpu_s']} s CPU, peak {ep['peak_rss_mb']:,} MB"
        )
    if "sweep" in results:
        sw = results["sweep"]
        rates = ", ".join(
            f"{r['workers']} worker(s) {r['cells_per_s']} cells/s" for r in sw["runs"]
        )
        print(f"sweep: {rates}; 2 over 1: {sw['speedup_2_over_1']}x")
    print(f"wrote {args.out / 'bench.json'} and {args.out / results['chart']}")
    return 0


def _cmd_scenarios(args: argparse.Namespace) -> int:
    from experiments.scenarios import load_scenario, scenario_names

    for name in scenario_names():
        print(f"{name:28s} {load_scenario(name).description}")
    return 0


def _invariant_error() -> type[Exception]:
    """:class:`model.invariants.InvariantError`, imported when an exception asks for it.

    ``model.invariants`` imports numpy, which must wait for ``unwind run`` to choose one
    BLAS thread (:func:`_cmd_run`): ``main`` names the class in an ``except`` clause,
    which Python evaluates only when an exception reaches it.
    """
    from model.invariants import InvariantError

    return InvariantError


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"unwind: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except _invariant_error() as exc:
        print(f"unwind: {exc}", file=sys.stderr)
        return EXIT_INVARIANT
    except KeyboardInterrupt:
        print("unwind: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``unwind scenarios | head``): stop quietly, as a shell
        # tool does, and point stdout at nothing so the exit's flush cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def entry() -> int:
    """The ``unwind`` console script: :func:`main`, then an exit without the collector.

    At exit the interpreter runs the cyclic garbage collector over every object still
    alive (numba's typing tables, pandas, mesa, the model), several times as it clears
    the modules: 0.4-0.6 s after a default run, to free memory the operating system
    takes back anyway. Frozen objects are left out of those passes; everything else
    (atexit handlers, flushing, files already closed) happens as before. Tests call
    :func:`main` in their own process, which keeps collecting. ``unwind run`` turns the
    collector off here, before :func:`main`, and never back on.

    After ``unwind run``, whose files are written and closed by then, the process ends
    right after the atexit handlers and a flush (:func:`experiments.process_exit.exit_now`):
    the interpreter's teardown of the modules took another 0.07 s or so. Other commands (a
    sweep's Dask cluster, the view's server) exit the usual way.
    """
    run = sys.argv[1:2] == ["run"]
    if run:
        # Off from here to the process's end: turned back on after the run, the collector
        # would pass at once over everything allocated since it went off (its youngest
        # generation: the imports, the model, the tables), some 0.1-0.25 s to free nothing.
        gc.disable()
    status = main()
    gc.freeze()
    if run:
        from experiments.process_exit import exit_now

        exit_now(status)  # returns only when a plain exit is needed
    return status


if __name__ == "__main__":
    sys.exit(entry())
