"""Size-tier indices: CSI 300/500/1000/2000 cap-weighted, micro-cap equal-weighted.

Levels start at 1000. The cap-weighted CSI indices are chain-linked slice by slice,
which for cap weights is buy-and-hold. The micro-cap index resets its equal weights
once a day, as the real one does: within a day it holds the weights set at the
previous close, its level the previous close's level times its members' mean price
relative since that close (:meth:`Indices.open_day` sets the day's base). Chained
slice by slice, equal weights reset every slice would harvest intraday bounces.
Membership is set by free-float cap rank and refreshed on each index's own rebalance
schedule (at a day's open), so a stock that falls far enough drops into the next tier
at the next rebalance.

Each index has a news twin: the same members, weighted by free float on the stocks'
fundamental values instead of their prices and moved by those values (on a rebalance
day by the members of the day before: the news moves before the open's rebalance).
The gap between the two is what the agents' trading did, so a tier's fall can be
split into news and flows.
"""

from __future__ import annotations

import numba
import numpy as np

from model.aot import entry
from model.pairwise import pairwise_sum
from model.universe import INDEX_NAMES, TIERS, assign_tiers

BASE = 1000.0


class Indices:
    """Index levels and memberships."""

    def __init__(self, caps: np.ndarray, microcap_count: int) -> None:
        self.microcap_count = microcap_count
        self.tier, self.micro = assign_tiers(caps, microcap_count)
        self.level = np.full(len(INDEX_NAMES), BASE)  # (5,) csi300 .. microcap, on prices
        self.news = np.full(len(INDEX_NAMES), BASE)  # (5,) the same, on fundamental values
        # The micro-cap index's base for the day, set at the open (open_day): its level and
        # news level then, and every stock's price and value then ((S,) fen, floats). None
        # until the first open_day, which a run calls at its first step, before any update.
        self.day_level = BASE
        self.day_news = BASE
        self.day_price: np.ndarray | None = None
        self.day_value: np.ndarray | None = None

    def rebalance_tiers(self, caps: np.ndarray) -> None:
        self.tier, _ = assign_tiers(caps, self.microcap_count)

    def rebalance_micro(self, caps: np.ndarray) -> None:
        _, self.micro = assign_tiers(caps, self.microcap_count)

    def open_day(self, prices: np.ndarray, values: np.ndarray) -> None:
        """Set the micro-cap index's base for the day: its levels now (the previous
        close's), and the stocks' ``prices`` and ``values`` (both (S,) fen) now. Called at
        the open, after the day's rebalances: the day's members are weighted equally here.
        """
        self.day_level = float(self.level[len(TIERS)])
        self.day_news = float(self.news[len(TIERS)])
        self.day_price = np.array(prices, np.float64)
        self.day_value = np.array(values, np.float64)

    def update(self, float_shares: np.ndarray, old: np.ndarray, new: np.ndarray) -> None:
        """Every level from prices ``old`` to ``new`` (both (S,) fen): the CSI levels
        chain-linked, the micro-cap level from the day's base."""
        self._chain(self.level, float_shares, old, new, self.day_level, self._base(self.day_price))

    def update_news(self, float_shares: np.ndarray, old: np.ndarray, new: np.ndarray) -> None:
        """Every news level from values ``old`` to ``new`` (both (S,) fen), as :meth:`update`."""
        self._chain(self.news, float_shares, old, new, self.day_news, self._base(self.day_value))

    @staticmethod
    def _base(day_base: np.ndarray | None) -> np.ndarray:
        """The day's base prices or values, set by :meth:`open_day`; none yet is a misuse."""
        if day_base is None:
            raise RuntimeError("Indices: an update before open_day, which sets the day's base")
        return day_base

    def _chain(
        self,
        level: np.ndarray,
        float_shares: np.ndarray,
        old: np.ndarray,
        new: np.ndarray,
        day_level: float,
        day_base: np.ndarray,
    ) -> None:
        """Multiply the CSI levels of ``level`` (5,) in place by each one's return from
        ``old`` to ``new``; set the micro-cap level to ``day_level`` times its members' mean
        relative from ``day_base`` to ``new``.

        One compiled pass (:func:`_chain_levels`), where a dozen numpy calls were: it runs
        on every step.
        """
        _chain_levels(
            level,
            self.tier,
            self.micro,
            np.asarray(float_shares, np.int64),
            np.asarray(old, np.float64),  # prices (int64 fen, exact) or values (float)
            np.asarray(new, np.float64),
            len(TIERS),
            day_level,
            day_base,
        )

    def as_dict(self) -> dict[str, float]:
        return {name: float(v) for name, v in zip(INDEX_NAMES, self.level, strict=True)}


@entry
@numba.njit(cache=True, nogil=True)
def _chain_levels(
    level: np.ndarray,
    tier: np.ndarray,
    micro: np.ndarray,
    float_shares: np.ndarray,
    old: np.ndarray,
    new: np.ndarray,
    n_tiers: int,
    day_level: float,
    day_base: np.ndarray,
) -> None:
    """Move ``level`` (5,) in place to prices ``new`` (S,) fen.

    The CSI tiers chain-linked from ``old``, by cap-weighted gain over base, each added
    in stock order (as the bincounts added them). The micro-cap index is ``day_level``
    times the mean relative ``new / day_base`` of the ``micro`` (S,) stocks, added as
    ``np.mean`` adds (:func:`~model.pairwise.pairwise_sum`): the same floats. Whole fen
    are exact as floats, so ``new - old`` is numpy's integer difference.
    """
    base = np.zeros(n_tiers)
    gain = np.zeros(n_tiers)
    rel = np.empty(tier.shape[0])  # micro-cap relatives since the day's base, n_micro used
    n_micro = 0
    for s in range(tier.shape[0]):
        t = tier[s]
        if t < n_tiers:
            base[t] += float_shares[s] * old[s]
            gain[t] += float_shares[s] * (new[s] - old[s])
        if micro[s]:
            rel[n_micro] = new[s] / day_base[s]
            n_micro += 1
    for t in range(n_tiers):
        level[t] *= 1.0 + gain[t] / max(base[t], 1e-300)
    level[n_tiers] = day_level * ((0.0 + pairwise_sum(rel, 0, n_micro)) / n_micro)
