"""numba as msgstorm uses it: every compiled module imports ``nb`` from here.

Place in the pipeline: under everything compiled (portable draws, the simulator's loops, the
live wire clients). It holds what numba does not offer as a setting: loading a function from
its on-disk cache without first importing numba's whole compiler (below), compiling a loop
without reference counting (``borrowing``), and a float's bits in compiled code
(``float_bits``, ``bits_float``, ``frexp``).

Before numba loads a cached function it refreshes its target context, which imports every
implementation module of the compiler (CPython builtins, numpy's array functions, typed
containers, ...: a large part of a one-node run's start, docs/performance.md) so that they
are there to lower code with. A function read from the cache is machine code already and
lowers nothing; what it needs is the runtime (NRT: memory for the arrays it returns), which
``lean_cache_loads`` still initialises. A compile is unchanged: numba's compiler refreshes
the context itself before it starts (``CompilerBase.__init__``), so a cache miss later in
the same process compiles as before.
"""

from __future__ import annotations

import functools
import os
import types as pytypes
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import numba as nb
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.core.dispatcher import Dispatcher
from numba.core.extending import intrinsic, overload

__all__ = ["available", "bits_float", "borrowing", "direct_call", "float_bits", "frexp",
           "internal_twin", "interpreted", "lean_cache_loads", "nb", "types_key"]


_F = TypeVar("_F", bound=Callable[..., Any])


def borrowing(*, nogil: bool = False, error_model: Literal["python", "numpy"] = "python",
              internal: bool = False) -> Callable[[_F], _F]:
    """``nb.njit(cache=True)`` for a compiled function that only reads and writes arrays its
    caller passed in (and views of them): the simulator's loops and their helpers.

    Such a function is compiled without numba's runtime (NRT). The runtime counts references
    to every array a compiled function holds and updates the counts with atomic instructions
    whenever an array is bound to a name: for an inlined helper that takes arrays, at every
    call of it, in every iteration. In the one-node loop these updates were most of its time
    (a million customers: 0.079 s, 0.033 s without them); in the gossip kernel a quarter
    (50 nodes, 6.8M receipts: 0.52 s, 0.39 s). The caller's references keep the
    arrays alive for the whole call, so there is nothing to count. A function compiled this
    way cannot allocate an array or return one it did not get: numba refuses to compile it,
    so a later change that allocates fails at once instead of leaking.

    Nor has it the wrapper numba makes for calls through a C function pointer (a compiled
    function passed as a value, which msgstorm never does); ``internal``: nor the one Python
    calls it through either (only other compiled functions call it). numba links a function's
    wrappers into the machine code of every function that calls it, and LLVM optimises and
    compiles them again in each: without them, a cold start compiles less."""
    # numba's flags have no typed parameters
    flags: dict[str, Any] = {"_nrt": False, "no_cfunc_wrapper": True, "no_cpython_wrapper": internal}
    decorate: Callable[[_F], _F] = nb.njit(cache=True, nogil=nogil, error_model=error_model,
                                           **flags)
    return decorate


def internal_twin(function: Dispatcher, name: str) -> Callable[..., float]:
    """``function``'s source compiled a second time as a ``borrowing(internal=True)``
    function named ``name`` (its own file in numba's cache), for other compiled functions to
    call: the same operations, so the same bits, without the wrappers that ``function``
    keeps for Python's calls (numba links those into every caller, and LLVM optimises them
    again there). For a small function that both compiled code and Python call
    (``draws.log``)."""
    source = function.py_func
    twin = pytypes.FunctionType(source.__code__, source.__globals__, name, source.__defaults__,
                                source.__closure__)
    twin.__qualname__ = name
    twin.__doc__ = source.__doc__
    return borrowing(internal=True)(twin)


def float_bits(x: float) -> int:
    """The IEEE-754 bits of a float64 as an int64 (compiled: one register move)."""
    return int(np.float64(x).view(np.int64))


def bits_float(bits: int) -> float:
    """The float64 whose IEEE-754 bits are the int64 ``bits``."""
    return float(np.int64(bits).view(np.float64))


# In compiled code the two are LLVM bitcasts. numba has no bit cast of a scalar; through an
# array view it would allocate at every call.
def _f64_as_i64_typing(typingctx: Any, x: Any) -> Any:
    if not isinstance(x, types.Float):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(context.cast(builder, args[0], signature.args[0], types.float64), ir.IntType(64))

    return types.int64(x), codegen


def _i64_as_f64_typing(typingctx: Any, bits: Any) -> Any:
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        return builder.bitcast(context.cast(builder, args[0], signature.args[0], types.int64), ir.DoubleType())

    return types.float64(bits), codegen


_f64_as_i64: Any = intrinsic(_f64_as_i64_typing)
_i64_as_f64: Any = intrinsic(_i64_as_f64_typing)


@overload(float_bits)
def _float_bits_compiled(x: Any) -> Any:
    def compiled(x: Any) -> Any:  # the parameters must read as the overload's
        return _f64_as_i64(x)

    return compiled


@overload(bits_float)
def _bits_float_compiled(bits: Any) -> Any:
    def compiled(bits: Any) -> Any:
        return _i64_as_f64(bits)

    return compiled


@nb.njit(cache=True, inline="always")
def frexp(x: float) -> tuple[float, int]:
    """``math.frexp(x)`` for a finite ``x > 0``, from its bits: ``x = m * 2**e``, ``0.5 <= m
    < 1``, exactly as the C library gives them (subnormals included). numba compiles
    ``math.frexp`` to a call into the C library, which no loop around it can vectorise."""
    bits = float_bits(x)
    biased = (bits >> 52) & 0x7FF
    shift = 0
    if biased == 0:  # subnormal: times 2**54 (exact) it is a normal number
        bits = float_bits(x * 18014398509481984.0)
        biased = (bits >> 52) & 0x7FF
        shift = 54
    return bits_float((bits & 0x000FFFFFFFFFFFFF) | 0x3FE0000000000000), int(biased - 1022 - shift)


def direct_call(function: Any, *args: Any) -> Callable[..., Any]:
    """The machine code ``function(*args)`` runs, callable without numba's dispatcher, for
    calls whose arguments have exactly the types of ``args`` (compiled first if no
    signature fits, from the cache when it has one, as a call through the dispatcher would).

    The dispatcher works out each argument's type at every call to pick the compiled
    version (a compiled loop that Python calls hundreds of thousands of times with the same
    two dozen arrays spends about a third of each call there). Its compiled versions are
    read through numba's internals (``overloads``, the result's ``entry_point``), which have
    no public call for this; should they change, this returns the dispatcher itself. The
    caller must ask again whenever an argument's type may change (a new array of another
    dtype, layout or number of dimensions): the entry point does not check them."""
    signature = tuple(nb.typeof(arg) for arg in args)  # type: ignore[no-untyped-call]
    try:
        overload = function.overloads.get(signature)
        if overload is None:
            function.compile(signature)
            overload = function.overloads[signature]
        entry: Callable[..., Any] = overload.entry_point
    except (AttributeError, KeyError, TypeError):
        return function  # type: ignore[no-any-return]
    return entry


def types_key(args: tuple[Any, ...]) -> tuple[Any, ...]:
    """What numba's ``typeof`` reads of each argument (an array's dtype, dimensions, layout,
    writability and alignment; another value's Python type), cheaply: arguments with equal
    keys have the same compiled signature, so an entry point from ``direct_call`` stays
    valid for them (``nb.typeof`` of a few dozen arrays costs about a millisecond; a loop
    whose arrays are replaced by others of the same kind, e.g. refilled draws, need not pay
    it at every refill)."""
    return tuple((arg.dtype.str, arg.ndim, arg.flags.c_contiguous, arg.flags.f_contiguous, arg.flags.writeable,
                  arg.flags.aligned) if isinstance(arg, np.ndarray) else type(arg) for arg in args)


def available(function: Any, signature: tuple[Any, ...]) -> bool:
    """Whether calling a compiled ``function`` with ``signature`` would not compile: this
    process has that signature compiled, or numba's on-disk cache has an index for the
    function at all (its path read through numba's internals, which have no public call for
    it; should they change, the answer is True).

    An index without this signature's key counts too: it is a stale entry (the source
    changed, or msgstorm was upgraded in place), which the caller compiles for itself as
    numba would (see ``sim/warm.py`` for why a second process must not)."""
    if signature in function.overloads:
        return True
    try:
        return bool(os.path.exists(function._cache._cache_file._index_path))
    except Exception:  # noqa: BLE001 - numba's layout moved
        return True


@functools.cache
def interpreted(function: Any) -> Callable[..., Any]:
    """A compiled ``function``'s Python source run by the interpreter, and so the compiled
    functions it calls (the names of its module that hold one), without compiling anything:
    the same IEEE operations in the same order, the same bits (``tests/test_draws.py`` holds
    the draws so). For a function called a few times, whose compile costs more than the
    interpreter does (``draws.numpy_until_compiled``)."""
    source = function.py_func
    names = dict(source.__globals__)
    for name in source.__code__.co_names:
        if isinstance(names.get(name), Dispatcher):
            names[name] = interpreted(names[name])
    return pytypes.FunctionType(source.__code__, names, source.__name__, source.__defaults__,
                                source.__closure__)


def lean_cache_loads() -> bool:
    """Make numba's disk cache load without the full refresh (see the module docstring);
    False, and nothing changed, when this numba does not have the methods it replaces."""
    try:
        from numba.core.caching import Cache
        from numba.core.runtime.nrt import rtsys
    except ImportError:
        return False
    if not all(hasattr(Cache, name) for name in ("load_overload", "_load_overload", "_guard_against_spurious_io_errors")):
        return False
    if getattr(Cache.load_overload, "_msgstorm_lean", False):  # replaced already
        return True

    def load_overload(self: Any, sig: Any, target_context: Any) -> Any:
        rtsys.initialize(target_context)  # what a cached function needs of the refresh
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)
        return None  # the guard swallowed an I/O error: a cache miss, as in numba

    load_overload._msgstorm_lean = True  # type: ignore[attr-defined]
    setattr(Cache, "load_overload", load_overload)  # noqa: B010 (a method replaced on purpose)
    return True


lean_cache_loads()
