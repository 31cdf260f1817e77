"""Size-tier indices: CSI 300/500/1000/2000 cap-weighted, micro-cap equal-weighted.

Levels start at 1000 and are chain-linked slice by slice. Membership is set by
free-float cap rank and refreshed on each index's own rebalance schedule, so a
stock that falls far enough drops into the next tier at the next rebalance.

Each index has a news twin: the same members and weights, chain-linked on the
stocks' fundamental values instead of their prices. The gap between the two is
what the agents' trading did, so a tier's fall can be split into news and flows.
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

    def rebalance_tiers(self, caps: np.ndarray) -> None:
        self.tier, _ = assign_tiers(caps, self.microcap_count)

    def rebalance_micro(self, caps: np.ndarray) -> None:
        _, self.micro = assign_tiers(caps, self.microcap_count)

    def update(self, float_shares: np.ndarray, old: np.ndarray, new: np.ndarray) -> None:
        """Chain-link every level from prices ``old`` to ``new`` (both (S,) fen)."""
        self._chain(self.level, float_shares, old, new)

    def update_news(self, float_shares: np.ndarray, old: np.ndarray, new: np.ndarray) -> None:
        """Chain-link every news level from values ``old`` to ``new`` (both (S,) fen)."""
        self._chain(self.news, float_shares, old, new)

    def _chain(
        self, level: np.ndarray, float_shares: np.ndarray, old: np.ndarray, new: np.ndarray
    ) -> None:
        """Multiply ``level`` (5,) in place by each index's return from ``old`` to ``new``.

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
) -> None:
    """Chain-link ``level`` (5,) in place from ``old`` to ``new`` (S,) fen.

    The CSI tiers by cap-weighted gain over base, each added in stock order (as the
    bincounts added them); the micro-cap index by the mean return of the ``micro`` (S,)
    stocks, added as ``np.mean`` adds (:func:`~model.pairwise.pairwise_sum`): the same
    floats. Whole fen are exact as floats, so ``new - old`` is numpy's integer difference.
    """
    base = np.zeros(n_tiers)
    gain = np.zeros(n_tiers)
    ret = np.empty(tier.shape[0])  # micro-cap returns, the first n_micro used
    n_micro = 0
    for s in range(tier.shape[0]):
        t = tier[s]
        if t < n_tiers:
            base[t] += float_shares[s] * old[s]
            gain[t] += float_shares[s] * (new[s] - old[s])
        if micro[s]:
            ret[n_micro] = new[s] / old[s] - 1.0
            n_micro += 1
    for t in range(n_tiers):
        level[t] *= 1.0 + gain[t] / max(base[t], 1e-300)
    level[n_tiers] *= 1.0 + (0.0 + pairwise_sum(ret, 0, n_micro)) / n_micro
