"""Weighted stock draws against numpy's Generator.choice, which they stand in for."""

from __future__ import annotations

import numpy as np

from agents.sampling import choice


def test_choice_picks_what_generator_choice_picks_and_draws_the_same():
    rng = np.random.default_rng(11)
    for n, size in ((1, 5), (7, (40, 3)), (1000, 20_000), (5000, (3000, 3)), (50, 0)):
        w = rng.lognormal(0.0, 2.0, n)
        w[rng.random(n) < 0.2] = 0.0  # stocks no one looks at
        if not w.any():
            w[0] = 1.0
        p = w / w.sum()
        ours, numpys = np.random.default_rng(n), np.random.default_rng(n)
        got = choice(ours, p, size)
        want = numpys.choice(n, size=size, p=p)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert got.tolist() == want.tolist()
        assert ours.random() == numpys.random()  # the generators are in the same state
