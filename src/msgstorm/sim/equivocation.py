"""The ``equivocate`` fault: a byzantine producer makes two conflicting blocks at each height.

Place in the pipeline: inside the simulator, a ``FaultKind`` the fault injector
(``sim/fault_injector.py``) applies when the fault comes due. Its start puts the named
producer in ``ForkChain.equivocating`` and its end takes it out; while it is there, every
block the producer makes is made twice and split between its peers (``sim/forks.py``).
Both are written as ``fault_start`` / ``fault_end`` events naming the node, which is how
``analysis/safety.py`` knows which nodes were not honest.

The ``equivocate_votes`` and ``withhold_votes`` faults make validators byzantine voters under
finality by votes (``sim/votes.py``), voting for every block or for none: named, or a count
drawn with the run's seed. Its ``fault_start`` /
``fault_end`` events list them in ``detail["byzantine"]``, which the safety checker reads.
"""

from __future__ import annotations

from msgstorm.faults.schedule import FaultOp
from msgstorm.history.events import EventKind
from msgstorm.scenario.registry import FAULT_KINDS
from msgstorm.scenario.schema import EquivocateFault, EquivocateVotesFault, WithholdVotesFault
from msgstorm.sim.fault_injector import FaultInjector
from msgstorm.sim.forks import ForkChain
from msgstorm.sim.votes import VoteBook

__all__ = ["Equivocate", "EquivocateVotes", "WithholdVotes", "byzantine_voters"]


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
    def start(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, object]) -> None:
        chain, node = _producer(injector, op)
        chain.equivocating.add(node)
        injector.ctx.record.event(t, EventKind.FAULT_START, node, detail=detail)

    @staticmethod
    def end(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, object]) -> None:
        chain, node = _producer(injector, op)
        chain.equivocating.discard(node)
        injector.ctx.record.event(t, EventKind.FAULT_END, node, detail=detail)


def byzantine_voters(injector: FaultInjector, op: FaultOp) -> list[int]:
    """The validators an ``equivocate_votes`` or ``withhold_votes`` fault makes byzantine: those named, else
    ``count`` drawn with the run's seed (``drawn_nodes``)."""
    spec = op.spec
    assert isinstance(spec, EquivocateVotesFault | WithholdVotesFault)
    chain = injector.chain
    if not isinstance(chain, ForkChain) or chain.votes is None:  # refused at validation (scenario/refs.py)
        raise ValueError('an equivocate_votes fault needs [blocks.producers] with finality = "votes"')
    return injector.fault_nodes(op, chain.producers)


def _voters_set(chain_votes: VoteBook, kind: str) -> set[int]:
    """The vote book's set a fault of ``kind`` puts its voters in."""
    return chain_votes.byzantine if kind == "equivocate_votes" else chain_votes.withholding


class _ByzantineVotersKind:
    """``equivocate_votes`` and ``withhold_votes``: the voters join their set in the vote book
    at the start and leave it at the end; both events list them (and, at the start, each
    one's share of the validators' stake, which the analysis sets against the quorum bound)."""

    @staticmethod
    def start(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, object]) -> None:
        voters = byzantine_voters(injector, op)
        chain = injector.chain
        assert isinstance(chain, ForkChain) and chain.votes is not None
        _voters_set(chain.votes, op.spec.kind).update(voters)
        names = injector.ctx.cluster.names
        detail["byzantine"] = [names[v] for v in voters]
        detail["stake"] = {names[v]: chain.votes.stake[v] / chain.votes.total for v in voters}
        injector.ctx.record.event(t, EventKind.FAULT_START, detail=detail)

    @staticmethod
    def end(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, object]) -> None:
        voters = byzantine_voters(injector, op)
        chain = injector.chain
        assert isinstance(chain, ForkChain) and chain.votes is not None
        _voters_set(chain.votes, op.spec.kind).difference_update(voters)
        detail["byzantine"] = [injector.ctx.cluster.names[v] for v in voters]
        injector.ctx.record.event(t, EventKind.FAULT_END, detail=detail)


@FAULT_KINDS.register("equivocate_votes")
class EquivocateVotes(_ByzantineVotersKind):
    """Validators vote for every block made at each height (``sim/votes.py``)."""


@FAULT_KINDS.register("withhold_votes")
class WithholdVotes(_ByzantineVotersKind):
    """Validators cast no vote (``sim/votes.py``)."""
