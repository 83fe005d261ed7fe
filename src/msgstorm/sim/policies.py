"""Sequencer queue policies: the order in which admitted messages are served.

A policy is one class behind ``QueuePolicy``; the engine only calls ``push``, ``pop``
and ``len``. A class registers itself with ``@QUEUE_POLICIES.register("name")``
(``scenario/registry.py``), and a scenario names it in ``sequencer.policy``: a later
fair-ordering or batch auction policy plugs in without touching the engine (docs/extending.md,
"Extending msgstorm").
"""

from __future__ import annotations

import heapq
from collections import deque
from typing import Protocol

from msgstorm.scenario.registry import QUEUE_POLICIES

__all__ = ["QUEUE_POLICIES", "FeePriorityPolicy", "FifoPolicy", "QueuePolicy"]


class QueuePolicy(Protocol):
    """Holds admitted message indices until a worker takes one.

    A policy may set ``work_conserving = True`` when, with an empty queue and an idle
    worker, it would hand a new message over at once; the engine then skips the queue.
    A batching policy (e.g. a frequent batch auction) must leave it False.

    A policy whose order is a fixed key per message may say so in ``order_key``:
    ``"arrival"`` (first come, first served) or ``"fee"`` (highest fee first, then
    arrival). One-node networks then run in the compiled loop of ``sim/solo.py``, which
    orders its queue by that key; a policy without it runs in the Python loop.
    """

    def push(self, msg: int, fee: float, t_ns: int) -> None: ...

    def pop(self) -> int: ...

    def __len__(self) -> int: ...


@QUEUE_POLICIES.register("fifo")
class FifoPolicy:
    """First come, first served (arrival order at the sequencer)."""

    work_conserving = True
    order_key = "arrival"
    __slots__ = ("_queue",)

    def __init__(self) -> None:
        self._queue: deque[int] = deque()

    def push(self, msg: int, fee: float, t_ns: int) -> None:
        self._queue.append(msg)

    def pop(self) -> int:
        return self._queue.popleft()

    def __len__(self) -> int:
        return len(self._queue)


@QUEUE_POLICIES.register("fee_priority")
class FeePriorityPolicy:
    """Highest fee first; equal fees in arrival order (a deterministic tie-breaker)."""

    work_conserving = True
    order_key = "fee"
    __slots__ = ("_arrivals", "_heap")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int]] = []
        self._arrivals = 0

    def push(self, msg: int, fee: float, t_ns: int) -> None:
        self._arrivals += 1
        heapq.heappush(self._heap, (-fee, self._arrivals, msg))

    def pop(self) -> int:
        return heapq.heappop(self._heap)[2]

    def __len__(self) -> int:
        return len(self._heap)
