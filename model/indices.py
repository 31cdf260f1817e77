"""Size-tier indices: CSI 300/500/1000/2000 cap-weighted, micro-cap equal-weighted.

Levels start at 1000 and are chain-linked slice by slice. Membership is set by
free-float cap rank and refreshed on each index's own rebalance schedule, so a
stock that falls far enough drops into the next tier at the next rebalance.

Each index has a news twin: the same members and weights, chain-linked on the
stocks' fundamental values instead of their prices. The gap between the two is
what the agents' trading did, so a tier's fall can be split into news and flows.
"""

from __future__ import annotations

import numpy as np

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
        """Multiply ``level`` (5,) in place by each index's return from ``old`` to ``new``."""
        n_tiers = len(TIERS)
        cap_old = float_shares * old.astype(np.float64)
        cap_gain = float_shares * (new - old).astype(np.float64)
        in_csi = self.tier < n_tiers
        base = np.bincount(self.tier[in_csi], cap_old[in_csi], minlength=n_tiers)
        gain = np.bincount(self.tier[in_csi], cap_gain[in_csi], minlength=n_tiers)
        level[:n_tiers] *= 1.0 + gain / np.maximum(base, 1e-300)
        level[n_tiers] *= 1.0 + np.mean(new[self.micro] / old[self.micro] - 1.0)

    def as_dict(self) -> dict[str, float]:
        return {name: float(v) for name, v in zip(INDEX_NAMES, self.level, strict=True)}
