"""numpy's default bit generator (PCG64) stepped inside compiled code.

Place in the pipeline: the bottom layer, beside ``draws``, under compiled traffic generation
(``traffic/compiled.py``). A ``np.random.Generator`` can only be drawn from in calls made by
the interpreter, each with its own cost; a compiled loop that must draw a few values per
traffic window, and skip the unused rest of numpy's blocks, would pay that cost per window.
Here the generator's 128-bit state is copied into a ``uint64[4]`` array, stepped and jumped
by compiled code exactly as numpy's C code steps it, and copied back, so the generator goes
on from exactly where the same draws made through numpy would have left it.

Why by hand: numba's own ``Generator`` support draws through the bit generator's C pointers
but cannot jump it, and numpy offers no compiled-callable jump. The arithmetic is numpy's
(``numpy/random/src/pcg64/pcg64.h``: the XSL-RR output of a 128-bit LCG, and the O(log n)
jump of ``pcg_advance_lcg_128``), on pairs of uint64 words; integer arithmetic is the same
on every CPU. ``tests/test_pcg64.py`` checks it against numpy's ``random_raw``, ``random``,
``integers`` and ``advance``.

Layout of a state array: ``[state_hi, state_lo, inc_hi, inc_lo, has_uint32, uinteger]``: the
last two are numpy's one-value buffer of 32-bit draws (the high half of a raw draw whose low
half was used), which lives in the bit generator and so carries from one call to the next.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from msgstorm.jit import nb

__all__ = ["advance", "bounded32", "load", "next32", "next64", "next_double", "store"]

_MASK32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_S11 = np.uint64(11)
_S58 = np.uint64(58)
_ONE = np.uint64(1)
_ZERO = np.uint64(0)
_W63 = np.uint64(63)
_W64 = np.uint64(64)
# PCG's default 128-bit multiplier (pcg64.h: PCG_DEFAULT_MULTIPLIER_128).
_MULT_HI = np.uint64(2549297995355413924)
_MULT_LO = np.uint64(4865540595714422341)
_DOUBLE_UNIT = 1.0 / 9007199254740992.0  # 2**-53
_M64 = (1 << 64) - 1


def load(generator: np.random.Generator) -> np.ndarray | None:
    """The generator's state as a ``uint64[6]`` array, or None when it is not a PCG64 (the
    caller then draws through numpy)."""
    bit_generator = generator.bit_generator
    if type(bit_generator) is not np.random.PCG64:
        return None
    full = bit_generator.state
    s, inc = int(full["state"]["state"]), int(full["state"]["inc"])
    return np.array([s >> 64, s & _M64, inc >> 64, inc & _M64, int(full["has_uint32"]), int(full["uinteger"])],
                    dtype=np.uint64)


def store(generator: np.random.Generator, words: np.ndarray) -> None:
    """Put a state made by ``load`` (and stepped since) back into the generator."""
    hi, lo, inc_hi, inc_lo, has_uint32, uinteger = (int(w) for w in words)
    generator.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {"state": (hi << 64) | lo, "inc": (inc_hi << 64) | inc_lo},
        "has_uint32": has_uint32,
        "uinteger": uinteger,
    }


@nb.njit(cache=True)
def _mul_hi(a: Any, b: Any) -> Any:
    """The high 64 bits of the 128-bit product of two uint64 (schoolbook, 32-bit halves)."""
    a_lo = a & _MASK32
    a_hi = a >> _S32
    b_lo = b & _MASK32
    b_hi = b >> _S32
    lo_lo = a_lo * b_lo
    hi_lo = a_hi * b_lo
    lo_hi = a_lo * b_hi
    cross = (lo_lo >> _S32) + (hi_lo & _MASK32) + lo_hi
    return a_hi * b_hi + (hi_lo >> _S32) + (cross >> _S32)


@nb.njit(cache=True)
def _mul128(a_hi: Any, a_lo: Any, b_hi: Any, b_lo: Any) -> tuple[Any, Any]:
    """(a * b) mod 2**128."""
    return _mul_hi(a_lo, b_lo) + a_lo * b_hi + a_hi * b_lo, a_lo * b_lo


@nb.njit(cache=True)
def _add128(a_hi: Any, a_lo: Any, b_hi: Any, b_lo: Any) -> tuple[Any, Any]:
    """(a + b) mod 2**128."""
    lo = a_lo + b_lo
    carry = _ONE if lo < a_lo else _ZERO
    return a_hi + b_hi + carry, lo


@nb.njit(cache=True)
def next64(st: np.ndarray) -> Any:
    """The next raw 64-bit output (numpy's ``random_raw``): step the LCG, then XSL-RR."""
    hi, lo = _mul128(st[0], st[1], _MULT_HI, _MULT_LO)
    hi, lo = _add128(hi, lo, st[2], st[3])
    st[0] = hi
    st[1] = lo
    x = hi ^ lo
    rot = hi >> _S58
    return (x >> rot) | (x << ((_W64 - rot) & _W63))


@nb.njit(cache=True)
def next_double(st: np.ndarray) -> float:
    """The next uniform double in [0, 1), as ``Generator.random`` makes it."""
    return float(next64(st) >> _S11) * _DOUBLE_UNIT


@nb.njit(cache=True)
def next32(st: np.ndarray) -> Any:
    """The next 32-bit draw (numpy's ``next_uint32``): the low half of a new raw draw, its
    high half kept for the next call."""
    if st[4]:
        st[4] = _ZERO
        return st[5]
    raw = next64(st)
    st[4] = _ONE
    st[5] = raw >> _S32
    return raw & _MASK32


@nb.njit(cache=True)
def advance(st: np.ndarray, delta: int) -> None:
    """Jump ``delta`` (>= 0) raw draws ahead without making them, as drawing and dropping
    them would (unlike numpy's ``advance``, the 32-bit buffer is left as it is)."""
    d = np.uint64(delta)
    cur_mult_hi, cur_mult_lo = _MULT_HI, _MULT_LO
    cur_plus_hi, cur_plus_lo = st[2], st[3]
    acc_mult_hi, acc_mult_lo = _ZERO, _ONE
    acc_plus_hi, acc_plus_lo = _ZERO, _ZERO
    while d > _ZERO:
        if d & _ONE:
            acc_mult_hi, acc_mult_lo = _mul128(acc_mult_hi, acc_mult_lo, cur_mult_hi, cur_mult_lo)
            acc_plus_hi, acc_plus_lo = _mul128(acc_plus_hi, acc_plus_lo, cur_mult_hi, cur_mult_lo)
            acc_plus_hi, acc_plus_lo = _add128(acc_plus_hi, acc_plus_lo, cur_plus_hi, cur_plus_lo)
        m1_hi, m1_lo = _add128(cur_mult_hi, cur_mult_lo, _ZERO, _ONE)
        cur_plus_hi, cur_plus_lo = _mul128(m1_hi, m1_lo, cur_plus_hi, cur_plus_lo)
        cur_mult_hi, cur_mult_lo = _mul128(cur_mult_hi, cur_mult_lo, cur_mult_hi, cur_mult_lo)
        d = d >> _ONE
    hi, lo = _mul128(acc_mult_hi, acc_mult_lo, st[0], st[1])
    st[0], st[1] = _add128(hi, lo, acc_plus_hi, acc_plus_lo)


@nb.njit(cache=True)
def bounded32(st: np.ndarray, span: int, out: np.ndarray, start: int, n: int) -> None:
    """``out[start:start + n]`` = ``Generator.integers(0, span, n, dtype=np.int64)`` for
    ``1 <= span < 2**32``: numpy's Lemire method on 32-bit draws for a range that fits 32
    bits (``random_bounded_uint64_fill`` through ``buffered_bounded_lemire_uint32``, whose
    buffer is the bit generator's own ``next_uint32``). A span of 1 draws nothing."""
    if span == 1:
        for i in range(start, start + n):
            out[i] = 0
        return
    rng_excl = np.uint64(span)
    threshold = (_MASK32 - (rng_excl - _ONE)) % rng_excl
    for i in range(start, start + n):
        m = next32(st) * rng_excl
        leftover = m & _MASK32
        if leftover < rng_excl:
            while leftover < threshold:
                m = next32(st) * rng_excl
                leftover = m & _MASK32
        out[i] = np.int64(m >> _S32)
