"""The sequencer's queue as arrays: FIFO or highest fee first, for the compiled block step.

Place in the pipeline: inside the simulator, the ``Sequencer``'s queue policy while the
block step (``sim/block_step.py``) replays the leader's intake from the kernel's log. It
takes the place of ``FifoPolicy`` or ``FeePriorityPolicy`` (``sim/policies.py``) and gives
the same order: a binary heap on ``(key, arrival)``, the key minus the fee (highest fee
first; equal fees in arrival order) or 0 (arrival order). Arrival numbers are unique, so the
order is total and any heap that keeps it pops what those policies pop, message for message.

Beside the heap, a run, as ``FeePriorityPolicy`` keeps one: messages given at once in the
queue's order (``push_all``, a falling base fee letting the waiting ones in) while no run is
being read become the run, read from its front; ``queue_pop`` takes the lesser of the run's
front and the heap's top. Under a base fee that swings around a flood's fees the whole queue
comes in and goes out every few blocks: as heap entries each would cost a sift each way.

The Python engine's calls (``push``, ``pop``, ``push_all``, ``take_all``) each run one
compiled function; the block step passes the arrays to its own compiled loop, which uses the
same ``queue_push`` and ``queue_pop``.
"""

from __future__ import annotations

import numpy as np

from msgstorm.jit import borrowing, nb
from msgstorm.sim.seq_core import heap_pop, heap_push

__all__ = ["ArrayQueue", "queue_pop", "queue_push"]

# The scalars: messages on the heap, arrivals numbered so far, the run's front and length.
Q_N, Q_ARRIVALS, Q_RUN_AT, Q_RUN_N = range(4)


@nb.njit(cache=True, inline="always")
def queue_push(keys: np.ndarray, ties: np.ndarray, msgs: np.ndarray, fees: np.ndarray,
               qs: np.ndarray, by_fee: bool, m: int, fee: float) -> None:
    """Queue ``m`` with ``fee`` behind every earlier arrival of its key (room assumed)."""
    tie = qs[Q_ARRIVALS] + 1
    qs[Q_ARRIVALS] = tie
    n = qs[Q_N]
    qs[Q_N] = n + 1
    i = heap_push(keys, ties, (msgs, fees), n, -fee if by_fee else 0.0, tie)
    msgs[i] = m
    fees[i] = fee


@nb.njit(cache=True, inline="always")
def queue_pop(keys: np.ndarray, ties: np.ndarray, msgs: np.ndarray, fees: np.ndarray,
              qs: np.ndarray, run: np.ndarray, run_fees: np.ndarray) -> tuple[int, float]:
    """Remove the first message (a non-empty queue): ``(message, fee)``. ``run`` holds the
    run's keys, arrivals and messages (float64 rows: the arrivals and messages are exact
    below 2**53), ``run_fees`` their fees."""
    at = qs[Q_RUN_AT]
    if at < qs[Q_RUN_N]:
        if qs[Q_N] == 0 or run[0, at] < keys[0] or (run[0, at] == keys[0] and run[1, at] < ties[0]):
            qs[Q_RUN_AT] = at + 1
            return int(run[2, at]), run_fees[at]
    top = msgs[0]
    top_fee = fees[0]
    n = qs[Q_N]
    qs[Q_N] = n - 1
    heap_pop(keys, ties, (msgs, fees), n)
    return top, top_fee


@borrowing()
def _push_many(keys: np.ndarray, ties: np.ndarray, msgs: np.ndarray, fees: np.ndarray,
               qs: np.ndarray, by_fee: bool, new_msgs: np.ndarray, new_fees: np.ndarray) -> None:
    for i in range(len(new_msgs)):
        queue_push(keys, ties, msgs, fees, qs, by_fee, new_msgs[i], new_fees[i])


@borrowing()
def _pop_many(keys: np.ndarray, ties: np.ndarray, msgs: np.ndarray, fees: np.ndarray,
              qs: np.ndarray, run: np.ndarray, run_fees: np.ndarray, out_msgs: np.ndarray,
              out_fees: np.ndarray) -> None:
    for i in range(len(out_msgs)):
        out_msgs[i], out_fees[i] = queue_pop(keys, ties, msgs, fees, qs, run, run_fees)


class ArrayQueue:
    """A queue policy's order (``order_key`` ``"fee"`` or ``"arrival"``) kept as a heap of
    arrays: ``keys``, ``ties`` (arrival numbers), ``msgs`` and ``fees``, with ``qs`` holding
    the count and the arrivals numbered so far."""

    work_conserving = True
    __slots__ = ("by_fee", "fees", "keys", "msgs", "order_key", "qs", "run", "run_fees", "ties")

    def __init__(self, order_key: str, capacity: int = 1024) -> None:
        if order_key not in ("fee", "arrival"):
            raise ValueError(f"an array queue orders by fee or arrival, not {order_key!r}")
        self.order_key = order_key
        self.by_fee = order_key == "fee"
        self.keys = np.zeros(capacity, np.float64)
        self.ties = np.zeros(capacity, np.int64)
        self.msgs = np.zeros(capacity, np.int64)
        self.fees = np.zeros(capacity, np.float64)
        self.qs = np.zeros(4, np.int64)
        self.run = np.zeros((3, 0), np.float64)
        self.run_fees = np.zeros(0, np.float64)

    def arrays(self) -> tuple[np.ndarray, ...]:
        """``keys, ties, msgs, fees, qs, run, run_fees``, as the compiled loops take them."""
        return self.keys, self.ties, self.msgs, self.fees, self.qs, self.run, self.run_fees

    def reserve(self, more: int) -> None:
        """Room for ``more`` pushes beyond what is queued (the arrays grow, never shrink)."""
        need = int(self.qs[Q_N]) + more
        if need <= len(self.keys):
            return
        size = max(need, 2 * len(self.keys))
        for name in ("keys", "ties", "msgs", "fees"):
            old = getattr(self, name)
            new = np.zeros(size, old.dtype)
            new[:len(old)] = old
            setattr(self, name, new)

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
        """``push_all`` of arrays (int64, float64): given in the queue's order while no run
        is being read, they become the run; otherwise they join the heap."""
        qs = self.qs
        n = len(msgs)
        if not n:
            return
        keys = -fees if self.by_fee else np.zeros(n, np.float64)
        if qs[Q_RUN_AT] >= qs[Q_RUN_N] and (keys[1:] >= keys[:-1]).all():
            first = int(qs[Q_ARRIVALS]) + 1
            run = np.empty((3, n), np.float64)
            run[0] = keys
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
                  out_msgs, out_fees)
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
