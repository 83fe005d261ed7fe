"""The ``censor_nodes`` fault: byzantine nodes that withhold messages of some kinds.

Place in the pipeline: inside the simulator, a ``FaultKind`` the fault injector
(``sim/fault_injector.py``) applies when the fault comes due. From its start to its end
each censoring node (named, or ``count`` drawn with the run's seed, ``faults/schedule.py``'s
``drawn_nodes``) validates the censored messages that reach it (those of the fault's
``kinds``, sent by its ``agents`` when it names some) but forwards none of them (and serves none to a peer that asks): the gossip kernel's ``WATCH_CENSOR``
bit on the node and ``ITEM_CENSORABLE`` on those messages (``sim/kernel.py``). A censoring
producer (``[blocks.producers]``, ``sim/forks.py``) also leaves them out of its blocks.
Other messages pass through it as before, so a censoring node that is the only path to some
nodes cuts them off from exactly the censored messages; with a second path they go round it.

Messages travel as censorable only in a run that has a ``censor_nodes`` fault
(``censorable``: a table of the (kind, agent) pairs some fault censors), so runs without
one are unchanged. The kernel has one bit for all the faults: a node censoring for one
fault withholds what any of them censors while it does (faults with different kinds or
agents on different nodes at once are the exception, not the rule). Both events name the censoring
nodes in ``detail["byzantine"]``, which the safety checker reads.
"""

from __future__ import annotations

import numpy as np

from msgstorm.faults.schedule import FaultOp, concrete_faults
from msgstorm.history.events import EventKind
from msgstorm.scenario.kinds import MESSAGE_KINDS
from msgstorm.scenario.registry import FAULT_KINDS
from msgstorm.scenario.schema import CensorNodesFault, EclipseFault, Scenario
from msgstorm.sim.fault_injector import FaultInjector
from msgstorm.sim.forks import ForkChain

__all__ = ["CensorNodes", "censorable", "censored_by", "censoring_nodes"]


def censored_by(spec: CensorNodesFault | EclipseFault, agent_names: list[str]) -> np.ndarray:
    """What one fault censors: bool[kind code, agent index], the fault's ``kinds`` sent by
    its ``agents`` (every agent's when it names none; an eclipse's attackers withhold
    ``kinds`` whoever sent them)."""
    table = np.zeros((len(MESSAGE_KINDS), len(agent_names)), dtype=np.bool_)
    named = spec.agents if isinstance(spec, CensorNodesFault) else None
    agents = ([i for i, name in enumerate(agent_names) if name in named] if named is not None
              else list(range(len(agent_names))))
    for kind in spec.kinds:
        table[MESSAGE_KINDS.index(kind), agents] = True
    return table


def censorable(scenario: Scenario, agent_names: list[str]) -> np.ndarray | None:
    """What some ``censor_nodes`` fault, or a surrounding eclipse's attackers, of the scenario
    censor (bool[kind code, agent index], ``censored_by``'s union), or None in a run without one."""
    tables = [censored_by(spec, agent_names) for spec, _ in concrete_faults(scenario)
              if isinstance(spec, CensorNodesFault) or (isinstance(spec, EclipseFault) and spec.kinds)]
    return np.logical_or.reduce(tables) if tables else None


def censoring_nodes(injector: FaultInjector, op: FaultOp) -> list[int]:
    """The nodes a ``censor_nodes`` fault makes censor: those named, else ``count`` drawn."""
    assert isinstance(op.spec, CensorNodesFault)
    return injector.fault_nodes(op)


def _apply(injector: FaultInjector, op: FaultOp, on: bool, detail: dict[str, object]) -> None:
    spec = op.spec
    assert isinstance(spec, CensorNodesFault)
    nodes = censoring_nodes(injector, op)
    chain = injector.chain
    for node in nodes:
        injector.gossip.set_censoring(node, on)
        if isinstance(chain, ForkChain):
            chain.set_censoring(node, censored_by(spec, injector.ctx.msgs.agent_names) if on else None)
    detail["byzantine"] = [injector.ctx.cluster.names[node] for node in nodes]


@FAULT_KINDS.register("censor_nodes")
class CensorNodes:
    @staticmethod
    def start(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, object]) -> None:
        _apply(injector, op, True, detail)
        injector.ctx.record.event(t, EventKind.FAULT_START, detail=detail)

    @staticmethod
    def end(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, object]) -> None:
        _apply(injector, op, False, detail)
        injector.ctx.record.event(t, EventKind.FAULT_END, detail=detail)
