"""The chain target: the scenario's traffic as transactions to an EVM node, and what its chain did.

Place in the pipeline: ``runner`` -> **ChainTarget** -> history, beside ``LiveTarget``
(brokers) and ``ShadowNetwork`` (sim). It writes the same tables, so the analysis (knee,
latency split, base-fee timeline, per-kind tables) reads an anvil run as it reads a sim run.

Sending is open loop, as for brokers: each message leaves at its intended time, with every
other message due then in one JSON-RPC batch (``eth_sendTransaction`` each), or, when the
sender is behind at the run's end, not at all (status ``unsent``); it never waits for an
answer before the next send. How it waits for a send time and which rows go together is
``live/pacing.py``; the batch is written in the same turn of the event loop on a pipelined
keep-alive connection (``JsonRpc.send_now``), so ``t_sent`` is the write. What else runs on
the loop is kept short or out of the sender's way: the answers are small, the blocks are
read by their transactions' hashes (msgstorm's known from the answers), and a block read
starts in the gap after a send when the next is near (``_between_sends``).

A message is an EIP-1559 transaction from a funded dev account with that account's next
nonce, to a sink address, its input msgstorm's header (``calldata.py``), its gas limit
``blocks.gas[kind]`` (else what its input costs), its fee cap and priority fee both the
agent's ``fee`` (so the tip a block builder sees is everything above the base fee, and a
pool ordered by fees orders as the simulator's ``fee_priority`` does).

Each transaction goes from an idle account, one with none of its transactions waiting in the
pool (``live.anvil.accounts`` of them; the account is idle again once its transaction is in a
block or refused, and a refused transaction's nonce is its next one's): messages, as in the
simulator, do not wait on each other's nonces. It also keeps clear of a defect of anvil 1.7's
fee-ordered pool, which drops a sender's transaction whose fee is above that of the sender's
previous one still in the pool (``tests/test_live_anvil.py`` shows it). When no account is
idle, the least recently used one sends (its transaction queues behind the one pending), and
the run's ``client_error`` event ``senders`` says how often.

Signing is left to the node (``eth_sendTransaction`` from its unlocked dev accounts): anvil
signs in Rust inside the request, while eth-account signs 140 EIP-1559 transactions a second
on a core of the 2-core machine of ``docs/performance.md`` (``benchmarks/live_anvil.py``'s
``sign`` line), so pre-signed batches, even made ahead on a thread of their own, would cap
the sender below the web3.py loop's rate, let alone what the node takes.

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
node down otherwise (a crash without ``restart_after``, an exit of its own) is named
(``node_down``) and ends the sending. When the node is back it is reconciled with
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

The messages and the chain's events are written at the run's end (``live/chain/record.py``);
the run's start, servers and errors as they happen (``live/event_log.py``).
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import concurrent.futures
import itertools
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from msgstorm.errors import TargetError
from msgstorm.history.events import EventKind
from msgstorm.history.writer import HistoryWriter
from msgstorm.live.chain.anvil import NAME, AnvilNode
from msgstorm.live.chain.calldata import decode, encode, gas_cap
from msgstorm.live.chain.market import ChainMarket
from msgstorm.live.chain.record import (
    LOST,
    PENDING,
    REJECTED,
    Block,
    Window,
    merged,
    write_chain_events,
    write_messages,
)
from msgstorm.live.chain.rpc import JsonRpc, RpcError
from msgstorm.live.cpu import MIN_INTERVAL_S, CpuSampler
from msgstorm.live.drivers.base import STOP_GRACE_NS
from msgstorm.live.event_log import EventLog
from msgstorm.live.nemesis import Nemesis, cleanup_report
from msgstorm.live.pacing import due_through, wait_until
from msgstorm.live.recorder import PUBLISHER
from msgstorm.live.send_loop import run_send_loop
from msgstorm.progress import Progress, ProgressSnapshot
from msgstorm.scenario.schema import MESSAGE_KINDS, CrashFault, Eip1559, RestartFault, Scenario
from msgstorm.traffic.generate import MessageBatch

__all__ = ["REASONS", "SINK", "ChainTarget", "reason_of"]

SINK = "0x000000000000000000000000000000000000dEaD"
# A node's refusal, by the words of its error message, as a reason the history names.
REASONS: tuple[tuple[str, str], ...] = (
    ("less than block base fee", "fee_cap_below_base_fee"),
    ("replacement", "replacement"),
    ("nonce", "nonce"),
    ("underpriced", "underpriced"),
    ("pool", "pool_full"),
    ("full", "pool_full"),
    ("intrinsic gas", "gas"),
    ("gas limit", "gas"),
    ("insufficient funds", "funds"),
)
# Reasons under which the node did not take the nonce: the sender's next transaction reuses it.
_NONCE_FREE = frozenset({"fee_cap_below_base_fee", "underpriced", "pool_full", "gas", "funds", "other"})
# A read that parses much waits for the gap after a send when the next is due within this.
_QUIET_NS = 2_000_000
_DRAIN_POLL_S = 0.01
_PROGRESS_S = 0.25
_HEADS_RETRY_S = 0.05  # the heads are followed again this often while a fault has the node down


class _Senders:
    """Dev accounts that send (their indexes in ``ChainTarget._senders``): an idle one (nothing
    of its in the pool) when there is one, else the least recently used."""

    def __init__(self, accounts: range) -> None:
        self.size = len(accounts)
        self.idle: collections.deque[int] = collections.deque(accounts)
        self.busy: collections.deque[int] = collections.deque()  # in the order they sent

    def take(self) -> tuple[int, bool]:
        """An account, and whether it was idle."""
        idle = bool(self.idle)
        sender = self.idle.popleft() if idle else self.busy[0]
        self.busy.append(sender)
        if len(self.busy) > 2 * self.size:
            self.busy = collections.deque(itertools.islice(self.busy, len(self.busy) - self.size, None))
        return sender, idle


def reason_of(message: str) -> str:
    """The reason a node's error message names (``REASONS``), else ``other``."""
    lowered = message.lower()
    return next((reason for words, reason in REASONS if words in lowered), "other")


class ChainTarget:
    """Drive an EVM node with ``scenario``'s traffic; ``finish`` writes what happened."""

    def __init__(self, scenario: Scenario, writer: HistoryWriter, run_dir: Path,
                 progress: Progress | None = None) -> None:
        self.scenario = scenario
        self.writer = writer
        self.run_dir = Path(run_dir).resolve()
        self.progress = progress
        self.interrupted = False
        self.start_error: str | None = None
        self.stopped_behind = False
        self.node = AnvilNode(scenario, self.run_dir)
        self.spec = scenario.live.anvil
        self._t0 = time.monotonic_ns()
        self._recording = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="msgstorm-recorder")
        self.log = EventLog(writer, self._recording)
        self.windows: list[Window] = []
        self._first_ids: list[int] = []
        self.blocks: list[Block] = []
        self.first_block = 0  # the chain's head when the schedule started
        self.pool: list[tuple[int, int, int]] = []  # (t, pending, queued)
        self.rejections: dict[str, list[int]] = {}  # reason -> times of the refusals
        self.rejection_text: dict[str, str] = {}  # reason -> the node's first words for it
        self.included: dict[int, tuple[int, int, int]] = {}  # msg_id -> (t_committed, block, seq_no)
        self._hashes: dict[int, str] = {}  # msg_id -> its transaction's hash, while not seen in a block
        self._ours: dict[str, tuple[int, int]] = {}  # the same hashes -> (msg_id, kind): a block's read by them
        self.dropped: set[int] = set()  # accepted, then gone from the node without a block
        self._sent_before = 0  # transactions sent in the windows before the last two (progress)
        self.accepted = 0  # transactions the node accepted into its pool
        self.accepted_open = 0  # accepted by the node, not yet seen in a block
        self.in_flight = 0  # batch requests without an answer
        self.node_lost_at: int | None = None
        self.t_run_end: int | None = None
        self._senders: list[str] = []
        self._nonces: list[int] = []
        self._nonce_tick = 0  # nonces handed out so far
        self._nonce_given: list[int] = []  # per account: the tick of the last nonce handed to it
        self._nonces_pid: int | None = None  # the node process the nonces were last read from
        self._traffic_senders = _Senders(range(0))
        self._market_senders = _Senders(range(0))  # with [market]: the market's own accounts
        self._sender_of: dict[int, int] = {}  # msg_id -> its account, until it is included or refused
        self.senders_busy = 0  # transactions sent from an account that was not idle
        self.market: ChainMarket | None = None
        self._market_nonce: dict[int, tuple[int, int]] = {}  # market msg_id -> (account, nonce), until included
        self._market_rows: dict[int, tuple[Window, int]] = {}  # market msg_id accepted -> its row, until included
        self._rpc: JsonRpc | None = None
        self._requests: set[asyncio.Task[None]] = set()
        self._handlers: dict[int, Any] = {}
        self.next_due: int | None = None  # the intended time of the next send while the sender waits for it
        self._gap: asyncio.Future[None] | None = None  # done when the send awaited is out
        self.nemesis: Nemesis | None = None
        self.lost_to_faults = 0  # transactions sent while a fault had the node down
        self._block_hashes: dict[int, str] = {}  # block number -> hash, to see a rollback after a restart
        self.undone: dict[int, int] = {}  # msg_id -> the block a restart lost it with (no longer included)
        self._lost_while_down: list[int] = []  # with [market]: msg_ids sent while a fault had the node down
        self._pool_pid: int | None = None  # the node process whose pool holds the accepted transactions
        # A node that may be stopped and restarted: included transactions keep their hashes, so
        # one whose block a restart rolled back is looked up again at the end.
        self._keep_hashes = self.node.keeps_state()

    @property
    def nodes(self) -> list[dict[str, str]]:
        return [{"name": PUBLISHER, "region": "local"}, {"name": NAME, "region": "chain"}]

    def _now(self) -> int:
        return time.monotonic_ns() - self._t0

    # --- running ----------------------------------------------------------------------------

    def run(self, traffic: Iterator[MessageBatch], seed: np.random.SeedSequence | None = None) -> None:
        """Start the node, send ``traffic``, watch the chain; the node is stopped on every way out."""
        if self.scenario.market is not None:  # its reactors draw their paths and accounts now
            market_seed = (seed if seed is not None else np.random.SeedSequence(self.scenario.run.seed)).spawn(1)[0]
            self.market = ChainMarket(self.scenario, market_seed, self._now, self.spec.fee_unit_wei)
            traffic = self.market.traffic(traffic)
        self.log.add((self._now(), EventKind.RUN_START, None, None, {
            "target": self.scenario.target, "consumers": 0, "processes": 1, "fanout": False, "acks": True}))
        started = False
        try:
            problems = AnvilNode.problems(self.scenario)
            if problems:
                raise TargetError("; ".join(f"{'.'.join(map(str, where))}: {said}" for where, said in problems))
            described = self.node.start()
            if described is not None:
                started = True
                self.log.add((self._now(), EventKind.SERVER_START, None, None, described))
            self._handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
            run_send_loop(self._main, traffic, self._handlers, lambda: self.interrupted)
        except KeyboardInterrupt:
            self.interrupted = True
            self.log.add((self._now(), EventKind.INTERRUPTED, None, None, None))
        except TargetError as error:
            self.start_error = str(error)
            self.log.add((self._now(), EventKind.CLIENT_ERROR, None, None, {"client": "start", "error": str(error)}))
            raise
        finally:
            if self.nemesis is not None:
                self.nemesis.kill()  # the last resort: a proxy or a paused node a broken loop left
            self.node.stop()
            servers = [self.node.server] if self.node.server is not None else []
            for server in servers:
                if not started:
                    self.log.add((self._now(), EventKind.SERVER_START, None, None,
                                  {"name": server.name, "pid": server.pid, "url": None, "started": False}))
                self.log.add((self._now(), EventKind.SERVER_STOP, None, None, {
                    "name": server.name, "returncode": server.returncode,
                    **({"exited_early": True} if server.exited_early else {})}))
            self.log.add((self._now(), EventKind.CLEANUP, None, None, cleanup_report(servers, self.nemesis, [])))

    def _stop_on_signals(self) -> None:
        """SIGINT and SIGTERM cancel the run's task (as ``LiveTarget._stop_on_signals``)."""
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def stop() -> None:
            if not self.interrupted:
                self.interrupted = True
                task.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)

    async def _main(self, traffic: Iterator[MessageBatch]) -> None:
        self._stop_on_signals()
        if self.scenario.faults:
            # Before the clients connect: a toxic routes them through the fault proxy.
            self.nemesis = Nemesis(self.scenario, self.node, self.run_dir,
                                   lambda t, kind, node, detail: self.log.add((t, kind, node, None, detail)))
            await self.nemesis.prepare()
        rpc = self._rpc = JsonRpc(self.node.url, self.spec.connections)
        try:
            try:
                await self._connect(rpc)
            except Exception as error:  # noqa: BLE001 - any failure here means no run
                raise TargetError(f"{self.scenario.target}: cannot connect to {self.node.url}: "
                                  f"{type(error).__name__}: {error}") from error
            if self.market is not None:
                await self._restore_base_fee(rpc)
            shift = self._now()
            self._t0 += shift
            self.log.start_clock(shift)
            if self.market is not None:
                self.market.start(self._send_rows)
            loop = asyncio.get_running_loop()
            faults = loop.create_task(self._apply_faults())
            heads = loop.create_task(self._watch_heads(rpc))
            pool = loop.create_task(self._sample_pool(rpc))
            servers = [(NAME, self.node.server.pid)] if self.node.server and self.node.server.pid else []
            sampler = CpuSampler(PUBLISHER, servers, self._on_cpu, self._on_machine_cpu)
            cpu = loop.create_task(self._sample_cpu(sampler))
            reporting = loop.create_task(self._report_progress() if self.progress is not None else asyncio.sleep(0))
            try:
                try:
                    await self._send_all(rpc, traffic)
                finally:
                    self.next_due = None
                    self._sent_now()  # the reads waiting for a gap go
                await self._heal(faults)
                await self._drain()
            finally:
                await self._heal(faults)
                for task in (pool, cpu, reporting):
                    task.cancel()
                await asyncio.gather(pool, cpu, reporting, return_exceptions=True)
                if self.progress is not None:
                    self.progress(self._snapshot(final=True))
                sampler.sample()
                if self.market is not None:
                    self.market.close()
                self.t_run_end = self._now()
                self.log.end_at(self.t_run_end)
                if not self.interrupted and self.node.alive():
                    try:
                        await asyncio.wait_for(self._catch_up(rpc), 10)
                    except Exception as error:  # noqa: BLE001 - the chain read so far is kept
                        self._on_error("blocks", error)
                heads.cancel()
                for request in list(self._requests):
                    request.cancel()
                await asyncio.gather(heads, *self._requests, return_exceptions=True)
        finally:
            await rpc.close()
            if self.nemesis is not None:
                await self.nemesis.close(self._now)  # the proxy, after the clients that go through it

    async def _apply_faults(self) -> None:
        """The scenario's faults on the node, each at its time on the run's clock."""
        if self.nemesis is not None:
            await self.nemesis.run(self._t0, self._now)

    async def _heal(self, faults: asyncio.Task[None]) -> None:
        """The sending ended: the faults still in force are ended (the node resumed or
        started again), each ``fault_end`` written. Safe to call twice."""
        faults.cancel()
        await asyncio.gather(faults, return_exceptions=True)
        if self.nemesis is not None:
            await self.nemesis.heal(self._now)

    def _down_by_fault(self) -> bool:
        """Whether the node is down because a fault stopped it and will start it again."""
        nemesis, server = self.nemesis, self.node.server
        if nemesis is None or server is None:
            return False
        if nemesis.applying:  # a fault's start or end under way (a restart waits for the node to listen)
            return True
        return server.stopped_by_fault and any(
            op.action == "end" and op.fault_id in nemesis.started and op.fault_id not in nemesis.ended
            for op in nemesis.ops if isinstance(op.spec, CrashFault | RestartFault))

    async def _connect(self, rpc: JsonRpc) -> None:
        accounts = await rpc.call("eth_accounts")
        if not accounts:
            raise TargetError("the node has no unlocked accounts to send from (eth_accounts is empty)")
        # With [market], the market's own accounts come last (at most half of a user's node's).
        market = min(self.spec.market_accounts, len(accounts) // 2) if self.market is not None else 0
        if self.market is not None and not market:
            raise TargetError("the node has one unlocked account: the market's transactions need their own")
        traffic = min(self.spec.accounts, len(accounts) - market)
        self._senders = accounts[:traffic] + accounts[len(accounts) - market:]
        self._nonces = [int(n, 16) for n in await rpc.calls("eth_getTransactionCount",
                                                            [[a, "pending"] for a in self._senders])]
        self._nonce_given = [0] * len(self._senders)
        self._nonces_pid = self._pool_pid = self.node.server.pid if self.node.server is not None else None
        self._traffic_senders = _Senders(range(traffic))
        self._market_senders = _Senders(range(traffic, traffic + market))
        self.first_block = int(await rpc.call("eth_blockNumber"), 16)

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
                self._on_error("base_fee", error)

    # --- sending ----------------------------------------------------------------------------

    async def _send_all(self, rpc: JsonRpc, traffic: Iterator[MessageBatch]) -> None:
        stop_at = self.scenario.run.duration
        loop = asyncio.get_running_loop()
        batches = iter(traffic)
        upcoming = loop.run_in_executor(None, next, batches, None)
        gas_of = {MESSAGE_KINDS.index(kind): gas for kind, gas in self.scenario.blocks.gas.items()}
        unit = self.spec.fee_unit_wei
        now = self._now
        own_agents = len(self.scenario.agents)  # the market's agents come after: the oracle's rows
        while (batch := await upcoming) is not None:
            upcoming = loop.run_in_executor(None, next, batches, None)
            if self.market is not None:
                batch = self.market.numbered(batch)
            n = len(batch)
            window = Window(batch, np.full(n, -1, np.int64), np.full(n, -1, np.int64), np.full(n, -1, np.int8))
            self._sent_before += sum(int((w.sent >= 0).sum()) for w in self.windows[-2:-1])
            self.windows.append(window)
            self._first_ids.append(int(batch.msg_id[0]) if n else -1)
            times = batch.t_intended.tolist()
            ids, kinds, agents = batch.msg_id.tolist(), batch.kind.tolist(), batch.agent.tolist()
            sizes = batch.size.tolist()
            fees = np.rint(batch.fee * unit).astype(np.int64).tolist()
            end = bisect.bisect_left(times, stop_at)
            i = 0
            while i < end:
                self.next_due = times[i]
                t = await wait_until(times[i], now, asyncio.sleep)
                if t >= stop_at + STOP_GRACE_NS or self.node_lost_at is not None:
                    self.stopped_behind = self.node_lost_at is None
                    upcoming.cancel()
                    return
                j = due_through(times, i, end, t, self.spec.batch)
                if self._restarted():
                    await self._resync_nonces(rpc)
                calls = [self._transaction(k, ids[k], kinds[k], agents[k], times[k], sizes[k], fees[k], gas_of,
                                           self._market_senders if agents[k] >= own_agents else self._traffic_senders)
                         for k in range(i, j)]
                window.sent[i:j] = now()  # then written at once (``_request``)
                self._request(rpc, window, slice(i, j), calls)
                i = j
                self._sent_now()
                await asyncio.sleep(0)
            if end < n:
                upcoming.cancel()
                return

    def _transaction(self, k: int, msg_id: int, kind: int, agent: int, t_intended: int, size: int, fee_wei: int,
                     gas_of: dict[int, int], senders: _Senders) -> str:
        """Row ``k``'s ``eth_sendTransaction`` call (JSON text), from an account of ``senders``
        with its next nonce."""
        sender = self._take_sender(msg_id, senders)
        nonce = self._nonces[sender]
        self._nonces[sender] = nonce + 1
        self._nonce_tick += 1
        self._nonce_given[sender] = self._nonce_tick
        data = encode(msg_id, kind, agent, t_intended, size)
        if senders is self._market_senders:
            self._market_nonce[msg_id] = (sender, nonce)
        gas = gas_of.get(kind) or gas_cap(size)
        return (f'{{"jsonrpc":"2.0","id":{k},"method":"eth_sendTransaction","params":[{{'
                f'"from":"{self._senders[sender]}","to":"{SINK}","gas":"{hex(gas)}",'
                f'"maxFeePerGas":"{hex(fee_wei)}","maxPriorityFeePerGas":"{hex(fee_wei)}",'
                f'"nonce":"{hex(nonce)}","value":"0x0","data":"{data}"}}]}}')

    def _request(self, rpc: JsonRpc, window: Window, rows: slice | list[int], calls: list[str]) -> None:
        """Post ``calls`` (``rows`` of ``window``) as one batch request, written in this call
        when a connection is open, its answers awaited apart."""
        body = "[" + ",".join(calls) + "]"
        answer = rpc.send_now(body)
        request = asyncio.get_running_loop().create_task(self._post(rpc, window, rows, body, answer))
        self._requests.add(request)
        request.add_done_callback(self._requests.discard)

    def _sent_now(self) -> None:
        """A send is done: the reads waiting for a gap between sends (``_between_sends``) go."""
        if self._gap is not None and not self._gap.done():
            self._gap.set_result(None)
        self._gap = None

    async def _between_sends(self) -> None:
        """Wait, if the next send is due within ``_QUIET_NS``, until it has left (that one
        only: at a rate whose gaps are all shorter, a read that waited for a wide one would
        never come): a read of the chain runs in the gap after a send, not across a send time."""
        if self.next_due is not None and 0 < self.next_due - self._now() < _QUIET_NS:
            if self._gap is None:
                self._gap = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._gap)

    def _send_rows(self, window: Window, rows: list[int]) -> None:
        """Rows of one of the market's windows sent now (``live/chain/market.py``: its new
        messages, or ones it held); their ``t_sent`` is when their agent handed them over."""
        if self._rpc is None or self.node_lost_at is not None:
            return
        gas_of = {MESSAGE_KINDS.index(kind): gas for kind, gas in self.scenario.blocks.gas.items()}
        batch = window.batch
        fees = np.rint(batch.fee[rows] * self.spec.fee_unit_wei).astype(np.int64).tolist()
        calls = [self._transaction(k, int(batch.msg_id[k]), int(batch.kind[k]), int(batch.agent[k]),
                                   int(batch.t_intended[k]), int(batch.size[k]), fee, gas_of, self._market_senders)
                 for k, fee in zip(rows, fees, strict=True)]
        window.outcome[rows] = -1
        self._request(self._rpc, window, rows, calls)

    async def _post(self, rpc: JsonRpc, window: Window, rows: slice | list[int], body: str,
                    written: asyncio.Future[Any] | None) -> None:
        """One batch's answers (``written``: of the request written already, else it is
        posted once a connection opens): each transaction accepted (into the pool) or
        refused, with why."""
        self.in_flight += 1
        try:
            answers = await (written if written is not None else rpc.send(body))
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - no answer: the batch is lost, the run goes on
            window.outcome[rows] = LOST
            window.answered[rows] = self._now()
            if self._down_by_fault():  # the fault's own events say why; each send it cost is lost
                self.lost_to_faults += len(window.outcome[rows])
                self._free_nonces(window, rows, body)
                if self.market is not None:  # its agents send again when the node is back
                    self._lost_while_down.extend(window.batch.msg_id[rows].tolist())
                return
            self._on_error("sender", error)
            self._check_node()
            return
        finally:
            self.in_flight -= 1
        t = self._now()
        window.answered[rows] = t
        ids = window.batch.msg_id
        for answer in answers:
            k = int(answer["id"])
            refusal = answer.get("error")
            if refusal is None:
                window.outcome[k] = PENDING
                self.accepted += 1
                self._hashes[int(ids[k])] = answer["result"]
                self._ours[answer["result"]] = (int(ids[k]), int(window.batch.kind[k]))
                if window.market:
                    self._market_rows[int(ids[k])] = (window, k)
                continue
            message = str(refusal.get("message", ""))
            reason = reason_of(message)
            sender = self._sender_of.pop(int(ids[k]), None)
            self._market_nonce.pop(int(ids[k]), None)
            if sender is not None:
                if reason in _NONCE_FREE:  # the node did not take the nonce: the account's next one reuses it
                    self._nonces[sender] = min(self._nonces[sender], self._nonce_of(body, k))
                self._release_sender(sender)
            if (window.market and reason == "fee_cap_below_base_fee" and self.market is not None
                    and self.market.hold_again(window, k)):
                continue  # its sender holds it until the base fee falls (live/chain/market.py)
            window.outcome[k] = REJECTED
            self.rejections.setdefault(reason, []).append(t)
            self.rejection_text.setdefault(reason, message)
        self._settle_included()

    def _take_sender(self, msg_id: int, senders: _Senders) -> int:
        """An account of ``senders`` for message ``msg_id``: an idle one, else the least
        recently used one."""
        sender, idle = senders.take()
        if not idle:
            self.senders_busy += 1
        self._sender_of[msg_id] = sender
        return sender

    def _free_nonces(self, window: Window, rows: slice | list[int], body: str) -> None:
        """Transactions a stopped node never received: their accounts idle again, each
        account's next nonce back to the lowest of theirs (as for a refusal that took none)."""
        ids = window.batch.msg_id
        for k in range(len(ids))[rows] if isinstance(rows, slice) else rows:
            sender = self._sender_of.pop(int(ids[k]), None)
            self._market_nonce.pop(int(ids[k]), None)
            if sender is not None:
                self._nonces[sender] = min(self._nonces[sender], self._nonce_of(body, k))
                self._release_sender(sender)

    def _release_sender(self, sender: int) -> None:
        """An account with nothing of its left in the pool is idle again."""
        senders = self._traffic_senders if sender < self._traffic_senders.size else self._market_senders
        senders.idle.append(sender)

    @staticmethod
    def _nonce_of(body: str, k: int) -> int:
        """The nonce the batch ``body`` gave transaction ``k`` (read back from the text sent)."""
        start = body.index(f'"id":{k},')
        at = body.index('"nonce":"', start) + 9
        return int(body[at:body.index('"', at)], 16)

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
                    t = self._now()
                    await self._between_sends()
                    await self._read_blocks(rpc, int(head["number"], 16), t)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # noqa: BLE001 - the heads are gone; what was read is kept
                if not self._down_by_fault():
                    self._on_error("heads", error)
            if self._down_by_fault() or (self.nemesis is not None and self.nemesis.applying):
                await asyncio.sleep(_HEADS_RETRY_S)
                continue
            break
        if not self.node.alive():
            self._check_node()
        elif self.t_run_end is None:
            self.log.add((self._now(), EventKind.DISCONNECTED, None, None, {"client": "heads"}))

    async def _roll_back(self, rpc: JsonRpc) -> None:
        """After the node came back: the blocks read that its chain no longer has (a restart
        from an older state) leave the history's chain, their transactions no longer
        included (``undone``); the accepted transactions the node no longer knows are
        dropped; the market learns both, and the sends made while the node was down."""
        head = int(await rpc.call("eth_blockNumber"), 16)  # raises while the node does not answer yet
        await self._resync_nonces(rpc)
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
                    if self.included.pop(msg_id, None) is not None:
                        undone.append(msg_id)
                        self.undone[msg_id] = block.number
            if keep < len(numbers):
                self.log.add((self._now(), EventKind.CANONICAL_REORG, NAME, float(len(numbers) - keep), {
                    "old_tip": numbers[-1], "new_tip": head, "final": True, "rolled_back": [numbers[keep], numbers[-1]],
                    "undone": undone}))
            del self.blocks[keep:]
        server = self.node.server
        gone: list[int] = []
        if server is not None and server.pid != self._pool_pid:  # another process: the pool started empty
            gone = await self._gone_from_pool(rpc)
            self._pool_pid = server.pid
        lost, self._lost_while_down = self._lost_while_down, []
        self._settle_included()
        if self.market is not None and (undone or gone or lost):
            self.market.reverted(undone, gone + lost)

    async def _gone_from_pool(self, rpc: JsonRpc) -> list[int]:
        """After a restart: accepted transactions not in a block read that the node no longer
        knows (its pool emptied, or their block lost): dropped, their accounts idle again."""
        waiting = [msg_id for msg_id in self._hashes if msg_id not in self.included and msg_id not in self.dropped]
        gone: list[int] = []
        for first in range(0, len(waiting), 1000):
            part = waiting[first:first + 1000]
            found = await rpc.calls("eth_getTransactionByHash", [[self._hashes[m]] for m in part])
            gone += [m for m, tx in zip(part, found, strict=True) if tx is None]
        for msg_id in gone:
            self.dropped.add(msg_id)
            self.accepted -= 1  # the drain waits for it no more
            self._market_rows.pop(msg_id, None)
            self._market_nonce.pop(msg_id, None)
            sender = self._sender_of.pop(msg_id, None)
            if sender is not None:
                self._release_sender(sender)
        return gone

    def _restarted(self) -> bool:
        """Whether the node listens again as another process than the one the nonces were
        last read from (a fault restarted it)."""
        server = self.node.server
        return (server is not None and server.pid is not None and server.pid != self._nonces_pid
                and not self._down_by_fault())

    async def _resync_nonces(self, rpc: JsonRpc) -> None:
        """After the node came back: each account's next nonce as the node counts it. A
        restarted node keeps its chain, not its pool, and the sends made while it was down
        never reached it, so the nonces handed out past its count would leave a gap that
        strands every later transaction of the account (the market's keepers and oracle send
        again and again from theirs). An account handed a nonce while the node was asked keeps
        its own: that transaction already follows the node's count or fills it."""
        tick = self._nonce_tick
        server = self.node.server
        pid = server.pid if server is not None else None
        try:
            counts = await rpc.calls("eth_getTransactionCount", [[a, "pending"] for a in self._senders])
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the node not answering yet: read again before the next send
            return
        self._nonces_pid = pid
        for sender, count in enumerate(counts):
            if self._nonce_given[sender] <= tick:
                self._nonces[sender] = int(count, 16)

    async def _read_blocks(self, rpc: JsonRpc, through: int, t: int) -> None:
        """Blocks after the last read through ``through``, each stamped ``t`` (its head's arrival)."""
        last = self.blocks[-1].number if self.blocks else self.first_block
        if through <= last:
            return
        # The blocks with their transactions' hashes, msgstorm's known by the answers to its
        # sends: a block of whole transactions is a megabyte of JSON at 1,000/s, parsed on the
        # event loop in one call (10 ms and more on a busy machine: a stall of the sender).
        # The few hashes not known (an answer not yet read, another sender's) are read whole.
        blocks = await rpc.calls("eth_getBlockByNumber", [[hex(n), False] for n in range(last + 1, through + 1)])
        unknown = [h for block in blocks for h in block["transactions"] if h not in self._ours]
        for first in range(0, len(unknown), 1000):
            part = unknown[first:first + 1000]
            for tx_hash, tx in zip(part, await rpc.calls("eth_getTransactionByHash", [[h] for h in part]), strict=True):
                header = decode(tx.get("input", "")) if tx is not None else None
                if header is not None:
                    self._ours[tx_hash] = (header[0], header[1])
        for block in blocks:
            number = int(block["number"], 16)
            if self.blocks and number <= self.blocks[-1].number:
                continue
            ours = []
            kinds = []
            for tx_hash in block["transactions"]:
                found = self._ours.get(tx_hash)
                if found is not None:
                    ours.append(found[0])
                    kinds.append(found[1])
                    if not self._keep_hashes:
                        del self._ours[tx_hash]
            self._block_hashes[number] = block["hash"]
            self.blocks.append(Block(number, t, len(block["transactions"]), int(block["gasUsed"], 16),
                                      int(block["gasLimit"], 16), int(block.get("baseFeePerGas", "0x0"), 16), ours))
            seq = len(self.included)
            fresh = []
            for msg_id, kind in zip(ours, kinds, strict=True):
                if msg_id not in self.included:
                    if not self._keep_hashes:
                        self._hashes.pop(msg_id, None)
                    self.included[msg_id] = (t, number, seq)
                    fresh.append((msg_id, kind))
                    seq += 1
                    sender = self._sender_of.pop(msg_id, None)
                    if sender is not None:
                        self._release_sender(sender)
                    self._market_nonce.pop(msg_id, None)
                    self._market_rows.pop(msg_id, None)
            if self.market is not None:
                last_block = self.blocks[-1]
                self.market.on_block(t, last_block.base_fee_wei, last_block.gas_used, last_block.gas_limit, fresh)
        self._settle_included()
        if self.market is not None and self.blocks:
            try:
                await self._find_dropped_market(rpc, self.blocks[-1].base_fee_wei)
            except RpcError as error:  # not looked for this block; the next one looks again
                self._on_error("blocks", error)

    async def _find_dropped_market(self, rpc: JsonRpc, base_fee_wei: int) -> None:
        """The market's transactions in the pool whose fee cap is under the newest block's base
        fee: anvil drops such a transaction when it builds a block. Each the node no longer
        knows is held again by its sender (``ChainMarket.hold_again``), its nonce free again,
        as a keeper whose transaction vanished sends it again."""
        assert self.market is not None
        unit = self.spec.fee_unit_wei
        under = [msg_id for msg_id, (window, k) in self._market_rows.items()
                 if round(float(window.batch.fee[k]) * unit) < base_fee_wei]
        if not under:
            return
        found = await rpc.calls("eth_getTransactionByHash", [[self._hashes[m]] for m in under])
        for msg_id, tx in zip(under, found, strict=True):
            if tx is not None or msg_id in self.included or msg_id not in self._market_rows:
                continue
            window, k = self._market_rows.pop(msg_id)
            self._hashes.pop(msg_id, None)
            self.accepted -= 1
            sender = self._sender_of.pop(msg_id, None)
            account_nonce = self._market_nonce.pop(msg_id, None)
            if sender is not None:
                if account_nonce is not None:
                    self._nonces[sender] = min(self._nonces[sender], account_nonce[1])
                self._release_sender(sender)
            if not self.market.hold_again(window, k):
                self.dropped.add(msg_id)
        self._settle_included()

    def _settle_included(self) -> None:
        """Accepted transactions not yet seen in a block (the drain waits for none)."""
        self.accepted_open = self.accepted - len(self.included)

    async def _catch_up(self, rpc: JsonRpc) -> None:
        """After the drain: every block the node has that the heads have not brought yet."""
        latest = int(await rpc.call("eth_blockNumber"), 16)
        await self._read_blocks(rpc, latest, self._now())
        # Accepted, not in a block: still in the pool, or dropped by the node (the node knows
        # no such transaction any more).
        waiting = [msg_id for msg_id in self._hashes if msg_id not in self.included]
        for first in range(0, len(waiting), 1000):
            part = waiting[first:first + 1000]
            found = await rpc.calls("eth_getTransactionByHash", [[self._hashes[m]] for m in part])
            self.dropped.update(m for m, tx in zip(part, found, strict=True) if tx is None)

    async def _sample_pool(self, rpc: JsonRpc) -> None:
        """The pool's pending and queued transactions every ``run.sample_interval``."""
        every_s = max(self.scenario.run.sample_interval / 1e9, MIN_INTERVAL_S)
        while True:
            try:
                status = await rpc.call("txpool_status")
                self.pool.append((self._now(), int(status["pending"], 16), int(status["queued"], 16)))
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001, S110 - a node that cannot answer has no sample; its loss is said elsewhere
                pass
            await asyncio.sleep(every_s)

    async def _drain(self) -> None:
        """Until every request is answered and every accepted transaction included, the node
        is lost, or ``run.drain`` has passed."""
        deadline = self._now() + self.scenario.run.drain
        while self._now() < deadline and self.node_lost_at is None:
            if not self._requests and self.accepted_open <= 0 and (self.market is None or self.market.settled()):
                return
            self._check_node()
            await asyncio.sleep(_DRAIN_POLL_S)

    async def _report_progress(self) -> None:
        """A progress snapshot every ``_PROGRESS_S`` (the terminal bar, Prometheus)."""
        assert self.progress is not None
        while True:
            await asyncio.sleep(_PROGRESS_S)
            self.progress(self._snapshot())

    def _snapshot(self, final: bool = False) -> ProgressSnapshot:
        sent = sum(int((w.sent >= 0).sum()) for w in self.windows[-2:]) + self._sent_before
        refused = sum(len(times) for times in self.rejections.values())
        committed = len(self.included)
        pending = self.pool[-1][1] + self.pool[-1][2] if self.pool else 0
        base_fee = self.blocks[-1].base_fee_wei / self.spec.fee_unit_wei if self.blocks else None
        return ProgressSnapshot(
            t_ns=self._now(), end_ns=self.scenario.run.duration, sent=sent, emitted=sent,
            settled=committed + refused, committed=committed, dropped=0, rejected=refused, queue_depth=pending,
            base_fee=base_fee, faults_active=0, leader=NAME, final=final, target=self.scenario.target)

    def _check_node(self) -> None:
        """A node msgstorm started that has exited (not stopped by a fault that starts it
        again) is named once (``node_down``)."""
        if self.node_lost_at is None and not self.node.alive() and not self._down_by_fault():
            self.node_lost_at = self._now()
            server = self.node.server
            self.log.add((self.node_lost_at, EventKind.NODE_DOWN, NAME, None, {
                "name": NAME, "returncode": server.process.returncode if server and server.process else None,
                "error": "a crash fault without restart_after stopped it for good" if server and server.stopped_by_fault
                else "the node exited during the run"}))

    def _on_error(self, client: str, error: BaseException) -> None:
        self.log.add((self._now(), EventKind.CLIENT_ERROR, None, None,
                      {"client": client, "error": f"{type(error).__name__}: {error}"}))

    def _on_cpu(self, name: str, seconds: float) -> None:
        self.log.add((self._now(), EventKind.CPU_SECONDS, name, seconds, None))

    def _on_machine_cpu(self, busy_seconds: float) -> None:
        self.log.add((self._now(), EventKind.MACHINE_CPU_SECONDS, None, busy_seconds, None))

    async def _sample_cpu(self, sampler: CpuSampler) -> None:
        every_s = max(self.scenario.run.sample_interval / 1e9, MIN_INTERVAL_S)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for k in itertools.count(1):
            sampler.sample()
            await asyncio.sleep(max(0.0, start + k * every_s - loop.time()))

    # --- the history ------------------------------------------------------------------------

    def finish(self) -> int:
        """Write the messages and the chain's events; return the run's end time (ns)."""
        t_end = self.t_run_end if self.t_run_end is not None else self._now()
        self.log.end_at(t_end)
        self.log.stop_writing()
        self._recording.shutdown(wait=True)
        windows, agents = self.windows, [agent.name for agent in self.scenario.agents]
        if self.market is not None:
            windows, agents = windows + merged(self.market.windows), self.market.agent_names
        sent = write_messages(self.writer, self.scenario, windows, self.included, self.dropped,
                              self.interrupted, self.start_error is None, agents, self.undone)
        if self.senders_busy:
            self.log.add((t_end, EventKind.CLIENT_ERROR, None, None, {
                "client": "senders", "busy": self.senders_busy,
                "error": f"{self.senders_busy} transactions sent from an account with one already in the pool "
                         "(no account idle: raise live.anvil.accounts)"}))
        if self.lost_to_faults:
            self.log.add((t_end, EventKind.CLIENT_ERROR, None, None, {
                "client": "sender", "lost_to_faults": self.lost_to_faults,
                "error": f"{self.lost_to_faults} transactions sent while a fault had the node down (lost)"}))
        self.log.add((t_end, EventKind.RUN_END, None, float(sent), None))
        self.log.finish()
        write_chain_events(self.writer, self.blocks, self.pool, self.rejections, self.rejection_text,
                           self.spec.fee_unit_wei, t_end)
        if self.market is not None:
            self.market.finish(t_end, self.writer.append)
        return t_end
