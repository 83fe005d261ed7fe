"""The sequencer's queueing rules, each written once, as compiled steps over arrays.

Place in the pipeline: inside the simulator, under the compiled one-node loop
(``sim/solo_loop.py``), the block step's loop (``sim/block_step_loop.py``) and the array
queue (``sim/array_queue.py``); the Python ``Sequencer`` (its hand-over to an idle worker)
and its backpressure (``sim/backpressure.py``) run the same functions uncompiled
(``py_func``), so a rule here is the one statement of it every path follows:

- ``heap_push`` / ``heap_pop``: the binary heap ordered by ``(key, tie)`` that holds the
  events, the pending service completions and the fee-ordered queue. A payload moves with
  each entry: one array, the rows of a 2-D array, or a pair of arrays (``_move``).
- ``drops``: an arrival dropped by the queue's depth (the ``DropRule`` tables).
- ``engaged_after``: a dropping mode engaging at a depth and releasing below
  ``HYSTERESIS`` of it.
- ``serves_at_once``: an idle worker and an empty queue hand an arrival straight to
  service (work-conserving policies, no price rule).
- ``service_time``: a service's duration, the constant or the next of the drawn times.

What the core covers is ``COVERS``, and ``covers`` says it of a sequencer: both compiled
paths' gates (``BlockStep.fits``, ``solo_plan``) ask it first, then what their own loops
add (the block step an array queue of the two orders, the one-node loop no price rule).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from numba.core import types
from numba.core.extending import overload

from msgstorm.jit import nb

if TYPE_CHECKING:
    from msgstorm.sim.sequencer import Sequencer

__all__ = ["COVERS", "HYSTERESIS", "covers", "drops", "engaged_after", "heap_pop", "heap_push",
           "serves_at_once", "service_time"]

# What the compiled steps state, by rule: the Python sequencer keeps the rest (lanes, a
# controller's gate, diversions, hooks of a policy, suspend/resume, the fee waiting list).
COVERS = ("the (key, tie) heap", "drop by depth", "engage/release with hysteresis",
          "idle worker, empty queue: serve at once", "service draw")


def covers(sequencer: Sequencer) -> bool:
    """Whether the core's steps do all this sequencer's queueing does (``COVERS``): a queue
    in a static order (arrival or fee, the policy's ``order_key``) with no hook (a gated
    policy's ``ready``, a policy told of each sequencing), the shared workers only (no
    lane), and backpressure that never suspends senders and either drops by its
    ``DropRule`` (which ``unbounded`` has too) or prices admission (EIP-1559)."""
    ordering = sequencer.ordering
    lane = sequencer.lane
    bp = sequencer.backpressure
    return (ordering.order_key in ("arrival", "fee")
            and ordering.ready is None and ordering.sequenced is None
            and not (lane.workers.slots or lane.kinds or lane.block_kinds or lane.block_share)
            and not bp.holds_senders and (bp.drop_rule is not None or bp.base_fee is not None))


# A heap entry's payload: one array, the rows of a 2-D array, or a pair of arrays.
Payload = np.ndarray | tuple[np.ndarray, np.ndarray]
# What an overload and its implementations take: numba requires their parameters to read alike.
_Arg = Any

# A mode that engages at a depth reports "normal" again only below this fraction of it, so
# a queue hovering at the threshold does not flood the history with state changes.
HYSTERESIS = 0.9


def _move(vals: Payload, to: int, frm: int) -> None:
    """Entry ``frm``'s payload into slot ``to`` (Python: any of the payloads ``heap_push``
    takes)."""
    if isinstance(vals, tuple):
        for array in vals:
            array[to] = array[frm]
    else:
        vals[..., to] = vals[..., frm]


@overload(_move)
def _move_compiled(vals: _Arg, to: _Arg, frm: _Arg) -> Callable[..., None] | None:
    if isinstance(vals, types.BaseTuple) and len(vals) == 2:
        def move_pair(vals: _Arg, to: _Arg, frm: _Arg) -> None:
            vals[0][to] = vals[0][frm]
            vals[1][to] = vals[1][frm]
        return move_pair
    if isinstance(vals, types.Array) and vals.ndim == 2:
        def move_rows(vals: _Arg, to: _Arg, frm: _Arg) -> None:
            for row in range(vals.shape[0]):
                vals[row, to] = vals[row, frm]
        return move_rows
    if isinstance(vals, types.Array) and vals.ndim == 1:
        def move_one(vals: _Arg, to: _Arg, frm: _Arg) -> None:
            vals[to] = vals[frm]
        return move_one
    return None


@nb.njit(cache=True, inline="always")
def heap_push(keys: np.ndarray, ties: np.ndarray, vals: Payload, n: int, key: float,
              tie: int) -> int:
    """Make room for ``(key, tie)`` in a heap of ``n`` entries ordered by (key, tie): entries
    (and their payloads in ``vals``) move down; returns the slot, whose payload the caller
    writes. The caller counts the entry."""
    i = n
    while i > 0:
        parent = (i - 1) >> 1
        if keys[parent] < key or (keys[parent] == key and ties[parent] < tie):
            break
        keys[i] = keys[parent]
        ties[i] = ties[parent]
        _move(vals, i, parent)
        i = parent
    keys[i] = key
    ties[i] = tie
    return i


@nb.njit(cache=True, inline="always")
def heap_pop(keys: np.ndarray, ties: np.ndarray, vals: Payload, n: int) -> None:
    """Remove the first entry of a heap of ``n`` (the caller reads it first, at slot 0, and
    counts it)."""
    last = n - 1
    if last == 0:
        return
    key = keys[last]
    tie = ties[last]
    i = 0
    while True:
        child = 2 * i + 1
        if child >= last:
            break
        right = child + 1
        if right < last and (keys[right] < keys[child]
                             or (keys[right] == keys[child] and ties[right] < ties[child])):
            child = right
        if key < keys[child] or (key == keys[child] and tie < ties[child]):
            break
        keys[i] = keys[child]
        ties[i] = ties[child]
        _move(vals, i, child)
        i = child
    keys[i] = key
    ties[i] = tie
    _move(vals, i, last)


@nb.njit(cache=True, inline="always")
def drops(limit: np.ndarray | list[int], protected: np.ndarray | list[bool], kind: int,
          depth: int) -> bool:
    """Whether an arrival of ``kind`` is dropped with ``depth`` queued (``DropRule``): at its
    kind's limit, unless the kind is protected."""
    return not protected[kind] and depth >= limit[kind]


@nb.njit(cache=True, inline="always")
def engaged_after(engaged: int, depth: int, engage_at: int) -> int:
    """A dropping mode's state (1 engaged, 0 released) once the depth is ``depth``: it
    engages at ``engage_at`` and releases below ``HYSTERESIS`` of it."""
    if not engaged and depth >= engage_at:
        return 1
    if engaged and depth < HYSTERESIS * engage_at:
        return 0
    return 1 if engaged else 0


@nb.njit(cache=True, inline="always")
def serves_at_once(depth: int, busy: int, slots: int, serve_idle: bool) -> bool:
    """Whether an admitted arrival goes straight to a worker: the queue is empty, a worker
    idles and any work-conserving policy would hand it over at once (``serve_idle``)."""
    return depth == 0 and busy < slots and serve_idle


@nb.njit(cache=True, inline="always")
def service_time(service: np.ndarray | list[int], service_i: int,
                 constant: int) -> tuple[int, int]:
    """A service's duration: ``constant`` when it is one (>= 0), else the next drawn time;
    ``(duration, service_i)`` after."""
    if constant >= 0:
        return constant, service_i
    return service[service_i], service_i + 1
