"""The fault injector: scheduled faults applied to the shadow network as they come due.

Place in the pipeline: inside the simulator, one role of ``ShadowNetwork`` (the sim's
nemesis). ``faults/schedule.py`` turns the scenario's faults into start and end operations;
``start`` schedules each as a Python event, and each is applied here and written to the
history: partitions and degradations change the links (in Python and in the gossip
kernel), a crash takes a node down (the leader's crash empties the sequencer and starts a
failover), a restart brings it back.

Each kind is a ``FaultKind`` registered under its name in ``FAULT_KINDS``
(``scenario/registry.py``): a new kind is one such class (here or in a file of its own)
and its spec in the scenario schema.
"""

from __future__ import annotations

from typing import Any, Protocol

from msgstorm.faults.schedule import FaultOp, drawn_nodes, fault_schedule
from msgstorm.history.events import EventKind
from msgstorm.scenario.registry import FAULT_KINDS
from msgstorm.scenario.schema import CrashFault, DegradeFault, PartitionFault
from msgstorm.sim.chain import Chain
from msgstorm.sim.context import SimContext
from msgstorm.sim.forks import ForkChain
from msgstorm.sim.gossip import GossipState
from msgstorm.sim.links import LinkState
from msgstorm.sim.lone_cpu import LoneCpu
from msgstorm.sim.sequencer import Sequencer

__all__ = ["Crash", "Degrade", "FaultInjector", "FaultKind", "Partition"]


class FaultInjector:
    def __init__(self, ctx: SimContext, links: LinkState, gossip: GossipState, sequencer: Sequencer,
                 chain: Chain | ForkChain, lone: LoneCpu) -> None:
        self.ctx = ctx
        self.links = links
        self.gossip = gossip
        self.sequencer = sequencer
        self.chain = chain
        self.lone = lone
        self.ops: list[FaultOp] = fault_schedule(ctx.scenario)
        self.crashed_by_fault: dict[int, int] = {}
        # Sequencer outages under way (sim/rollup/outage.py) and the worker slots they took away.
        self.outages: set[int] = set()
        self.outage_slots: list[int] = []
        self.via_l1: Any = None  # an outage's users going through L1 (sim/rollup/outage.py's ViaL1)
        self.active: set[int] = set()  # fault ids started and not ended

    def fault_nodes(self, op: FaultOp, pool: list[int] | None = None, names: list[str] | None = None) -> list[int]:
        """The nodes a fault acts on: those it names (``names``, by default its ``nodes``), else
        ``count`` of ``pool`` (every node by default) drawn with the run's seed and the fault's id."""
        if names is None:
            names = getattr(op.spec, "nodes", None) or []
        if names:
            return [self.ctx.cluster.index[name] for name in names]
        count = getattr(op.spec, "count", None)
        assert count is not None  # a fault names its nodes or a count (scenario/schema.py)
        everyone = list(range(self.ctx.cluster.size)) if pool is None else pool
        return drawn_nodes(self.ctx.scenario.run.seed, op.fault_id, everyone, count)

    def start(self) -> None:
        for index, op in enumerate(self.ops):
            self.ctx.events.push(op.t_ns, self._apply, index)

    def _apply(self, t: int, index: int, _b: int, _c: int, _d: int) -> None:
        op = self.ops[index]
        spec = op.spec
        if op.action == "start":
            self.active.add(op.fault_id)
        else:
            self.active.discard(op.fault_id)
        detail: dict[str, object] = {"fault_id": op.fault_id, **spec.model_dump(mode="json"),
                                  **({"from_entry": op.source} if op.source is not None else {})}
        kind: FaultKind = FAULT_KINDS[spec.kind]
        (kind.start if op.action == "start" else kind.end)(self, t, op, detail)

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

    def healed(self, t: int, since: int) -> None:
        """Links cut since ``since`` are whole again at ``t``: votes lost to the cut may be
        sent again (``blocks.producers.resend_votes``, sim/votes.py), and round-based
        consensus's peers send each other what they lack (sim/tendermint_gossip.py)."""
        if isinstance(self.chain, ForkChain):
            self.chain.healed(t, since)

    def restart(self, t: int, node: int) -> None:
        cluster = self.ctx.cluster
        if cluster.up[node]:
            return
        cluster.up[node] = True
        self.gossip.set_up(node, True, t)
        self.lone.restarted(t, node)
        self.chain.node_up(node, t)
        self.ctx.record.event(t, EventKind.NODE_UP, node)
        if node == cluster.leader:
            self.sequencer.depth_changed(t)  # the sequencer is back: held senders may resume


class FaultKind(Protocol):
    """What one kind of fault does at its start and end. Each writes its ``fault_start``
    or ``fault_end`` event (``detail`` holds the spec and ``fault_id``)."""

    @staticmethod
    def start(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, object]) -> None: ...

    @staticmethod
    def end(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, object]) -> None: ...


@FAULT_KINDS.register("partition")
class Partition:
    """Cut the links between groups (colours), in Python and in the kernel."""

    @staticmethod
    def start(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, object]) -> None:
        assert isinstance(op.spec, PartitionFault)
        injector.links.start_partition(op.fault_id, op.spec, injector.ctx.cluster.index)
        injector.gossip.set_colours(injector.links.colour)
        injector.ctx.record.event(t, EventKind.FAULT_START, detail=detail)

    @staticmethod
    def end(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, object]) -> None:
        injector.links.end_partition(op.fault_id)
        injector.gossip.set_colours(injector.links.colour)
        injector.ctx.record.event(t, EventKind.FAULT_END, detail=detail)
        injector.healed(t, op.spec.at)


@FAULT_KINDS.register("degrade")
class Degrade:
    """Add latency, jitter and loss to links (one ``Degradations`` read by both sides)."""

    @staticmethod
    def start(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, object]) -> None:
        assert isinstance(op.spec, DegradeFault)
        injector.links.start_degrade(op.fault_id, op.spec, injector.ctx.cluster.index)
        injector.gossip.degradations_changed()
        injector.ctx.record.event(t, EventKind.FAULT_START, detail=detail)

    @staticmethod
    def end(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, object]) -> None:
        injector.links.end_degrade(op.fault_id)
        injector.gossip.degradations_changed()
        injector.ctx.record.event(t, EventKind.FAULT_END, detail=detail)


@FAULT_KINDS.register("crash")
class Crash:
    """Take a node down ("sequencer": whichever node leads then); restart it at the end."""

    @staticmethod
    def start(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, object]) -> None:
        assert isinstance(op.spec, CrashFault)
        cluster = injector.ctx.cluster
        node = cluster.leader if op.spec.node == "sequencer" else cluster.index[op.spec.node]
        injector.crashed_by_fault[op.fault_id] = node
        detail["node_index"] = node
        injector.ctx.record.event(t, EventKind.FAULT_START, node, detail=detail)
        injector.crash(t, node)

    @staticmethod
    def end(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, object]) -> None:
        node = injector.crashed_by_fault.get(op.fault_id, -1)
        injector.ctx.record.event(t, EventKind.FAULT_END, None if node < 0 else node, detail=detail)
        if node >= 0:
            injector.restart(t, node)
