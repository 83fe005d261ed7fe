"""The ``delay_nodes`` and ``reorder_nodes`` faults: byzantine relays that hold what they forward.

Place in the pipeline: inside the simulator, ``FaultKind``s the fault injector
(``sim/fault_injector.py``) applies when the fault comes due. From its start to its end each
byzantine node (named, or ``count`` drawn with the run's seed, ``faults/schedule.py``'s
``drawn_nodes``) validates every item that reaches it as before, then holds it before it
forwards it: ``delay`` plus a uniform draw in [0, ``jitter``) (``delay_nodes``), or a uniform
draw in [0, ``window``) (``reorder_nodes``: items validated less than ``window`` apart leave
in a shuffled order). The gossip kernel does the holding (``WATCH_HOLD`` on the node, its
``N_HOLD`` and ``N_HOLD_SPREAD``, ``sim/kernel.py``), with draws from the kernel's seeded
uniforms taken only at holding nodes, so runs without such a fault are unchanged. The hold is
on what the node serves as well as on what it pushes: under announce and fetch (and compact
relay) its announcements leave at the release, and a request that comes sooner (a peer's
fallback, which asks any peer that validated the item) is answered at the release
(``release`` in the kernel, a column per holding node). A node in two such faults at once holds as the later one says until
either ends. Both events name the nodes in ``detail["byzantine"]``.
"""

from __future__ import annotations

from msgstorm.faults.schedule import FaultOp
from msgstorm.history.events import EventKind
from msgstorm.scenario.registry import FAULT_KINDS
from msgstorm.scenario.schema import DelayNodesFault, ReorderNodesFault
from msgstorm.sim.fault_injector import FaultInjector

__all__ = ["DelayNodes", "ReorderNodes", "holding_nodes"]


def holding_nodes(injector: FaultInjector, op: FaultOp) -> list[int]:
    """The nodes a ``delay_nodes`` or ``reorder_nodes`` fault makes hold: named, else ``count`` drawn."""
    assert isinstance(op.spec, DelayNodesFault | ReorderNodesFault)
    return injector.fault_nodes(op)


def _hold(spec: DelayNodesFault | ReorderNodesFault) -> tuple[int, int]:
    """(fixed hold ns, width of the drawn hold ns)."""
    if isinstance(spec, DelayNodesFault):
        return spec.delay, spec.jitter
    return 0, spec.window


class _Holding:
    @staticmethod
    def start(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, object]) -> None:
        assert isinstance(op.spec, DelayNodesFault | ReorderNodesFault)
        hold_ns, spread_ns = _hold(op.spec)
        nodes = holding_nodes(injector, op)
        for node in nodes:
            injector.gossip.set_holding(node, hold_ns, spread_ns)
        detail["byzantine"] = [injector.ctx.cluster.names[node] for node in nodes]
        injector.ctx.record.event(t, EventKind.FAULT_START, detail=detail)

    @staticmethod
    def end(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, object]) -> None:
        nodes = holding_nodes(injector, op)
        for node in nodes:
            injector.gossip.set_holding(node, 0, 0)
        detail["byzantine"] = [injector.ctx.cluster.names[node] for node in nodes]
        injector.ctx.record.event(t, EventKind.FAULT_END, detail=detail)


@FAULT_KINDS.register("delay_nodes")
class DelayNodes(_Holding):
    """Hold each item ``delay`` plus a draw in [0, ``jitter``) before forwarding it."""


@FAULT_KINDS.register("reorder_nodes")
class ReorderNodes(_Holding):
    """Hold each item a draw in [0, ``window``) before forwarding it."""
