"""The national team buys on schedule: CSI 300 first, then CSI 500/1000 too."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from agents.national_team import NationalTeam
from model import MarketModel
from model.universe import CSI300

BASE = {
    "universe.n_stocks": 80,
    "market.start": "2024-01-15",
    "market.end": "2024-02-29",
    "noise_traders.n_agents": 200,
    "fundamental_traders.n_agents": 20,
    "national_team.enabled": True,
}


def build(**overrides) -> tuple[MarketModel, NationalTeam]:
    model = MarketModel(rng=1, **{**BASE, **overrides})
    cfg = model.config.national_team
    cash = np.array([NationalTeam.cash_needed_fen(cfg, model.scale)])
    team = NationalTeam(model, model.ledger.open_accounts(cash), cfg, model.scale)
    model.populations.append(team)
    return model, team


def run_through(model: MarketModel, day: dt.date) -> None:
    """Step until the close of ``day``, checking the books every step."""
    while model.running and not (model.date == day and model.steps % model.steps_per_day == 0):
        model.step()
        cash_drift, drift = model.ledger.conservation_error()
        assert cash_drift == 0
        assert not drift.any()


def held_by_tier(model: MarketModel, team: NationalTeam) -> np.ndarray:
    """(5,) CNY held per tier at last prices."""
    _, stock, shares, _ = model.ledger.positions(team.accounts)
    value = shares * model.market.last[stock] / 100.0
    return np.bincount(model.indices.tier[stock], value, minlength=5)


def test_schedule_is_piecewise_linear_in_trading_days():
    model, team = build()
    cfg, bn = model.config.national_team, 1e9 * model.scale
    start = model.days.index(cfg.start)
    assert team.schedule(start) == 0.0
    assert team.schedule(model.days.index(cfg.early_date) + 1) == pytest.approx(cfg.early_bn * bn)
    assert team.schedule(model.days.index(cfg.late_date) + 1) == pytest.approx(cfg.late_bn * bn)
    assert team.schedule(len(model.days)) == pytest.approx(cfg.late_bn * bn)
    assert 0.0 < team.schedule(start + 2) < cfg.early_bn * bn


def test_the_schedule_keeps_its_pace_in_a_run_cut_short_at_either_end():
    """The knots are trading days on the exchanges' calendar: a run that ends before the
    late date calls for what the full run calls for by its last day, and one that starts
    after the schedule's start buys only what falls due from its first day."""
    full, team_full = build()
    short, team_short = build(**{"market.end": "2024-02-08"})
    day = full.days.index(dt.date(2024, 2, 8)) + 1.0  # the close of 02-08
    assert team_short.schedule(len(short.days)) == pytest.approx(team_full.schedule(day))
    late, team_late = build(**{"market.start": "2024-02-01"})
    offset = full.days.index(dt.date(2024, 2, 1))
    assert team_full.schedule(offset) > 0
    assert team_late.schedule(0.0) == pytest.approx(team_full.schedule(offset))
    run_through(late, dt.date(2024, 2, 2))  # two days of buying
    due = team_full.schedule(offset + 2.0) - team_full.schedule(offset)
    assert 0.5 * due < team_late.spent_cny <= due * 1.01


def test_spending_tracks_the_schedule_and_goes_to_large_caps_first():
    model, team = build()
    cfg, bn = model.config.national_team, 1e9 * model.scale
    run_through(model, dt.date(2024, 1, 19))
    assert team.spent_cny == 0.0  # nothing before the start
    run_through(model, model.days[model.days.index(cfg.small_cap_date) - 1])
    by_tier = held_by_tier(model, team)
    assert by_tier[0] > 0 and by_tier[1:].sum() == 0  # CSI 300 only before small_cap_date
    run_through(model, cfg.early_date)
    assert abs(team.spent_cny - cfg.early_bn * bn) < 0.15 * cfg.early_bn * bn
    run_through(model, cfg.late_date)
    assert abs(team.spent_cny - cfg.late_bn * bn) < 0.15 * cfg.late_bn * bn
    by_tier = held_by_tier(model, team)
    small = (by_tier[1] + by_tier[2]) / by_tier.sum()
    # Most of the money is spent after small_cap_date, half of it on CSI 500/1000.
    assert 0.25 < small < cfg.small_cap_share
    assert by_tier[1] > 0 and by_tier[2] > 0 and by_tier[3:].sum() == 0
    run_through(model, model.days[-1])  # flat after late_date: the shortfall, no more
    assert cfg.late_bn * bn * 0.98 < team.spent_cny < cfg.late_bn * bn * 1.01


def test_disabled_it_does_nothing():
    model, team = build(**{"national_team.enabled": False})
    run_through(model, dt.date(2024, 2, 8))
    assert team.spent_cny == 0.0


def test_one_row_decides_for_itself():
    model, team = build()
    run_through(model, dt.date(2024, 1, 23))
    orders = team.decide(np.array([0]))
    assert len(orders) and np.all(orders.side == 1)
    assert np.all(model.indices.tier[orders.stock] == CSI300)
