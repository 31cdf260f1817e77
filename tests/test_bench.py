"""`unwind bench` at a tiny size: the suite runs and writes its JSON and chart (no timings
are asserted: speed is measured by the benchmark, not by tests)."""

from __future__ import annotations

import json

from experiments.cli import main
from model import aot


def test_quick_bench_writes_json_and_chart(tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["bench", "--quick", "--repeats", "2", "--quiet", "--out", str(out)]) == 0
    data = json.loads((out / "bench.json").read_text())
    assert (out / data["chart"]).stat().st_size > 0
    assert data["quick"] is True
    assert {"python", "cpus", "load_average_start", "load_average_end"} <= set(data["machine"])
    # Whether the timed runs had the ahead-of-time build: what this checkout's is.
    assert data["machine"]["aot_build"] == aot.load(aot.BUILD_DIR)[1]
    assert {"median_ms", "stocks_per_s", "orders_per_s"} <= set(data["kernel"])
    engines = data["engines"]
    assert {"n_stocks", "n_agents", "vectorized_ms_per_step", "agents_ms_per_step"} <= set(engines)
    assert engines["speed_ratio"] > 0
    scaling = data["scaling"]
    for key in ("stocks", "stocks_alone", "agents"):
        assert len(scaling[key]) >= 2 and isinstance(scaling[f"slope_{key}"], float)
        assert all(p["steps_per_s"] > 0 and p["ms_per_step"] > 0 for p in scaling[key])
    # The stocks alone: the agents are the same at every size, and fewer at the largest
    # than where the funds grow with the market.
    alone, grown = scaling["stocks_alone"], scaling["stocks"]
    assert len({p["n_agents"] for p in alone}) == 1
    assert alone[0]["n_agents"] == grown[0]["n_agents"]
    assert alone[-1]["n_agents"] < grown[-1]["n_agents"]
    (episode,) = data["episodes"].values()
    assert episode["steps"] > 0 and episode["wall_s"] > 0 and episode["peak_rss_mb"] > 0
    assert {"target_wall_s", "meets_target", "model_s", "cpu_s"} <= set(episode)
    printed = capsys.readouterr()
    assert "engines:" in printed.out
    # A bench without the current build says so, whatever --quiet says.
    stale = data["machine"]["aot_build"] != "loaded"
    assert ("the ahead-of-time build is" in printed.err) == stale


def test_bench_refuses_bad_repeats(capsys):
    assert main(["bench", "--repeats", "0"]) == 2
    assert "--repeats = 0" in capsys.readouterr().err
