"""How the gossip state calls ``kernel.inject``: compiled, or by the interpreter on a cold start.

Place in the pipeline: inside ``GossipState.inject``, which starts the gossip of an item
(a block from its producer, an invalid spam item) at a node. A run too small to win a
compile back (``draws.numpy_until_compiled``) whose numba cache lacks ``inject`` runs its
source by the interpreter (``jit.interpreted``: the same integer operations, so the same
history), about 30 us a call, rather than compile it (0.5 s of a cold start's CPU). It asks
``draws.uncompiled`` again every ``INJECT_BATCH`` calls, so that past
``INTERPRETED_INJECTS`` (a run of many items) it compiles after all; a large run compiles
it while it waits for the helper process (``sim/warm.py``, ``gossip_split``'s ``paying``).
"""

from __future__ import annotations

from collections.abc import Callable

from msgstorm.draws import uncompiled
from msgstorm.jit import direct_call, interpreted
from msgstorm.sim import kernel

__all__ = ["INJECT_BATCH", "INTERPRETED_INJECTS", "InjectCalls"]

INTERPRETED_INJECTS = 10_000
INJECT_BATCH = 500


class InjectCalls:
    """``kernel.inject`` for one gossip state's arrays; ``reset()`` when an array is
    replaced by one of another type (``jit.types_key``)."""

    def __init__(self) -> None:
        self._inject: Callable[..., int] | None = None
        self._interpreted = 0  # calls left to the interpreted inject

    def reset(self) -> None:
        self._inject = None

    def __call__(self, arrays: tuple[object, ...], *args: int) -> int:
        """``kernel.inject(*arrays, *args)``: 0, or -1 when the heap or the slot pool is full."""
        inject = self._inject
        if inject is None:
            inject = self._inject = self._choose(arrays, args)
        code = inject(*arrays, *args)
        if code >= 0 and self._interpreted > 0:
            self._interpreted -= 1
            if self._interpreted == 0:
                self._inject = None  # the next asks again: the interpreter, or compiled
        return code

    def _choose(self, arrays: tuple[object, ...], args: tuple[int, ...]) -> Callable[..., int]:
        if uncompiled(kernel.inject, (*arrays, *args), INJECT_BATCH, INTERPRETED_INJECTS):
            self._interpreted = INJECT_BATCH
            return interpreted(kernel.inject)
        self._interpreted = 0
        return direct_call(kernel.inject, *arrays, *args)
