"""Correlated price paths: the Cholesky factor by hand, the matrix's errors, and the paths it
mixes (``rules/correlation.py``, ``market/prices.py``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from msgstorm.market.prices import price_paths
from msgstorm.rules.correlation import cholesky, correlation_problem, mix
from msgstorm.scenario import ScenarioError, parse_scenario
from msgstorm.scenario.market import MarketSpec

SECOND_NS = 1_000_000_000


def _market(correlation: list[list[float]] | None, *instruments: dict[str, Any]) -> MarketSpec:
    raw: dict[str, Any] = {"resolution": "1s", "instruments": list(instruments)}
    if correlation is not None:
        raw["correlation"] = correlation
    return MarketSpec.model_validate(raw)


def _eth(**extra: Any) -> dict[str, Any]:
    return {"name": "ETH", "price": 1000.0, "volatility": "1%/s", **extra}


def _btc(**extra: Any) -> dict[str, Any]:
    return {"name": "BTC", "price": 1000.0, "volatility": "1%/s", **extra}


def test_the_factor_of_a_two_by_two_matrix_by_hand() -> None:
    # L = [[1, 0], [rho, sqrt(1 - rho^2)]]: rho 0.8 gives 0.6.
    factor = cholesky([[1.0, 0.8], [0.8, 1.0]])
    assert factor[0] == [1.0, 0.0]
    assert factor[1][0] == pytest.approx(0.8, abs=1e-15)
    assert factor[1][1] == pytest.approx(0.6, abs=1e-15)


def test_a_correlation_of_one_is_factored_with_a_zero_column() -> None:
    # Singular (numpy.linalg.cholesky refuses it): the second instrument's shock is the first's.
    assert cholesky([[1.0, 1.0], [1.0, 1.0]]) == [[1.0, 0.0], [1.0, 0.0]]
    shocks = np.array([[0.5, -1.25, 2.0], [9.0, 9.0, 9.0]])
    mixed = mix(cholesky([[1.0, 1.0], [1.0, 1.0]]), shocks)
    assert mixed.tolist() == [[0.5, -1.25, 2.0], [0.5, -1.25, 2.0]]


def test_the_mix_by_hand() -> None:
    mixed = mix([[1.0, 0.0], [0.8, 0.6]], np.array([[1.0, 2.0], [10.0, -5.0]]))
    assert mixed[0].tolist() == [1.0, 2.0]
    assert mixed[1].tolist() == pytest.approx([0.8 + 6.0, 1.6 - 3.0])


@pytest.mark.parametrize(("matrix", "expected"), [
    ([[1.0, 0.5]], "square"),
    ([[1.0, 0.5], [0.5, 0.9]], "diagonal must be 1"),
    ([[1.0, 0.5], [0.4, 1.0]], "symmetric"),
    ([[1.0, 1.5], [1.5, 1.0]], "[-1, 1]"),
    # Pairwise fine, together impossible: a and b, b and c close, a and c opposite.
    ([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]], "not positive semi-definite"),
])
def test_what_is_not_a_correlation_matrix(matrix: list[list[float]], expected: str) -> None:
    problem = correlation_problem(matrix)
    assert problem is not None and expected in problem, problem


def test_a_semi_definite_three_by_three_is_accepted() -> None:
    # a = b = c: every entry 1, rank 1.
    assert correlation_problem([[1.0] * 3 for _ in range(3)]) is None
    factor = cholesky([[1.0] * 3 for _ in range(3)])
    assert [row[0] for row in factor] == [1.0, 1.0, 1.0]
    assert all(value == 0.0 for row in factor for value in row[1:])


SCENARIO = """
[run]
name = "corr"
duration = "1s"

[[agents]]
name = "traders"
arrival = {{ process = "constant", rate = "10/s" }}

[market]
correlation = {matrix}

[[market.instruments]]
name = "ETH"
volatility = "1%/s"

[[market.instruments]]
name = "BTC"
{btc}
"""


@pytest.mark.parametrize(("matrix", "btc", "expected"), [
    ("[[1.0, 0.8], [0.8, 0.9]]", "", "<scenario>:11: market.correlation: entry [1][1] is 0.9: the diagonal must be 1"),
    ("[[1.0]]", "", "<scenario>:11: market.correlation: 1 rows, but there are 2 instruments"),
    ("[[1.0, 0.8], [0.7, 1.0]]", "", "<scenario>:11: market.correlation: entries [1][0] = 0.7 and [0][1] = 0.8 differ"),
    ("[[1.0, 0.8], [0.8, 1.0]]", 'replay = "prices.csv"',
     "<scenario>:11: market.correlation: instrument 'BTC' is replayed from a file"),
])
def test_a_bad_matrix_names_file_line_and_field(matrix: str, btc: str, expected: str) -> None:
    text = SCENARIO.replace("{matrix}", matrix).replace("{btc}", btc).replace("{{", "{").replace("}}", "}")
    with pytest.raises(ScenarioError) as error:
        parse_scenario(text)
    assert expected in str(error.value), str(error.value)


def test_the_identity_gives_the_independent_paths_bit_for_bit() -> None:
    independent = price_paths(_market(None, _eth(), _btc()), 50 * SECOND_NS, np.random.SeedSequence(7))
    identity = price_paths(_market([[1.0, 0.0], [0.0, 1.0]], _eth(), _btc()), 50 * SECOND_NS,
                           np.random.SeedSequence(7))
    assert np.array_equal(independent.prices, identity.prices)


def test_perfectly_correlated_instruments_have_the_same_path_shape() -> None:
    market = _market([[1.0, 1.0], [1.0, 1.0]], _eth(), _btc(price=30_000.0))
    paths = price_paths(market, 100 * SECOND_NS, np.random.SeedSequence(3))
    eth, btc = paths.prices
    assert np.allclose(btc / 30_000.0, eth / 1000.0, rtol=1e-13, atol=0.0)
    assert not np.allclose(eth, eth[0])  # it moved: the test compares shapes, not two flat lines
    independent = price_paths(_market(None, _eth(), _btc(price=30_000.0)), 100 * SECOND_NS,
                              np.random.SeedSequence(3))
    assert not np.allclose(independent.prices[1] / 30_000.0, independent.prices[0] / 1000.0, rtol=1e-3)


def test_anti_correlated_instruments_mirror_each_other() -> None:
    paths = price_paths(_market([[1.0, -1.0], [-1.0, 1.0]], _eth(), _btc()), 100 * SECOND_NS,
                        np.random.SeedSequence(4))
    eth, btc = np.log(paths.prices / 1000.0)
    drift = -2.0 * (0.01 ** 2 / 2.0) * np.arange(eth.size)  # each log path carries -sigma^2/2 a second
    assert np.allclose(eth + btc, drift, atol=1e-12)


def test_the_same_seed_gives_the_same_correlated_paths() -> None:
    market = _market([[1.0, 0.3], [0.3, 1.0]], _eth(), _btc())
    one = price_paths(market, 30 * SECOND_NS, np.random.SeedSequence(11))
    two = price_paths(market, 30 * SECOND_NS, np.random.SeedSequence(11))
    other = price_paths(market, 30 * SECOND_NS, np.random.SeedSequence(12))
    assert np.array_equal(one.prices, two.prices)
    assert not np.array_equal(one.prices, other.prices)


@pytest.mark.parametrize("rho", [0.8, -0.5, 0.0])
def test_the_sample_correlation_of_a_long_path_is_the_input_within_its_error(rho: float) -> None:
    n = 200_000
    market = _market([[1.0, rho], [rho, 1.0]], _eth(), _btc())
    paths = price_paths(market, n * SECOND_NS, np.random.SeedSequence(2026))
    returns = np.diff(np.log(paths.prices), axis=1)
    sample = float(np.corrcoef(returns)[0, 1])
    # The sample correlation of n normal pairs has standard error (1 - rho^2) / sqrt(n - 1);
    # 4 of them (about 1 run in 16,000 misses by chance; the seed is fixed).
    bound = 4.0 * (1.0 - rho * rho) / math.sqrt(n - 1) + 1e-12
    assert abs(sample - rho) < bound, (sample, rho, bound)


def test_a_three_instrument_matrix_gives_each_pair_its_correlation() -> None:
    n = 100_000
    matrix = [[1.0, 0.6, 0.2], [0.6, 1.0, -0.3], [0.2, -0.3, 1.0]]
    market = _market(matrix, _eth(), _btc(), {"name": "SOL", "price": 50.0, "volatility": "2%/s"})
    paths = price_paths(market, n * SECOND_NS, np.random.SeedSequence(5))
    sample = np.corrcoef(np.diff(np.log(paths.prices), axis=1))
    for i in range(3):
        for j in range(i):
            rho = matrix[i][j]
            assert abs(sample[i, j] - rho) < 4.0 * (1.0 - rho * rho) / math.sqrt(n - 1), (i, j, sample[i, j])
