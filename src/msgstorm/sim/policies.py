"""Sequencer queue policies: the order in which admitted messages are served.

A policy is one class behind ``QueuePolicy``; the engine calls ``push``, ``pop`` and
``len``. A class registers itself with ``@QUEUE_POLICIES.register("name")``
(``scenario/registry.py``), and a scenario names it in ``sequencer.policy``
(docs/extending.md, "Extending msgstorm"). This module holds the two built-in orders that
need nothing more, ``fifo`` and ``fee_priority``; the ordering protocols that need a clock,
every node's receive order or a second message live one per file beside it
(``policies_batch``, ``policies_commit_reveal``, ``policies_fair``) and use the optional
hooks of ``QueuePolicy`` and the ``PolicyHost`` the simulator hands them.
"""

from __future__ import annotations

import heapq
import operator
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from msgstorm.scenario.registry import QUEUE_POLICIES
from msgstorm.scenario.schema import Scenario

__all__ = ["QUEUE_POLICIES", "FeePriorityPolicy", "FifoPolicy", "Ordering", "PolicyHost", "QueuePolicy"]


class QueuePolicy(Protocol):
    """Holds admitted message indices until a worker takes one.

    A policy may set ``work_conserving = True`` when, with an empty queue and an idle
    worker, it would hand a new message over at once; the engine then skips the queue.
    A batching policy (e.g. a frequent batch auction) must leave it False.

    A policy whose order is a fixed key per message may say so in ``order_key``:
    ``"arrival"`` (first come, first served) or ``"fee"`` (highest fee first, then
    arrival). One-node networks then run in the compiled loop of ``sim/solo.py``, which
    orders its queue by that key; a policy without it runs in the Python loop.

    Optional hooks, for orders that need more than push and pop (each is a small Protocol
    below; ``Ordering.of`` looks them up once per run, and the engine calls only what is
    there):

    - ``attach(host: PolicyHost)``: called once before the run; the host gives the
      scenario, a clock (``schedule``), ``wake`` (messages became ready), ``send`` (a new
      message from a node, e.g. a reveal) and each message's record;
    - ``ready() -> int``: how many of the held messages a worker may take now (a gated
      policy: a batch waiting for its close, messages waiting for their reports); without
      it every held message is ready. ``pop`` returns a ready one first; when none is
      ready it still returns a held one (a crashed leader empties the queue this way);
    - ``watches_nodes = True`` and ``received(t_ns, node, msg)``: the simulator reports
      every validation of every message at every node (fair ordering needs each node's
      receive order; the gossip kernel hands these back to Python, so it costs time);
    - ``sequenced(t_ns, msg)``: a worker gave ``msg`` its sequence number;
    - ``execution_rank(record) -> int | None``: when the message's content takes effect,
      compared between messages (lower first; equal: at once, as in a batch auction;
      None: never, as a reveal that came after its commitment's window); default: its
      sequence number;
    - ``hides(record) -> bool``: its content is not visible to watchers at the nodes (a
      commitment whose order is not yet revealed); default: visible;
    - ``take_all() -> (msgs, fees)``: every queued message in pop order and their fees,
      emptying the queue (what ``pop`` called until empty would give, at once; the sequencer uses it when a
      priced mode turns away the whole queue); ``push_all(msgs, fees, t_ns)``: ``push``
      of each in turn, at once (a falling base fee lets many waiting messages in).
    """

    def push(self, msg: int, fee: float, t_ns: int) -> None: ...

    def pop(self) -> int: ...

    def __len__(self) -> int: ...


class PolicyHost(Protocol):
    """What the simulator gives a policy's ``attach`` (implemented by ``ShadowNetwork``)."""

    scenario: Scenario  # a policy reads its own settings from it
    node_names: list[str]

    def schedule(self, t: int, handler: Callable[[int, int, int, int, int], None],
                 a: int = 0, b: int = 0, c: int = 0, d: int = 0) -> None:
        """A Python event at ``t`` (dropped past the run's hard stop)."""
        ...

    def wake(self, t: int) -> None:
        """Held messages became ready: idle workers take them now."""
        ...

    def send(self, t: int, agent: int, kind: str, node: int, key: int, size: int, fee: float,
             named: Callable[[int], None] | None = None) -> int:
        """A new message from ``node`` now, through the same path as all traffic; its
        msg_id, also given to ``named`` before the message leaves (its own node may
        validate it, and watchers there see it, before ``send`` returns)."""
        ...

    def message(self, msg: int) -> list[Any] | None:
        """The live record of a message (fields in ``sim/state.py``), None once settled."""
        ...


@runtime_checkable
class _WorkConserving(Protocol):
    work_conserving: bool


@runtime_checkable
class _KeyedOrder(Protocol):
    order_key: str


@runtime_checkable
class _Attached(Protocol):
    def attach(self, host: PolicyHost) -> None: ...


@runtime_checkable
class _Gated(Protocol):
    def ready(self) -> int: ...


@runtime_checkable
class _ToldOfSequencing(Protocol):
    def sequenced(self, t_ns: int, msg: int) -> None: ...


@runtime_checkable
class _WatchingNodes(Protocol):
    watches_nodes: bool

    def received(self, t_ns: int, node: int, msg: int) -> None: ...


@runtime_checkable
class _Ranking(Protocol):
    def execution_rank(self, record: list[Any]) -> int | None: ...


@runtime_checkable
class _Hiding(Protocol):
    def hides(self, record: list[Any]) -> bool: ...


@dataclass(frozen=True)
class Ordering:
    """A queue policy with its optional hooks (``QueuePolicy``), looked up once per run:
    None (or the default) where the policy has none. The sequencer, the network and the
    compiled loop's plan (``sim/solo_plan.py``) all read them from here, so a hook is found
    one way."""

    policy: QueuePolicy
    work_conserving: bool = False
    order_key: str | None = None
    attach: Callable[[PolicyHost], None] | None = None
    ready: Callable[[], int] | None = None
    sequenced: Callable[[int, int], None] | None = None
    received: Callable[[int, int, int], None] | None = None  # only when ``watches_nodes``
    execution_rank: Callable[[list[Any]], int | None] | None = None
    hides: Callable[[list[Any]], bool] | None = None

    @classmethod
    def of(cls, policy: QueuePolicy) -> Ordering:
        return cls(
            policy=policy,
            work_conserving=isinstance(policy, _WorkConserving) and bool(policy.work_conserving),
            order_key=policy.order_key if isinstance(policy, _KeyedOrder) else None,
            attach=policy.attach if isinstance(policy, _Attached) else None,
            ready=policy.ready if isinstance(policy, _Gated) else None,
            sequenced=policy.sequenced if isinstance(policy, _ToldOfSequencing) else None,
            received=policy.received if isinstance(policy, _WatchingNodes) and policy.watches_nodes else None,
            execution_rank=policy.execution_rank if isinstance(policy, _Ranking) else None,
            hides=policy.hides if isinstance(policy, _Hiding) else None,
        )


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
    """Highest fee first; equal fees in arrival order (a deterministic tie-breaker).

    The queue is a heap of ``(-fee, arrival, msg)`` for messages pushed one at a time, and
    a run: messages given at once highest fee first (``push_all``, a falling base fee
    letting the waiting ones in), kept as the two lists they came in, read from the front.
    ``pop`` takes the lesser of the run's front and the heap's top. Written this way
    because under a base fee that swings around a flood's fees the whole queue (tens of
    thousands of messages) comes in and goes out every few blocks (``take_all``): as heap
    tuples it was built, sorted and freed each time, most of such a run's time."""

    work_conserving = True
    order_key = "fee"
    __slots__ = ("_arrivals", "_at", "_heap", "_run_fees", "_run_first", "_run_msgs")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int]] = []
        self._arrivals = 0
        self._run_msgs: list[int] = []
        self._run_fees: list[float] = []  # non-increasing
        self._run_first = 0  # the arrival of the run's first message (the rest follow it)
        self._at = 0  # the run's front

    def push(self, msg: int, fee: float, t_ns: int) -> None:
        self._arrivals += 1
        heapq.heappush(self._heap, (-fee, self._arrivals, msg))

    def pop(self) -> int:
        at = self._at
        if at < len(self._run_msgs):
            heap = self._heap
            if not heap:
                self._at = at + 1
                return self._run_msgs[at]
            neg_fee, arrival, _ = heap[0]
            fee = self._run_fees[at]
            if fee > -neg_fee or (fee == -neg_fee and self._run_first + at < arrival):
                self._at = at + 1
                return self._run_msgs[at]
        return heapq.heappop(self._heap)[2]

    def push_all(self, msgs: list[int], fees: list[float], t_ns: int) -> None:
        """``push`` of each in turn: given highest fee first while no run is being read, they
        become the run; otherwise they join the heap."""
        first = self._arrivals + 1
        self._arrivals += len(msgs)
        if self._at >= len(self._run_msgs) and all(map(operator.ge, fees, fees[1:])):
            self._run_msgs, self._run_fees, self._run_first, self._at = msgs, fees, first, 0
            return
        heap = self._heap
        heap.extend(zip([-fee for fee in fees], range(first, first + len(msgs)), msgs))
        heapq.heapify(heap)

    def take_all(self) -> tuple[list[int], list[float]]:
        """Every queued message in pop order and their fees, emptying the queue (the run's
        rest and the heap merged by one sort of their columns, not a pop each)."""
        at = self._at
        msgs, fees = self._run_msgs[at:], self._run_fees[at:]
        arrivals = range(self._run_first + at, self._run_first + len(self._run_msgs))
        self._run_msgs, self._run_fees, self._at = [], [], 0
        heap = self._heap
        if not heap:
            return msgs, fees
        neg_fees, heap_arrivals, heap_msgs = zip(*heap, strict=True)
        heap.clear()
        all_fees = np.concatenate([np.array(fees, np.float64), -np.array(neg_fees, np.float64)])
        all_arrivals = np.concatenate([np.array(arrivals, np.int64), np.array(heap_arrivals, np.int64)])
        all_msgs = np.concatenate([np.array(msgs, np.int64), np.array(heap_msgs, np.int64)])
        order = np.lexsort((all_arrivals, -all_fees))  # highest fee first, then arrival
        return all_msgs[order].tolist(), all_fees[order].tolist()

    def __len__(self) -> int:
        return len(self._run_msgs) - self._at + len(self._heap)
