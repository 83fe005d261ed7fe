"""The block tree of producers across the nodes, each node's view of it, and the rows
the views write (``block_arrivals``, ``finalized``, ``reorgs``, ``votes``).

Place in the pipeline: inside the simulator, under ``sim/forks.py``, whose ``ForkChain``
extends ``ForkTree`` with the producers, the canonical chain and its commits, and the
mempools; ``ForkTree`` holds the state of both. A node's view is the longest chain among
the blocks it validated (a tie keeps the tip it had); a block whose parent it lacks waits
for it, and the node asks the peer that sent it, a round trip away.

A node whose view agrees with the canonical chain only up to more than
``desync.max_height_gap`` blocks below its top, for ``desync.min_duration``, is
desynchronised (a view on a losing branch counts from the fork on).

The views' ``holds`` and the blocks' parents are arrays the gossip kernel shares
(``GossipState.view_blocks``): a block validated at a node that holds its parent's branch
only connects there, so the kernel marks it held and logs it, and ``take_logged`` applies
the log in order after every kernel run (a view's tip, reorgs, finalisation, desync; in one
compiled pass, ``sim/fork_views.py``, but for a node something waits on), as if each had
come back one by one; a block whose parent the node lacks comes back at once
(the node asks a peer for the parent). ``kernel_blocks=False`` (votes, or the reference
the tests compare with) hands every block back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from msgstorm.history.writer import HistoryWriter
from msgstorm.sampling import sample_array
from msgstorm.scenario.registry import PRODUCER_RULES
from msgstorm.scenario.schema import ProducersSpec
from msgstorm.sim.block_contents import BlockContents
from msgstorm.sim.context import SimContext
from msgstorm.sim.desync import DesyncTracker
from msgstorm.sim.fork_views import ARRIVAL_ROWS, FIN_ROWS, REORG_ROWS, Rows, connect_logged
from msgstorm.sim.gossip import GossipState
from msgstorm.sim.kernel import LOG_ITEM, LOG_NODE, LOG_T
from msgstorm.sim.links import LinkState
from msgstorm.sim.recorder import FLUSH_ROWS
from msgstorm.sim.sampled_pool import SampledPool
from msgstorm.sim.tendermint import PART_ITEM_BASE, TendermintBook
from msgstorm.sim.votes import VOTE_ITEM_BASE, VoteBook

__all__ = ["GENESIS", "ForkTree", "pick_producers", "producer_shares"]

GENESIS = 0
_FIRST_BLOCKS = 64  # rows of ``holds`` before the first doubling
# holds[block, node]: not seen; held with its whole branch; received, waiting for its parent.
_NOT_HELD, _HELD, _WAITING = 0, 1, 2


def pick_producers(spec: ProducersSpec, names: list[str], rng: np.random.Generator) -> list[int]:
    """The producers' node indices: those named, else ``count`` drawn without replacement
    (seeded, in draw order), else every node."""
    if spec.nodes:
        index = {name: i for i, name in enumerate(names)}
        return [index[name] for name in spec.nodes]
    if spec.count is None:
        return list(range(len(names)))
    pool = list(range(len(names)))
    chosen = []
    for _ in range(min(spec.count, len(pool))):
        chosen.append(pool.pop(min(int(float(rng.random()) * len(pool)), len(pool) - 1)))
    return chosen


def producer_shares(spec: ProducersSpec, count: int, rng: np.random.Generator) -> list[float]:
    """Each producer's hash share or stake: those listed, equal ones, or ``count`` drawn from
    the distribution given (one uniform each, through ``sampling``: CPU-independent)."""
    if isinstance(spec.shares, list):
        return list(spec.shares) or [1.0] * count
    return [float(share) for share in sample_array(spec.shares, rng, count)]


class ForkTree:
    """The block tree and the nodes' views of it (with the state ``ForkChain`` keeps beside
    them, built in one place); ``ForkChain`` (``sim/forks.py``) makes the blocks."""

    # Round-based consensus, when the scenario asks for it (set by ``ForkChain``); a class
    # default so that a tree built piece by piece (the tests' views) has none.
    consensus: TendermintBook | None = None

    def __init__(self, ctx: SimContext, gossip: GossipState, links: LinkState, writer: HistoryWriter,
                 gas_of: list[int], on_commit: Callable[[int, list[list[Any]]], None] | None,
                 rng: np.random.Generator, kernel_blocks: bool = True) -> None:
        spec = ctx.scenario.blocks.producers
        assert spec is not None
        self.ctx = ctx
        self.gossip = gossip
        self.links = links
        self.writer = writer
        self.gas_of = gas_of
        self.on_commit = on_commit
        blocks = ctx.scenario.blocks
        self.block_interval = blocks.interval
        self.max_messages = blocks.max_messages
        self.max_gas = blocks.max_gas
        self.header_size = blocks.header_size
        self.confirmations = spec.confirmations
        names = ctx.cluster.names
        self.producers = pick_producers(spec, names, rng)
        shares = producer_shares(spec, len(self.producers), rng)
        self.rule = None if spec.rule is None else PRODUCER_RULES[spec.rule](blocks.interval, shares, rng)
        n = ctx.cluster.size
        # With a relay sample (``[network.relay] sample``) every producer's mempool is read
        # from one pool (sim/sampled_pool.py); without, each producer keeps what it
        # validated, and builds its blocks from that (oldest first).
        stride = ctx.scenario.network.relay.sample_stride
        self.pool = (SampledPool(stride, self.producers, n, links.region_of, len(links.base_ns))
                     if ctx.scenario.network.relay.sample is not None else None)
        # (Under a sample the lists stay empty: they say which nodes keep a mempool.)
        self.mempool: dict[int, list[int]] = {node: [] for node in self.producers}
        # The block tree, by block id (0: genesis).
        self.parent = [GENESIS]
        self.block_height = [0]
        self.producer_of = [-1]
        self.t_produced = [0]
        self.size_of = [0]
        self.contents: list[list[int]] = [[]]
        self.included: dict[int, list[int]] = {}  # message -> blocks that include it
        # Each node's view: its tip, the blocks it connected, blocks waiting for a parent.
        self.tip = np.full(n, GENESIS, dtype=np.int64)
        # holds[block, node] (_NOT_HELD, _HELD, _WAITING: in ``received``), parent_of[block] and
        # height_of[block] (block_height's copy for compiled code), with room for blocks to
        # come (_room_for).
        self.holds = np.zeros((_FIRST_BLOCKS, n), dtype=np.uint8)
        self.holds[GENESIS, :] = _HELD
        self.parent_of = np.full(_FIRST_BLOCKS, GENESIS, dtype=np.int64)
        self.height_of = np.zeros(_FIRST_BLOCKS, dtype=np.int64)
        self.block_contents: dict[int, BlockContents] = {}  # compact relay: each block's messages and sizes
        self.waiting: dict[tuple[int, int], list[int]] = {}  # (node, parent) -> blocks waiting for it
        self.received: set[tuple[int, int]] = set()  # (node, block) received, its parent missing
        self.fetching: set[tuple[int, int]] = set()  # (node, block) asked of a peer
        # The canonical chain: canonical[h] is its block at height h.
        self.canonical = [GENESIS]
        self.committed_height = 0
        desync = ctx.scenario.desync
        self.desync = DesyncTracker(n, desync.max_height_gap, desync.min_duration, ctx.record.event)
        self.arrivals = Rows(ARRIVAL_ROWS)  # (block, node, t)
        self.reorgs = Rows(REORG_ROWS)  # (t, node, depth, old tip, new tip)
        self.final_height = np.zeros(n, dtype=np.int64)  # each view: the height up to which it finalised
        self.finalized = Rows(FIN_ROWS)  # (t, node, height, block)
        self.node_names = pa.array(ctx.cluster.names, type=pa.string())  # the rows' node codes name these
        self.equivocating: set[int] = set()  # producers inside an equivocate fault's window
        # producer -> what it leaves out, bool[kind code, agent index] (sim/censor.py)
        self.censoring: dict[int, np.ndarray] = {}
        # Finality by votes (sim/votes.py) instead of by depth in each node's own view.
        self.votes = (VoteBook(ctx, gossip, links, self.producers, shares, spec.vote_size,
                               self.block_height.__getitem__, self._finalized_by_votes, spec.resend_votes)
                      if spec.finality == "votes" else None)
        # Round-based BFT consensus (sim/tendermint.py) instead of a producer rule: built by
        # ``ForkChain``, which makes and commits its blocks.
        self.consensus = None
        self.shares = shares
        self.kernel_blocks = kernel_blocks and self.votes is None and spec.consensus is None
        if self.kernel_blocks:
            gossip.view_blocks(self.parent_of, self.holds)

    def _room_for(self, block: int, parent: int) -> None:
        """A new block's row of ``holds`` (no node yet), its parent and height; the arrays
        double when full (the kernel gets the new ones)."""
        if block >= self.parent_of.shape[0]:
            rows = 2 * self.parent_of.shape[0]
            holds = np.zeros((rows, self.holds.shape[1]), dtype=np.uint8)
            holds[:block] = self.holds[:block]
            parent_of = np.full(rows, GENESIS, dtype=np.int64)
            parent_of[:block] = self.parent_of[:block]
            height_of = np.zeros(rows, dtype=np.int64)
            height_of[:block] = self.height_of[:block]
            self.holds, self.parent_of, self.height_of = holds, parent_of, height_of
            if self.kernel_blocks:
                self.gossip.view_blocks(self.parent_of, self.holds)
        self.parent_of[block] = parent
        self.height_of[block] = self.block_height[block]

    # --- the block tree -------------------------------------------------------------------

    def _on_branch(self, m: int, tip: int) -> bool:
        """Whether a block on the branch ending at ``tip`` includes ``m``."""
        for block in self.included.get(m, ()):
            if self._ancestor(tip, self.block_height[block]) == block:
                return True
        return False

    def _ancestor(self, block: int, height: int) -> int:
        """The block at ``height`` on the branch ending at ``block`` (-1: above it)."""
        if height > self.block_height[block]:
            return -1
        while self.block_height[block] > height:
            block = self.parent[block]
        return block

    def _fork_point(self, a: int, b: int) -> int:
        """The last block two branches share."""
        height = min(self.block_height[a], self.block_height[b])
        a, b = self._ancestor(a, height), self._ancestor(b, height)
        while a != b:
            a, b = self.parent[a], self.parent[b]
        return a

    # --- each node's view -----------------------------------------------------------------

    def validated_block(self, t: int, node: int, block: int, sender: int) -> None:
        """``node`` validated ``block`` (from ``sender``; its producer, at hop 0), or a vote
        (an item id from ``VOTE_ITEM_BASE`` on)."""
        if block >= VOTE_ITEM_BASE:
            if self.consensus is not None:
                if block >= PART_ITEM_BASE:
                    self.consensus.part_received(t, node, block, sender)
                else:
                    self.consensus.received(t, node, block, sender)
                return
            assert self.votes is not None
            self.votes.received(t, node, block)
            return
        if self.holds[block, node] == _NOT_HELD:
            self._arrive(t, node, block, sender)

    def _arrive(self, t: int, node: int, block: int, sender: int) -> None:
        self._record_arrival(t, node, block)
        parent = self.parent[block]
        if self.holds[parent, node] == _HELD:
            self._connect(t, node, block)
            return
        # The parent is missing (it went round a partition, or is still on its way): the
        # block waits for it, and the node asks the sender, which holds the whole branch.
        self.received.add((node, block))
        self.holds[block, node] = _WAITING
        self.waiting.setdefault((node, parent), []).append(block)
        if (node, parent) not in self.received and (node, parent) not in self.fetching and sender >= 0:
            self._fetch(t, node, parent, sender)

    # --- what consensus asks of the views (sim/tendermint.py) ----------------------------------

    def holds_block(self, node: int, block: int) -> bool:
        return bool(self.holds[block, node] == _HELD)

    def block_arrived(self, node: int, block: int) -> bool:
        """Whether ``block`` came whole to ``node`` (held, or waiting there for its parent)."""
        return bool(self.holds[block, node] != _NOT_HELD)

    def fetch_block(self, t: int, node: int, block: int, sender: int) -> None:
        """Ask ``sender`` for ``block`` (a proposal named a block ``node`` lacks)."""
        if (node, block) not in self.fetching and self.holds[block, node] == _NOT_HELD:
            self._fetch(t, node, block, sender)

    def receive_block(self, t: int, node: int, block: int, sender: int = -1) -> None:
        """``block`` came to ``node`` whole (its last part from ``sender``, or with a commit
        when catching up): it arrives, and connects once its parent is held."""
        if self.holds[block, node] == _NOT_HELD:
            self._arrive(t, node, block, sender)

    def _record_arrival(self, t: int, node: int, block: int) -> None:
        """A row of ``block_arrivals`` (the rows gathered so far go out in bulk)."""
        self.arrivals.append((block, node, t))
        if (len(self.arrivals) >= FLUSH_ROWS or len(self.finalized) >= FLUSH_ROWS
                or (self.votes is not None and len(self.votes.cast) >= FLUSH_ROWS)
                or (self.consensus is not None and len(self.consensus.rows) >= FLUSH_ROWS)):
            self._flush_rows()

    def _fetch(self, t: int, node: int, block: int, sender: int) -> None:
        """Ask ``sender`` for ``block``: it comes a round trip later (as the one sequencer's
        catch-up, ``sim/chain.py``); not across a partition."""
        links = self.links
        if links.colour[node] != links.colour[sender]:
            return  # a later block from that side asks again
        d = links.delay(node, sender)
        if d is None:  # lost on the way: the retry costs about the base latency
            d = links.base_ns[links.region_of[node]][links.region_of[sender]]
        self.fetching.add((node, block))
        self.ctx.events.push(t + 2 * d, self._fetched, node, block, sender)

    def _fetched(self, t: int, node: int, block: int, sender: int, _d: int) -> None:
        self.fetching.discard((node, block))
        if self.ctx.cluster.up[node] and self.holds[block, node] == _NOT_HELD:
            self._arrive(t, node, block, sender)

    def _connect(self, t: int, node: int, block: int) -> None:
        """``node`` holds ``block`` and its whole branch: its tip moves if it is longer."""
        # Called for every block at every node (228,000 times in the Bitcoin preset): the
        # sets and dicts are looked up only when they hold anything, and the view's
        # agreement with the canonical chain is walked only for a node whose gap is open.
        pending = [block]
        height = self.block_height
        while pending:
            block = pending.pop()
            if self.received:
                self.received.discard((node, block))
            self.holds[block, node] = _HELD
            old = int(self.tip[node])
            if self.consensus is not None:  # a view is what the node committed (committed_block)
                self.consensus.held(t, node, block)
            elif height[block] > height[old]:
                if self.parent[block] != old:
                    depth = height[old] - height[self._fork_point(old, block)]
                    if depth > 0:
                        self.reorgs.append((t, node, depth, old, block))
                        # What the view finalised above the fork it finalises again on the new branch.
                        self.final_height[node] = min(int(self.final_height[node]), height[old] - depth)
                self.tip[node] = block
            if self.votes is not None:
                self.votes.connected(t, node, block)
            if self.waiting:
                pending.extend(self.waiting.pop((node, block), ()))
        if self.votes is None and self.consensus is None:
            self._finalize(t, node)
        if self.desync.lagging(node):
            self.desync.caught_up(t, node, len(self.canonical) - 1 - self._agreed(node))

    def _finalize(self, t: int, node: int) -> None:
        """The blocks ``confirmations`` deep in ``node``'s view that it had not finalised."""
        tip = int(self.tip[node])
        top = self.block_height[tip] - self.confirmations + 1
        done = int(self.final_height[node])
        if top <= done:
            return
        block = self._ancestor(tip, top)
        rows = []
        for height in range(top, done, -1):
            rows.append((t, node, height, block))
            block = self.parent[block]
        self.finalized.extend(rows[::-1])
        self.final_height[node] = top

    def _finalized_by_votes(self, t: int, node: int, height: int, block: int) -> None:
        self.finalized.append((t, node, height, block))

    def _agreed_heights(self) -> list[int]:
        """``_agreed`` of every node, in node order: walked once per distinct tip (the
        views share a few tips)."""
        tips, of_node = np.unique(self.tip, return_inverse=True)
        agreed = np.array([self._agreed_tip(tip) for tip in tips.tolist()], dtype=np.int64)
        heights: list[int] = agreed[of_node].tolist()
        return heights

    def _agreed(self, node: int) -> int:
        """The height up to which ``node``'s view agrees with the canonical chain (a view on
        another branch trails it from the fork on, however high it is)."""
        return self._agreed_tip(int(self.tip[node]))

    def _agreed_tip(self, block: int) -> int:
        """``_agreed`` of a view whose tip is ``block``."""
        height = self.block_height[block]
        canonical = self.canonical
        top = len(canonical) - 1
        if height > top:
            block, height = self._ancestor(block, top), top
        while canonical[height] != block:
            block = self.parent[block]
            height -= 1
        return height

    def _connect_logged(self, rows: np.ndarray) -> None:
        """Blocks the kernel found their parents' branches held for: each arrives and
        connects (``_record_arrival``, ``_connect``), compiled (``sim/fork_views.py``) but
        for a row whose node something waits on or whose desync gap is open."""
        nodes, blocks, ts = (np.ascontiguousarray(rows[row]) for row in (LOG_NODE, LOG_ITEM, LOG_T))
        special = np.zeros(self.tip.shape[0], dtype=np.uint8)
        special[list(self.desync.lagging_nodes())] = 1
        for node, _block in (*self.received, *self.waiting):
            special[node] = 1
        made = len(self.parent)
        finalized = np.empty((FIN_ROWS, len(nodes) + made), dtype=np.int64)
        reorgs = np.empty((REORG_ROWS, min(len(nodes), FLUSH_ROWS)), dtype=np.int64)
        counts = np.zeros(2, dtype=np.int64)
        start = 0
        while start < len(nodes):
            stop = connect_logged(nodes, blocks, ts, start, special, self.tip, self.final_height, self.parent_of,
                                  self.height_of, self.holds, self.confirmations, finalized, reorgs, counts)
            self.arrivals.add_columns(np.stack([blocks[start:stop], nodes[start:stop], ts[start:stop]]))
            self.finalized.add_columns(finalized[:, :counts[0]].copy())  # the buffers are written again
            self.reorgs.add_columns(reorgs[:, :counts[1]].copy())
            counts[:] = 0
            if stop < len(nodes) and special[nodes[stop]]:  # this one in Python
                node, block, t = int(nodes[stop]), int(blocks[stop]), int(ts[stop])
                self._record_arrival(t, node, block)
                self._connect(t, node, block)
                stop += 1
            start = stop
            if len(self.arrivals) >= FLUSH_ROWS or len(self.finalized) >= FLUSH_ROWS:
                self._flush_rows()

    # --- the rows -------------------------------------------------------------------------

    def _flush_rows(self) -> None:
        if len(self.arrivals):
            block, node, t = self.arrivals.take()
            self.writer.append("block_arrivals", {"block": block, "node": self._names(node), "t": t})
        if len(self.finalized):
            t, node, height, block = self.finalized.take()
            self.writer.append("finalized", {"t": t, "node": self._names(node), "height": height, "block": block})
        if len(self.reorgs):
            t, node, depth, old, new = self.reorgs.take()
            self.writer.append("reorgs", {"t": t, "node": self._names(node), "depth": depth, "old_tip": old,
                                          "new_tip": new})
        if self.consensus is not None and self.consensus.rows:
            names = self.ctx.cluster.names
            node, height, round_, proposer, t, interval = zip(*self.consensus.take_rows())
            self.writer.append("heights", {"node": [names[i] for i in node], "height": height, "round": round_,
                                           "proposer": [names[i] for i in proposer], "t_committed": t,
                                           "interval_ns": [None if i < 0 else i for i in interval]})
        if self.votes is not None and self.votes.cast:
            t, voter, height, block = zip(*self.votes.take_rows())
            names = self.ctx.cluster.names
            self.writer.append("votes", {"t": t, "voter": [names[i] for i in voter], "height": height,
                                         "block": block})

    def _names(self, nodes: np.ndarray) -> pa.DictionaryArray:
        """Node indices as the history's node names (codes into them, not a string a row)."""
        return pa.DictionaryArray.from_arrays(nodes.astype(np.int32), self.node_names)
