"""MarketModel: the one place that wires agents to the market.

One step is one intraday session slice: every agent type submits its orders as
arrays, the exchange clears all stocks in one call auction, fills settle in the
clearing house, the indices move, and the DataCollector records a row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import mesa
import numpy as np

from agents.arbitrage import Arbitrageurs, CarryArbitrageurs, IndexSwitchers
from agents.base import Population
from agents.fundamental_trader import FundamentalTraders
from agents.market_maker import FuturesMakers, MarketMakers
from agents.national_team import NationalTeam
from agents.neutral_fund import STOPPED, WARNED, NeutralFunds
from agents.noise_trader import NoiseTraders
from agents.public_fund import IndexEnhancedFunds, PublicMicroCapFunds
from agents.retail import RetailChasers
from agents.snowball import SnowballIssuers
from agents.speculator import Speculators
from model.calendar import trading_days
from model.collector import collector_paused
from model.config import ScenarioConfig
from model.fundamentals import Fundamentals
from model.futures import NAMES as FUTURES_NAMES
from model.futures import UNDERLYING, FuturesSpec, expiry_days
from model.indices import Indices
from model.invariants import InvariantChecker, env_default
from model.ledger import Ledger
from model.lending import LendingDesk
from model.market import Market
from model.orders import Orders
from model.records import StepRecords
from model.universe import INDEX_NAMES, REFERENCE_N, build_universe, scaled_count

ENGINES = ("vectorized", "agents")
SWITCH_CASH = 0.25  # the index switchers' cash, per unit of their baskets: margin and losses


class MarketModel(mesa.Model):
    """An A-share market of order-book traders.

    Args:
        config: the scenario; defaults to :class:`ScenarioConfig` defaults.
        rng: seed (or generator) for every random draw in the model.
        engine: ``"vectorized"`` runs each agent type's rules on all its rows at
            once; ``"agents"`` runs them agent by agent through Mesa's
            ``shuffle_do`` (the reference engine).
        check: check the books' invariants every step (model.invariants), stopping
            at the first broken one with an ``InvariantError``; default: on when the
            environment sets ``UNWIND_CHECK=1`` (the tests do).
        **overrides: dotted scenario keys, e.g. ``**{"universe.n_stocks": 200}``,
            which is how ``mesa.batch_run`` varies parameters.
    """

    def __init__(
        self,
        config: ScenarioConfig | None = None,
        *,
        rng: Any = None,
        engine: str = "vectorized",
        check: bool | None = None,
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
        self.scale = self.universe.n / REFERENCE_N  # sizes in the config are at full scale
        self.ledger = Ledger(self.universe.n)
        f = config.fundamentals
        base_var = (f.market_vol**2 + f.idio_vol**2) / mc.steps_per_day
        self.indices = Indices(
            self.universe.caps(self.universe.price0), config.universe.microcap_count
        )
        self.futures: FuturesSpec | None = None
        fc = config.futures
        if fc.enabled:
            self.futures = FuturesSpec(self.universe.n, expiry_days(self.days), tuple(self.days))
        self.market = Market(
            self.universe,
            self.ledger,
            mc.n_levels,
            mc.lot,
            base_var,
            futures=self.futures,
            futures_limit=fc.limit,
            futures_price0=FuturesSpec.ticks(self.indices.level[UNDERLYING]),
            futures_margin=fc.margin,
        )
        # The news has a stream of its own, spawned from the model's generator: counterfactual
        # runs of one seed then see the same fundamental path (common random numbers),
        # however differently their agents draw.
        news_rng = self.rng.spawn(1)[0]
        self.fundamentals = Fundamentals(f, self.universe.price0, self.universe.size_z, news_rng)
        self.lending: LendingDesk | None = None
        self.day_index = 0
        with collector_paused():
            self.populations: list[Population] = self._populate()

        self.turnover_today = 0.0
        self.closes: list[np.ndarray] = []  # daily closes, fen, one (S,) array per day
        self.forced_sales = 0.0  # CNY filled in the last step for orders sent under duress
        self.forced_sales_total = 0.0
        self._recorded: dict[str, tuple[int, np.ndarray]] = {}  # see :meth:`_once_a_step`
        self.datacollector = StepRecords(model_reporters=self._reporters())
        check = env_default() if check is None else check
        self.checker: InvariantChecker | None = InvariantChecker(self) if check else None

    def _reporters(self) -> dict[str, Any]:
        reporters: dict[str, Any] = {
            "step": lambda m: m.steps,
            "date": lambda m: m.date.isoformat(),
        }
        for i, name in enumerate(INDEX_NAMES):
            reporters[name] = lambda m, i=i: float(m.indices.level[i])
        for i, name in enumerate(INDEX_NAMES):
            reporters[f"{name}_news"] = lambda m, i=i: float(m.indices.news[i])
        reporters["turnover"] = lambda m: m.market.turnover
        for k, name in enumerate(FUTURES_NAMES):
            reporters[f"{name.lower()}_basis"] = lambda m, k=k: m.recorded_basis()[k]
        reporters["forced_sales"] = lambda m: m.forced_sales
        reporters["panic_sales"] = lambda m: m.market.panic_turnover
        reporters["neutral_nav"] = lambda m: m.neutral_nav()
        reporters["neutral_nav_plain"] = lambda m: m.neutral_nav(dma=False)
        reporters["neutral_nav_dma"] = lambda m: m.neutral_nav(dma=True)
        reporters["liquidated_funds"] = lambda m: m.liquidated_funds()
        reporters["neutral_warned"] = lambda m: m.neutral_count(WARNED)
        reporters["neutral_stopped"] = lambda m: m.neutral_count(STOPPED)
        reporters["speculator_futures"] = lambda m: m.speculator_futures()
        reporters["value_appetite"] = lambda m: m.value_appetite()
        reporters["limit_down_count"] = lambda m: int(
            np.count_nonzero(m.market.lock[: m.universe.n] < 0)
        )
        return reporters

    # -- mesa's agents --------------------------------------------------------------------
    def build_agents(self) -> None:
        """Create every population's mesa agents, in population order, if not yet made.

        A run of the vectorized engine never reads them, so set-up does not make them;
        the first to ask for any (a population's ``agents``, the model's ``agents``,
        ``agents_by_type`` or ``agent_types``, the per-agent engine) makes all of them,
        numbered as an eager set-up numbered them.
        """
        with collector_paused():
            for population in getattr(self, "populations", ()):
                population.build_agents()

    @property
    def agents(self) -> Any:
        """mesa's set of every agent (built on first use: :meth:`build_agents`)."""
        self.build_agents()
        return super().agents

    @property
    def agents_by_type(self) -> dict[type, Any]:
        """mesa's agents by class (built on first use: :meth:`build_agents`)."""
        self.build_agents()
        return super().agents_by_type

    @property
    def agent_types(self) -> list[type]:
        """mesa's agent classes (built on first use: :meth:`build_agents`)."""
        self.build_agents()
        return super().agent_types

    # -- read-outs ------------------------------------------------------------------------
    def basis(self) -> np.ndarray:
        """(3,) annualized basis of IF, IC, IM: NaN without futures, and from an expiry's
        settlement until the next auction, when the contracts' last prices are the index
        itself (the morning after an expiry read as a basis of 0 closed every basis trade
        and eased the products' hedge cost, every month)."""
        if self.futures is None or self.market.rolled:
            return np.full(3, np.nan)
        n = self.universe.n
        return self.futures.basis(self.market.last[n:], self.indices.level, self.day_index)

    def recorded_basis(self) -> np.ndarray:
        """:meth:`basis` as of this step's record: worked out once for the three columns
        (the data collector asks it right after the step, nothing moving in between)."""
        return self._once_a_step("basis", self.basis)

    def neutral_nav(self, dma: bool | None = None) -> float:
        """Unit-weighted NAV per unit of the quant-neutral products: all of them, or only
        the DMA (``dma=True``) or the plain ones (``False``); NaN where there are none."""
        funds = self.neutral
        if funds is None or funds.n == 0:
            return float("nan")
        rows = slice(None) if dma is None else funds.is_dma == dma
        units = funds.units[rows]
        if not units.size:
            return float("nan")
        return float(np.dot(self.recorded_nav()[rows], units) / max(units.sum(), 1e-9))

    def recorded_nav(self) -> np.ndarray:
        """(n,) NAV per unit of each quant-neutral product at this step's prices, worked
        out once for the three NAV columns. The products mark their books at the open,
        for the day's decisions; a record marks them at its own step, so a close shows
        the close's NAV, not the open's."""
        return self._once_a_step("nav", self.neutral.marked_nav)

    def _once_a_step(self, name: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        """``compute()`` as of this step, worked out at the step's first ask: several
        columns of a record read one array."""
        seen = self._recorded.get(name)
        if seen is None or seen[0] != self.steps:
            seen = self._recorded[name] = (self.steps, compute())
        return seen[1]

    def speculator_futures(self) -> float:
        """CNY of index futures the speculators hold, IF, IC and IM summed, long positive."""
        if self.speculators is None:
            return 0.0
        value = self.futures.contract_value(self.indices.level)  # (3,) CNY a contract
        return float((self.speculators.held() * value).sum())

    def value_appetite(self) -> float:
        """Mean share of their full bid the value investors still make (1: their risk
        budget does not bind, or they keep none); NaN without value investors."""
        funds = self.value_investors
        return float(funds.appetite.mean()) if funds.n else float("nan")

    def liquidated_funds(self) -> int:
        return 0 if self.neutral is None else int(np.count_nonzero(self.neutral.liquidated))

    def neutral_count(self, state: int) -> int:
        """Quant-neutral products now in ``state`` (``WARNED``: cutting; ``STOPPED``)."""
        return 0 if self.neutral is None else int(np.count_nonzero(self.neutral.state == state))

    # -- set-up ---------------------------------------------------------------------------
    def _populate(self) -> list[Population]:
        """Open accounts, hand out the float, and create every agent type."""
        cfg, uni, ledger, rng = self.config, self.universe, self.ledger, self.rng
        n_stocks, lot = uni.n, self.config.market.lot
        float_lots = uni.float_shares // lot
        total_cap_fen = float(np.dot(uni.float_shares, uni.price0))
        populations: list[Population] = []

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
        populations.append(makers)

        if self.futures is not None:
            fc = cfg.futures
            cash = np.full(3, 10 * (fc.mm_inventory_limit_bn + fc.mm_depth_bn) * 1e11 * self.scale)
            populations.append(FuturesMakers(self, ledger.open_accounts(cash), fc, self.scale))

        ft = cfg.fundamental_traders
        ft_cash = ft.capital_pct_float * total_cap_fen / max(ft.n_agents, 1)
        funds = FundamentalTraders(self, ledger.open_accounts(np.full(ft.n_agents, ft_cash)), ft)
        self.value_investors: FundamentalTraders = funds
        given += endow(
            funds.accounts[np.repeat(funds.rows, funds.coverage.shape[1])],
            funds.coverage.ravel(),
            ft.holdings_pct_float,
        )
        populations.append(funds)

        nt = cfg.noise_traders
        # Five holders a stock. Each trader's cash is in proportion to what it holds (one
        # holding nothing gets an average share): all keep the same cash share and can pay
        # for orders the size of their own names', whose caps set the orders' size.
        holder = rng.choice(nt.n_agents, size=5 * n_stocks) if nt.n_agents else np.zeros(0, int)
        held_stock = np.repeat(np.arange(n_stocks), 5)[: holder.size]
        worth = np.bincount(holder, (float_lots * uni.price0)[held_stock], minlength=nt.n_agents)
        worth = np.where(worth > 0, worth, worth.mean() if nt.n_agents else 0.0)
        nt_cash = nt.capital_pct_float * total_cap_fen * worth / max(worth.sum(), 1.0)
        noise = NoiseTraders(self, ledger.open_accounts(np.floor(nt_cash)), nt)
        if noise.n:
            given += endow(noise.accounts[holder], held_stock, nt.holdings_pct_float)
        populations.append(noise)

        self.retail: RetailChasers | None = None
        if cfg.retail.n_agents:
            rt = cfg.retail
            cash = RetailChasers.initial_cash_fen(rt, self.scale, rng)
            retail = RetailChasers(self, ledger.open_accounts(cash), rt, self.scale)
            given += retail.endow(np.maximum(float_lots - given, 0), lot)
            self.retail = retail
            populations.append(retail)

        self.neutral: NeutralFunds | None = None
        nc = cfg.neutral
        n_neutral = scaled_count(nc.n_funds, self.universe.n)
        if n_neutral:
            equity = rng.lognormal(0.0, 0.8, n_neutral)
            equity *= nc.aum_bn * 1e9 * self.scale / equity.sum()  # CNY per product
            lev = np.ones(n_neutral)  # credit is set once the products know their leverage
            accounts = ledger.open_accounts(np.rint(equity * 100), np.zeros(n_neutral))
            neutral = NeutralFunds(self, accounts, nc, self.scale, equity)
            lev = neutral.leverage
            # The broker lends DMA products the leverage plus the futures margin on it.
            line = np.maximum(lev - 1.0, 0.0) + cfg.futures.margin * lev + 0.1
            ledger.credit[accounts] = np.rint(equity * line * 100).astype(np.int64)
            given += self._endow_baskets(
                neutral.accounts, neutral.basket, equity * lev, float_lots - given
            )
            neutral.adopt_holdings()
            self.neutral = neutral
            populations.append(neutral)

        # Mutual funds on the smallest caps, then quant funds on an index's members: the
        # same rules, each population endowed from its own cash at the opening prices.
        funds: list[PublicMicroCapFunds | None] = []
        for kind, fc in (
            (PublicMicroCapFunds, cfg.public_funds),
            (IndexEnhancedFunds, cfg.enhanced_funds),
        ):
            n_funds = scaled_count(fc.n_funds, self.universe.n, at_least_one=True)
            if not n_funds:
                funds.append(None)
                continue
            aum = rng.lognormal(0.0, 0.5, n_funds)
            aum *= fc.aum_bn * 1e9 * self.scale / aum.sum()  # CNY per fund
            population = kind(self, ledger.open_accounts(np.rint(aum * 100)), fc, self.scale)
            given += population.endow(float_lots - given)
            funds.append(population)
            populations.append(population)
        self.public_funds, self.enhanced_funds = funds

        ac = cfg.arbitrage
        if self.futures is not None and ac.switch_capital_bn > 0:
            # Index baskets bought at the start like the funds' (two desks), with cash for
            # the margin on futures worth all of them.
            worth = ac.switch_capital_bn * 1e9 * self.scale / 2  # CNY a desk
            cash = np.full(2, worth * (1.0 + SWITCH_CASH) * 100)
            switchers = IndexSwitchers(self, ledger.open_accounts(cash), ac, self.scale)
            given += self._endow_baskets(
                switchers.accounts, switchers.basket, switchers.basket_value(), float_lots - given
            )
            switchers.adopt_holdings()
            populations.append(switchers)

        # Whatever is left of the float sits with long-term holders who do not trade; they
        # are also the lenders of stock.
        self.holders = ledger.open_accounts(np.zeros(1))
        ledger.endow(
            np.repeat(self.holders, n_stocks),
            np.arange(n_stocks),
            np.maximum(float_lots - given, 0) * lot,
        )
        if self.neutral is not None:
            self.lending = LendingDesk(
                cfg.lending, uni.float_shares, int(self.holders[0]), lot, ledger
            )
            self._initial_stock_shorts(self.neutral)
        if self.futures is not None and ac.capital_bn > 0:
            if self.lending is None:
                self.lending = LendingDesk(
                    cfg.lending, uni.float_shares, int(self.holders[0]), lot, ledger
                )
            capital = np.full(2, ac.capital_bn * 1e9 * self.scale * 100 / 2)  # two desks
            populations.append(Arbitrageurs(self, ledger.open_accounts(capital), ac, self.scale))
        if self.futures is not None and ac.carry_capital_bn > 0:
            capital = np.full(2, ac.carry_capital_bn * 1e9 * self.scale * 100 / 2)  # two desks
            carry = CarryArbitrageurs(self, ledger.open_accounts(capital), ac, self.scale)
            populations.append(carry)
        self.speculators: Speculators | None = None
        sc = cfg.speculators
        if self.futures is not None and sc.capital_bn > 0:
            capital = np.full(sc.n_agents, sc.capital_bn * 1e11 * self.scale / sc.n_agents)
            self.speculators = Speculators(self, ledger.open_accounts(capital), sc)
            populations.append(self.speculators)
        if cfg.national_team.enabled:
            cash = np.array([NationalTeam.cash_needed_fen(cfg.national_team, self.scale)])
            populations.append(
                NationalTeam(self, ledger.open_accounts(cash), cfg.national_team, self.scale)
            )

        self.snowball: SnowballIssuers | None = None
        if self.futures is not None and cfg.snowball.notional_bn > 0:
            cash = np.full(2, cfg.snowball.notional_bn * 1e11 * self.scale)  # a broker's balance
            issuers = SnowballIssuers(self, ledger.open_accounts(cash), cfg.snowball, self.scale)
            self.snowball = issuers
            populations.append(issuers)
        if self.futures is not None:
            self._initial_futures(populations)
        return populations

    def _initial_stock_shorts(self, funds: NeutralFunds) -> None:
        """Products start with their planned stock hedge: borrowed and already sold."""
        desk, ledger, uni = self.lending, self.ledger, self.universe
        target = funds.target_exposure(funds.rows)  # CNY
        hedge = funds.hedge_stocks  # (n, H)
        plan = target * funds.cfg.lending_hedge_share
        shares = funds.hedge_shares(funds.rows, plan, uni.price0[hedge])  # (n, H)
        borrower = np.repeat(funds.accounts, hedge.shape[1])
        lent = desk.borrow(borrower, hedge.ravel(), shares.ravel(), self.days[0])
        sold = lent > 0
        ledger.transfer(
            borrower[sold],
            np.repeat(self.holders, sold.sum()),
            hedge.ravel()[sold],
            lent[sold],
            locked=False,
        )
        proceeds = lent * uni.price0[hedge.ravel()]  # fen, paid by the long-term holders
        np.add.at(ledger.cash, borrower, proceeds)
        ledger.initial_cash += int(proceeds.sum())
        short = np.bincount(
            np.searchsorted(funds.accounts, borrower), proceeds / 100.0, minlength=funds.n
        )
        funds.lend_share = np.clip(short / np.maximum(target, 1.0), 0.0, 1.0)

    def _initial_futures(self, populations: list[Population]) -> None:
        """Hedgers start hedged; the futures makers hold what is left, so positions net out."""
        ledger, spec = self.ledger, self.futures
        value = spec.contract_value(self.indices.level)  # (3,) CNY per contract
        if self.neutral is not None:
            f = self.neutral
            target = f.target_exposure(f.rows) * (1.0 - f.lend_share)
            split = f.hedge_split[None, :]  # (1, 2) IC, IM
            short = np.rint(target[:, None] * split / value[None, 1:]).astype(np.int64)
            ledger.fut_pos[f.accounts, 1:] -= short
        if self.snowball is not None:
            ledger.fut_pos[self.snowball.accounts, 1:] += np.diag(self.snowball.initial_hedge())
        makers = next(p for p in populations if isinstance(p, FuturesMakers))
        ledger.fut_pos[makers.accounts, np.arange(3)] -= ledger.fut_pos.sum(axis=0)
        # The makers carry whatever they are handed: cash of at least its notional, so
        # variation margin cannot take them below zero however thin their own quotes.
        held = np.abs(ledger.fut_pos[makers.accounts, np.arange(3)])  # (3,) contracts
        need = np.rint(held * value * 100.0).astype(np.int64)  # fen
        top_up = np.maximum(need - ledger.cash[makers.accounts], 0)
        ledger.cash[makers.accounts] += top_up
        ledger.initial_cash += int(top_up.sum())

    def _endow_baskets(
        self,
        accounts: np.ndarray,
        basket: np.ndarray,
        value_cny: np.ndarray,
        available_lots: np.ndarray,
    ) -> np.ndarray:
        """Give each account a basket bought with its cash; return lots given.

        ``value_cny`` is each account's worth (n,), split equally over its basket (n, b),
        or each name's worth (n, b). Where several want more of a stock than is
        available, all are scaled down.
        """
        uni, lot, ledger = self.universe, self.config.market.lot, self.ledger
        b = basket.shape[1]
        stock = basket.ravel()
        each = np.repeat(value_cny / b, b) if value_cny.ndim == 1 else value_cny.ravel()
        want = each * 100.0 / uni.price0[stock] / lot  # lots
        total = np.bincount(stock, want, minlength=uni.n)
        cap = np.minimum(1.0, 0.8 * np.maximum(available_lots, 0) / np.maximum(total, 1e-9))
        lots = np.floor(want * cap[stock]).astype(np.int64)
        account = np.repeat(accounts, b)
        ledger.endow(account, stock, lots * lot)
        # Paid for from the account's cash (credit for leveraged products); the float
        # changes hands from the long-term holders, who receive the cash.
        cost = lots * lot * uni.price0[stock]
        paid = np.bincount(np.searchsorted(accounts, account), cost, minlength=accounts.size)
        ledger.cash[accounts] -= np.rint(paid).astype(np.int64)
        ledger.initial_cash -= int(np.rint(paid).astype(np.int64).sum())
        return np.bincount(stock, lots, minlength=uni.n).astype(np.int64)

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
            batches = []
            for population in self.populations:
                batches.extend(population.decide_parts(population.rows))
            # One admission pass for everybody's orders: earlier agent types keep time priority.
            self.market.submit(Orders.concat(batches))
        else:
            for population in self.populations:
                population.agents.shuffle_do("step")
        n = self.universe.n
        old = self.market.last[:n].copy()
        if self.checker is not None:
            self.checker.before_clear()
        self.market.clear()
        if self.checker is not None:
            self.checker.after_clear()
        self.indices.update(self.universe.float_shares, old, self.market.last[:n])
        self.turnover_today += self.market.turnover
        # What filled of the orders sent under duress (``Orders.duress``), in the step it
        # filled: an order re-sent unfilled step after step counts once, when it fills.
        self.forced_sales = self.market.forced_turnover
        self.forced_sales_total += self.forced_sales
        # The record shows the session as it closed: on an expiry day the futures' last
        # trade, not the settlement at the index that the day's bookkeeping then books.
        self.datacollector.collect(self)
        if slice_ == self.steps_per_day - 1:
            self._close_day()
        if self.checker is not None:
            self.checker.after_step()
        if self.steps >= self.total_steps:
            self.running = False

    def _open_day(self, day: int) -> None:
        value = self.fundamentals.value_fen()  # (S,) fen, the day's: read once, used twice
        if day > 0:
            self.fundamentals.new_day(self.days[day])
            before, value = value, self.fundamentals.value_fen()
            self.indices.update_news(self.universe.float_shares, before, value)
            caps = self.market.caps()
            u = self.config.universe
            if day % u.csi_rebalance_days == 0:
                self.indices.rebalance_tiers(caps)
                if self.enhanced_funds is not None:
                    self.enhanced_funds.follow_mandate(caps)
            if day % u.microcap_rebalance_days == 0:
                self.indices.rebalance_micro(caps)
                if self.public_funds is not None:
                    self.public_funds.follow_mandate(caps)
        # The micro-cap index's equal weights for the day, on the day's members.
        n = self.universe.n
        self.indices.open_day(self.market.last[:n], value)
        self.market.open_day()
        if self.lending is not None:
            self.lending.new_day(self.days[day])
        self.turnover_today = 0.0
        for population in self.populations:
            population.begin_day()

    def _close_day(self) -> None:
        n = self.universe.n
        if self.futures is not None and self.futures.is_expiry(self.day_index):
            self.market.settle_expiry(FuturesSpec.ticks(self.indices.level[UNDERLYING]))
        self.market.close_day()
        self.closes.append(self.market.last[:n].copy())

    def run(self, progress: Any = None) -> None:
        """Step until the last trading day closes; ``progress(model)`` is called after each step."""
        while self.running:
            self.step()
            if progress is not None:
                progress(self)
