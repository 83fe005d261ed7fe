"""Finality by votes: validators vote for blocks, a two-thirds quorum of stake finalises them.

Place in the pipeline: inside the simulator, a part of ``ForkChain`` (``sim/forks.py``)
when the scenario sets ``blocks.producers.finality = "votes"`` (beside the longest-chain
rule, ``"depth"``). The producers are the validators, each with its stake (its share).

- An honest validator votes once per height: for the first block at that height it holds
  with its whole branch (connects to its view). Its vote is an item of the gossip network
  (a block-like item of ``vote_size`` bytes, id ``VOTE_ITEM_BASE + vote``), so it pays
  links, uplinks, validation and partitions as blocks do.
- A byzantine voter (an ``equivocate_votes`` fault, ``sim/equivocation.py``) votes for
  every block made at each height while its window is open, both of two conflicting blocks
  included: it is the adversary's, which hears of each block as it is made, and its votes
  reach every node directly (a link's delay away) over paths a partition does not cut,
  as a second instance of its identity on the other side would (the Twins method). A
  withholding voter (``withhold_votes``) casts no vote at all.
- Twins (a ``twins`` fault, ``sim/twins.py``): a second instance of a validator runs at a
  host node, with the validator's identity; each instance is honest on its own (one vote
  per height, for the first block its node connects), and the twin's votes leave from its
  host as any vote does. A twin also produces: in its validator's turn it makes a block
  from its host's view (``ForkChain._produce``). On two sides of a partition the two vote for different blocks at
  one height, and each side counts the validator's stake.
- Every node counts the votes it has received (each voter once per block, its own vote at
  once): when the voters of a block hold more than two thirds of the total stake, the node
  finalises it, a row of the ``finalized`` table (``analysis/safety.py`` reads it, for both
  rules). Two quorums of more than 2/3 share more than 1/3 of the stake, so with byzantine
  stake below 1/3 an honest validator would have voted twice at one height to finalise
  two blocks there: safety holds; at more than 1/3, equivocating voters can finalise two
  blocks at a height, one on each side of a split. Liveness needs more than 2/3 honest
  stake reachable: a partition with no side above 2/3 finalises nothing until it heals.
  Votes lost to it are not sent again, unless ``resend_votes`` is set: then when it heals
  (``healed``) every honest vote cast since it began is gossiped again from where it was
  cast, so the heights voted on during the cut can still reach a quorum.

Each vote cast is a row of the ``votes`` table (``t, voter, height, block``).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from math import fsum

from msgstorm.sim.context import SimContext
from msgstorm.sim.gossip import GossipState
from msgstorm.sim.kernel import ITEM_BLOCK
from msgstorm.sim.links import LinkState

__all__ = ["VOTE_ITEM_BASE", "VoteBook", "is_quorum"]

# Vote items share the gossip kernel's block item kind; their ids start here, above any block id.
VOTE_ITEM_BASE = 1 << 40


def is_quorum(stake: float, total: float) -> bool:
    """More than two thirds of the total stake (3 × stake > 2 × total: no rounding of 2/3)."""
    return 3 * stake > 2 * total


class VoteBook:
    def __init__(self, ctx: SimContext, gossip: GossipState, links: LinkState, validators: list[int],
                 shares: list[float], vote_size: int, height_of: Callable[[int], int],
                 finalized: Callable[[int, int, int, int], None], resend: bool = False) -> None:
        """``height_of``: a block's height; ``finalized(t, node, height, block)``: a node
        finalised a block (the chain writes the row); ``resend``: send votes again when a
        partition heals."""
        self.ctx = ctx
        self.gossip = gossip
        self.links = links
        self.stake = dict(zip(validators, shares, strict=True))
        self.total = fsum(shares)
        self.vote_size = vote_size
        self.height_of = height_of
        self.on_final = finalized
        self.voted: dict[int, set[int]] = {v: set() for v in validators}  # validator -> heights voted
        self.byzantine: set[int] = set()  # validators inside an equivocate_votes window
        self.withholding: set[int] = set()  # validators inside a withhold_votes window: no vote
        self.twins: dict[int, set[int]] = {}  # host node -> validators a second instance of runs there
        self.twin_voted: dict[tuple[int, int], set[int]] = {}  # (host, validator) -> heights its twin voted
        self.vote_voter: list[int] = []
        self.vote_block: list[int] = []
        self.resend = resend
        self.vote_origin: list[int] = []  # with resend: where each vote was cast, and when
        self.vote_t: list[int] = []
        self.resent = 0
        self.voters: dict[tuple[int, int], set[int]] = {}  # (node, block) -> voters it has seen
        self.final: set[tuple[int, int]] = set()  # (node, block) finalised
        self.cast: list[tuple[int, int, int, int]] = []  # (t, voter, height, block): the votes table

    # --- casting -------------------------------------------------------------------------------

    def connected(self, t: int, node: int, block: int) -> None:
        """``node`` holds ``block`` and its branch: an honest validator's one vote at its
        height, and that of each twin the node hosts."""
        if self.twins:
            self._twins_connected(t, node, block)
        heights = self.voted.get(node)
        if heights is None or node in self.byzantine or node in self.withholding:
            return
        height = self.height_of(block)
        if height not in heights:
            heights.add(height)
            self._cast(t, node, block, height)

    def _twins_connected(self, t: int, node: int, block: int) -> None:
        """Each twin running at ``node`` votes as its validator, honestly, from ``node``."""
        for validator in sorted(self.twins.get(node, ())):
            if validator in self.byzantine or validator in self.withholding:
                continue
            heights = self.twin_voted.setdefault((node, validator), set())
            height = self.height_of(block)
            if height not in heights:
                heights.add(height)
                self._cast(t, validator, block, height, origin=node)

    def twin_hosts(self, validator: int) -> list[int]:
        """The nodes a twin of ``validator`` runs at, in node order."""
        return sorted(host for host, validators in self.twins.items() if validator in validators)

    def made(self, t: int, block: int) -> None:
        """A block was made: every byzantine voter votes for it."""
        height = self.height_of(block)
        for voter in sorted(self.byzantine - self.withholding):
            if self.ctx.cluster.up[voter]:
                self.voted[voter].add(height)
                self._cast(t, voter, block, height)

    def _cast(self, t: int, voter: int, block: int, height: int, origin: int | None = None) -> None:
        """``voter``'s vote, sent from ``origin`` (its own node unless a twin casts it)."""
        origin = voter if origin is None else origin
        vote = len(self.vote_voter)
        self.vote_voter.append(voter)
        self.vote_block.append(block)
        if self.resend:
            self.vote_origin.append(origin)
            self.vote_t.append(t)
        self.cast.append((t, voter, height, block))
        self._count(t, origin, vote)
        cluster = self.ctx.cluster
        if voter in self.byzantine:
            links = self.links
            for node in range(cluster.size):
                if node != voter:
                    d = links.delay(voter, node)
                    if d is None:  # lost: the adversary sends it again, about a base latency later
                        d = 2 * links.base_ns[links.region_of[voter]][links.region_of[node]]
                    self.ctx.events.push(t + d, self._direct, node, vote)
        elif not cluster.isolated[origin]:
            self.gossip.inject(t, origin, VOTE_ITEM_BASE + vote, ITEM_BLOCK, self.vote_size)

    def healed(self, t: int, since: int) -> None:
        """A partition that began at ``since`` healed at ``t``: with ``resend``, every vote an
        honest voter cast since then is gossiped again from where it was cast (a byzantine
        voter's reach every node already). Nodes that had a vote count it once."""
        if not self.resend:
            return
        cluster = self.ctx.cluster
        for vote in range(bisect_left(self.vote_t, since), len(self.vote_t)):
            origin = self.vote_origin[vote]
            if self.vote_voter[vote] in self.byzantine or not cluster.up[origin] or cluster.isolated[origin]:
                continue
            self.gossip.inject(t, origin, VOTE_ITEM_BASE + vote, ITEM_BLOCK, self.vote_size)
            self.resent += 1

    def _direct(self, t: int, node: int, vote: int, _c: int, _d: int) -> None:
        if self.ctx.cluster.up[node]:
            self._count(t, node, vote)

    # --- counting ------------------------------------------------------------------------------

    def received(self, t: int, node: int, item: int) -> None:
        """``node`` validated the vote item ``item`` (gossiped)."""
        self._count(t, node, item - VOTE_ITEM_BASE)

    def _count(self, t: int, node: int, vote: int) -> None:
        block = self.vote_block[vote]
        key = (node, block)
        if key in self.final:
            return
        voters = self.voters.setdefault(key, set())
        voters.add(self.vote_voter[vote])
        # fsum over the voters in order: the same total whatever order the votes came in.
        if is_quorum(fsum(self.stake[v] for v in sorted(voters)), self.total):
            self.final.add(key)
            del self.voters[key]
            self.on_final(t, node, self.height_of(block), block)

    def take_rows(self) -> list[tuple[int, int, int, int]]:
        rows, self.cast = self.cast, []
        return rows
