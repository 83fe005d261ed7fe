"""The ``twins`` fault: two running instances of one validator's identity (the Twins method).

Place in the pipeline: inside the simulator, a ``FaultKind`` the fault injector
(``sim/fault_injector.py``) applies when the fault comes due, under finality by votes
(``sim/votes.py``). From its start to its end a second instance of each validator of
``nodes`` runs at the matching node of ``hosts``: the vote book's ``twins`` map says which
instances a node hosts, and each votes honestly with its validator's identity and stake
from there. Neither instance equivocates on its own; placed on two sides of a partition,
they vote for the two sides' blocks, so the validator's stake counts on both. Twinned
validators are byzantine identities: both events list them in ``detail["byzantine"]``
(with their share of the stake at the start, as byzantine voters' events do), which the
safety checker and the quorum bound read; the hosts stay honest. A twin produces as its
validator does: in the validator's turn it makes a block on its host's view from what its
host validated since it started (the host keeps a mempool from then on), so on two sides
of a partition the validator makes a block on each side at one height.
"""

from __future__ import annotations

from msgstorm.faults.schedule import FaultOp
from msgstorm.history.events import EventKind
from msgstorm.scenario.registry import FAULT_KINDS
from msgstorm.scenario.schema import TwinsFault
from msgstorm.sim.fault_injector import FaultInjector
from msgstorm.sim.forks import ForkChain
from msgstorm.sim.votes import VoteBook

__all__ = ["Twins"]


def _book(injector: FaultInjector, op: FaultOp) -> tuple[VoteBook, list[tuple[int, int]]]:
    """The vote book, and the (validator, host) pairs of the fault."""
    spec = op.spec
    assert isinstance(spec, TwinsFault)
    chain = injector.chain
    if not isinstance(chain, ForkChain) or chain.votes is None:  # refused at validation (scenario/refs.py)
        raise ValueError('twins need [blocks.producers] with finality = "votes"')
    index = injector.ctx.cluster.index
    return chain.votes, [(index[node], index[host]) for node, host in zip(spec.nodes, spec.hosts, strict=True)]


@FAULT_KINDS.register("twins")
class Twins:
    @staticmethod
    def start(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, object]) -> None:
        book, pairs = _book(injector, op)
        chain = injector.chain
        assert isinstance(chain, ForkChain)
        for validator, host in pairs:
            book.twins.setdefault(host, set()).add(validator)
            chain.keep_mempool(host)
        names = injector.ctx.cluster.names
        detail["byzantine"] = [names[v] for v, _ in pairs]
        detail["stake"] = {names[v]: book.stake[v] / book.total for v, _ in pairs}
        injector.ctx.record.event(t, EventKind.FAULT_START, detail=detail)

    @staticmethod
    def end(injector: FaultInjector, t: int, op: FaultOp, detail: dict[str, object]) -> None:
        book, pairs = _book(injector, op)
        for validator, host in pairs:
            hosted = book.twins.get(host, set())
            hosted.discard(validator)
            if not hosted:
                book.twins.pop(host, None)
        detail["byzantine"] = [injector.ctx.cluster.names[v] for v, _ in pairs]
        injector.ctx.record.event(t, EventKind.FAULT_END, detail=detail)
