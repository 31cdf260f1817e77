"""The compiled passes that replace numpy sums add as numpy adds (model.pairwise)."""

from __future__ import annotations

import numpy as np
import pytest

from model.pairwise import pairwise_sum


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pairwise_sum_is_ndarray_sum_bit_for_bit(seed):
    """Runs below 8, up to 128 and halved beyond, anywhere in the array, as ``ndarray.sum``
    and ``np.mean`` add them (a plain running sum differs in the last bits)."""
    rng = np.random.default_rng(seed)
    sizes = [*range(0, 300), 1000, 1031, 4096, 30_001]
    plain_differs = 0
    for n in sizes:
        a = rng.standard_normal(n + 5) * 10.0 ** rng.integers(-3, 6)
        lo = int(rng.integers(0, 6))
        run = a[lo : lo + n]
        assert 0.0 + pairwise_sum(a, lo, run.shape[0]) == run.sum()
        if run.size:
            assert (0.0 + pairwise_sum(a, lo, run.shape[0])) / run.size == np.mean(run)
            plain_differs += float(np.cumsum(run)[-1]) != run.sum()
    assert plain_differs > 10  # the order matters on these arrays
