"""Scenario configuration: frozen dataclasses that validate themselves.

Every scenario value lives in one of the sections below. Each field carries its
allowed range in its metadata, so a bad value is refused the moment a config is
built, with a one-line message naming the dotted key, the value and what is
allowed. The same machinery serves TOML files (experiments/), ``--set`` overrides
and the keyword arguments that ``mesa.batch_run`` passes to ``MarketModel``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self


class ConfigError(ValueError):
    """A configuration value or key that the model cannot accept."""


def _num(default: float, lo: float | None = None, hi: float | None = None, *, doc: str = ""):
    """A numeric field with an inclusive allowed range ``[lo, hi]``."""
    return field(default=default, metadata={"lo": lo, "hi": hi, "doc": doc})


def _open(default: float, lo: float, hi: float, *, doc: str = ""):
    """A numeric field with an open allowed range ``(lo, hi)``."""
    return field(default=default, metadata={"lo": lo, "hi": hi, "open": True, "doc": doc})


def _date(default: str):
    """A date field (TOML dates or ISO strings)."""
    return field(default=dt.date.fromisoformat(default))


def _describe_range(meta: Mapping[str, Any]) -> str:
    lo, hi, is_open = meta.get("lo"), meta.get("hi"), meta.get("open", False)
    if lo is not None and hi is not None:
        return f"in ({lo}, {hi})" if is_open else f"in [{lo}, {hi}]"
    if lo is not None:
        return f"> {lo}" if is_open else f">= {lo}"
    if hi is not None:
        return f"< {hi}" if is_open else f"<= {hi}"
    return ""


_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _coerce(key: str, value: Any, kind: Any) -> Any:
    """Return ``value`` as ``kind`` or raise a ConfigError naming ``key``."""
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} = {value!r}: must be a number")
        value = float(value)
        if not math.isfinite(value):
            raise ConfigError(f"{key} = {value!r}: must be a finite number")
        return value
    if kind is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} = {value!r}: must be an integer")
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key} = {value!r}: must be true or false")
        return value
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key} = {value!r}: must be a string")
        return value
    if kind is dt.date:
        if isinstance(value, dt.datetime):
            value = value.date()
        if isinstance(value, str):
            try:
                value = dt.date.fromisoformat(value)
            except ValueError:
                raise ConfigError(f"{key} = {value!r}: must be a date YYYY-MM-DD") from None
        if not isinstance(value, dt.date):
            raise ConfigError(f"{key} = {value!r}: must be a date YYYY-MM-DD")
        return value
    if typing.get_origin(kind) is tuple:
        (item_kind, _ellipsis) = typing.get_args(kind)
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} = {value!r}: must be a list")
        return tuple(_coerce(f"{key}[{i}]", v, item_kind) for i, v in enumerate(value))
    raise TypeError(f"unsupported config type {kind!r} for {key}")  # a bug, not user input


class Section:
    """Base of every config section: type and range checks at construction."""

    _prefix: str = ""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            kind = hints[f.name]
            if isinstance(kind, type) and issubclass(kind, Section):
                continue
            key = self._key(f.name)
            value = _coerce(key, getattr(self, f.name), kind)
            object.__setattr__(self, f.name, value)
            if kind in (int, float) and f.metadata:
                lo, hi = f.metadata.get("lo"), f.metadata.get("hi")
                is_open = f.metadata.get("open", False)
                bad = (lo is not None and (value <= lo if is_open else value < lo)) or (
                    hi is not None and (value >= hi if is_open else value > hi)
                )
                if bad:
                    raise ConfigError(f"{key} = {value!r}: must be {_describe_range(f.metadata)}")
        self.check()

    def check(self) -> None:
        """Cross-field checks; sections override this."""

    @classmethod
    def _key(cls, name: str) -> str:
        return f"{cls._prefix}.{name}" if cls._prefix else name

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Self:
        """Build this section from nested mappings, refusing unknown keys."""
        if not isinstance(data, Mapping):
            where = cls._prefix or "scenario"
            raise ConfigError(f"{where} = {data!r}: must be a table")
        hints = typing.get_type_hints(cls)
        names = [f.name for f in dataclasses.fields(cls)]
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            if name not in names:
                close = difflib.get_close_matches(str(name), names, n=1)
                hint = f"; did you mean {cls._key(close[0])!r}?" if close else ""
                allowed = ", ".join(names)
                raise ConfigError(f"{cls._key(name)}: unknown key{hint} (allowed: {allowed})")
            kind = hints[name]
            if isinstance(kind, type) and issubclass(kind, Section):
                kwargs[name] = kind.from_mapping(value)
            else:
                kwargs[name] = value
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Nested plain-Python dict (dates as ISO strings), ready for JSON or TOML."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Section):
                value = value.to_dict()
            elif isinstance(value, dt.date):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    def with_overrides(self, overrides: Mapping[str, Any]) -> Self:
        """Return a copy with dotted-key overrides applied (``{"universe.n_stocks": 200}``)."""
        data = self.to_dict()
        for dotted, value in overrides.items():
            node = data
            parts = str(dotted).split(".")
            for depth, part in enumerate(parts[:-1]):
                child = node.setdefault(part, {})
                if not isinstance(child, dict):
                    table = ".".join(parts[: depth + 1])
                    raise ConfigError(f"{dotted} = {value!r}: {table} is a value, not a table")
                node = child
            node[parts[-1]] = value
        return type(self).from_mapping(data)


def _section(prefix: str):
    """Class decorator: a frozen dataclass section whose keys start with ``prefix``."""

    def wrap(cls: type) -> type:
        cls._prefix = prefix
        return dataclass(frozen=True)(cls)

    return wrap


@_section("universe")
class UniverseConfig(Section):
    """The listed stocks: how many, how big, on which boards."""

    n_stocks: int = _num(1000, 10, 20000, doc="number of listed stocks (5,000 at full scale)")
    cap_tail: float = _num(1.0, 0.3, 3.0, doc="Pareto exponent of free-float market caps")
    min_cap_bn: float = _open(1.5, 0.0, 1e3, doc="smallest free-float cap, bn CNY")
    max_cap_bn: float = _open(1500.0, 0.0, 1e5, doc="largest free-float cap, bn CNY")
    median_price: float = _open(12.0, 0.0, 1e4, doc="median share price, CNY")
    share_chinext_star: float = _num(0.28, 0.0, 1.0, doc="share of stocks on ChiNext/STAR")
    share_beijing: float = _num(0.05, 0.0, 1.0, doc="share of stocks on the Beijing exchange")
    share_st: float = _num(0.03, 0.0, 1.0, doc="share of main-board stocks under ST")
    limit_main: float = _open(0.10, 0.0, 1.0, doc="main-board daily price limit")
    limit_st: float = _open(0.05, 0.0, 1.0, doc="ST daily price limit")
    limit_growth: float = _open(0.20, 0.0, 1.0, doc="ChiNext/STAR daily price limit")
    limit_beijing: float = _open(0.30, 0.0, 1.0, doc="Beijing daily price limit")
    microcap_count: int = _num(400, 1, 20000, doc="micro-cap index size at 5,000 stocks")
    microcap_rebalance_days: int = _num(5, 1, 250, doc="trading days between micro-cap rebalances")
    csi_rebalance_days: int = _num(120, 1, 1000, doc="trading days between CSI tier rebalances")

    def check(self) -> None:
        if self.max_cap_bn <= self.min_cap_bn:
            raise ConfigError(
                f"universe.max_cap_bn = {self.max_cap_bn}: must exceed "
                f"universe.min_cap_bn = {self.min_cap_bn}"
            )
        if self.share_chinext_star + self.share_beijing > 1.0:
            raise ConfigError(
                f"universe.share_beijing = {self.share_beijing}: with universe.share_chinext_star"
                f" = {self.share_chinext_star} the board shares must sum to at most 1"
            )


@_section("market")
class MarketConfig(Section):
    """Trading sessions and the order-book grid."""

    start: dt.date = field(default=dt.date(2023, 1, 3))
    end: dt.date = field(default=dt.date(2023, 12, 29))
    steps_per_day: int = _num(4, 1, 48, doc="intraday session slices per trading day")
    n_levels: int = _num(101, 5, 2001, doc="price levels per stock between the day's limits")
    lot: int = _num(100, 1, 10000, doc="board lot, shares")

    def check(self) -> None:
        if self.end < self.start:
            raise ConfigError(
                f"market.end = {self.end}: must not be before market.start = {self.start}"
            )


@_section("fundamentals")
class FundamentalsConfig(Section):
    """Fundamental value: market factor, size factor, idiosyncratic news (daily)."""

    market_vol: float = _num(0.008, 0.0, 0.2, doc="daily volatility of the market factor")
    size_vol: float = _num(0.003, 0.0, 0.2, doc="daily volatility of the small-minus-big factor")
    idio_vol: float = _num(0.008, 0.0, 0.2, doc="daily idiosyncratic volatility")
    size_drift: float = _num(0.0, -0.05, 0.05, doc="daily drift of small caps over large caps")
    initial_mispricing: float = _num(0.05, 0.0, 1.0, doc="st.dev. of log(price/value) at start")
    market_drift: float = _num(0.0, -0.05, 0.05, doc="daily drift of the market factor")
    dip_start: dt.date = _date("2099-01-01")
    dip_end: dt.date = _date("2099-01-01")
    dip_drift: float = _num(0.0, -0.1, 0.1, doc="extra daily market drift from dip_start to end")

    def check(self) -> None:
        if self.dip_end < self.dip_start:
            raise ConfigError(
                f"fundamentals.dip_end = {self.dip_end}: must not be before "
                f"fundamentals.dip_start = {self.dip_start}"
            )


@_section("market_makers")
class MarketMakerConfig(Section):
    """Liquidity providers resting a ladder of limit orders on both sides."""

    n_agents: int = _num(10, 1, 1000)
    depth_pct_cap: float = _open(
        0.002, 0.0, 1.0, doc="full depth per side, share of free-float cap"
    )
    ladder_levels: int = _num(10, 1, 100, doc="price levels per side of each ladder")
    ladder_spacing: float = _open(0.002, 0.0, 0.1, doc="relative distance between ladder rungs")
    replenish: float = _num(0.15, 0.0, 1.0, doc="share of missing depth restored per step")
    vol_aversion: float = _num(5.0, 0.0, 100.0, doc="depth cut per unit of recent vol / normal vol")
    inventory_skew: float = _num(0.02, 0.0, 1.0, doc="quote shift per unit inventory deviation")
    inventory_pct_float: float = _num(0.03, 0.0, 0.5, doc="initial inventory, share of float")


@_section("fundamental_traders")
class FundamentalTraderConfig(Section):
    """Value investors who buy below and sell above fundamental value."""

    n_agents: int = _num(200, 0, 1_000_000)
    capital_pct_float: float = _num(0.02, 0.0, 1.0, doc="total cash, share of total float cap")
    holdings_pct_float: float = _num(0.10, 0.0, 0.9, doc="initial holdings, share of float")
    threshold: float = _num(0.05, 0.0, 1.0, doc="mispricing before they act")
    aggressiveness: float = _num(
        0.02, 0.0, 1.0, doc="share of float traded a day per unit mispricing"
    )
    stocks_watched: int = _num(
        20, 1, 10000, doc="stocks each one reviews per step (more if needed to cover every stock)"
    )
    # A risk budget on their own book, off at 0 (the default).
    drawdown_budget: float = _num(
        0.0, 0.0, 1.0, doc="own book's drawdown (log) at which bids fall to the floor (0: off)"
    )
    drawdown_free: float = _num(
        0.0, 0.0, 1.0, doc="own book's drawdown (log) before buying starts to shrink"
    )
    drawdown_halflife: float = _open(
        20.0, 0.0, 1e6, doc="days over which a drawdown, held flat, halves (it ages)"
    )
    drawdown_floor: float = _num(
        0.0, 0.0, 1.0, doc="share of the full bid left however deep the drawdown"
    )

    def check(self) -> None:
        if self.drawdown_budget > 0.0 and self.drawdown_free > self.drawdown_budget:
            raise ConfigError(
                f"fundamental_traders.drawdown_free = {self.drawdown_free}: must not exceed "
                f"fundamental_traders.drawdown_budget = {self.drawdown_budget}"
            )


@_section("noise_traders")
class NoiseTraderConfig(Section):
    """Liquidity-demanding traders with no view; attention rises with volatility."""

    n_agents: int = _num(2000, 0, 10_000_000)
    orders_per_stock_step: float = _num(1.0, 0.0, 1000.0, doc="mean orders per stock per step")
    order_pct_cap: float = _open(1e-4, 0.0, 0.1, doc="median order value, share of cap")
    size_sigma: float = _num(1.0, 0.0, 4.0, doc="log-normal spread of order size")
    market_order_share: float = _num(0.4, 0.0, 1.0, doc="share of orders sent as market orders")
    limit_offset: float = _num(
        0.005, 0.0, 0.5, doc="mean distance of a limit order from last price"
    )
    cancel_rate: float = _num(0.5, 0.0, 1.0, doc="share of resting orders withdrawn per step")
    attention: float = _num(3.0, 0.0, 50.0, doc="extra activity per unit recent vol / normal vol")
    rebalancing: float = _num(10.0, 0.0, 100.0, doc="pull of the buy odds towards the cash target")
    holdings_pct_float: float = _num(0.2, 0.0, 0.9, doc="initial holdings, share of float")
    capital_pct_float: float = _num(0.05, 0.0, 1.0, doc="total cash, share of total float cap")


@_section("futures")
class FuturesConfig(Section):
    """Index futures IF (CSI 300), IC (CSI 500), IM (CSI 1000), cleared in the stock kernel."""

    enabled: bool = False
    margin: float = _open(0.12, 0.0, 1.0, doc="margin rate on notional (12-15% in practice)")
    limit: float = _open(0.10, 0.0, 1.0, doc="daily price limit")
    mm_depth_bn: float = _num(
        20.0, 0.0, 1e4, doc="futures makers' depth a side, bn CNY, full scale"
    )
    mm_spacing: float = _open(0.0005, 0.0, 0.05, doc="relative distance between ladder rungs")
    mm_replenish: float = _num(0.2, 0.0, 1.0, doc="share of missing depth restored per step")
    mm_inventory_skew: float = _num(0.03, 0.0, 1.0, doc="quote shift at the inventory limit")
    mm_inventory_limit_bn: float = _open(2000.0, 0.0, 1e5, doc="inventory the makers carry, bn")
    # true: the makers' long limit shrinks with the lendable supply (a long futures book is
    # hedged by shorting the index with borrowed stock; the short limit needs no lender),
    # and past it they still bid a tenth of their depth
    mm_long_needs_lending: bool = False


@_section("lending")
class LendingConfig(Section):
    """Securities lending supply and the dated policy timeline that cut it."""

    institutional_pct_float: float = _num(0.004, 0.0, 0.5, doc="lendable from institutions")
    restricted_pct_float: float = _num(0.006, 0.0, 0.5, doc="lendable from restricted shares")
    restricted_ban: dt.date = _date("2023-10-16")
    t1_date: dt.date = _date("2024-01-29")
    t0_close: dt.date = _date("2024-02-06")
    curb_enabled: bool = True
    t1_cut: float = _num(0.4, 0.0, 1.0, doc="share of institutional supply lost at t1_date")
    t0_cut: float = _num(0.5, 0.0, 1.0, doc="share of what is left lost at t0_close")
    recall_per_day: float = _num(0.05, 0.0, 1.0, doc="share of excess loans recalled per day")


@_section("neutral")
class NeutralFundConfig(Section):
    """Private quant-neutral products: long small caps, short index futures or borrowed stock."""

    n_funds: int = _num(0, 0, 100_000, doc="number of products at full scale (500 in jan2024)")
    # false: the counterfactual where no product is forced to sell (no risk line, margin
    # call, redemption or cut for the hedge's cost; recalled loans are still bought in,
    # and the public funds and retail still sell under duress)
    forced_selling: bool = True
    aum_bn: float = _num(500.0, 0.0, 1e5, doc="total equity, bn CNY, at full scale")
    dma_share: float = _num(0.3, 0.0, 1.0, doc="share of products run as DMA")
    dma_leverage: float = _num(3.0, 1.0, 4.0, doc="gross long exposure / equity of DMA products")
    plain_leverage: float = _num(
        0.85, 0.5, 2.0, doc="gross long / equity otherwise (cash for margin)"
    )
    warning_line: float = _open(0.8, 0.0, 1.0, doc="NAV per unit where exposure is cut")
    stop_line: float = _open(0.7, 0.0, 1.0, doc="NAV per unit where everything is liquidated")
    line_spread: float = _num(
        0.05, 0.0, 0.3, doc="some funds set their lines up to this higher (drawdown lines lower)"
    )
    warning_cut: float = _num(0.5, 0.0, 1.0, doc="share of exposure cut at the warning line")
    drawdown_line: float = _num(
        1.0, 0.01, 1.0, doc="drawdown from the NAV peak that also cuts exposure (1: never)"
    )
    # true: a levered product's drawdown budget is drawdown_line times its leverage (a DMA
    # product at 3x allows 30% for a 10% line: the same loss on the strategy underneath)
    drawdown_per_leverage: bool = False
    recovery_days: int = _num(
        20, 1, 1000, doc="days in a cut before the book is rebuilt on a morning off its low"
    )
    # true: rebuild only once NAV has held above the cut's low for recovery_days
    recovery_holds_low: bool = False
    # true: size the futures hedge on the long book held, so a cut covers its futures only
    # as its longs are sold; false: on the book planned, so the hedge leads the sales
    hedge_held_book: bool = True
    basket_size: int = _num(300, 1, 5000, doc="stocks in each long basket at full scale")
    size_tilt: float = _num(2.0, 0.0, 10.0, doc="preference for small caps in basket picks")
    core_share: float = _num(
        0.0,
        0.0,
        1.0,
        doc="share of a basket's names drawn from the members of the indices it is hedged "
        "with (CSI 500 for IC, CSI 1000 for IM, split as im_share): the benchmark core; "
        "a tier with too few members leaves the rest to the size-tilted picks",
    )
    lending_hedge_share: float = _num(0.3, 0.0, 1.0, doc="hedge share via borrowed stock")
    im_share: float = _num(0.6, 0.0, 1.0, doc="futures hedge share in IM (the rest IC)")
    route_by_cost: float = _num(
        0.0,
        0.0,
        100.0,
        doc="shift of the IM share away from im_share per unit of IC's basis over IM's "
        "(annualized, smoothed): the hedge moves to the cheaper contract; 0 keeps im_share",
    )
    redemption_sensitivity: float = _num(2.0, 0.0, 100.0, doc="daily redemptions per drawdown")
    trade_days: int = _num(
        3, 1, 60, doc="pace of a rebalance: each step trades 1 / (days x steps a day) of the gap"
    )
    rebalance_days: int = _num(20, 1, 250, doc="days over which exposure follows equity")
    liquidation_days: float = _num(
        10.0, 0.25, 60.0, doc="pace of a forced cut, as trade_days (a third is left after it)"
    )
    forced_discount: float = _num(0.01, 0.0, 0.3, doc="how far through last a forced trade goes")
    max_leverage_ratio: float = _num(1.3, 1.0, 5.0, doc="exposure / planned before the broker cuts")
    inflow: float = _num(
        0.002, 0.0, 0.1, doc="daily subscriptions, share of equity, per 10% of 60-day NAV return"
    )
    expected_alpha: float = _open(
        0.15,
        0.0,
        10.0,
        doc="yearly excess return investors expect: subscriptions stop as the futures "
        "discount reaches it, books shrink beyond it, to nothing at twice it",
    )
    nav0_spread: float = _num(0.25, 0.0, 1.0, doc="initial NAV per unit drawn in 1 + [0, this]")


@_section("public_funds")
class PublicFundConfig(Section):
    """Mutual funds with micro-cap mandates: flows chase past returns."""

    n_funds: int = _num(0, 0, 100_000, doc="number of funds at full scale (30 in jan2024)")
    aum_bn: float = _num(150.0, 0.0, 1e5, doc="total assets, bn CNY, at full scale")
    cash_buffer: float = _num(0.05, 0.0, 0.9, doc="cash share kept for redemptions")
    flow_sensitivity: float = _num(0.02, 0.0, 1.0, doc="daily flow per unit of 20-day return")
    basket_size: int = _num(200, 1, 5000, doc="stocks held at full scale")


@_section("enhanced_funds")
class EnhancedFundConfig(Section):
    """Quant index-enhanced funds: long-only books of a CSI index's members, whose flows
    chase past returns as the public funds' do (off by default)."""

    n_funds: int = _num(0, 0, 100_000, doc="number of funds at full scale")
    aum_bn: float = _num(300.0, 0.0, 1e5, doc="total assets, bn CNY, at full scale")
    cash_buffer: float = _num(0.05, 0.0, 0.9, doc="cash share kept for redemptions")
    flow_sensitivity: float = _num(0.06, 0.0, 1.0, doc="daily flow per unit of 20-day return")
    tier: int = _num(
        1,
        0,
        3,
        doc="the index whose members they hold: 0 CSI 300, 1 CSI 500, 2 CSI 1000, 3 CSI 2000",
    )
    beyond: float = _num(
        0.0, 0.0, 0.9, doc="share of a fund's names taken from the smallest caps outside its index"
    )


@_section("snowball")
class SnowballConfig(Section):
    """A broker's book of snowball autocallables on CSI 500 and CSI 1000, delta hedged."""

    notional_bn: float = _num(0.0, 0.0, 1e5, doc="outstanding notional, bn CNY, full scale")
    ic_share: float = _num(0.6, 0.0, 1.0, doc="share written on CSI 500 (the rest CSI 1000)")
    knock_in: float = _num(0.75, 0.3, 1.0, doc="knock-in barrier, share of initial level")
    knock_out: float = _num(1.03, 0.8, 1.5, doc="knock-out barrier, share of initial level")
    coupon: float = _num(0.15, 0.0, 1.0, doc="annual coupon")
    tenor_days: int = _num(504, 20, 2000, doc="tenor, trading days")
    issue_span_days: int = _num(250, 1, 2000, doc="issue dates spread over this many days")
    vol: float = _open(0.22, 0.0, 2.0, doc="volatility the issuer prices deltas with")
    hedge_lag: float = _num(0.5, 0.0, 1.0, doc="share of the delta gap closed per step")


@_section("retail")
class RetailConfig(Section):
    """Retail investors on a social graph who chase small-cap winners and panic on losses."""

    n_agents: int = _num(0, 0, 10_000_000, doc="retail investors (jan2024: 20,000; 100,000 full)")
    capital_bn: float = _num(400.0, 0.0, 1e6, doc="total cash and stock, bn CNY, at full scale")
    degree: int = _num(8, 1, 200, doc="mean number of neighbours on the graph")
    activity: float = _num(
        0.05,
        0.0,
        1.0,
        doc="chance an investor trades in a step, in a calm market (x1-3 as it moves)",
    )
    chase: float = _num(
        20.0, 0.0, 1000.0, doc="weight of the 20-day return in picks and in the buy-or-sell score"
    )
    herding: float = _num(0.5, 0.0, 1.0, doc="weight of neighbours' actions in the decision")
    panic: float = _num(10.0, 0.0, 1000.0, doc="extra sell odds per unit own drawdown")
    peak_halflife_days: float = _num(
        0.0,
        0.0,
        10_000.0,
        doc="trading days over which the peak an investor's drawdown is measured from "
        "halves its lead on the investor's wealth (0: the peak never fades)",
    )
    holdings: int = _num(5, 1, 100, doc="stocks an investor holds")


@_section("arbitrage")
class ArbitrageConfig(Section):
    """Basis arbitrageurs: buy futures at a discount, short the basket with borrowed stock."""

    capital_bn: float = _num(0.0, 0.0, 1e5, doc="capital, bn CNY, at full scale")
    threshold: float = _num(0.06, 0.0, 2.0, doc="annualized discount before they act")
    speed: float = _num(0.3, 0.0, 1.0, doc="share of the target position traded per step")
    carry_capital_bn: float = _num(
        0.0, 0.0, 1e5, doc="capital selling futures at a premium against bought stock, bn"
    )
    switch_capital_bn: float = _num(
        0.0,
        0.0,
        1e5,
        doc="index baskets held long-only, bn, switched into futures at a discount",
    )
    switch_threshold: float = _num(
        0.1,
        0.0,
        2.0,
        doc="annualized discount at which the index baskets switch: the alpha their stock "
        "picking gives up",
    )
    switch_days: float = _num(
        5.0, 0.25, 60.0, doc="trading days over which the index baskets switch all of a contract"
    )


@_section("speculators")
class SpeculatorConfig(Section):
    """Trend followers in index futures: short in a falling market, long in a rising one."""

    capital_bn: float = _num(0.0, 0.0, 1e5, doc="capital, bn CNY, at full scale")
    n_agents: int = _num(20, 1, 1000, doc="desks, each with its own lookback")
    lookback_days: int = _num(10, 1, 250, doc="mean trailing window of the trend, trading days")
    full_signal: float = _open(0.05, 0.0, 1.0, doc="trailing return at which a desk is all in")
    dead_band: float = _num(
        0.0, 0.0, 0.99, doc="share of full_signal a trend must pass before a desk holds any"
    )
    leverage: float = _num(1.0, 0.0, 5.0, doc="notional all in, per unit of equity")
    speed: float = _num(0.25, 0.0, 1.0, doc="share of the gap to the target traded per step")
    max_basis: float = _num(
        100.0,
        0.0,
        100.0,
        doc="annualized discount a desk sells down to, and premium it buys up to "
        "(100: the price limits)",
    )
    start: dt.date = _date("1900-01-01")  # first day the desks take positions


@_section("national_team")
class NationalTeamConfig(Section):
    """State buying of broad ETFs on a schedule, large caps first."""

    enabled: bool = False
    start: dt.date = _date("2024-01-22")
    early_date: dt.date = _date("2024-02-06")
    early_bn: float = _num(70.0, 0.0, 1e5, doc="cumulative buying by early_date, bn, full scale")
    late_date: dt.date = _date("2024-02-23")
    late_bn: float = _num(410.0, 0.0, 1e5, doc="cumulative buying by late_date, bn, full scale")
    small_cap_date: dt.date = _date("2024-02-06")
    small_cap_share: float = _num(0.5, 0.0, 1.0, doc="share going to CSI 500/1000 after it")

    def check(self) -> None:
        if not self.start <= self.early_date <= self.late_date:
            raise ConfigError(
                f"national_team.early_date = {self.early_date}: must lie between "
                f"national_team.start = {self.start} and national_team.late_date = {self.late_date}"
            )


@_section("")
class ScenarioConfig(Section):
    """A whole scenario: everything one run needs besides its seed."""

    name: str = "custom"
    description: str = ""
    universe: UniverseConfig = field(default_factory=UniverseConfig)
    market: MarketConfig = field(default_factory=MarketConfig)
    fundamentals: FundamentalsConfig = field(default_factory=FundamentalsConfig)
    market_makers: MarketMakerConfig = field(default_factory=MarketMakerConfig)
    fundamental_traders: FundamentalTraderConfig = field(default_factory=FundamentalTraderConfig)
    noise_traders: NoiseTraderConfig = field(default_factory=NoiseTraderConfig)
    futures: FuturesConfig = field(default_factory=FuturesConfig)
    lending: LendingConfig = field(default_factory=LendingConfig)
    neutral: NeutralFundConfig = field(default_factory=NeutralFundConfig)
    public_funds: PublicFundConfig = field(default_factory=PublicFundConfig)
    enhanced_funds: EnhancedFundConfig = field(default_factory=EnhancedFundConfig)
    snowball: SnowballConfig = field(default_factory=SnowballConfig)
    retail: RetailConfig = field(default_factory=RetailConfig)
    arbitrage: ArbitrageConfig = field(default_factory=ArbitrageConfig)
    speculators: SpeculatorConfig = field(default_factory=SpeculatorConfig)
    national_team: NationalTeamConfig = field(default_factory=NationalTeamConfig)


def flat_keys(config: Section) -> dict[str, Any]:
    """Dotted key -> value for every leaf of a config, as ``--set`` names them."""
    out: dict[str, Any] = {}

    def walk(node: dict[str, Any], prefix: str) -> None:
        for k, v in node.items():
            key = f"{prefix}{k}"
            if isinstance(v, dict):
                walk(v, key + ".")
            else:
                out[key] = v

    walk(config.to_dict(), "")
    return out


__all__ = [
    "ConfigError",
    "FundamentalTraderConfig",
    "FundamentalsConfig",
    "MarketConfig",
    "MarketMakerConfig",
    "NoiseTraderConfig",
    "ScenarioConfig",
    "Section",
    "UniverseConfig",
    "flat_keys",
]
