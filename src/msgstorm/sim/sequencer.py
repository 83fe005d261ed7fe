"""The sequencer: intake, backpressure, the queue policy, workers, held and waiting messages.

Place in the pipeline: inside the simulator, one role of ``ShadowNetwork``. A message the
leader has validated comes to ``intake``; backpressure admits, drops, rejects or makes it
wait (EIP-1559, underpriced); an admitted one joins the queue policy; ``workers`` slots
serve it (a drawn service time) and give it the next sequence number; it then waits in
``sequenced`` until the ``Chain`` takes it into a block (``take_block``). Senders that
backpressure suspends keep their messages here too (``held``) and send them again as the
queue has room.

Lifecycle: built once per run; ``reset`` empties it when the leader crashes (what it held
goes back in flight); the same object serves whichever node leads. The compiled one-node
loop (``sim/solo.py``) takes its rule tables from this object's policy and backpressure,
so both loops follow one description of the rules.

The hot path (``intake``, ``_serve``, ``_service_done``) is written for speed: locals for
attributes, the sampler's buffer read inline; the comments say where.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from heapq import heappop, heappush
from itertools import count

from msgstorm.history.events import EventKind
from msgstorm.sampling import Sampler
from msgstorm.sim.backpressure import ADMIT, DROP, REJECT, Backpressure
from msgstorm.sim.backpressure import _Base as _NoDepth
from msgstorm.sim.context import SimContext
from msgstorm.sim.policies import QueuePolicy
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
    SIZE,
    T_DEQUEUED,
    T_RECEIVED,
    T_SEQUENCED,
    WHERE,
)

__all__ = ["Sequencer"]


class Sequencer:
    def __init__(self, ctx: SimContext, policy: QueuePolicy, backpressure: Backpressure, service: Sampler,
                 release: Callable[[int, int], None]) -> None:
        """``release(t, m)`` sends a held message again (the network's send path)."""
        self.ctx = ctx
        self.policy = policy
        self.backpressure = backpressure
        self.service = service
        self.release = release
        self.workers = ctx.scenario.sequencer.workers
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
        self.watch_depth = type(backpressure).on_depth is not _NoDepth.on_depth
        self.admits_all = type(backpressure).admit is _NoDepth.admit
        self.priced = type(backpressure).eligible is not _NoDepth.eligible
        self.serve_when_idle = getattr(policy, "work_conserving", False) and not self.priced
        # Optional policy hooks (sim/policies.py): a gated policy says how many are ready;
        # one that acts on sequencing is told. Each hooked variant of the hot path is bound
        # here, once, so a policy without the hook costs not even a check per message.
        self.ready: Callable[[], int] | None = getattr(policy, "ready", None)
        self.on_sequenced: Callable[[int, int], None] | None = getattr(policy, "sequenced", None)
        if self.ready is not None:
            self._start_service = self._start_service_gated  # type: ignore[method-assign]
        if self.on_sequenced is not None:
            self._service_done = self._service_done_told  # type: ignore[method-assign]

    # --- intake -------------------------------------------------------------------------

    def holds(self, m: int) -> bool:
        """Whether suspended senders hold ``m`` (a lane's kinds are not held, sim/lane.py)."""
        return True

    def hold(self, m: int) -> None:
        """Backpressure suspended the senders: keep the message until they resume."""
        self.ctx.msgs.live[m][WHERE] = HELD
        self.held.append(m)

    def intake(self, t: int, m: int) -> None:
        """The leader validated ``m``: admit it (or drop, reject, make it wait)."""
        ctx = self.ctx
        record = ctx.msgs.live.get(m)
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
                self.depth_changed(t)
        elif decision == DROP:
            ctx.tally.dropped += 1
            ctx.record.settle(m, DROPPED)
        elif decision == REJECT:
            ctx.tally.rejected += 1
            ctx.record.settle(m, REJECTED)
        else:
            record[WHERE] = HELD
            heappush(self.waiting, (-record[FEE], next(self.waiting_arrivals), m))

    # --- service ------------------------------------------------------------------------

    def _start_service(self, t: int) -> None:
        """Idle workers take queued messages (every queued one is ready)."""
        policy = self.policy
        workers = self.workers
        taken = 0
        while self.busy < workers and self.depth:
            m = policy.pop()
            self.depth -= 1
            taken += 1
            if self.priced and self._priced_out(m):
                continue
            self._serve(t, m)
        if self.watch_depth:
            self.depth_changed(t)
        elif self.depth > self.depth_max:
            self.depth_max = self.depth
        if self.held and taken and not self.backpressure.suspended:
            self._release_held(t, taken)  # a held message for each one the workers took

    def _start_service_gated(self, t: int) -> None:
        """``_start_service`` for a gated policy: only as many as it says are ready. (A copy
        of that loop rather than a check in it: the ungated one is the hot path.)"""
        policy = self.policy
        workers = self.workers
        taken = 0
        ready = self.ready
        assert ready is not None
        while self.busy < workers and self.depth and ready():
            m = policy.pop()
            self.depth -= 1
            taken += 1
            if self.priced and self._priced_out(m):
                continue
            self._serve(t, m)
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
        if self.backpressure.admit(record[KIND], record[FEE], self.depth) == REJECT:
            self.ctx.tally.rejected += 1
            self.ctx.record.settle(m, REJECTED)
        else:
            record[WHERE] = HELD
            heappush(self.waiting, (-record[FEE], next(self.waiting_arrivals), m))
        return True

    def _serve(self, t: int, m: int) -> None:
        """A worker starts on ``m``; its service ends after a drawn service time."""
        ctx = self.ctx
        record = ctx.msgs.live[m]
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
        events = ctx.events
        heappush(events.heap, (t + duration, next(events.eid), self._service_done, m, ctx.cluster.epoch, 0, 0))

    def _service_done(self, t: int, m: int, epoch: int, _c: int, _d: int) -> None:
        if epoch != self.ctx.cluster.epoch:
            return  # the sequencer crashed while serving it
        self.in_service.discard(m)
        self.busy -= 1
        record = self.ctx.msgs.live[m]
        record[SEQ_NO] = self.next_seq
        self.next_seq += 1
        record[T_SEQUENCED] = t
        record[WHERE] = SEQUENCED
        self.sequenced.append(m)
        if self.depth:
            self._start_service(t)

    def _service_done_told(self, t: int, m: int, epoch: int, _c: int, _d: int) -> None:
        """``_service_done`` for a policy that is told each sequencing (its ``sequenced``),
        before the next message is taken. (A copy: the untold one is the hot path.)"""
        if epoch != self.ctx.cluster.epoch:
            return
        self.in_service.discard(m)
        self.busy -= 1
        record = self.ctx.msgs.live[m]
        record[SEQ_NO] = self.next_seq
        self.next_seq += 1
        record[T_SEQUENCED] = t
        record[WHERE] = SEQUENCED
        self.sequenced.append(m)
        assert self.on_sequenced is not None
        self.on_sequenced(t, m)
        if self.depth:
            self._start_service(t)

    def wake(self, t: int) -> None:
        """A gated policy has messages ready: idle workers take them."""
        if self.depth and self.busy < self.workers:
            self._start_service(t)

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

    def _release_held(self, t: int, most: int | None) -> None:
        """Send up to ``most`` held messages again (all when None), oldest first, until
        backpressure suspends the senders again."""
        held = self.held
        backpressure = self.backpressure
        released = 0
        while held and not backpressure.suspended and (most is None or released < most):
            self.release(t, held.popleft())
            released += 1

    def unstick(self, t: int) -> None:
        """At a sample: messages are held but nothing is queued or served, so no worker will
        free room (the released ones were lost on the way): release what room allows."""
        if self.held and not self.depth and not self.busy and not self.backpressure.suspended:
            self._release_held(t, self.backpressure.room(0))

    # --- blocks -------------------------------------------------------------------------

    def take_block(self, max_messages: int, max_gas: int | None, gas_of: list[int],
                   header_size: int) -> tuple[list[int], int, int]:
        """Sequenced messages for the next block, in sequence order, up to the block's
        message and gas limits: ``(messages, gas, bytes)``.

        A message is sequenced once: whatever price rule applies was applied before a
        worker took it (``_start_service``), so every sequenced message is included in
        turn and sequence numbers among committed messages run without gaps."""
        ctx = self.ctx
        live = ctx.msgs.live
        take: list[int] = []
        gas = 0
        size = header_size
        sequenced = self.sequenced
        while sequenced and len(take) < max_messages:
            m = sequenced[0]
            record = live[m]
            g = gas_of[record[KIND]]
            if max_gas is not None and gas + g > max_gas:
                break
            sequenced.popleft()
            take.append(m)
            gas += g
            size += record[SIZE]
        return take, gas, size

    def block_backlog(self) -> int:
        """Sequenced messages waiting for block space."""
        return len(self.sequenced)

    def on_block(self, t: int, used: int, capacity: int, height: int) -> None:
        """A block was produced: a priced mode moves its base fee and releases waiting
        messages it now admits."""
        base_fee = self.backpressure.on_block(used, capacity)
        if base_fee is None:
            return
        self.ctx.record.event(t, EventKind.BASE_FEE, self.ctx.cluster.leader, base_fee, height)
        base_fee = self.backpressure.base_fee
        released = False
        live = self.ctx.msgs.live
        while self.waiting and base_fee is not None and -self.waiting[0][0] >= base_fee:
            _, _, m = heappop(self.waiting)
            record = live[m]
            self.policy.push(m, record[FEE], t)
            self.depth += 1
            record[WHERE] = QUEUED
            released = True
        if released:
            self._start_service(t)

    # --- crashes, samples, the end --------------------------------------------------------

    def reset(self) -> list[int]:
        """The leader crashed: empty the queue, the workers, the block backlog and the
        waiting heap; returns those messages (they go back in flight)."""
        orphans: list[int] = []
        if self.sequenced:
            # Sequenced but in no block: their numbers are given again, without a gap.
            self.next_seq = self.ctx.msgs.live[self.sequenced[0]][SEQ_NO]
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
        return orphans

    def renumber_from(self, seq_no: int) -> None:
        """Blocks from ``seq_no`` on were orphaned: sequence again from there."""
        self.next_seq = min(self.next_seq, seq_no)

    def sample(self, t: int) -> None:
        """Queue samples every ``run.sample_interval``."""
        record, leader, depth = self.ctx.record, self.ctx.cluster.leader, self.depth
        record.event(t, EventKind.QUEUE_DEPTH, leader, float(depth))
        record.event(t, EventKind.QUEUE_DEPTH_MAX, leader, float(self.depth_max))
        # Sequenced messages still waiting for block space: the backlog a full block leaves.
        record.event(t, EventKind.BLOCK_BACKLOG, leader, float(len(self.sequenced)))
        self.depth_max = depth

    def idle(self) -> bool:
        """Nothing queued, in service, waiting for a block, held or waiting for the fee."""
        return not (self.depth or self.busy or self.sequenced or self.held or self.waiting)
