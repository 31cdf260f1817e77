"""The listed stocks: free-float caps, prices, boards, price limits and size tiers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from model.config import UniverseConfig

# Boards, coded as small integers for array work.
MAIN, ST, GROWTH, BEIJING = 0, 1, 2, 3
BOARD_NAMES = ("main", "st", "chinext_star", "beijing")

# Size tiers at the reference universe of 5,000 stocks, largest first.
REFERENCE_N = 5000
TIERS = ("csi300", "csi500", "csi1000", "csi2000")
TIER_SIZES = (300, 500, 1000, 2000)
INDEX_NAMES = (*TIERS, "microcap")
CSI300, CSI500, CSI1000, CSI2000 = range(len(TIERS))  # tier codes, as in Indices.tier
REST = len(TIERS)  # tier code of stocks below the CSI 2000


@dataclass
class Universe:
    """Static description of every stock, one entry per stock (shape ``(S,)``)."""

    float_shares: np.ndarray  # (S,) int64, free-float shares, a whole number of lots
    price0: np.ndarray  # (S,) int64, initial price in fen (0.01 CNY = one tick)
    board: np.ndarray  # (S,) int8, MAIN/ST/GROWTH/BEIJING
    limit: np.ndarray  # (S,) float64, daily price limit as a fraction of the previous close
    size_z: np.ndarray  # (S,) float64, standardized -log(cap): positive for small caps

    @property
    def n(self) -> int:
        return self.price0.shape[0]

    def caps(self, price_fen: np.ndarray) -> np.ndarray:
        """Free-float market caps in CNY at the given prices."""
        return self.float_shares * price_fen / 100.0


def tier_counts(n_stocks: int, microcap_count: int) -> tuple[tuple[int, ...], int]:
    """CSI tier sizes and micro-cap size scaled to ``n_stocks`` (each at least one)."""
    scale = n_stocks / REFERENCE_N
    sizes = tuple(max(1, round(s * scale)) for s in TIER_SIZES)
    micro = min(max(1, round(microcap_count * scale)), n_stocks)
    return sizes, micro


def scaled_count(at_full: int, n_stocks: int, *, at_least_one: bool = False) -> int:
    """A population's number set at full scale (``REFERENCE_N`` stocks) in a universe of
    ``n_stocks``: rounded from ``at_full`` times the scale, none if none at full scale, and
    at least one when ``at_least_one`` (the public funds; a few quant products may round
    to none)."""
    if not at_full:
        return 0
    count = round(at_full * (n_stocks / REFERENCE_N))
    return max(count, 1) if at_least_one else count


def scaled_basket(at_full: int, scale: float, n_stocks: int) -> int:
    """Stocks in a fund's basket, set at full scale, in a universe at ``scale``: never
    shrunk below a fifth of the full size (a small universe's funds still spread their
    money), and never more than the ``n_stocks`` there are, nor fewer than one."""
    return max(1, min(round(at_full * max(scale, 0.2)), n_stocks))


def assign_tiers(caps: np.ndarray, microcap_count: int) -> tuple[np.ndarray, np.ndarray]:
    """Tier code per stock by cap rank, and the micro-cap membership mask.

    Returns:
        tier: (S,) int8, 0 for CSI 300 ... 3 for CSI 2000, REST below.
        micro: (S,) bool, the smallest ``microcap_count`` (scaled) stocks.
    """
    n = caps.shape[0]
    sizes, micro_n = tier_counts(n, microcap_count)
    order = np.argsort(-caps, kind="stable")  # largest first
    bounds = np.cumsum(sizes)
    rank_tier = np.searchsorted(bounds, np.arange(n), side="right").astype(np.int8)
    tier = np.empty(n, dtype=np.int8)
    tier[order] = np.minimum(rank_tier, REST)
    micro = np.zeros(n, dtype=bool)
    micro[order[n - micro_n :]] = True
    return tier, micro


def build_universe(cfg: UniverseConfig, rng: np.random.Generator, lot: int) -> Universe:
    """Draw a universe whose size tiers look like the A-share market's."""
    n = cfg.n_stocks
    # Truncated Pareto caps: many small firms, a few giants.
    a = cfg.cap_tail
    lo, hi = cfg.min_cap_bn, cfg.max_cap_bn
    u = rng.random(n)
    caps_bn = lo * (1.0 - u * (1.0 - (lo / hi) ** a)) ** (-1.0 / a)
    price_cny = np.clip(cfg.median_price * np.exp(0.7 * rng.standard_normal(n)), 2.0, 800.0)
    price0 = np.round(price_cny * 100).astype(np.int64)
    shares = caps_bn * 1e9 / (price0 / 100.0)
    float_shares = np.maximum(np.round(shares / lot), 10).astype(np.int64) * lot

    draw = rng.random(n)
    board = np.full(n, MAIN, dtype=np.int8)
    board[draw < cfg.share_chinext_star] = GROWTH
    bj = (draw >= cfg.share_chinext_star) & (draw < cfg.share_chinext_star + cfg.share_beijing)
    board[bj] = BEIJING
    st = (board == MAIN) & (rng.random(n) < cfg.share_st)
    board[st] = ST
    limits = np.array([cfg.limit_main, cfg.limit_st, cfg.limit_growth, cfg.limit_beijing])

    log_cap = np.log(float_shares * price0 / 100.0)
    size_z = -(log_cap - log_cap.mean()) / max(log_cap.std(), 1e-12)
    return Universe(
        float_shares=float_shares,
        price0=price0,
        board=board,
        limit=limits[board],
        size_z=size_z,
    )
