"""Retail chasers: social graph, sparse herding, sparse holdings, T+1, panic and herding."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from agents.retail import (
    LIMIT_OFFSET,
    LOOKED_AT,
    MARKET_ORDER_SHARE,
    REBALANCE,
    RetailChaser,
    RetailChasers,
)
from agents.sampling import choice
from model import MarketModel
from model.config import RetailConfig
from model.orders import CALM, FORCED, MARKET_ORDER_REACH, PANIC, Orders

SMALL = {
    "universe.n_stocks": 60,
    "market.end": "2023-01-20",
    "noise_traders.n_agents": 200,
    "fundamental_traders.n_agents": 40,
    "market_makers.n_agents": 4,
    "retail.n_agents": 0,
}


def _model(
    seed: int = 1, n: int = 400, engine: str = "vectorized", **cfg: float
) -> tuple[MarketModel, RetailChasers]:
    """A small model with a retail population built and endowed as the lead will wire it."""
    model = MarketModel(rng=seed, engine=engine, **SMALL)
    rc = RetailConfig(n_agents=n, **cfg)
    scale = model.universe.n / 5000
    accounts = model.ledger.open_accounts(RetailChasers.initial_cash_fen(rc, scale, model.rng))
    pop = RetailChasers(model, accounts, rc, scale)
    lot = model.market.lot
    pop.endow(model.universe.float_shares // lot // 10, lot)
    model.populations.append(pop)
    return model, pop


def _spy(pop: RetailChasers) -> list[tuple[Orders, np.ndarray]]:
    """Record each decision's raw orders and the sellable shares they faced."""
    seen: list[tuple[Orders, np.ndarray]] = []
    decide = pop.decide

    def spy(rows: np.ndarray) -> Orders:
        orders = decide(rows)
        seen.append((orders, pop.model.ledger.sellable(orders.account, orders.stock)))
        return orders

    pop.decide = spy
    return seen


def test_graph_has_configured_size_and_mean_degree():
    model, pop = _model(n=2000, degree=8)
    assert pop.graph.number_of_nodes() == 2000
    mean_degree = 2 * pop.graph.number_of_edges() / 2000
    assert 7.0 <= mean_degree <= 8.5
    assert pop.adjacency.shape == (2000, 2000)
    np.testing.assert_allclose(pop.adjacency.sum(axis=1), 1.0)
    assert len(model.agents_by_type[RetailChaser]) == 2000
    total = pop.capital.sum()
    assert total == pytest.approx(400e9 * 60 / 5000, rel=1e-6)
    assert pop.capital.max() > 20 * np.median(pop.capital)  # heavy-tailed wealth


def test_neighbour_influence_is_the_sparse_product():
    _, pop = _model(n=5)
    graph = nx.Graph([(0, 1), (1, 2), (1, 3)])
    graph.add_node(4)  # isolated: nobody to copy
    pop.use_graph(graph)
    pop.last_action[:] = [1, -1, 0, 1, 1]
    np.testing.assert_allclose(pop.neighbour_action(pop.rows), [-1, 2 / 3, -1, -1, 0])
    assert pop.neighbour_action(np.array([1]))[0] == pytest.approx(2 / 3)


def test_neighbour_average_matches_dense_reference_on_the_default_graph():
    _, pop = _model(n=300)
    pop.last_action[:] = pop.rng.integers(-1, 2, size=pop.n)
    dense = nx.to_numpy_array(pop.graph, nodelist=range(pop.n))
    reference = dense @ pop.last_action / dense.sum(axis=1)
    np.testing.assert_allclose(pop.neighbour_action(pop.rows), reference, atol=1e-12)
    rows = np.array([3, 17, 250])
    np.testing.assert_allclose(pop.neighbour_action(rows), reference[rows], atol=1e-12)


def test_neighbour_means_are_the_sparse_products_to_the_bit():
    """The compiled means over the int32 neighbour lists equal the CSR products (scipy's
    and :func:`_row_products`) exactly, isolated investors included; a graph whose rows
    hold unequal weights is not listed and takes the general product."""
    from agents.retail import _neighbour_means, _row_products, neighbour_lists

    _, pop = _model(n=300)
    graph = pop.graph.copy()
    graph.add_edges_from([(0, 7), (0, 9)])
    graph.remove_edges_from(list(graph.edges(5)))  # row 5 isolated
    pop.use_graph(graph)
    a = pop.adjacency
    neighbour = neighbour_lists(a)
    assert neighbour is not None and neighbour.dtype == np.int32
    pop.last_action[:] = pop.rng.integers(-1, 2, size=pop.n)
    x = pop.last_action.astype(np.float64)
    rows = np.arange(pop.n)
    want = a @ x
    means = _neighbour_means(a.indptr, neighbour, rows, pop.last_action)
    np.testing.assert_array_equal(means, want)
    np.testing.assert_array_equal(_row_products(a.indptr, a.indices, a.data, rows, x), want)
    np.testing.assert_array_equal(pop.neighbour_action(rows), want)
    assert pop.neighbour_action(np.array([5]))[0] == 0.0
    weighted = graph.copy()
    weighted[0][7]["weight"] = 3.0
    pop.use_graph(weighted)
    assert neighbour_lists(pop.adjacency) is None
    np.testing.assert_array_equal(pop.neighbour_action(rows), pop.adjacency @ x)
    # Row 0 with neighbour 7 buying and the others selling: 7 counts three times.
    others = [j for j in weighted[0] if j != 7]
    pop.last_action[others], pop.last_action[7] = -1, 1
    heavy = (3.0 - len(others)) / (3.0 + len(others))
    assert pop.neighbour_action(np.array([0]))[0] == pytest.approx(heavy)
    assert heavy != pytest.approx((1.0 - len(others)) / (1.0 + len(others)))  # unweighted


def test_endowment_is_a_handful_of_stocks_worth_half_the_capital():
    model, pop = _model(n=400)
    slot, stock, shares, _ = pop.positions(pop.rows)
    held = np.bincount(slot, minlength=pop.n)
    assert held.max() == pop.cfg.holdings and np.median(held) == pop.cfg.holdings
    value = np.bincount(slot, shares * model.universe.price0[stock] / 100.0, minlength=pop.n)
    share = value / pop.capital
    assert np.all(share <= 0.5 + 1e-9) and np.median(share) > 0.45
    assert np.all(shares % model.market.lot == 0)


def test_endow_never_takes_more_than_is_available():
    model = MarketModel(rng=2, **SMALL)
    rc = RetailConfig(n_agents=500)
    accounts = model.ledger.open_accounts(RetailChasers.initial_cash_fen(rc, 1.0, model.rng))
    pop = RetailChasers(model, accounts, rc, 1.0)  # full-scale money on 60 stocks
    available = model.universe.float_shares // 100 // 50
    taken = pop.endow(available, 100)
    assert np.all(taken <= available) and taken.sum() > 0
    _, stock, shares, _ = model.ledger.positions(pop.accounts)
    np.testing.assert_array_equal(np.bincount(stock, shares, minlength=60), taken * 100)


def test_positions_match_the_ledger():
    model, pop = _model(n=300, activity=0.5)
    for _ in range(6):
        model.step()
    rows = np.array([0, 5, 6, 100, 299])
    slot, stock, shares, sellable = pop.positions(rows)
    acct, l_stock, l_shares, l_sellable = model.ledger.positions(pop.accounts[rows])
    np.testing.assert_array_equal(pop.accounts[rows][slot], acct)
    np.testing.assert_array_equal(stock, l_stock)
    np.testing.assert_array_equal(shares, l_shares)
    np.testing.assert_array_equal(sellable, l_sellable)


def test_holdings_stay_a_handful_while_trading():
    model, pop = _model(n=400, activity=0.5)
    for _ in range(16):
        model.step()
        slot, *_ = pop.positions(pop.rows)
        assert np.bincount(slot, minlength=pop.n).max() <= pop.cfg.holdings
    assert np.abs(pop.last_action).sum() > 0  # they did trade


def test_t_plus_one_and_whole_lots():
    model, pop = _model(n=400, activity=0.5)
    seen = _spy(pop)
    lot = model.market.lot
    sold = 0
    for _ in range(model.total_steps):
        model.step()
        orders, sellable = seen[-1]
        sells = orders.side < 0
        assert np.all(orders.lots * lot <= np.where(sells, sellable, np.inf))
        account, _, signed, _ = model.market.last_fills
        mine = np.isin(account, pop.accounts)
        assert np.all(signed[mine] % lot == 0)
        sold += int((signed[mine] < 0).sum())
        key = model.ledger.key
        in_pop = np.isin(key // model.ledger.n_stocks, pop.accounts)
        # Holdings only fall by sales, so this says: nobody sold more than it held at the open.
        assert np.all(model.ledger.shares[in_pop] >= model.ledger.bought_today[in_pop])
        assert np.all(model.ledger.shares[in_pop] % lot == 0)
    assert sold > 0
    assert model.ledger.conservation_error()[0] == 0


def _twin_decisions(mutate, **cfg: float) -> tuple[Orders, Orders]:
    """Orders of two equal populations, the second after ``mutate(pop)``."""
    _, plain = _model(seed=5, n=1500, activity=0.5, **cfg)
    _, changed = _model(seed=5, n=1500, activity=0.5, **cfg)
    plain.decide(plain.rows)  # mark wealth so a mutation can refer to it
    changed.decide(changed.rows)
    mutate(changed)
    return plain.decide(plain.rows), changed.decide(changed.rows)


def _numpy_orders(pop: RetailChasers, rows: np.ndarray) -> Orders:
    """``RetailChasers._orders`` as it was in numpy passes: the reference for the compiled
    passes that replaced it (the same draws, in the same order)."""
    market, c, rng, ledger = pop.market, pop.cfg, pop.rng, pop.model.ledger
    r, lot = rows.shape[0], market.lot
    slot, h_stock, _, h_sellable = pop.positions(rows)
    looked = choice(rng, pop.look_weights(), (r, LOOKED_AT))
    drawdown = np.clip(1.0 - pop.wealth[rows] / np.maximum(pop.peak_wealth[rows], 1e-9), 0, 1)
    own = c.chase * pop.ret20[looked].mean(axis=1) - c.panic * drawdown
    cash_share = np.maximum(ledger.cash[pop.accounts[rows]], 0) / 100.0
    own += REBALANCE * (cash_share / np.maximum(pop.wealth[rows], 1.0) - 0.5)
    score = c.herding * pop.neighbour_action(rows) + (1.0 - c.herding) * own
    buy = rng.random(r) < 0.5 * (1.0 + np.tanh(score))

    gumbel = rng.gumbel(size=looked.shape)
    best = np.argmax(c.chase * pop.ret20[looked] + gumbel, axis=1)
    stock_buy = np.take_along_axis(looked, best[:, None], axis=1)[:, 0]
    pick_u = rng.random(r)
    if slot.shape[0]:  # a full portfolio adds to a holding
        count = np.bincount(slot, minlength=r)
        first = np.searchsorted(slot, np.arange(r))
        pick = np.minimum(first + np.floor(pick_u * count).astype(np.int64), slot.shape[0] - 1)
        stock_buy = np.where(count >= c.holdings, h_stock[pick], stock_buy)
    ok = h_sellable >= lot
    s_slot, s_stock, s_lots = slot[ok], h_stock[ok], h_sellable[ok] // lot
    stock_sell, sell_lots = np.zeros(r, np.int64), np.zeros(r, np.int64)
    if s_slot.shape[0]:
        count = np.bincount(s_slot, minlength=r)
        first = np.searchsorted(s_slot, np.arange(r))
        pick = np.minimum(first + np.floor(pick_u * count).astype(np.int64), s_slot.shape[0] - 1)
        stock_sell, sell_lots = s_stock[pick], np.where(count > 0, s_lots[pick], 0)
    full_sale = pop.panicking[rows] | (sell_lots <= 1)
    sell_lots = np.where(full_sale, sell_lots, np.ceil(sell_lots / 2)).astype(np.int64)

    side = np.where(buy, 1, -1).astype(np.int8)
    stock = np.where(buy, stock_buy, stock_sell)
    limit_u, offset = rng.random(r), rng.exponential(LIMIT_OFFSET, r)
    near = np.clip(
        np.rint(market.last[stock] * np.exp(-side * offset)).astype(np.int64),
        market.grid.lower[stock],
        market.grid.upper[stock],
    )
    at_limit = (limit_u < MARKET_ORDER_SHARE) | (pop.panicking[rows] & (side < 0))
    through = np.rint(market.last[stock] * (1.0 + side * MARKET_ORDER_REACH)).astype(np.int64)
    market_price = np.where(
        side > 0,
        np.minimum(market.grid.upper[stock], through),
        np.maximum(market.grid.lower[stock], through),
    )
    price = np.where(at_limit, market_price, near).astype(np.int64)
    cash_fen = np.maximum(ledger.cash[pop.accounts[rows]], 0)
    budget = np.minimum(cash_fen, pop.wealth[rows] * 100.0 / (4 * c.holdings))
    buy_lots = np.floor(budget / (price * lot)).astype(np.int64)
    lots = np.where(buy, buy_lots, sell_lots)
    sent = lots > 0
    pop.action[rows] = np.where(sent, side, 0)
    pop.selling[rows] = sent & (side < 0)
    # A panicking investor's sells: what of them fills is the model's panic sales.
    panic = np.where(pop.panicking[rows] & (side < 0), PANIC, CALM)
    return Orders(pop.accounts[rows], stock, side, price, lots, panic).select(sent)


@pytest.mark.parametrize(("seed", "holdings"), [(5, 5), (6, 2)])
def test_compiled_orders_match_the_numpy_rules_bit_for_bit(seed, holdings):
    """On a traded market, with some investors panicking, some portfolios full and some
    positions bought today (not sellable): the same orders, flags and generator state."""
    model, pop = _model(seed=seed, n=1500, activity=0.5, holdings=holdings)
    for _ in range(6):
        model.step()
    pop.peak_wealth[::3] = 1.5 * pop.wealth[::3]  # a third of them in a drawdown
    pop._mark(pop.rows)
    rows = np.flatnonzero(model.rng.random(pop.n) < 0.6)
    slot, stock, shares, _ = pop.positions(rows[:20])  # twenty of them hand all they hold on
    taker = np.full(slot.shape[0], pop.accounts[rows[-1]])
    model.ledger.transfer(pop.accounts[rows[slot]], taker, stock, shares, locked=True)
    slot, _, shares, sellable = pop.positions(rows)
    count = np.bincount(slot, minlength=rows.shape[0])
    assert pop.panicking[rows].any() and not pop.panicking[rows].all()
    assert (count >= holdings).any() and (count == 0).any() and (sellable < shares).any()

    state, action, selling = model.rng.bit_generator.state, pop.action.copy(), pop.selling.copy()
    want = _numpy_orders(pop, rows)
    want_state, want_action, want_selling = model.rng.bit_generator.state, pop.action, pop.selling
    model.rng.bit_generator.state, pop.action, pop.selling = state, action, selling
    got = pop._orders(rows, pop.positions(rows))
    for name in ("account", "stock", "side", "price", "lots", "duress"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))
        assert getattr(got, name).dtype == getattr(want, name).dtype
    np.testing.assert_array_equal(pop.action, want_action)
    np.testing.assert_array_equal(pop.selling, want_selling)
    assert model.rng.bit_generator.state == want_state
    assert (got.side > 0).any() and (got.side < 0).any() and len(got) > 300
    panic = got.duress == PANIC
    assert panic.any() and not panic[got.side < 0].all() and not (got.duress == FORCED).any()


def test_drawdown_raises_selling_and_counts_as_panic():
    def crash(pop: RetailChasers) -> None:
        pop.peak_wealth[:] = 1.5 * pop.wealth

    plain, scared = _twin_decisions(crash)
    n_plain, n_scared = int((plain.side < 0).sum()), int((scared.side < 0).sum())
    assert n_scared > 2 * n_plain

    model, pop = _model(seed=5, n=1500, activity=0.5)
    pop.peak_wealth[:] = 1.5 * pop.capital
    model.step()
    assert pop.panicking.all() and pop.selling.sum() > 0
    # A panic sale is counted as such, not as a forced sale (no risk line, margin call,
    # buy-in or redemption made it).
    assert model.market.panic_turnover > 0 and model.forced_sales == 0
    calm_model, calm = _model(seed=5, n=1500, activity=0.5)
    calm_model.step()
    assert not calm.panicking.any() and calm_model.market.panic_turnover == 0


def test_a_fading_peak_ends_the_panic_of_an_investor_whose_wealth_holds():
    """With ``peak_halflife_days`` the peak's lead over wealth halves in that many trading
    days, so an investor whose losses stop also stops panicking; without it the peak
    stays and so does the panic."""
    for halflife in (0.0, 2.0):
        model, pop = _model(seed=5, n=300, activity=0.0, peak_halflife_days=halflife)
        model.step()  # marked once: wealth set
        pop.peak_wealth[:] = 1.5 * pop.wealth  # a third below the peak
        pop._mark(pop.rows)
        assert pop.panicking.all()
        peak, wealth = pop.peak_wealth.copy(), pop.wealth.copy()
        pop.begin_day()  # one day's fade, exactly
        fade = 0.5 ** (1.0 / halflife) if halflife else 1.0
        np.testing.assert_allclose(pop.peak_wealth, wealth + (peak - wealth) * fade)
        days = 0
        while days < 10:  # ten more days, nobody trading: wealth moves with prices only
            model.step()
            days += model.steps % model.steps_per_day == 0
        pop._mark(pop.rows)
        if halflife == 0.0:
            assert pop.panicking.all()
            np.testing.assert_array_equal(pop.peak_wealth, peak)
        else:  # a 32nd of the lead left, or less
            assert not pop.panicking.any()
            assert (pop.peak_wealth - pop.wealth < 0.5 * wealth / 32 + 0.02 * wealth).all()


def test_herding_buy_share_rises_when_neighbours_bought():
    def all_bought(pop: RetailChasers) -> None:
        pop.last_action[:] = 1

    plain, herded = _twin_decisions(all_bought)
    share = [float((o.side > 0).mean()) for o in (plain, herded)]
    assert share[1] > share[0] + 0.15

    plain, herded = _twin_decisions(all_bought, herding=0.0)
    np.testing.assert_array_equal(plain.side, herded.side)


def test_same_seed_same_orders_other_seed_different():
    def run(seed: int) -> list[Orders]:
        model, pop = _model(seed=seed, n=300, activity=0.3)
        seen = _spy(pop)
        for _ in range(8):
            model.step()
        return [orders for orders, _ in seen]

    a, b, c = run(3), run(3), run(4)
    for x, y in zip(a, b, strict=True):
        for name in ("account", "stock", "side", "price", "lots"):
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name))
    assert any(
        len(x) != len(y) or not np.array_equal(x.stock, y.stock) for x, y in zip(a, c, strict=True)
    )


def test_per_agent_engine_runs_the_same_rules_one_row_at_a_time():
    model, pop = _model(n=150, engine="agents", activity=0.5)
    for _ in range(5):
        model.step()
    slot, *_ = pop.positions(pop.rows)
    assert np.bincount(slot, minlength=pop.n).max() <= pop.cfg.holdings
    assert np.abs(pop.last_action).sum() + np.abs(pop.action).sum() > 0
    counts = [len(pop.decide(np.array([row]))) for row in range(20)]
    assert max(counts) == 1, counts  # some trade this step, none more than one order


def test_sample_graph_is_a_small_connected_patch_with_state():
    model, pop = _model(n=1000)
    model.step()
    sub = pop.sample_graph(50)
    assert sub.number_of_nodes() == 50 and nx.is_connected(sub)
    node = next(iter(sub.nodes))
    assert set(sub.nodes[node]) == {"selling", "action", "drawdown"}
    assert sub.nodes[node]["selling"] == bool(pop.selling[node])


def test_an_empty_population_is_harmless():
    model, pop = _model(n=0)
    for _ in range(4):
        model.step()
    assert len(pop.decide(pop.rows)) == 0 and model.forced_sales == 0
    assert pop.sample_graph(10).number_of_nodes() == 0


@pytest.mark.parametrize(("n", "degree", "seed"), [(2000, 8, 3), (300, 5, 11), (40, 1, 2)])
def test_social_graph_from_edges_is_networkx_barabasi_albert(n, degree, seed):
    """The edge arrays give networkx's graph (node and neighbour order too) and its adjacency."""
    from agents.retail import attachments, row_normalized_adjacency, social_graph
    from agents.social import (
        barabasi_albert_edges,
        row_normalized_adjacency_from_edges,
        to_networkx,
    )

    m = attachments(degree)
    reference = social_graph(n, degree, seed)
    edges = barabasi_albert_edges(n, m, seed)
    graph = to_networkx(n, m, edges)
    assert list(graph.nodes) == list(reference.nodes)
    assert list(graph.edges) == list(reference.edges)
    assert all(list(graph.adj[v]) == list(reference.adj[v]) for v in reference)
    want = row_normalized_adjacency(reference, n)
    got = row_normalized_adjacency_from_edges(n, edges)
    for name in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name))


def _numpy_panic_sales_cny(pop: RetailChasers) -> float:
    """CNY sold in the last clearing by the investors panicking, from the fills: what the
    population's ``panic_sales_cny`` counted, in numpy passes, before the panic sells
    were flagged on the orders."""
    account, _, signed, price = pop.market.last_fills
    row = pop.rows_of(account)  # (m,)
    mine = (row >= 0) & (signed < 0)
    mine[mine] = pop.panicking[row[mine]]
    return float(np.dot(-signed[mine], price[mine])) / 100.0


def test_panic_sales_are_what_the_panicking_sold_in_the_clearing():
    """Some investors panic, others not; sells and buys of this and other populations: the
    model's panic sales are what the panicking sold in the step's clearing, and none of it
    counts as a forced sale."""
    model, pop = _model(seed=5, n=1500, activity=0.5)
    pop.peak_wealth[::2] = 1.5 * pop.capital[::2]  # every other investor in a drawdown
    seen = 0.0
    for _ in range(4):
        model.step()
        got, want = model.market.panic_turnover, _numpy_panic_sales_cny(pop)
        assert got == want and model.forced_sales == 0.0
        seen += got
    assert seen > 0 and pop.panicking.any() and not pop.panicking.all()
    account, _, signed, _ = model.market.last_fills
    assert (pop.rows_of(account) < 0).any() and (signed > 0).any()  # others' fills, buys
