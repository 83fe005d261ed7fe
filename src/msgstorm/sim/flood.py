"""The ``flood_invalid`` fault: byzantine nodes that flood their peers with invalid messages.

Place in the pipeline: inside the simulator, a ``FaultKind`` the fault injector
(``sim/fault_injector.py``) applies when the fault comes due. From its start to its end each
flooding node (named, or ``count`` drawn with the run's seed, ``faults/schedule.py``'s
``drawn_nodes``) sends an invalid message of ``size`` bytes every 1 / ``rate`` (the k-th at
start + k x round(1e9 / rate) ns, none at or after the end, none while the node is down).
It goes out as the network relays ``spam``; each peer that receives it validates it (a
processing draw of its CPU, queued like any other validation) and drops it: it is neither
forwarded nor handed to a sequencer, a mempool or the delivery sample. In the gossip kernel
such an item has the kind ``ITEM_INVALID``, item ids from ``FLOOD_ITEM_BASE`` (apart from
messages, blocks and votes), and a counter of the receivers' validations (``S_INVALID``);
``GossipState.invalid_sent`` counts what was sent, and ``ShadowNetwork.finish`` writes both as one
``flood`` event at the run's end. Runs without the fault send, draw and write nothing new.
Both fault events name the nodes in ``detail["byzantine"]``.
"""

from __future__ import annotations

from dataclasses import dataclass

from msgstorm.faults.schedule import FaultOp
from msgstorm.history.events import EventKind
from msgstorm.scenario.kinds import MESSAGE_KINDS
from msgstorm.scenario.registry import FAULT_KINDS
from msgstorm.scenario.schema import FloodInvalidFault
from msgstorm.sim.fault_injector import FaultInjector
from msgstorm.sim.kernel import ITEM_INVALID

__all__ = ["FLOOD_ITEM_BASE", "FloodInvalid", "flooding_nodes"]

# Item ids of invalid messages: above every message id and below the votes' (sim/votes.py).
FLOOD_ITEM_BASE = 1 << 39
_SPAM = MESSAGE_KINDS.index("spam")


def flooding_nodes(injector: FaultInjector, op: FaultOp) -> list[int]:
    """The nodes a ``flood_invalid`` fault makes flood: those named, else ``count`` drawn."""
    assert isinstance(op.spec, FloodInvalidFault)
    return injector.fault_nodes(op)


@dataclass
class _Flood:
    """One flood fault's sends, scheduled one tick at a time while the fault is active."""

    injector: FaultInjector
    op: FaultOp
    nodes: list[int]
    start_ns: int
    interval_ns: int

    def tick(self, t: int, k: int, _b: int, _c: int, _d: int) -> None:
        injector = self.injector
        if self.op.fault_id not in injector.active:
            return  # the fault ended (its end runs before a tick at the same time)
        spec = self.op.spec
        assert isinstance(spec, FloodInvalidFault)
        up = injector.ctx.cluster.up
        gossip = injector.gossip
        for node in self.nodes:
            if up[node] and not injector.ctx.cluster.isolated[node]:
                gossip.inject(t, node, FLOOD_ITEM_BASE + gossip.invalid_sent, ITEM_INVALID, spec.size, _SPAM)
                gossip.invalid_sent += 1
        injector.ctx.events.push(self.start_ns + (k + 1) * self.interval_ns, self.tick, k + 1)


@FAULT_KINDS.register("flood_invalid")
class FloodInvalid:
    @staticmethod
    def start(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, object]) -> None:
        spec = op.spec
        assert isinstance(spec, FloodInvalidFault)
        nodes = flooding_nodes(injector, op)
        detail["byzantine"] = [injector.ctx.cluster.names[node] for node in nodes]
        injector.ctx.record.event(t, EventKind.FAULT_START, detail=detail)
        flood = _Flood(injector, op, nodes, t, max(1, round(1e9 / spec.rate)))
        injector.ctx.events.push(t, flood.tick, 0)

    @staticmethod
    def end(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, object]) -> None:
        detail["byzantine"] = [injector.ctx.cluster.names[node] for node in flooding_nodes(injector, op)]
        injector.ctx.record.event(t, EventKind.FAULT_END, detail=detail)
