"""MarketModel: the one place that wires agents to the market.

One step is one intraday session slice: every agent type submits its orders as
arrays, the exchange clears all stocks in one call auction, fills settle in the
clearing house, the indices move, and the DataCollector records a row.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import mesa
import numpy as np

from agents.base import Population
from agents.fundamental_trader import FundamentalTraders
from agents.market_maker import MarketMakers
from agents.noise_trader import NoiseTraders
from model.calendar import trading_days
from model.config import ScenarioConfig
from model.fundamentals import Fundamentals
from model.indices import Indices
from model.ledger import Ledger
from model.market import Market
from model.universe import INDEX_NAMES, build_universe

ENGINES = ("vectorized", "agents")


class MarketModel(mesa.Model):
    """An A-share market of order-book traders.

    Args:
        config: the scenario; defaults to :class:`ScenarioConfig` defaults.
        rng: seed (or generator) for every random draw in the model.
        engine: ``"vectorized"`` runs each agent type's rules on all its rows at
            once; ``"agents"`` runs them agent by agent through Mesa's
            ``shuffle_do`` (the reference engine).
        **overrides: dotted scenario keys, e.g. ``**{"universe.n_stocks": 200}``,
            which is how ``mesa.batch_run`` varies parameters.
    """

    def __init__(
        self,
        config: ScenarioConfig | None = None,
        *,
        rng: Any = None,
        engine: str = "vectorized",
        **overrides: Any,
    ) -> None:
        super().__init__(rng=rng)
        config = config if config is not None else ScenarioConfig()
        if overrides:
            config = config.with_overrides(overrides)
        if engine not in ENGINES:
            raise ValueError(f"engine = {engine!r}: must be one of {', '.join(ENGINES)}")
        self.config = config
        self.engine = engine
        mc = config.market
        self.days: list[dt.date] = trading_days(mc.start, mc.end)
        self.steps_per_day = mc.steps_per_day
        self.total_steps = len(self.days) * self.steps_per_day

        self.universe = build_universe(config.universe, self.rng, mc.lot)
        self.ledger = Ledger(self.universe.n)
        f = config.fundamentals
        base_var = (f.market_vol**2 + f.idio_vol**2) / mc.steps_per_day
        self.market = Market(self.universe, self.ledger, mc.n_levels, mc.lot, base_var)
        self.fundamentals = Fundamentals(f, self.universe.price0, self.universe.size_z, self.rng)
        self.indices = Indices(self.market.caps(), config.universe.microcap_count)
        self.populations: list[Population] = self._populate()

        self.day_index = 0
        self.turnover_today = 0.0
        self.closes: list[np.ndarray] = []  # daily closes, fen, one (S,) array per day
        reporters: dict[str, Any] = {
            "step": lambda m: m.steps,
            "date": lambda m: m.date.isoformat(),
        }
        for i, name in enumerate(INDEX_NAMES):
            reporters[name] = lambda m, i=i: float(m.indices.level[i])
        reporters["turnover"] = lambda m: m.market.turnover
        self.datacollector = mesa.DataCollector(model_reporters=reporters)

    # -- set-up ---------------------------------------------------------------------------
    def _populate(self) -> list[Population]:
        """Open accounts, hand out the float, and create every agent type."""
        cfg, uni, ledger, rng = self.config, self.universe, self.ledger, self.rng
        n_stocks, lot = uni.n, self.config.market.lot
        float_lots = uni.float_shares // lot
        total_cap_fen = float(np.dot(uni.float_shares, uni.price0))

        def endow(account: np.ndarray, stock: np.ndarray, pct: float) -> np.ndarray:
            """Split ``pct`` of each stock's float equally over the (account, stock) pairs."""
            holders = np.bincount(stock, minlength=n_stocks)
            each = np.floor(float_lots * pct / np.maximum(holders, 1)).astype(np.int64)  # (S,)
            ledger.endow(account, stock, each[stock] * lot)
            return each * holders  # (S,) lots given

        mm = cfg.market_makers
        n_mm = min(mm.n_agents, n_stocks)
        maker_of = rng.integers(0, n_mm, size=n_stocks)
        mm_cash = 4 * mm.depth_pct_cap * total_cap_fen / n_mm
        makers = MarketMakers(self, ledger.open_accounts(np.full(n_mm, mm_cash)), mm, maker_of)
        inv_lots = np.floor(float_lots * mm.inventory_pct_float).astype(np.int64)
        ledger.endow(makers.accounts[maker_of], np.arange(n_stocks), inv_lots * lot)
        makers.inventory0 = inv_lots * lot
        given = inv_lots.copy()

        ft = cfg.fundamental_traders
        ft_cash = ft.capital_pct_float * total_cap_fen / max(ft.n_agents, 1)
        funds = FundamentalTraders(self, ledger.open_accounts(np.full(ft.n_agents, ft_cash)), ft)
        given += endow(
            funds.accounts[np.repeat(funds.rows, funds.coverage.shape[1])],
            funds.coverage.ravel(),
            ft.holdings_pct_float,
        )

        nt = cfg.noise_traders
        nt_cash = nt.capital_pct_float * total_cap_fen / max(nt.n_agents, 1)
        noise = NoiseTraders(self, ledger.open_accounts(np.full(nt.n_agents, nt_cash)), nt)
        if noise.n:
            holder = rng.choice(noise.accounts, size=(n_stocks, 5))  # five holders a stock
            given += endow(holder.ravel(), np.repeat(np.arange(n_stocks), 5), nt.holdings_pct_float)

        # Whatever is left of the float sits with long-term holders who do not trade.
        self.holders = ledger.open_accounts(np.zeros(1))
        ledger.endow(
            np.repeat(self.holders, n_stocks),
            np.arange(n_stocks),
            np.maximum(float_lots - given, 0) * lot,
        )
        return [makers, funds, noise]

    # -- time -----------------------------------------------------------------------------
    @property
    def date(self) -> dt.date:
        """Trading date of the current (or last completed) step."""
        return self.days[min(self.day_index, len(self.days) - 1)]

    def step(self) -> None:
        """One session slice: orders, one call auction for every stock, settlement, records."""
        day, slice_ = divmod(self.steps - 1, self.steps_per_day)
        self.day_index = day
        if slice_ == 0:
            self._open_day(day)
        if self.engine == "vectorized":
            for population in self.populations:
                population.act(population.rows)
        else:
            for population in self.populations:
                population.agents.shuffle_do("step")
        old = self.market.last.copy()
        self.market.clear()
        self.indices.update(self.universe.float_shares, old, self.market.last)
        self.turnover_today += self.market.turnover
        if slice_ == self.steps_per_day - 1:
            self._close_day()
        self.datacollector.collect(self)
        if self.steps >= self.total_steps:
            self.running = False

    def _open_day(self, day: int) -> None:
        if day > 0:
            self.fundamentals.new_day()
            caps = self.market.caps()
            u = self.config.universe
            if day % u.csi_rebalance_days == 0:
                self.indices.rebalance_tiers(caps)
            if day % u.microcap_rebalance_days == 0:
                self.indices.rebalance_micro(caps)
        self.market.open_day()
        self.turnover_today = 0.0
        for population in self.populations:
            population.begin_day()

    def _close_day(self) -> None:
        self.market.close_day()
        self.closes.append(self.market.last.copy())

    def run(self, progress: Any = None) -> None:
        """Step until the last trading day closes; ``progress(model)`` is called after each step."""
        while self.running:
            self.step()
            if progress is not None:
                progress(self)
