"""Portable draws: accurate, the same compiled as interpreted, and the right distributions."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest

from msgstorm import draws
from msgstorm.jit import interpreted


def _ulps(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    return np.abs(got - want) / np.spacing(np.abs(want))


def _log_inputs() -> np.ndarray:
    rng = np.random.default_rng(3)
    return np.concatenate([
        rng.random(50_000), rng.random(50_000) * 10, 2.0 ** rng.uniform(-1070, 1020, 50_000),
        [5e-324, 1e-310, 2.2250738585072014e-308, 0.5, 1.0, 1.0 + 2**-52, 1.0 - 2**-53, 2.0, math.e, 1.7976931348623157e308],
    ])


def test_log_is_within_one_ulp_of_libm() -> None:
    x = _log_inputs()
    want = np.array([math.log(v) for v in x])
    got = draws.log_array(x)
    nonzero = want != 0.0
    assert _ulps(got[nonzero], want[nonzero]).max() <= 1.0
    assert got[x == 1.0].tolist() == [0.0]


def test_exp_is_within_one_ulp_of_libm() -> None:
    x = np.concatenate([np.random.default_rng(4).uniform(-708, 709, 100_000), [0.0, -0.0, 1.0, -1.0, 1e-20]])
    want = np.array([math.exp(v) for v in x])
    assert _ulps(draws.exp_array(x), want).max() <= 1.0


def test_edges_are_those_of_libm() -> None:
    assert draws.log(0.0) == -math.inf and draws.log(math.inf) == math.inf
    assert math.isnan(draws.log(-1.0)) and math.isnan(draws.log(math.nan))
    assert draws.exp(1000.0) == math.inf and draws.exp(-1000.0) == 0.0 and math.isnan(draws.exp(math.nan))
    assert 0.0 < draws.exp(-740.0) < 1e-320  # subnormal results, not flushed to zero


def test_compiled_code_gives_the_bits_the_interpreter_gives() -> None:
    """numba must not fuse multiply-adds (an FMA rounds once, the interpreter twice): the
    compiled functions equal the same Python source run by CPython, bit for bit."""
    x = _log_inputs()[::10]
    assert all(draws.log(v) == draws.log.py_func(v) for v in x)
    y = np.random.default_rng(5).uniform(-745, 709, 10_000)
    assert all(draws.exp(v) == draws.exp.py_func(v) for v in y)
    p = np.random.default_rng(6).random(10_000)
    # Its source calls the compiled callers' log (jit.internal_twin), which Python cannot call.
    assert all(draws.normal_ppf(v) == interpreted(draws.normal_ppf)(v) for v in p)


def test_normal_quantile_matches_the_standard_library() -> None:
    reference = statistics.NormalDist()
    p = np.random.default_rng(7).random(5_000)
    p = p[p > 0]
    assert max(abs(draws.normal_ppf(v) - reference.inv_cdf(v)) for v in p) < 1e-14
    assert math.isfinite(draws.normal_ppf(0.0))  # a uniform of exactly 0 stays finite


N = 400_000


@pytest.mark.parametrize(("name", "sample", "mean", "variance"), [
    ("normal", lambda rng: draws.normal(rng, 3.0, 2.0, N), 3.0, 4.0),
    ("exponential", lambda rng: draws.exponential(rng, 2.5, N), 2.5, 6.25),
    ("lognormal", lambda rng: draws.lognormal(rng, 2.0, 0.5, N), 2.0 * math.exp(0.125),
     4.0 * (math.exp(0.25) - 1) * math.exp(0.25)),
    ("pareto", lambda rng: draws.pareto_multiplier(rng, 5.0, N), 5.0 / 4.0, 5.0 / (16.0 * 3.0)),
    ("poisson small", lambda rng: draws.poisson_many(rng, 0.7, N).astype(float), 0.7, 0.7),
    ("poisson large", lambda rng: draws.poisson_many(rng, 80.0, N).astype(float), 80.0, 80.0),
])
def test_moments_match_theory(name: str, sample, mean: float, variance: float) -> None:
    values = sample(np.random.default_rng(8))
    standard_error = math.sqrt(variance / N)
    assert abs(values.mean() - mean) < 3 * standard_error, name
    assert abs(values.var() / variance - 1) < 0.03, name


def test_poisson_takes_single_draws_and_huge_means() -> None:
    rng = np.random.default_rng(9)
    counts = [draws.poisson(rng, 1e6) for _ in range(200)]
    assert abs(statistics.fmean(counts) - 1e6) < 3 * math.sqrt(1e6 / 200)
    assert draws.poisson(rng, 0.0) == 0
    with pytest.raises(ValueError):
        draws.poisson(rng, math.inf)


def test_same_seed_same_draws() -> None:
    def sample(seed: int) -> list[float]:
        rng = np.random.default_rng(seed)
        return [*draws.lognormal(rng, 1.0, 1.0, 5), *draws.poisson_many(rng, 3.0, 5), draws.poisson(rng, 50.0)]

    assert sample(1) == sample(1) != sample(2)


def test_vectorised_exponentials_are_the_scalar_ones_bit_for_bit() -> None:
    """exponential_from and neg_log1m_into take logarithms of uniforms in a branch-free,
    vectorised loop; they must give what -log(1 - u) gives one value at a time, and fall back
    to it for any value that is not a uniform."""
    rng = np.random.default_rng(21)
    u = np.concatenate([rng.random(30_000), rng.random(1_000) * 2.0**-40,
                        [0.0, 0.5, np.nextafter(1.0, 0.0), 2.0**-53, 1.0 - 2.0**-53]])
    want = np.array([-draws.log(1.0 - v) for v in u])
    assert np.array_equal(draws.exponential_from(u, 1.0), want)
    assert np.array_equal(draws.exponential_from(u, 250.0), np.array([-draws.log(1.0 - v) * 250.0 for v in u]))
    values = u.copy()
    draws.neg_log1m_into(values, len(values) - 3)  # the last three are left as they are
    assert np.array_equal(values[:-3], want[:-3]) and np.array_equal(values[-3:], u[-3:])
    outside = np.array([0.25, 1.0, 1.5, -0.5, math.nan])  # not uniforms: the scalar path
    expected = np.array([-draws.log(1.0 - v) for v in outside])
    assert expected[1] == math.inf and math.isnan(expected[2]) and math.isnan(expected[4])
    np.testing.assert_array_equal(draws.exponential_from(outside, 1.0), expected)
    values = outside.copy()
    draws.neg_log1m_into(values, len(values))
    np.testing.assert_array_equal(values, expected)


def _uniforms_and_edges() -> np.ndarray:
    """Uniforms, and the values where the normal quantile and log change branch."""
    rng = np.random.default_rng(31)
    return np.concatenate([
        rng.random(100_000), rng.random(2_000) * 2.0**-40, 1.0 - rng.random(2_000) * 2.0**-40,
        [0.0, 2.0**-60, 2.0**-61, 2.0**-53, 0.075, np.nextafter(0.075, 0.0), np.nextafter(0.075, 1.0), 0.5,
         0.925, np.nextafter(0.925, 0.0), np.nextafter(0.925, 1.0), 1.0 - 2.0**-53, 1.3887943864964039e-11],
    ])


def test_the_numpy_forms_give_the_compiled_loops_bits() -> None:
    """A small run draws by numpy what it has not compiled (``numpy_until_compiled``): the
    same values as the compiled loops, to the last bit, for uniforms anywhere in [0, 1), in
    either branch of the normal quantile's tail (r = 5 at p = 1.39e-11) and of log's reduction."""
    u = _uniforms_and_edges()
    lognormal = 40_000.0 * draws._exp_numpy(0.4 * draws._normal_ppf_numpy(u))
    assert np.array_equal(draws._lognormal_loop(u, 40_000.0, 0.4), lognormal)
    assert np.array_equal(draws._normal_loop(u, 3.0, 2.0), 3.0 + 2.0 * draws._normal_ppf_numpy(u))
    assert np.array_equal(draws._pareto_loop(u, 1.5), draws._exp_numpy(-draws._log_normal_numpy(1.0 - u) / 1.5))
    values = u.copy()
    draws.neg_log1m_into(values, len(values))
    assert np.array_equal(values, -draws._log_normal_numpy(1.0 - u))


def test_exp_by_numpy_takes_the_scalar_code_where_exp_branches() -> None:
    x = np.concatenate([np.random.default_rng(32).uniform(-800.0, 800.0, 50_000),
                        [math.nan, math.inf, -math.inf, 709.78, 709.8, -745.13, -745.2, -708.4, 0.0, -0.0]])
    got = draws._exp_numpy(x)
    assert np.array_equal(got, draws.exp_array(x), equal_nan=True)
    assert got[-9:-7].tolist() == [math.inf, 0.0] and 0.0 < got[-5] < 1e-320  # inf, -inf; a subnormal


def test_the_interpreted_poisson_fill_draws_the_compiled_variates() -> None:
    rng = np.random.default_rng(33)
    by_interpreter = interpreted(draws._poisson_fill)
    for lam in (0.0, 0.7, 9.99, 10.0, 80.0, 2_000.0):
        uniform = rng.random(4096)
        compiled, python = np.zeros(300, dtype=np.int64), np.zeros(300, dtype=np.int64)
        assert draws._poisson_fill(uniform, lam, compiled, 3) == by_interpreter(uniform, lam, python, 3), lam
        assert np.array_equal(compiled, python), lam


@pytest.mark.parametrize("sample", [
    lambda rng: draws.lognormal(rng, 2.0, 0.5, 5_000),
    lambda rng: draws.normal(rng, 3.0, 2.0, 5_000),
    lambda rng: draws.exponential(rng, 250.0, 5_000),
    lambda rng: draws.pareto_multiplier(rng, 1.5, 5_000),
    lambda rng: draws.poisson_many(rng, 3.0, 500).astype(float),
    lambda rng: np.array([draws.poisson(rng, 2_000.0) for _ in range(20)], dtype=float),
], ids=["lognormal", "normal", "exponential", "pareto", "poisson small", "poisson large"])
def test_a_run_that_draws_by_numpy_draws_the_same_stream(sample, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(draws, "available", lambda function, signature: False)  # as on an empty cache
    monkeypatch.setattr(draws._UNCOMPILED, "drawn", {})
    compiled = sample(np.random.default_rng(34))
    with draws.numpy_until_compiled():
        by_numpy = sample(np.random.default_rng(34))
    assert np.array_equal(by_numpy, compiled)
    assert draws._UNCOMPILED.drawn  # it did draw by numpy
    assert not draws._UNCOMPILED.active  # and only within


def test_the_numpy_forms_have_a_budget_and_take_uniforms_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(draws, "available", lambda function, signature: False)
    monkeypatch.setattr(draws, "NUMPY_VALUES", 1_000)
    monkeypatch.setattr(draws._UNCOMPILED, "drawn", {})
    with draws.numpy_until_compiled():
        assert draws._by_numpy(draws._lognormal_loop, np.full(600, 0.5), 1.0, 1.0)
        assert not draws._by_numpy(draws._lognormal_loop, np.full(600, 0.5), 1.0, 1.0)  # 1,200 > 1,000
        assert draws._by_numpy(draws._normal_loop, np.full(600, 0.5), 1.0, 1.0)  # a budget per loop
        assert not draws._by_numpy(draws._normal_loop, np.array([0.5, 1.0]), 1.0, 1.0)  # 1.0 is no uniform
        assert not draws._by_numpy(draws._normal_loop, np.array([0.5, math.nan]), 1.0, 1.0)
    monkeypatch.setattr(draws, "available", lambda function, signature: True)  # compiled already
    with draws.numpy_until_compiled():
        assert not draws._by_numpy(draws._pareto_loop, np.full(10, 0.5), 1.0)
