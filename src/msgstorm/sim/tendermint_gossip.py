"""Consensus messages sent again over links that carry again (CometBFT's consensus reactor).

Place in the pipeline: inside the simulator, a part of ``TendermintBook``
(``sim/tendermint.py``). The gossip kernel sends each proposal, vote and block part once
along every link of the overlay, so one dropped on a cut link is gone. CometBFT's consensus
reactor keeps, for each peer, what the peer has (``PeerRoundState``: its height, round and
step, the votes it has from ``HasVote`` and ``VoteSetBits``, the proposal's parts it has),
and its routines (``gossipDataRoutine``, ``gossipVotesRoutine``) keep sending the peer what
it lacks. Here:

- ``HeldMessages`` says which proposals and votes each node holds: a bit per node and
  message, set by the kernel as it counts a vote (``kernel._count_vote``) and by
  ``TendermintBook`` for the rest; ``TendermintBook.parts_held`` says which block parts.
- When a partition heals (``PeerGossip.healed``), every node sends each overlay peer it
  reaches what the peer lacks of the peer's height (a "sync"): the proposals and votes of
  any round sent before the heal, and the parts of the blocks proposed before it (what a
  cut may have dropped; what is sent later, gossip carries). A peer at a lower height hears
  the sender's height instead (CometBFT's ``NewRoundStep``) and fetches the committed
  blocks, as on any message of a later height; when a node gets to a new height that such
  messages belong to (``entered``), its peers hear of it a link's delay later and sync it.
- A sync arrives a link's delay after it leaves, plus its bytes at the slower of the
  sender's upload and the receiver's download (it does not queue behind the kernel's
  copies); one lost on a lossy link is tried again ``PEER_GOSSIP_SLEEP_NS`` later (CometBFT's
  ``peer_gossip_sleep_duration``). A node sends a peer nothing it sent it before (the peer
  state marks a vote or part sent). The peer takes each message it lacked, once, as if
  gossip brought it, and then syncs its own peers with what it learned.

CometBFT's routines send a peer the votes of the round the peer is in, and those of the next
round once it gets there; a sync sends every round of the height at once, so a peer behind
by rounds may move up at once (line 55) rather than time out through them. Without a heal
nothing here runs.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from typing import Protocol

import numpy as np

from msgstorm.sim.context import SimContext
from msgstorm.sim.gossip import GossipState
from msgstorm.sim.links import LinkState

__all__ = ["PEER_GOSSIP_SLEEP_NS", "HeldMessages", "PeerGossip", "SyncedBook"]

PEER_GOSSIP_SLEEP_NS = 100_000_000  # CometBFT's peer_gossip_sleep_duration (config/config.go)


class HeldMessages:
    """Which proposals and votes each node holds, and the messages of each height."""

    def __init__(self, nodes: int, capacity: int) -> None:
        # bits[node, m >> 3] bit m & 7: the kernel's ``votes_held``, replaced as it grows.
        self.bits = np.zeros((nodes, -(-capacity // 8)), dtype=np.uint8)
        self.at_height: dict[int, list[int]] = {}
        self.count = 0  # messages sent

    def added(self, message: int, height: int, capacity: int) -> bool:
        """A message was sent (ids in order): listed at its height; whether ``bits`` grew to
        hold ``capacity`` messages (the kernel then needs the new array)."""
        self.at_height.setdefault(height, []).append(message)
        self.count = message + 1
        columns = -(-capacity // 8)
        if columns <= self.bits.shape[1]:
            return False
        grown = np.zeros((self.bits.shape[0], columns), dtype=np.uint8)
        grown[:, :self.bits.shape[1]] = self.bits
        self.bits = grown
        return True

    def holds(self, node: int, message: int) -> bool:
        return bool(self.bits[node, message >> 3] & (1 << (message & 7)))

    def mark(self, node: int, message: int) -> None:
        self.bits[node, message >> 3] |= 1 << (message & 7)

    def lacking(self, sender: int, peer: int, height: int, below: int) -> list[int]:
        """The messages of ``height`` below id ``below`` that ``sender`` holds and ``peer``
        does not, in order."""
        listed = self.at_height.get(height)
        if not listed:
            return []
        ids = np.asarray(listed[:bisect_left(listed, below)], dtype=np.int64)
        byte, bit = ids >> 3, (1 << (ids & 7)).astype(np.uint8)
        mask = ((self.bits[sender, byte] & bit) != 0) & ((self.bits[peer, byte] & bit) == 0)
        found: list[int] = ids[mask].tolist()
        return found


class SyncedBook(Protocol):
    """What the syncs need of the consensus state (``TendermintBook``)."""

    messages_held: HeldMessages

    def height_of(self, node: int) -> int: ...

    def blocks_at(self, height: int) -> list[int]: ...

    def top_height(self) -> int: ...

    def block_count(self) -> int: ...

    def parts_of(self, node: int, block: int) -> int: ...

    def part_sizes(self, block: int) -> list[int]: ...

    def regossiped(self, t: int, node: int, message: int, sender: int) -> bool: ...

    def part_regossiped(self, t: int, node: int, block: int, index: int, sender: int) -> bool: ...

    def later_height(self, t: int, node: int, height: int, sender: int) -> None: ...


class PeerGossip:
    """Syncs between peers after a heal: what each sends, when it arrives, what follows."""

    def __init__(self, ctx: SimContext, gossip: GossipState, links: LinkState, book: SyncedBook,
                 vote_size: int) -> None:
        self.ctx = ctx
        self.gossip = gossip
        self.links = links
        self.book = book
        self.vote_size = vote_size
        # What a cut may have dropped: messages and blocks made before the last heal, of
        # heights up to ``top`` (0: no heal yet, nothing to sync).
        self.messages_before = 0
        self.blocks_before = 0
        self.top = 0
        self.feeding: list[list[int]] = []  # node -> the peers that forward to it
        # (node, peer) -> the messages and parts (block, index) node sent peer in a sync: as
        # CometBFT's PeerState marks a vote or part the peer has once sent, none goes twice.
        self.sent: dict[tuple[int, int], tuple[set[int], set[tuple[int, int]]]] = {}
        self.in_flight: dict[int, tuple[list[int], list[tuple[int, int]], int]] = {}
        self.next_sync = 0

    def healed(self, t: int) -> None:
        """Links carry again: every node syncs each overlay peer it reaches."""
        book = self.book
        self.sent = {}  # connections made again: each side's PeerState starts empty
        self.messages_before = book.messages_held.count
        self.blocks_before = book.block_count()
        self.top = book.top_height()
        forward = self.gossip.forward
        self.feeding = [[] for _ in forward]
        for node, peers in enumerate(forward):
            for peer in peers:
                self.feeding[peer].append(node)
        for node, peers in enumerate(forward):
            for peer in peers:
                self.sync(t, node, peer)

    def entered(self, t: int, node: int) -> None:
        """``node`` got to a new height: if a cut may have dropped messages of it, each peer
        hears so a link's delay later and syncs it."""
        if self.book.height_of(node) > self.top:
            return
        links = self.links
        for peer in self.feeding[node]:
            delay = links.delay(node, peer)
            self._at(t + (PEER_GOSSIP_SLEEP_NS if delay is None else delay), self.sync, peer, node)

    def sync(self, t: int, node: int, peer: int, _c: int = 0, _d: int = 0) -> None:
        """``node`` sends ``peer`` what the peer lacks of its height (nothing when either is
        down or a partition parts them)."""
        up, colour = self.ctx.cluster.up, self.links.colour
        if not up[node] or not up[peer] or colour[node] != colour[peer]:
            return
        book = self.book
        height = book.height_of(peer)
        ahead = book.height_of(node)
        sent_messages, sent_parts = self.sent.setdefault((node, peer), (set(), set()))
        messages = [m for m in book.messages_held.lacking(node, peer, height, self.messages_before)
                    if m not in sent_messages]
        parts: list[tuple[int, int]] = []
        size = len(messages) * self.vote_size
        for block in book.blocks_at(height):
            if block >= self.blocks_before:
                break
            missing = book.parts_of(node, block) & ~book.parts_of(peer, block)
            sizes = book.part_sizes(block)
            while missing:
                index = (missing & -missing).bit_length() - 1
                missing &= missing - 1
                if (block, index) not in sent_parts:
                    parts.append((block, index))
                    size += sizes[index]
        if not messages and not parts and ahead <= height:
            return
        delay = self.links.delay(node, peer)
        if delay is None:  # lost on a lossy link: the routine tries again after its sleep
            self._at(t + PEER_GOSSIP_SLEEP_NS, self.sync, node, peer)
            return
        per_byte = self.gossip.ns_per_byte
        transfer = int(size * max(per_byte[0, node], per_byte[1, peer]))
        sent_messages.update(messages)
        sent_parts.update(parts)
        key = self.next_sync
        self.next_sync += 1
        self.in_flight[key] = (messages, parts, ahead if ahead > height else 0)
        self._at(t + delay + transfer, self._arrived, key, node, peer)

    def _arrived(self, t: int, key: int, node: int, peer: int, _d: int) -> None:
        """A sync from ``node`` reached ``peer``: what it lacked is taken, then passed on."""
        messages, parts, ahead = self.in_flight.pop(key)
        if not self.ctx.cluster.up[peer]:  # its connection dropped: nothing sent is known had
            sent = self.sent.get((node, peer))  # (none: a later heal started the peer state afresh)
            if sent is not None:
                sent[0].difference_update(messages)
                sent[1].difference_update(parts)
            return
        book = self.book
        learned = False
        for block, index in parts:
            learned = book.part_regossiped(t, peer, block, index, node) or learned
        for message in messages:
            learned = book.regossiped(t, peer, message, node) or learned
        if ahead:
            book.later_height(t, peer, ahead, node)
        if learned:
            for other in self.gossip.forward[peer]:
                if other != node:
                    self.sync(t, peer, other)

    def _at(self, t: int, handler: Callable[[int, int, int, int, int], None], a: int, b: int, c: int = 0) -> None:
        if t <= self.ctx.hard_stop:
            self.ctx.events.push(t, handler, a, b, c)
