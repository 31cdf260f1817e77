"""Array-backed Mesa agents.

Each agent type is a :class:`Population`: its state lives in arrays, one row per
agent, and its rules are written once as functions of a set of rows. The
vectorized engine calls them on all rows at once; each :class:`ArrayAgent` is a
real ``mesa.Agent`` that views its row and, in the per-agent engine, runs the
same rules on that one row from its own ``step()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import mesa
import numpy as np
from mesa.agentset import AgentSet

from model.ledger import consecutive
from model.orders import Orders

if TYPE_CHECKING:
    from model.market import Market
    from model.market_model import MarketModel


class ArrayAgent(mesa.Agent):
    """A Mesa agent whose state is row ``row`` of its population's arrays."""

    def __init__(self, model: MarketModel, population: Population, row: int) -> None:
        super().__init__(model)
        self.population = population
        self.row = row

    @property
    def account(self) -> int:
        return int(self.population.accounts[self.row])

    @property
    def cash(self) -> float:
        """Cash in CNY (negative when drawing on credit)."""
        return self.model.ledger.cash[self.account] / 100.0

    def holdings(self) -> dict[int, int]:
        """Stock index -> shares held."""
        _, stock, shares, _ = self.model.ledger.positions(np.array([self.account]))
        return dict(zip(stock.tolist(), shares.tolist(), strict=True))

    def step(self) -> None:
        """Run this agent type's rules for this one agent (the per-agent engine)."""
        self.population.act(np.array([self.row]))


class Population:
    """State arrays and rules of one agent type."""

    agent_class: ClassVar[type[ArrayAgent]] = ArrayAgent

    def __init__(self, model: MarketModel, accounts: np.ndarray) -> None:
        self.model = model
        self.accounts = np.asarray(accounts, dtype=np.int64)  # (n,) ledger account per row
        self.rows = np.arange(self.accounts.shape[0])
        self._agents: AgentSet | None = None  # built at first use: see :attr:`agents`
        self._step_begun = -1  # the model step of the last :meth:`begins_step` that was True

    @property
    def agents(self) -> AgentSet:
        """The population's mesa agents, one per row, in row order.

        Built when first asked for, not at set-up: the vectorized engine never reads them
        (22,324 agents took some 0.16 s of a default run). The model then builds every
        population's at once, in population order (:meth:`MarketModel.build_agents`), so
        the agents and their ids are those an eager set-up made.
        """
        if self._agents is None:
            build_all = getattr(self.model, "build_agents", None)
            if build_all is not None:
                build_all()
            if self._agents is None:  # not one of the model's populations (a test's own)
                self.build_agents()
        return self._agents

    def build_agents(self) -> None:
        """Create the rows' agents, unless they exist: what ``agent_class.create_agents(model,
        n, population=self, row=...)`` builds, the same agents in the same order, without
        its per-agent unpacking of arguments."""
        if self._agents is None:
            cls, model = self.agent_class, self.model
            self._agents = AgentSet(
                [cls(model, population=self, row=row) for row in range(self.n)],
                random=model.random,
            )

    def begins_step(self) -> bool:
        """True the first time it is asked in a model step, False after: where per-step
        counters reset, in either engine (the per-agent one decides row by row)."""
        if self._step_begun == self.model.steps:
            return False
        self._step_begun = self.model.steps
        return True

    @property
    def n(self) -> int:
        return self.accounts.shape[0]

    @property
    def market(self) -> Market:
        return self.model.market

    @property
    def rng(self) -> np.random.Generator:
        return self.model.rng

    def take(self, array: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """``array[rows]`` (rows of a per-agent array), read-only: ``array`` itself when
        ``rows`` are every row in order, as the vectorized engine asks, with no copy (at
        full scale the neutral products' (500, 500) baskets and weights, each step)."""
        return array if self.all_rows(rows) else array[rows]

    def all_rows(self, rows: np.ndarray) -> bool:
        """Whether ``rows`` are every row in order (as the vectorized engine asks), so
        ``array[rows]`` is ``array`` itself and ``array[rows] = x`` is ``array[:] = x``."""
        if rows is self.rows:  # what the vectorized engine hands over: no scan of 20,000
            return True
        return rows.shape[0] == self.n and consecutive(rows) and (self.n == 0 or rows[0] == 0)

    def holdings_value(
        self, rows: np.ndarray, positions: tuple[np.ndarray, ...] | None = None
    ) -> np.ndarray:
        """(r,) CNY the rows' positions are worth at last prices.

        ``positions`` is the rows' ``Ledger.positions_of``, when the caller has it already.
        """
        if positions is None:
            return self.model.ledger.value_cny(self.accounts[rows], self.market.last)
        slot, stock, shares, _ = positions
        return np.bincount(slot, shares * self.market.last[stock] / 100.0, minlength=len(rows))

    def act(self, rows: np.ndarray) -> Orders:
        """Let ``rows`` revise their resting orders and submit new ones; return the admitted."""
        return self.market.submit(self.decide(rows))

    def decide(self, rows: np.ndarray) -> Orders:
        """Orders of ``rows`` this step. Subclasses write their rules here."""
        raise NotImplementedError

    def decide_parts(self, rows: np.ndarray) -> list[Orders]:
        """:meth:`decide`'s orders as the batches it joins, in order: the model joins every
        population's batches in one go, so none is copied twice. One batch by default."""
        return [self.decide(rows)]

    def begin_day(self) -> None:
        """Hook at the open of each trading day, before any orders."""
