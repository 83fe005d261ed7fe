"""The ``fair_order`` queue policy: receive-order fairness across nodes (gamma-batch-order-fairness).

Place in the pipeline: a queue policy (``sim/policies.py``) of the leader's ``Sequencer``
that watches every node (``watches_nodes``: the simulator reports each validation of each
message at each node) and has a clock. After Aequitas (Kelkar et al., 2020) and Themis
(Kelkar et al., 2023):

- each reporting node (``sequencer.fair_order.nodes``, default all) reports its local
  receive order: the time it validated each message (reports reach the leader at once: the
  policy measures the order fairness gives, not the reports' own trip);
- every ``granularity`` the leader takes the admitted messages every reporting node has
  reported, or that it admitted ``timeout`` ago (a missing report counts as last), except
  those a message still being reported may have to precede (enough nodes received it
  first) and those after them, and orders them. Only a message still on its way to the
  leader (in flight) or waiting for its admission (held) is still being reported; one
  settled (dropped, rejected, committed) is forgotten, and one whose first report is
  ``timeout`` old blocks nothing any more, (``fair_order``): a before b when at least ``ceil(gamma x nodes)`` nodes
  received a first; messages whose preferences form a cycle (a strongly connected
  component) are one batch; batches follow the preferences between them and, where there
  are none, the ``batch_order`` key (the median receive time over the nodes, or the
  leader's arrival), which also orders each batch within;
- the workers then serve them in that order.

With gamma = 1 and every node honest, a message every node received before another is
reported in full no later than the other, so it is never ordered after it.

Lifecycle: built per run; reports are kept from a message's first until it is ordered or
settles; the policy holds nothing of a message after that.
"""

from __future__ import annotations

import heapq
import math
from collections import deque

import numpy as np

from msgstorm.scenario.registry import QUEUE_POLICIES
from msgstorm.scenario.schema import FairOrderSpec
from msgstorm.sim.policies import PolicyHost
from msgstorm.sim.state import HELD, IN_FLIGHT, WHERE

__all__ = ["FairOrderPolicy", "fair_order"]

_NEVER = np.iinfo(np.int64).max


def fair_order(received_ns: np.ndarray, gamma: float, keys: list[float]) -> list[int]:
    """The fair order of k messages: ``received_ns[i, node]`` is message i's receive time
    at each reporting node (``_NEVER``: not received); ``keys[i]`` orders messages between
    which the nodes state no preference, and within a batch. Returns row indices."""
    k, nodes = received_ns.shape
    if k <= 1:
        return list(range(k))
    need = max(1, math.ceil(gamma * nodes - 1e-9))
    # votes[a, b]: nodes that received a strictly before b (a message received nowhere is last).
    votes = np.count_nonzero(received_ns[:, None, :] < received_ns[None, :, :], axis=2)
    edges = votes >= need
    np.fill_diagonal(edges, False)
    # Batches: the strongly connected components of the preference graph (scipy's, rather
    # than a Tarjan written here). Imported on first use: every run loads the built-in
    # policies' modules to register them, and importing scipy.sparse took 0.6-0.8 s of a
    # run's start-up on a busy 2-core machine.
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    count, component = connected_components(csr_matrix(edges), directed=True, connection="strong")
    members: list[list[int]] = [[] for _ in range(count)]
    for i in sorted(range(k), key=lambda i: (keys[i], i)):
        members[component[i]].append(i)
    # The components' own graph, ordered topologically; the smallest key first among the free.
    after: list[set[int]] = [set() for _ in range(count)]
    before = [0] * count
    for a, b in zip(*np.nonzero(edges), strict=True):
        ca, cb = int(component[a]), int(component[b])
        if ca != cb and cb not in after[ca]:
            after[ca].add(cb)
            before[cb] += 1
    free = [(keys[members[c][0]], members[c][0], c) for c in range(count) if before[c] == 0]
    heapq.heapify(free)
    order: list[int] = []
    while free:
        _, _, c = heapq.heappop(free)
        order.extend(members[c])
        for d in sorted(after[c]):
            before[d] -= 1
            if before[d] == 0:
                heapq.heappush(free, (keys[members[d][0]], members[d][0], d))
    return order


@QUEUE_POLICIES.register("fair_order")
class FairOrderPolicy:
    """Admitted messages wait for the nodes' reports, then are served in fair order."""

    work_conserving = False
    watches_nodes = True

    def __init__(self) -> None:
        self.spec = FairOrderSpec()
        self.host: PolicyHost | None = None
        self.reporters: dict[int, int] = {}  # node -> its column
        self.reports: dict[int, dict[int, int]] = {}  # msg -> {column: first receive time}
        self.waiting: dict[int, int] = {}  # admitted, not yet ordered: msg -> when (insertion-ordered)
        self.released: deque[int] = deque()

    def attach(self, host: PolicyHost) -> None:
        self.host = host
        self.spec = host.scenario.sequencer.fair_order or FairOrderSpec()
        names = host.node_names
        nodes = range(len(names)) if self.spec.nodes is None else [names.index(n) for n in self.spec.nodes]
        self.reporters = {node: column for column, node in enumerate(nodes)}
        host.schedule(self.spec.granularity, self._close)

    def received(self, t: int, node: int, msg: int) -> None:
        column = self.reporters.get(node)
        if column is not None and (msg in self.waiting or self._unadmitted(msg)):
            self.reports.setdefault(msg, {}).setdefault(column, t)  # late reports of an ordered one: ignored

    def _unadmitted(self, msg: int) -> bool:
        """Still on its way to the leader's queue: in flight, or held for admission."""
        assert self.host is not None
        record = self.host.message(msg)
        return record is not None and record[WHERE] in (IN_FLIGHT, HELD)

    def push(self, msg: int, fee: float, t_ns: int) -> None:
        self.waiting[msg] = t_ns  # also back after a leader's crash: ordered again

    def _close(self, t: int, _a: int, _b: int, _c: int, _d: int) -> None:
        assert self.host is not None
        everyone, timeout = len(self.reporters), self.spec.timeout
        due = [m for m, admitted in self.waiting.items()
               if len(self.reports.get(m, ())) == everyone or t - admitted >= timeout]
        if due:
            times = self._times(due)
            ready = self._unblocked(times, self._times(self._partial(t, due)))
            due, times = [m for m, ok in zip(due, ready, strict=True) if ok], times[ready]
        if due:
            if self.spec.batch_order == "median":
                keys = [float(np.median(times[row])) for row in range(len(due))]
            else:
                keys = [float(self.waiting[m]) for m in due]
            for row in fair_order(times, self.spec.gamma, keys):
                m = due[row]
                self.released.append(m)
                del self.waiting[m]
                self.reports.pop(m, None)
            self.host.wake(t)
        self.host.schedule(t + self.spec.granularity, self._close)

    def _partial(self, t: int, due: list[int]) -> list[int]:
        """The messages still being reported that may block due ones: admitted and not yet
        due, or in flight to the leader and first reported less than ``timeout`` ago.
        Reports of messages that settled without being ordered (dropped, rejected, lost)
        are forgotten here; a held one (waiting for its admission) keeps its reports but
        blocks nothing."""
        assert self.host is not None
        due_set = set(due)
        partial: list[int] = []
        oldest = t - self.spec.timeout
        for m in list(self.reports):
            if m in self.waiting:
                if m not in due_set:
                    partial.append(m)
                continue
            record = self.host.message(m)
            if record is None or record[WHERE] not in (IN_FLIGHT, HELD):
                del self.reports[m]
            elif record[WHERE] == IN_FLIGHT and min(self.reports[m].values()) > oldest:
                partial.append(m)
        return partial

    def _times(self, messages: list[int]) -> np.ndarray:
        times = np.full((len(messages), len(self.reporters)), _NEVER, dtype=np.int64)
        for row, m in enumerate(messages):
            for column, when in self.reports.get(m, {}).items():
                times[row, column] = when
        return times

    def _unblocked(self, due: np.ndarray, partial: np.ndarray) -> np.ndarray:
        """Which of the messages due may be ordered now: none that a message still being
        reported may have to precede (enough nodes already received that one first; a
        node that has not is a vote against it, since it has the due one), nor any that
        one of those must precede (a path of preferences, a cycle included)."""
        need = max(1, math.ceil(self.spec.gamma * len(self.reporters) - 1e-9))
        blocked = np.zeros(len(due), dtype=bool)
        if len(partial):
            blocked = np.any(np.count_nonzero(partial[:, None, :] < due[None, :, :], axis=2) >= need, axis=0)
        if blocked.any():
            edges = np.count_nonzero(due[:, None, :] < due[None, :, :], axis=2) >= need
            while True:
                grown = blocked | edges[blocked].any(axis=0)
                if (grown == blocked).all():
                    break
                blocked = grown
        return ~blocked

    def ready(self) -> int:
        return len(self.released)

    def pop(self) -> int:
        if self.released:
            return self.released.popleft()
        m = next(iter(self.waiting))  # a crashed leader empties the queue
        del self.waiting[m]
        return m

    def __len__(self) -> int:
        return len(self.released) + len(self.waiting)
