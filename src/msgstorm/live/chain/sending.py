"""The chain target's sending part: each message sent as a transaction from an idle dev
account, and what the node answered of each.

Place in the pipeline: held by ``live/chain/target.py``'s ``ChainTarget`` (its ``sender``),
whose steps of the run connect it and send with it, and whose reads of the chain settle
what it sent (``included``; the accounts idle again, ``release_sender``).

Sending is open loop, as for brokers: each message leaves at its intended time, with every
other message due then in one JSON-RPC batch (``eth_sendTransaction`` each), or, when the
sender is behind at the run's end, not at all (status ``unsent``); it never waits for an
answer before the next send. How it waits for a send time and which rows go together is
``live/pacing.py``; the batch is written in the same turn of the event loop on a pipelined
keep-alive connection (``JsonRpc.send_now``), so ``t_sent`` is the write. What else runs on
the loop is kept short or out of the sender's way: the answers are small, the blocks are
read by their transactions' hashes (msgstorm's known from the answers), and a block read
starts in the gap after a send when the next is near (``between_sends``).

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
"""

from __future__ import annotations

import asyncio
import collections
import itertools
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from msgstorm.errors import TargetError
from msgstorm.history.events import EventKind
from msgstorm.live.chain.anvil import NAME, AnvilNode
from msgstorm.live.chain.calldata import encode, gas_cap
from msgstorm.live.chain.market import ChainMarket
from msgstorm.live.chain.record import LOST, PENDING, REJECTED, Window
from msgstorm.live.chain.rpc import JsonRpc
from msgstorm.live.lifecycle import RunState, SendRows, send_windows
from msgstorm.scenario.schema import MESSAGE_KINDS, CrashFault, RestartFault
from msgstorm.traffic.generate import MessageBatch

__all__ = ["REASONS", "SINK", "ChainSender", "reason_of"]

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
# A user's node whose request failed is asked within this whether it still takes connections.
_PROBE_TIMEOUT_S = 1.0


class _Senders:
    """Dev accounts that send (their indexes in ``ChainSender._senders``): an idle one (nothing
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


class ChainSender:
    """The chain target's sends: ``send_all`` the schedule's, ``send_market_rows`` the
    market's; each batch's answers (``_post``), the accounts and their nonces, and what the
    node took (``included``, ``accepted``, ``rejections``). The ``ChainTarget``
    (``live/chain/target.py``) that holds it runs it."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        # The state's event log and clock, which never change for a run: a send reads them often.
        self.log, self.now, self.scenario, self.run_dir = state.log, state.now, state.scenario, state.run_dir
        scenario = state.scenario
        self.node = AnvilNode(scenario, self.run_dir)
        self.spec = scenario.live.anvil
        self.windows: list[Window] = []
        self._first_ids: list[int] = []
        self.first_block = 0  # the chain's head when the schedule started
        self.rejections: dict[str, list[int]] = {}  # reason -> times of the refusals
        self.rejection_text: dict[str, str] = {}  # reason -> the node's first words for it
        self.included: dict[int, tuple[int, int, int]] = {}  # msg_id -> (t_committed, block, seq_no)
        self.hashes: dict[int, str] = {}  # msg_id -> its transaction's hash, while not seen in a block
        self.ours: dict[str, tuple[int, int]] = {}  # the same hashes -> (msg_id, kind): a block's read by them
        self.sent_before = 0  # transactions sent in the windows before the last two (progress)
        self.accepted = 0  # transactions the node accepted into its pool
        self.accepted_open = 0  # accepted by the node, not yet seen in a block
        self.in_flight = 0  # batch requests without an answer
        self._senders: list[str] = []
        self.nonces: list[int] = []
        self._nonce_tick = 0  # nonces handed out so far
        self._nonce_given: list[int] = []  # per account: the tick of the last nonce handed to it
        self._nonces_pid: int | None = None  # the node process the nonces were last read from
        self._traffic_senders = _Senders(range(0))
        self._market_senders = _Senders(range(0))  # with [market]: the market's own accounts
        self.sender_of: dict[int, int] = {}  # msg_id -> its account, until it is included or refused
        self.senders_busy = 0  # transactions sent from an account that was not idle
        self.market: ChainMarket | None = None
        self.market_nonce: dict[int, tuple[int, int]] = {}  # market msg_id -> (account, nonce), until included
        self.market_rows: dict[int, tuple[Window, int]] = {}  # market msg_id accepted -> its row, until included
        self.rpc: JsonRpc | None = None
        self.requests: set[asyncio.Task[None]] = set()
        self.next_due: int | None = None  # the intended time of the next send while the sender waits for it
        self._gap: asyncio.Future[None] | None = None  # done when the send awaited is out
        self.lost_to_faults = 0  # transactions sent while a fault had the node down
        self.lost_while_down: list[int] = []  # with [market]: msg_ids sent while a fault had the node down
        self.pool_pid: int | None = None  # the node process whose pool holds the accepted transactions

    async def connect(self, rpc: JsonRpc) -> None:
        accounts = await rpc.call("eth_accounts")
        if not accounts:
            raise TargetError("the node has no unlocked accounts to send from (eth_accounts is empty)")
        # With [market], the market's own accounts come last (at most half of a user's node's).
        market = min(self.spec.market_accounts, len(accounts) // 2) if self.market is not None else 0
        if self.market is not None and not market:
            raise TargetError("the node has one unlocked account: the market's transactions need their own")
        traffic = min(self.spec.accounts, len(accounts) - market)
        self._senders = accounts[:traffic] + accounts[len(accounts) - market:]
        self.nonces = [int(n, 16) for n in await rpc.calls("eth_getTransactionCount",
                                                            [[a, "pending"] for a in self._senders])]
        self._nonce_given = [0] * len(self._senders)
        self._nonces_pid = self.pool_pid = self.node.server.pid if self.node.server is not None else None
        self._traffic_senders = _Senders(range(traffic))
        self._market_senders = _Senders(range(traffic, traffic + market))
        self.first_block = int(await rpc.call("eth_blockNumber"), 16)

    def down_by_fault(self) -> bool:
        """Whether the node is down because a fault stopped it and will start it again."""
        nemesis, server = self.state.nemesis, self.node.server
        if nemesis is None or server is None:
            return False
        if nemesis.applying:  # a fault's start or end under way (a restart waits for the node to listen)
            return True
        return server.stopped_by_fault and any(
            op.action == "end" and op.fault_id in nemesis.started and op.fault_id not in nemesis.ended
            for op in nemesis.ops if isinstance(op.spec, CrashFault | RestartFault))

    # --- sending ----------------------------------------------------------------------------

    async def send_all(self, rpc: JsonRpc, traffic: Iterator[MessageBatch]) -> None:
        """The traffic open loop (``send_windows``), the market's rows numbered into it; ends
        where the node is lost for good."""
        gas_of = {MESSAGE_KINDS.index(kind): gas for kind, gas in self.scenario.blocks.gas.items()}
        unit = self.spec.fee_unit_wei
        now = self.now
        own_agents = len(self.scenario.agents)  # the market's agents come after: the oracle's rows

        def begin(batch: MessageBatch) -> SendRows:
            window = Window.unsent(batch)
            self.sent_before += sum(int((w.sent >= 0).sum()) for w in self.windows[-2:-1])
            self.windows.append(window)
            self._first_ids.append(int(batch.msg_id[0]) if len(batch) else -1)
            times = batch.t_intended.tolist()
            ids, kinds, agents = batch.msg_id.tolist(), batch.kind.tolist(), batch.agent.tolist()
            sizes = batch.size.tolist()
            fees = np.rint(batch.fee * unit).astype(np.int64).tolist()

            async def send_rows(i: int, j: int) -> None:
                front = self.node.front
                if front is not None and front.down:  # the sequencer takes nothing (live/chain/forced.py)
                    front.take(window, range(i, j))
                    self.sent_now()
                    return
                if self._restarted():
                    await self.resync_nonces(rpc)
                calls = [self._transaction(k, ids[k], kinds[k], agents[k], times[k], sizes[k], fees[k], gas_of,
                                           self._market_senders if agents[k] >= own_agents else self._traffic_senders)
                         for k in range(i, j)]
                window.sent[i:j] = now()  # then written at once (``_request``)
                self._request(rpc, window, slice(i, j), calls)
                self.sent_now()

            return send_rows

        def keep(batch: MessageBatch) -> None:
            self.windows.append(Window.unsent(batch))
            self._first_ids.append(int(batch.msg_id[0]) if len(batch) else -1)

        def waiting(t: int) -> None:
            self.next_due = t

        self.state.stopped_behind = await send_windows(
            traffic, self.scenario.run.duration, self.spec.batch, now, begin, keep,
            lambda: self.state.node_lost_at is not None, lambda: self.state.interrupted,
            self.market.numbered if self.market is not None else None, waiting)

    def _transaction(self, k: int, msg_id: int, kind: int, agent: int, t_intended: int, size: int, fee_wei: int,
                     gas_of: dict[int, int], senders: _Senders) -> str:
        """Row ``k``'s ``eth_sendTransaction`` call (JSON text), from an account of ``senders``
        with its next nonce."""
        sender = self._take_sender(msg_id, senders)
        nonce = self.nonces[sender]
        self.nonces[sender] = nonce + 1
        self._nonce_tick += 1
        self._nonce_given[sender] = self._nonce_tick
        data = encode(msg_id, kind, agent, t_intended, size)
        if senders is self._market_senders:
            self.market_nonce[msg_id] = (sender, nonce)
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
        self.requests.add(request)
        request.add_done_callback(self.requests.discard)

    def sent_now(self) -> None:
        """A send is done: the reads waiting for a gap between sends (``between_sends``) go."""
        if self._gap is not None and not self._gap.done():
            self._gap.set_result(None)
        self._gap = None

    async def between_sends(self) -> None:
        """Wait, if the next send is due within ``_QUIET_NS``, until it has left (that one
        only: at a rate whose gaps are all shorter, a read that waited for a wide one would
        never come): a read of the chain runs in the gap after a send, not across a send time."""
        if self.next_due is not None and 0 < self.next_due - self.now() < _QUIET_NS:
            if self._gap is None:
                self._gap = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._gap)

    def send_market_rows(self, window: Window, rows: list[int]) -> None:
        """Rows of one of the market's windows sent now (``live/chain/market.py``: its new
        messages, or ones it held); their ``t_sent`` is when their agent handed them over."""
        self._send_rows_from(window, rows, self._market_senders)

    def send_traffic_rows(self, window: Window, rows: list[int]) -> None:
        """Rows of a traffic window sent now: a sequencer outage's backlog and forced
        inclusions (``live/chain/forced.py``, which sets their ``t_sent``)."""
        self._send_rows_from(window, rows, self._traffic_senders)

    def _send_rows_from(self, window: Window, rows: list[int], senders: _Senders) -> None:
        if self.rpc is None or self.state.node_lost_at is not None:
            return
        gas_of = {MESSAGE_KINDS.index(kind): gas for kind, gas in self.scenario.blocks.gas.items()}
        batch = window.batch
        fees = np.rint(batch.fee[rows] * self.spec.fee_unit_wei).astype(np.int64).tolist()
        calls = [self._transaction(k, int(batch.msg_id[k]), int(batch.kind[k]), int(batch.agent[k]),
                                   int(batch.t_intended[k]), int(batch.size[k]), fee, gas_of, senders)
                 for k, fee in zip(rows, fees, strict=True)]
        window.outcome[rows] = -1
        self._request(self.rpc, window, rows, calls)

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
            window.answered[rows] = self.now()
            if self.down_by_fault():  # the fault's own events say why; each send it cost is lost
                self.lost_to_faults += len(window.outcome[rows])
                self._free_nonces(window, rows, body)
                if self.market is not None:  # its agents send again when the node is back
                    self.lost_while_down.extend(window.batch.msg_id[rows].tolist())
                return
            if await self.user_node_lost(error):  # said once, by its ``node_down``
                return
            self.state.on_error("sender", error)
            self.check_node()
            return
        finally:
            self.in_flight -= 1
        t = self.now()
        window.answered[rows] = t
        ids = window.batch.msg_id
        for answer in answers:
            k = int(answer["id"])
            refusal = answer.get("error")
            if refusal is None:
                window.outcome[k] = PENDING
                self.accepted += 1
                self.hashes[int(ids[k])] = answer["result"]
                self.ours[answer["result"]] = (int(ids[k]), int(window.batch.kind[k]))
                if window.market:
                    self.market_rows[int(ids[k])] = (window, k)
                continue
            message = str(refusal.get("message", ""))
            reason = reason_of(message)
            sender = self.sender_of.pop(int(ids[k]), None)
            self.market_nonce.pop(int(ids[k]), None)
            if sender is not None:
                if reason in _NONCE_FREE:  # the node did not take the nonce: the account's next one reuses it
                    self.nonces[sender] = min(self.nonces[sender], self._nonce_of(body, k))
                self.release_sender(sender)
            if (window.market and reason == "fee_cap_below_base_fee" and self.market is not None
                    and self.market.hold_again(window, k)):
                continue  # its sender holds it until the base fee falls (live/chain/market.py)
            window.outcome[k] = REJECTED
            self.rejections.setdefault(reason, []).append(t)
            self.rejection_text.setdefault(reason, message)
        self.settle_included()

    def _take_sender(self, msg_id: int, senders: _Senders) -> int:
        """An account of ``senders`` for message ``msg_id``: an idle one, else the least
        recently used one."""
        sender, idle = senders.take()
        if not idle:
            self.senders_busy += 1
        self.sender_of[msg_id] = sender
        return sender

    def _free_nonces(self, window: Window, rows: slice | list[int], body: str) -> None:
        """Transactions a stopped node never received: their accounts idle again, each
        account's next nonce back to the lowest of theirs (as for a refusal that took none)."""
        ids = window.batch.msg_id
        for k in range(len(ids))[rows] if isinstance(rows, slice) else rows:
            sender = self.sender_of.pop(int(ids[k]), None)
            self.market_nonce.pop(int(ids[k]), None)
            if sender is not None:
                self.nonces[sender] = min(self.nonces[sender], self._nonce_of(body, k))
                self.release_sender(sender)

    def forget(self, msg_id: int) -> None:
        """Message ``msg_id`` is in a block, or gone from the node: its account is idle again
        and the market's books on it are closed."""
        account = self.sender_of.pop(msg_id, None)
        if account is not None:
            self.release_sender(account)
        self.market_nonce.pop(msg_id, None)
        self.market_rows.pop(msg_id, None)

    def release_sender(self, sender: int) -> None:
        """An account with nothing of its left in the pool is idle again."""
        senders = self._traffic_senders if sender < self._traffic_senders.size else self._market_senders
        senders.idle.append(sender)

    @staticmethod
    def _nonce_of(body: str, k: int) -> int:
        """The nonce the batch ``body`` gave transaction ``k`` (read back from the text sent)."""
        start = body.index(f'"id":{k},')
        at = body.index('"nonce":"', start) + 9
        return int(body[at:body.index('"', at)], 16)

    # --- the node ---------------------------------------------------------------------------

    def _restarted(self) -> bool:
        """Whether the node listens again as another process than the one the nonces were
        last read from (a fault restarted it)."""
        server = self.node.server
        return (server is not None and server.pid is not None and server.pid != self._nonces_pid
                and not self.down_by_fault())

    async def resync_nonces(self, rpc: JsonRpc) -> None:
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
                self.nonces[sender] = int(count, 16)

    def settle_included(self) -> None:
        """Accepted transactions not yet seen in a block (the drain waits for none)."""
        self.accepted_open = self.accepted - len(self.included)

    def check_node(self) -> None:
        """A node msgstorm started that has exited (not stopped by a fault that starts it
        again) is named once (``node_down``)."""
        if self.state.node_lost_at is None and not self.node.alive() and not self.down_by_fault():
            self.state.node_lost_at = self.now()
            server = self.node.server
            self.log.add((self.state.node_lost_at, EventKind.NODE_DOWN, NAME, None, {
                "name": NAME, "returncode": server.process.returncode if server and server.process else None,
                "error": "a crash fault without restart_after stopped it for good" if server and server.stopped_by_fault
                else "the node exited during the run"}))

    async def user_node_lost(self, error: BaseException) -> bool:
        """Whether a user's node (``live.url``: no process of msgstorm's to watch) is gone,
        asked after a request to it failed with ``error``: a new connection to its own address
        (not through the fault proxy, whose toxic may be what failed) that is refused is its
        loss, named once (``node_down``) and the end of the sending, as for a node msgstorm
        started. A node that takes the connection, or does not answer within a second (a
        stopped process still takes connections into its backlog), is still there."""
        if self.state.node_lost_at is not None:
            return True
        if self.node.server is not None:
            return False
        url = self.node.direct_url
        parts = urlsplit(url)
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(parts.hostname, parts.port or 80),
                                               _PROBE_TIMEOUT_S)
        except TimeoutError:
            return False
        except OSError as refused:
            if self.state.node_lost_at is None:
                self.state.node_lost_at = self.now()
                self.log.add((self.state.node_lost_at, EventKind.NODE_DOWN, NAME, None, {
                    "name": NAME, "url": url, "returncode": None,
                    "error": f"the node at {url} no longer takes connections ({type(refused).__name__}) after "
                             f"{type(error).__name__}: {error}"}))
            return True
        writer.close()
        return self.state.node_lost_at is not None

