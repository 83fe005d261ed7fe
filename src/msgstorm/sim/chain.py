"""The chain: blocks, votes, commits, catch-up, desync and leader failover.

Place in the pipeline: inside the simulator, one role of ``ShadowNetwork``. Every
``blocks.interval`` the leader packs sequenced messages (``Sequencer.take_block``) into a
block and gossips it; a node that validates the next block applies it and votes back; a
node that sees a block beyond the next fetches the missing ones from its sender, a round
trip away; a quorum of votes commits a height and every message in it. Heights trailing
the leader are watched for desync episodes (``DesyncTracker``). When the leader crashes,
``leader_down`` schedules a failover: after ``sequencer.failover_timeout`` the first live
standby leads, blocks above what it has are orphaned (their messages go back in flight)
and it sequences what its mempool saw.

Lifecycle: built once per run; ``start`` schedules the first block tick.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from itertools import count
from typing import Any

import numpy as np

from msgstorm.history.events import EventKind
from msgstorm.sim.context import SimContext
from msgstorm.sim.desync import DesyncTracker
from msgstorm.sim.gossip import GossipState
from msgstorm.sim.kernel import ITEM_BLOCK, LOG_ITEM, LOG_NODE
from msgstorm.sim.links import LinkState
from msgstorm.sim.lone_cpu import LoneCpu
from msgstorm.sim.recorder import FLUSH_ROWS
from msgstorm.sim.sequencer import Sequencer
from msgstorm.sim.state import BLOCK, COMMITTED, IN_BLOCK, SEQ_NO, T_COMMITTED, WHERE
from msgstorm.sim.topology import Topology

__all__ = ["Chain", "gas_table"]

DEFAULT_GAS = 21_000  # gas of a message whose kind ``blocks.gas`` does not list (a transfer's)


def gas_table(gas: dict[Any, int], kinds: tuple[str, ...]) -> list[int]:
    """Gas per message kind, in ``MESSAGE_KINDS`` order (both loops use this table)."""
    return [gas.get(kind, DEFAULT_GAS) for kind in kinds]


class Chain:
    def __init__(self, ctx: SimContext, sequencer: Sequencer, topology: Topology, links: LinkState,
                 gossip: GossipState, lone: LoneCpu, gas_of: list[int],
                 on_commit: Callable[[int, list[list[Any]]], None] | None) -> None:
        """``on_commit(t, records)`` sees the records of each committed block, an empty one
        too (telemetry, the reactors: the market acts in an empty block after a pause)."""
        self.ctx = ctx
        self.sequencer = sequencer
        self.topology = topology
        self.links = links
        self.gossip = gossip
        self.lone = lone
        self.on_commit = on_commit
        blocks = ctx.scenario.blocks
        n = ctx.cluster.size
        self.block_interval = blocks.interval
        self.max_messages = blocks.max_messages
        self.max_gas = blocks.max_gas
        self.header_size = blocks.header_size
        self.gas_of = gas_of
        self.quorum = max(1, math.ceil(blocks.quorum * n - 1e-9))
        self.height = [0] * n
        self.committed_height = 0
        self.block_ids = count(1)
        self.block_height: dict[int, int] = {}
        self.block_epoch: dict[int, int] = {}
        self.block_msgs: dict[int, list[int]] = {}  # height -> messages
        self.votes: dict[int, int] = {}
        # What each standby's mempool saw (it sequences that if it takes over).
        self.mempool: dict[int, list[int]] = {node: [] for node in ctx.cluster.standby}
        desync = ctx.scenario.desync
        self.desync = DesyncTracker(n, desync.max_height_gap, desync.min_duration, ctx.record.event)

    def start(self) -> None:
        self.ctx.events.push(self.block_interval, self._block_tick)

    # --- blocks -------------------------------------------------------------------------

    def _block_tick(self, t: int, _a: int, _b: int, _c: int, _d: int) -> None:
        ctx = self.ctx
        if t + self.block_interval <= ctx.hard_stop:
            ctx.events.push(t + self.block_interval, self._block_tick)
        cluster = ctx.cluster
        leader = cluster.leader
        if not cluster.up[leader]:
            return
        take, gas, size = self.sequencer.take_block(self.max_messages, self.max_gas, self.gas_of, self.header_size)
        height = self.height[leader] + 1
        live = ctx.msgs.live
        for record in map(live.__getitem__, take):
            record[WHERE] = IN_BLOCK
            record[BLOCK] = height
        self.block_msgs[height] = take
        self.votes[height] = 0
        block = next(self.block_ids)
        self.block_height[block] = height
        self.block_epoch[block] = cluster.epoch
        ctx.record.event(t, EventKind.BLOCK_PRODUCED, leader, float(len(take)), height, {"gas": gas, "bytes": size})
        if self.max_gas is not None:
            self.sequencer.on_block(t, gas, self.max_gas, height)
        else:
            self.sequencer.on_block(t, len(take), self.max_messages, height)
        self.height[leader] = height
        self._send_vote(t, leader, height, height)
        if cluster.isolated[leader]:
            self.lone.validate_block(t, leader)
        else:
            contents = ctx.msgs.contents(take) if self.gossip.wants_contents else None
            self.gossip.inject(t, leader, block, ITEM_BLOCK, size, contents=contents)
        self.desync.check(t, self.height[cluster.leader], self.height, cluster.up)

    def validated_block(self, t: int, node: int, block: int, sender: int) -> None:
        """``node`` validated ``block`` (received from ``sender``)."""
        if self.block_epoch[block] != self.ctx.cluster.epoch:
            return  # orphaned by a failover
        height = self.block_height[block]
        mine = self.height[node]
        if height == mine + 1:
            self.height[node] = height
            self._send_vote(t, node, height, height)
            self.desync.caught_up(t, node, self.height[self.ctx.cluster.leader] - self.height[node])
        elif height > mine + 1:
            # Missing blocks: fetch them from the sender, one round trip away.
            d = self.links.delay(node, sender) if sender >= 0 else None
            if d is None:  # lost on the way: the retry costs about the base latency
                d = self.topology.base_ns[self.topology.region_of[node]][self.topology.region_of[max(sender, 0)]]
            self.ctx.events.push(t + 2 * d, self._synced, node, height, self.ctx.cluster.epoch)

    def _synced(self, t: int, node: int, height: int, epoch: int, _d: int) -> None:
        cluster = self.ctx.cluster
        if epoch != cluster.epoch or not cluster.up[node] or self.height[node] >= height:
            return
        first = self.height[node] + 1
        self.height[node] = height
        self._send_vote(t, node, first, height)
        self.desync.caught_up(t, node, self.height[cluster.leader] - self.height[node])

    # --- votes and commits ----------------------------------------------------------------

    def _send_vote(self, t: int, node: int, first: int, last: int) -> None:
        cluster = self.ctx.cluster
        leader = cluster.leader
        if node == leader:
            self._vote(t, node, first, last, cluster.epoch)
            return
        if self.links.colour[node] != self.links.colour[leader]:
            return
        d = self.links.delay(node, leader)
        if d is not None:
            self.ctx.events.push(t + d, self._vote, node, first, last, cluster.epoch)

    def _vote(self, t: int, node: int, first: int, last: int, epoch: int) -> None:
        cluster = self.ctx.cluster
        if epoch != cluster.epoch or not cluster.up[cluster.leader]:
            return
        votes = self.votes
        for height in range(first, last + 1):
            if height in votes:
                votes[height] += 1
                if votes[height] >= self.quorum and height > self.committed_height:
                    self._commit(t, height)

    def _commit(self, t: int, height: int) -> None:
        ctx = self.ctx
        msgs = ctx.msgs
        live = msgs.live
        for h in range(self.committed_height + 1, height + 1):
            block = self.block_msgs.pop(h, [])
            settled = list(map(live.pop, block))
            for record in settled:
                record[T_COMMITTED] = t
                record[WHERE] = COMMITTED
            ctx.tally.committed += len(block)
            msgs.terminal += len(block)
            if self.on_commit is not None:  # an empty block too: a reactor may act in it
                self.on_commit(t, settled)
            ctx.record.settled(settled)
            self.votes.pop(h, None)
            ctx.record.event(t, EventKind.BLOCK_COMMITTED, ctx.cluster.leader, height=h)
        self.committed_height = height

    # --- leaders ----------------------------------------------------------------------------

    def saw(self, _t: int, node: int, m: int) -> None:
        """Standby ``node`` validated message ``m`` (handed back because a reactor watches
        it there): it goes into that node's mempool, after what the kernel logged before."""
        self._take_logged()
        self.into_mempool(node, m)

    def _take_logged(self) -> None:
        """The standbys' validations the gossip kernel logged (``GossipState.set_watched``)
        go into their mempools, in order; before anything reads or replaces a mempool."""
        rows = self.gossip.drain_mempool_log()
        self.into_mempools(rows[LOG_NODE], rows[LOG_ITEM])

    def into_mempools(self, nodes: np.ndarray, items: np.ndarray) -> None:
        """``into_mempool`` of each validation (``nodes[i]`` validated ``items[i]``), a
        standby's in one append: its mempool is then kept to what is unsettled once, not
        after each (a settled message is skipped at failover either way)."""
        if not len(items):
            return
        live = self.ctx.msgs.live
        for node, pool in self.mempool.items():
            mine = items[nodes == node]
            if mine.size:
                pool.extend(mine.tolist())
                if len(pool) > FLUSH_ROWS and len(pool) > 2 * len(live):
                    pool[:] = [m for m in pool if m in live]

    def into_mempool(self, node: int, m: int) -> None:
        """Standby ``node`` validated ``m``: into its mempool (none for a node that is not a
        standby, or is down)."""
        pool = self.mempool.get(node)
        if pool is None:
            return
        pool.append(m)
        live = self.ctx.msgs.live
        if len(pool) > FLUSH_ROWS and len(pool) > 2 * len(live):
            # Keep the standby's mempool to what is still unsettled (bounded memory; a
            # settled message is skipped at failover either way, so when does not matter).
            pool[:] = [m for m in pool if m in live]

    def node_down(self, node: int) -> None:
        self._take_logged()
        if node in self.mempool:
            self.mempool[node] = []

    def node_up(self, node: int, t: int) -> None:
        self._take_logged()
        if node in self.ctx.cluster.standby and node != self.ctx.cluster.leader:
            self.mempool[node] = []  # it restarts with an empty mempool

    def leader_down(self, t: int, node: int) -> None:
        """The leader crashed: a standby takes over after the failover timeout, if any."""
        ctx = self.ctx
        if any(s != node for s in ctx.cluster.standby):
            ctx.events.push(t + ctx.scenario.sequencer.failover_timeout, self.failover, ctx.cluster.epoch)

    def failover(self, t: int, epoch: int, _b: int, _c: int, _d: int) -> None:
        ctx = self.ctx
        cluster = ctx.cluster
        if epoch != cluster.epoch or cluster.up[cluster.leader]:
            return
        candidates = [s for s in cluster.standby if cluster.up[s] and s != cluster.leader]
        if not candidates:
            # No live standby yet: look again after another timeout (one may restart).
            retry = t + ctx.scenario.sequencer.failover_timeout
            if retry <= ctx.hard_stop:
                ctx.events.push(retry, self.failover, epoch)
            return
        old, new = cluster.leader, candidates[0]
        cluster.leader = new
        cluster.epoch += 1
        top = max(self.height[new], self.committed_height)
        orphaned = [h for h in self.block_msgs if h > top]
        for h in orphaned:
            messages = self.block_msgs.pop(h)
            if messages:
                self.sequencer.renumber_from(ctx.msgs.live[messages[0]][SEQ_NO])
            ctx.msgs.back_in_flight(messages)
        self.height = [min(h, top) for h in self.height]
        self.height[new] = top
        self.votes = {h: 0 for h in self.block_msgs}
        stale = {b for b in self.gossip.live_items(ITEM_BLOCK) if self.block_epoch[b] != cluster.epoch}
        self.gossip.stop_forwarding(ITEM_BLOCK, stale)
        self.gossip.set_watched([new], self.ctx.watched, logged=cluster.standby)
        ctx.record.event(t, EventKind.LEADER_CHANGE, new,
                         detail={"from": cluster.names[old], "orphaned_blocks": len(orphaned)})
        self._take_logged()
        pool = self.mempool.pop(new, [])
        for m in pool:
            self.sequencer.intake(t, m)
        self.sequencer.depth_changed(t)

    def close(self, t_end: int) -> None:
        """At the end: close open desync episodes."""
        top = self.height[self.ctx.cluster.leader]
        self.desync.close(t_end, [top - height for height in self.height])

    def busy(self) -> bool:
        """Blocks not yet committed hold messages, or a failover is still due."""
        return any(self.block_msgs.values()) or self.ctx.events.pending(self.failover)
