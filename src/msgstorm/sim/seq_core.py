"""The sequencer's queueing rules, each written once, as compiled steps over arrays.

Place in the pipeline: inside the simulator, under the compiled one-node loop
(``sim/solo_loop.py``) and the block step's loop (``sim/block_step_loop.py``), which keep
their queue in the one layout here (``ArrayQueue``'s arrays) and take arrivals and the next
message by the same steps; the Python ``Sequencer`` (its hand-over to an idle worker) and
its backpressure (``sim/backpressure.py``) run the same functions uncompiled (``py_func``),
so a rule here is the one statement of it every path follows:

- ``heap_push`` / ``heap_pop``: the binary heap ordered by ``(key, tie)`` that holds the
  events, the pending service completions and the fee-ordered queue. A payload moves with
  each entry: one array, the rows of a 2-D array, or a pair of arrays (``_move``).
- ``queue_push`` / ``queue_pop``: the queue in arrival order (a FIFO ring) or highest fee
  first (the heap on minus the fee, then arrival), with a run given in order beside it.
- ``arrive``: what an arrival comes to, in ``Sequencer.intake``'s order: dropped by depth,
  turned away by the price rule, handed to an idle worker, or queued.
- ``take_next``: a free worker takes the first queued message, unless the price rule turns
  it away.
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

from msgstorm.jit import borrowing, nb

if TYPE_CHECKING:
    from msgstorm.sim.sequencer import Sequencer

__all__ = ["ARRIVE_DROPPED", "ARRIVE_PRICED_OUT", "ARRIVE_QUEUED", "ARRIVE_SERVED", "COVERS",
           "HYSTERESIS", "TAKE_NONE", "TAKE_PRICED_OUT", "TAKE_SERVED", "ArrayQueue", "arrive",
           "covers", "doubled_ring", "drops", "engaged_after", "heap_pop", "heap_push",
           "queue_pop", "queue_push", "replaces", "serves_at_once", "service_time", "take_next"]

# What the compiled steps state, by rule: the Python sequencer keeps the rest (lanes, a
# controller's gate, diversions, hooks of a policy, suspend/resume, the fee waiting list).
COVERS = ("the (key, tie) heap", "the queue in arrival or fee order", "drop by depth",
          "engage/release with hysteresis", "idle worker, empty queue: serve at once",
          "a free worker takes the next, or prices it out", "service draw")


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


# --- the queue -------------------------------------------------------------------------------
# One layout for both compiled loops (``ArrayQueue.arrays``): ``keys`` and ``ties`` (the
# heap's order: minus the fee, then the arrival number), ``msgs`` and ``fees`` (what is
# queued: a message id, or the one-node loop's record row, and its fee), the scalars ``qs``,
# and a run (``push_arrays``) with ``run`` holding its keys, arrivals and messages (float64
# rows: the arrivals and messages are exact below 2**53) and ``run_fees`` their fees.
#
# In arrival order the queue is a ring (arrival ``a`` at ``a & (size - 1)``, a size a power
# of two): the heap's order would be the same (equal keys, ties by arrival), at a sift a pop.
# In fee order, beside the heap, a run, as ``FeePriorityPolicy`` keeps one: messages given at
# once in the queue's order while no run is being read become the run, read from its front,
# and a pop takes the lesser of the run's front and the heap's top. Under a base fee that
# swings around a flood's fees the whole queue comes in and goes out every few blocks: as heap
# entries each would cost a sift each way. Arrival numbers are unique, so the order is total
# and pops what ``FifoPolicy`` and ``FeePriorityPolicy`` pop, message for message.

# The scalars: messages on the heap or the ring, arrivals numbered so far, the run's front
# and length.
Q_N, Q_ARRIVALS, Q_RUN_AT, Q_RUN_N = range(4)


@nb.njit(cache=True, inline="always")
def queue_push(keys: np.ndarray, ties: np.ndarray, msgs: np.ndarray, fees: np.ndarray,
               qs: np.ndarray, by_fee: bool, m: int, fee: float) -> None:
    """Queue ``m`` with ``fee`` behind every earlier arrival of its key (room assumed)."""
    tie = qs[Q_ARRIVALS] + 1
    qs[Q_ARRIVALS] = tie
    n = qs[Q_N]
    qs[Q_N] = n + 1
    if by_fee:
        i = heap_push(keys, ties, (msgs, fees), n, -fee, tie)
    else:
        i = tie & (msgs.shape[0] - 1)
    msgs[i] = m
    fees[i] = fee


@nb.njit(cache=True, inline="always")
def queue_pop(keys: np.ndarray, ties: np.ndarray, msgs: np.ndarray, fees: np.ndarray,
              qs: np.ndarray, run: np.ndarray, run_fees: np.ndarray,
              by_fee: bool) -> tuple[int, float]:
    """Remove the first message of a non-empty queue: ``(message, fee)``."""
    n = qs[Q_N]
    if not by_fee:  # the ring's oldest
        i = (qs[Q_ARRIVALS] - n + 1) & (msgs.shape[0] - 1)
        qs[Q_N] = n - 1
        return msgs[i], fees[i]
    at = qs[Q_RUN_AT]
    if at < qs[Q_RUN_N]:
        if n == 0 or run[0, at] < keys[0] or (run[0, at] == keys[0] and run[1, at] < ties[0]):
            qs[Q_RUN_AT] = at + 1
            return int(run[2, at]), run_fees[at]
    top = msgs[0]
    top_fee = fees[0]
    qs[Q_N] = n - 1
    heap_pop(keys, ties, (msgs, fees), n)
    return top, top_fee


# What an arrival comes to (``arrive``).
ARRIVE_DROPPED, ARRIVE_PRICED_OUT, ARRIVE_SERVED, ARRIVE_QUEUED = range(4)


@nb.njit(cache=True, inline="always")
def arrive(keys: np.ndarray, ties: np.ndarray, msgs: np.ndarray, fees: np.ndarray,
           qs: np.ndarray, by_fee: bool, by_depth: bool, limit: np.ndarray,
           protected: np.ndarray, kind: int, admitted: bool, depth: int, busy: int, slots: int,
           serve_idle: bool, m: int, fee: float) -> int:
    """An arrival of ``m`` (of ``kind``, at ``fee``) with ``depth`` queued, in
    ``Sequencer.intake``'s order: dropped by the depth (``by_depth``: the ``DropRule``
    tables); else turned away by the price rule (``admitted`` false: the caller's rule);
    else served at once by an idle worker (the caller starts the service); else queued.
    Returns ``ARRIVE_DROPPED``, ``ARRIVE_PRICED_OUT``, ``ARRIVE_SERVED`` or
    ``ARRIVE_QUEUED``."""
    if by_depth and drops(limit, protected, kind, depth):
        return ARRIVE_DROPPED
    if not admitted:
        return ARRIVE_PRICED_OUT
    if serves_at_once(depth, busy, slots, serve_idle):
        return ARRIVE_SERVED
    queue_push(keys, ties, msgs, fees, qs, by_fee, m, fee)
    return ARRIVE_QUEUED


# What a free worker's look at the queue comes to (``take_next``).
TAKE_NONE, TAKE_SERVED, TAKE_PRICED_OUT = range(3)


@nb.njit(cache=True, inline="always")
def take_next(keys: np.ndarray, ties: np.ndarray, msgs: np.ndarray, fees: np.ndarray,
              qs: np.ndarray, run: np.ndarray, run_fees: np.ndarray, by_fee: bool, depth: int,
              busy: int, slots: int, priced: bool, base_fee: float) -> tuple[int, int, float]:
    """A free worker takes the first of ``depth`` queued messages (``Sequencer._take``):
    ``(what, message, fee)``. ``TAKE_NONE``: no worker is free or nothing is queued (nothing
    taken); ``TAKE_PRICED_OUT``: under a price rule (``priced``) its fee is below
    ``base_fee``, and the caller turns it away (with the rest of a fee-ordered queue,
    ``Sequencer._price_out_rest``); else ``TAKE_SERVED``: the caller starts its service."""
    if busy >= slots or depth == 0:
        return TAKE_NONE, -1, 0.0
    m, fee = queue_pop(keys, ties, msgs, fees, qs, run, run_fees, by_fee)
    if priced and not fee >= base_fee:
        return TAKE_PRICED_OUT, m, fee
    return TAKE_SERVED, m, fee


@borrowing()
def _push_many(keys: np.ndarray, ties: np.ndarray, msgs: np.ndarray, fees: np.ndarray,
               qs: np.ndarray, by_fee: bool, new_msgs: np.ndarray, new_fees: np.ndarray) -> None:
    for i in range(len(new_msgs)):
        queue_push(keys, ties, msgs, fees, qs, by_fee, new_msgs[i], new_fees[i])


@borrowing()
def _pop_many(keys: np.ndarray, ties: np.ndarray, msgs: np.ndarray, fees: np.ndarray,
              qs: np.ndarray, run: np.ndarray, run_fees: np.ndarray, by_fee: bool,
              out_msgs: np.ndarray, out_fees: np.ndarray) -> None:
    for i in range(len(out_msgs)):
        out_msgs[i], out_fees[i] = queue_pop(keys, ties, msgs, fees, qs, run, run_fees, by_fee)


def doubled_ring(ring: np.ndarray, head: int, tail: int) -> np.ndarray:
    """A ring buffer (power-of-two size, position ``i`` at ``i & (size - 1)``) unrolled into one
    twice as large: entries ``head .. tail - 1`` keep their positions."""
    doubled = np.zeros(2 * ring.shape[0], dtype=ring.dtype)
    positions = np.arange(head, tail)
    doubled[positions & (doubled.shape[0] - 1)] = ring[positions & (ring.shape[0] - 1)]
    return doubled


class ArrayQueue:
    """A queue policy's order (``order_key`` ``"fee"`` or ``"arrival"``) kept in the core's
    arrays: ``keys``, ``ties``, ``msgs``, ``fees``, ``qs``, ``run`` and ``run_fees``. The
    block step's queue in place of the policy (``replaces``), and the one-node loop's."""

    work_conserving = True
    __slots__ = ("by_fee", "fees", "keys", "msgs", "order_key", "qs", "run", "run_fees", "ties")

    def __init__(self, order_key: str, capacity: int = 1024) -> None:
        if order_key not in ("fee", "arrival"):
            raise ValueError(f"an array queue orders by fee or arrival, not {order_key!r}")
        self.order_key = order_key
        self.by_fee = order_key == "fee"
        size = 1 << max(capacity - 1, 0).bit_length()  # a power of two: the ring's
        self.keys = np.zeros(size, np.float64)
        self.ties = np.zeros(size, np.int64)
        self.msgs = np.zeros(size, np.int64)
        self.fees = np.zeros(size, np.float64)
        self.qs = np.zeros(4, np.int64)
        self.run = np.zeros((3, 0), np.float64)
        self.run_fees = np.zeros(0, np.float64)

    def arrays(self) -> tuple[np.ndarray, ...]:
        """``keys, ties, msgs, fees, qs, run, run_fees``, as the compiled loops take them."""
        return self.keys, self.ties, self.msgs, self.fees, self.qs, self.run, self.run_fees

    def reserve(self, more: int) -> None:
        """Room for ``more`` pushes beyond what is queued (the arrays double, never shrink)."""
        while int(self.qs[Q_N]) + more > len(self.msgs):
            if self.by_fee:  # a heap: its entries stay where they are
                arrays = (self.keys, self.ties, self.msgs, self.fees)
                self.keys, self.ties, self.msgs, self.fees = (
                    np.concatenate([a, np.zeros_like(a)]) for a in arrays)
            else:  # a ring: its entries move to their places in the larger one
                last = int(self.qs[Q_ARRIVALS]) + 1
                first = last - int(self.qs[Q_N])
                self.msgs, self.fees = (doubled_ring(a, first, last)
                                        for a in (self.msgs, self.fees))

    def push(self, msg: int, fee: float, t_ns: int) -> None:
        self.reserve(1)
        _push_many(self.keys, self.ties, self.msgs, self.fees, self.qs, self.by_fee,
                   np.array([msg], np.int64), np.array([fee], np.float64))

    def pop(self) -> int:
        out_msgs, _ = self._pop(1)
        return int(out_msgs[0])

    def push_all(self, msgs: list[int], fees: list[float], t_ns: int) -> None:
        """``push`` of each in turn."""
        self.push_arrays(np.array(msgs, np.int64), np.array(fees, np.float64))

    def push_arrays(self, msgs: np.ndarray, fees: np.ndarray) -> None:
        """``push_all`` of arrays (int64, float64): in fee order, given in the queue's order
        while no run is being read, they become the run; otherwise they join the heap (or
        the ring)."""
        qs = self.qs
        n = len(msgs)
        if not n:
            return
        if self.by_fee and qs[Q_RUN_AT] >= qs[Q_RUN_N] and (fees[1:] <= fees[:-1]).all():
            first = int(qs[Q_ARRIVALS]) + 1
            run = np.empty((3, n), np.float64)
            run[0] = -fees
            run[1] = np.arange(first, first + n)
            run[2] = msgs
            self.run = run
            self.run_fees = np.array(fees, np.float64)
            qs[Q_ARRIVALS] += n
            qs[Q_RUN_AT] = 0
            qs[Q_RUN_N] = n
            return
        self.reserve(n)
        _push_many(self.keys, self.ties, self.msgs, self.fees, self.qs, self.by_fee,
                   np.ascontiguousarray(msgs, np.int64), np.ascontiguousarray(fees, np.float64))

    def take_all(self) -> tuple[list[int], list[float]]:
        """Every queued message in pop order and their fees, emptying the queue."""
        out_msgs, out_fees = self._pop(len(self))
        return out_msgs.tolist(), out_fees.tolist()

    def _pop(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        if count > len(self):
            raise IndexError("pop from an empty queue")
        out_msgs = np.zeros(count, np.int64)
        out_fees = np.zeros(count, np.float64)
        _pop_many(self.keys, self.ties, self.msgs, self.fees, self.qs, self.run, self.run_fees,
                  self.by_fee, out_msgs, out_fees)
        return out_msgs, out_fees

    def __len__(self) -> int:
        qs = self.qs
        return int(qs[Q_N] + qs[Q_RUN_N] - qs[Q_RUN_AT])

    def __repr__(self) -> str:
        return f"ArrayQueue({self.order_key!r}, {len(self)} queued)"


def replaces(policy: object) -> ArrayQueue | None:
    """The array queue for ``policy`` (an empty ``FifoPolicy`` or ``FeePriorityPolicy``), or
    None for any other policy."""
    from msgstorm.sim.policies import FeePriorityPolicy, FifoPolicy

    if type(policy) is FifoPolicy and not len(policy):
        return ArrayQueue("arrival")
    if type(policy) is FeePriorityPolicy and not len(policy):
        return ArrayQueue("fee")
    return None
