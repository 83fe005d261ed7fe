"""What a block carries into the gossip kernel, and compact relay's sizes.

Place in the pipeline: inside the simulator, between the block makers (the sequencer's
chain, ``sim/chain.py`` through ``MessageState.contents``; the producers, ``sim/forks.py``)
and the gossip state (``sim/gossip.py``), which stores a block's messages for the kernel
to rebuild it from under compact relay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["BlockContents", "CompactRelay", "compact_nodes"]


@dataclass(frozen=True)
class BlockContents:
    """The messages a block carries: their msg_ids and sizes in bytes (int64 each), in block
    order. The sequencer's chain and the producers pass it with every block they send.
    ``held_everywhere``: more messages of the block that every node counts as held (a relay
    sample's unsampled ones, sim/sampled_pool.py): a compact block carries their short ids,
    and no node asks for them."""

    msg_ids: np.ndarray
    sizes: np.ndarray
    held_everywhere: int = 0

    @classmethod
    def of(cls, msg_ids: list[int], sizes: list[int]) -> BlockContents:
        return cls(np.asarray(msg_ids, dtype=np.int64), np.asarray(sizes, dtype=np.int64))


@dataclass(frozen=True)
class CompactRelay:
    """Compact block relay's sizes and fan-out: a compact block is ``header_bytes`` plus
    ``short_id_bytes`` per message; a node sends it unasked to ``high_bandwidth`` peers and
    announces it to the rest. ``rebuild_failure``: the share of compact blocks a node cannot
    rebuild although it holds every message listed, each then one getblocktxn round trip."""

    header_bytes: int
    short_id_bytes: int
    high_bandwidth: int
    rebuild_failure: float = 0.0

    def size(self, messages: int) -> int:
        return self.header_bytes + self.short_id_bytes * messages


def compact_nodes(n: int, share: float, rng: np.random.Generator) -> np.ndarray | None:
    """Which of ``n`` nodes speak compact relay: ``share`` of them, rounded half up, drawn
    without replacement (a permutation of ``rng``), as a bool per node; None (no draw) when
    every node does."""
    speaking = math.floor(share * n + 0.5)
    if speaking >= n:
        return None
    flags = np.zeros(n, dtype=bool)
    flags[rng.permutation(n)[:speaking]] = True
    return flags
