"""Portable random draws: the same seed gives the same bits on every x86-64 CPU.

Place in the pipeline: the bottom layer under traffic generation (arrival times, fees, sizes)
and the simulator (service and processing times, link delays, gossip kernel). Every random
value msgstorm draws is built here from uniform doubles (``Generator.random``, exact on every
machine) with nothing but IEEE-754 basic operations (+ - * /, sqrt, floor, frexp, ldexp), which
are correctly rounded and so give the same result on every CPU.

Why by hand: numpy's vectorised ``exp``/``log``/``power`` take a different SIMD path per CPU
(AVX2, AVX-512) and differ in the last bit; numpy's ziggurat normal and exponential, its Pareto
and Poisson call libm, whose x86-64 builds also pick per-CPU (FMA) variants. No library offers
CPU-independent transcendental functions, so ``log`` and ``exp`` follow fdlibm's algorithms
(e_log.c, e_exp.c: range reduction and a minimax polynomial, under 1 ulp of error), the normal
is Wichura's AS241 inverse CDF (one uniform per draw, no rejection) and the Poisson variates
follow numpy's own algorithms (multiplication below 10, Hörmann's PTRS above) on these.

Each function is written once, as numba-compiled scalar code: the gossip kernel calls the
scalars, and array forms loop over them. numba is run without fastmath, so LLVM never fuses a
multiply and an add into an FMA (which would round differently); ``tests/test_draws.py``
checks the compiled code bit for bit against the same functions run by the Python interpreter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from msgstorm.jit import available, bits_float, float_bits, frexp, internal_twin, interpreted, nb

__all__ = [
    "exp",
    "exp_array",
    "exponential",
    "exponential_from",
    "inner_exp",
    "inner_log",
    "inner_normal_ppf",
    "log",
    "log_array",
    "neg_log1m_into",
    "lognormal",
    "lognormal_from",
    "normal",
    "normal_from",
    "normal_ppf",
    "numpy_until_compiled",
    "pareto_from",
    "pareto_multiplier",
    "poisson",
    "poisson_many",
    "standard_normal",
    "uncompiled",
]

# fdlibm e_log.c / e_exp.c constants: ln 2 split so that k * _LN2_HI is exact for |k| < 2**11.
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_INV_LN2 = 1.44269504088896338700e00
_SQRT_HALF = 0.70710678118654752440
_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_P1 = 1.66666666666666019037e-01
_P2 = -2.77777777770155933842e-03
_P3 = 6.61375632143793436117e-05
_P4 = -1.65339022054652515390e-06
_P5 = 4.13813679705723846039e-08
_EXP_OVERFLOW = 7.09782712893383973096e02
_EXP_UNDERFLOW = -7.45133219101941108420e02
# The smallest probability the normal's inverse CDF is asked for: a uniform of exactly 0
# (one draw in 2**53) would map to -inf.
_P_FLOOR = 2.0**-60


# The arithmetic of log, exp and the normal quantile: inlined by numba into the scalar
# functions below, and run by numpy over arrays as they are (``py_func``, below).

@nb.njit(cache=True, inline="always")
def _log_reduced(m: float, k: float) -> float:
    """fdlibm's log of ``m * 2**k`` for ``sqrt(1/2) <= m < sqrt(2)`` and an integer ``k``."""
    f = m - 1.0  # exact: m is within a factor 2 of 1
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    r = t2 + t1
    hfsq = 0.5 * f * f
    return k * _LN2_HI - ((hfsq - (s * (hfsq + r) + k * _LN2_LO)) - f)


@nb.njit(cache=True)
def log(x: float) -> float:
    """Natural logarithm (fdlibm e_log.c); log(0) = -inf, log(x < 0) = nan, log(inf) = inf."""
    if x != x or x < 0.0:
        return math.nan
    if x == 0.0:
        return -math.inf
    if x == math.inf:
        return math.inf
    m, e = frexp(x)  # x = m * 2**e, 0.5 <= m < 1 (subnormals included)
    if m < _SQRT_HALF:
        m = m + m
        e = e - 1
    return _log_reduced(m, float(e))


# The compiled callers' log, exp and normal quantile: the same source without the wrappers
# the public ones keep for Python (``jit.internal_twin``), about 0.3 s of a cold start's
# compiling (the link model and the gossip kernel link them in).
inner_log: Callable[[float], float] = internal_twin(log, "inner_log")


@nb.njit(cache=True, inline="always")
def _log_normal(x: float) -> float:
    """``log(x)`` for a normal, finite ``x > 0`` (such as ``1 - u`` for a uniform ``u`` in
    [0, 1)): the same operations without a branch, so that a loop over it compiles to vector
    instructions (a tenth of the time per value). Each vector lane rounds as the scalar
    operation does: the same bits as ``log``."""
    bits = float_bits(x)
    m = bits_float((bits & 0x000FFFFFFFFFFFFF) | 0x3FE0000000000000)  # frexp's mantissa
    e = ((bits >> 52) & 0x7FF) - 1022
    small = m < _SQRT_HALF
    return _log_reduced(m + m if small else m, float(e - 1 if small else e))


@nb.njit(cache=True, inline="always")
def _all_unit(values: np.ndarray, n: int) -> bool:
    """Whether ``values[:n]`` are all in [0, 1) (uniforms: ``1 - u`` is then normal)."""
    inside = True
    for i in range(n):
        inside &= (values[i] >= 0.0) & (values[i] < 1.0)
    return inside


@nb.njit(cache=True, error_model="numpy")
def neg_log1m_into(values: np.ndarray, n: int) -> None:
    """``values[i] = -log(1 - values[i])`` for ``i < n``, in place: exponential variates of
    mean 1 from uniforms. Compiled with numpy's error model: no division check keeps the loop
    from being vectorised (``_log_normal``)."""
    if _all_unit(values, n):
        for i in range(n):
            values[i] = -_log_normal(1.0 - values[i])
    else:
        for i in range(n):
            values[i] = -log(1.0 - values[i])


@nb.njit(cache=True, inline="always")
def _exp_reduced(x: float, k: float) -> float:
    """fdlibm's ``e**x / 2**k`` for ``k = floor(x / ln 2 + 1/2)`` (in [0.7, 1.42])."""
    hi = x - k * _LN2_HI
    lo = k * _LN2_LO
    r = hi - lo
    t = r * r
    c = r - t * (_P1 + t * (_P2 + t * (_P3 + t * (_P4 + t * _P5))))
    return 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)


@nb.njit(cache=True)
def exp(x: float) -> float:
    """e**x (fdlibm e_exp.c); overflows to inf, underflows to 0, nan stays nan."""
    if x != x:
        return math.nan
    if x > _EXP_OVERFLOW:
        return math.inf
    if x < _EXP_UNDERFLOW:
        return 0.0
    k = math.floor(x * _INV_LN2 + 0.5)
    y = _exp_reduced(x, k)
    e = int(k)
    if -1021 <= e <= 1022:
        # y is within [0.7, 1.42], so y * 2**e is a normal number: the product is exact, the
        # value ldexp gives, without numba's call into the C library.
        return y * bits_float((e + 1023) << 52)
    return math.ldexp(y, e)


inner_exp: Callable[[float], float] = internal_twin(exp, "inner_exp")


@nb.njit(cache=True, inline="always")
def _ppf_central(q: float) -> float:
    """AS241's quantile for ``|q| <= 0.425``, ``q = p - 1/2``."""
    r = 0.180625 - q * q
    num = (((((((2.5090809287301226727e+3 * r + 3.3430575583588128105e+4) * r
                + 6.7265770927008700853e+4) * r + 4.5921953931549871457e+4) * r
              + 1.3731693765509461125e+4) * r + 1.9715909503065514427e+3) * r
            + 1.3314166789178437745e+2) * r + 3.3871328727963666080e+0) * q
    den = (((((((5.2264952788528545610e+3 * r + 2.8729085735721942674e+4) * r
                + 3.9307895800092710610e+4) * r + 2.1213794301586595867e+4) * r
              + 5.3941960214247511077e+3) * r + 6.8718700749205790830e+2) * r
            + 4.2313330701600911252e+1) * r + 1.0)
    return num / den


@nb.njit(cache=True, inline="always")
def _ppf_near(r: float) -> float:
    """AS241's quantile (of the tail's sign) for ``r - 1.6``, ``r = sqrt(-log(tail)) <= 5``."""
    num = (((((((7.74545014278341407640e-4 * r + 2.27238449892691845833e-2) * r
                + 2.41780725177450611770e-1) * r + 1.27045825245236838258e+0) * r
              + 3.64784832476320460504e+0) * r + 5.76949722146069140550e+0) * r
            + 4.63033784615654529590e+0) * r + 1.42343711074968357734e+0)
    den = (((((((1.05075007164441684324e-9 * r + 5.47593808499534494600e-4) * r
                + 1.51986665636164571966e-2) * r + 1.48103976427480074590e-1) * r
              + 6.89767334985100004550e-1) * r + 1.67638483018380384940e+0) * r
            + 2.05319162663775882187e+0) * r + 1.0)
    return num / den


@nb.njit(cache=True, inline="always")
def _ppf_far(r: float) -> float:
    """AS241's quantile (of the tail's sign) for ``r - 5``, ``r = sqrt(-log(tail)) > 5``."""
    num = (((((((2.01033439929228813265e-7 * r + 2.71155556874348757815e-5) * r
                + 1.24266094738807843860e-3) * r + 2.65321895265761230930e-2) * r
              + 2.96560571828504891230e-1) * r + 1.78482653991729133580e+0) * r
            + 5.46378491116411436990e+0) * r + 6.65790464350110377720e+0)
    den = (((((((2.04426310338993978564e-15 * r + 1.42151175831644588870e-7) * r
                + 1.84631831751005468180e-5) * r + 7.86869131145613259100e-4) * r
              + 1.48753612908506148525e-2) * r + 1.36929880922735805310e-1) * r
            + 5.99832206555887937690e-1) * r + 1.0)
    return num / den


@nb.njit(cache=True)
def normal_ppf(p: float) -> float:
    """The standard normal quantile of ``p`` in [0, 1) (Wichura's AS241, PPND16; relative
    error about 1e-16); ``p`` is floored at 2**-60 so a uniform of 0 stays finite."""
    if p < _P_FLOOR:
        p = _P_FLOOR
    q = p - 0.5
    if abs(q) <= 0.425:
        return _ppf_central(q)
    r = p if q <= 0.0 else 1.0 - p
    r = math.sqrt(-inner_log(r))
    x = _ppf_near(r - 1.6) if r <= 5.0 else _ppf_far(r - 5.0)
    return -x if q < 0.0 else x


inner_normal_ppf: Callable[[float], float] = internal_twin(normal_ppf, "inner_normal_ppf")


# --- arrays: one loop over the scalar, so both forms give the same bits -------------------

@nb.njit(cache=True)
def log_array(x: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape[0], dtype=np.float64)
    for i in range(x.shape[0]):
        out[i] = inner_log(x[i])
    return out


@nb.njit(cache=True)
def exp_array(x: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape[0], dtype=np.float64)
    for i in range(x.shape[0]):
        out[i] = inner_exp(x[i])
    return out


@nb.njit(cache=True)
def _normal_loop(u: np.ndarray, mean: float, std: float) -> np.ndarray:
    out = np.empty(u.shape[0], dtype=np.float64)
    for i in range(u.shape[0]):
        out[i] = mean + std * inner_normal_ppf(u[i])
    return out


@nb.njit(cache=True)
def _lognormal_loop(u: np.ndarray, median: float, sigma: float) -> np.ndarray:
    out = np.empty(u.shape[0], dtype=np.float64)
    for i in range(u.shape[0]):
        out[i] = median * inner_exp(sigma * inner_normal_ppf(u[i]))
    return out


@nb.njit(cache=True)
def _pareto_loop(u: np.ndarray, alpha: float) -> np.ndarray:
    out = np.empty(u.shape[0], dtype=np.float64)
    for i in range(u.shape[0]):
        out[i] = inner_exp(-inner_log(1.0 - u[i]) / alpha)  # (1 - u) ** (-1 / alpha)
    return out


# --- the same draws by numpy, for a run too small to win their compile back ---------------
# Each applies the scalar function's operations, in its order, to whole arrays: numpy's
# + - * / and sqrt are correctly rounded too, so every value has the scalar's bits. Where
# the scalar branches, the values are taken apart by mask; a value that takes a branch for
# the exceptional (exp out of range) goes through the scalar code, interpreted.

def _on_arrays(scalar: Callable[..., float], *arrays: np.ndarray) -> np.ndarray:
    """A scalar core's Python source (``py_func``) run on whole arrays: numpy's operations."""
    return np.asarray(scalar(*arrays))


def _log_normal_numpy(x: np.ndarray) -> np.ndarray:
    """``_log_normal`` of each value of ``x`` (normal, finite, above 0; C-contiguous)."""
    bits = x.view(np.int64)
    m = ((bits & 0x000FFFFFFFFFFFFF) | 0x3FE0000000000000).view(np.float64)
    e = ((bits >> 52) & 0x7FF) - 1022
    small = m < _SQRT_HALF
    k = np.where(small, e - 1, e).astype(np.float64)
    return _on_arrays(_log_reduced.py_func, np.where(small, m + m, m), k)


def _exp_numpy(x: np.ndarray) -> np.ndarray:
    """``exp`` of each value of ``x``."""
    with np.errstate(all="ignore"):  # out-of-range values are the scalar code's below
        k = np.floor(x * _INV_LN2 + 0.5)
    scaled = (k >= -1021.0) & (k <= 1022.0)  # exp's y * 2**e branch (not nan, not out of range)
    out = np.empty(x.shape[0], dtype=np.float64)
    e = k[scaled]
    powers = ((e.astype(np.int64) + 1023) << 52).view(np.float64)  # 2**e
    out[scaled] = _on_arrays(_exp_reduced.py_func, x[scaled], e) * powers
    rest = np.flatnonzero(~scaled)
    if rest.size:
        scalar = interpreted(exp)
        out[rest] = [scalar(float(value)) for value in x[rest]]
    return out


def _normal_ppf_numpy(p: np.ndarray) -> np.ndarray:
    """``normal_ppf`` of each value of ``p`` (in [0, 1))."""
    p = np.where(p < _P_FLOOR, _P_FLOOR, p)
    q = p - 0.5
    out = np.empty(p.shape[0], dtype=np.float64)
    central = np.abs(q) <= 0.425
    out[central] = _on_arrays(_ppf_central.py_func, q[central])
    q, p = q[~central], p[~central]
    r = np.sqrt(-_log_normal_numpy(np.where(q <= 0.0, p, 1.0 - p)))
    near = r <= 5.0
    x = np.empty(r.shape[0], dtype=np.float64)
    x[near] = _on_arrays(_ppf_near.py_func, r[near] - 1.6)
    x[~near] = _on_arrays(_ppf_far.py_func, r[~near] - 5.0)
    out[~central] = np.where(q < 0.0, -x, x)
    return out


def _uniforms(u: np.ndarray) -> bool:
    """Whether ``u`` is a flat float64 array of values in [0, 1), which the numpy forms take."""
    return u.dtype == np.float64 and u.ndim == 1 and bool(((u >= 0.0) & (u < 1.0)).all())


# Values the numpy forms may draw in place of one compiled loop within
# ``numpy_until_compiled``, and variates the interpreter may draw in place of
# ``_poisson_fill``: past them, compiling costs less than going on without it
# (docs/dev/performance-log.md, "A cold start that draws by numpy").
NUMPY_VALUES = 8_000_000
INTERPRETED_VARIATES = 20_000


class _Uncompiled:
    """What this process does with a draw whose compiled loop it lacks (neither compiled
    here nor in numba's cache): compile it (the default), or within ``numpy_until_compiled``
    draw by numpy (or the interpreter) up to a budget per loop. Both give the same bits."""

    def __init__(self) -> None:
        self.active = False
        self.drawn: dict[str, int] = {}  # values drawn without each loop

    def without(self, loop: Callable[..., object], args: tuple[object, ...], n: int,
                budget: int) -> bool:
        """Whether to draw ``n`` values without ``loop`` (called with ``args``)."""
        if not self.active:
            return False
        name = getattr(loop, "__name__", "")
        drawn = self.drawn.get(name, 0) + n
        signature = tuple(nb.typeof(arg) for arg in args)  # type: ignore[no-untyped-call]
        if drawn > budget or available(loop, signature):
            return False
        self.drawn[name] = drawn
        return True


_UNCOMPILED = _Uncompiled()


def uncompiled(loop: Callable[..., object], args: tuple[object, ...], n: int, budget: int) -> bool:
    """Whether, within ``numpy_until_compiled``, ``n`` more calls or values of ``loop``
    (called with ``args``) go without it, by its source run by the interpreter
    (``jit.interpreted``), up to ``budget`` in all: for a compiled function elsewhere
    (``GossipState.inject``) that gives the same results either way."""
    return _UNCOMPILED.without(loop, args, n, budget)


@contextmanager
def numpy_until_compiled(active: bool = True) -> Iterator[None]:
    """Within (``active``): a draw whose compiled loop this process lacks goes by numpy,
    the same values, instead of compiling it, while its budget lasts. For a run too small to
    win the compile back (``sim/warm.py``, ``worth_compiling``): the quick start's cold
    start would compile them for about 4 s of CPU."""
    before = _UNCOMPILED.active
    _UNCOMPILED.active = active
    try:
        yield
    finally:
        _UNCOMPILED.active = before


def _by_numpy(loop: Callable[..., object], u: np.ndarray, *args: object) -> bool:
    return (_UNCOMPILED.active and _uniforms(u)
            and _UNCOMPILED.without(loop, (u, *args), u.shape[0], NUMPY_VALUES))


def exponential_from(u: np.ndarray, mean: float) -> np.ndarray:
    """Exponential variates of ``mean``, one per uniform in ``u`` (a new array).

    Python around the compiled ``neg_log1m_into``: the copy and the product are numpy's,
    and a product is one correctly rounded operation, the same bits as the compiled loop's
    on every CPU. A compiled function that allocates its result loads numba's array
    module (``numba.np.arrayobj``) with it from the cache, 0.03-0.1 s of a one-node run's
    start, and none of the others on that path allocates."""
    out = np.array(u, dtype=np.float64)  # a C-contiguous copy, as the compiled loop wants it
    if _by_numpy(neg_log1m_into, out, out.shape[0]):
        out = -_log_normal_numpy(1.0 - out)
    else:
        neg_log1m_into(out, out.shape[0])  # -log(1 - u): 1 - u is exact and in (0, 1]
    out *= mean
    return out


def normal_from(u: np.ndarray, mean: float, std: float) -> np.ndarray:
    """``mean + std * Z`` for the standard normal Z of each uniform in ``u``."""
    if _by_numpy(_normal_loop, u, mean, std):
        return mean + std * _normal_ppf_numpy(u)
    normal: np.ndarray = _normal_loop(u, mean, std)
    return normal


def lognormal_from(u: np.ndarray, median: float, sigma: float) -> np.ndarray:
    """``median * exp(sigma * Z)`` for the standard normal Z of each uniform in ``u``."""
    if _by_numpy(_lognormal_loop, u, median, sigma):
        return median * _exp_numpy(sigma * _normal_ppf_numpy(u))
    lognormal: np.ndarray = _lognormal_loop(u, median, sigma)
    return lognormal


def pareto_from(u: np.ndarray, alpha: float) -> np.ndarray:
    """``(1 - u) ** (-1 / alpha)`` for each uniform in ``u``."""
    if _by_numpy(_pareto_loop, u, alpha):
        return _exp_numpy(-_log_normal_numpy(1.0 - u) / alpha)
    pareto: np.ndarray = _pareto_loop(u, alpha)
    return pareto


def exponential(rng: np.random.Generator, mean: float, n: int) -> np.ndarray:
    """``n`` exponential draws with the given mean (inverse CDF, one uniform each)."""
    return exponential_from(rng.random(n), float(mean))


def standard_normal(rng: np.random.Generator, n: int) -> np.ndarray:
    return normal_from(rng.random(n), 0.0, 1.0)


def normal(rng: np.random.Generator, mean: float, std: float, n: int) -> np.ndarray:
    return normal_from(rng.random(n), float(mean), float(std))


def lognormal(rng: np.random.Generator, median: float, sigma: float, n: int) -> np.ndarray:
    """``median * exp(sigma * Z)``, Z standard normal."""
    return lognormal_from(rng.random(n), float(median), float(sigma))


def pareto_multiplier(rng: np.random.Generator, alpha: float, n: int) -> np.ndarray:
    """Pareto type I with minimum 1 and tail index ``alpha``: ``(1 - U) ** (-1 / alpha)``."""
    return pareto_from(rng.random(n), float(alpha))


# --- Poisson ------------------------------------------------------------------------------

@nb.njit(cache=True)
def _log_gamma(x: float) -> float:
    """log Γ(x) for x >= 1 (numpy's random_loggam: Stirling's series, shifted up below 7)."""
    if x == 1.0 or x == 2.0:
        return 0.0
    n = 0
    if x < 7.0:
        n = int(7.0 - x)
    x0 = x + n
    x2 = (1.0 / x0) * (1.0 / x0)
    gl0 = -1.39243221690590e+00
    gl0 = gl0 * x2 + 1.796443723688307e-01
    gl0 = gl0 * x2 - 2.955065359477124e-02
    gl0 = gl0 * x2 + 6.410256410256410e-03
    gl0 = gl0 * x2 - 1.917526917526918e-03
    gl0 = gl0 * x2 + 8.417508417508418e-04
    gl0 = gl0 * x2 - 5.952380952380952e-04
    gl0 = gl0 * x2 + 7.936507936507937e-04
    gl0 = gl0 * x2 - 2.777777777777778e-03
    gl0 = gl0 * x2 + 8.333333333333333e-02
    gl = gl0 / x0 + 0.5 * 1.8378770664093453e+00 + (x0 - 0.5) * inner_log(x0) - x0
    for _ in range(n):
        gl -= inner_log(x0 - 1.0)
        x0 -= 1.0
    return gl


@nb.njit(cache=True)
def _poisson_one(uniform: np.ndarray, at: int, lam: float) -> tuple[int, int]:
    """One Poisson(lam) variate from ``uniform[at:]``: (variate, next unused index), or
    (-1, at) when the block ran out (the caller draws more and calls again)."""
    if lam <= 0.0:
        return 0, at
    if lam < 10.0:  # multiplication method
        limit = inner_exp(-lam)
        count = 0
        prod = 1.0
        i = at
        while i < uniform.shape[0]:
            prod *= uniform[i]
            i += 1
            if prod > limit:
                count += 1
            else:
                return count, i
        return -1, at
    # PTRS (Hörmann 1993), as numpy's random_poisson_ptrs
    slam = math.sqrt(lam)
    loglam = inner_log(lam)
    b = 0.931 + 2.53 * slam
    a = -0.059 + 0.02483 * b
    invalpha = 1.1239 + 1.1328 / (b - 3.4)
    vr = 0.9277 - 3.6224 / (b - 2.0)
    i = at
    while i + 1 < uniform.shape[0]:
        u = uniform[i] - 0.5
        v = uniform[i + 1]
        i += 2
        us = 0.5 - abs(u)
        k = math.floor((2.0 * a / us + b) * u + lam + 0.43) if us > 0.0 else -1.0
        if us >= 0.07 and v <= vr:
            return int(k), i
        if k < 0.0 or (us < 0.013 and v > us):
            continue
        if (inner_log(v) + inner_log(invalpha) - inner_log(a / (us * us) + b)
                <= -lam + k * loglam - _log_gamma(k + 1.0)):
            return int(k), i
    return -1, at


# ``at`` is an int64 from the start: as the literal 0 numba would compile _poisson_one twice,
# for the constant (its first typing pass) and again for int64.
@nb.njit(cache=True, locals={"at": nb.int64})
def _poisson_fill(uniform: np.ndarray, lam: float, out: np.ndarray, start: int) -> tuple[int, int]:
    """Fill ``out[start:]`` from ``uniform``: (entries filled up to, uniforms used)."""
    at = 0
    j = start
    while j < out.shape[0]:
        value, nxt = _poisson_one(uniform, at, lam)
        if value < 0:
            break
        out[j] = value
        at = nxt
        j += 1
    return j, at


# Uniforms drawn per refill for Poisson variates: about 1 + lam per draw below 10, ~2.2 above.
_POISSON_BLOCK = 4096


def poisson_many(rng: np.random.Generator, lam: float, n: int) -> np.ndarray:
    """``n`` Poisson(lam) variates. Uniforms are drawn in blocks; a block's unused tail is
    kept for the next variate, so the stream depends only on the seed and the calls made."""
    out = np.zeros(n, dtype=np.int64)
    if n == 0 or lam <= 0.0:
        return out
    if not math.isfinite(lam):
        raise ValueError(f"Poisson mean must be finite, got {lam}")
    per_draw = 1.0 + lam if lam < 10.0 else 2.5
    fill: Callable[..., tuple[int, int]] = _poisson_fill
    if _UNCOMPILED.without(_poisson_fill, (np.empty(0), 0.0, out, 0), n, INTERPRETED_VARIATES):
        fill = interpreted(_poisson_fill)  # the same source, run by the interpreter
    filled = 0
    spare = np.empty(0, dtype=np.float64)
    while filled < n:
        want = max(_POISSON_BLOCK, int((n - filled) * per_draw * 1.1) + 16)
        uniform = np.concatenate((spare, rng.random(want)))
        filled, used = fill(uniform, float(lam), out, filled)
        spare = uniform[used:]
    return out


def poisson(rng: np.random.Generator, lam: float) -> int:
    """One Poisson(lam) variate (the expected count of a traffic window)."""
    return int(poisson_many(rng, lam, 1)[0])
