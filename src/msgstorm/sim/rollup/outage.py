"""A sequencer outage (``sequencer_outage``, sim): the sequencer takes no message for a window.

Place in the pipeline: a fault kind (``scenario/registry.py``'s ``FAULT_KINDS``) applied by the
simulator's fault injector. At ``at`` the sequencer's workers stop taking messages: their
slots drop to none, so every arrival queues behind the queue policy, in order (the Arbitrum
One outage of January 2022 kept the accepted transactions in order); the messages already
being executed finish. At the end the slots come back and the workers take the backlog at
their service rate. The fault's end event records the backlog (``value``: messages queued then),
and the analysis (``analysis/outage.py``) how long the drain took.

Forced inclusion (the rule: ``rules/forced_inclusion.py``, shared with the live rollup): while
it is down, a message of the kinds ``via_l1`` goes through L1 instead (Arbitrum's delayed inbox,
OP's deposits): it is in the next L1 block, at ``t_l1 = (t // slot + 1) x slot``
(``rollup.l1.slot``; 12 s without ``[rollup]``), and the chain puts it in the L2 sequence at
``t_l1 + window`` (the fault's, else the rollup's ``forced_inclusion_window``), past the workers; if the sequencer returns first, it takes the
ones still waiting into its queue then, in the order they reached L1. Each is a
``forced_inclusion`` event at the time it entered the L2 sequence (a queued one's when a
worker sequenced it, behind the backlog: ``Sequencer.when_sequenced``).

With ``lose_unposted`` the sequencer loses, when it goes down, what it accepted and no batch
on L1 holds: here the messages in its queue and the sequenced ones in no block
(``Sequencer.take_unposted``), each ``dropped`` and counted in an ``unposted_lost`` event;
the soft-confirmed ones whose batch had not reached L1 by then are known only once the
batcher has run on the L2 blocks, so the rollup stage drops them (``unposted.py``).
"""

from __future__ import annotations

from msgstorm.faults.schedule import FaultOp
from msgstorm.history.events import EventKind
from msgstorm.rules.forced_inclusion import forced_time, l1_block_time
from msgstorm.scenario.faults import SequencerOutageFault
from msgstorm.scenario.kinds import MESSAGE_KINDS
from msgstorm.scenario.registry import FAULT_KINDS
from msgstorm.sim.fault_injector import FaultInjector
from msgstorm.sim.state import DROPPED, HELD, WHERE

__all__ = ["DEFAULT_L1_SLOT_NS", "SequencerOutage", "ViaL1"]

DEFAULT_L1_SLOT_NS = 12_000_000_000


class ViaL1:
    """The users who go through L1 while the sequencer is down: the messages they sent, each
    waiting for its forced inclusion."""

    def __init__(self, injector: FaultInjector, spec: SequencerOutageFault) -> None:
        self.injector = injector
        self.kinds = frozenset(MESSAGE_KINDS.index(kind) for kind in spec.via_l1)
        rollup = injector.ctx.scenario.rollup
        self.slot = DEFAULT_L1_SLOT_NS if rollup is None else rollup.l1.slot
        self.window = spec.window_ns(rollup)
        self.waiting: dict[int, int] = {}  # msg_id -> t_l1, in the order they reached L1
        self.taken: dict[int, int] = {}  # msg_id -> t_l1 of those the returning sequencer queued
        self.previous = injector.sequencer.divert  # what stood in front of the sequencer (an express lane)

    def divert(self, t: int, m: int, kind: int) -> bool:
        if kind not in self.kinds:
            return self.previous is not None and self.previous(t, m, kind)
        t_l1 = l1_block_time(t, self.slot)
        self.injector.ctx.msgs.live[m][WHERE] = HELD
        self.waiting[m] = t_l1
        self.injector.ctx.events.push(forced_time(t_l1, self.window), self.force, m)
        return True

    def force(self, t: int, m: int, _b: int, _c: int, _d: int) -> None:
        """The window after its L1 block: the chain includes it by itself."""
        t_l1 = self.waiting.pop(m, None)
        if t_l1 is None:
            return  # the returning sequencer took it first
        self.injector.sequencer.sequence_now(t, m)
        self.injector.ctx.record.event(t, EventKind.FORCED_INCLUSION, value=float(m),
                                       detail={"t_l1": t_l1, "forced": True})

    def returned(self, t: int) -> None:
        """The sequencer is back: it takes the ones still waiting, in their L1 order, into its
        queue behind the backlog; each one's event is written when it enters the sequence."""
        sequencer = self.injector.sequencer
        for m, t_l1 in sorted(self.waiting.items(), key=lambda item: (item[1], item[0])):
            if t_l1 > t:
                continue  # not in an L1 block yet: the sequencer takes it as it arrives (below)
            self.taken[m] = t_l1
            sequencer.when_sequenced(m, self.sequenced)
            sequencer.enqueue(t, m)
            del self.waiting[m]
        for m in list(self.waiting):
            self.injector.sequencer.enqueue(t, m)  # sent to L1 but not yet in a block: resent to the sequencer
            del self.waiting[m]

    def sequenced(self, t: int, m: int) -> None:
        """A message the returning sequencer took from L1 entered the L2 sequence at ``t``."""
        self.injector.ctx.record.event(t, EventKind.FORCED_INCLUSION, value=float(m),
                                       detail={"t_l1": self.taken.pop(m), "forced": False})


@FAULT_KINDS.register("sequencer_outage")
class SequencerOutage:
    """Take every worker slot of the sequencer away for the window, then give them back."""

    @staticmethod
    def start(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, object]) -> None:
        assert isinstance(op.spec, SequencerOutageFault)
        sequencer = injector.sequencer
        if not injector.outages:  # overlapping outages: the first saves the slots, the last gives them back
            injector.outage_slots = [pool.slots for pool in sequencer.pools]
            if op.spec.via_l1:
                via = ViaL1(injector, op.spec)
                injector.via_l1 = via
                sequencer.divert_with(via.divert)
        injector.outages.add(op.fault_id)
        for pool in sequencer.pools:
            pool.slots = 0
        injector.ctx.record.event(t, EventKind.FAULT_START, injector.ctx.cluster.leader, detail=detail)
        if op.spec.lose_unposted:
            SequencerOutage.lose_queued(injector, t, op.fault_id)

    @staticmethod
    def lose_queued(injector: FaultInjector, t: int, fault_id: int) -> None:
        """What the sequencer accepted and put in no block is gone: each message dropped."""
        lost = injector.sequencer.take_unposted()
        ctx = injector.ctx
        for m in lost:
            ctx.tally.dropped += 1
            ctx.record.settle(m, DROPPED)
        injector.sequencer.depth_changed(t)
        ctx.record.event(t, EventKind.UNPOSTED_LOST, ctx.cluster.leader, float(len(lost)),
                         detail={"fault_id": fault_id, "stage": "queued", "msg_ids": lost})

    @staticmethod
    def end(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, object]) -> None:
        sequencer = injector.sequencer
        injector.outages.discard(op.fault_id)
        if injector.outages:
            return  # another outage still holds it down
        for pool, slots in zip(sequencer.pools, injector.outage_slots, strict=True):
            pool.slots = slots
        backlog = sequencer.depth + sum(len(pool.own) for pool in sequencer.pools)
        detail["backlog"] = backlog
        injector.ctx.record.event(t, EventKind.FAULT_END, injector.ctx.cluster.leader, float(backlog), detail=detail)
        lane = sequencer.pools[1]
        while lane.own and lane.busy < lane.slots:  # a lane's own queue first, as its workers would
            sequencer.serve_own(t, lane)
        sequencer.wake(t)
        via = injector.via_l1
        if via is not None:
            sequencer.divert_with(via.previous)
            injector.via_l1 = None
            via.returned(t)
