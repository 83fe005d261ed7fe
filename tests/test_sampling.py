"""Samplers: several blocks drawn at once are the blocks drawn one after the other (the
one-node loop refills its service and processing times many blocks at a time)."""

from __future__ import annotations

import numpy as np
import pytest

from msgstorm.sampling import Sampler
from msgstorm.scenario import distributions as d

DISTRIBUTIONS: list[d.Dist] = [
    d.Constant(value=250.0),
    d.Uniform(dist="uniform", low=10.0, high=5_000.0),
    d.Normal(dist="normal", mean=1_000.0, std=700.0),
    d.Lognormal(dist="lognormal", median=800.0, sigma=1.2),
    d.Pareto(dist="pareto", scale=100.0, alpha=1.5),
    d.Exponential(dist="exponential", mean=100_000.0),
]


@pytest.mark.parametrize("dist", DISTRIBUTIONS, ids=lambda dist: dist.dist)
def test_blocks_drawn_together_are_the_blocks_drawn_one_by_one(dist: d.Dist) -> None:
    together = Sampler(dist, np.random.default_rng(7), block=64)
    apart = Sampler(dist, np.random.default_rng(7), block=64)
    first = together.draw_block(5)
    assert first.shape == (5 * 64,) and first.dtype == np.int64
    one_by_one = np.concatenate([apart.draw_block() for _ in range(5)])
    assert np.array_equal(first, one_by_one)
    # And the streams stay in step afterwards: what each draws next is the same.
    assert np.array_equal(together.draw_block(), apart.draw_block())
    if not isinstance(dist, d.Constant):
        assert len(np.unique(first)) > 64  # real draws, not one value repeated
