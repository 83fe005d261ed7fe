"""The validator-network target: the scenario's traffic as transactions to CometBFT
validators, and what each validator committed.

Place in the pipeline: ``runner`` -> **CometTarget** -> history, beside ``ChainTarget`` (an
EVM node) and ``LiveTarget`` (brokers); it writes the same tables, so the analysis reads a
validator network's run as it reads the others'. The validators are ``CometNetwork``'s
(``live/chain/cometbft.py``); the run is the one every live target shares
(``live/lifecycle.py``), and the sending the EVM node's (``send_windows`` there, over
``live/send_loop.py`` and ``live/pacing.py``).

Sending: each message is one ``kvstore`` transaction, ``m<msg_id>=<kind>.<agent>.<t_intended>``
padded with ``x`` to the message's ``size`` (unique bytes: CometBFT's mempool cache refuses a
repeated transaction), sent open loop at its intended time with every other message due then
for the same validator in one JSON-RPC batch of ``broadcast_tx_async`` calls. A message goes to
``live.cometbft.entry``, else to validator ``key`` modulo ``validators``.

Commits: each validator's WebSocket (``subscribe`` to ``tm.event='NewBlock'``) brings its new
blocks with their transactions; a block's arrival at a validator is that validator's commit
of its transactions (a CometBFT block is final when the validator has it). A height a
validator's WebSocket missed (it was paused, restarted, or the run ended) is read with the
``block`` call, stamped when it was read. A message is stamped as it comes and decoded when
the sender's next send is far enough off (``_may_parse``): decoding whole blocks on the
sender's loop made its sends leave late.

The history: ``messages`` one row per message (``t_sent`` the write of its batch,
``t_received`` the validator's answer, ``t_dequeued`` and ``t_sequenced`` the proposal of
its block (the first validator's ``CompleteProposal`` event for that block, of whichever
round: the mempool's wait ends there), ``t_committed`` and ``block`` (the height) the first commit of its block by
any validator: the network's decision; statuses ``committed``,
``rejected`` (the node's reason in a ``tx_rejected`` event), ``pending`` (accepted, in a
mempool at the end), ``lost`` (no answer), ``unsent``); ``deliveries`` one row per
(message, validator that committed it) at that validator's commit; ``finalized`` one row per
(validator, height) with the block (the first 60 bits of its hash), which the ``safety``
checker compares across validators; events: ``block_committed`` per validator and height
(detail: proposer, the round it was decided in, transactions), ``block_produced`` per height
(at its first commit, node its proposer), ``queue_depth`` per validator every
``run.sample_interval`` (its mempool's transactions), the servers' start and stop and the
cleanup.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from msgstorm.errors import TargetError
from msgstorm.history.events import EventKind
from msgstorm.live.chain.cometbft import CometNetwork
from msgstorm.live.chain.record import LOST, PENDING, REJECTED, Window, write_messages
from msgstorm.live.chain.rpc import JsonRpc
from msgstorm.live.cpu import MIN_INTERVAL_S
from msgstorm.live.lifecycle import NoSteps, RunState, SendRows, cancelled, send_windows
from msgstorm.live.nemesis import Nemesis
from msgstorm.live.recorder import PUBLISHER
from msgstorm.live.servers import ManagedServer
from msgstorm.progress import ProgressSnapshot
from msgstorm.rules.desync import HeightGapTracker
from msgstorm.traffic.generate import MessageBatch

__all__ = ["CometTarget", "block_number", "decode_tx", "encode_tx", "evidence_detail", "may_decode", "reason_of"]

_RETRY_S = 0.2  # a validator's WebSocket is tried again this often while it is down
_READY_BLOCKS = 2  # every validator has committed this many heights before the clock starts
# A validator's WebSocket message (a whole block, every transaction in base64) is decoded when
# the sender's next send is at least this far off, plus ``_PARSE_NS_PER_CHAR`` a character of it
# (``CometTarget._parse``): decoding on the sender's loop never makes a send leave late.
_PARSE_SLACK_NS = 1_000_000
# Decoding a NewBlock message (json.loads, each transaction's base64 and id) took 25 ns a
# character on the quiet 2-core VM of docs/performance.md: more than twice that, for a busy one.
_PARSE_NS_PER_CHAR = 60
_PARSE_POLL_S = 0.001  # the messages waiting are looked at this often
# Held undecoded past this many characters, they are decoded whatever the sender's schedule
# (memory bounded; the sends then wait behind it, as the send lag shows).
_PARSE_HOLD_CHARS = 64 << 20
_MEMPOOL_CALL = '{"jsonrpc":"2.0","id":0,"method":"num_unconfirmed_txs","params":{}}'
# A validator's refusal, by the words of its error, as a reason the history names.
REASONS: tuple[tuple[str, str], ...] = (
    ("already exists in cache", "duplicate"),
    ("mempool is full", "mempool_full"),
    ("too large", "too_large"),
)


def reason_of(message: str) -> str:
    lowered = message.lower()
    return next((reason for words, reason in REASONS if words in lowered), "other")


def encode_tx(msg_id: int, kind: int, agent: int, t_intended: int, size: int) -> bytes:
    """Message ``msg_id``'s kvstore transaction (``key=value``), padded to ``size`` bytes."""
    tx = f"m{msg_id}={kind}.{agent}.{t_intended}".encode()
    return tx + b"x" * max(0, size - len(tx))


def decode_tx(tx: bytes) -> int | None:
    """The msg_id of a transaction msgstorm made, else None."""
    if not tx.startswith(b"m"):
        return None
    key, sep, _ = tx.partition(b"=")
    return int(key[1:]) if sep and key[1:].isdigit() else None


def evidence_detail(item: dict[str, Any]) -> dict[str, Any]:
    """What an ``evidence`` event says of one item of a block's evidence (CometBFT's JSON:
    ``{"type": "tendermint/DuplicateVoteEvidence", "value": {"vote_a": ..., "vote_b": ...}}``):
    its type, the validator's address, and the height, round and type of the votes."""
    value = item.get("value") or {}
    vote = value.get("vote_a") or {}
    return {"type": str(item.get("type", "")).rsplit("/", 1)[-1], "address": vote.get("validator_address"),
            "vote_height": int(vote["height"]) if "height" in vote else None,
            "round": int(vote["round"]) if "round" in vote else None, "vote_type": vote.get("type")}


def may_decode(next_send: int | None, now: int, chars: int, held_chars: int) -> bool:
    """Whether a WebSocket message of ``chars`` characters can be decoded at ``now`` (ns)
    without making the send due at ``next_send`` leave late: it is more than
    ``_PARSE_SLACK_NS`` plus ``_PARSE_NS_PER_CHAR`` a character away, or nothing is being
    sent (None), or more than ``_PARSE_HOLD_CHARS`` are held undecoded."""
    if next_send is None or held_chars > _PARSE_HOLD_CHARS:
        return True
    return next_send - now > _PARSE_SLACK_NS + chars * _PARSE_NS_PER_CHAR


def block_number(block_hash: str) -> int:
    """A block's id in the history (an int64): the first 60 bits of its hash."""
    return int(block_hash[:15], 16)


@dataclass
class Commit:
    """One height as one validator committed it."""

    t: int
    block_hash: str
    proposer: str
    txs: int
    ours: list[int] = field(default_factory=list)
    round: int = -1  # the round the height was decided in (from the next height's last commit)


class CometTarget(NoSteps):
    """Drive a CometBFT validator network with ``scenario``'s traffic; ``finish`` writes what
    happened."""

    drain_poll_s = 0.02

    def __init__(self, state: RunState) -> None:
        super().__init__(state)
        scenario = state.scenario
        self.spec = scenario.live.cometbft
        self.network = CometNetwork(scenario, self.run_dir)
        self.names = [f"validator-{i}" for i in range(self.spec.validators)]
        self.windows: list[Window] = []
        self.commits: list[dict[int, Commit]] = [{} for _ in self.names]  # per validator: height -> commit
        self.first_height = 0  # heights up to this one were made before the clock started
        self.rejections: dict[str, list[int]] = {}
        self.rejection_text: dict[str, str] = {}
        self.mempools: list[tuple[int, int, int]] = []  # (t, validator, transactions)
        self.accepted = 0
        self._rpcs: list[JsonRpc] = []
        self._session: aiohttp.ClientSession | None = None
        self._watchers: list[asyncio.Task[None]] = []  # each validator's new blocks, while the run goes
        self._requests: set[asyncio.Task[None]] = set()
        self._committed_ids: set[int] = set()
        self.proposals: dict[str, int] = {}  # block hash -> when a validator first held the whole proposed block
        self.evidence_seen: set[str] = set()  # blocks whose evidence is kept (at their first commit)
        # (t, the validator it names, the height holding it, its detail): evidence events
        self.evidence: list[tuple[int, str | None, int, dict[str, Any]]] = []
        self.stopped: list[tuple[int, str, bool]] = []  # (t, validator, True: a fault stopped it / False: it ended)
        # The validators' WebSocket messages as they came, decoded by ``_parse`` in the sender's
        # gaps: (validator, its connection's number, when it came, the text).
        self._inbox: collections.deque[tuple[int, int, int, str]] = collections.deque()
        self._inbox_chars = 0
        self._next_send: int | None = None  # when the sender sends next (None: it is not sending)
        self._caught_up: set[tuple[int, int]] = set()  # (validator, connection) whose missed heights were read
        self._parser: asyncio.Task[None] | None = None

    @property
    def nodes(self) -> list[dict[str, str]]:
        return [{"name": PUBLISHER, "region": "local"}, *({"name": n, "region": "validators"} for n in self.names)]

    # --- running: the lifecycle's steps (``live/lifecycle.py``) --------------------------------

    def start_servers(self) -> list[dict[str, Any]]:
        problems = CometNetwork.problems(self.scenario)
        if problems:
            raise TargetError("; ".join(f"{'.'.join(map(str, where))}: {said}" for where, said in problems))
        self.network.start()  # their homes written; spawned once the route proxy listens (``_open``)
        return []

    def stop_servers(self) -> list[ManagedServer]:
        for name, counters in self.network.counters().items():
            self.log.add((self.now(), EventKind.VALIDATOR_COUNTERS, name, None, counters))
        self.network.stop()
        return self.network.every_server  # the validators and any second signer a double_sign started

    def _record_fault(self, t: int, kind: str, node: str | None, detail: dict[str, Any] | None) -> None:
        """The nemesis's events, and when a fault held a validator stopped (not desynchronised)."""
        self.log.add((t, kind, node, None, detail))
        if node in self.names and kind in (EventKind.FAULT_START, EventKind.FAULT_END):
            self.stopped.append((t, node, kind == EventKind.FAULT_START))

    async def open(self) -> None:
        # The route proxy listens before the validators dial each other through it.
        self.state.nemesis = Nemesis(self.scenario, self.network, self.run_dir, self._record_fault)
        await self.state.nemesis.prepare()
        for described in self.network.spawn():
            self.log.add((self.now(), EventKind.SERVER_START, None, None, described))
        self._rpcs = [JsonRpc(url, 2) for url in self.network.rpc_urls]
        self._session = aiohttp.ClientSession()
        await self._ready()
        for rpc in self._rpcs:  # each validator's first pipelined connection, before the clock starts
            await rpc.send(_MEMPOOL_CALL)

    def during(self, loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[Any]]:
        assert self._session is not None
        session = self._session
        # Past the drain, until the catch-up has read the last heights (``_after``).
        self._watchers = [loop.create_task(self._watch(session, v)) for v in range(len(self.names))]
        self._parser = loop.create_task(self._parse())
        self._watchers.append(self._parser)
        return [loop.create_task(self._sample_mempools())]

    async def send(self, traffic: Iterator[MessageBatch]) -> None:
        try:
            await self._send_all(traffic)
        finally:
            self._next_send = None  # the blocks are decoded at once from here on

    def drained(self) -> bool:
        """Every request answered and every accepted transaction committed."""
        return not self._requests and len(self._committed_ids) >= self.accepted

    async def after(self) -> None:
        if not self.state.interrupted:
            try:
                await asyncio.wait_for(self._catch_up(), 20)
            except Exception as error:  # noqa: BLE001 - what was read is kept
                self.state.on_error("blocks", error)

    async def close(self) -> None:
        await cancelled(*self._watchers, *self._requests)
        if self._session is not None:
            await self._session.close()
        for rpc in self._rpcs:
            await rpc.close()

    def sampled_processes(self) -> list[tuple[str, int]]:
        return [(server.name, server.pid) for server in self.network.validators if server.pid is not None]

    async def _ready(self) -> None:
        """Until every validator has committed ``_READY_BLOCKS`` heights (their links up, the
        chain going), else a TargetError naming those behind."""
        deadline = self.now() + 3 * self.scenario.live.start_timeout
        heights = [0] * len(self.names)
        while self.now() < deadline:
            for v, rpc in enumerate(self._rpcs):
                try:
                    status = await rpc.call("status")
                    heights[v] = int(status["sync_info"]["latest_block_height"])
                except Exception:  # noqa: BLE001, S110 - not answering yet
                    pass
            if min(heights) >= _READY_BLOCKS:
                self.first_height = max(heights)
                return
            await asyncio.sleep(0.1)
        behind = [f"{name} at height {h}" for name, h in zip(self.names, heights, strict=True) if h < _READY_BLOCKS]
        raise TargetError(f"cometbft: validators made no chain within {3 * self.scenario.live.start_timeout / 1e9:g} s "
                          f"({', '.join(behind)}); see RUN_DIR/servers/validator-*.out")

    # --- sending ----------------------------------------------------------------------------

    async def _send_all(self, traffic: Iterator[MessageBatch]) -> None:
        """The traffic open loop (``send_windows``): each message due to validator ``entry``,
        else ``key`` modulo the validators, the rows due together in one batch a validator."""
        count = len(self.names)
        entry = self.spec.entry

        def begin(batch: MessageBatch) -> SendRows:
            window = Window.unsent(batch)
            self.windows.append(window)
            times = batch.t_intended.tolist()
            ids, kinds, agents = batch.msg_id.tolist(), batch.kind.tolist(), batch.agent.tolist()
            sizes, keys = batch.size.tolist(), batch.key.tolist()

            async def send_rows(i: int, j: int) -> None:
                rows: dict[int, list[int]] = {}
                for k in range(i, j):
                    v = entry if entry is not None else keys[k] % count
                    rows.setdefault(v, []).append(k)
                window.sent[i:j] = self.now()
                for v, part in rows.items():
                    calls = [self._call(k, encode_tx(ids[k], kinds[k], agents[k], times[k], sizes[k])) for k in part]
                    self._request(v, window, part, "[" + ",".join(calls) + "]")

            return send_rows

        def keep(batch: MessageBatch) -> None:
            self.windows.append(Window.unsent(batch))

        def waiting(due: int) -> None:
            self._next_send = due

        self.state.stopped_behind = await send_windows(traffic, self.scenario.run.duration, self.spec.batch, self.now,
                                                 begin, keep, lambda: False, lambda: self.state.interrupted,
                                                 waiting=waiting)

    @staticmethod
    def _call(k: int, tx: bytes) -> str:
        return (f'{{"jsonrpc":"2.0","id":{k},"method":"broadcast_tx_async",'
                f'"params":{{"tx":"{base64.b64encode(tx).decode()}"}}}}')

    def _request(self, v: int, window: Window, rows: list[int], body: str) -> None:
        answer = self._rpcs[v].send_now(body)
        request = asyncio.get_running_loop().create_task(self._post(v, window, rows, body, answer))
        self._requests.add(request)
        request.add_done_callback(self._requests.discard)

    async def _post(self, v: int, window: Window, rows: list[int], body: str,
                    written: asyncio.Future[Any] | None) -> None:
        """One batch's answers: each transaction accepted or refused (with why); none: lost."""
        try:
            answers = await (written if written is not None else self._rpcs[v].send(body))
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - the validator did not answer: lost
            window.outcome[rows] = LOST
            self.state.on_error(f"sender {self.names[v]}", error)
            return
        t = self.now()
        if isinstance(answers, dict):  # a batch of one is answered as one call; a refused batch as one error
            answers = [answers] if answers.get("id") in rows else [{"id": k, "error": answers.get("error")} for k in rows]
        by_row = {int(a["id"]): a for a in answers if isinstance(a, dict) and "id" in a}
        for k in rows:
            window.answered[k] = t
            answer = by_row.get(k)
            refusal = None if answer is None else answer.get("error")
            code = 0 if answer is None or refusal is not None else int(answer["result"].get("code", 0))
            if answer is None:
                window.outcome[k] = LOST
            elif refusal is None and code == 0:
                window.outcome[k] = PENDING
                self.accepted += 1
            else:
                message = str(refusal.get("data") or refusal.get("message")) if refusal is not None else str(
                    answer["result"].get("log") or f"code {code}")
                reason = reason_of(message)
                window.outcome[k] = REJECTED
                self.rejections.setdefault(reason, []).append(t)
                self.rejection_text.setdefault(reason, message)

    # --- the blocks -------------------------------------------------------------------------

    async def _watch(self, session: aiohttp.ClientSession, v: int) -> None:
        """Validator ``v``'s new blocks, over its WebSocket; followed again after it was down
        (the heights missed read with ``block``). Each message is stamped as it comes and
        kept as text: ``_parse`` decodes it when the sender has time for it."""
        url = "ws" + self.network.rpc_urls[v][4:] + "/websocket"
        for connection in itertools.count():
            try:
                async with session.ws_connect(url, heartbeat=None, max_msg_size=0) as ws:
                    for k, query in enumerate(("tm.event='NewBlock'", "tm.event='CompleteProposal'")):
                        await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": k + 1, "method": "subscribe",
                                                      "params": {"query": query}}))
                    async for message in ws:
                        if message.type != aiohttp.WSMsgType.TEXT:
                            break
                        self._inbox.append((v, connection, self.now(), message.data))
                        self._inbox_chars += len(message.data)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001, S110 - the validator is down: tried again
                pass
            await asyncio.sleep(_RETRY_S)

    def _may_parse(self, chars: int) -> bool:
        return may_decode(self._next_send, self.now(), chars, self._inbox_chars)

    async def _parse(self) -> None:
        """The WebSocket messages, in the order they came, each decoded when ``_may_parse``."""
        while True:
            while self._inbox and self._may_parse(len(self._inbox[0][3])):
                await self._next_received()
            await asyncio.sleep(_PARSE_POLL_S)

    async def _next_received(self) -> None:
        """The oldest message held, decoded and taken off (after: one cut short is decoded again,
        which changes nothing already recorded)."""
        v, connection, t, text = self._inbox[0]
        try:
            await self._received(v, connection, t, text)
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001, S110 - not a message of a block or proposal: skipped
            pass
        self._inbox.popleft()
        self._inbox_chars -= len(text)

    async def _received(self, v: int, connection: int, t: int, text: str) -> None:
        """One WebSocket message of validator ``v``, which came at ``t``: a proposal held
        whole, or a new block (its first on ``connection`` after the heights missed)."""
        data = (json.loads(text).get("result") or {}).get("data") or {}
        value = data.get("value")
        if not value:
            return
        if data.get("type") == "tendermint/event/CompleteProposal":
            # The first validator to hold the whole proposed block (of any round).
            self.proposals.setdefault(value["block_id"]["hash"], t)
            return
        if (v, connection) not in self._caught_up:
            self._caught_up.add((v, connection))
            try:
                await self._read_missing(v, int(value["block"]["header"]["height"]) - 1)
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001, S110 - the validator went down again: read at its next connection
                self._caught_up.discard((v, connection))
        self._commit(v, value["block"], value["block_id"]["hash"], t)

    async def _read_missing(self, v: int, through: int) -> None:
        """Heights after validator ``v``'s last one seen through ``through``, read with ``block``."""
        seen = self.commits[v]
        last = max(seen) if seen else self.first_height
        for height in range(last + 1, through + 1):
            found = await self._rpcs[v].call("block", str(height))
            self._commit(v, found["block"], found["block_id"]["hash"], self.now())

    def _commit(self, v: int, block: dict[str, Any], block_hash: str, t: int) -> None:
        header = block["header"]
        height = int(header["height"])
        if height <= self.first_height or height in self.commits[v]:
            return
        txs = block["data"]["txs"] or []
        ours = [m for m in (decode_tx(base64.b64decode(tx)) for tx in txs) if m is not None]
        proposer = self.network.addresses.index(header["proposer_address"]) if (
            header["proposer_address"] in self.network.addresses) else -1
        self.commits[v][height] = Commit(t, block_hash, self.names[proposer] if proposer >= 0 else
                                         header["proposer_address"], len(txs), ours)
        previous = self.commits[v].get(height - 1)
        last_commit = block.get("last_commit") or {}
        if previous is not None and last_commit:
            previous.round = int(last_commit.get("round", -1))
        self._committed_ids.update(ours)
        if block_hash not in self.evidence_seen:
            self.evidence_seen.add(block_hash)
            for item in (block.get("evidence") or {}).get("evidence") or []:
                self.evidence.append((t, self._signer_of(item), height, evidence_detail(item)))

    def _signer_of(self, item: dict[str, Any]) -> str | None:
        """The validator an evidence item names, by its consensus address (None: not one of ours)."""
        address = str(evidence_detail(item).get("address") or "").upper()
        return self.names[self.network.addresses.index(address)] if address in self.network.addresses else None

    async def _catch_up(self) -> None:
        """After the drain: the messages not decoded yet, then every height a running validator
        has that its WebSocket has not brought."""
        if self._parser is not None:
            await cancelled(self._parser)
        while self._inbox:
            await self._next_received()
        for v, alive in enumerate(self.network.alive()):
            if alive:
                status = await self._rpcs[v].call("status")
                await self._read_missing(v, int(status["sync_info"]["latest_block_height"]))

    async def _sample_mempools(self) -> None:
        """Every validator's mempool size every ``run.sample_interval``: the calls written at
        once on the sends' pipelined connections (an aiohttp request costs the sender's loop
        about 0.3 ms), each stamped at its answer."""
        every_s = max(self.scenario.run.sample_interval / 1e9, MIN_INTERVAL_S)

        async def sample(v: int, rpc: JsonRpc) -> None:
            written = rpc.send_now(_MEMPOOL_CALL)
            found = await (written if written is not None else rpc.send(_MEMPOOL_CALL))
            self.mempools.append((self.now(), v, int(found["result"]["n_txs"])))

        while True:
            # A validator down (or an error) has no sample.
            await asyncio.gather(*(sample(v, rpc) for v, rpc in enumerate(self._rpcs)), return_exceptions=True)
            await asyncio.sleep(every_s)

    def snapshot(self, final: bool = False) -> ProgressSnapshot:
        sent = sum(int((w.sent >= 0).sum()) for w in self.windows)
        refused = sum(len(times) for times in self.rejections.values())
        committed = len(self._committed_ids)
        depth = self.mempools[-1][2] if self.mempools else 0
        return ProgressSnapshot(
            t_ns=self.now(), end_ns=self.scenario.run.duration, sent=sent, emitted=sent,
            settled=committed + refused, committed=committed, dropped=0, rejected=refused, queue_depth=depth,
            base_fee=None, faults_active=0, leader=self.names[0], final=final, target=self.scenario.target)

    # --- the history ------------------------------------------------------------------------

    def included(self) -> dict[int, tuple[int, int, int]]:
        """msg_id -> (t_committed, height, seq_no): the first commit of its block by any
        validator (the network's decision; each validator's own is in ``deliveries``), and
        its place on the chain."""
        first: dict[int, tuple[int, int, int]] = {}
        for commits in self.commits:
            for height, commit in commits.items():
                for position, msg_id in enumerate(commit.ours):
                    if msg_id not in first or commit.t < first[msg_id][0]:
                        first[msg_id] = (commit.t, height, position)
        ranked = sorted(first, key=lambda m: (first[m][1], first[m][2]))
        return {msg_id: (first[msg_id][0], first[msg_id][1], seq) for seq, msg_id in enumerate(ranked)}

    def finish(self) -> int:
        """Write the messages, the per-validator commits and the chain's events; the run's end (ns)."""
        t_end = self.state.end_history()
        agents = [agent.name for agent in self.scenario.agents]
        included = self.included()
        # The block each height committed (one per height: the safety check says so) and
        # when it was proposed; a block proposed in a round that failed is not it.
        hashes = {height: commit.block_hash for commits in self.commits for height, commit in commits.items()}
        proposed = {msg_id: min(self.proposals[hashes[height]], t) for msg_id, (t, height, _) in included.items()
                    if hashes[height] in self.proposals}
        sent = write_messages(self.writer, self.scenario, self.windows, included, set(), self.state.interrupted,
                              self.state.start_error is None, agents, proposed=proposed)
        self.state.history_written(t_end, sent)
        self._write_commits(t_end)
        return t_end

    def _write_commits(self, t_end: int) -> None:
        deliveries: dict[str, list[Any]] = {"msg_id": [], "node": [], "t_delivered": [], "hops": []}
        finalized: dict[str, list[Any]] = {"t": [], "node": [], "height": [], "block": []}
        # The consensus rows the simulator's round-based rule writes too (analysis/consensus.py):
        # a height whose round is unknown (no next block told it) has none.
        heights: dict[str, list[Any]] = {"node": [], "height": [], "round": [], "proposer": [], "t_committed": [],
                                         "interval_ns": []}
        rows: list[tuple[int, str, str | None, float | None, int | None, str | None]] = []
        produced: dict[int, tuple[int, Commit]] = {}
        for v, commits in enumerate(self.commits):
            name = self.names[v]
            before: int | None = None
            for height in sorted(commits):
                commit = commits[height]
                t = min(commit.t, t_end)
                finalized["t"].append(t)
                finalized["node"].append(name)
                finalized["height"].append(height)
                finalized["block"].append(block_number(commit.block_hash))
                if commit.round >= 0:
                    for column, value in (("node", name), ("height", height), ("round", commit.round),
                                          ("proposer", commit.proposer), ("t_committed", t),
                                          ("interval_ns", None if before is None else t - before)):
                        heights[column].append(value)
                before = t
                for msg_id in commit.ours:
                    deliveries["msg_id"].append(msg_id)
                    deliveries["node"].append(name)
                    deliveries["t_delivered"].append(t)
                    deliveries["hops"].append(0)
                rows.append((t, EventKind.BLOCK_COMMITTED, name, float(commit.txs), height, json.dumps(
                    {"proposer": commit.proposer, "round": commit.round, "ours": len(commit.ours),
                     "hash": commit.block_hash})))
                if height not in produced or t < produced[height][0]:
                    produced[height] = (t, commit)
        for height, (t, commit) in produced.items():
            rows.append((t, EventKind.BLOCK_PRODUCED, commit.proposer, float(commit.txs), height,
                         json.dumps({"ours": len(commit.ours), "round": commit.round})))
        rows += [(min(t, t_end), EventKind.EVIDENCE, node, None, height, json.dumps(detail))
                 for t, node, height, detail in self.evidence]
        rows += self._desync_rows(t_end)
        for t, v, depth in self.mempools:
            rows.append((min(t, t_end), EventKind.QUEUE_DEPTH, self.names[v], float(depth), None, None))
        for reason, times in sorted(self.rejections.items()):
            rows.append((min(times[0], t_end), EventKind.TX_REJECTED, None, float(len(times)), None,
                         json.dumps({"reason": reason, "error": self.rejection_text[reason]})))
        if deliveries["msg_id"]:
            self.writer.append("deliveries", deliveries)
        if finalized["t"]:
            self.writer.append("finalized", finalized)
        if heights["node"]:
            self.writer.append("heights", heights)
        if rows:
            rows.sort(key=lambda row: row[0])
            self.writer.append("events", {"t": [r[0] for r in rows], "kind": [str(r[1]) for r in rows],
                                          "node": [r[2] for r in rows], "value": [r[3] for r in rows],
                                          "height": [r[4] for r in rows], "detail": [r[5] for r in rows]})

    def _desync_rows(self, t_end: int) -> list[tuple[int, str, str | None, float | None, int | None, str | None]]:
        """``desync_start`` / ``desync_end`` events by the simulator's rule (``rules/desync.py``):
        a validator more than ``desync.max_height_gap`` heights behind the highest for
        ``desync.min_duration``, judged at every commit time; one a fault holds stopped (pause,
        crash, restart) is down, not desynchronised."""
        rows: list[tuple[int, str, str | None, float | None, int | None, str | None]] = []

        def event(t: int, kind: Any, node: int, value: float, detail: dict[str, Any] | None = None) -> None:
            rows.append((min(t, t_end), str(kind), self.names[node], value, None,
                         json.dumps(detail) if detail is not None else None))

        spec = self.scenario.desync
        tracker = HeightGapTracker(len(self.names), spec.max_height_gap, spec.min_duration, event,
                                   EventKind.DESYNC_START, EventKind.DESYNC_END)
        commits = sorted((c.t, v, h) for v, commits in enumerate(self.commits) for h, c in commits.items())
        if not commits:
            return rows
        heights = [min(h for _, _, h in commits) - 1] * len(self.names)
        down = [False] * len(self.names)
        stops = sorted(self.stopped)
        at = 0
        for k, (t, v, height) in enumerate(commits):
            heights[v] = max(heights[v], height)
            while at < len(stops) and stops[at][0] <= t:
                down[self.names.index(stops[at][1])] = stops[at][2]
                at += 1
            if k + 1 < len(commits) and commits[k + 1][0] == t:
                continue
            tracker.check(t, max(heights), heights, [not d for d in down])
        top = max(heights)
        tracker.close(t_end, [top - h for h in heights])
        return rows
