"""The chain target: the scenario's traffic as transactions to an EVM node, and what its chain did.

Place in the pipeline: ``runner`` -> **ChainTarget** -> history, beside ``LiveTarget``
(brokers) and ``ShadowNetwork`` (sim). It writes the same tables, so the analysis (knee,
latency split, base-fee timeline, per-kind tables) reads an anvil run as it reads a sim run.

What the chain did: new heads over WebSocket (``eth_subscribe``), each block then read
(``eth_getBlockByNumber``, its transactions' hashes); the head's arrival is ``t_committed``
(and ``t_dequeued`` and ``t_sequenced``: the pool is the queue, and a transaction leaves it
in a block) of msgstorm's transactions in it, ``block`` its number, ``seq_no`` the order of inclusion on the
chain. Columns: ``t_sent`` the write of its batch (its hand-over while no connection is
open: the first sends, after a restart), ``t_received`` the node's answer
(accepted into the pool or refused; the head of the block holding it when that came first). So the latency split reads: ``propagation`` the
JSON-RPC answer, ``queue_wait`` the wait in the pool until a block. Statuses: ``committed`` (included), ``rejected``
(refused; the reasons in ``tx_rejected`` events), ``pending`` (accepted, still in the pool
at the drain's end), ``dropped`` (accepted, then gone from the node without a block:
``eth_getTransactionByHash`` knows it no more), ``lost`` (no answer: the node died or the
request failed), ``unsent``. Events: one
``block_produced`` a block (value its transactions, height its number, detail its gas used,
gas limit, base fee in wei and msgstorm's transactions in it), ``base_fee`` a block (the base
fee in force in that block, in fee units), ``queue_depth`` every ``run.sample_interval`` (the
pool's pending transactions, detail pending and queued), CPU samples of msgstorm and the node,
and the servers' start and stop, the cleanup, node loss.

Faults: the scenario's ``[[faults]]`` are applied to the node msgstorm started by the live
nemesis (``live/nemesis.py``), as to a broker: ``pause`` (SIGSTOP/SIGCONT), ``crash``
(SIGKILL; with ``restart_after`` started again on its port from its saved chain) and
``restart`` (SIGTERM, its chain written, started again ``down`` later), each a
``fault_start`` / ``fault_end`` event. While a fault has the node down and will bring it back,
a send that finds no node is ``lost`` and the heads are followed again once it listens; a
node down otherwise (a crash without ``restart_after``, an exit of its own; a user's node at
``live.url`` that no longer takes connections once a request to it failed) is named once
(``node_down``) and ends the sending: what was meant after it is ``unsent``. When the node is back it is reconciled with
(``_roll_back``), as the simulator treats a reorg deeper than its confirmations: a node
restarted from a state older than the blocks already read (a SIGKILL between two writes of
its state) lost those blocks; they leave the history's chain (a ``canonical_reorg`` event,
``final``, value the blocks lost, detail the old and new tip and the transactions undone),
and their transactions, no longer on it, end ``dropped`` with the lost block still in their
``block`` column (as a simulated message in a block the canonical chain left keeps the block
that first included it). Accepted transactions the node no longer knows (its pool emptied)
end ``dropped``; each account's nonce is read again from the node.

With ``[market]`` the market runs on the chain (``live/chain/market.py``, ``ChainMarket``): the
oracle's price messages are merged into the traffic, the keepers' and top-ups' are sent as
they decide, all from the market's own accounts (``live.anvil.market_accounts``); each
block read is handed to it in block order, and its held messages are sent as the base fee
allows. A market transaction the pool dropped once the base fee passed its fee cap is looked
for after each block (``eth_getTransactionByHash``) and held again, its nonce reused. At the
start of the schedule the next block's base fee is set back to the scenario's initial one.
When the node comes back from a fault, the market is told what its chain lost and what will
never reach it (``ChainMarket.reverted``): liquidations undone are no longer executed, the
oracle sends again its newest price the chain lacks, the keepers their liquidations.

How it sends, and what the node answered, is ``ChainSender`` (``live/chain/sending.py``), a
part this class holds (``sender``) and runs with its steps of the run (``live/lifecycle.py``'s
``Steps``), the chain's reads and the history. The messages and
the chain's events are written at the run's end (``live/chain/record.py``); the run's start,
servers and errors as they happen (``live/event_log.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import numpy as np

from msgstorm.errors import TargetError
from msgstorm.faults.schedule import fault_entries
from msgstorm.history.events import EventKind
from msgstorm.live.chain.accounts import traffic_accounts_needed
from msgstorm.live.chain.anvil import NAME, AnvilNode, find_anvil
from msgstorm.live.chain.calldata import decode
from msgstorm.live.chain.forced import SequencerFront
from msgstorm.live.chain.market import ChainMarket
from msgstorm.live.chain.record import (
    Block,
    merged,
    write_chain_events,
    write_messages,
)
from msgstorm.live.chain.rollup import L1Node, LiveBatcher
from msgstorm.live.chain.rpc import JsonRpc, RpcError
from msgstorm.live.chain.sending import ChainSender
from msgstorm.live.cpu import MIN_INTERVAL_S
from msgstorm.live.lifecycle import NoSteps, RunState, cancelled
from msgstorm.live.nemesis import Nemesis
from msgstorm.live.recorder import PUBLISHER
from msgstorm.live.servers import ManagedServer
from msgstorm.progress import ProgressSnapshot
from msgstorm.scenario.faults import SequencerOutageFault
from msgstorm.scenario.schema import Eip1559
from msgstorm.traffic.generate import MessageBatch

__all__ = ["ChainTarget"]

_HEADS_RETRY_S = 0.05  # the heads are followed again this often while a fault has the node down


class ChainTarget(NoSteps):
    """Drive an EVM node with ``scenario``'s traffic through the ``sender`` it holds;
    ``finish`` writes what happened."""

    def __init__(self, state: RunState) -> None:
        super().__init__(state)
        self.sender = ChainSender(state)
        self.node, self.spec = self.sender.node, self.sender.spec  # for the whole run
        self.blocks: list[Block] = []
        self.pool: list[tuple[int, int, int]] = []  # (t, pending, queued)
        self.dropped: set[int] = set()  # accepted, then gone from the node without a block
        self._block_hashes: dict[int, str] = {}  # block number -> hash, to see a rollback after a restart
        self.undone: dict[int, int] = {}  # msg_id -> the block a restart lost it with (no longer included)
        # A node that may be stopped and restarted: included transactions keep their hashes, so
        # one whose block a restart rolled back is looked up again at the end.
        self._keep_hashes = self.node.keeps_state()
        self.l1: L1Node | None = None  # with [rollup]: the L1 anvil and msgstorm's batcher
        self.batcher: LiveBatcher | None = None
        self._past_the_drain: list[asyncio.Task[None]] = []  # set by ``during``
        self.market: ChainMarket | None = None  # with [market], the sender's too (``traffic``)

    @property
    def nodes(self) -> list[dict[str, str]]:
        return [{"name": PUBLISHER, "region": "local"}, {"name": NAME, "region": "chain"}]

    # --- running: the lifecycle's steps (``live/lifecycle.py``) --------------------------------

    def traffic(self, traffic: Iterator[MessageBatch], seed: np.random.SeedSequence | None
                 ) -> Iterator[MessageBatch]:
        if self.scenario.market is None:
            return traffic
        # Its reactors draw their paths and accounts now.
        market_seed = (seed if seed is not None else np.random.SeedSequence(self.scenario.run.seed)).spawn(1)[0]
        market = ChainMarket(self.scenario, market_seed, self.now, self.spec.fee_unit_wei)
        self.market = self.sender.market = market
        return market.traffic(traffic)

    def start_servers(self) -> list[dict[str, Any]]:
        problems = AnvilNode.problems(self.scenario)
        if problems:
            raise TargetError("; ".join(f"{'.'.join(map(str, where))}: {said}" for where, said in problems))
        described = self.node.start()
        if described is not None:
            self.log.add((self.now(), EventKind.SERVER_START, None, None, described))
        if self.scenario.rollup is not None:  # the L1 behind the node (live/chain/rollup.py)
            self.l1 = L1Node(self.scenario.rollup, self.run_dir, self.scenario.live.start_timeout / 1e9)
            t = self.now()  # stamped as it starts
            self.log.add((t, EventKind.SERVER_START, None, None, self.l1.start(find_anvil())))
        return []

    def stop_servers(self) -> list[ManagedServer]:
        self.node.stop()
        if self.l1 is not None:
            self.l1.stop()
        servers = [self.node.server] if self.node.server is not None else []
        if self.l1 is not None and self.l1.server is not None:
            servers.append(self.l1.server)
        return servers

    async def open(self) -> None:
        if self.scenario.faults:
            # Before the clients connect: a toxic routes them through the fault proxy.
            self.state.nemesis = Nemesis(self.scenario, self.node, self.run_dir,
                                   lambda t, kind, node, detail: self.log.add((t, kind, node, None, detail)))
            await self.state.nemesis.prepare()
        rpc = self.sender.rpc = JsonRpc(self.node.url, self.spec.connections)
        try:
            await self.sender.connect(rpc)
        except Exception as error:  # noqa: BLE001 - any failure here means no run
            raise TargetError(f"{self.scenario.target}: cannot connect to {self.node.url}: "
                              f"{type(error).__name__}: {error}") from error
        if self.market is not None:
            await self._restore_base_fee(rpc)
        if self.l1 is not None and self.l1.server is not None:
            self.batcher = LiveBatcher(self.l1.spec, self.now)
            await self.batcher.connect(self.l1.url, rpc)
            if any(isinstance(spec, SequencerOutageFault) for _, spec in fault_entries(self.scenario)):
                replay = self.sender.send_traffic_rows
                self.node.front = SequencerFront(self.batcher, self.now, replay, self.log.add)

    def clock_started(self) -> None:
        if self.market is not None:
            self.market.start(self.sender.send_market_rows)

    def during(self, loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[Any]]:
        assert self.sender.rpc is not None
        # Past the drain: the heads until the catch-up has read the last block, the batcher
        # and the forced inclusion until the last batch (``_after``).
        front = self.node.front
        self._past_the_drain = [
            loop.create_task(self._watch_heads(self.sender.rpc)),
            loop.create_task(self.batcher.run() if self.batcher is not None else asyncio.sleep(0)),
            loop.create_task(front.run() if front is not None else asyncio.sleep(0))]
        return [loop.create_task(self._sample_pool(self.sender.rpc))]

    async def send(self, traffic: Iterator[MessageBatch]) -> None:
        assert self.sender.rpc is not None
        try:
            await self.sender.send_all(self.sender.rpc, traffic)
        finally:
            self.sender.next_due = None
            self.sender.sent_now()  # the reads waiting for a gap go

    def drained(self) -> bool:
        """Every request answered and every accepted transaction included (and the market's
        held messages settled); a node msgstorm started that has exited is named."""
        sender, market = self.sender, self.market
        if not sender.requests and sender.accepted_open <= 0 and (market is None or market.settled()):
            return True
        self.sender.check_node()
        return False

    async def after(self) -> None:
        assert self.sender.rpc is not None
        if self.market is not None:
            self.market.close()
        if not self.state.interrupted and self.node.alive() and self.state.node_lost_at is None:
            try:
                await asyncio.wait_for(self._catch_up(self.sender.rpc), 10)
            except Exception as error:  # noqa: BLE001 - the chain read so far is kept
                self.state.on_error("blocks", error)
        _, batching, forcing = self._past_the_drain
        await cancelled(batching, forcing)
        if self.batcher is not None and not self.state.interrupted:
            try:  # the last batch, and its L1 block: up to three slots
                await self.batcher.flush(3 * self.batcher.spec.l1.slot / 1e9 + 5)
            except Exception as error:  # noqa: BLE001 - the batches landed so far are kept
                self.state.on_error("batcher", error)

    async def close(self) -> None:
        if self.market is not None:
            self.market.close()
        await cancelled(*self._past_the_drain, *self.sender.requests)
        if self.sender.rpc is not None:
            await self.sender.rpc.close()
        if self.batcher is not None:
            await self.batcher.close()

    def sampled_processes(self) -> list[tuple[str, int]]:
        return [(NAME, self.node.server.pid)] if self.node.server and self.node.server.pid else []

    async def _restore_base_fee(self, rpc: JsonRpc) -> None:
        """The next block's base fee set back to ``backpressure.initial_base_fee``: the empty
        blocks the node made while the run got ready (a loaded machine takes seconds to build
        the first windows) lowered it 12.5% each, and the market's keepers bid against it.
        A node without anvil's method (a user's node of another kind) keeps its own."""
        backpressure = self.scenario.backpressure
        if isinstance(backpressure, Eip1559):
            wei = round(backpressure.initial_base_fee * self.spec.fee_unit_wei)
            try:
                await rpc.call("anvil_setNextBlockBaseFeePerGas", hex(wei))
            except RpcError as error:
                self.state.on_error("base_fee", error)

    # --- the chain --------------------------------------------------------------------------

    async def _watch_heads(self, rpc: JsonRpc) -> None:
        """Each new head's arrival, then the blocks since the last one read. Followed again
        while a fault has the node down (a rollback looked for each time)."""
        followed = False
        while True:
            try:
                if followed:
                    await self._roll_back(rpc)
                followed = True
                async for head in rpc.new_heads(self.node.ws_url):
                    t = self.now()
                    await self.sender.between_sends()
                    await self._read_blocks(rpc, int(head["number"], 16), t)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - the heads are gone; what was read is kept
                if not self.sender.down_by_fault() and not await self.sender.user_node_lost(error):
                    self.state.on_error("heads", error)
            nemesis = self.state.nemesis
            if self.sender.down_by_fault() or (nemesis is not None and nemesis.applying):
                await asyncio.sleep(_HEADS_RETRY_S)
                continue
            break
        if not self.node.alive():
            self.sender.check_node()
        elif self.state.t_run_end is None and self.state.node_lost_at is None:
            self.log.add((self.now(), EventKind.DISCONNECTED, None, None, {"client": "heads"}))

    async def _roll_back(self, rpc: JsonRpc) -> None:
        """After the node came back: the blocks read that its chain no longer has (a restart
        from an older state) leave the history's chain, their transactions no longer
        included (``undone``); the accepted transactions the node no longer knows are
        dropped; the market learns both, and the sends made while the node was down."""
        head = int(await rpc.call("eth_blockNumber"), 16)  # raises while the node does not answer yet
        await self.sender.resync_nonces(rpc)
        undone: list[int] = []
        if self.blocks:
            numbers = [b.number for b in self.blocks]
            found = await rpc.calls("eth_getBlockByNumber", [[hex(n), False] for n in numbers])
            keep = len(numbers)
            for index, block in enumerate(found):
                if block is None or block["hash"] != self._block_hashes.get(numbers[index]):
                    keep = index
                    break
            for block in self.blocks[keep:]:
                self._block_hashes.pop(block.number, None)
                for msg_id in block.ours:
                    if self.sender.included.pop(msg_id, None) is not None:
                        undone.append(msg_id)
                        self.undone[msg_id] = block.number
            if keep < len(numbers):
                self.log.add((self.now(), EventKind.CANONICAL_REORG, NAME, float(len(numbers) - keep), {
                    "old_tip": numbers[-1], "new_tip": head, "final": True, "rolled_back": [numbers[keep], numbers[-1]],
                    "undone": undone}))
            del self.blocks[keep:]
        server = self.node.server
        gone: list[int] = []
        if server is not None and server.pid != self.sender.pool_pid:  # another process: the pool started empty
            gone = await self._gone_from_pool(rpc)
            self.sender.pool_pid = server.pid
        lost, self.sender.lost_while_down = self.sender.lost_while_down, []
        self.sender.settle_included()
        if self.market is not None and (undone or gone or lost):
            self.market.reverted(undone, gone + lost)

    async def _gone_from_pool(self, rpc: JsonRpc) -> list[int]:
        """After a restart: accepted transactions not in a block read that the node no longer
        knows (its pool emptied, or their block lost): dropped, their accounts idle again."""
        sender = self.sender
        waiting = [msg_id for msg_id in sender.hashes
                   if msg_id not in sender.included and msg_id not in self.dropped]
        gone: list[int] = []
        for first in range(0, len(waiting), 1000):
            part = waiting[first:first + 1000]
            found = await rpc.calls("eth_getTransactionByHash", [[sender.hashes[m]] for m in part])
            gone += [m for m, tx in zip(part, found, strict=True) if tx is None]
        for msg_id in gone:
            self.dropped.add(msg_id)
            sender.accepted -= 1  # the drain waits for it no more
            sender.forget(msg_id)
        return gone

    async def _read_blocks(self, rpc: JsonRpc, through: int, t: int) -> None:
        """Blocks after the last read through ``through``, each stamped ``t`` (its head's arrival)."""
        sender = self.sender
        last = self.blocks[-1].number if self.blocks else sender.first_block
        if through <= last:
            return
        # The blocks with their transactions' hashes, msgstorm's known by the answers to its
        # sends: a block of whole transactions is a megabyte of JSON at 1,000/s, parsed on the
        # event loop in one call (10 ms and more on a busy machine: a stall of the sender).
        # The few hashes not known (an answer not yet read, another sender's) are read whole.
        blocks = await rpc.calls("eth_getBlockByNumber", [[hex(n), False] for n in range(last + 1, through + 1)])
        await self._learn_unknown(rpc, [h for block in blocks for h in block["transactions"] if h not in sender.ours])
        for block in blocks:
            number = int(block["number"], 16)
            if self.blocks and number <= self.blocks[-1].number:
                continue
            ours = []
            kinds = []
            for tx_hash in block["transactions"]:
                found = sender.ours.get(tx_hash)
                if found is not None:
                    ours.append(found[0])
                    kinds.append(found[1])
                    if not self._keep_hashes:
                        del sender.ours[tx_hash]
            self._block_hashes[number] = block["hash"]
            self.blocks.append(Block(number, t, len(block["transactions"]), int(block["gasUsed"], 16),
                                      int(block["gasLimit"], 16), int(block.get("baseFeePerGas", "0x0"), 16), ours))
            if self.batcher is not None and block["transactions"]:
                self.batcher.add(number, t, len(ours))
            seq = len(sender.included)
            fresh = []
            for msg_id, kind in zip(ours, kinds, strict=True):
                if msg_id not in sender.included:
                    if not self._keep_hashes:
                        sender.hashes.pop(msg_id, None)
                    sender.included[msg_id] = (t, number, seq)
                    fresh.append((msg_id, kind))
                    seq += 1
                    sender.forget(msg_id)
            if self.market is not None:
                last_block = self.blocks[-1]
                self.market.on_block(t, last_block.base_fee_wei, last_block.gas_used, last_block.gas_limit, fresh)
        sender.settle_included()
        if self.market is not None and self.blocks:
            try:
                await self._find_dropped_market(rpc, self.blocks[-1].base_fee_wei)
            except RpcError as error:  # not looked for this block; the next one looks again
                self.state.on_error("blocks", error)

    async def _learn_unknown(self, rpc: JsonRpc, unknown: list[str]) -> None:
        """Read whole the transactions of ``unknown`` hashes (a thousand a call); those that carry
        msgstorm's header become the sender's own, with their message id and kind."""
        ours = self.sender.ours
        for first in range(0, len(unknown), 1000):
            part = unknown[first:first + 1000]
            found = await rpc.calls("eth_getTransactionByHash", [[h] for h in part])
            for tx_hash, tx in zip(part, found, strict=True):
                header = decode(tx.get("input", "")) if tx is not None else None
                if header is not None:
                    ours[tx_hash] = (header[0], header[1])

    async def _find_dropped_market(self, rpc: JsonRpc, base_fee_wei: int) -> None:
        """The market's transactions in the pool whose fee cap is under the newest block's base
        fee: anvil drops such a transaction when it builds a block. Each the node no longer
        knows is held again by its sender (``ChainMarket.hold_again``), its nonce free again,
        as a keeper whose transaction vanished sends it again."""
        sender = self.sender
        assert self.market is not None
        unit = self.spec.fee_unit_wei
        under = [msg_id for msg_id, (window, k) in sender.market_rows.items()
                 if round(float(window.batch.fee[k]) * unit) < base_fee_wei]
        if not under:
            return
        found = await rpc.calls("eth_getTransactionByHash", [[sender.hashes[m]] for m in under])
        for msg_id, tx in zip(under, found, strict=True):
            if tx is not None or msg_id in sender.included or msg_id not in sender.market_rows:
                continue
            window, k = sender.market_rows.pop(msg_id)
            sender.hashes.pop(msg_id, None)
            sender.accepted -= 1
            account = sender.sender_of.pop(msg_id, None)
            account_nonce = sender.market_nonce.pop(msg_id, None)
            if account is not None:
                if account_nonce is not None:
                    sender.nonces[account] = min(sender.nonces[account], account_nonce[1])
                sender.release_sender(account)
            if not self.market.hold_again(window, k):
                self.dropped.add(msg_id)
        sender.settle_included()

    async def _catch_up(self, rpc: JsonRpc) -> None:
        """After the drain: every block the node has that the heads have not brought yet."""
        sender = self.sender
        latest = int(await rpc.call("eth_blockNumber"), 16)
        await self._read_blocks(rpc, latest, self.now())
        # Accepted, not in a block: still in the pool, or dropped by the node (the node knows
        # no such transaction any more).
        waiting = [msg_id for msg_id in sender.hashes if msg_id not in sender.included]
        for first in range(0, len(waiting), 1000):
            part = waiting[first:first + 1000]
            found = await rpc.calls("eth_getTransactionByHash", [[sender.hashes[m]] for m in part])
            self.dropped.update(m for m, tx in zip(part, found, strict=True) if tx is None)

    async def _sample_pool(self, rpc: JsonRpc) -> None:
        """The pool's pending and queued transactions every ``run.sample_interval``."""
        every_s = max(self.scenario.run.sample_interval / 1e9, MIN_INTERVAL_S)
        while True:
            try:
                status = await rpc.call("txpool_status")
                self.pool.append((self.now(), int(status["pending"], 16), int(status["queued"], 16)))
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001, S110 - a node that cannot answer has no sample; its loss is said elsewhere
                pass
            await asyncio.sleep(every_s)

    def snapshot(self, final: bool = False) -> ProgressSnapshot:
        sender = self.sender
        sent = sum(int((w.sent >= 0).sum()) for w in sender.windows[-2:]) + sender.sent_before
        refused = sum(len(times) for times in sender.rejections.values())
        committed = len(sender.included)
        pending = self.pool[-1][1] + self.pool[-1][2] if self.pool else 0
        base_fee = self.blocks[-1].base_fee_wei / self.spec.fee_unit_wei if self.blocks else None
        return ProgressSnapshot(
            t_ns=self.now(), end_ns=self.scenario.run.duration, sent=sent, emitted=sent,
            settled=committed + refused, committed=committed, dropped=0, rejected=refused, queue_depth=pending,
            base_fee=base_fee, faults_active=0, leader=NAME, final=final, target=self.scenario.target)

    # --- the history ------------------------------------------------------------------------

    def finish(self) -> int:
        """Write the messages and the chain's events; return the run's end time (ns)."""
        sender = self.sender
        t_end = self.state.end_history()
        windows, agents = sender.windows, [agent.name for agent in self.scenario.agents]
        if self.market is not None:
            windows, agents = windows + merged(self.market.windows), self.market.agent_names
        sent = write_messages(self.writer, self.scenario, windows, sender.included, self.dropped,
                              self.state.interrupted, self.state.start_error is None, agents, self.undone)
        if sender.senders_busy:
            self.log.add((t_end, EventKind.CLIENT_ERROR, None, None, {
                "client": "senders", "busy": sender.senders_busy,
                "error": f"{sender.senders_busy} transactions sent from an account with one already in the pool "
                         f"(no account idle: raise live.anvil.accounts, {self.spec.accounts:,}; the schedule's "
                         f"peak pool backlog needs {traffic_accounts_needed(self.scenario):,})"}))
        if sender.lost_to_faults:
            self.log.add((t_end, EventKind.CLIENT_ERROR, None, None, {
                "client": "sender", "lost_to_faults": sender.lost_to_faults,
                "error": f"{sender.lost_to_faults} transactions sent while a fault had the node down (lost)"}))
        self.state.history_written(t_end, sent)
        write_chain_events(self.writer, self.blocks, self.pool, sender.rejections, sender.rejection_text,
                           self.spec.fee_unit_wei, t_end)
        if self.market is not None:
            self.market.finish(t_end, self.writer.append)
        if self.batcher is not None:
            self.batcher.write(self.writer, sender.included)
            for error in self.batcher.errors:
                self.state.on_error("batcher", RuntimeError(error))
        if self.node.front is not None:
            for error in self.node.front.errors:
                self.state.on_error("forced_inclusion", RuntimeError(error))
        return t_end
