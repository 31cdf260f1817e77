"""numpy's pairwise summation of float64 runs, for compiled passes that must add as numpy adds.

``ndarray.sum`` (and ``np.mean``) of a contiguous float64 array does not add one by one:
it sums runs of up to 128 in eight running sums and halves longer runs. A compiled pass
that replaces such a sum adds in the same order here, so its floats are numpy's.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def block_sum(a: np.ndarray, lo: int, n: int) -> float:
    """numpy's pairwise sum of a run of at most 128 of ``a`` from ``lo``: under 8 one by
    one; else eight running sums, joined in pairs, then the rest one by one."""
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[lo + i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    while i < n - n % 8:
        r0, r1, r2, r3 = r0 + a[lo + i], r1 + a[lo + i + 1], r2 + a[lo + i + 2], r3 + a[lo + i + 3]
        r4, r5, r6, r7 = (
            r4 + a[lo + i + 4],
            r5 + a[lo + i + 5],
            r6 + a[lo + i + 6],
            r7 + a[lo + i + 7],
        )
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@numba.njit(cache=True, nogil=True)
def pairwise_sum(a: np.ndarray, lo: int, n: int) -> float:
    """numpy's pairwise sum of ``a[lo : lo + n]`` (float64), as ``ndarray.sum`` adds a
    contiguous run: runs of up to 128 by :func:`block_sum`, longer ones split in two
    halves (the first a multiple of 8 long) and their sums added.

    The halving is walked with a stack, not by recursion: numba's cache does not load a
    recursive function back safely.
    """
    node_lo = np.empty(128, np.int64)  # pending runs; depth is about 2 log2(n / 128)
    node_n = np.empty(128, np.int64)
    node_split = np.zeros(128, np.bool_)  # both halves summed: add them
    sums = np.empty(128)
    top, done = 0, 0
    node_lo[0], node_n[0] = lo, n
    while top >= 0:
        at, m, split = node_lo[top], node_n[top], node_split[top]
        top -= 1
        if m <= 128:
            sums[done] = block_sum(a, at, m)
            done += 1
        elif split:
            sums[done - 2] = sums[done - 2] + sums[done - 1]
            done -= 1
        else:
            half = m // 2
            half -= half % 8
            node_lo[top + 1], node_n[top + 1], node_split[top + 1] = at, m, True
            node_lo[top + 2], node_n[top + 2], node_split[top + 2] = at + half, m - half, False
            node_lo[top + 3], node_n[top + 3], node_split[top + 3] = at, half, False
            top += 3
    return sums[0]
