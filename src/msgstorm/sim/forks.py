"""Producers across the nodes: a block tree, each node's view of it, forks and commits.

Place in the pipeline: inside the simulator, the role ``ShadowNetwork`` gives the blocks
when the scenario sets ``[blocks.producers]`` (without it, ``sim/chain.py``: the one
sequencer makes every block). A ``ProducerRule`` (``sim/producers.py``: proof of work,
proof-of-stake slots) says when the next block comes and which producer makes it; the
producer builds it on the tip of its own view from what its mempool validated and is not
already on that branch, and gossips it like any block. Every node keeps its own view: the
longest chain among the blocks it validated (a tie keeps the tip it had: first seen wins);
a block whose parent it has not seen waits for it, and the node asks the peer that sent it
for the parent, a round trip away (so views meet again after a partition heals). When a view moves to another branch,
the blocks it leaves are a reorg of that depth (the ``reorgs`` table). A node finalises a
block when its own view puts it ``confirmations`` deep (the ``finalized`` table); a view
that later leaves a block it finalised finalises the new branch's block at that height
again, which ``analysis/safety.py`` reports as a conflict.

An ``equivocate`` fault (``sim/equivocation.py``) makes a producer byzantine for a window:
each block it makes there is made twice, on one parent, and each copy goes to one half of
its gossip peers directly (a link's delay away), which validate and gossip it on. A
``twins`` fault (``sim/twins.py``) runs a second instance of a producer elsewhere: in the
producer's turn each instance makes a block from its own node's view and mempool (the
``block_produced`` event of the twin's names its node in ``twin_at``).

Commits follow the canonical chain: the longest chain over every block made (a tie keeps
the first made), the one every view converges to. A block on it ``confirmations`` deep
(that many blocks at and above it) commits its messages; a message in a block the
canonical chain leaves was not committed, stays in the producers' mempools and commits
only if a later block on the canonical chain includes it again. A reorg of the canonical
chain deeper than ``confirmations`` would undo a commit already written: it is a
``canonical_reorg`` event with ``final`` true (the summary counts them), a sign that
``confirmations`` is too few for the network.

Under a relay sample (``[network.relay] sample``) the producers' mempools are one pool
(``sim/sampled_pool.py``): only the sampled messages are relayed and logged, the others
reach each producer when their region's last sampled one says, and their records are the
pool's columns (a block takes them, commits them and writes their rows through the pool).

With ``blocks.producers.consensus = "tendermint"`` there is no producer rule: the round-based
BFT protocol (``sim/tendermint.py``) asks for each proposal (``propose_block``, on the
proposer's last committed block), sends it as block parts, and says what each node commits
(``committed_block``): a node's view is its last commit, and the first commit at a height
extends the canonical chain and commits the block's messages.

Every block is one of ``block`` ids 1, 2, ... (0 is the genesis block every node holds);
a message's ``block`` column is the block that committed it (or first included it).
Lifecycle: built once per run; ``start`` draws the first block; ``close`` writes the
``blocks`` table (whether each block ended on the canonical chain is known only then), and
with ``[crosschain]`` the ``inclusions`` table (every block's messages, for the relayers).

The block tree, each node's view of it and the rows the views write are ``ForkTree``
(``sim/fork_tree.py``), which ``ForkChain`` extends with the producers, the canonical chain
and its commits, the mempools and the end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from msgstorm.history.events import EventKind
from msgstorm.history.writer import HistoryWriter
from msgstorm.sim.block_contents import BlockContents
from msgstorm.sim.block_packing import BlockFill
from msgstorm.sim.context import SimContext
from msgstorm.sim.fork_tree import ForkTree
from msgstorm.sim.gossip import GossipState
from msgstorm.sim.kernel import ITEM_BLOCK, LOG_ITEM, LOG_KIND, LOG_NODE, LOG_T
from msgstorm.sim.links import LinkState
from msgstorm.sim.recorder import FLUSH_ROWS
from msgstorm.sim.sampled_pool import SampledPool
from msgstorm.sim.state import (
    AGENT,
    BLOCK,
    COMMITTED,
    IN_BLOCK,
    KIND,
    QUEUED,
    T_COMMITTED,
    T_DEQUEUED,
    T_RECEIVED,
    T_SEQUENCED,
    WHERE,
)
from msgstorm.sim.tendermint import TendermintBook, voting_powers
from msgstorm.sim.votes import VOTE_ITEM_BASE

__all__ = ["ForkChain"]


class ForkChain(ForkTree):
    def __init__(self, ctx: SimContext, gossip: GossipState, links: LinkState, writer: HistoryWriter,
                 gas_of: list[int], on_commit: Callable[[int, list[list[Any]]], None] | None,
                 rng: np.random.Generator, kernel_blocks: bool = True) -> None:
        super().__init__(ctx, gossip, links, writer, gas_of, on_commit, rng, kernel_blocks)
        spec = ctx.scenario.blocks.producers
        assert spec is not None
        if spec.consensus == "tendermint":
            self.consensus = TendermintBook(ctx, gossip, links, self, self.producers, voting_powers(self.shares),
                                            spec.tendermint, VOTE_ITEM_BASE)

    def start(self) -> None:
        if self.consensus is not None:
            self.consensus.start(0)
        else:
            self._schedule(0)

    def _schedule(self, t: int) -> None:
        assert self.rule is not None
        t_next, producer = self.rule.next_block(t)
        if t_next <= self.ctx.hard_stop:
            self.ctx.events.push(t_next, self._produce, self.producers[producer])

    # --- producing --------------------------------------------------------------------------

    def _produce(self, t: int, node: int, _b: int, _c: int, _d: int) -> None:
        """Producer ``node``'s turn: it makes a block, and so does each twin of it running
        elsewhere (``sim/twins.py``), each from its own node's view and mempool. A producer
        that is down makes nothing: its turn (or its work) is lost."""
        self._schedule(t)
        self.take_logged()
        cluster = self.ctx.cluster
        made = False
        if cluster.up[node]:
            self._make(t, node, node)
            made = True
        if self.votes is not None and self.votes.twins:
            for host in self.votes.twin_hosts(node):
                if cluster.up[host]:
                    self._make(t, node, host)
                    made = True
        if made:
            top = len(self.canonical) - 1
            self.desync.check(t, top, self._agreed_heights(), cluster.up)

    def _make(self, t: int, node: int, at: int, parent: int = -1) -> int:
        """Producer ``node`` makes a block at node ``at`` (its own, or where a twin of it
        runs): on the tip of ``at``'s view (or on ``parent``), from ``at``'s mempool."""
        ctx = self.ctx
        parent = int(self.tip[at]) if parent < 0 else parent
        take, gas, size, left_out = self._fill(at, parent, t)
        block = len(self.parent)
        height = self.block_height[parent] + 1
        self.parent.append(parent)
        self.block_height.append(height)
        self.producer_of.append(node)
        self.t_produced.append(t)
        self.size_of.append(size)
        self.contents.append(take)
        self._room_for(block, parent)
        if self.gossip.wants_contents:  # compact relay: what peers rebuild the block from
            self.block_contents[block] = self._contents(take)
        live = ctx.msgs.live
        pooled = []
        for m in take:
            self.included.setdefault(m, []).append(block)
            record = live.get(m)
            if record is None:  # an unsampled message: its record is the pool's
                pooled.append(m)
                continue
            record[WHERE] = IN_BLOCK
            if record[BLOCK] < 0:  # first included: it left the mempool (queue wait) at once
                record[BLOCK] = block
                record[T_DEQUEUED] = record[T_SEQUENCED] = t
        if pooled and self.pool is not None:
            self.pool.included(pooled, block, t)
        detail: dict[str, Any] = {"gas": gas, "bytes": size, "block": block, "parent": parent}
        if at != node:
            detail["twin_at"] = ctx.cluster.names[at]
        if left_out:  # a censoring producer's: what it held and left out (analysis/byzantine.py)
            detail["censored"] = left_out
        ctx.record.event(t, EventKind.BLOCK_PRODUCED, node, float(len(take)), height, detail)
        if self.consensus is None:  # under consensus the canonical chain is what it decides
            self._extend_canonical(t, block)
        if self.votes is not None:
            self.votes.made(t, block)
        self._arrive(t, at, block, -1)
        if at == node and node in self.equivocating:
            self._equivocate(t, node, block, gas)
        elif self.consensus is not None:  # a proposal travels as its block parts
            if not ctx.cluster.isolated[at]:
                self.consensus.gossip_parts(t, at, block, size)
        elif not ctx.cluster.isolated[at]:
            self.gossip.inject(t, at, block, ITEM_BLOCK, size, contents=self.block_contents.get(block))
        return block

    # --- what consensus asks of the block tree (sim/tendermint.py) -----------------------------

    def propose_block(self, t: int, node: int, parent: int) -> int:
        """A proposer's block on ``parent`` (its last committed block), made and gossiped."""
        self.take_logged()
        return self._make(t, node, node, parent)

    def committed_block(self, t: int, node: int, height: int, block: int, first: bool) -> None:
        """``node`` committed ``block`` at ``height``: its view, a ``finalized`` row; the first
        commit at a height extends the canonical chain (its messages commit)."""
        self.tip[node] = block
        self.finalized.append((t, node, height, block))
        if self.consensus is not None:
            self.consensus.full.discard(node)  # the block's transactions leave its mempool
        if first:
            self.take_logged()
            self._extend_canonical(t, block)
            top = len(self.canonical) - 1
            self.desync.check(t, top, self._agreed_heights(), self.ctx.cluster.up)

    def mempool_left(self, node: int) -> int:
        """The messages ``node``'s mempool still holds (none committed): what it rechecks."""
        live = self.ctx.msgs.live
        return sum(1 for m in self.mempool.get(node, ()) if m in live)

    def _equivocate(self, t: int, node: int, block: int, gas: int) -> None:
        """A second block on ``block``'s parent with the same messages in reverse order; the
        first half of the producer's peers get ``block``, the rest the second (its own view
        keeps the first)."""
        twin = len(self.parent)
        parent, take = self.parent[block], list(reversed(self.contents[block]))
        self.parent.append(parent)
        self.block_height.append(self.block_height[block])
        self.producer_of.append(node)
        self.t_produced.append(t)
        self.size_of.append(self.size_of[block])
        self.contents.append(take)
        self._room_for(twin, parent)
        first = self.block_contents.get(block)
        if first is not None:
            self.block_contents[twin] = BlockContents(first.msg_ids[::-1].copy(), first.sizes[::-1].copy(),
                                                      first.held_everywhere)
        for m in take:
            if self._open(m):  # not already committed by the first (at one confirmation)
                self.included.setdefault(m, []).append(twin)
        self.ctx.record.event(t, EventKind.BLOCK_PRODUCED, node, float(len(take)), self.block_height[block],
                              {"gas": gas, "bytes": self.size_of[block], "block": twin, "parent": parent, "equivocates": block})
        if self.votes is not None:
            self.votes.made(t, twin)
        peers = self.gossip.forward[node]
        half = (len(peers) + 1) // 2
        links = self.links
        for i, peer in enumerate(peers):
            if links.colour[node] != links.colour[peer]:
                continue  # not across a partition
            d = links.delay(node, peer)
            if d is not None:  # a lost copy is not sent again: the producer is not honest
                self.ctx.events.push(t + d, self._direct, peer, block if i < half else twin, node)

    def _direct(self, t: int, node: int, block: int, sender: int, _d: int) -> None:
        """An equivocating producer's block reached ``node`` directly: it validates it and
        gossips it on (the processing time of the one receipt is not modelled)."""
        if not self.ctx.cluster.up[node]:
            return
        self.validated_block(t, node, block, sender)
        if not self.ctx.cluster.isolated[node]:
            self.gossip.inject(t, node, block, ITEM_BLOCK, self.size_of[block], contents=self.block_contents.get(block))

    def _fill(self, node: int, parent: int, t: int) -> tuple[list[int], int, int, list[int]]:
        """Messages for a block on ``parent`` made at ``t``: the mempool's, oldest first, that
        are not settled nor already on the branch, up to the block's message and gas limits;
        and those a censoring producer left out."""
        live = self.ctx.msgs.live
        fields: dict[int, list[Any]] | _Fields
        if self.pool is None:
            pool = [m for m in self.mempool[node] if m in live]
            self.mempool[node] = pool  # settled ones leave the mempool
            fields = live
        else:
            pool = self.pool.mempool(node, t).tolist()
            fields = _Fields(live, self.pool)
        block = BlockFill(self.header_size)
        left_out: list[int] = []
        for m in pool:
            if not block.has_room(self.max_messages):
                break  # a censored message past a full block was not left out by censoring
            if self._on_branch(m, parent):
                continue
            record = fields[m]
            if self.censoring and node in self.censoring and self.censoring[node][record[KIND], record[AGENT]]:
                left_out.append(m)  # a censoring producer leaves it out
                continue
            if not block.offer(m, record, self.gas_of, self.max_messages, self.max_gas):
                break  # full: a block is filled in order (sim/block_packing.py)
        return block.messages, block.gas, block.size_bytes, left_out

    def _open(self, m: int) -> bool:
        """Whether message ``m`` is not yet committed."""
        return m in self.ctx.msgs.live or (self.pool is not None and bool(self.pool.open[m]))

    def _contents(self, take: list[int]) -> BlockContents:
        """A block's messages and their sizes, for compact relay. Under a relay sample the
        sampled ones are listed (a node rebuilds them from what it validated) and the rest
        count as held at every node (docs/networks.md, "A relay sample")."""
        if self.pool is None:
            return self.ctx.msgs.contents(take)
        live = self.ctx.msgs.live
        listed = [m for m in take if m in live]
        contents = self.ctx.msgs.contents(listed)
        return BlockContents(contents.msg_ids, contents.sizes, held_everywhere=len(take) - len(listed))

    # --- what faults change --------------------------------------------------------------------

    def set_censoring(self, node: int, censored: np.ndarray | None) -> None:
        """``node`` leaves the messages ``censored`` marks (bool[kind code, agent index]) out
        of the blocks it makes (None: no longer)."""
        if censored is not None:
            self.censoring[node] = censored
        else:
            self.censoring.pop(node, None)

    def healed(self, t: int, since: int) -> None:
        """A partition that began at ``since`` healed at ``t``: votes sent again, if asked
        (finality by votes), or what each peer lacks of its height (round-based consensus)."""
        if self.votes is not None:
            self.votes.healed(t, since)
        if self.consensus is not None:
            self.consensus.healed(t)

    # --- the canonical chain and commits ------------------------------------------------------

    def _extend_canonical(self, t: int, block: int) -> None:
        canonical = self.canonical
        height = self.block_height[block]
        if height <= len(canonical) - 1:
            return  # not longer: the first made at a height stays
        tip = canonical[-1]
        if self.parent[block] != tip:
            fork = self._fork_point(tip, block)
            fork_height = self.block_height[fork]
            dropped = len(canonical) - 1 - fork_height
            branch = []
            b = self.parent[block]
            while b != fork:
                branch.append(b)
                b = self.parent[b]
            del canonical[fork_height + 1:]
            canonical.extend(reversed(branch))
            final = fork_height < self.committed_height
            self.ctx.record.event(t, EventKind.CANONICAL_REORG, self.producer_of[block], float(dropped), height,
                                  {"old_tip": tip, "new_tip": block, "final": final})
            if final:
                self.committed_height = fork_height  # what the new branch holds commits again
        canonical.append(block)
        self._commit(t)

    def _commit(self, t: int) -> None:
        """Blocks ``confirmations`` deep on the canonical chain commit their messages."""
        ctx = self.ctx
        msgs = ctx.msgs
        live = msgs.live
        last = len(self.canonical) - self.confirmations
        while self.committed_height < last:
            height = self.committed_height + 1
            block = self.canonical[height]
            settled = []
            pooled = []
            for m in self.contents[block]:
                record = live.pop(m, None)
                if record is None:
                    if self.pool is not None and not self.pool.is_sampled[m]:
                        pooled.append(m)  # an unsampled message: the pool settles it
                    continue  # else committed by a block a final reorg dropped
                record[T_COMMITTED] = t
                record[WHERE] = COMMITTED
                record[BLOCK] = block
                settled.append(record)
                self.included.pop(m, None)
                if self.pool is not None:
                    self.pool.close_sampled(m)
            if pooled and self.pool is not None:
                rows, fees = self.pool.commit(pooled, block, t)
                for m in rows[0].tolist():
                    self.included.pop(m, None)
                ctx.tally.committed += rows.shape[1]
                msgs.terminal += rows.shape[1]
                ctx.record.settled_table(rows, fees)
            ctx.tally.committed += len(settled)
            msgs.terminal += len(settled)
            if self.on_commit is not None:  # an empty block too: a reactor may act in it
                self.on_commit(t, settled)
            ctx.record.settled(settled)
            ctx.record.event(t, EventKind.BLOCK_COMMITTED, self.producer_of[block], height=height)
            self.committed_height = height

    # --- what the network tells it --------------------------------------------------------------

    def saw(self, t: int, node: int, m: int) -> None:
        """Producer ``node`` validated message ``m`` at ``t`` (handed back because a reactor
        or the queue policy watches it there): it goes into that node's mempool, after what
        the kernel logged before."""
        self.take_logged()
        if self.pool is not None:
            self._pooled(np.asarray([node]), np.asarray([m]), np.asarray([t]))
            return
        self._into_mempool(t, node, m)

    def take_logged(self) -> int:
        """What the gossip kernel logged, in order: the producers' validations of messages
        go into their mempools (``GossipState.set_watched``), blocks connect to the views
        (``GossipState.view_blocks``). ``ShadowNetwork`` calls it after every kernel run,
        and so does anything here that reads a mempool or a message's state first. Returns
        the last logged time (-1: none).

        The two kinds of row touch different state (mempools and messages' records; views),
        and nothing here commits, so each kind is applied in bulk in its own order, as if
        row by row."""
        if self.pool is not None:
            return self._take_logged_sampled()
        rows = self.gossip.drain_mempool_log()
        if not rows.shape[1]:
            return -1
        is_block = rows[LOG_KIND] == ITEM_BLOCK
        if is_block.all():
            self._connect_logged(rows)
        elif not is_block.any():
            self._into_mempools(rows)
        else:
            self._connect_logged(rows[:, is_block])
            self._into_mempools(rows[:, ~is_block])
        return int(rows[LOG_T, -1])

    def _into_mempools(self, rows: np.ndarray) -> None:
        """Messages validated at producers, into their mempools as ``_into_mempool`` puts
        each, in bulk: the pools in log order, a message's first logged time its
        ``t_received``, a pool cut to what is live once it outgrows the bound (the bound
        is crossed at most once in a call: the live messages do not change here)."""
        if self.consensus is not None:  # capped mempools
            self._into_capped_mempools(rows)
            return
        live = self.ctx.msgs.live
        items = rows[LOG_ITEM]
        unique, first = np.unique(items, return_index=True)
        keep = [m in live for m in unique.tolist()]
        if not any(keep):
            return
        if not all(keep):
            in_live = np.isin(items, unique[keep])
            rows, items = rows[:, in_live], items[in_live]
            unique, first = np.unique(items, return_index=True)
        times = rows[LOG_T]
        for m, i in zip(unique.tolist(), first.tolist(), strict=True):
            record = live[m]
            if record[WHERE] < QUEUED:
                record[WHERE] = QUEUED  # in a mempool: pending, not lost, if the run ends now
                record[T_RECEIVED] = int(times[i])
        mempool = self.mempool
        nodes = rows[LOG_NODE].tolist()
        for node, m in zip(nodes, items.tolist(), strict=True):
            mempool[node].append(m)
        bound = max(FLUSH_ROWS, 2 * len(live))
        for node in set(nodes):
            pool = mempool[node]
            if len(pool) > bound:
                mempool[node] = [m for m in pool if m in live]

    def _into_capped_mempools(self, rows: np.ndarray) -> None:
        """``_into_mempools`` where mempools are capped: in bulk while every pool has room for
        all, else each arrival in order as ``_into_mempool`` puts it."""
        live = self.ctx.msgs.live
        nodes, ms, times = rows[LOG_NODE].tolist(), rows[LOG_ITEM].tolist(), rows[LOG_T].tolist()
        if not self._room_for_all(nodes):  # one may fill: each arrival in order
            for node, m, t in zip(nodes, ms, times, strict=True):
                self._into_mempool(t, node, m)
            return
        mempool = self.mempool
        for node, m, t in zip(nodes, ms, times, strict=True):  # as _into_mempool, room known
            record = live.get(m)
            if record is None:
                continue
            mempool[node].append(m)
            if record[WHERE] < QUEUED:
                record[WHERE] = QUEUED  # in a mempool: pending, not lost, if the run ends now
                record[T_RECEIVED] = t
        for node in set(nodes):
            pool = mempool[node]
            if len(pool) > FLUSH_ROWS and len(pool) > 2 * len(live):
                mempool[node] = [m for m in pool if m in live]

    def _take_logged_sampled(self) -> int:
        """``take_logged`` under a relay sample: the validations of messages go to the pool at
        once (their order does not matter there: a mempool is read by arrival time), the
        blocks connect in order."""
        assert self.pool is not None
        rows = self.gossip.drain_mempool_log()
        if not rows.shape[1]:
            return -1
        node, item, t, kind = rows[LOG_NODE], rows[LOG_ITEM], rows[LOG_T], rows[LOG_KIND]
        messages = kind != ITEM_BLOCK
        self._pooled(node[messages], item[messages], t[messages])
        blocks = ~messages
        for block_node, block, at in zip(node[blocks].tolist(), item[blocks].tolist(), t[blocks].tolist(), strict=True):
            self._record_arrival(at, block_node, block)
            self._connect(at, block_node, block)
        return int(t[-1])

    def _into_mempool(self, t: int, node: int, m: int) -> None:
        """``m`` into ``node``'s mempool (``t_received``: the first producer's)."""
        live = self.ctx.msgs.live
        record = live.get(m)
        if record is None:
            return
        if self.consensus is not None and not self._mempool_room(t, node):
            return
        pool = self.mempool[node]
        pool.append(m)
        if record[WHERE] < QUEUED:
            record[WHERE] = QUEUED  # in a mempool: pending, not lost, if the run ends now
            record[T_RECEIVED] = t
        if len(pool) > FLUSH_ROWS and len(pool) > 2 * len(live):
            self.mempool[node] = [m for m in pool if m in live]

    def _room_for_all(self, nodes: list[int]) -> bool:
        """Under consensus: whether every logged arrival finds room (``_mempool_room``) even
        if none before it were turned away: no node full, and each mempool's length plus its
        arrivals within the cap, the mempool first cut to what is live where it would not be
        (``_mempool_room`` cuts it so before it turns an arrival away). Then they go in
        without a look at the cap (a mempool cut to what is live at other moments than
        arrival by arrival: only live messages are ever read from one)."""
        consensus = self.consensus
        assert consensus is not None
        cap = consensus.spec.mempool_size
        mempool = self.mempool
        live = self.ctx.msgs.live
        counts: dict[int, int] = {}
        for node in nodes:
            counts[node] = counts.get(node, 0) + 1
        for node, count in counts.items():
            if node in consensus.full:
                return False
            if len(mempool[node]) + count > cap:
                pool = mempool[node] = [m for m in mempool[node] if m in live]
                if len(pool) + count > cap:
                    return False
        return True

    def _mempool_room(self, t: int, node: int) -> bool:
        """Under consensus: whether ``node``'s mempool has room for one more (what a block
        committed leaves it first, looked at only when it seems full: a full one is not
        looked at again before the next commit)."""
        consensus = self.consensus
        assert consensus is not None
        cap = consensus.spec.mempool_size
        if node in consensus.full:
            consensus.turned_away(t, node)
            return False
        pool = self.mempool[node]
        if len(pool) >= cap:
            live = self.ctx.msgs.live
            pool = self.mempool[node] = [m for m in pool if m in live]
            if len(pool) >= cap:
                consensus.turned_away(t, node)
                return False
        return True

    def keep_mempool(self, node: int) -> None:
        """``node`` keeps a mempool from now on (a twin of a producer runs there): the kernel
        logs its validations of messages as it does a producer's."""
        if node not in self.mempool:
            self.take_logged()
            self.mempool[node] = []
            self.gossip.log_validations(node)

    def _pooled(self, node: np.ndarray, item: np.ndarray, t: np.ndarray) -> None:
        """Validations of sampled messages at producers, in time order, into the pool; a
        message's first is its ``t_received``."""
        assert self.pool is not None
        self.pool.arrive(node, item, t)
        live = self.ctx.msgs.live
        first_items, first_rows = np.unique(item, return_index=True)
        for m, at in zip(first_items.tolist(), t[first_rows].tolist(), strict=True):
            record = live.get(m)
            if record is not None and record[WHERE] < QUEUED:
                record[WHERE] = QUEUED  # in a mempool: pending, not lost, if the run ends now
                record[T_RECEIVED] = at

    def node_down(self, node: int) -> None:
        self.take_logged()
        if node in self.mempool:
            self.mempool[node] = []

    def node_up(self, node: int, t: int) -> None:
        """A node restarts with an empty mempool and the view it had (and its consensus state)."""
        if self.pool is not None:
            self.pool.restart(node, t)
        if self.consensus is not None:
            self.consensus.restarted(t, node)

    def leader_down(self, t: int, node: int) -> None:
        """No leader: the producers' blocks go on."""

    def busy(self) -> bool:
        """Messages wait in mempools or in blocks not yet deep enough, and blocks still come."""
        self.take_logged()
        if self.pool is not None and self.pool.busy():
            return True
        return any(record[WHERE] in (QUEUED, IN_BLOCK) for record in self.ctx.msgs.live.values())

    # --- the end -----------------------------------------------------------------------------

    def close(self, t_end: int) -> None:
        """At the end: open desync episodes close; the blocks table, and the rows still gathered
        (a sampled relay's unsampled messages still open: pending or lost, ``SampledPool``)."""
        self.take_logged()
        if self.pool is not None:
            pool = self.pool
            firsts = pool.sample_id[:pool.samples]
            self.ctx.record.event(t_end, EventKind.RELAY_SAMPLE, value=float(pool.samples), detail={
                "stride": pool.stride, "region_firsts": firsts[firsts % pool.stride != 0].tolist(),
                "derived": pool.count - pool.samples} | pool.load_detail)
            for rows, fees in pool.settle_rest(t_end):
                self.ctx.msgs.terminal += rows.shape[1]
                self.ctx.record.settled_table(rows, fees)
        top = len(self.canonical) - 1
        self.desync.close(t_end, [top - height for height in self._agreed_heights()])
        self._flush_rows()
        made = len(self.parent) - 1
        if not made:
            return
        on_canonical = set(self.canonical)
        names = self.ctx.cluster.names
        ids = range(1, made + 1)
        self.writer.append("blocks", {
            "block": list(ids),
            "parent": self.parent[1:],
            "height": self.block_height[1:],
            "producer": [names[self.producer_of[b]] for b in ids],
            "t_produced": self.t_produced[1:],
            "messages": [len(self.contents[b]) for b in ids],
            "bytes": self.size_of[1:],
            "canonical": [b in on_canonical for b in ids],
        })
        if self.ctx.scenario.crosschain is not None:  # relayers read which blocks held a message
            self.writer.append("inclusions", {
                "block": [b for b in ids for _ in self.contents[b]],
                "msg_id": [m for b in ids for m in self.contents[b]],
            })


class _Fields:
    """A message's fields by msg_id under a relay sample: a sampled message's record is in
    ``live``, an unsampled one's is made from the pool's columns."""

    def __init__(self, live: dict[int, list[Any]], pool: SampledPool) -> None:
        self.live = live
        self.pool = pool

    def __getitem__(self, m: int) -> list[Any]:
        record = self.live.get(m)
        return record if record is not None else self.pool.record(m)
