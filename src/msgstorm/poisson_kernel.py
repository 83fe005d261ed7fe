"""The compiled loop that draws many traffic windows of a Poisson agent at once.

Place in the pipeline: under traffic generation (``traffic/compiled.py`` calls it and says
what it draws and why it is the same as drawing window by window), above the portable draws
(``draws``, ``pcg64``). It sits outside the ``traffic`` package so that a cold start can
compile it (``sim/warm.py``) without importing the scenario schema.
"""

from __future__ import annotations

import math

import numpy as np
from numba.core import types as nbt

from msgstorm import draws, pcg64
from msgstorm.jit import available, nb

__all__ = ["SCRATCH_MAX", "WINDOWS_SIGNATURE", "ready", "windows"]

_BLOCK = draws._POISSON_BLOCK  # uniforms per block of draws.poisson_many
_SCRATCH = 32  # uniforms drawn for a Poisson count before more are needed (rarely)
SCRATCH_MAX = 16 * _BLOCK  # the scratch array ``windows`` takes


@nb.njit(cache=True)
def _poisson_count(st: np.ndarray, lam: float, scratch: np.ndarray) -> int:
    """draws.poisson(rng, lam): the variate from the stream, then the rest of its blocks
    of 4096 uniforms skipped, as poisson_many drops them."""
    k = _SCRATCH
    drawn = 0
    while True:
        while drawn < k:
            scratch[drawn] = pcg64.next_double(st)
            drawn += 1
        value, used = draws._poisson_one(scratch[:k], np.int64(0), lam)  # type: ignore[arg-type]
        if value >= 0:
            break
        # Powers of two up to a block, then whole blocks: the uniforms drawn never pass
        # the blocks poisson_many would have drawn for the same variate.
        k = k * 2 if k < _BLOCK else k + _BLOCK
        if k > scratch.shape[0]:
            # Over 16 blocks of uniforms for one variate: a multiplication run of 65,536
            # factors (lam < 10) or 32,768 rejections in a row (PTRS) does not happen.
            raise RuntimeError("a Poisson count used more uniforms than the scratch holds")
    consumed = -(-used // _BLOCK) * _BLOCK
    pcg64.advance(st, consumed - drawn)
    return value


@nb.njit(cache=True)
def _copy(source: np.ndarray, target: np.ndarray) -> None:
    # A loop: numba compiles a slice assignment's general machinery for a second or more.
    for i in range(source.shape[0]):
        target[i] = source[i]


@nb.njit(cache=True, nogil=True)
def windows(  # noqa: C901
    arrival: np.ndarray, attribute: np.ndarray, lo: np.ndarray, hi: np.ndarray, x_lo: np.ndarray,
    x_hi: np.ndarray, t0: int, starts: np.ndarray, cum: np.ndarray, period: np.ndarray, instances: int,
    kind_cdf: np.ndarray, kind_codes: np.ndarray, keys: int, size_draw: bool, fee_draw: bool,
    times: np.ndarray, instance: np.ndarray, kind: np.ndarray, key: np.ndarray,
    size_u: np.ndarray, fee_u: np.ndarray, sums: np.ndarray, counts: np.ndarray,
    scratch: np.ndarray, saved_arrival: np.ndarray, saved_attribute: np.ndarray) -> tuple[int, int]:
    """Windows ``[lo[w], hi[w])``, whose expected counts per instance are ``x_hi[w] -
    x_lo[w]`` (Λ at their edges), in order while their messages fit the output arrays:
    (windows done, messages written). A window that does not fit is left undrawn (both
    states are put back as they were before it)."""
    capacity = times.shape[0]
    filled = 0
    for w in range(lo.shape[0]):
        counts[w] = 0
        a, b = lo[w], hi[w]
        if b <= a:
            continue
        _copy(arrival, saved_arrival)
        _copy(attribute, saved_attribute)
        expected = instances * (x_hi[w] - x_lo[w])
        if not expected > 0:
            continue
        n = _poisson_count(arrival, expected, scratch)
        if n == 0:
            continue
        if filled + n > capacity:
            _copy(saved_arrival, arrival)
            _copy(saved_attribute, attribute)
            return w, filled
        # n sorted uniforms: normalised partial sums of n + 1 exponentials (mean 1). The
        # uniforms first, then their logarithms in one vectorised pass, then the sums in
        # the same order: the same bits as one exponential at a time.
        for i in range(n + 1):
            sums[i] = pcg64.next_double(arrival)
        draws.neg_log1m_into(sums, n + 1)
        total = 0.0
        for i in range(n + 1):
            total += sums[i] * 1.0
            sums[i] = total
        width = x_hi[w] - x_lo[w]
        for i in range(n):
            x = x_lo[w] + sums[i] / total * width
            j = 0  # searchsorted(cum, x, side="right") - 1
            while j + 1 < cum.shape[0] and cum[j + 1] <= x:
                j += 1
            t = math.floor(t0 + (starts[j] + (x - cum[j]) * period[j]))
            v = np.int64(t)
            if v < a:
                v = a
            if v > b - 1:
                v = b - 1
            times[filled + i] = v
        if instances > 1:
            pcg64.bounded32(arrival, instances, instance, filled, n)
        else:
            for i in range(n):
                instance[filled + i] = 0
        if kind_cdf.shape[0] > 1:
            for i in range(n):
                # The kind whose cumulative weight first passes the uniform (what
                # kind_codes[kind_cdf.searchsorted(u, side="right")] picks).
                u = pcg64.next_double(attribute)
                j = 0
                while j + 1 < kind_cdf.shape[0] and kind_cdf[j] <= u:
                    j += 1
                kind[filled + i] = kind_codes[j]
        else:
            for i in range(n):
                kind[filled + i] = kind_codes[0]
        pcg64.bounded32(attribute, keys, key, filled, n)
        if size_draw:
            for i in range(n):
                size_u[filled + i] = pcg64.next_double(attribute)
        if fee_draw:
            for i in range(n):
                fee_u[filled + i] = pcg64.next_double(attribute)
        counts[w] = n
        filled += n
    return lo.shape[0], filled



# ``windows``'s argument types as PoissonWindows.draw passes them: C-contiguous arrays, int64
# scalars, two booleans.
_I64, _F64, _U64, _I8 = nbt.int64[::1], nbt.float64[::1], nbt.uint64[::1], nbt.int8[::1]
WINDOWS_SIGNATURE = (
    _U64, _U64, _I64, _I64, _F64, _F64, nbt.int64, _F64, _F64, _F64, nbt.int64,  # arrival .. instances
    _F64, _I8, nbt.int64, nbt.boolean, nbt.boolean,  # kind_cdf .. fee_draw
    _I64, _I64, _I8, _I64, _F64, _F64, _F64, _I64,  # times .. counts
    _F64, _U64, _U64,  # scratch, saved states
)


def ready() -> bool:
    """Whether ``windows`` can run without compiling first (compiled here, or cached)."""
    return available(windows, WINDOWS_SIGNATURE)
