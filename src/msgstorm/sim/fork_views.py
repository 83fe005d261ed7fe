"""The nodes' views of a fork chain, compiled: the blocks the gossip kernel logged, applied
in bulk.

Place in the pipeline: inside the simulator, under ``ForkChain.take_logged``
(``sim/forks.py``). The gossip kernel logs a block validated at a node that holds the
block's parent (``GossipState.view_blocks``); after every kernel run the fork chain applies
the log in order. In the Bitcoin preset that is 228,000 connections (38 blocks at 6,000
nodes), each a few list look-ups in Python that together took about a tenth of the run, so
the common case is compiled here: the view's tip moves to a longer branch (a reorg row
where it leaves one), and the blocks now ``confirmations`` deep are finalised.

Written by hand because it is one ordered pass over the log whose every step reads the
view the previous step left (no array library does that), in the style of the kernel's
loops (``jit.borrowing``: only the arrays passed in are read and written). It is the same
rule as ``ForkChain._connect`` and ``_finalize`` for a node that nothing else waits on; a
node that is special (a block waits there for its parent, or its desync gap is open) stops
the pass, and the fork chain applies that row with its own Python, then calls again from
the next row. ``tests/test_sim_fork_views.py`` compares the two on drawn block trees and
logs, and ``tests/test_sim_kernel_mempools.py`` compares whole histories with blocks handed
back one at a time.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from msgstorm.jit import borrowing, nb

__all__ = ["ARRIVAL_ROWS", "FIN_ROWS", "REORG_ROWS", "Rows", "connect_logged"]

# Rows of the outputs: finalized[FIN_*, row] (t, node, height, block) and
# reorgs[REORG_*, row] (t, node, depth, old tip, new tip), as ForkChain's tuples; its
# arrivals are (block, node, t).
FIN_ROWS = 4
REORG_ROWS = 5
ARRIVAL_ROWS = 3
# holds[block, node] of a view that holds the block with its whole branch (fork_tree._HELD).
_HELD = 1


@nb.njit(cache=True, inline="always")
def _ancestor(parent: np.ndarray, height: np.ndarray, block: int, at: int) -> int:
    """The block at height ``at`` on the branch ending at ``block`` (``at`` <= its height)."""
    while height[block] > at:
        block = parent[block]
    return block


@borrowing()
def connect_logged(nodes: np.ndarray, blocks: np.ndarray, ts: np.ndarray, start: int, special: np.ndarray,
                   tip: np.ndarray, final_height: np.ndarray, parent: np.ndarray, height: np.ndarray,
                   holds: np.ndarray, confirmations: int, finalized: np.ndarray, reorgs: np.ndarray,
                   counts: np.ndarray) -> int:
    """Connect ``blocks[i]`` at ``nodes[i]`` (validated at ``ts[i]``) for i from ``start``,
    in order: ``holds`` marks it, the node's ``tip`` moves to it if it is higher (a reorg row
    if the old tip is not its parent and the fork lies below the old tip; a view finalises
    again above the fork), and the node finalises the blocks that are now ``confirmations``
    deep in its view that it had not (``final_height``), in height order. Rows are written
    from ``counts[0]`` (finalized) and ``counts[1]`` (reorgs) on, and the counts updated.

    Stops before a row whose node is ``special`` or whose rows might not fit the outputs;
    returns the index of that row (``len(nodes)``: all applied)."""
    n_fin = counts[0]
    n_reorg = counts[1]
    fin_room = finalized.shape[1]
    reorg_room = reorgs.shape[1]
    i = start
    while i < nodes.shape[0]:
        node = nodes[i]
        block = blocks[i]
        old = tip[node]
        # A view finalises at most its whole branch at once, and leaves at most one tip.
        if special[node] or n_fin + max(height[block], height[old]) + 1 > fin_room or n_reorg + 1 > reorg_room:
            break
        t = ts[i]
        holds[block, node] = _HELD
        if height[block] > height[old]:
            if parent[block] != old:
                # The fork point: both branches walked down to the lower height, then together.
                a = _ancestor(parent, height, old, height[block])
                b = _ancestor(parent, height, block, height[old])
                while a != b:
                    a = parent[a]
                    b = parent[b]
                depth = height[old] - height[a]
                if depth > 0:
                    reorgs[0, n_reorg] = t
                    reorgs[1, n_reorg] = node
                    reorgs[2, n_reorg] = depth
                    reorgs[3, n_reorg] = old
                    reorgs[4, n_reorg] = block
                    n_reorg += 1
                    final_height[node] = min(final_height[node], height[old] - depth)
            tip[node] = block
        top_block = tip[node]
        top = height[top_block] - confirmations + 1
        done = final_height[node]
        if top > done:
            b = _ancestor(parent, height, top_block, top)
            for h in range(top, done, -1):  # walked down, written in height order
                row = n_fin + h - done - 1
                finalized[0, row] = t
                finalized[1, row] = node
                finalized[2, row] = h
                finalized[3, row] = b
                b = parent[b]
            n_fin += top - done
            final_height[node] = top
        i += 1
    counts[0] = n_fin
    counts[1] = n_reorg
    return i


class Rows:
    """Rows of a few int64 columns gathered in order, one at a time from Python (``append``,
    ``extend``) or as columns from the pass above (``add_columns``, int64[columns, k]), and
    taken together as int64[columns, n] (``take``): the fork chain's ``block_arrivals``,
    ``finalized`` and ``reorgs`` rows on their way to the history, without a Python tuple
    for each of the hundreds of thousands the compiled pass writes."""

    def __init__(self, columns: int) -> None:
        self.columns = columns
        self.loose: list[tuple[int, ...]] = []
        self.chunks: list[np.ndarray] = []
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def append(self, row: tuple[int, ...]) -> None:
        self.loose.append(row)
        self.count += 1

    def extend(self, rows: Sequence[tuple[int, ...]]) -> None:
        self.loose.extend(rows)
        self.count += len(rows)

    def add_columns(self, columns: np.ndarray) -> None:
        """Rows given as columns (kept: the caller must not change them afterwards)."""
        if columns.shape[1]:
            self._fold()
            self.chunks.append(columns)
            self.count += columns.shape[1]

    def take(self) -> np.ndarray:
        """Every row gathered, in order, as int64[columns, n]; the buffer is empty afterwards."""
        self._fold()
        taken = (np.concatenate(self.chunks, axis=1) if len(self.chunks) > 1 else self.chunks[0] if self.chunks
                 else np.zeros((self.columns, 0), dtype=np.int64))
        self.chunks = []
        self.count = 0
        return taken

    def _fold(self) -> None:
        if self.loose:
            self.chunks.append(np.array(self.loose, dtype=np.int64).reshape(-1, self.columns).T)
            self.loose = []
