"""The liquidation priority lane, and the admission gate the throttling controller steers.

Place in the pipeline: inside the simulator, a ``Sequencer`` with two additions, used by
``ShadowNetwork`` only when the scenario sets ``sequencer.lane`` or a controller that sheds
(the plain ``Sequencer`` serves every other run, so their results do not change).

The lane: ``lane.workers`` of the sequencer's workers are reserved for ``lane.kinds``
(liquidations and oracle prices). A lane message skips backpressure and the shared queue
policy: it waits in the lane's own first-come-first-served queue for a lane worker. With
``lane.lend`` an idle lane worker takes the next message of the shared queue, so an unused
share goes to the rest (a lane message arriving then waits for that service to end: the
lane does not pre-empt). Without it the lane is a queue of its own with ``lane.workers``
servers, whatever the rest of the traffic does: M/M/c (M/M/1 for one worker) for Poisson
arrivals and exponential service.

A block share: ``lane.block_share`` of each block's messages (and gas) is offered first to
the lane's kinds that are sequenced and waiting (they wait apart from the rest, in
``lane_sequenced``); the rest fill the block after them, and the lane takes any room they
leave. Within a block messages stay in sequence-number order; across blocks a lane message
may commit before a rest message sequenced earlier. So when a crash or a failover gives the
numbers of uncommitted messages again, it starts above the highest number ever taken into a
block: with a block share, committed sequence numbers are unique but may have gaps.

The gate: ``gate`` (a ``Gate``: ``sim/control.py``'s ``ThrottleController``) may shed an
arrival of a non-essential kind before backpressure sees it (settled ``dropped``).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from heapq import heappush
from typing import Protocol

from msgstorm.history.events import EventKind
from msgstorm.sampling import Sampler
from msgstorm.scenario.schema import MESSAGE_KINDS
from msgstorm.sim.backpressure import Backpressure
from msgstorm.sim.context import SimContext
from msgstorm.sim.policies import QueuePolicy
from msgstorm.sim.sequencer import Sequencer
from msgstorm.sim.state import (
    DROPPED,
    IN_FLIGHT,
    IN_SERVICE,
    KIND,
    QUEUED,
    SEQ_NO,
    SEQUENCED,
    SIZE,
    T_DEQUEUED,
    T_RECEIVED,
    T_SEQUENCED,
    WHERE,
)

__all__ = ["Gate", "LaneSequencer"]


class Gate(Protocol):
    """Decides, per arrival, whether a kind is shed (``sim/control.py``)."""

    def sheds(self, kind: int) -> bool: ...


class LaneSequencer(Sequencer):
    """A sequencer with a reserved lane for some kinds and an optional admission gate."""

    def __init__(self, ctx: SimContext, policy: QueuePolicy, backpressure: Backpressure, service: Sampler,
                 release: Callable[[int, int], None]) -> None:
        super().__init__(ctx, policy, backpressure, service, release)
        lane = ctx.scenario.sequencer.lane
        kinds = frozenset(MESSAGE_KINDS.index(kind) for kind in lane.kinds) if lane else frozenset[int]()
        self.lane_workers = lane.workers if lane is not None else 0
        self.lane_kinds = kinds if self.lane_workers else frozenset[int]()  # kinds the lane's workers take
        self.lend = lane.lend if lane is not None else False
        self.workers -= self.lane_workers  # the shared workers
        self.lane_queue: deque[int] = deque()
        self.on_lane: set[int] = set()  # messages a lane worker is serving
        self.block_share = lane.block_share if lane is not None else 0.0
        self.block_kinds = kinds if self.block_share else frozenset[int]()  # kinds with a share of each block
        self.lane_sequenced: deque[int] = deque()  # sequenced block-share kinds waiting for a block
        self.taken_top = -1  # the highest sequence number taken into a block (with a block share)
        self.gate: Gate | None = None

    # --- intake -------------------------------------------------------------------------

    def holds(self, m: int) -> bool:
        return self.ctx.msgs.live[m][KIND] not in self.lane_kinds  # the lane skips backpressure

    def intake(self, t: int, m: int) -> None:
        record = self.ctx.msgs.live.get(m)
        if record is None or record[WHERE] != IN_FLIGHT:
            return
        kind = record[KIND]
        if kind in self.lane_kinds:
            record[T_RECEIVED] = t
            if len(self.on_lane) < self.lane_workers and not self.lane_queue:
                self._serve_on_lane(t, m)
            else:
                record[WHERE] = QUEUED
                self.lane_queue.append(m)
            return
        if self.gate is not None and self.gate.sheds(kind):
            record[T_RECEIVED] = t
            self.ctx.tally.dropped += 1
            self.ctx.record.settle(m, DROPPED)
            return
        super().intake(t, m)
        if self.lend and self.depth and len(self.on_lane) < self.lane_workers:
            self._lend(t)

    # --- service ------------------------------------------------------------------------

    def _serve_on_lane(self, t: int, m: int) -> None:
        """A lane worker starts on ``m`` (a lane message, or a lent one)."""
        record = self.ctx.msgs.live[m]
        record[T_DEQUEUED] = t
        record[WHERE] = IN_SERVICE
        self.on_lane.add(m)
        self.in_service.add(m)
        events = self.ctx.events
        heappush(events.heap, (t + self.service(), next(events.eid), self._service_done, m,
                               self.ctx.cluster.epoch, 0, 0))

    def _lend(self, t: int) -> None:
        """Idle lane workers take messages from the shared queue, as the shared workers do
        (``Sequencer._start_service``): only what the policy has ready, the same price check,
        and a held message released for each one taken."""
        ready = self.ready
        taken = 0
        while self.depth and len(self.on_lane) < self.lane_workers and (ready is None or ready()):
            m = self.policy.pop()
            self.depth -= 1
            taken += 1
            if self.priced and self._priced_out(m):
                continue
            self._serve_on_lane(t, m)
        self.depth_changed(t)
        if self.held and taken and not self.backpressure.suspended:
            self._release_held(t, taken)

    def _start_service(self, t: int) -> None:
        super()._start_service(t)
        if self.lend and self.depth and len(self.on_lane) < self.lane_workers:
            self._lend(t)

    def _service_done(self, t: int, m: int, epoch: int, c: int, d: int) -> None:
        if m not in self.on_lane:
            super()._service_done(t, m, epoch, c, d)
            if self.block_kinds and self.sequenced and self.sequenced[-1] == m \
                    and self.ctx.msgs.live[m][KIND] in self.block_kinds:
                self.lane_sequenced.append(self.sequenced.pop())  # it waits for the lane's block share
            return
        if epoch != self.ctx.cluster.epoch:
            return  # the sequencer crashed while serving it (reset emptied on_lane)
        self.on_lane.discard(m)
        self.in_service.discard(m)
        record = self.ctx.msgs.live[m]
        record[SEQ_NO] = self.next_seq
        self.next_seq += 1
        record[T_SEQUENCED] = t
        record[WHERE] = SEQUENCED
        (self.lane_sequenced if record[KIND] in self.block_kinds else self.sequenced).append(m)
        if self.on_sequenced is not None:
            self.on_sequenced(t, m)
        if self.lane_queue:
            self._serve_on_lane(t, self.lane_queue.popleft())
        elif self.lend and self.depth:
            self._lend(t)

    def wake(self, t: int) -> None:
        """A gated policy has messages ready: idle shared workers, then idle lent lane
        workers, take them."""
        super().wake(t)
        if self.lend and self.depth and len(self.on_lane) < self.lane_workers:
            self._lend(t)

    # --- blocks -------------------------------------------------------------------------

    def take_block(self, max_messages: int, max_gas: int | None, gas_of: list[int],
                   header_size: int) -> tuple[list[int], int, int]:
        """The lane's sequenced messages first, up to its share of the block's messages and
        gas; then the rest in what is left (the lane's unused share included); then the lane
        again in whatever room the rest left. Sorted by sequence number."""
        if not self.block_share:
            return super().take_block(max_messages, max_gas, gas_of, header_size)
        take: list[int] = []
        used = [0, header_size]  # gas, bytes
        share_gas = None if max_gas is None else math.floor(self.block_share * max_gas)
        self._fill(self.lane_sequenced, take, math.ceil(self.block_share * max_messages), share_gas, gas_of, used)
        self._fill(self.sequenced, take, max_messages, max_gas, gas_of, used)
        self._fill(self.lane_sequenced, take, max_messages, max_gas, gas_of, used)
        live = self.ctx.msgs.live
        take.sort(key=lambda m: live[m][SEQ_NO])
        if take:
            self.taken_top = max(self.taken_top, live[take[-1]][SEQ_NO])
        return take, used[0], used[1]

    def _fill(self, waiting: deque[int], take: list[int], most_messages: int, most_gas: int | None,
              gas_of: list[int], used: list[int]) -> None:
        """Move messages from ``waiting`` into ``take`` while the block holds fewer than
        ``most_messages`` and its gas stays within ``most_gas``."""
        live = self.ctx.msgs.live
        while waiting and len(take) < most_messages:
            record = live[waiting[0]]
            g = gas_of[record[KIND]]
            if most_gas is not None and used[0] + g > most_gas:
                break
            take.append(waiting.popleft())
            used[0] += g
            used[1] += record[SIZE]

    def block_backlog(self) -> int:
        """Sequenced messages waiting for block space (the lane's included)."""
        return len(self.sequenced) + len(self.lane_sequenced)

    # --- crashes, samples, the end --------------------------------------------------------

    def reset(self) -> list[int]:
        live = self.ctx.msgs.live
        heads = [live[waiting[0]][SEQ_NO] for waiting in (self.sequenced, self.lane_sequenced) if waiting]
        orphans = super().reset()  # in_service holds the lane's messages too
        if heads:
            # Their numbers are given again, but none a block already holds (a gap then).
            self.next_seq = max(min(heads), self.taken_top + 1)
        orphans.extend(self.lane_queue)
        orphans.extend(self.lane_sequenced)
        self.lane_queue.clear()
        self.lane_sequenced.clear()
        self.on_lane.clear()
        return orphans

    def renumber_from(self, seq_no: int) -> None:
        super().renumber_from(seq_no)
        self.next_seq = max(self.next_seq, self.taken_top + 1)  # never a number a block holds

    def sample(self, t: int) -> None:
        super().sample(t)
        record, leader = self.ctx.record, self.ctx.cluster.leader
        if self.lane_workers:
            record.event(t, EventKind.LANE_DEPTH, leader, float(len(self.lane_queue)))
        if self.block_kinds:
            # The lane's sequenced messages waiting for a block (the block_backlog sample
            # counts the rest's).
            record.event(t, EventKind.LANE_BLOCK_BACKLOG, leader, float(len(self.lane_sequenced)))

    def idle(self) -> bool:
        return super().idle() and not self.lane_queue and not self.on_lane and not self.lane_sequenced
