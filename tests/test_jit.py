"""``msgstorm.jit``: functions compiled ``borrowing`` (without numba's reference counting)
work on the caller's arrays and views of them, and cannot allocate one; a float's bits and
``frexp`` in compiled code are exactly the C library's."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba.core.errors import TypingError

from msgstorm.jit import bits_float, borrowing, float_bits, frexp
from msgstorm.sim import kernel, solo_loop


@borrowing()
def _add_to_tail(values: np.ndarray, start: int, amount: int) -> int:
    tail = values[start:]  # a view: no allocation
    for i in range(tail.shape[0]):
        tail[i] += amount
    return int(values.sum())


@borrowing()
def _allocates(values: np.ndarray) -> float:
    copy = np.empty(values.shape[0])
    copy[:] = values
    return float(copy.sum())


def test_a_borrowing_function_writes_into_the_callers_array_through_views() -> None:
    values = np.arange(10, dtype=np.int64)
    assert _add_to_tail(values, 6, 100) == 45 + 400
    assert values.tolist() == [0, 1, 2, 3, 4, 5, 106, 107, 108, 109]


def test_a_borrowing_function_that_allocates_is_refused_when_compiled() -> None:
    with pytest.raises(TypingError):
        _allocates(np.ones(3))


@pytest.mark.parametrize(("module", "name"), [
    (solo_loop, "advance"), (solo_loop, "admit"), (solo_loop, "gather"),
    (kernel, "run_until"), (kernel, "run_until_push"), (kernel, "inject"), (kernel, "_forward"), (kernel, "_pop"),
    (kernel, "_sift_up"), (kernel, "_sift_down"), (kernel, "_sift_down_to_leaf"),
], ids=lambda value: getattr(value, "__name__", value))
def test_the_simulators_loops_count_no_references(module: object, name: str) -> None:
    # Reference counting was over half of the one-node loop's time and a quarter of the gossip
    # kernel's (atomic updates at every inlined heap operation); compiled with it again, the
    # loops would still pass every other test, only slower.
    assert getattr(module, name).targetoptions.get("_nrt") is False


@borrowing()
def _frexp_all(x: np.ndarray, m: np.ndarray, e: np.ndarray) -> None:
    for i in range(x.shape[0]):
        m[i], e[i] = frexp(x[i])


def _positive_doubles() -> np.ndarray:
    rng = np.random.default_rng(11)
    return np.concatenate([
        rng.random(20_000), 2.0 ** rng.uniform(-1074, 1023.9, 20_000),
        [5e-324, 1e-320, 2.2250738585072009e-308, 2.2250738585072014e-308, 0.5, 1.0, 1.5, 2.0,
         np.nextafter(1.0, 0.0), 1.7976931348623157e308],
    ])


def test_frexp_gives_the_c_librarys_mantissa_and_exponent_compiled_and_interpreted() -> None:
    x = _positive_doubles()
    m, e = np.empty_like(x), np.empty(x.shape[0], dtype=np.int64)
    _frexp_all(x, m, e)
    want = [math.frexp(v) for v in x]
    assert m.tolist() == [pair[0] for pair in want] and e.tolist() == [pair[1] for pair in want]
    assert all(frexp.py_func(v) == pair for v, pair in zip(x[::50], want[::50]))


def test_float_bits_round_trip_and_a_power_of_two_times_a_reduced_exp_is_ldexp() -> None:
    x = _positive_doubles()
    assert all(bits_float(float_bits(v)) == v for v in x[::40])
    assert float_bits(1.0) == 0x3FF0000000000000 and bits_float(0x4000000000000000) == 2.0
    # draws.exp scales its reduced result y (in [0.7, 1.42]) by 2**e this way for -1021 <= e <= 1022.
    rng = np.random.default_rng(12)
    for y, e in zip(rng.uniform(0.7, 1.42, 5_000), rng.integers(-1021, 1023, 5_000)):
        assert y * bits_float((int(e) + 1023) << 52) == math.ldexp(y, int(e))
