"""The shadow network: the simulated target, run as a discrete-event simulation.

Lifecycle: ``ShadowNetwork(scenario, writer, seed)`` builds the topology, links, the
sequencer and its policies; ``run(traffic)`` drives virtual time until the traffic is sent
and every message settled (or ``run.drain`` has passed), streaming rows into the history
writer; ``finish()`` settles what is left (pending/lost) and returns the end time.

Per message: the sending agent's node validates it and gossips it over the overlay; each
receipt costs the receiving node processing time (duplicates too); the sequencer node
admits it through backpressure into its queue policy; ``workers`` slots serve it; every
block interval the leader packs sequenced messages into a block, gossips the block, every
node votes back on applying it, and a quorum of votes commits it.

Every gossip receipt runs in the compiled kernel (``GossipState``, ``sim/kernel.py``).
This loop merges three time-ordered streams: traffic sends (pre-sorted arrays, never on a
heap), Python events (plain tuples ``(t_ns, eid, handler, a, b, c, d)`` on a ``heapq``;
``eid`` makes same-time order deterministic) and kernel receipts; at equal times sends go
first, then Python events, then receipts. The kernel runs until the next send or Python
event, or until a watched node validates an item (the leader or a standby for messages,
any node for blocks), which Python then handles at exactly that time.

A one-node network has no receipts to gossip; when ``solo_plan`` accepts its scenario the
whole loop runs compiled instead (``SoloSequencer``, ``sim/solo.py`` and ``solo_loop.py``), replaying the
handlers below step for step, and ``_run_solo`` only feeds it traffic and records what
it logged. ``compiled_solo=False`` keeps it here (the tests compare the two).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable
from heapq import heappop, heappush
from itertools import count
from typing import Any

import numpy as np

from msgstorm.faults.schedule import FaultOp, fault_schedule
from msgstorm.history.writer import HistoryWriter
from msgstorm.scenario.schema import (
    MESSAGE_KINDS,
    CrashFault,
    DegradeFault,
    PartitionFault,
    Scenario,
)
from msgstorm.sim.backpressure import ADMIT, DROP, REJECT, make_backpressure
from msgstorm.sim.backpressure import _Base as _NoDepth
from msgstorm.sim.desync import DesyncTracker
from msgstorm.sim.gossip import GossipState
from msgstorm.sim.kernel import ITEM_BLOCK, ITEM_MSG
from msgstorm.sim.links import LinkState
from msgstorm.sim.policies import QUEUE_POLICIES
from msgstorm.sim.recorder import FLUSH_ROWS, Recorder
from msgstorm.sim.sampling import Sampler
from msgstorm.sim.solo import NEED_BATCH, YIELD, SoloSequencer, solo_plan
from msgstorm.sim.solo_loop import END_CHECK_MASK
from msgstorm.sim.state import (
    BLOCK,
    COMMITTED,
    DROPPED,
    FEE,
    HELD,
    IN_BLOCK,
    IN_FLIGHT,
    IN_SERVICE,
    KIND,
    LOST,
    NULL,
    ORIGIN,
    PENDING,
    QUEUED,
    REJECTED,
    SEQ_NO,
    SEQUENCED,
    SIZE,
    T_COMMITTED,
    T_DEQUEUED,
    T_INTENDED,
    T_RECEIVED,
    T_SENT,
    T_SEQUENCED,
    WHERE,
    MessageState,
)
from msgstorm.sim.topology import Topology, build_topology
from msgstorm.traffic.generate import MessageBatch

__all__ = ["Progress", "ShadowNetwork"]

Progress = Callable[[dict[str, Any]], None]


class ShadowNetwork:
    def __init__(
        self,
        scenario: Scenario,
        writer: HistoryWriter,
        seed: np.random.SeedSequence,
        progress: Progress | None = None,
        compiled_solo: bool = True,
    ) -> None:
        """``compiled_solo=False`` keeps a one-node network in the Python loop (the tests
        compare the two loops)."""
        self.scenario = scenario
        self.writer = writer
        self.progress = progress
        topo_seed, link_seed, proc_seed, svc_seed, gossip_link_seed, gossip_proc_seed = seed.spawn(6)
        self.topology: Topology = build_topology(scenario.network, scenario.gossip, np.random.default_rng(topo_seed))
        n = self.topology.size
        self.n = n
        self.names = self.topology.names
        self.node_index = {name: i for i, name in enumerate(self.names)}
        self.links = LinkState(self.topology, np.random.default_rng(link_seed))
        self.processing = Sampler(scenario.network.processing, np.random.default_rng(proc_seed))
        self.service = Sampler(scenario.sequencer.service, np.random.default_rng(svc_seed))
        bandwidth = scenario.network.bandwidth
        self.tx_ns_per_byte = 8e9 / bandwidth if bandwidth > 0 else 0.0
        self.up = [True] * n  # mirrored in the gossip kernel's arrays
        self.msgs = MessageState([a.name for a in scenario.agents], self.names)
        sample = scenario.history.delivery_sample
        # Deliveries are recorded for every stride-th msg_id (by the kernel and _validate_alone).
        self.delivery_stride = 0 if sample <= 0 else max(1, round(1 / sample))
        self.gossip = GossipState(
            self.topology, scenario.network.processing, self.tx_ns_per_byte,
            np.random.default_rng(gossip_link_seed), np.random.default_rng(gossip_proc_seed),
            delivery_stride=self.delivery_stride,
            delivery_budget=scenario.history.max_deliveries,
        )
        self.heap: list[tuple[Any, ...]] = []
        self.eid = count()
        self.now = 0
        self.end_of_traffic = scenario.run.duration
        self.hard_stop = scenario.run.duration + scenario.run.drain
        self.interrupted = False
        # Sequencer.
        seq = scenario.sequencer
        self.leader = self.node_index[seq.node] if seq.node is not None else 0
        self.epoch = 0
        self.standby = [self.node_index[name] for name in seq.standby]
        self.mempool: dict[int, list[int]] = {node: [] for node in self.standby}
        self.gossip.set_watched([self.leader, *self.standby])
        # Nodes without gossip peers are simulated here, not in the kernel (see _validate_alone).
        self.isolated = [not peers for peers in self.topology.forward]
        self.cpu_free_alone = [0] * n
        self.delivery_budget_alone = scenario.history.max_deliveries if any(self.isolated) else 0
        self.deliveries_alone: list[tuple[int, int, int, int]] = []
        self.validating_alone: set[int] = set()  # messages waiting for an isolated node's CPU
        self.policy = QUEUE_POLICIES[seq.policy]()
        self.backpressure = make_backpressure(scenario.backpressure)
        self.workers = seq.workers
        self.busy = 0
        self.in_service: set[int] = set()
        self.sequenced: deque[int] = deque()
        self.next_seq = 0
        self.held: deque[int] = deque()  # senders suspended by backpressure
        self.waiting: list[tuple[float, int, int]] = []  # underpriced: (-fee, arrival, msg)
        self.waiting_arrivals = count()
        self.depth = 0  # messages in the policy queue (len() on a Python class is slow)
        self.depth_max = 0
        # Only watermark-style modes react to depth; skipping the call keeps the loop lean.
        self.watch_depth = type(self.backpressure).on_depth is not _NoDepth.on_depth
        self.admits_all = type(self.backpressure).admit is _NoDepth.admit
        self.priced = type(self.backpressure).eligible is not _NoDepth.eligible
        self.serve_when_idle = getattr(self.policy, "work_conserving", False) and not self.priced
        # Blocks and votes.
        blocks = scenario.blocks
        self.block_interval = blocks.interval
        self.max_messages = blocks.max_messages
        self.max_gas = blocks.max_gas
        self.gas_of = [blocks.gas.get(kind, 21_000) for kind in MESSAGE_KINDS]  # type: ignore[call-overload]
        self.quorum = max(1, math.ceil(blocks.quorum * n - 1e-9))
        self.height = [0] * n
        self.committed_height = 0
        self.block_ids = count(1)
        self.block_height: dict[int, int] = {}
        self.block_epoch: dict[int, int] = {}
        self.block_bytes: dict[int, int] = {}
        self.block_at_height: dict[int, int] = {}
        self.block_msgs: dict[int, list[int]] = {}  # height -> messages
        self.votes: dict[int, int] = {}
        # Faults.
        self.fault_ops: list[FaultOp] = fault_schedule(scenario)
        self.crashed_by_fault: dict[int, int] = {}
        # History rows, batched for the writer.
        self.record = Recorder(writer, self.msgs, self.names)
        self.desync = DesyncTracker(n, scenario.desync.max_height_gap, scenario.desync.min_duration,
                                    self.record.event)
        self.committed = 0
        self.dropped = 0
        self.rejected = 0
        self.emitted = 0  # messages whose send time has come (held ones included)
        self.active_faults: set[int] = set()
        self.recent_latencies: list[np.ndarray] = []
        self.latency_window = np.zeros(0, dtype=np.int64)
        # A one-node network runs its whole loop compiled when its rules allow (sim/solo.py).
        plan = solo_plan(scenario, n, self.policy) if compiled_solo else None
        self.solo = None if plan is None else SoloSequencer(
            plan, scenario, self.processing, self.service, self.delivery_stride, self.delivery_budget_alone)

    # --- plumbing ----------------------------------------------------------------------

    def _push(self, t: int, handler: Callable[..., None], a: int = 0, b: int = 0, c: int = 0, d: int = 0) -> None:
        heappush(self.heap, (t, next(self.eid), handler, a, b, c, d))

    def _flush_deliveries(self) -> None:
        rows = self.gossip.drain_deliveries()
        if self.deliveries_alone:
            alone = np.asarray(self.deliveries_alone, dtype=np.int64).T
            self.deliveries_alone = []
            rows = np.concatenate([rows, alone], axis=1)
        if rows.shape[1]:
            names = np.asarray(self.names, dtype=object)
            self.writer.append("deliveries", {"msg_id": rows[0], "node": names[rows[1]].tolist(),
                                              "t_delivered": rows[2], "hops": rows[3].astype(np.int32)})

    # --- the loop ----------------------------------------------------------------------

    def run(self, traffic: Iterable[Any]) -> None:
        """Drive virtual time; Ctrl-C stops early and keeps what was recorded."""
        self.record.event(0, "run_start", detail={"nodes": self.n, "leader": self.names[self.leader]})
        if self.solo is not None:
            self._run_solo(traffic)
            return
        for index, op in enumerate(self.fault_ops):
            self._push(op.t_ns, self._fault, index)
        self._push(self.block_interval, self._block_tick)
        self._push(self.scenario.run.sample_interval, self._sample)
        heap = self.heap
        msgs = self.msgs
        gossip = self.gossip
        batches = iter(traffic)
        send_t: list[int] = []
        first_id = 0
        si = sn = 0
        traffic_done = False
        steps = 0  # Python events
        kernel_runs = 0
        never = self.hard_stop + 1
        # The kernel starts gossip of each send itself unless a send needs Python: a node
        # without peers validates alone (_validate_alone), suspended senders hold theirs.
        kernel_sends = not any(self.isolated)
        try:
            while True:
                if si >= sn and not traffic_done:
                    batch = next(batches, None)
                    if batch is None:
                        traffic_done = True
                    else:
                        msgs.add(batch)
                        send_t = batch.t_intended.tolist()
                        first_id = int(batch.msg_id[0]) if len(batch) else 0
                        si, sn = 0, len(send_t)
                        if kernel_sends:
                            gossip.set_sends(batch.t_intended, batch.node, batch.msg_id, batch.size)
                        continue
                t_send = send_t[si] if si < sn else never
                t_python = heap[0][0] if heap else never
                t_next = t_send if t_send < t_python else t_python
                # Receipts strictly before the next send or Python event run in the kernel;
                # at equal times sends go first, then Python events, then receipts.
                t_kernel = gossip.t_next
                # The kernel also takes the sends before the next Python event when it may.
                sending = kernel_sends and si < sn and t_send < t_python and not self.backpressure.suspended
                if sending or (0 <= t_kernel < t_next and t_kernel <= self.hard_stop):
                    if sending:
                        gossip.allow_sends(si, sn)
                    try:
                        found = gossip.run(min(t_python if sending else t_next, never))
                    finally:
                        if sending:
                            sent = gossip.send_index
                            gossip.allow_sends(sent, sent)
                            self._mark_sent(first_id, send_t, si, sent)
                            si = sent
                    if found is not None:
                        self.now = found[0]
                        self._on_validated(*found)
                    kernel_runs += 1
                    if kernel_runs & 0x3FF == 0:
                        self._stream(gossip)
                    continue
                if t_next >= never:
                    break
                elif t_send <= t_python:
                    self.now = t_send
                    if self.backpressure.suspended:
                        self._hold(first_id + si)
                    else:
                        self._inject(t_send, first_id + si)
                    si += 1
                    self.emitted += 1
                    continue
                else:
                    event = heappop(heap)
                    t = event[0]
                    self.now = t
                    event[2](t, event[3], event[4], event[5], event[6])
                    steps += 1
                # Every 64 Python events (kernel runs do not count: how often the kernel hands
                # back depends on how its work is split, not on the simulation), look for the end.
                if steps & END_CHECK_MASK == 0:
                    if traffic_done and self.now >= self.end_of_traffic and self._settled_or_stranded():
                        break
                    if steps & 0x3FF == 0:
                        self._stream(gossip)
        except KeyboardInterrupt:
            self.interrupted = True
            self.record.event(self.now, "interrupted")

    def _stream(self, gossip: GossipState) -> None:
        if gossip.delivered_rows >= FLUSH_ROWS:
            self._flush_deliveries()  # stream delivery rows, do not hoard them
        if self.progress is not None:
            self._report_progress()

    def _mark_sent(self, first_id: int, send_t: list[int], first: int, end: int) -> None:
        """Sends ``first`` .. ``end - 1`` of the batch were made by the kernel at their
        intended times (as ``_inject`` records a send; one whose node was down is lost)."""
        if end <= first:
            return
        live = self.msgs.live
        for i in range(first, end):
            live[first_id + i][T_SENT] = send_t[i]
        self.emitted += end - first
        self.now = send_t[end - 1]

    def _settled_or_stranded(self) -> bool:
        """Nothing can change any more: every message settled, or the rest are stranded
        (not queued, not in a block, no receipt of theirs still travelling), so waiting for
        the drain to run out would only add empty blocks."""
        msgs = self.msgs
        if msgs.terminal >= msgs.count:
            return True
        if self.depth or self.busy or self.sequenced or self.held or self.waiting or self.validating_alone:
            return False
        if any(self.block_msgs.values()):
            return False
        if any(event[2] == self._failover for event in self.heap):
            return False  # a standby may still take over and sequence its mempool
        if not all(record[WHERE] == IN_FLIGHT for record in msgs.live.values()):
            return False
        return not self.gossip.live_items(ITEM_MSG)  # no receipt of theirs still travelling

    def _report_progress(self, final: bool = False) -> None:
        """Hand the progress callback a snapshot (live progress bar, Prometheus export).

        ``latencies_ns`` holds the commit latencies since the previous snapshot, so a
        consumer can keep its own histogram; ``p99_ms`` is over the latest commits.
        """
        assert self.progress is not None
        latencies = (np.concatenate(self.recent_latencies) if self.recent_latencies
                     else np.zeros(0, dtype=np.int64))
        self.recent_latencies = []
        if latencies.size:
            self.latency_window = np.concatenate([self.latency_window, latencies])[-4096:]
        p99_ms = float(np.percentile(self.latency_window, 99)) / 1e6 if self.latency_window.size else None
        self.progress({
            "t_ns": self.now, "end_ns": self.hard_stop, "sent": self.msgs.count,
            "emitted": self.emitted, "settled": self.msgs.terminal, "committed": self.committed,
            "dropped": self.dropped, "rejected": self.rejected, "queue_depth": self.depth,
            "base_fee": self.backpressure.base_fee, "faults_active": len(self.active_faults),
            "leader": self.names[self.leader], "p99_ms": p99_ms, "latencies_ns": latencies,
            "final": final,
        })

    # --- the compiled one-node loop ---------------------------------------------------------

    def _run_solo(self, traffic: Iterable[Any]) -> None:
        """``run`` for a one-node network: the compiled loop of sim/solo.py does every step;
        this feeds it traffic and turns its logs into history rows."""
        solo = self.solo
        assert solo is not None
        batches = iter(traffic)
        try:
            while True:
                code = solo.advance()
                self._drain_solo()
                if code == NEED_BATCH:
                    # Windows are joined into pieces of FLUSH_ROWS messages: the loop sees the
                    # same sends in the same order, and pays its per-call costs less often.
                    taken: list[Any] = []
                    size = 0
                    while size < FLUSH_ROWS:
                        batch = next(batches, None)
                        if batch is None:
                            break
                        if len(batch):
                            taken.append(batch)
                            size += len(batch)
                    if taken:
                        solo.add(MessageBatch.concat(taken))
                    else:
                        solo.last_batch()
                elif code != YIELD:
                    break
                if self.progress is not None:
                    self._report_progress()
        except KeyboardInterrupt:
            self.interrupted = True
            self._drain_solo()
            self.record.event(self.now, "interrupted")

    def _drain_solo(self) -> None:
        """Rows, events and deliveries the compiled loop logged since the last call."""
        solo = self.solo
        assert solo is not None
        self.now = solo.now
        self.depth = solo.depth
        self.emitted = solo.emitted
        self.msgs.count = solo.count
        self.msgs.terminal = solo.terminal
        table, fee = solo.take_settled()
        if table.shape[0]:
            self._settled_table(table, fee)
        solo.record_events(self.record, self.leader)
        rows = solo.take_deliveries()
        if rows.shape[1]:
            self.deliveries_alone.extend(zip(*rows.tolist()))

    def _settled_table(self, table: np.ndarray, fee: np.ndarray) -> None:
        where = table[:, WHERE]
        committed = where == COMMITTED
        self.committed += int(committed.sum())
        self.dropped += int((where == DROPPED).sum())
        if self.progress is not None and committed.any():
            self.recent_latencies.append((table[committed, T_COMMITTED] - table[committed, T_INTENDED]).astype(np.int64))
        self.record.settled_table(table, fee)

    def finish(self) -> int:
        """Settle every message still moving, flush all buffers; returns the end time."""
        if self.solo is not None:
            self._drain_solo()
            table, fee = self.solo.unsettled()
            if table.shape[0]:
                self.record.settled_table(table, fee)
            self.msgs.terminal = self.solo.terminal
        t_end = self.now
        top = self.height[self.leader]
        self.desync.close(t_end, [top - height for height in self.height])
        alive = (QUEUED, IN_SERVICE, SEQUENCED, IN_BLOCK, HELD)
        spreading = self.gossip.live_items(ITEM_MSG)
        for m, record in list(self.msgs.live.items()):
            state = record[WHERE]
            if state == IN_FLIGHT and record[T_SENT] == NULL:
                del self.msgs.live[m]  # generated ahead but never due (an interrupted run): not sent
                continue
            moving = state in alive or m in spreading or m in self.validating_alone
            self.record.settle(m, PENDING if moving else LOST)
        self.record.event(t_end, "run_end", value=float(self.msgs.count))
        if self.progress is not None:
            try:
                self._report_progress(final=True)
            except KeyboardInterrupt:  # a second Ctrl-C while settling: the history comes first
                self.interrupted = True
        self.record.flush()
        self._flush_deliveries()
        return t_end

    # --- gossip -------------------------------------------------------------------------

    def _hold(self, m: int) -> None:
        """Backpressure suspended the senders: keep the message until they resume."""
        self.msgs.live[m][WHERE] = HELD
        self.held.append(m)

    def _inject(self, t: int, m: int) -> None:
        msgs = self.msgs
        record = msgs.live[m]
        record[T_SENT] = t
        record[WHERE] = IN_FLIGHT
        origin = record[ORIGIN]
        if not self.up[origin]:
            return  # the agent's node is down: the message is lost
        if self.isolated[origin]:
            self._validate_alone(t, origin, m)
        else:
            self.gossip.inject(t, origin, m, ITEM_MSG, record[SIZE])

    def _validate_alone(self, t: int, node: int, m: int) -> None:
        """A node without gossip peers validates its own message; nothing spreads.

        Such a node (a one-node network, as in queueing experiments) receives nothing from
        others, so its CPU is accounted here instead of a kernel round trip per message.
        """
        start = self.cpu_free_alone[node]
        if start < t:
            start = t
        processing = self.processing
        done = start + (processing.constant if processing.constant is not None else processing())
        self.cpu_free_alone[node] = done
        stride = self.delivery_stride
        if stride and m % stride == 0 and self.delivery_budget_alone > 0:
            self.delivery_budget_alone -= 1
            self.deliveries_alone.append((m, node, done, 0))
        if done == t:
            self._on_validated(t, node, m, ITEM_MSG, -1, 0)
        else:
            self.validating_alone.add(m)
            self._push(done, self._validated_alone, node, m)

    def _validated_alone(self, t: int, node: int, m: int, _c: int, _d: int) -> None:
        self.validating_alone.discard(m)
        if self.up[node]:
            self._on_validated(t, node, m, ITEM_MSG, -1, 0)

    def _on_validated(self, t: int, node: int, item: int, kind: int, sender: int, hops: int) -> None:
        """A watched node validated an item (see GossipState.run)."""
        if kind == ITEM_MSG:
            if node == self.leader:
                self._intake(t, item)
            elif node in self.mempool:
                pool = self.mempool[node]
                pool.append(item)
                if len(pool) > FLUSH_ROWS and len(pool) > 2 * len(self.msgs.live):
                    # Keep the standby's mempool to what is still unsettled (bounded memory).
                    live = self.msgs.live
                    pool[:] = [m for m in pool if m in live]
        else:
            self._validated_block(t, node, item, sender)

    # --- the sequencer ------------------------------------------------------------------

    def _intake(self, t: int, m: int) -> None:
        msgs = self.msgs
        record = msgs.live.get(m)
        if record is None or record[WHERE] != IN_FLIGHT:
            return  # already settled, or already with the sequencer
        record[T_RECEIVED] = t
        decision = ADMIT if self.admits_all else self.backpressure.admit(record[KIND], record[FEE], self.depth)
        if decision == ADMIT:
            if not self.depth and self.busy < self.workers and self.serve_when_idle:
                # An idle server and an empty queue: any work-conserving policy would
                # hand this message over at once, so skip the push and pop.
                self._serve(t, m)
                return
            self.policy.push(m, record[FEE], t)
            self.depth += 1
            record[WHERE] = QUEUED
            if self.busy < self.workers:
                self._start_service(t)
            else:
                self._depth_changed(t)
        elif decision == DROP:
            self.dropped += 1
            self.record.settle(m, DROPPED)
        elif decision == REJECT:
            self.rejected += 1
            self.record.settle(m, REJECTED)
        else:
            record[WHERE] = HELD
            heappush(self.waiting, (-record[FEE], next(self.waiting_arrivals), m))

    def _start_service(self, t: int) -> None:
        policy = self.policy
        msgs = self.msgs
        workers = self.workers
        while self.busy < workers and self.depth:
            m = policy.pop()
            self.depth -= 1
            if self.priced and not self.backpressure.eligible((record := msgs.live[m])[FEE]):
                # The base fee rose while it queued: it waits or is rejected, as on arrival.
                if self.backpressure.admit(record[KIND], record[FEE], self.depth) == REJECT:
                    self.rejected += 1
                    self.record.settle(m, REJECTED)
                else:
                    record[WHERE] = HELD
                    heappush(self.waiting, (-record[FEE], next(self.waiting_arrivals), m))
                continue
            self._serve(t, m)
        if self.watch_depth:
            self._depth_changed(t)
        elif self.depth > self.depth_max:
            self.depth_max = self.depth

    def _serve(self, t: int, m: int) -> None:
        """A worker starts on ``m``; its service ends after a drawn service time."""
        msgs = self.msgs
        record = msgs.live[m]
        record[T_DEQUEUED] = t
        record[WHERE] = IN_SERVICE
        self.busy += 1
        self.in_service.add(m)
        service = self.service
        if service.constant is not None:
            duration = service.constant
        elif service.index < len(service.buffer):  # Sampler.__call__ inlined
            duration = service.buffer[service.index]
            service.index += 1
        else:
            duration = service()
        heappush(self.heap, (t + duration, next(self.eid), self._service_done, m, self.epoch, 0, 0))

    def _depth_changed(self, t: int) -> None:
        depth = self.depth
        self.depth_max = max(self.depth_max, depth)
        if not self.watch_depth:
            return
        state = self.backpressure.on_depth(depth)
        if state is not None:
            self.record.event(t, "backpressure", self.leader, float(depth), detail={"state": state})
            if state == "resumed":
                held = self.held
                self.held = deque()
                for m in held:
                    self._inject(t, m)

    def _service_done(self, t: int, m: int, epoch: int, _c: int, _d: int) -> None:
        if epoch != self.epoch:
            return  # the sequencer crashed while serving it
        msgs = self.msgs
        self.in_service.discard(m)
        self.busy -= 1
        record = msgs.live[m]
        record[SEQ_NO] = self.next_seq
        self.next_seq += 1
        record[T_SEQUENCED] = t
        record[WHERE] = SEQUENCED
        self.sequenced.append(m)
        if self.depth:
            self._start_service(t)

    # --- blocks, votes, commits ------------------------------------------------------------

    def _block_tick(self, t: int, _a: int, _b: int, _c: int, _d: int) -> None:
        if t + self.block_interval <= self.hard_stop:
            self._push(t + self.block_interval, self._block_tick)
        leader = self.leader
        if not self.up[leader]:
            return
        msgs = self.msgs
        take: list[int] = []
        gas = 0
        size = self.scenario.blocks.header_size
        sequenced = self.sequenced
        priced = self.priced
        backpressure = self.backpressure
        while sequenced and len(take) < self.max_messages:
            m = sequenced[0]
            record = msgs.live[m]
            if priced and not backpressure.eligible(record[FEE]):
                # The base fee is charged at inclusion: an underpriced message waits for
                # the fee to fall, or is rejected, as on arrival.
                sequenced.popleft()
                if backpressure.admit(record[KIND], record[FEE], self.depth) == REJECT:
                    self.rejected += 1
                    self.record.settle(m, REJECTED)
                else:
                    record[WHERE] = HELD
                    record[T_DEQUEUED] = record[T_SEQUENCED] = record[SEQ_NO] = NULL
                    heappush(self.waiting, (-record[FEE], next(self.waiting_arrivals), m))
                continue
            g = self.gas_of[record[KIND]]
            if self.max_gas is not None and gas + g > self.max_gas:
                break
            sequenced.popleft()
            take.append(m)
            gas += g
            size += record[SIZE]
        height = self.height[leader] + 1
        for m in take:
            record = msgs.live[m]
            record[WHERE] = IN_BLOCK
            record[BLOCK] = height
        self.block_msgs[height] = take
        self.votes[height] = 0
        block = next(self.block_ids)
        self.block_height[block] = height
        self.block_epoch[block] = self.epoch
        self.block_bytes[block] = size
        self.block_at_height[height] = block
        self.record.event(t, "block_produced", leader, float(len(take)), height, {"gas": gas, "bytes": size})
        if self.max_gas is not None:
            base_fee = self.backpressure.on_block(gas, self.max_gas)
        else:
            base_fee = self.backpressure.on_block(len(take), self.max_messages)
        if base_fee is not None:
            self.record.event(t, "base_fee", leader, base_fee, height)
            self._release_waiting(t)
        self.height[leader] = height
        self._send_vote(t, leader, height, height)
        if self.isolated[leader]:
            # Nobody to gossip to; validating its own block still costs the leader CPU.
            start = max(t, self.cpu_free_alone[leader])
            self.cpu_free_alone[leader] = start + self.processing()
        else:
            self.gossip.inject(t, leader, block, ITEM_BLOCK, size)
        self.desync.check(t, self.height[self.leader], self.height, self.up)

    def _release_waiting(self, t: int) -> None:
        base_fee = self.backpressure.base_fee
        released = False
        while self.waiting and base_fee is not None and -self.waiting[0][0] >= base_fee:
            _, _, m = heappop(self.waiting)
            record = self.msgs.live[m]
            self.policy.push(m, record[FEE], t)
            self.depth += 1
            record[WHERE] = QUEUED
            released = True
        if released:
            self._start_service(t)

    def _validated_block(self, t: int, node: int, block: int, sender: int) -> None:
        if self.block_epoch[block] != self.epoch:
            return  # orphaned by a failover
        height = self.block_height[block]
        mine = self.height[node]
        if height == mine + 1:
            self.height[node] = height
            self._send_vote(t, node, height, height)
            self.desync.caught_up(t, node, self.height[self.leader] - self.height[node])
        elif height > mine + 1:
            # Missing blocks: fetch them from the sender, one round trip away.
            d = self.links.delay(node, sender) if sender >= 0 else None
            if d is None:  # lost on the way: the retry costs about the base latency
                d = self.topology.base_ns[self.topology.region_of[node]][self.topology.region_of[max(sender, 0)]]
            rtt = 2 * d
            self._push(t + rtt, self._synced, node, height, self.epoch)

    def _synced(self, t: int, node: int, height: int, epoch: int, _d: int) -> None:
        if epoch != self.epoch or not self.up[node] or self.height[node] >= height:
            return
        first = self.height[node] + 1
        self.height[node] = height
        self._send_vote(t, node, first, height)
        self.desync.caught_up(t, node, self.height[self.leader] - self.height[node])

    def _send_vote(self, t: int, node: int, first: int, last: int) -> None:
        leader = self.leader
        if node == leader:
            self._vote(t, node, first, last, self.epoch)
            return
        if self.links.colour[node] != self.links.colour[leader]:
            return
        d = self.links.delay(node, leader)
        if d is not None:
            self._push(t + d, self._vote, node, first, last, self.epoch)

    def _vote(self, t: int, node: int, first: int, last: int, epoch: int) -> None:
        if epoch != self.epoch or not self.up[self.leader]:
            return
        votes = self.votes
        for height in range(first, last + 1):
            if height in votes:
                votes[height] += 1
                if votes[height] >= self.quorum and height > self.committed_height:
                    self._commit(t, height)

    def _commit(self, t: int, height: int) -> None:
        msgs = self.msgs
        for h in range(self.committed_height + 1, height + 1):
            block = self.block_msgs.pop(h, [])
            live = msgs.live
            settled = []
            for m in block:
                record = live.pop(m)
                record[T_COMMITTED] = t
                record[WHERE] = COMMITTED
                settled.append(record)
            self.committed += len(block)
            msgs.terminal += len(block)
            if self.progress is not None and block:
                self.recent_latencies.append(np.array([t - r[T_INTENDED] for r in settled], dtype=np.int64))
            self.record.settled(settled)
            self.votes.pop(h, None)
            self.record.event(t, "block_committed", self.leader, height=h)
        self.committed_height = height

    # --- faults -------------------------------------------------------------------------

    def _fault(self, t: int, index: int, _b: int, _c: int, _d: int) -> None:
        op = self.fault_ops[index]
        spec = op.spec
        if op.action == "start":
            self.active_faults.add(op.fault_id)
        else:
            self.active_faults.discard(op.fault_id)
        detail = {"fault_id": op.fault_id, **spec.model_dump(mode="json")}
        if isinstance(spec, PartitionFault):
            if op.action == "start":
                self.links.start_partition(op.fault_id, spec, self.node_index)
            else:
                self.links.end_partition(op.fault_id)
            self.gossip.set_colours(self.links.colour)
        elif isinstance(spec, DegradeFault):
            if op.action == "start":
                self.links.start_degrade(op.fault_id, spec, self.node_index)
                side, between, latency, jitter, loss = self.links.degrades[op.fault_id]
                self.gossip.add_degrade(op.fault_id, side, between, latency, jitter, loss)
            else:
                self.links.end_degrade(op.fault_id)
                self.gossip.remove_degrade(op.fault_id)
        elif isinstance(spec, CrashFault):
            if op.action == "start":
                node = self.leader if spec.node == "sequencer" else self.node_index[spec.node]
                self.crashed_by_fault[op.fault_id] = node
                detail["node_index"] = node
                self.record.event(t, "fault_start", node, detail=detail)
                self._crash(t, node)
                return
            node = self.crashed_by_fault.get(op.fault_id, -1)
            self.record.event(t, "fault_end", None if node < 0 else node, detail=detail)
            if node >= 0:
                self._restart(t, node)
            return
        self.record.event(t, f"fault_{op.action}", detail=detail)

    def _crash(self, t: int, node: int) -> None:
        if not self.up[node]:
            return
        self.up[node] = False
        self.gossip.set_up(node, False, t)
        self.record.event(t, "node_down", node)
        if node in self.mempool:
            self.mempool[node] = []
        if node != self.leader:
            return
        self.epoch += 1
        orphans: list[int] = []
        while self.depth:
            orphans.append(self.policy.pop())
            self.depth -= 1
        orphans.extend(self.in_service)
        orphans.extend(self.sequenced)
        orphans.extend(m for _, _, m in self.waiting)
        self.in_service.clear()
        self.sequenced.clear()
        self.waiting = []
        self.busy = 0
        self._orphan(orphans)
        # Depth is re-evaluated when a sequencer is back (failover or restart): resuming
        # held senders now would send their messages into a dead sequencer.
        if any(s != node for s in self.standby):
            self._push(t + self.scenario.sequencer.failover_timeout, self._failover, self.epoch)

    def _orphan(self, messages: Iterable[int]) -> None:
        msgs = self.msgs
        for m in messages:
            record = msgs.live[m]
            record[WHERE] = IN_FLIGHT
            record[T_RECEIVED] = record[T_DEQUEUED] = record[T_SEQUENCED] = NULL
            record[SEQ_NO] = record[BLOCK] = NULL

    def _failover(self, t: int, epoch: int, _b: int, _c: int, _d: int) -> None:
        if epoch != self.epoch or self.up[self.leader]:
            return
        candidates = [s for s in self.standby if self.up[s] and s != self.leader]
        if not candidates:
            # No live standby yet: look again after another timeout (one may restart).
            retry = t + self.scenario.sequencer.failover_timeout
            if retry <= self.hard_stop:
                self._push(retry, self._failover, epoch)
            return
        old, new = self.leader, candidates[0]
        self.leader = new
        self.epoch += 1
        top = max(self.height[new], self.committed_height)
        orphaned = [h for h in self.block_msgs if h > top]
        for h in orphaned:
            self._orphan(self.block_msgs.pop(h))
        self.height = [min(h, top) for h in self.height]
        self.height[new] = top
        self.votes = {h: 0 for h in self.block_msgs}
        stale = {b for b in self.gossip.live_items(ITEM_BLOCK) if self.block_epoch[b] != self.epoch}
        self.gossip.stop_forwarding(ITEM_BLOCK, stale)
        self.gossip.set_watched([new, *self.standby])
        self.record.event(t, "leader_change", new, detail={"from": self.names[old], "orphaned_blocks": len(orphaned)})
        pool = self.mempool.pop(new, [])
        for m in pool:
            self._intake(t, m)
        self._depth_changed(t)

    def _restart(self, t: int, node: int) -> None:
        if self.up[node]:
            return
        self.up[node] = True
        self.gossip.set_up(node, True, t)
        self.cpu_free_alone[node] = t
        if node in self.standby and node != self.leader:
            self.mempool[node] = []
        self.record.event(t, "node_up", node)
        if node == self.leader:
            self._depth_changed(t)  # the sequencer is back: held senders may resume

    # --- sampling -----------------------------------------------------------------------

    def _sample(self, t: int, _a: int, _b: int, _c: int, _d: int) -> None:
        depth = self.depth
        self.record.event(t, "queue_depth", self.leader, float(depth))
        self.record.event(t, "queue_depth_max", self.leader, float(self.depth_max))
        # Sequenced messages still waiting for block space: the backlog a full block leaves.
        self.record.event(t, "block_backlog", self.leader, float(len(self.sequenced)))
        self.depth_max = depth
        interval = self.scenario.run.sample_interval
        if t + interval <= self.hard_stop:
            self._push(t + interval, self._sample)
