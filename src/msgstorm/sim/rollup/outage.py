"""A sequencer outage (``sequencer_outage``, sim): the sequencer takes no message for a window.

Place in the pipeline: a fault kind (``scenario/registry.py``'s ``FAULT_KINDS``) applied by the
simulator's fault injector. At ``at`` the sequencer's workers stop taking messages: their
slots drop to none, so every arrival queues behind the queue policy, in order (the Arbitrum
One outage of January 2022 kept the accepted transactions in order); the messages already
being executed finish. At the end the slots come back and the workers take the backlog at
their service rate. The fault's end event records the backlog (``value``: messages queued then),
and the analysis (``analysis/outage.py``) how long the drain took.
"""

from __future__ import annotations

from typing import Any

from msgstorm.faults.schedule import FaultOp
from msgstorm.history.events import EventKind
from msgstorm.scenario.faults import SequencerOutageFault
from msgstorm.scenario.registry import FAULT_KINDS
from msgstorm.sim.fault_injector import FaultInjector

__all__ = ["SequencerOutage"]


@FAULT_KINDS.register("sequencer_outage")
class SequencerOutage:
    """Take every worker slot of the sequencer away for the window, then give them back."""

    @staticmethod
    def start(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, Any]) -> None:
        assert isinstance(op.spec, SequencerOutageFault)
        sequencer = injector.sequencer
        if not injector.outages:  # overlapping outages: the first saves the slots, the last gives them back
            injector.outage_slots = [pool.slots for pool in sequencer.pools]
        injector.outages.add(op.fault_id)
        for pool in sequencer.pools:
            pool.slots = 0
        injector.ctx.record.event(t, EventKind.FAULT_START, injector.ctx.cluster.leader, detail=detail)

    @staticmethod
    def end(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, Any]) -> None:
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
