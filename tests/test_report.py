"""The HTML report: one offline file, every figure, an attribution table, clean failures."""

from __future__ import annotations

import math
import re
import shutil
from pathlib import Path

import pandas as pd
import plotly.offline
import pytest

from experiments import report
from experiments.cli import main
from experiments.report import build_report, explained_share, load_run
from model.config import ConfigError

TINY = [
    "--quiet",
    "--set",
    "universe.n_stocks=30",
    "--set",
    "market.end=2023-01-20",
    "--set",
    "noise_traders.n_agents=100",
    "--set",
    "fundamental_traders.n_agents=10",
]
TITLES = (
    report.TITLE_INDICES,
    report.TITLE_BASIS,
    report.TITLE_FORCED,
    report.TITLE_FUNDS,
    report.TITLE_LIMIT,
    report.TITLE_SCATTER,
    report.TITLE_ATTRIBUTION,
    report.TITLE_OVERLAY,
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two tiny calm runs that differ only in seed: a baseline and a 'counterfactual'."""
    base = tmp_path_factory.mktemp("runs")
    out = []
    for seed in (1, 2):
        path = base / f"seed{seed}"
        assert main(["run", "calm", "--out", str(path), "--seed", str(seed), *TINY]) == 0
        out.append(path)
    return out


@pytest.fixture(scope="module")
def page(runs: list[Path], tmp_path_factory: pytest.TempPathFactory) -> str:
    path = build_report(runs, tmp_path_factory.mktemp("report"))
    assert path.name == "report.html" and path.is_file()
    return path.read_text(encoding="utf-8")


def _copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_report_is_self_contained(page: str):
    bundle_head = plotly.offline.get_plotlyjs()[:200]
    assert page.count(bundle_head) == 1  # plotly.js embedded exactly once
    assert "Plotly.newPlot" in page
    srcs = re.findall(r"<script[^>]*\bsrc\s*=\s*['\"]?([^'\" >]+)", page, flags=re.I)
    assert srcs == [], srcs  # nothing fetched at all, CDN or otherwise
    assert not re.search(r"""<(script|link)[^>]*(src|href)\s*=\s*['"]?https?://cdn""", page)


def test_report_has_every_figure_and_header(page: str, runs: list[Path]):
    for title in TITLES:
        assert title in page, title
    assert 'class="runs"' in page
    for run in runs:
        assert str(run) in page


def test_switched_off_channels_are_noted(page: str):
    # calm runs have no futures and no neutral funds: those figures are skipped, with a reason
    assert "Skipped: no basis data: futures are off in this run." in page
    assert "Skipped: no liquidated_funds or neutral_nav data" not in page  # counts are zeros


def test_attribution_table_lists_second_run_with_numeric_share(page: str, runs: list[Path]):
    table = re.search(r'<table class="attribution">(.*?)</table>', page, flags=re.S)
    assert table is not None
    rows = re.findall(r"<tr>(.*?)</tr>", table.group(1), flags=re.S)
    cells = [re.findall(r"<td>(.*?)</td>", row) for row in rows[1:]]
    assert [c[0] for c in cells] == [str(r) for r in runs]
    assert cells[0][-1] == "baseline"
    assert re.fullmatch(r"\d+\.\d%", cells[0][-2]), cells[0]  # a drawdown is a size: no sign
    match = re.fullmatch(r"([+-]\d+\.\d)%", cells[1][-1])
    assert match is not None, cells[1]
    base, other = (load_run(r).summary["indices"]["microcap"]["max_drawdown"] for r in runs)
    assert float(match.group(1)) / 100 == pytest.approx(explained_share(base, other), abs=1e-3)


def test_explained_share():
    assert explained_share(0.20, 0.05) == pytest.approx(0.75)
    assert explained_share(0.20, 0.30) == pytest.approx(-0.5)  # the counterfactual fell further
    assert math.isnan(explained_share(0.0, 0.1))


def test_html_file_out_and_single_run(runs: list[Path], tmp_path: Path):
    out = build_report(runs[:1], tmp_path / "sub" / "one.html")
    assert out == tmp_path / "sub" / "one.html"
    text = out.read_text(encoding="utf-8")
    assert report.TITLE_SCATTER in text and report.TITLE_ATTRIBUTION not in text


def test_missing_columns_are_skipped_with_a_note(runs: list[Path], tmp_path: Path):
    run = _copy_run(runs[0], tmp_path / "run")
    frame = pd.read_parquet(run / "model.parquet").drop(columns=["limit_down_count"])
    frame.to_parquet(run / "model.parquet", index=False)
    text = build_report([run], tmp_path).read_text(encoding="utf-8")
    assert "Skipped: no limit_down_count column in model.parquet." in text


def test_missing_model_parquet_is_a_one_line_config_error(runs: list[Path], tmp_path: Path):
    broken = _copy_run(runs[1], tmp_path / "broken")
    (broken / "model.parquet").unlink()
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(ConfigError) as info:
        build_report([runs[0], broken], out)
    message = str(info.value)
    assert str(broken / "model.parquet") in message
    assert "\n" not in message
    assert list(out.iterdir()) == []  # nothing written, not even a temp file


def test_unreadable_summary_is_a_config_error(runs: list[Path], tmp_path: Path):
    broken = _copy_run(runs[0], tmp_path / "broken")
    (broken / "summary.json").write_text("{not json\n")
    with pytest.raises(ConfigError, match=r"summary\.json.*unreadable") as info:
        load_run(broken)
    assert "\n" not in str(info.value)


def test_not_a_directory_and_no_runs(tmp_path: Path):
    with pytest.raises(ConfigError, match="not a directory"):
        load_run(tmp_path / "nope")
    with pytest.raises(ConfigError, match="at least one run"):
        build_report([], tmp_path)


def test_failed_write_leaves_no_temp_file(
    runs: list[Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    def fail(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(report.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        build_report(runs, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_crash_table_splits_each_tier_into_news_and_flows(runs):
    """A run spanning the crash window gets the split table; one that does not, nothing."""
    run = load_run(runs[0])
    assert report.crash_table(run) == ""  # a calm January: no episode figures
    tiers = ("csi300", "csi500", "csi1000", "csi2000", "microcap")
    crash = dict(zip(tiers, (-0.10, -0.12, -0.15, -0.20, -0.25), strict=True))
    news = dict.fromkeys(tiers, -0.14)
    flows = {name: crash[name] - news[name] for name in tiers}
    episode = {"crash_drawdown": crash, "news_drawdown": news, "flow_drawdown": flows}
    table = report.crash_table(report.RunData(**{**run.__dict__, "summary": {"episode": episode}}))
    assert report.TITLE_CRASH in table
    rows = re.findall(r"<tr><td>(\w+)</td><td>([^<]+)</td><td>([^<]+)</td><td>([^<]+)</td>", table)
    assert [r[0] for r in rows] == list(tiers)
    assert rows[0][1:] == ("-10.0%", "-14.0%", "+4.0%")
    assert rows[-1][1:] == ("-25.0%", "-14.0%", "-11.0%")
    assert "worst session" not in table  # a summary written before the pace was recorded
    worst = dict(zip(tiers, (-0.01, -0.02, -0.03, -0.04, -0.07), strict=True))
    pace = {"worst_session": worst, "worst_session_day": dict.fromkeys(tiers, "2024-02-05")}
    pace |= {"limit_down_peak": 321, "limit_down_peak_day": "2024-02-06"}
    episode["pace"] = pace
    table = report.crash_table(report.RunData(**{**run.__dict__, "summary": {"episode": episode}}))
    assert "<th>worst session</th>" in table and "-7.0% (2024-02-05)</td>" in table
    assert (
        "At most 321 stocks were locked limit-down in one session of the window (2024-02-06)"
        in table
    )


def test_basis_chart_draws_the_speculators_position_only_where_they_trade(runs: list[Path]):
    run = load_run(runs[0])
    dates = ["2024-01-02", "2024-01-02", "2024-01-03", "2024-01-03"]
    frame = pd.DataFrame({"date": dates, "ic_basis": [0.0, -0.1, -0.2, -0.3]})
    run.model = frame.assign(speculator_futures=0.0)
    assert [t.name for t in report.fig_basis(run).data] == ["IC (CSI 500)"]
    run.model = frame.assign(speculator_futures=[0.0, -1e9, -2e9, -3e9])
    spec = report.fig_basis(run).data[-1]
    assert spec.yaxis == "y2" and list(spec.y) == [-1.0, -3.0]  # bn CNY at each close


def test_buyers_table_has_a_column_per_tier_and_lists_micro_cap_sellers_first(runs):
    """A run with the window's net buying gets the table, one column per tier, sellers of
    the micro-caps first; one without, none."""
    run = load_run(runs[0])
    assert report.buyers_table(run) == ""  # a calm January: no episode figures
    buying = {
        "csi300": {"NeutralFunds": 0.0, "FundamentalTraders": -0.02, "RetailChasers": 0.02},
        "microcap": {"NeutralFunds": -0.04, "FundamentalTraders": 0.05, "RetailChasers": -0.01},
    }
    summary = {"episode": {"net_buying": buying}}
    table = report.buyers_table(report.RunData(**{**run.__dict__, "summary": summary}))
    assert report.TITLE_BUYERS in table
    assert re.findall(r"<th>([^<]+)</th>", table) == ["agent type", "csi300", "microcap"]
    rows = re.findall(r"<tr><td>(\w+)</td><td>([^<]+)</td><td>([^<]+)</td>", table)
    assert rows == [
        ("NeutralFunds", "+0.0%", "-4.0%"),
        ("RetailChasers", "+2.0%", "-1.0%"),
        ("FundamentalTraders", "-2.0%", "+5.0%"),
    ]


def test_runup_table_splits_the_micro_cap_index_s_rise_into_its_parts(runs):
    """A run with the run-up's split gets the table, its rows as summary.json has them;
    a run without it, or whose run-up has no days, none."""
    run = load_run(runs[0])
    assert report.runup_table(run) == ""  # a calm January: no episode figures
    runup = {
        "first": "2023-07-03",
        "last": "2023-12-29",
        "days": 124,
        "index": 0.319,
        "index_log": 0.277,
        "members_log": 0.251,
        "equal_weights_log": 0.026,
        "news": 0.0284,
        "news_log": 0.028,
        "entered": 306,
        "left": 0,
        "entering_mispricing": -0.033,
        "leaving_mispricing": None,
        "dispersion": 0.0198,
    }
    summary = {"episode": {"microcap_runup": runup}}
    table = report.runup_table(report.RunData(**{**run.__dict__, "summary": summary}))
    assert report.TITLE_RUNUP in table and "2023-07-03 to 2023-12-29" in table
    cells = re.findall(r"<td>([^<]*)</td>", table)
    rows = [cells[i : i + 3] for i in range(0, len(cells), 3)]
    assert rows[0] == ["index", "+31.9%", "+0.277"]
    assert rows[1][2] == "+0.251" and rows[2][2] == "+0.026"
    assert rows[3] == ["news twin", "+2.8%", "+0.028"]
    assert rows[4] == ["306 names entering: log price/value", "", "-0.033"]
    assert rows[5][2] == "n/a" and rows[6][1] == "2.0%"
    empty = {"episode": {"microcap_runup": {"days": 0}}}
    assert report.runup_table(report.RunData(**{**run.__dict__, "summary": empty})) == ""


def test_funds_chart_draws_the_value_investors_bid_only_where_their_budget_binds(runs):
    run = load_run(runs[0])
    dates = ["2024-01-02", "2024-01-02", "2024-01-03", "2024-01-03"]
    frame = pd.DataFrame({"date": dates, "neutral_nav": [1.0, 0.99, 0.98, 0.97]})
    run.model = frame.assign(value_appetite=1.0)
    assert [t.name for t in report.fig_funds(run).data] == ["neutral NAV"]
    run.model = frame.assign(value_appetite=[1.0, 1.0, 0.6, 0.4])
    bid = report.fig_funds(run).data[-1]
    assert bid.yaxis == "y2" and list(bid.y) == [1.0, 0.4]  # the share at each close
