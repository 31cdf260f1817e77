"""Draws of stocks by weight: ``Generator.choice(n, size, p=p)``'s picks, found faster.

numpy's ``choice`` with probabilities draws one uniform per pick and bisects the
cumulative distribution for each, about 100 ns a pick (some 20,000 picks a step at
full scale, retail's looks and noise traders' stocks). Here the same uniforms are
drawn from the same generator and each is inverted through a guide table (Chen and
Asau): a start found by one multiplication, then a step or two along the
distribution. The answer is the same index, so the picks and the generator's
state are too.
"""

from __future__ import annotations

import numba
import numpy as np

from model.aot import entry


def choice(rng: np.random.Generator, p: np.ndarray, size: int | tuple[int, ...]) -> np.ndarray:
    """``rng.choice(p.shape[0], size=size, p=p)``: the same int64 picks, leaving ``rng``
    in the same state.

    Args:
        p: (n,) probabilities (summing to one, as ``choice`` requires; not checked).
        size: shape of the picks.
    """
    cdf = np.cumsum(p, dtype=np.float64)  # as choice builds it: p.cumsum(), scaled to end at 1
    cdf /= cdf[-1]
    uniform = rng.random(size)
    return _invert(cdf, uniform.ravel()).reshape(uniform.shape)


@entry
@numba.njit(cache=True, nogil=True)
def _invert(cdf: np.ndarray, uniform: np.ndarray) -> np.ndarray:
    """(m,) ``np.searchsorted(cdf, uniform, side="right")`` for the sorted ``cdf`` (n,).

    ``guide[b]`` is the first index whose ``cdf`` exceeds ``b / n``; a draw ``u`` starts
    at its bucket's guide and steps down while the index before also exceeds ``u``
    (rounding in ``u * n``) and up while its own does not: the first index above ``u``.
    """
    n = cdf.shape[0]
    guide = np.empty(n, np.int64)
    i = 0
    for b in range(n):
        while i < n and cdf[i] <= b / n:
            i += 1
        guide[b] = i
    pick = np.empty(uniform.shape[0], np.int64)
    for k in range(uniform.shape[0]):
        u = uniform[k]
        j = guide[min(int(u * n), n - 1)]
        while j > 0 and cdf[j - 1] > u:
            j -= 1
        while j < n and cdf[j] <= u:
            j += 1
        pick[k] = j
    return pick
