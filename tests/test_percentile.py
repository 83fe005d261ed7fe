"""Nearest-rank percentiles: rank ceil(p x n) in exact arithmetic, at n where p x n is whole."""

from __future__ import annotations

import numpy as np
import pytest

from msgstorm.analysis._common import percentile, percentiles
from msgstorm.progress import nearest_rank, nearest_rank_index


@pytest.mark.parametrize("n", [10, 100, 1_000, 10_000, 160_000])
@pytest.mark.parametrize("q", [50.0, 90.0, 99.0, 99.9])
def test_the_rank_is_ceil_of_p_times_n_when_it_is_whole(n: int, q: float) -> None:
    """Values 1..n shuffled: the nearest-rank percentile is the value ceil(q/100 x n) itself."""
    expected = -(-round(q * 10) * n // 1000)  # ceil(q/100 x n) in integers (q has one decimal)
    values = np.random.default_rng(n).permutation(np.arange(1, n + 1, dtype=np.int64))
    assert percentile(values, q) == expected
    assert percentiles(values.copy(), (q, 50.0), scratch=True)[0] == expected
    assert nearest_rank(values, q) == expected
    assert nearest_rank_index(n, q) == expected - 1


def test_p999_of_a_thousand_values_is_not_the_maximum() -> None:
    values = np.arange(1, 1001, dtype=np.int64)
    assert percentile(values, 99.9) == 999
    assert percentile(np.arange(1, 160_001), 99.9) == 159_840


def test_ranks_off_the_whole_numbers_round_up_and_ends_clamp() -> None:
    assert nearest_rank_index(7, 50.0) == 3  # ceil(3.5) = 4th value
    assert nearest_rank_index(5, 0.0) == 0  # p0 is the minimum
    assert nearest_rank_index(5, 100.0) == 4
    with pytest.raises(ValueError):
        nearest_rank_index(0, 50.0)
    with pytest.raises(ValueError):
        nearest_rank_index(5, 100.5)
