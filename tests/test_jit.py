"""``msgstorm.jit``: functions compiled ``borrowing`` (without numba's reference counting)
work on the caller's arrays and views of them, and cannot allocate one."""

from __future__ import annotations

import numpy as np
import pytest
from numba.core.errors import TypingError

from msgstorm.jit import borrowing
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
    (kernel, "run_until"), (kernel, "inject"), (kernel, "_forward"), (kernel, "_pop"),
    (kernel, "_sift_up"), (kernel, "_sift_down"), (kernel, "_sift_down_to_leaf"),
], ids=lambda value: getattr(value, "__name__", value))
def test_the_simulators_loops_count_no_references(module: object, name: str) -> None:
    # Reference counting was over half of the one-node loop's time and a quarter of the gossip
    # kernel's (atomic updates at every inlined heap operation); compiled with it again, the
    # loops would still pass every other test, only slower.
    assert getattr(module, name).targetoptions.get("_nrt") is False
