"""The sequencer: intake, backpressure, the queue policy, workers, held and waiting messages.

Place in the pipeline: inside the simulator, one role of ``ShadowNetwork``. A message the
leader has validated comes to ``intake``; a kind the liquidation lane serves goes to the
lane's workers; any other passes the gate (when a controller sheds) and backpressure,
which admits, drops, rejects or makes it wait (EIP-1559, underpriced); an admitted one
joins the queue policy; workers serve it (a drawn service time) and give it the next
sequence number; it then waits in ``sequenced`` until the ``Chain`` takes it into a block
(``take_block``). Senders that backpressure suspends keep their messages here too
(``held``) and send them again as the queue has room.

One class, built from parts composed at construction and never swapped afterwards:

- admission: the ``Backpressure`` mode, and a ``Gate`` when a controller sheds arrivals
  (``gate_with``; ``sim/control.py``);
- ordering: the ``QueuePolicy`` and its optional hooks, looked up once (``Ordering``:
  a gated policy's ``ready``, a policy told of each sequencing);
- worker pools and the lane (``sim/lane.py``): the shared ``Workers`` and the ``Lane``'s
  (the do-nothing lane when the scenario sets none).

The service loop is written once: ``_take`` is where workers of any pool take messages
from the shared queue, and ``service_done`` is where any worker's service ends. A
service's event carries its pool's index.

Lifecycle: built once per run; ``reset`` empties it when the leader crashes (what it held
goes back in flight); the same object serves whichever node leads. The compiled one-node
loop (``sim/solo.py``) takes its rule tables from this object's policy hooks and
backpressure (``sim/solo_plan.py``), so both loops follow one description of the rules.

The hot path (``intake``, ``_serve``, ``service_done``) is written for speed: locals for
attributes, the sampler's buffer read inline; the comments say where. A hook a policy does
not have, or a lane the scenario does not set, costs a check of an attribute per message.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from heapq import heappush
from typing import Protocol, runtime_checkable

import numpy as np

from msgstorm.history.events import EventKind
from msgstorm.sampling import Sampler
from msgstorm.sim import seq_core
from msgstorm.sim.backpressure import ADMIT, DROP, REJECT, Backpressure
from msgstorm.sim.backpressure import _Base as _NoDepth
from msgstorm.sim.block_packing import BlockFill
from msgstorm.sim.changes import ChangedSamples
from msgstorm.sim.context import SimContext
from msgstorm.sim.fee_wait import FeeWaitList
from msgstorm.sim.lane import SHARED, Lane, Workers, fill_block
from msgstorm.sim.policies import Ordering, QueuePolicy
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

__all__ = ["Gate", "Sequencer"]

# The core's rules (``sim/seq_core.py``), uncompiled: the compiled loops inline the same ones.
_serves_at_once = seq_core.serves_at_once.py_func
_service_time = seq_core.service_time.py_func


@runtime_checkable
class _TakesAll(Protocol):
    def take_all(self) -> tuple[list[int], list[float]]: ...


@runtime_checkable
class _PushesAll(Protocol):
    def push_all(self, msgs: list[int], fees: list[float], t_ns: int) -> None: ...


@runtime_checkable
class _PushesArrays(Protocol):
    def push_arrays(self, msgs: np.ndarray, fees: np.ndarray) -> None: ...


class Gate(Protocol):
    """Decides, per arrival, whether a kind is shed (``sim/control.py``'s throttle)."""

    def sheds(self, kind: int) -> bool: ...


class Sequencer:
    def __init__(self, ctx: SimContext, ordering: Ordering, backpressure: Backpressure, service: Sampler,
                 release: Callable[[int, int], None], lane: Lane | None = None) -> None:
        """``release(t, m)`` sends a held message again (the network's send path); ``lane``
        defaults to the scenario's ``sequencer.lane`` (the do-nothing lane without one)."""
        self.ctx = ctx
        self.ordering = ordering
        self.policy = ordering.policy
        self.backpressure = backpressure
        self.gate: Gate | None = None
        self.divert: Callable[[int, int, int], bool] | None = None
        # msg_id -> what is told, ``told(t, m)``, when the workers give it its sequence number
        # (``when_sequenced``); empty on most runs, and the hot path checks that first.
        self.told: dict[int, Callable[[int, int], None]] = {}
        self.service = service
        # The core's form of a constant service time (``seq_core.service_time``): -1 for none.
        self.service_constant = -1 if service.constant is None else service.constant
        self.release = release
        self.lane = Lane(ctx.scenario.sequencer.lane) if lane is None else lane
        lane_workers = self.lane.workers
        self.shared = Workers(SHARED, ctx.scenario.sequencer.workers - lane_workers.slots, shares=True)
        self.pools = (self.shared, lane_workers)  # by index: a service's event names its pool
        self.lending = lane_workers if lane_workers.shares else None  # a lane that lends takes from the queue too
        # The lane's kinds and sequenced queue, as attributes of their own: the hot path
        # reads them per message.
        self.lane_kinds = self.lane.kinds
        self.block_kinds = self.lane.block_kinds
        self.lane_sequenced = self.lane.sequenced
        self.in_service: set[int] = set()
        self.sequenced: deque[int] = deque()
        self.next_seq = 0
        self.held: deque[int] = deque()  # senders suspended by backpressure
        # Underpriced messages waiting for the base fee to fall, in the order they came: a
        # falling base fee takes the ones it admits, highest fee first, and a queue turned
        # away joins it at once (``_price_out_rest``, ``on_block``).
        self.waiting = FeeWaitList()
        self.depth = 0  # messages in the policy queue (len() on a Python class is slow)
        self.depth_max = 0
        self.samples = ChangedSamples(ctx.record)  # the sampled series, written as they change
        # Only watermark-style modes react to depth; skipping the call keeps the loop lean.
        self.watch_depth = type(backpressure).on_depth is not _NoDepth.on_depth
        self.admits_all = type(backpressure).admit is _NoDepth.admit
        self.priced = type(backpressure).eligible is not _NoDepth.eligible
        # A policy that serves the highest fee first: once the message it gives is priced
        # out, every one behind it is too (``_price_out_rest``).
        self.fee_ordered = ordering.order_key == "fee"
        self.serve_when_idle = ordering.work_conserving and not self.priced
        self.ready = ordering.ready  # a gated policy says how many are ready
        self.on_sequenced = ordering.sequenced  # a policy told of each sequencing
        # Where service completions go: with the other Python events, or on a heap of their
        # own while the leader's intake is read from the gossip kernel's log
        # (``sim/intake_log.py``); either way numbered by the one ``eid`` counter.
        self.service_heap = ctx.events.heap

    def lend_queue(self, queue: QueuePolicy) -> None:
        """``queue`` (the block step's ``ArrayQueue``, ``sim/block_step.py``) holds the
        queue in the policy's order from now on, in the place of the policy (empty: see
        ``seq_core.replaces``), until ``take_queue_back``."""
        self.policy = queue

    def take_queue_back(self) -> None:
        """The policy holds the queue again: what the lent queue holds, in its pop order
        (``push`` of each in that order keeps it)."""
        lent = self.policy
        assert isinstance(lent, _TakesAll), "take_queue_back without a lent queue"
        msgs, fees = lent.take_all()
        policy = self.policy = self.ordering.policy
        for m, fee in zip(msgs, fees, strict=True):
            policy.push(m, fee, 0)

    def divert_with(self, divert: Callable[[int, int, int], bool] | None) -> None:
        """While set, ``divert(t, m, kind)`` may take an arriving message elsewhere (a
        sequencer outage's users going through L1: ``sim/rollup/outage.py``); it returns
        whether it did."""
        self.divert = divert

    def when_sequenced(self, m: int, told: Callable[[int, int], None]) -> None:
        """``told(t, m)`` once a worker gives ``m`` its sequence number (``t``: when it enters
        the sequence), for a message taken into the queue (``enqueue``)."""
        self.told[m] = told

    def gate_with(self, gate: Gate) -> None:
        """A controller sheds arrivals of some kinds before backpressure sees them."""
        self.gate = gate
        self.admits_all = False

    # --- intake -------------------------------------------------------------------------

    def holds(self, m: int) -> bool:
        """Whether suspended senders hold ``m`` (the lane's kinds skip backpressure)."""
        return self.ctx.msgs.live[m][KIND] not in self.lane_kinds

    def hold(self, m: int) -> None:
        """Backpressure suspended the senders: keep the message until they resume."""
        self.ctx.msgs.live[m][WHERE] = HELD
        self.held.append(m)

    def intake(self, t: int, m: int) -> None:
        """The leader validated ``m``: the lane takes it, or it is admitted (or shed,
        dropped, rejected, made to wait)."""
        ctx = self.ctx
        record = ctx.msgs.live.get(m)
        if record is None or record[WHERE] != IN_FLIGHT:
            return  # already settled, or already with the sequencer
        record[T_RECEIVED] = t
        kind = record[KIND]
        if self.divert is not None and self.divert(t, m, kind):
            return
        if kind in self.lane_kinds:
            lane = self.lane.workers
            if lane.busy < lane.slots and not lane.own:
                self._serve(t, m, lane)
            else:
                record[WHERE] = QUEUED
                lane.own.append(m)
            return
        if self.admits_all:
            decision = ADMIT
        elif self.gate is not None and self.gate.sheds(kind):
            decision = DROP
        else:
            decision = self.backpressure.admit(kind, record[FEE], self.depth)
        if decision == ADMIT:
            shared = self.shared
            if _serves_at_once(self.depth, shared.busy, shared.slots, self.serve_when_idle):
                # An idle server and an empty queue: any work-conserving policy would
                # hand this message over at once, so skip the push and pop.
                self._serve(t, m, shared)
                return
            self.policy.push(m, record[FEE], t)
            self.depth += 1
            record[WHERE] = QUEUED
            if shared.busy < shared.slots:
                self._start_service(t)
            else:
                self.depth_changed(t)
        elif decision == DROP:
            ctx.tally.dropped += 1
            ctx.record.settle(m, DROPPED)
        elif decision == REJECT:
            ctx.tally.rejected += 1
            ctx.record.settle(m, REJECTED)
        else:
            record[WHERE] = HELD
            self.waiting.add(record[FEE], m)
        lending = self.lending
        if lending is not None and self.depth and lending.busy < lending.slots:
            self._take(t, lending)

    # --- service ------------------------------------------------------------------------

    def _start_service(self, t: int) -> None:
        """Idle workers take queued messages: the shared workers, then a lane's that lends."""
        self._take(t, self.shared)
        lending = self.lending
        if lending is not None and self.depth and lending.busy < lending.slots:
            self._take(t, lending)

    def _take(self, t: int, pool: Workers) -> None:
        """The service loop: idle workers of ``pool`` take messages from the shared queue,
        as many as the policy has ready (a gated policy says how many; every queued one
        otherwise), each checked against the base fee again (it may have risen while the
        message queued); then a held message is released for each one taken."""
        policy = self.policy
        ready = self.ready
        taken = 0
        while pool.busy < pool.slots and self.depth and (ready is None or ready()):
            m = policy.pop()
            self.depth -= 1
            taken += 1
            if self.priced and self._priced_out(m):
                if self.fee_ordered:
                    taken += self._price_out_rest()
                continue
            self._serve(t, m, pool)
        if self.watch_depth:
            self.depth_changed(t)
        elif self.depth > self.depth_max:
            self.depth_max = self.depth
        if self.held and taken and not self.backpressure.suspended:
            self._release_held(t, taken)  # a held message for each one the workers took

    def _priced_out(self, m: int) -> bool:
        """Whether ``m``, just taken from the queue, is now underpriced: the base fee rose
        while it queued, so it waits or is rejected, as on arrival."""
        record = self.ctx.msgs.live[m]
        if self.backpressure.eligible(record[FEE]):
            return False
        if self.backpressure.priced_out() == REJECT:
            self.ctx.tally.rejected += 1
            self.ctx.record.settle(m, REJECTED)
        else:
            record[WHERE] = HELD
            self.waiting.add(record[FEE], m)
        return True

    def _price_out_rest(self) -> int:
        """The policy serves the highest fee first and its first message was priced out:
        every message behind it has a fee at most that one's (``eligible`` is monotone in
        the fee), so all are priced out now. The same as ``_priced_out`` for each in the
        policy's order, at once: the queue is emptied (the policy's ``take_all``) and the
        waiting ones join the waiting list in one ``update``. Returns how many were taken.

        Written this way because under a base fee that swings around the flood's fees the
        whole queue (tens of thousands of messages) moves to the waiting list and back
        every few blocks: one heap operation and one record touched per message each way
        was most of such a run's time. A fee-ordered policy never reads a record, so its
        messages keep ``QUEUED`` while they wait (only a policy that reads records, fair
        ordering, tells ``HELD`` apart, and it is never fee-ordered)."""
        policy = self.policy
        if isinstance(policy, _TakesAll):
            msgs, fees = policy.take_all()
        else:
            live = self.ctx.msgs.live
            msgs = [policy.pop() for _ in range(self.depth)]
            fees = [live[m][FEE] for m in msgs]
        self.depth -= len(msgs)
        if self.backpressure.priced_out() == REJECT:
            ctx = self.ctx
            ctx.tally.rejected += len(msgs)
            for m in msgs:
                ctx.record.settle(m, REJECTED)
        else:
            self.waiting.update(msgs, fees)
        return len(msgs)

    def _serve(self, t: int, m: int, pool: Workers) -> None:
        """A worker of ``pool`` starts on ``m``; its service ends after a drawn service time."""
        ctx = self.ctx
        record = ctx.msgs.live[m]
        record[T_DEQUEUED] = t
        record[WHERE] = IN_SERVICE
        pool.busy += 1
        self.in_service.add(m)
        service = self.service
        constant = self.service_constant
        if constant < 0 and service.index >= len(service.buffer):
            service.refill()
        duration, service.index = _service_time(service.buffer, service.index, constant)
        heappush(self.service_heap, (t + duration, next(ctx.events.eid), self.service_done, m, ctx.cluster.epoch,
                                     pool.index, 0))

    def service_done(self, t: int, m: int, epoch: int, pool_index: int, _d: int) -> None:
        """A worker of the pool ``pool_index`` gave ``m`` its sequence number; it takes the
        next message: from its pool's own queue (a lane's) first, else from the shared queue."""
        if epoch != self.ctx.cluster.epoch:
            return  # the sequencer crashed while serving it
        self.in_service.discard(m)
        pool = self.pools[pool_index]
        pool.busy -= 1
        record = self.ctx.msgs.live[m]
        record[SEQ_NO] = self.next_seq
        self.next_seq += 1
        record[T_SEQUENCED] = t
        record[WHERE] = SEQUENCED
        # A kind with a block share waits for it apart from the rest.
        (self.lane_sequenced if record[KIND] in self.block_kinds else self.sequenced).append(m)
        if self.on_sequenced is not None:
            self.on_sequenced(t, m)  # told before the next message is taken
        if self.told and m in self.told:
            self.told.pop(m)(t, m)
        if pool.own:
            self._serve(t, pool.own.popleft(), pool)
        elif self.depth:
            if pool is self.shared:
                self._start_service(t)
            elif pool.shares:
                self._take(t, pool)

    def sequence_now(self, t: int, m: int) -> None:
        """``m`` is put in the sequence at ``t`` without the workers: a message the chain
        includes by itself (forced inclusion from L1)."""
        record = self.ctx.msgs.live[m]
        record[T_DEQUEUED] = t
        record[SEQ_NO] = self.next_seq
        self.next_seq += 1
        record[T_SEQUENCED] = t
        record[WHERE] = SEQUENCED
        (self.lane_sequenced if record[KIND] in self.block_kinds else self.sequenced).append(m)
        if self.on_sequenced is not None:
            self.on_sequenced(t, m)

    def enqueue(self, t: int, m: int) -> None:
        """``m`` joins the queue policy at ``t`` as an admitted arrival would (no backpressure:
        it was accepted before), and idle workers take what they can."""
        record = self.ctx.msgs.live[m]
        self.policy.push(m, record[FEE], t)
        self.depth += 1
        record[WHERE] = QUEUED
        self.wake(t)

    def serve_own(self, t: int, pool: Workers) -> None:
        """An idle worker of ``pool`` takes the first message of the pool's own queue (a
        lane's), as ``service_done`` does when it frees one."""
        self._serve(t, pool.own.popleft(), pool)

    def wake(self, t: int) -> None:
        """A gated policy has messages ready: idle shared workers, then idle lane workers
        that lend, take them."""
        shared = self.shared
        if self.depth and shared.busy < shared.slots:
            self._start_service(t)
        lending = self.lending
        if lending is not None and self.depth and lending.busy < lending.slots:
            self._take(t, lending)

    def depth_changed(self, t: int) -> None:
        """The queue's depth changed (or the sequencer came back): backpressure may change state."""
        depth = self.depth
        self.depth_max = max(self.depth_max, depth)
        if not self.watch_depth:
            return
        state = self.backpressure.on_depth(depth)
        if state is not None:
            ctx = self.ctx
            ctx.record.event(t, EventKind.BACKPRESSURE, ctx.cluster.leader, float(depth), detail={"state": state})
            if state == "resumed":
                self._release_held(t, self.backpressure.room(depth))

    def _release_held(self, t: int, most: int | None) -> int:
        """Send up to ``most`` held messages again (all when None), oldest first, until
        backpressure suspends the senders again; how many were sent."""
        held = self.held
        backpressure = self.backpressure
        released = 0
        while held and not backpressure.suspended and (most is None or released < most):
            self.release(t, held.popleft())
            released += 1
        return released

    def unstick(self, t: int) -> bool:
        """At a sample: messages are held but nothing is queued or served, so no worker will
        free room (the released ones were lost on the way): release what room allows.
        Whether any was released."""
        if self.held and not self.depth and not self.shared.busy and not self.backpressure.suspended:
            return self._release_held(t, self.backpressure.room(0)) > 0
        return False

    # --- blocks -------------------------------------------------------------------------

    def take_block(self, max_messages: int, max_gas: int | None, gas_of: list[int],
                   header_size: int) -> tuple[list[int], int, int]:
        """Sequenced messages for the next block, in sequence order, up to the block's
        message and gas limits: ``(messages, gas, bytes)``; with a lane's block share, the
        lane's first up to its share (``Lane.take_block``).

        A message is sequenced once: whatever price rule applies was applied before a
        worker took it (``_take``), so every sequenced message is included in turn and,
        without a block share, sequence numbers among committed messages run without gaps."""
        live = self.ctx.msgs.live
        if self.lane.block_share:
            return self.lane.take_block(self.sequenced, live, max_messages, max_gas, gas_of, header_size)
        block = BlockFill(header_size)
        fill_block(self.sequenced, live, block, max_messages, max_gas, gas_of)
        return block.messages, block.gas, block.size_bytes

    def block_backlog(self) -> int:
        """Sequenced messages waiting for block space (a lane's included)."""
        return len(self.sequenced) + len(self.lane_sequenced)

    def on_block(self, t: int, used: int, capacity: int, height: int) -> None:
        """A block was produced: a priced mode moves its base fee and releases waiting
        messages it now admits."""
        base_fee = self.backpressure.on_block(used, capacity, t)
        if base_fee is None:
            return
        self.ctx.record.event(t, EventKind.BASE_FEE, self.ctx.cluster.leader, base_fee, height)
        base_fee = self.backpressure.base_fee
        best = self.waiting.best_fee()
        if best is None or base_fee is None or best < base_fee:
            return
        # Every waiting message the base fee now admits, highest fee first (then arrival).
        policy = self.policy
        if isinstance(policy, _PushesArrays):  # the block step's queue takes them as arrays
            msg_array, fee_array = self.waiting.admitted_arrays(base_fee)
            msgs = msg_array.tolist() if not self.fee_ordered else []
        else:
            msgs, fees = self.waiting.admitted(base_fee)
        if not self.fee_ordered:  # a fee-ordered policy reads no record (``_price_out_rest``)
            live = self.ctx.msgs.live
            for m in msgs:
                live[m][WHERE] = QUEUED
        if isinstance(policy, _PushesArrays):
            policy.push_arrays(msg_array, fee_array)
            self.depth += len(msg_array)
            self._start_service(t)
            return
        if isinstance(policy, _PushesAll):
            policy.push_all(msgs, fees, t)
        else:
            for m, fee in zip(msgs, fees, strict=True):
                policy.push(m, fee, t)
        self.depth += len(msgs)
        self._start_service(t)

    # --- crashes, samples, the end --------------------------------------------------------

    def reset(self) -> list[int]:
        """The leader crashed: empty the queue, the workers, the block backlog, the waiting
        heap and the lane; returns those messages (they go back in flight)."""
        live = self.ctx.msgs.live
        heads = [live[waiting[0]][SEQ_NO] for waiting in (self.sequenced, self.lane_sequenced) if waiting]
        if heads:
            # Sequenced but in no block: their numbers are given again, but none a block
            # already holds (with a block share, a gap then).
            self.next_seq = max(min(heads), self.lane.taken_top + 1)
        orphans: list[int] = []
        while self.depth:
            orphans.append(self.policy.pop())
            self.depth -= 1
        orphans.extend(self.in_service)  # the lane's workers' too
        orphans.extend(self.sequenced)
        orphans.extend(self.waiting.drain())
        orphans.extend(self.lane.reset())
        self.in_service.clear()
        self.sequenced.clear()
        self.shared.busy = 0
        return orphans

    def take_unposted(self) -> list[int]:
        """A sequencer outage that loses what L1 does not hold: the queue, the fee waiting
        list, the lane's own queue and the sequenced messages in no block, in that order, are
        taken out; the ones in service finish (unlike ``reset``, no worker is touched)."""
        taken: list[int] = []
        while self.depth:
            taken.append(self.policy.pop())
            self.depth -= 1
        taken.extend(self.waiting.drain())
        taken.extend(self.lane.workers.own)
        self.lane.workers.own.clear()
        taken.extend(self.sequenced)
        self.sequenced.clear()
        taken.extend(self.lane_sequenced)
        self.lane_sequenced.clear()
        return taken

    def renumber_from(self, seq_no: int) -> None:
        """Blocks from ``seq_no`` on were orphaned: sequence again from there (never a
        number a block holds)."""
        self.next_seq = max(min(self.next_seq, seq_no), self.lane.taken_top + 1)

    def sample(self, t: int) -> bool:
        """Queue samples every ``run.sample_interval``, each series written as it changes
        (``sim/changes.py``); whether the next sample reads the same as this one unless
        something happens first (the max since this one is the depth now)."""
        samples, leader, depth = self.samples, self.ctx.cluster.leader, self.depth
        samples.tick(t)
        samples.write(t, EventKind.QUEUE_DEPTH, leader, float(depth))
        samples.write(t, EventKind.QUEUE_DEPTH_MAX, leader, float(self.depth_max))
        # Sequenced messages still waiting for block space: the backlog a full block leaves.
        samples.write(t, EventKind.BLOCK_BACKLOG, leader, float(len(self.sequenced)))
        settled = self.depth_max == depth
        self.depth_max = depth
        if self.lane.workers.slots:
            samples.write(t, EventKind.LANE_DEPTH, leader, float(len(self.lane.workers.own)))
        if self.block_kinds:
            # The lane's sequenced messages waiting for a block (the block_backlog sample
            # counts the rest's).
            samples.write(t, EventKind.LANE_BLOCK_BACKLOG, leader, float(len(self.lane_sequenced)))
        return settled

    def idle(self) -> bool:
        """Nothing queued, in service, waiting for a block, held or waiting for the fee."""
        return not (self.depth or self.shared.busy or self.sequenced or self.held or self.waiting) \
            and self.lane.idle()
