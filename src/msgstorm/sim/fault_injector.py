"""The fault injector: scheduled faults applied to the shadow network as they come due.

Place in the pipeline: inside the simulator, one role of ``ShadowNetwork`` (the sim's
nemesis). ``faults/schedule.py`` turns the scenario's faults into start and end operations;
``start`` schedules each as a Python event, and each is applied here and written to the
history: partitions and degradations change the links (in Python and in the gossip
kernel), a crash takes a node down (the leader's crash empties the sequencer and starts a
failover), a restart brings it back.

A new fault kind is one more branch in ``_apply`` and its spec in the scenario schema.
"""

from __future__ import annotations

from typing import Any

from msgstorm.faults.schedule import FaultOp, fault_schedule
from msgstorm.history.events import EventKind
from msgstorm.scenario.schema import CrashFault, DegradeFault, PartitionFault
from msgstorm.sim.chain import Chain
from msgstorm.sim.context import SimContext
from msgstorm.sim.gossip import GossipState
from msgstorm.sim.links import LinkState
from msgstorm.sim.lone_cpu import LoneCpu
from msgstorm.sim.sequencer import Sequencer

__all__ = ["FaultInjector"]


class FaultInjector:
    def __init__(self, ctx: SimContext, links: LinkState, gossip: GossipState, sequencer: Sequencer,
                 chain: Chain, lone: LoneCpu) -> None:
        self.ctx = ctx
        self.links = links
        self.gossip = gossip
        self.sequencer = sequencer
        self.chain = chain
        self.lone = lone
        self.ops: list[FaultOp] = fault_schedule(ctx.scenario)
        self.crashed_by_fault: dict[int, int] = {}
        self.active: set[int] = set()  # fault ids started and not ended

    def start(self) -> None:
        for index, op in enumerate(self.ops):
            self.ctx.events.push(op.t_ns, self._apply, index)

    def _apply(self, t: int, index: int, _b: int, _c: int, _d: int) -> None:
        op = self.ops[index]
        spec = op.spec
        record = self.ctx.record
        if op.action == "start":
            self.active.add(op.fault_id)
        else:
            self.active.discard(op.fault_id)
        detail: dict[str, Any] = {"fault_id": op.fault_id, **spec.model_dump(mode="json")}
        node_index = self.ctx.cluster.index
        if isinstance(spec, PartitionFault):
            if op.action == "start":
                self.links.start_partition(op.fault_id, spec, node_index)
            else:
                self.links.end_partition(op.fault_id)
            self.gossip.set_colours(self.links.colour)
        elif isinstance(spec, DegradeFault):
            if op.action == "start":
                self.links.start_degrade(op.fault_id, spec, node_index)
                side, between, latency, jitter, loss = self.links.degrades[op.fault_id]
                self.gossip.add_degrade(op.fault_id, side, between, latency, jitter, loss)
            else:
                self.links.end_degrade(op.fault_id)
                self.gossip.remove_degrade(op.fault_id)
        elif isinstance(spec, CrashFault):
            if op.action == "start":
                node = self.ctx.cluster.leader if spec.node == "sequencer" else node_index[spec.node]
                self.crashed_by_fault[op.fault_id] = node
                detail["node_index"] = node
                record.event(t, EventKind.FAULT_START, node, detail=detail)
                self.crash(t, node)
                return
            node = self.crashed_by_fault.get(op.fault_id, -1)
            record.event(t, EventKind.FAULT_END, None if node < 0 else node, detail=detail)
            if node >= 0:
                self.restart(t, node)
            return
        record.event(t, EventKind.FAULT_START if op.action == "start" else EventKind.FAULT_END, detail=detail)

    def crash(self, t: int, node: int) -> None:
        cluster = self.ctx.cluster
        if not cluster.up[node]:
            return
        cluster.up[node] = False
        self.gossip.set_up(node, False, t)
        self.ctx.record.event(t, EventKind.NODE_DOWN, node)
        self.chain.node_down(node)
        if node != cluster.leader:
            return
        cluster.epoch += 1
        self.ctx.msgs.back_in_flight(self.sequencer.reset())
        # Depth is re-evaluated when a sequencer is back (failover or restart): resuming
        # held senders now would send their messages into a dead sequencer.
        self.chain.leader_down(t, node)

    def restart(self, t: int, node: int) -> None:
        cluster = self.ctx.cluster
        if cluster.up[node]:
            return
        cluster.up[node] = True
        self.gossip.set_up(node, True, t)
        self.lone.restarted(t, node)
        self.chain.node_up(node)
        self.ctx.record.event(t, EventKind.NODE_UP, node)
        if node == cluster.leader:
            self.sequencer.depth_changed(t)  # the sequencer is back: held senders may resume
