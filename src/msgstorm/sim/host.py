"""What the simulator's extensions see of it: ``SimHost``, the ``ReactorHost`` of reactors
(``traffic/reactor.py``) and the ``PolicyHost`` of queue policies with hooks (``sim/policies.py``).

Place in the pipeline: inside the simulator, between ``ShadowNetwork`` and its extensions.
A reactor or a policy sends messages through the network's own send path, schedules
Python events on its clock, reads message records and the base fee, appends rows to its
own history tables, and asks what a watcher sees of a message (``visible``: nothing of a
commitment the policy hides) and when a committed one takes effect (``execution_rank``,
by the policy's rule, during ``committed``).

Lifecycle: built first, because reactors are built with it and name the agents they send
as, which the message records need; ``connect`` then gives it the parts the network built
from those (the shared context, the sequencer, the send path, the reactors), before the
run starts. ``commit_listener`` is what the chain calls with each committed block (an empty
one too).
"""

from __future__ import annotations

from collections.abc import Callable
from operator import itemgetter
from typing import Any

import numpy as np

from msgstorm.history.writer import HistoryWriter
from msgstorm.scenario.schema import MESSAGE_KINDS, Scenario
from msgstorm.sim.context import Handler, SimContext
from msgstorm.sim.sequencer import Sequencer
from msgstorm.sim.state import (
    AGENT,
    DROPPED,
    FEE,
    HELD,
    IN_FLIGHT,
    KEY,
    KIND,
    MSG_ID,
    NULL,
    ORIGIN,
    REJECTED,
    SEQ_NO,
    SIZE,
    T_RECEIVED,
    T_SENT,
    T_SEQUENCED,
    WHERE,
)
from msgstorm.sim.topology import Topology
from msgstorm.traffic.generate import MessageBatch
from msgstorm.traffic.reactor import Reactor

__all__ = ["CommitListener", "SimHost"]

# What ``block_arrivals`` reads of a record.
_ARRIVAL_FIELDS = itemgetter(ORIGIN, T_SENT, T_RECEIVED, T_SEQUENCED, FEE)

CommitListener = Callable[[int, list[list[Any]]], None]


class SimHost:
    """The simulator as reactors and queue policies see it."""

    final_commits = True  # a commit is never taken back (a deep canonical reorg is counted: sim/forks.py)

    # Set by ``connect``, before the run.
    ctx: SimContext
    sequencer: Sequencer
    reactors: list[Reactor]
    _inject: Callable[[int, int], None]
    _agent_index: dict[str, int]

    def __init__(self, scenario: Scenario, writer: HistoryWriter, node_names: list[str],
                 node_regions: list[str], topology: Topology | None = None) -> None:
        self.scenario = scenario
        self.topology = topology
        self._paths: dict[int, np.ndarray] = {}  # leader -> each node's shortest base delay to it
        self._block: list[list[Any]] = []  # the block being committed, in order
        self.writer = writer
        self.node_names = node_names
        self.node_regions = node_regions
        self._committing: dict[int, list[Any]] = {}  # the block being committed, for execution_rank
        self._ranked: dict[int, int | None] = {}  # its ranks, under a policy with its own rule

    def connect(self, ctx: SimContext, sequencer: Sequencer, inject: Callable[[int, int], None],
                reactors: list[Reactor], agent_names: list[str]) -> None:
        """The network's parts: ``inject(t, m)`` sends a message on its way now."""
        self.ctx = ctx
        self.sequencer = sequencer
        self._inject = inject
        self.reactors = reactors
        self._agent_index = {name: i for i, name in enumerate(agent_names)}

    # --- what reactors ask for (ReactorHost) ----------------------------------------------

    def agent_index(self, name: str) -> int:
        return self._agent_index[name]

    def send(self, t: int, agent: int, kind: str, node: int, key: int, size: int, fee: float,
             named: Callable[[int], None] | None = None) -> int:
        """A message created now by a reactor or a policy: a record like a traffic message's,
        sent at once through the same path (held behind held messages, as a traffic send
        is). ``named(msg_id)`` is called before it leaves (its node may validate it at once)."""
        msgs = self.ctx.msgs
        m = msgs.count
        msgs.live[m] = [m, MESSAGE_KINDS.index(kind), agent, node, key, size, float(fee), t,
                        NULL, NULL, NULL, NULL, NULL, NULL, NULL, IN_FLIGHT]
        msgs.count += 1
        if named is not None:
            named(m)
        self.ctx.tally.emitted += 1
        sequencer = self.sequencer
        if (sequencer.backpressure.suspended or sequencer.held) and sequencer.holds(m):
            sequencer.hold(m)
        else:
            self._inject(t, m)
        return m

    def schedule(self, t: int, handler: Handler, a: int = 0, b: int = 0, c: int = 0, d: int = 0) -> None:
        if t <= self.ctx.hard_stop:
            self.ctx.events.push(t, handler, a, b, c, d)

    def schedule_send(self, t: int, handler: Handler, a: int = 0, b: int = 0, c: int = 0,
                      d: int = 0) -> None:
        if t <= self.ctx.hard_stop:
            self.ctx.events.push_send(t, handler, a, b, c, d)

    def base_fee(self) -> float | None:
        return self.sequencer.backpressure.base_fee

    def visible(self, msg_id: int) -> tuple[str, int, int, int, int, float] | None:
        """What a watcher at a node sees of a live message: ``(kind, agent, node, key, size,
        fee)``; None once settled, or while the queue policy hides its content (an
        unrevealed commitment)."""
        record = self.ctx.msgs.live.get(msg_id)
        if record is None:
            return None
        hides = self.sequencer.ordering.hides
        if hides is not None and hides(record):
            return None
        return MESSAGE_KINDS[record[KIND]], record[AGENT], record[ORIGIN], record[KEY], record[SIZE], record[FEE]

    def execution_rank(self, msg_id: int) -> int | None:
        """Inside ``committed``: when a message of the block takes effect, by the queue
        policy's rule (its sequence number unless the policy says otherwise); None: never."""
        if msg_id in self._ranked:
            return self._ranked[msg_id]
        record = self._committing.get(msg_id)
        return None if record is None else record[SEQ_NO]

    def append(self, table: str, columns: dict[str, Any]) -> None:
        self.writer.append(table, columns)

    def block_arrivals(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Inside ``committed``: each message of the block, in block order: its node, when it
        was sent, received by the sequencer and sequenced (-1: unknown), and its fee."""
        # The five fields of every record taken at C level (``itemgetter`` and ``zip``), each
        # into its column as it is: exact ints, and the fees as floats.
        block = self._block
        n = len(block)
        columns = list(zip(*map(_ARRIVAL_FIELDS, block), strict=True)) if n else [()] * 5
        origin, sent, received, sequenced, fee = columns
        return (np.fromiter(origin, np.int32, n), np.fromiter(sent, np.int64, n),
                np.fromiter(received, np.int64, n), np.fromiter(sequenced, np.int64, n),
                np.fromiter(fee, np.float64, n))

    def order_key(self) -> str | None:
        """What the queue policy orders by: ``"arrival"`` (first come first served), ``"fee"``
        (highest first), or None (a policy with a rule of its own)."""
        return self.sequencer.ordering.order_key

    def path_delay(self, node: int) -> int:
        """The base one-way delay from ``node`` to the node that leads now: the shortest path
        over the gossip mesh's base latencies (scipy's Dijkstra, once per leader)."""
        leader = self.ctx.cluster.leader
        if node == leader or self.topology is None:
            return 0
        paths = self._paths.get(leader)
        if paths is None:
            from scipy.sparse import csr_matrix  # only for a run with probes
            from scipy.sparse.csgraph import dijkstra

            topology = self.topology
            base = np.asarray(topology.base_ns, dtype=np.float64)
            src = [a for a, peers in enumerate(topology.forward) for _ in peers]
            dst = [b for peers in topology.forward for b in peers]
            weight = [max(1.0, base[topology.region_of[a], topology.region_of[b]]) for a, b in zip(src, dst, strict=True)]
            # Paths *to* the leader: Dijkstra from it over the reversed links.
            graph = csr_matrix((weight, (dst, src)), shape=(topology.size, topology.size))
            paths = dijkstra(graph, directed=True, indices=leader)
            self._paths[leader] = paths
        found = float(paths[node])
        return 0 if not np.isfinite(found) else int(found)

    def leader(self) -> int:
        """The node that leads now (whose sequencer takes what it validates)."""
        return self.ctx.cluster.leader

    def withhold(self, t: int, msg_id: int) -> None:
        """The leader keeps a message it validated at ``t`` out of its sequencer (a censoring
        producer, ``sim/integrity.py``) until ``readmit``: its sequencer takes no notice of it,
        and the wait counts as queue wait (received now)."""
        record = self.ctx.msgs.live.get(msg_id)
        if record is not None:
            record[WHERE] = HELD
            record[T_RECEIVED] = t

    def readmit(self, t: int, msg_id: int) -> None:
        """A withheld message goes to the sequencer of whichever node leads now."""
        record = self.ctx.msgs.live.get(msg_id)
        if record is not None and record[WHERE] == HELD:
            received = record[T_RECEIVED]
            record[WHERE] = IN_FLIGHT
            self.sequencer.intake(t, msg_id)
            record[T_RECEIVED] = received  # when the leader had it: the wait since is the censor's

    def drop(self, t: int, msg_id: int) -> None:
        """The leader drops a message it validated (a censoring producer): dropped, received now."""
        record = self.ctx.msgs.live.get(msg_id)
        if record is None:
            return
        record[T_RECEIVED] = t
        self.ctx.tally.dropped += 1
        self.ctx.record.settle(msg_id, DROPPED)

    def reject(self, t: int, msg_id: int) -> None:
        """The leader refuses a message it validated before its sequencer sees it (its
        signature or nonce failed verification, ``sim/integrity.py``): rejected, received now."""
        record = self.ctx.msgs.live.get(msg_id)
        if record is None:
            return
        record[T_RECEIVED] = t
        self.ctx.tally.rejected += 1
        self.ctx.record.settle(msg_id, REJECTED)

    def batch(self, **columns: Any) -> MessageBatch:
        return MessageBatch(**columns)

    # --- what policies with hooks ask for (PolicyHost) ------------------------------------

    def wake(self, t: int) -> None:
        self.sequencer.wake(t)

    def message(self, msg: int) -> list[Any] | None:
        return self.ctx.msgs.live.get(msg)

    # --- commits --------------------------------------------------------------------------

    def commit_listener(self, telemetry: CommitListener | None) -> CommitListener | None:
        """What sees each committed block: the progress telemetry, the reactors, and under a
        policy with its own rule for when messages take effect, the ``ranks`` table (each
        message's rank asked of the policy once, then given to every reactor that asks)."""
        policy_rank = self.sequencer.ordering.execution_rank
        reactors = self.reactors
        if not reactors and policy_rank is None:
            return telemetry
        ranking = any(getattr(reactor, "wants_ranks", False) for reactor in reactors)
        writer = self.writer

        def committed(t: int, records: list[list[Any]]) -> None:
            if telemetry is not None:
                telemetry(t, records)
            ids = [record[MSG_ID] for record in records]
            if policy_rank is not None and ids:
                ranks = [policy_rank(record) for record in records]
                self._ranked = dict(zip(ids, ranks, strict=True))
                writer.append("ranks", {"msg_id": ids, "rank": [-1 if r is None else r for r in ranks]})
            if ranking:
                self._committing = dict(zip(ids, records, strict=True))
            self._block = records
            for reactor in reactors:
                reactor.committed(t, ids)
            self._committing = {}
            self._ranked = {}
            self._block = []

        return committed
