"""The block step: a slice of the leader's intake and service in one compiled call.

Place in the pipeline: inside the simulator, under ``LoggedIntake`` (``sim/intake_log.py``).
Between two Python events the gossip kernel logs the leader's validations; ``LoggedIntake``
replays them with the service completions due in that slice, one Python call per message
(``Sequencer.intake``, ``_take``, ``_serve``, ``service_done``). The block step does the
same in one call of a compiled loop (``sim/block_step_loop.py``) over arrays: the queue
(``ArrayQueue``, in place of the FIFO or fee-priority policy), the pending completions,
the service times drawn; Python stays at the edges: it reads each logged message's record
once (whether the leader still takes it, its fee) and writes back what the loop logged, in
order (a sequenced message's times, number and place, the block backlog, rejections
settled), with the same ``eid`` numbers and the same draws. The messages a rising base fee
turns away go to the fee waiting list as arrays, and those a falling one lets back in come
to the queue as arrays (``FeeWaitList.admitted_arrays``, ``ArrayQueue.push_arrays``): the
whole queue moves each way every few blocks under a flood.

It applies where the loop does what the Python sequencer does (``fits``): what the
sequencer core covers (``seq_core.covers``: the shared workers only, a FIFO or fee-ordered
queue without hooks, every arrival admitted, the EIP-1559 price rule, waiting or rejected,
or a mode that drops by the queue's depth, ``DroppingMode``), no controller's gate, no
diversion, no one told of a sequencing; a call made while any of those is set (a gate a
controller adds later) replays one message at a time, on the same arrays.
``tests/test_sim_block_step.py`` compares it with ``ShadowNetwork(reference=True)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from heapq import heapify
from itertools import count

import numpy as np

from msgstorm.history.events import EventKind
from msgstorm.jit import direct_call
from msgstorm.sim import block_step_loop as loop
from msgstorm.sim.backpressure import REJECT, DroppingMode, FeeEscalation
from msgstorm.sim.context import Event, SimContext
from msgstorm.sim.policies import FeePriorityPolicy, FifoPolicy
from msgstorm.sim.seq_core import ArrayQueue, covers, replaces
from msgstorm.sim.sequencer import Sequencer
from msgstorm.sim.state import (
    DROPPED,
    FEE,
    HELD,
    IN_FLIGHT,
    IN_SERVICE,
    KIND,
    QUEUED,
    REJECTED,
    SEQ_NO,
    SEQUENCED,
    T_DEQUEUED,
    T_RECEIVED,
    T_SEQUENCED,
    WHERE,
)

__all__ = ["BlockStep"]


class BlockStep:
    """The compiled replay of one slice; built by ``LoggedIntake`` when ``fits``.

    Lifecycle: ``make`` puts the array queue in the sequencer's policy's place; the pending
    service completions then live on this object's heap of arrays (``done``), those the
    Python sequencer schedules meanwhile (a block letting waiting messages in) joining it
    at the next call; ``export`` hands them back as Python events (for a slice replayed in
    Python, and at ``stop``, when the sequencer gets its own policy back)."""

    def __init__(self, ctx: SimContext, sequencer: Sequencer, queue: ArrayQueue) -> None:
        self.ctx = ctx
        self.sequencer = sequencer
        self.queue = queue
        sequencer.lend_queue(queue)
        self.done_fn = sequencer.service_done
        self.done = np.zeros((loop.C_ROWS, 64), np.int64)
        self.log = np.zeros(loop.LOG_WIDTH * 1024, np.int64)
        self.joins = np.zeros(1024, np.int64)
        self.join_fees = np.zeros(1024, np.float64)
        self.flags = np.zeros(64, np.int64)  # a row the leader takes holds the call's stamp
        self.fees = np.zeros(64, np.float64)
        self.kinds = np.zeros(64, np.int64)  # the message kinds, read when backpressure drops
        self.stamp = 0
        self.sc = np.zeros(loop.N_SCALARS, np.int64)
        self.sc[loop.S_TOP_T] = self.sc[loop.S_TOP_EID] = loop.NO_TOP
        self.cn = 0  # completions on ``done``
        self.top: tuple[int, int] | None = None  # the first one's (time, eid)
        self.p = np.zeros(loop.N_PARAMS, np.int64)
        self.admits_all = sequencer.admits_all
        self._svc_list: list[int] | None = None
        self._svc = np.zeros(0, np.int64)
        bp = sequencer.backpressure
        self.p[loop.P_SLOTS] = sequencer.shared.slots
        self.p[loop.P_PRICED] = sequencer.priced
        self.p[loop.P_FEE_ORDERED] = sequencer.fee_ordered
        self.p[loop.P_SERVE_IDLE] = sequencer.serve_when_idle
        self.p[loop.P_REJECT] = sequencer.priced and bp.priced_out() == REJECT
        self.p[loop.P_ADMITS_ALL] = sequencer.admits_all
        self.p[loop.P_SVC_CONST] = sequencer.service_constant
        # A mode that only drops (``DropRule``): its tables; it engages and releases in the loop.
        self.drops = bp if isinstance(bp, DroppingMode) else None
        rule = None if self.drops is None else self.drops.rule
        self.p[loop.P_DROPS] = self.drops is not None
        self.p[loop.P_ENGAGE_AT] = 0 if rule is None else rule.engage_at
        self.limits = np.array([0] if rule is None else rule.limit, np.int64)
        self.protected = np.array([0] if rule is None else rule.protected, np.int64)
        self.states = ("", "") if rule is None else rule.states
        self.no_rows = np.zeros((4, 0), np.int64)
        # The loop's machine code, called without numba's dispatcher: every argument keeps
        # its type for the whole run (arrays made here, of fixed dtypes and C order).
        self.entry: Callable[..., int] | None = None

    @staticmethod
    def make(ctx: SimContext, sequencer: Sequencer) -> BlockStep | None:
        """The block step for ``sequencer``, or None where its loop would not do what the
        Python sequencer does (see the module)."""
        if not BlockStep.fits(sequencer):
            return None
        queue = replaces(sequencer.policy)
        return None if queue is None else BlockStep(ctx, sequencer, queue)

    @staticmethod
    def fits(sequencer: Sequencer) -> bool:
        """What the core covers (``seq_core.covers``), with the two policies the array queue
        stands in for, and a mode whose depth rule and admission are the core's."""
        bp = sequencer.backpressure
        drops = isinstance(bp, DroppingMode)  # depth watched by a mode that only drops
        return (covers(sequencer) and type(sequencer.policy) in (FifoPolicy, FeePriorityPolicy)
                and sequencer.lending is None and (drops or not sequencer.watch_depth)
                and (sequencer.admits_all or drops or type(bp) is FeeEscalation))

    def usable(self) -> bool:
        """Whether this call may take the compiled loop (nothing set since that it does not do)."""
        seq = self.sequencer
        return (seq.gate is None and seq.divert is None and not seq.told
                and seq.admits_all == self.admits_all)

    def due(self, heap: list[Event], limit: tuple[int, int]) -> bool:
        """Whether a completion comes before ``(time, eid)`` (here or among ``heap``'s)."""
        return (self.top is not None and self.top < limit) or (bool(heap) and heap[0][:2] < limit)

    def stop(self, heap: list[Event]) -> None:
        """From now on the Python sequencer alone: the completions onto ``heap``, and its own
        policy again, holding what the queue holds in the same order (``push`` of each in
        pop order keeps it)."""
        self.export(heap)
        self.sequencer.take_queue_back()

    def pending(self, heap: list[Event]) -> list[Event]:
        """Every pending completion as ``export`` would give it (``heap`` unchanged)."""
        times, eids, msgs, epochs = self.done[:4, :self.cn].tolist()
        pending = zip(times, eids, msgs, epochs, strict=True)
        return list(heap) + [(t, eid, None, m, epoch) for t, eid, m, epoch in pending]

    def export(self, heap: list[Event]) -> None:
        """The pending completions onto ``heap`` as the Python sequencer's events."""
        if not self.cn:
            return
        fn = self.done_fn
        times, eids, msgs, epochs = self.done[:4, :self.cn].tolist()
        pending = zip(times, eids, msgs, epochs, strict=True)
        heap.extend([(t, eid, fn, m, epoch, 0, 0) for t, eid, m, epoch in pending])
        heapify(heap)
        self.cn = 0
        self.top = None
        self.sc[loop.S_CN] = 0
        self.sc[loop.S_TOP_T] = self.sc[loop.S_TOP_EID] = loop.NO_TOP

    def _import(self, heap: list[Event]) -> None:
        """Completions the Python sequencer scheduled (``Sequencer._serve``), onto ``done``."""
        if self.done.shape[1] < self.cn + len(heap) + self.sequencer.shared.slots + 1:
            self._grow_done(self.cn + len(heap))
        for event in heap:
            loop.done_add(self.done, self.sc, event[0], event[1], event[3], event[4])
        heap.clear()
        self.cn = int(self.sc[loop.S_CN])

    def _grow_done(self, pending: int) -> None:
        done = np.zeros((loop.C_ROWS, 2 * (pending + self.sequencer.shared.slots + 1)), np.int64)
        done[:, :self.done.shape[1]] = self.done
        self.done = done

    def replay(self, heap: list[Event], rows: np.ndarray, now: int, mode: int, limit_t: int,
               limit_eid: int) -> tuple[int, int]:
        """The rows (``LoggedIntake.replay``'s) after the completions due before each, then
        the completions before the limit (``block_step_loop``'s modes); ``(ran, now)``."""
        # Called at every slice of a run: the attributes are read once into locals.
        seq = self.sequencer
        ctx = self.ctx
        if heap:
            self._import(heap)
        n_rows = rows.shape[1]
        if n_rows:
            if not rows.flags.c_contiguous:  # the entry point reads C-ordered rows
                rows = np.ascontiguousarray(rows)
            self._intake(rows)
            # The loop pushes at most a row a message, in however many calls: room for all.
            self.queue.reserve(n_rows)
        cluster = ctx.cluster
        events = ctx.events
        eid = next(events.eid)
        base_fee = seq.backpressure.base_fee
        base_fee = 0.0 if base_fee is None else float(base_fee)
        service = seq.service
        shared = seq.shared
        depth, depth_max, busy, next_seq = seq.depth, seq.depth_max, shared.busy, seq.next_seq
        sc = self.sc
        drops = self.drops
        if drops is not None:  # the Python sequencer may have moved it since
            sc[loop.S_ENGAGED] = drops.engaged
        pos = 0
        ran = 0
        while True:
            self._room(n_rows, depth, shared.slots)
            if service.buffer is not self._svc_list:  # converted once per refill
                self._svc_list = service.buffer
                self._svc = np.array(service.buffer, np.int64)
            args = (rows, self.flags, self.fees, self.kinds, *self.queue.arrays(), self.done,
                    self._svc, self.p, sc, self.log, self.joins, self.join_fees, self.limits,
                    self.protected, base_fee, mode,
                    limit_t, limit_eid, self.stamp, cluster.epoch, cluster.leader, depth,
                    depth_max, busy, next_seq, eid, service.index, now, pos)
            if self.entry is None:
                self.entry = direct_call(loop.replay, *args)
            code = self.entry(*args)
            (depth, depth_max, busy, next_seq, eid, service.index, pos, segment_ran, now, logged,
             joined, self.cn, top_t, top_eid, engaged) = sc.tolist()
            ran += segment_ran
            if logged:
                self._write_back(logged)
            if joined:
                seq.waiting.update_arrays(self.joins[:joined], self.join_fees[:joined])
            if code == loop.DONE:
                break
            seq.depth = depth
            self._refill()
        seq.depth, seq.depth_max, shared.busy, seq.next_seq = depth, depth_max, busy, next_seq
        if drops is not None:
            drops.engaged = bool(engaged)
        events.eid = count(eid)  # the one counter of every Python event's eid, on from the loop's
        self.top = None if top_t == loop.NO_TOP else (top_t, top_eid)
        return ran, now

    def _intake(self, rows: np.ndarray) -> None:
        """Which logged messages the leader takes (unsettled and in flight: their rows get
        the call's stamp) and their fees; their receipt time written (``Sequencer.intake``'s
        first step) and their place marked queued, so that a message logged twice in a
        slice is taken once (every one taken gets its place when the loop's log is written
        back)."""
        live = self.ctx.msgs.live
        items, times = rows[1:3].tolist()
        n = len(items)
        if len(self.flags) < n:
            self.flags = np.zeros(2 * n, np.int64)
            self.fees = np.zeros(2 * n, np.float64)
            self.kinds = np.zeros(2 * n, np.int64)
        self.stamp += 1
        stamp = self.stamp
        flags = self.flags
        fees = self.fees
        if self.ctx.cluster.standby:
            leader = self.ctx.cluster.leader
            chosen: Iterable[int] = [i for i, node in enumerate(rows[0].tolist()) if node == leader]
        else:
            chosen = range(n)  # only the leader's validations are logged
        kinds = self.kinds if self.drops is not None else None
        for i in chosen:
            record = live.get(items[i])
            if record is None or record[WHERE] != IN_FLIGHT:
                continue
            record[T_RECEIVED] = times[i]
            record[WHERE] = QUEUED
            flags[i] = stamp
            fees[i] = record[FEE]
            if kinds is not None:
                kinds[i] = record[KIND]

    def _room(self, n_rows: int, depth: int, slots: int) -> None:
        """Room in the log and the completions' heap for all one call can do with ``depth``
        queued and ``n_rows`` rows (the queue's room is reserved once a slice): it serves,
        turns away or sequences each message at most once."""
        most = depth + n_rows + self.cn + slots + 1
        if len(self.log) < 3 * loop.LOG_WIDTH * most:
            self.log = np.zeros(6 * loop.LOG_WIDTH * most, np.int64)
        if len(self.joins) < most:
            self.joins = np.zeros(2 * most, np.int64)
            self.join_fees = np.zeros(2 * most, np.float64)
        if self.done.shape[1] < self.cn + slots + 1:
            self._grow_done(self.cn)

    def _refill(self) -> None:
        """The draws left, then the next blocks: the stream ``Sampler.__call__`` reads."""
        service = self.sequencer.service
        rest = service.buffer[service.index:]
        while len(rest) < self.sequencer.shared.slots + 1:
            rest = rest + service.draw_block().tolist()
        service.buffer = rest
        service.index = 0

    def _write_back(self, logged: int) -> None:
        """What the loop logged, into the records and the sequencer's Python parts, in the
        order it was done (the kinds tested most frequent first)."""
        seq = self.sequencer
        ctx = self.ctx
        live = ctx.msgs.live
        entries = self.log[:loop.LOG_WIDTH * logged].reshape(logged, loop.LOG_WIDTH).tolist()
        in_service = seq.in_service
        leaves_service = in_service.discard
        to_backlog = seq.sequenced.append
        done, hold, serve = loop.LOG_DONE, loop.LOG_HOLD, loop.LOG_SERVE
        for what, m, t, seq_no, start in entries:
            if what == done:
                leaves_service(m)
                record = live[m]
                if start >= 0:  # started in the loop (else by ``Sequencer._serve``)
                    record[T_DEQUEUED] = start
                record[SEQ_NO] = seq_no
                record[T_SEQUENCED] = t
                record[WHERE] = SEQUENCED
                to_backlog(m)
            elif what == hold:
                live[m][WHERE] = HELD
            elif what == serve:
                record = live[m]
                record[T_DEQUEUED] = t
                record[WHERE] = IN_SERVICE
                in_service.add(m)
            elif what == loop.LOG_DROP:
                ctx.tally.dropped += 1
                ctx.record.settle(m, DROPPED)
            elif what == loop.LOG_STATE:  # the mode engaged or released (``depth_changed``)
                ctx.record.event(t, EventKind.BACKPRESSURE, ctx.cluster.leader, float(start),
                                 detail={"state": self.states[seq_no]})
            else:
                ctx.tally.rejected += 1
                ctx.record.settle(m, REJECTED)
