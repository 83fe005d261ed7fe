"""The ``eclipse`` fault: an attacker holds every connection of one target node.

Place in the pipeline: inside the simulator, a ``FaultKind`` the fault injector
(``sim/fault_injector.py``) applies when the fault comes due. For its window every link of
the target ``node`` runs through the attacker. Without ``delay`` the attacker passes nothing
either way: the target is a group of its own in a partition (``LinkState.start_partition``,
in Python and in the gossip kernel's colours), so its view halts while the others go on,
and what it alone holds stays with it. With ``delay`` the attacker passes everything
``delay`` late: every link touching the target is degraded by that latency (the one link
model's ``Degradations``, ``sim/link_model.py``), so its view lags. At the end its links
are as before; the target catches up as a partitioned node does. Both events name the
target in ``detail["eclipsed"]`` (not ``"byzantine"``: the target is honest, and the safety
checker keeps counting it).

Surrounded (``attackers`` named, or ``count`` drawn with the run's seed among the other
nodes, ``FaultInjector.fault_nodes``): the target's gossip peers are replaced by the
attackers (``GossipState.surround``: it forwards to them alone, they forward to it, no one
else does), and the attackers act as byzantine relays: they withhold the messages of
``kinds`` (the gossip kernel's ``WATCH_CENSOR``, as ``censor_nodes`` does, ``sim/censor.py``)
and hold every item they forward ``delay`` (``WATCH_HOLD``, as ``delay_nodes`` does,
``sim/byzantine_relay.py``). So the target sees exactly what they pass, that late, and what
it sends of those kinds goes no further than them. They do this to everything they relay,
not to the target's traffic alone: their other peers have other paths. The events list the
attackers in ``detail["byzantine"]``. One surrounding eclipse at a time (two at once are refused at validation): its end restores
the overlay the topology made.
"""

from __future__ import annotations

from msgstorm.faults.schedule import FaultOp
from msgstorm.history.events import EventKind
from msgstorm.scenario.registry import FAULT_KINDS
from msgstorm.scenario.schema import DegradeFault, EclipseFault, PartitionFault
from msgstorm.sim.fault_injector import FaultInjector

__all__ = ["Eclipse", "attackers"]


def attackers(injector: FaultInjector, op: FaultOp) -> list[int]:
    """A surrounding eclipse's attackers: those named, else ``count`` drawn among the nodes
    other than the target."""
    spec = op.spec
    assert isinstance(spec, EclipseFault)
    index = injector.ctx.cluster.index
    target = index[spec.node]
    return injector.fault_nodes(op, [v for v in range(injector.ctx.cluster.size) if v != target],
                                names=spec.attackers)


def _surround(injector: FaultInjector, op: FaultOp, on: bool, detail: dict[str, object]) -> None:
    spec = op.spec
    assert isinstance(spec, EclipseFault)
    gossip = injector.gossip
    nodes = attackers(injector, op)
    gossip.surround(injector.ctx.cluster.index[spec.node], nodes if on else None)
    for node in nodes:
        if spec.kinds:
            gossip.set_censoring(node, on)
        if spec.delay is not None:
            gossip.set_holding(node, spec.delay if on else 0, 0)
    detail["byzantine"] = [injector.ctx.cluster.names[node] for node in nodes]


@FAULT_KINDS.register("eclipse")
class Eclipse:
    @staticmethod
    def start(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, object]) -> None:
        spec = op.spec
        assert isinstance(spec, EclipseFault)
        index = injector.ctx.cluster.index
        if spec.surrounds:
            _surround(injector, op, True, detail)
        elif spec.delay is None:
            # Built from validated values (model_construct: nanoseconds, not a duration's text).
            cut = PartitionFault.model_construct(kind="partition", at=spec.at, duration=spec.duration, groups=[[spec.node]])
            injector.links.start_partition(op.fault_id, cut, index)
            injector.gossip.set_colours(injector.links.colour)
        else:
            late = DegradeFault.model_construct(kind="degrade", at=spec.at, duration=spec.duration, between=None,
                                                nodes=[spec.node], latency=spec.delay, jitter=0, loss=0.0)
            injector.links.start_degrade(op.fault_id, late, index)
            injector.gossip.degradations_changed()
        detail["eclipsed"] = spec.node
        injector.ctx.record.event(t, EventKind.FAULT_START, index[spec.node], detail=detail)

    @staticmethod
    def end(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, object]) -> None:
        spec = op.spec
        assert isinstance(spec, EclipseFault)
        if spec.surrounds:
            _surround(injector, op, False, detail)
        elif spec.delay is None:
            injector.links.end_partition(op.fault_id)
            injector.gossip.set_colours(injector.links.colour)
            injector.healed(t, spec.at)
        else:
            injector.links.end_degrade(op.fault_id)
            injector.gossip.degradations_changed()
        detail["eclipsed"] = spec.node
        injector.ctx.record.event(t, EventKind.FAULT_END, injector.ctx.cluster.index[spec.node], detail=detail)
