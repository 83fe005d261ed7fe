"""The ``equivocate`` fault: a byzantine producer makes two conflicting blocks at each height.

Place in the pipeline: inside the simulator, a ``FaultKind`` the fault injector
(``sim/fault_injector.py``) applies when the fault comes due. Its start puts the named
producer in ``ForkChain.equivocating`` and its end takes it out; while it is there, every
block the producer makes is made twice and split between its peers (``sim/forks.py``).
Both are written as ``fault_start`` / ``fault_end`` events naming the node, which is how
``analysis/safety.py`` knows which nodes were not honest.
"""

from __future__ import annotations

from typing import Any

from msgstorm.faults.schedule import FaultOp
from msgstorm.history.events import EventKind
from msgstorm.scenario.registry import FAULT_KINDS
from msgstorm.scenario.schema import EquivocateFault
from msgstorm.sim.fault_injector import FaultInjector
from msgstorm.sim.forks import ForkChain

__all__ = ["Equivocate"]


def _producer(injector: FaultInjector, op: FaultOp) -> tuple[ForkChain, int]:
    spec = op.spec
    assert isinstance(spec, EquivocateFault)
    chain = injector.chain
    if not isinstance(chain, ForkChain):  # refused at validation (scenario/refs.py)
        raise ValueError("an equivocate fault needs [blocks.producers]")
    return chain, injector.ctx.cluster.index[spec.node]


@FAULT_KINDS.register("equivocate")
class Equivocate:
    @staticmethod
    def start(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, Any]) -> None:
        chain, node = _producer(injector, op)
        chain.equivocating.add(node)
        injector.ctx.record.event(t, EventKind.FAULT_START, node, detail=detail)

    @staticmethod
    def end(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, Any]) -> None:
        chain, node = _producer(injector, op)
        chain.equivocating.discard(node)
        injector.ctx.record.event(t, EventKind.FAULT_END, node, detail=detail)
