"""The ``equivocate`` fault: a byzantine producer makes two conflicting blocks at each height.

Place in the pipeline: inside the simulator, a ``FaultKind`` the fault injector
(``sim/fault_injector.py``) applies when the fault comes due. Its start puts the named
producer in ``ForkChain.equivocating`` and its end takes it out; while it is there, every
block the producer makes is made twice and split between its peers (``sim/forks.py``).
Both are written as ``fault_start`` / ``fault_end`` events naming the node, which is how
``analysis/safety.py`` knows which nodes were not honest.

The ``equivocate_votes`` fault makes validators byzantine voters under finality by votes
(``sim/votes.py``): named, or a count drawn with the run's seed. Its ``fault_start`` /
``fault_end`` events list them in ``detail["byzantine"]``, which the safety checker reads.
"""

from __future__ import annotations

from typing import Any

from msgstorm.faults.schedule import FaultOp, drawn_nodes
from msgstorm.history.events import EventKind
from msgstorm.scenario.registry import FAULT_KINDS
from msgstorm.scenario.schema import EquivocateFault, EquivocateVotesFault
from msgstorm.sim.fault_injector import FaultInjector
from msgstorm.sim.forks import ForkChain

__all__ = ["Equivocate", "EquivocateVotes", "byzantine_voters"]


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


def byzantine_voters(injector: FaultInjector, op: FaultOp) -> list[int]:
    """The validators an ``equivocate_votes`` fault makes byzantine: those named, else
    ``count`` drawn with the run's seed (``drawn_nodes``)."""
    spec = op.spec
    assert isinstance(spec, EquivocateVotesFault)
    chain = injector.chain
    if not isinstance(chain, ForkChain) or chain.votes is None:  # refused at validation (scenario/refs.py)
        raise ValueError('an equivocate_votes fault needs [blocks.producers] with finality = "votes"')
    index = injector.ctx.cluster.index
    if spec.nodes:
        return [index[name] for name in spec.nodes]
    assert spec.count is not None
    return drawn_nodes(injector.ctx.scenario.run.seed, op.fault_id, chain.producers, spec.count)


@FAULT_KINDS.register("equivocate_votes")
class EquivocateVotes:
    @staticmethod
    def start(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, Any]) -> None:
        voters = byzantine_voters(injector, op)
        chain = injector.chain
        assert isinstance(chain, ForkChain) and chain.votes is not None
        chain.votes.byzantine.update(voters)
        detail["byzantine"] = [injector.ctx.cluster.names[v] for v in voters]
        # Each one's share of the validators' stake: the analysis sets it against the quorum bound.
        detail["stake"] = {injector.ctx.cluster.names[v]: chain.votes.stake[v] / chain.votes.total for v in voters}
        injector.ctx.record.event(t, EventKind.FAULT_START, detail=detail)

    @staticmethod
    def end(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, Any]) -> None:
        voters = byzantine_voters(injector, op)
        chain = injector.chain
        assert isinstance(chain, ForkChain) and chain.votes is not None
        chain.votes.byzantine.difference_update(voters)
        detail["byzantine"] = [injector.ctx.cluster.names[v] for v in voters]
        injector.ctx.record.event(t, EventKind.FAULT_END, detail=detail)
