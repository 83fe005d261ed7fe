"""Round-based BFT consensus (Tendermint, as CometBFT runs it) in the shadow network.

Place in the pipeline: inside the simulator, a part of ``ForkChain`` (``sim/forks.py``)
when the scenario sets ``blocks.producers.consensus = "tendermint"``, beside the rules that
exist without it (the longest chain; finality by votes, ``sim/votes.py``). The producers are
the validators, their shares their voting power (whole numbers as given; otherwise each
share scaled to millionths of the total, at least 1). Every node runs the protocol's state
machine; only validators propose and vote (a full node commits what it sees committed).

The state machine is Algorithm 1 of "The latest gossip on BFT consensus" (Buchman, Kwon,
Milosevic, 2018), with CometBFT's choices where the paper leaves one open:

- ``StartRound(r)``: step propose; the proposer of (height, r) (``sim/proposer.py``,
  CometBFT's priority rule) proposes its valid value if it has one (a proposal message
  naming that block and its round), else builds a block ``prepare`` after the round starts
  (its application's PrepareProposal) on its last committed block, from its mempool, and
  gossips it as its block parts of 64 kB (CometBFT's ``BlockPartSizeBytes``), each a gossip
  item forwarded as soon as it is held (links, uplinks, bandwidth, partitions, as the votes
  and transactions); the block is whole at a node with its last part. Every validator, the
  proposer too (as CometBFT does), schedules ``timeout_propose + r × timeout_propose_delta``.
- A validator holds a proposal once it holds the block with its branch and has executed it
  (``execution``: its application's ProcessProposal); lines 22 and 28: then, in step propose,
  it prevotes the block (unlocked, or locked on it; line 28: with 2/3 prevotes for it at the
  proposal's valid round) or nil.
- Line 34: 2/3 of any prevotes of its round, in step prevote, the first time: schedule
  ``timeout_prevote + r × delta``; when it fires still in prevote: precommit nil.
- Line 36: the proposal and 2/3 prevotes for it, step prevote or later, the first time:
  lock on it and precommit it (in step prevote), and remember it as the valid value.
- Line 44: 2/3 prevotes for nil in step prevote: precommit nil.
- Line 47: 2/3 of any precommits of its round, the first time: schedule
  ``timeout_precommit + r × delta``; when it fires: the next round.
- Line 49: a proposal of any round with 2/3 precommits for it: decide (commit) the block,
  go to the next height and start its round 0 ``timeout_commit`` after (CometBFT's
  ``StartTime = CommitTime + timeout_commit``), or after the block's execution
  (``finalize_per_tx``) and the recheck of the mempool's rest (``recheck_per_tx``) when they
  take longer (CometBFT runs them in between); messages of that height received meanwhile
  count.
- Line 55: messages of a higher round from more than 1/3 of the voting power: go to it.

Quorums are integer voting power: 2/3 means ``3 × power > 2 × total`` (CometBFT's
``power > total × 2 / 3``), 1/3 means ``3 × power > total``. Proposals and votes are items of
the gossip network (``vote_size`` bytes, ids from ``VOTE_ITEM_BASE``), as blocks are. A
message of a later height than a node's is kept until the node gets there (CometBFT's
reactors send a peer what its height needs); a node behind (it was down or cut off) that
hears of a later height fetches the committed blocks from the peer that spoke, a round trip
away, and commits them (block sync), then goes on at the height after.

A message dropped on a cut link is sent again once the link carries (CometBFT's consensus
reactor: its routines send a peer the votes and block parts it lacks): when a partition
heals, each node sends its peers what they lack of their height (``sim/tendermint_gossip.py``),
and the rounds go on as their timeouts say. Without a heal nothing is sent twice.

A node that crashes keeps its state (CometBFT's write-ahead log) and on restart sets the
timeout of its step again. A block is committed (its messages' ``t_committed``) when the
first validator decides it; each node's decisions are rows of the ``heights`` table
(node, height, round, proposer, t_committed, interval_ns) and of ``finalized``.

Each upon-rule is a small method named after the paper's line; they are evaluated after
every change until none fires. Each node's round state (``RoundState``) and the values the
protocol's parts share are in ``sim/tendermint_state.py``.

Where the votes are counted: the rules compare counts of voting power with two thirds (and
one third of a later round's senders, line 55), so a vote that passes no threshold changes
nothing they can see. The gossip kernel therefore counts each node's votes of its height and
of its round or earlier itself (``kernel._count_vote``, into ``tally``: a column per height,
round, kind and block, and per height, round and kind for any block) and hands a vote back
only when one of its two counts passes two thirds; votes of an earlier height are dropped
there, and proposals, later rounds and later heights come back to Python as before (here
they are counted, as is each validator's own vote when sent). A height then costs a few
hand-backs a node instead of one per vote: the same history as one hand-back per vote.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from msgstorm.history.events import EventKind
from msgstorm.scenario.schema import TendermintSpec
from msgstorm.sim import kernel as k
from msgstorm.sim.context import SimContext
from msgstorm.sim.gossip import GossipState
from msgstorm.sim.kernel import ITEM_BLOCK
from msgstorm.sim.links import LinkState
from msgstorm.sim.proposer import ProposerSchedule
from msgstorm.sim.tendermint_gossip import HeldMessages, PeerGossip
from msgstorm.sim.tendermint_state import (
    ANY,
    BLOCK_PART_BYTES,
    MAX_PARTS,
    NEW_HEIGHT,
    NIL,
    PART_ITEM_BASE,
    PRECOMMIT,
    PRECOMMIT_STEP,
    PREVOTE,
    PREVOTE_STEP,
    PROPOSAL,
    PROPOSE,
    ConsensusChain,
    RoundState,
    block_parts,
    voting_powers,
)

__all__ = ["BLOCK_PART_BYTES", "NIL", "PART_ITEM_BASE", "ConsensusChain", "TendermintBook", "block_parts",
           "voting_powers"]

class TendermintBook:
    """Every node's consensus state; ``ForkChain`` hands it blocks held and messages received."""

    # False: every vote comes back from the kernel and is counted here, the reference
    # tests/test_sim_tendermint.py compares the kernel's counting with.
    count_in_kernel = True

    def __init__(self, ctx: SimContext, gossip: GossipState, links: LinkState, chain: ConsensusChain,
                 validators: list[int], powers: list[int], spec: TendermintSpec,
                 item_base: int) -> None:
        self.ctx = ctx
        self.gossip = gossip
        self.links = links
        self.chain = chain
        self.spec = spec
        self.item_base = item_base
        self.validators = validators
        self.powers = powers
        self.total = sum(powers)
        self.schedule = ProposerSchedule(powers)
        index = {node: i for i, node in enumerate(validators)}
        self.nodes = [RoundState(node, index.get(node, -1)) for node in range(ctx.cluster.size)]
        # Every proposal and vote sent: kind, validator, height, round, block, valid round.
        self.m_kind: list[int] = []
        self.m_validator: list[int] = []
        self.m_height: list[int] = []
        self.m_round: list[int] = []
        self.m_block: list[int] = []
        self.m_valid_round: list[int] = []
        self.proposed: dict[int, tuple[int, int, int]] = {}  # block -> (height, round, proposer) it was made for
        self.decided: dict[int, tuple[int, int]] = {}  # height -> (block, round): the first decision
        self.rows: list[tuple[int, int, int, int, int, int]] = []  # (node, height, round, proposer, t, interval)
        self.parts: dict[int, list[int]] = {}  # block -> its parts' sizes
        self.proposed_at: dict[int, list[int]] = {}  # height -> the blocks proposed for it, gossiped as parts
        self.full: set[int] = set()  # nodes whose mempool is full until their next commit
        # (node, block) -> the parts it validated (bit i: part i), until the block is whole there
        self.parts_held: dict[tuple[int, int], int] = {}
        # The votes each node counted, as the gossip kernel reads and adds to them
        # (``kernel._count_vote``): every message in ``votes``, each node's height, round and
        # counts in ``tally``, a column for each (height, round, kind, block or ANY) voted.
        self.votes = np.zeros((k.V_ROWS, 1024), dtype=np.int64)
        self.messages_held = HeldMessages(ctx.cluster.size, self.votes.shape[1])
        self.peer_gossip = PeerGossip(ctx, gossip, links, self, spec.vote_size)
        self.tally = np.zeros((ctx.cluster.size, k.T_FIRST + 64), dtype=np.int64)
        self.tally[:, k.T_HEIGHT] = 1
        self.columns: dict[tuple[int, int, int, int], int] = {}
        self.columns_of: dict[int, list[tuple[int, int, int, int]]] = {}  # height -> its columns' keys
        self.free_columns = list(range(self.tally.shape[1] - 1, k.T_FIRST - 1, -1))
        self.precommit_rounds: dict[int, list[int]] = {}  # height -> rounds with precommits, ascending
        self.m_columns: list[tuple[int, int]] = []  # message -> (its block's column, ANY's); -1: a proposal
        self.in_kernel = self.count_in_kernel
        if self.in_kernel:
            gossip.count_votes(item_base, self.votes, self.tally, self.total, self.messages_held.bits)

    # --- the schedule -----------------------------------------------------------------------

    def _at(self, t: int, handler: Callable[[int, int, int, int, int], None], a: int = 0, b: int = 0,
            c: int = 0) -> None:
        if t <= self.ctx.hard_stop:
            self.ctx.events.push(t, handler, a, b, c)

    def start(self, t: int) -> None:
        """Height 1 starts at ``t`` at every node."""
        for state in self.nodes:
            self._at(t, self._start_height, state.node, 1)

    def proposer(self, height: int, round_: int) -> int:
        """The node proposing at (height, round)."""
        return self.validators[self.schedule.proposer(height, round_)]

    # --- StartRound and the timeouts ---------------------------------------------------------

    def _start_height(self, t: int, node: int, height: int, _c: int, _d: int) -> None:
        state = self.nodes[node]
        if self.ctx.cluster.up[node] and state.height == height and state.step == NEW_HEIGHT and state.round == 0:
            self._start_round(t, state, 0)
            self._upon(t, state)

    def _start_round(self, t: int, state: RoundState, round_: int) -> None:
        state.round = round_
        self.tally[state.node, k.T_ROUND] = round_
        state.step = PROPOSE
        height = state.height
        spec = self.spec
        if self.proposer(height, round_) == state.node:
            if state.valid_value != NIL:
                self._send(t, state, PROPOSAL, state.valid_value, state.valid_round)
            else:
                self._at(t + spec.prepare, self._build, state.node, height, round_)
        self._at(t + spec.timeout_propose + round_ * spec.timeout_propose_delta, self._timeout_propose,
                 state.node, height, round_)

    def _build(self, t: int, node: int, height: int, round_: int, _d: int) -> None:
        """The proposer's block is ready: made and gossiped (late or not), then held."""
        state = self.nodes[node]
        if not self.ctx.cluster.up[node] or state.height != height:
            return
        block = self.chain.propose_block(t, node, state.last_block)
        self.proposed[block] = (height, round_, state.validator)
        if block in self.parts:  # gossiped as parts (not from a node without peers)
            self.proposed_at.setdefault(height, []).append(block)
        self._round_voter(state, round_, state.validator)
        self.held(t, node, block)

    def _timeout_propose(self, t: int, node: int, height: int, round_: int, _d: int) -> None:
        state = self.nodes[node]
        if self._current(state, height, round_) and state.step == PROPOSE:
            self._prevote(t, state, NIL)
            self._upon(t, state)

    def _timeout_prevote(self, t: int, node: int, height: int, round_: int, _d: int) -> None:
        state = self.nodes[node]
        if self._current(state, height, round_) and state.step == PREVOTE_STEP:
            self._precommit(t, state, NIL)
            self._upon(t, state)

    def _timeout_precommit(self, t: int, node: int, height: int, round_: int, _d: int) -> None:
        state = self.nodes[node]
        if self._current(state, height, round_):
            self._start_round(t, state, round_ + 1)
            self._upon(t, state)

    def _current(self, state: RoundState, height: int, round_: int) -> bool:
        return self.ctx.cluster.up[state.node] and state.height == height and state.round == round_

    # --- sending --------------------------------------------------------------------------

    def _prevote(self, t: int, state: RoundState, block: int) -> None:
        state.step = PREVOTE_STEP
        if state.validator >= 0:
            self._send(t, state, PREVOTE, block, -1)

    def _precommit(self, t: int, state: RoundState, block: int) -> None:
        state.step = PRECOMMIT_STEP
        if state.validator >= 0:
            self._send(t, state, PRECOMMIT, block, -1)

    def _send(self, t: int, state: RoundState, kind: int, block: int, valid_round: int) -> None:
        """A message of ``state``'s validator at its height and round: counted there at once,
        gossiped to the rest."""
        message = len(self.m_kind)
        height, round_ = state.height, state.round
        self.m_kind.append(kind)
        self.m_validator.append(state.validator)
        self.m_height.append(height)
        self.m_round.append(round_)
        self.m_block.append(block)
        self.m_valid_round.append(valid_round)
        columns = (-1, -1) if kind == PROPOSAL else (self._column(height, round_, kind, block),
                                                     self._column(height, round_, kind, ANY))
        self.m_columns.append(columns)
        grew = message >= self.votes.shape[1]
        if grew:
            grown = np.zeros((k.V_ROWS, 2 * self.votes.shape[1]), dtype=np.int64)
            grown[:, :message] = self.votes[:, :message]
            self.votes = grown
        widened = self.messages_held.added(message, height, self.votes.shape[1])
        if (grew or widened) and self.in_kernel:
            self.gossip.count_votes(self.item_base, self.votes, self.tally, self.total, self.messages_held.bits)
        self.votes[:, message] = (height, round_, kind, self.powers[state.validator], columns[0], columns[1])
        self.gossip.scalars[k.S_VOTE_COUNT] = message + 1
        self.messages_held.mark(state.node, message)
        self._add(t, state, message, state.node)
        if not self.ctx.cluster.isolated[state.node]:
            self.gossip.inject(t, state.node, self.item_base + message, ITEM_BLOCK, self.spec.vote_size)

    def turned_away(self, t: int, node: int) -> None:
        """``node``'s mempool was full for an arrival: an event, once a node and height."""
        if node not in self.full:
            self.full.add(node)
            self.ctx.record.event(t, EventKind.MEMPOOL_FULL, node, float(self.spec.mempool_size),
                                  self.nodes[node].height)

    # --- block parts ----------------------------------------------------------------------

    def gossip_parts(self, t: int, node: int, block: int, size_bytes: int) -> None:
        """A proposal's block leaves ``node`` as its parts, each a gossip item: a node that
        holds a part forwards it at once, so parts travel pipelined, on the links and uplinks
        the votes and transactions use."""
        sizes = block_parts(size_bytes)
        if len(sizes) > MAX_PARTS:
            raise ValueError(f"a block of {size_bytes} bytes has more than {MAX_PARTS} parts")
        self.parts[block] = sizes
        first = PART_ITEM_BASE + block * MAX_PARTS
        for index, size in enumerate(sizes):
            self.gossip.inject(t, node, first + index, ITEM_BLOCK, size)

    def part_received(self, t: int, node: int, item: int, sender: int) -> bool:
        """``node`` validated a block part: with the last of its block's, the block is whole
        there. Whether it lacked the part (a part sent again after a heal may come twice)."""
        block, index = divmod(item - PART_ITEM_BASE, MAX_PARTS)
        if self.chain.block_arrived(node, block):
            return False
        key = (node, block)
        before = self.parts_held.get(key, 0)
        held = before | 1 << index
        if held == before:
            return False
        if held.bit_count() < len(self.parts[block]):
            self.parts_held[key] = held
            return True
        self.parts_held.pop(key, None)
        self.chain.receive_block(t, node, block, sender)
        return True

    # --- receiving ------------------------------------------------------------------------

    def received(self, t: int, node: int, item: int, sender: int) -> None:
        """``node`` validated the proposal or vote item ``item`` from ``sender``."""
        if not self.ctx.cluster.up[node]:
            return
        state = self.nodes[node]
        message = item - self.item_base
        if not self.in_kernel and sender >= 0:  # else the kernel marked it held, or dropped a second copy
            if self.messages_held.holds(node, message):
                return
            self.messages_held.mark(node, message)
        height = self.m_height[message]
        if height < state.height:
            return
        if height > state.height:
            state.future.setdefault(height, []).append(message)
            self._behind(t, state, height, sender)
            return
        if self.m_kind[message] == PROPOSAL or self.m_round[message] > state.round:
            self._add(t, state, message, sender)
        elif not self.in_kernel:
            if self.validators[self.m_validator[message]] != node:  # its own was counted when sent
                self._add(t, state, message, sender)
        # else the kernel counted it (``kernel._count_vote``) and hands it back only when a
        # count passed two thirds
        self._upon(t, state)

    def held(self, t: int, node: int, block: int) -> None:
        """``node`` holds ``block`` with its branch: a proposal, once executed."""
        made = self.proposed.get(block)
        if made is None or not self.ctx.cluster.up[node]:
            return
        cost = self.spec.execution + self.spec.execution_per_tx * len(self.chain.contents[block])
        self._at(t + cost, self._executed, node, block)

    def _executed(self, t: int, node: int, block: int, _c: int, _d: int) -> None:
        state = self.nodes[node]
        if not self.ctx.cluster.up[node]:
            return
        height, round_, _ = self.proposed[block]
        if height > state.height:
            state.future.setdefault(height, []).append(-(block + 1))
            return
        if height < state.height:
            return
        self._proposal(state, block)
        self._upon(t, state)

    def _proposal(self, state: RoundState, block: int) -> None:
        """``block`` is held and executed at ``state``'s height: the proposal it was made for,
        and any proposal of a later round that named it."""
        _, round_, proposer = self.proposed[block]
        state.proposals.setdefault(round_, (block, -1))
        self._round_voter(state, round_, proposer)
        for later, valid_round in state.awaiting.pop(block, ()):
            state.proposals.setdefault(later, (block, valid_round))

    def _add(self, t: int, state: RoundState, message: int, sender: int) -> None:
        kind, round_, block = self.m_kind[message], self.m_round[message], self.m_block[message]
        validator = self.m_validator[message]
        self._round_voter(state, round_, validator)
        if kind == PROPOSAL:
            if self.proposed[block][0] == state.height and self._has_executed(state, block):
                state.proposals.setdefault(round_, (block, self.m_valid_round[message]))
            else:
                state.awaiting.setdefault(block, []).append((round_, self.m_valid_round[message]))
                if not self.chain.holds_block(state.node, block) and sender != state.node:
                    self.chain.fetch_block(t, state.node, block, sender)
            return
        # A validator sends one vote of a kind a round, and a node takes a message once (one
        # it holds, ``messages_held``, is dropped when sent again after a heal), so every vote
        # is counted once: here (its sender's own, a later round's or height's, one sent
        # again) or in the kernel (the rest).
        power = self.powers[validator]
        block_column, any_column = self.m_columns[message]
        self.tally[state.node, block_column] += power
        self.tally[state.node, any_column] += power

    def _column(self, height: int, round_: int, kind: int, block: int) -> int:
        """The column of ``tally`` counting votes of (height, round, kind) for ``block`` (or
        ANY), made on first use: a free one zeroed (those of heights below every node's are
        freed first when none is), else the table doubled."""
        key = (height, round_, kind, block)
        column = self.columns.get(key)
        if column is not None:
            return column
        if not self.free_columns:
            self._free_columns()
        column = self.free_columns.pop()
        self.tally[:, column] = 0
        self.columns[key] = column
        self.columns_of.setdefault(height, []).append(key)
        if kind == PRECOMMIT and block == ANY:
            rounds = self.precommit_rounds.setdefault(height, [])
            rounds.append(round_)
            rounds.sort()
        return column

    def _free_columns(self) -> None:
        lowest = int(self.tally[:, k.T_HEIGHT].min())
        for height in [h for h in self.columns_of if h < lowest]:
            for key in self.columns_of.pop(height):
                self.free_columns.append(self.columns.pop(key))
            self.precommit_rounds.pop(height, None)
        if self.free_columns:
            return
        width = self.tally.shape[1]
        grown = np.zeros((self.tally.shape[0], k.T_FIRST + 2 * (width - k.T_FIRST)), dtype=np.int64)
        grown[:, :width] = self.tally
        self.tally = grown
        self.free_columns = list(range(grown.shape[1] - 1, width - 1, -1))
        if self.in_kernel:
            self.gossip.count_votes(self.item_base, self.votes, self.tally, self.total, self.messages_held.bits)

    def _count(self, state: RoundState, round_: int, kind: int, block: int) -> int:
        """The voting power ``state`` counted for ``block`` (or ANY) in votes of its height."""
        column = self.columns.get((state.height, round_, kind, block))
        return 0 if column is None else int(self.tally[state.node, column])

    def _has_executed(self, state: RoundState, block: int) -> bool:
        """Whether ``state`` holds the block a proposal of its round 0.. names (the block's
        own proposal is then in ``proposals``)."""
        round_ = self.proposed[block][1]
        return state.proposals.get(round_, (NIL, -1))[0] == block

    def _round_voter(self, state: RoundState, round_: int, validator: int) -> None:
        state.round_voters.setdefault(round_, set()).add(validator)

    # --- the upon-rules -------------------------------------------------------------------

    def _quorum(self, power: int) -> bool:
        return 3 * power > 2 * self.total

    def _upon(self, t: int, state: RoundState) -> None:
        """Every rule that holds fires, until none does."""
        while self.ctx.cluster.up[state.node] and (
                self._line_49_decide(t, state) or self._line_55_skip(t, state) or self._line_22_propose(t, state)
                or self._line_28_repropose(t, state) or self._line_34_prevote_timer(t, state)
                or self._line_36_lock(t, state) or self._line_44_nil(t, state)
                or self._line_47_precommit_timer(t, state)):
            pass

    def _line_22_propose(self, t: int, state: RoundState) -> bool:
        found = state.proposals.get(state.round)
        if state.step != PROPOSE or found is None or found[1] != -1:
            return False
        block = found[0]
        self._prevote(t, state, block if state.locked_round == -1 or state.locked_value == block else NIL)
        return True

    def _line_28_repropose(self, t: int, state: RoundState) -> bool:
        found = state.proposals.get(state.round)
        if state.step != PROPOSE or found is None or not 0 <= found[1] < state.round:
            return False
        block, valid_round = found
        if not self._quorum(self._count(state, valid_round, PREVOTE, block)):
            return False
        self._prevote(t, state, block if state.locked_round <= valid_round or state.locked_value == block else NIL)
        return True

    def _line_34_prevote_timer(self, t: int, state: RoundState) -> bool:
        key = (34, state.round)
        if (state.step != PREVOTE_STEP or key in state.fired
                or not self._quorum(self._count(state, state.round, PREVOTE, ANY))):
            return False
        state.fired.add(key)
        spec = self.spec
        self._at(t + spec.timeout_prevote + state.round * spec.timeout_prevote_delta, self._timeout_prevote,
                 state.node, state.height, state.round)
        return True

    def _line_36_lock(self, t: int, state: RoundState) -> bool:
        found = state.proposals.get(state.round)
        key = (36, state.round)
        if (state.step < PREVOTE_STEP or found is None or key in state.fired
                or not self._quorum(self._count(state, state.round, PREVOTE, found[0]))):
            return False
        state.fired.add(key)
        block = found[0]
        if state.step == PREVOTE_STEP:
            state.locked_value, state.locked_round = block, state.round
            self._precommit(t, state, block)
        state.valid_value, state.valid_round = block, state.round
        return True

    def _line_44_nil(self, t: int, state: RoundState) -> bool:
        if state.step != PREVOTE_STEP or not self._quorum(self._count(state, state.round, PREVOTE, NIL)):
            return False
        self._precommit(t, state, NIL)
        return True

    def _line_47_precommit_timer(self, t: int, state: RoundState) -> bool:
        key = (47, state.round)
        if (state.step == NEW_HEIGHT or key in state.fired
                or not self._quorum(self._count(state, state.round, PRECOMMIT, ANY))):
            return False
        state.fired.add(key)
        spec = self.spec
        self._at(t + spec.timeout_precommit + state.round * spec.timeout_precommit_delta, self._timeout_precommit,
                 state.node, state.height, state.round)
        return True

    def _line_49_decide(self, t: int, state: RoundState) -> bool:
        for round_ in self.precommit_rounds.get(state.height, ()):
            found = state.proposals.get(round_)
            if found is not None and self._quorum(self._count(state, round_, PRECOMMIT, found[0])):
                self._decide(t, state, found[0], round_)
                return True
        return False

    def _line_55_skip(self, t: int, state: RoundState) -> bool:
        for round_ in sorted(state.round_voters, reverse=True):
            if round_ <= state.round:
                return False
            if 3 * sum(self.powers[v] for v in state.round_voters[round_]) > self.total:
                self._start_round(t, state, round_)
                return True
        return False

    # --- deciding and catching up ------------------------------------------------------------

    def _decide(self, t: int, state: RoundState, block: int, round_: int) -> None:
        """``state`` commits ``block`` at its height (decided in ``round_``), goes to the next
        height, takes what it kept for it, and starts it ``timeout_commit`` later."""
        height = state.height
        first = height not in self.decided
        if first:
            self.decided[height] = (block, round_)
        interval = t - state.last_commit_t if state.last_commit_t >= 0 else -1
        proposer = self.validators[self.proposed[block][2]]
        self.rows.append((state.node, height, round_, proposer, t, interval))
        state.last_commit_t = t
        self.chain.committed_block(t, state.node, height, block, first)
        state.next_height(block)
        self.tally[state.node, k.T_HEIGHT] = state.height
        self.tally[state.node, k.T_ROUND] = 0
        for kept in state.future.pop(state.height, ()):
            if kept >= 0:
                self._add(t, state, kept, state.node)
            else:
                self._proposal(state, -kept - 1)
        self.peer_gossip.entered(t, state.node)
        self._at(t + max(self.spec.timeout_commit, self._apply_ns(state.node, block)), self._start_height,
                 state.node, state.height)

    def _apply_ns(self, node: int, block: int) -> int:
        """What a node does between its commit and its next height: the block executed
        (FinalizeBlock) and its mempool's remaining transactions rechecked. CometBFT runs it
        inside ``timeout_commit`` (``StartTime = CommitTime + timeout_commit``), so it delays
        the next height only when it takes longer."""
        spec = self.spec
        apply_ns = spec.finalize_per_tx * len(self.chain.contents[block])
        if spec.recheck_per_tx:
            apply_ns += spec.recheck_per_tx * self.chain.mempool_left(node)
        return apply_ns

    def _behind(self, t: int, state: RoundState, height: int, sender: int) -> None:
        """A message of a later height came from ``sender``: ask it for the committed blocks
        up to that height, a round trip away (none asked while a request is out)."""
        if state.catching or state.height not in self.decided or sender == state.node:
            return
        links = self.links
        if links.colour[state.node] != links.colour[sender]:
            return
        delay = links.delay(state.node, sender)
        if delay is None:  # lost: the retry costs about the base latency
            delay = links.base_ns[links.region_of[state.node]][links.region_of[sender]]
        state.catching = True
        self._at(t + 2 * delay, self._caught_up, state.node, height)

    def _caught_up(self, t: int, node: int, height: int, _c: int, _d: int) -> None:
        """The committed blocks below ``height`` came: committed in order (those still needed)."""
        state = self.nodes[node]
        state.catching = False
        if not self.ctx.cluster.up[node]:
            return
        while state.height < height and state.height in self.decided:
            block, round_ = self.decided[state.height]
            if not self.chain.holds_block(node, block):
                self.chain.receive_block(t, node, block)
            self._decide(t, state, block, round_)
        self._upon(t, state)

    # --- what a heal sends again (sim/tendermint_gossip.py) ---------------------------------

    def healed(self, t: int) -> None:
        """Links cut by a partition carry again: peers sync what they lack."""
        self.peer_gossip.healed(t)

    def height_of(self, node: int) -> int:
        return self.nodes[node].height

    def blocks_at(self, height: int) -> list[int]:
        return self.proposed_at.get(height, [])

    def top_height(self) -> int:
        """The highest height any proposal or vote was made for."""
        return max(max(self.proposed_at, default=0), max(self.messages_held.at_height, default=0))

    def block_count(self) -> int:
        return len(self.chain.block_height)

    def part_sizes(self, block: int) -> list[int]:
        return self.parts[block]

    def parts_of(self, node: int, block: int) -> int:
        """The parts of ``block`` that ``node`` holds, bit i for part i (every bit once the
        block came whole)."""
        if self.chain.block_arrived(node, block):
            return (1 << len(self.parts[block])) - 1
        return self.parts_held.get((node, block), 0)

    def part_regossiped(self, t: int, node: int, block: int, index: int, sender: int) -> bool:
        """A part a peer sent again reached ``node``: as if gossip brought it."""
        return self.part_received(t, node, PART_ITEM_BASE + block * MAX_PARTS + index, sender)

    def regossiped(self, t: int, node: int, message: int, sender: int) -> bool:
        """A proposal or vote a peer sent again reached ``node``: taken and counted as if
        gossip brought it, unless the node holds it. Whether it lacked it, at its height or
        a later one."""
        if self.messages_held.holds(node, message):
            return False
        self.messages_held.mark(node, message)
        state = self.nodes[node]
        height = self.m_height[message]
        if height < state.height:
            return False
        if height > state.height:
            state.future.setdefault(height, []).append(message)
            self._behind(t, state, height, sender)
        else:
            self._add(t, state, message, sender)
            self._upon(t, state)
        return True

    def later_height(self, t: int, node: int, height: int, sender: int) -> None:
        """``sender`` told ``node`` it is at ``height``: a node behind fetches the committed blocks."""
        state = self.nodes[node]
        if height > state.height:
            self._behind(t, state, height, sender)

    # --- faults ---------------------------------------------------------------------------

    def restarted(self, t: int, node: int) -> None:
        """A node back up keeps its state and sets its step's timeout again."""
        state = self.nodes[node]
        spec = self.spec
        round_, height = state.round, state.height
        if state.step == NEW_HEIGHT:
            self._at(t, self._start_height, node, height)
        elif state.step == PROPOSE:
            self._at(t + spec.timeout_propose + round_ * spec.timeout_propose_delta, self._timeout_propose,
                     node, height, round_)
        elif state.step == PREVOTE_STEP:
            self._at(t + spec.timeout_prevote + round_ * spec.timeout_prevote_delta, self._timeout_prevote,
                     node, height, round_)
        else:
            self._at(t + spec.timeout_precommit + round_ * spec.timeout_precommit_delta, self._timeout_precommit,
                     node, height, round_)

    def take_rows(self) -> list[tuple[int, int, int, int, int, int]]:
        rows, self.rows = self.rows, []
        return rows
