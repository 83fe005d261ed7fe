"""numba as msgstorm uses it: every compiled module imports ``nb`` from here.

Place in the pipeline: under everything compiled (portable draws, the simulator's loops, the
live wire clients). It exists for one thing numba does not offer as a setting: loading a
function from its on-disk cache without first importing numba's whole compiler.

Before numba loads a cached function it refreshes its target context, which imports every
implementation module of the compiler (CPython builtins, numpy's array functions, typed
containers, ...: about 0.12 s of a run's start, the largest single cost of a one-node run
after its own simulation) so that they are there to lower code with. A function read from the
cache is machine code already and lowers nothing; what it needs is the runtime (NRT: memory
for the arrays it returns), which ``lean_cache_loads`` still initialises. A compile is
unchanged: numba's compiler refreshes the context itself before it starts
(``CompilerBase.__init__``), so a cache miss later in the same process compiles as before.
"""

from __future__ import annotations

import os
from typing import Any

import numba as nb

__all__ = ["available", "lean_cache_loads", "nb"]


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
    except Exception:
        return True


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
