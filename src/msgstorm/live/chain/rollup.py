"""The live rollup (``[rollup]`` with ``target = "anvil"``): an L1 anvil and msgstorm's own batcher.

Place in the pipeline: under ``live/chain/target.py``. The run's anvil is the rollup's L2
(its sequencer and blocks, as for any anvil run); ``L1Node`` starts a second anvil as the L1,
a block every ``rollup.l1.slot`` (12 s for the presets; a test gives a shorter slot);
``LiveBatcher`` runs in the run loop beside the heads' reader, which hands it each L2 block
it reads. The batching rule is ``rules/batcher.py``'s, which the simulator steps too: a
batch opens with its first L2 block; a block that would take its compressed size (its bytes
times ``compression_ratio``) past ``max_size`` closes it (posted at once) and opens the next;
a batch still open ``max_delay`` after it opened closes then. Posting a batch is one L1 transaction (``eth_sendTransaction`` from the
L1's first account to ``BATCH_INBOX``) whose calldata is the zlib-compressed concatenation
of its L2 blocks' transactions (each one's input); its receipt gives its L1 block, gas and
cost (``gasUsed x effectiveGasPrice``). The L1's heads are read as they come, each one an
``l1_blocks`` row stamped with its arrival on the run's clock, as the L2's heads are.

The three commit levels, written at the run's end (``write``): ``t_soft`` the L2 block's
arrival (the message's ``t_committed``), ``t_safe`` the arrival of the L1 block holding its
batch, ``t_final`` that block final by the simulator's rule (``rules/finality.final_slot_time``),
counted from the L1 block at the run's start as slot 0: ``t_final = t_safe + final_slot_time(k)
- k x slot`` for the block of slot ``k``. A message whose batch was not on L1 when the run
ended has no ``commits`` row (as in the simulator, every row has its three levels). Only calldata
batches: ``batcher.data = "blobs"`` is refused (``problems``).
"""

from __future__ import annotations

import asyncio
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from msgstorm.history.writer import HistoryWriter
from msgstorm.live.chain.rpc import JsonRpc
from msgstorm.live.servers import ManagedServer, free_port
from msgstorm.rules.batcher import BatchRule, Closed
from msgstorm.rules.finality import final_slot_time
from msgstorm.scenario.rollup import RollupSpec
from msgstorm.scenario.schema import Scenario

__all__ = ["BATCH_INBOX", "L1_NAME", "L1Head", "L1Node", "LiveBatcher", "problems"]

L1_NAME = "anvil-l1"
# Where batches are sent: an address with no code (OP Stack's batch inbox is such an address).
BATCH_INBOX = "0xff00000000000000000000000000000000000042"
_POLL_S = 0.02  # the batcher's clock: how often it looks at its open batch's age and its receipts


def problems(scenario: Scenario) -> list[tuple[tuple[str | int, ...], str]]:
    """What of ``[rollup]`` the live rollup does not run, each with its field."""
    rollup = scenario.rollup
    if rollup is None:
        return []
    said: list[tuple[tuple[str | int, ...], str]] = []
    if rollup.batcher.data == "blobs":
        said.append((("rollup", "batcher", "data"), "the live batcher posts calldata: give data = \"calldata\" "
                                                    "(blobs are simulated only: --target sim)"))
    if rollup.l1.slot % 1_000_000:
        said.append((("rollup", "l1", "slot"), f"anvil's block time is in whole milliseconds, not {rollup.l1.slot} ns"))
    if rollup.timeboost is not None:
        said.append((("rollup", "timeboost"), "the express lane is simulated only: drop [rollup.timeboost] "
                                              "or --target sim"))
    if scenario.live.url is not None:
        said.append((("live", "url"), "the live rollup starts its own two anvils: drop live.url"))
    return said


class L1Node:
    """The L1 anvil of one run: ``start`` it, ``stop`` it on every way out. Not a server of the
    nemesis's: the scenario's faults act on the L2 node only (a sequencer outage is the L2 paused)."""

    def __init__(self, spec: RollupSpec, run_dir: Path, start_timeout_s: float) -> None:
        self.spec = spec
        self.run_dir = run_dir
        self.start_timeout_s = start_timeout_s
        self.server: ManagedServer | None = None

    def argv(self, binary: str, port: int) -> list[str]:
        return [binary, "--host", "127.0.0.1", "--port", str(port), "--accounts", "1",
                "--block-time", f"{self.spec.l1.slot / 1e9:g}", "--gas-limit", str(self.spec.l1.gas_limit),
                "--base-fee", str(self.spec.l1.initial_base_fee), "--no-request-size-limit"]

    def start(self, binary: str) -> dict[str, Any]:
        port = free_port()
        self.server = ManagedServer(L1_NAME, self.argv(binary, port), port, self.run_dir / "servers",
                                    self.start_timeout_s, cpus=None)
        self.server.start()
        return {"name": L1_NAME, "pid": self.server.pid, "url": self.url}

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.port}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()


@dataclass
class _Batch:
    t_opened: int
    blocks: list[int] = field(default_factory=list)  # L2 block numbers
    data: bytearray = field(default_factory=bytearray)  # the blocks' transactions, uncompressed
    messages: int = 0
    t_closed: int = -1
    full: bool = False
    compressed: bytes = b""
    tx_hash: str = ""
    l1_block: int = -1
    gas: int = 0
    cost_wei: int = 0


@dataclass
class L1Head:
    """An L1 block as its head came: ``t`` its arrival on the run's clock (ns)."""

    number: int
    t: int
    gas_used: int
    base_fee: int
    txs: list[str]


class LiveBatcher:
    """msgstorm's batcher: L2 blocks in (``add``), L1 transactions out, the L1's heads read."""

    def __init__(self, spec: RollupSpec, now: Any) -> None:
        self.spec = spec
        self._now = now
        self.l1_rpc: JsonRpc | None = None
        self.l2_rpc: JsonRpc | None = None
        self.poster = ""
        self.first_l1 = 0  # the L1 head at the run's start: slot 0
        self.incoming: asyncio.Queue[tuple[int, int, int]] = asyncio.Queue()  # (L2 number, t, our messages)
        # The same with the block's transactions' inputs, read: a read the paused L2 holds up
        # holds up the blocks behind it, not the batch closing by its delay.
        self.fetched: asyncio.Queue[tuple[int, int, int, bytes]] = asyncio.Queue()
        self._reading: tuple[int, int, int] | None = None  # the block whose inputs are being read
        batcher = spec.batcher
        self.rule = BatchRule(batcher.max_delay, batcher.max_size, batcher.compression_ratio)
        self.unbatched: list[tuple[int, bytes]] = []  # (L2 number, inputs) of the blocks in no closed batch
        self.posted: list[_Batch] = []
        self.l1_blocks: dict[int, L1Head] = {}
        self.block_of_batch: dict[int, int] = {}  # L2 block number -> index in posted
        self.errors: list[str] = []

    async def connect(self, l1_url: str, l2_rpc: JsonRpc) -> None:
        self.l1_rpc = JsonRpc(l1_url, 2)
        self.l2_rpc = l2_rpc
        self.poster = (await self.l1_rpc.call("eth_accounts"))[0]
        self.first_l1 = int(await self.l1_rpc.call("eth_blockNumber"), 16)

    def add(self, number: int, t: int, messages: int) -> None:
        """An L2 block the heads' reader has read (called in block order)."""
        self.incoming.put_nowait((number, t, messages))

    async def run(self) -> None:
        """Batch the L2 blocks as they come, post each batch, read the L1's heads; until cancelled."""
        assert self.l1_rpc is not None
        loop = asyncio.get_running_loop()
        heads, reads = loop.create_task(self._watch_l1()), loop.create_task(self._fetch())
        try:
            while True:
                await self._step()
                await asyncio.sleep(_POLL_S)
        finally:
            heads.cancel()
            reads.cancel()
            await asyncio.gather(heads, reads, return_exceptions=True)

    async def _inputs(self, number: int) -> bytes:
        """L2 block ``number``'s transactions' inputs, one after another."""
        assert self.l2_rpc is not None
        block = await self.l2_rpc.call("eth_getBlockByNumber", hex(number), True)
        return b"".join(bytes.fromhex(str(tx.get("input", "0x"))[2:]) for tx in block["transactions"])

    async def _fetch(self) -> None:
        """Each L2 block's inputs, in block order, as they come."""
        while True:
            self._reading = await self.incoming.get()
            number, t, messages = self._reading
            raw = await self._inputs(number)
            self._reading = None
            self.fetched.put_nowait((number, t, messages, raw))

    async def _step(self) -> None:
        while not self.fetched.empty():
            await self._take(*self.fetched.get_nowait())
        await self._post(self.rule.due(self._now()))
        await self._receipts()

    async def _take(self, number: int, t: int, messages: int, raw: bytes) -> None:
        """An L2 block into the open batch, by the batcher's rule."""
        self.unbatched.append((number, raw))
        await self._post(self.rule.add(t, len(raw), messages))

    async def _post(self, closed: list[Closed]) -> None:
        """Each closed batch, its blocks the oldest unbatched ones, one L1 transaction."""
        assert self.l1_rpc is not None
        for batch in closed:
            blocks, self.unbatched = self.unbatched[:batch.blocks], self.unbatched[batch.blocks:]
            data = bytearray().join(raw for _, raw in blocks)
            posted = _Batch(batch.t_opened, [number for number, _ in blocks], data, batch.messages,
                            batch.t_closed, batch.full)
            posted.compressed = zlib.compress(bytes(posted.data))
            index = len(self.posted)
            self.posted.append(posted)
            for number in posted.blocks:
                self.block_of_batch[number] = index
            try:
                posted.tx_hash = await self.l1_rpc.call("eth_sendTransaction", {
                    "from": self.poster, "to": BATCH_INBOX, "data": "0x" + posted.compressed.hex()})
            except Exception as error:  # noqa: BLE001 - the batch stays unposted; its messages have no t_safe
                self.errors.append(f"batch {index}: {type(error).__name__}: {error}")

    async def _receipts(self) -> None:
        assert self.l1_rpc is not None
        waiting = [b for b in self.posted if b.tx_hash and b.l1_block < 0]
        if not waiting:
            return
        found = await self.l1_rpc.calls("eth_getTransactionReceipt", [[b.tx_hash] for b in waiting])
        for batch, receipt in zip(waiting, found, strict=True):
            if receipt is not None and receipt.get("blockNumber") is not None:
                batch.l1_block = int(receipt["blockNumber"], 16)
                batch.gas = int(receipt["gasUsed"], 16)
                batch.cost_wei = batch.gas * int(receipt["effectiveGasPrice"], 16)

    async def _watch_l1(self) -> None:
        assert self.l1_rpc is not None
        ws = "ws" + self.l1_rpc.url[4:]
        async for head in self.l1_rpc.new_heads(ws):
            t = self._now()
            number = int(head["number"], 16)
            self.l1_blocks[number] = L1Head(number, t, int(head["gasUsed"], 16),
                                              int(head.get("baseFeePerGas", "0x0"), 16), [])

    async def flush(self, wait_s: float) -> None:
        """The run's end: the L2 blocks read so far batched, the open batch posted, and up to
        ``wait_s`` for every batch's L1 block (and its head) to come."""
        left = [self._reading] if self._reading is not None else []  # the blocks not read yet
        self._reading = None
        while not self.incoming.empty():
            left.append(self.incoming.get_nowait())
        for number, t, messages in left:
            self.fetched.put_nowait((number, t, messages, await self._inputs(number)))
        await self._step()
        await self._post(self.rule.close(self._now()))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        watching = loop.create_task(self._watch_l1())
        try:
            while loop.time() < deadline:
                await self._receipts()
                landed = [b.l1_block for b in self.posted if b.tx_hash]
                if all(n >= 0 and n in self.l1_blocks for n in landed):
                    return
                await asyncio.sleep(_POLL_S)
        finally:
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)

    async def close(self) -> None:
        if self.l1_rpc is not None:
            await self.l1_rpc.close()

    # --- the history --------------------------------------------------------------------------

    def _times(self, l1_block: int) -> tuple[int, int, int] | None:
        """(slot, t_safe, t_final) of an L1 block, None while its head was not read."""
        head = self.l1_blocks.get(l1_block)
        if head is None:
            return None
        slot = l1_block - self.first_l1
        l1 = self.spec.l1
        return slot, head.t, head.t + final_slot_time(slot, l1.slots_per_epoch, l1.finality_epochs, l1.slot) - slot * l1.slot

    def write(self, writer: HistoryWriter, included: dict[int, tuple[int, int, int]]) -> None:
        """The ``commits``, ``batches`` and ``l1_blocks`` tables; ``included``: msg_id ->
        (t_committed, L2 block, seq_no)."""
        landed: list[tuple[int, _Batch, tuple[int, int, int]]] = []
        batch_ids: dict[int, int] = {}  # index in posted -> batch number in the history (landed ones)
        for index, batch in enumerate(self.posted):
            times = self._times(batch.l1_block) if batch.l1_block >= 0 else None
            if times is not None:
                batch_ids[index] = len(landed)
                landed.append((index, batch, times))
        rows: list[tuple[int, int, int]] = []  # (msg_id, t_soft, batch) of messages whose batch landed
        for m, (t, block, _) in sorted(included.items()):
            posted = self.block_of_batch.get(block)
            if posted is not None and posted in batch_ids:
                rows.append((m, t, batch_ids[posted]))
        if rows:
            batch_of = [b for _, _, b in rows]
            writer.append("commits", {"msg_id": [m for m, _, _ in rows], "t_soft": [t for _, t, _ in rows],
                                      "t_safe": [landed[b][2][1] for b in batch_of],
                                      "t_final": [landed[b][2][2] for b in batch_of], "batch": batch_of})
        if landed:
            writer.append("batches", {
                "batch": list(range(len(landed))), "t_opened": [b.t_opened for _, b, _ in landed],
                "t_closed": [b.t_closed for _, b, _ in landed], "slot": [t[0] for _, _, t in landed],
                "t_safe": [t[1] for _, _, t in landed], "t_final": [t[2] for _, _, t in landed],
                "l2_blocks": [len(b.blocks) for _, b, _ in landed], "messages": [b.messages for _, b, _ in landed],
                "bytes": [len(b.data) for _, b, _ in landed], "compressed_bytes": [len(b.compressed) for _, b, _ in landed],
                "full": [b.full for _, b, _ in landed], "gas": [b.gas for _, b, _ in landed],
                "blobs": [0] * len(landed), "blob_gas": [0] * len(landed),
                "cost_wei": [float(b.cost_wei) for _, b, _ in landed]})
        blocks = sorted(n for n in self.l1_blocks if n > self.first_l1)
        if blocks:
            held: dict[int, int] = {}
            for _, batch, _ in landed:
                held[batch.l1_block] = held.get(batch.l1_block, 0) + 1
            writer.append("l1_blocks", {
                "slot": [n - self.first_l1 for n in blocks], "t": [self.l1_blocks[n].t for n in blocks],
                "gas_used": [self.l1_blocks[n].gas_used for n in blocks],
                "base_fee": [self.l1_blocks[n].base_fee for n in blocks], "blobs": [0] * len(blocks),
                "excess_blob_gas": [0] * len(blocks), "blob_base_fee": [0] * len(blocks),
                "batches": [held.get(n, 0) for n in blocks]})
