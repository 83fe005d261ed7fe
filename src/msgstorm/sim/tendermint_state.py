"""Round-based BFT consensus (``sim/tendermint.py``): each node's round state, the values
every part of the protocol shares, and what the protocol needs of the block tree.

Place in the pipeline: under ``TendermintBook`` (``sim/tendermint.py``), which runs the
paper's upon-rules over a ``RoundState`` per node; ``sim/forks.py`` and ``sim/fork_tree.py``
read the vote and block-part values. ``RoundState`` holds Algorithm 1's variables (Buchman,
Kwon, Milosevic, "The latest gossip on BFT consensus").
"""

from __future__ import annotations

from math import fsum
from typing import Protocol

__all__ = ["ANY", "BLOCK_PART_BYTES", "MAX_PARTS", "NEW_HEIGHT", "NIL", "PART_ITEM_BASE",
           "PRECOMMIT", "PRECOMMIT_STEP", "PREVOTE", "PREVOTE_STEP", "PROPOSAL", "PROPOSE",
           "ConsensusChain", "RoundState", "block_parts", "voting_powers"]

NIL = -1  # a vote for no block
ANY = -2  # the votes of a height, round and kind for any block (their column's key)
BLOCK_PART_BYTES = 65536  # CometBFT's BlockPartSizeBytes (types/params.go)
# A block part's gossip item: PART_ITEM_BASE + block × MAX_PARTS + part index (above the
# proposal and vote items, which start at ``item_base``, 1 << 40).
PART_ITEM_BASE = 1 << 41
MAX_PARTS = 1 << 16
PROPOSAL, PREVOTE, PRECOMMIT = 0, 1, 2  # a consensus message's kind
NEW_HEIGHT, PROPOSE, PREVOTE_STEP, PRECOMMIT_STEP = 0, 1, 2, 3  # a round's step


def block_parts(size_bytes: int) -> list[int]:
    """The sizes of a block's parts: whole parts of ``BLOCK_PART_BYTES``, the last the rest."""
    count = max(1, -(-size_bytes // BLOCK_PART_BYTES))
    return [BLOCK_PART_BYTES] * (count - 1) + [size_bytes - BLOCK_PART_BYTES * (count - 1)]


def voting_powers(shares: list[float]) -> list[int]:
    """Integer voting powers: the shares themselves when whole, else millionths of the total."""
    if all(float(s).is_integer() for s in shares):
        return [int(s) for s in shares]
    total = fsum(shares)
    return [max(1, round(s / total * 1_000_000)) for s in shares]


class ConsensusChain(Protocol):
    """What the protocol needs of the block tree (``ForkChain``)."""

    block_height: list[int]
    contents: list[list[int]]  # each block's messages

    def propose_block(self, t: int, node: int, parent: int) -> int: ...

    def holds_block(self, node: int, block: int) -> bool: ...

    def block_arrived(self, node: int, block: int) -> bool: ...

    def fetch_block(self, t: int, node: int, block: int, sender: int) -> None: ...

    def receive_block(self, t: int, node: int, block: int, sender: int = -1) -> None: ...

    def committed_block(self, t: int, node: int, height: int, block: int, first: bool) -> None: ...

    def mempool_left(self, node: int) -> int: ...


class RoundState:
    """One node's round state (Algorithm 1's variables) and what it received at its height."""

    __slots__ = ("awaiting", "catching", "fired", "future", "height", "last_block", "last_commit_t",
                 "locked_round", "locked_value", "node", "proposals", "round", "round_voters", "step",
                 "valid_round", "valid_value", "validator")

    def __init__(self, node: int, validator: int) -> None:
        self.node = node
        self.validator = validator  # index among the validators; -1: a full node
        self.height = 1
        self.round = 0
        self.step = NEW_HEIGHT
        self.last_block = 0  # the block committed at height - 1 (0: genesis)
        self.last_commit_t = -1
        self.catching = False
        self.future: dict[int, list[int]] = {}  # height -> messages (or -(block + 1): a proposal block held)
        self._reset()

    def _reset(self) -> None:
        self.locked_value = NIL
        self.locked_round = -1
        self.valid_value = NIL
        self.valid_round = -1
        self.round_voters: dict[int, set[int]] = {}
        self.proposals: dict[int, tuple[int, int]] = {}  # round -> (block, valid round)
        self.awaiting: dict[int, list[tuple[int, int]]] = {}  # block -> (round, valid round) proposed, not held
        self.fired: set[tuple[int, int]] = set()  # (rule line, round) that fire once

    def next_height(self, block: int) -> None:
        self.height += 1
        self.round = 0
        self.step = NEW_HEIGHT
        self.last_block = block
        self._reset()
