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
"""

from __future__ import annotations

from typing import Any

from msgstorm.faults.schedule import FaultOp
from msgstorm.history.events import EventKind
from msgstorm.scenario.registry import FAULT_KINDS
from msgstorm.scenario.schema import DegradeFault, EclipseFault, PartitionFault
from msgstorm.sim.fault_injector import FaultInjector

__all__ = ["Eclipse"]


@FAULT_KINDS.register("eclipse")
class Eclipse:
    @staticmethod
    def start(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, Any]) -> None:
        spec = op.spec
        assert isinstance(spec, EclipseFault)
        index = injector.ctx.cluster.index
        if spec.delay is None:
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
    def end(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, Any]) -> None:
        spec = op.spec
        assert isinstance(spec, EclipseFault)
        if spec.delay is None:
            injector.links.end_partition(op.fault_id)
            injector.gossip.set_colours(injector.links.colour)
            injector.healed(t, spec.at)
        else:
            injector.links.end_degrade(op.fault_id)
            injector.gossip.degradations_changed()
        detail["eclipsed"] = spec.node
        injector.ctx.record.event(t, EventKind.FAULT_END, injector.ctx.cluster.index[spec.node], detail=detail)
