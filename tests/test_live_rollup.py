"""The live rollup (``live/chain/rollup.py``) against two real anvils msgstorm starts: every
committed message in a batch that holds it, its safe time its batch's L1 block's arrival, final
two epochs later by Gasper's rule; a paused L2 (the sequencer's outage) soft-confirms nothing
while the L1 goes on."""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import zlib
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.dataset as ds
import pytest
from conftest import require_anvil

from msgstorm.history.reader import History
from msgstorm.history.writer import HistoryWriter
from msgstorm.live.chain.anvil import AnvilNode
from msgstorm.live.chain.calldata import HEADER
from msgstorm.live.chain.rollup import BATCH_INBOX, L1Head, LiveBatcher
from msgstorm.scenario import Scenario, parse_scenario
from msgstorm.scenario.errors import ScenarioError
from msgstorm.scenario.rollup import RollupSpec

SLOT_NS = 1_000_000_000
SLOTS_PER_EPOCH = 2
MAX_DELAY_NS = 2_000_000_000
SCENARIO = """
target = "anvil"
[run]
name = "live-rollup-test"
seed = 5
duration = "{duration}"
drain = "3s"
[sequencer]
policy = "fifo"
[rollup]
preset = "arbitrum-one"
block_time = "200ms"
batcher = {{ max_delay = "2s", max_size = 100000, data = "calldata" }}
l1 = {{ slot = "1s", slots_per_epoch = 2 }}
[live]
start_timeout = "60s"
[[agents]]
name = "traders"
arrival = {{ process = "poisson", rate = "15/s" }}
size = {{ dist = "uniform", low = "60B", high = "300B" }}
"""


def _scenario(duration: str = "6s", *overrides: str) -> Scenario:
    return parse_scenario(SCENARIO.format(duration=duration), source="live-rollup.toml", overrides=overrides)


def _rows(run_dir: Path, table: str) -> list[dict[str, Any]]:
    return ds.dataset(run_dir / "history" / table).to_table().to_pylist()


def _final_by_hand(slot: int, t_safe: int) -> int:
    """Gasper with every validator voting: a block of epoch e is final at the end of epoch e + 2;
    slot 0 is the L1 head when the run started, so slot k's block is k slots after it."""
    epoch = slot // SLOTS_PER_EPOCH
    return t_safe + (epoch + 3) * SLOTS_PER_EPOCH * SLOT_NS - slot * SLOT_NS


# --- without a node ---------------------------------------------------------------------------


def test_a_rollup_runs_on_anvil_and_what_it_cannot_do_live_is_named_by_field() -> None:
    scenario = _scenario()
    assert scenario.rollup is not None and scenario.blocks.interval == 200_000_000
    assert AnvilNode.problems(scenario) == []
    with pytest.raises(ScenarioError, match=r"rollup\.batcher\.data: the live batcher posts calldata"):
        _scenario("6s", 'rollup.batcher.data="blobs"')
    with pytest.raises(ScenarioError, match=r"rollup\.l1\.slot: anvil's block time is in whole milliseconds"):
        _scenario("6s", 'rollup.l1.slot="1500us"')
    with pytest.raises(ScenarioError, match=r"\[rollup\] runs on target 'anvil' or 'sim' only: target 'redis' cannot run it"):
        parse_scenario(SCENARIO.format(duration="6s").replace('"anvil"', '"redis"'), source="r.toml")


class _FakeL2:
    """An L2's ``eth_getBlockByNumber``: block number -> its transactions' inputs."""

    def __init__(self, inputs: dict[int, list[bytes]]) -> None:
        self.inputs = inputs

    async def call(self, method: str, *params: Any) -> Any:
        assert method == "eth_getBlockByNumber" and params[1] is True
        return {"transactions": [{"input": "0x" + data.hex()} for data in self.inputs[int(params[0], 16)]]}


class _FakeL1:
    """An L1 that takes batch transactions and lands the k-th in block ``lands[k]``."""

    url = "http://127.0.0.1:1"

    def __init__(self, lands: list[int]) -> None:
        self.lands = lands
        self.sent: list[dict[str, str]] = []

    async def call(self, method: str, *params: Any) -> Any:
        assert method == "eth_sendTransaction"
        self.sent.append(params[0])
        return f"0x{len(self.sent) - 1:x}"

    async def calls(self, method: str, params: list[list[Any]]) -> list[Any]:
        assert method == "eth_getTransactionReceipt"
        return [{"blockNumber": hex(self.lands[int(p[0], 16)]), "gasUsed": hex(50_000),
                 "effectiveGasPrice": hex(2_000_000_000)} for p in params]


def test_the_batcher_closes_by_size_and_by_delay_and_times_each_level_by_hand(tmp_path: Path) -> None:
    """Blocks 1 and 2 of 600 random bytes each, block 3 of 100 zero bytes; compression ratio
    1 (zlib cannot shrink random bytes: the posted batches are 611 and 644 bytes), max_size
    1,000 (blocks 1 and 2 together 1,200), max_delay 2 s, 1 s slots,
    epochs of 2, the L1 head at the start number 10. Batch 0 = block 1, closed full at block
    2's time; batch 1 = blocks 2 and 3, closed by its delay at 0.5 + 2 = 2.5 s. They land in L1
    blocks 12 and 14 (slots 2 and 4, heads at 2 and 4 s): final at the end of epoch 1 + 2 and
    2 + 2, i.e. 2 + (4 x 2 - 2) = 8 s and 4 + (5 x 2 - 4) = 10 s."""
    rng = random.Random(3)
    a, b = bytes(rng.getrandbits(8) for _ in range(600)), bytes(rng.getrandbits(8) for _ in range(600))
    assert [len(zlib.compress(a)), len(zlib.compress(b + bytes(100)))] == [611, 644]
    spec = RollupSpec.model_validate({"batcher": {"max_delay": "2s", "max_size": 1000, "compression_ratio": 1},
                                      "l1": {"slot": "1s", "slots_per_epoch": 2}})
    clock = [0]
    batcher = LiveBatcher(spec, lambda: clock[0])
    l1 = _FakeL1([12, 14])
    batcher.l1_rpc, batcher.l2_rpc = l1, _FakeL2({1: [a], 2: [b], 3: [bytes(100)]})  # type: ignore[assignment]
    batcher.first_l1 = 10

    async def drive() -> None:
        reads = asyncio.get_running_loop().create_task(batcher._fetch())  # as run() reads them
        for number, t in ((1, 100_000_000), (2, 500_000_000), (3, 1_000_000_000)):
            clock[0] = t
            batcher.add(number, t, 1)
            while batcher.fetched.empty():
                await asyncio.sleep(0)
            await batcher._step()
        assert len(l1.sent) == 1  # batch 0, closed full by block 2
        clock[0] = 2_499_000_000
        await batcher._step()
        assert len(l1.sent) == 1  # not yet 2 s after batch 1 opened
        clock[0] = 2_600_000_000
        await batcher._step()
        reads.cancel()

    asyncio.run(drive())
    assert [zlib.decompress(bytes.fromhex(tx["data"][2:])) for tx in l1.sent] == [a, b + bytes(100)]
    assert all(tx["to"] == BATCH_INBOX for tx in l1.sent)
    batcher.l1_blocks = {n: L1Head(n, (n - 10) * SLOT_NS, 50_000 if n in (12, 14) else 0, 7, [])
                         for n in range(11, 15)}
    writer = HistoryWriter(tmp_path / "history")
    batcher.write(writer, {1: (100_000_000, 1, 0), 2: (500_000_000, 2, 1), 3: (1_000_000_000, 3, 2),
                           4: (1_200_000_000, 9, 3)})  # block 9 in no batch: no row
    writer.close()
    history = History(directory=tmp_path / "history")
    commits = history.table("commits").to_pylist()
    assert commits == [
        {"msg_id": 1, "t_soft": 100_000_000, "t_safe": 2 * SLOT_NS, "t_final": 8 * SLOT_NS, "batch": 0},
        {"msg_id": 2, "t_soft": 500_000_000, "t_safe": 4 * SLOT_NS, "t_final": 10 * SLOT_NS, "batch": 1},
        {"msg_id": 3, "t_soft": 1_000_000_000, "t_safe": 4 * SLOT_NS, "t_final": 10 * SLOT_NS, "batch": 1}]
    batches = history.table("batches").to_pylist()
    assert [(x["t_opened"], x["t_closed"], x["full"], x["slot"], x["l2_blocks"], x["bytes"]) for x in batches] == [
        (100_000_000, 500_000_000, True, 2, 1, 600), (500_000_000, 2_500_000_000, False, 4, 2, 700)]
    assert [x["cost_wei"] for x in batches] == [50_000 * 2_000_000_000] * 2
    assert [x["compressed_bytes"] for x in batches] == [len(zlib.compress(a)), len(zlib.compress(b + bytes(100)))]
    l1_rows = history.table("l1_blocks").to_pylist()
    assert [(x["slot"], x["t"], x["batches"]) for x in l1_rows] == [
        (1, SLOT_NS, 0), (2, 2 * SLOT_NS, 1), (3, 3 * SLOT_NS, 0), (4, 4 * SLOT_NS, 1)]


def test_the_live_batcher_closes_the_batches_the_simulators_batcher_closes_for_the_same_blocks() -> None:
    """One rule (``rules/batcher.py``) in both wings: 300 L2 blocks of drawn sizes and gaps,
    some over ``max_size`` alone, batched by the simulator's ``make_batches`` and by the live
    batcher fed the same blocks as the heads' reader feeds it: the same batches, the same
    blocks in each, closed at the same times, full or not alike."""
    from msgstorm.sim.rollup.batcher import make_batches

    rng = random.Random(11)
    spec = RollupSpec.model_validate({"batcher": {"max_delay": "2s", "max_size": 3000, "compression_ratio": 0.7},
                                      "l1": {"slot": "1s", "slots_per_epoch": 2}})
    times = list(itertools.accumulate(rng.choice((50_000_000, 250_000_000, 900_000_000)) for _ in range(300)))
    sizes = [rng.choice((0, 100, 800, 2500, 5000)) for _ in times]
    counts = [rng.randint(0, 5) for _ in times]
    simulated = make_batches(np.array(times), np.array(sizes), np.array(counts), spec.batcher)
    clock = [0]
    batcher = LiveBatcher(spec, lambda: clock[0])
    l1 = _FakeL1(list(range(1, 400)))
    batcher.l1_rpc = l1  # type: ignore[assignment]

    async def drive() -> None:
        for number, (t, size, count) in enumerate(zip(times, sizes, counts, strict=True), start=1):
            clock[0] = t
            await batcher._step()  # its clock's turn before the block came: a batch closed by its delay
            await batcher._take(number, t, count, bytes(size))
        clock[0] = times[-1] + spec.batcher.max_delay
        await batcher._step()

    asyncio.run(drive())
    posted = batcher.posted
    assert len(simulated.t_opened) > 50 and any(simulated.full) and not all(simulated.full)
    assert [(b.t_opened, b.t_closed, len(b.blocks), b.messages, len(b.data), b.full) for b in posted] == list(zip(
        simulated.t_opened, simulated.t_closed, simulated.blocks, simulated.messages, simulated.raw_bytes,
        simulated.full, strict=True))
    assert [batcher.block_of_batch[n] for n in range(1, 301)] == simulated.of_block.tolist()


# --- against two anvils -----------------------------------------------------------------------


@pytest.mark.slow
def test_every_committed_message_is_in_a_batch_safe_at_its_l1_block_and_final_two_epochs_later(
        tmp_path: Path) -> None:
    from msgstorm.runner import run

    require_anvil()
    result = run(_scenario(), tmp_path / "run")
    events = _rows(result.run_dir, "events")
    started = [json.loads(e["detail"])["name"] for e in events if e["kind"] == "server_start"]
    assert started == ["anvil", "anvil-l1"]
    cleanup = next(json.loads(e["detail"]) for e in events if e["kind"] == "cleanup")
    assert cleanup["left"] == []

    messages = {m["msg_id"]: m for m in _rows(result.run_dir, "messages")}
    committed = {m for m, row in messages.items() if row["status"] == "committed"}
    assert len(committed) > 40  # 15/s for 6 s
    commits = _rows(result.run_dir, "commits")
    batches = {b["batch"]: b for b in _rows(result.run_dir, "batches")}
    l1 = {b["slot"]: b for b in _rows(result.run_dir, "l1_blocks")}
    # Every committed message once, each in a batch that landed (the run waits for the last).
    assert sorted(c["msg_id"] for c in commits) == sorted(committed)
    assert len(batches) >= 3  # 6 s of blocks, a batch at most 2 s after its first
    for c in commits:
        m, batch = messages[c["msg_id"]], batches[c["batch"]]
        assert c["t_soft"] == m["t_committed"]  # its L2 block's arrival
        assert batch["t_opened"] <= c["t_soft"] <= batch["t_closed"]  # its L2 block is one of the batch's
        assert c["t_safe"] == batch["t_safe"] == l1[batch["slot"]]["t"]
        assert c["t_final"] == batch["t_final"] == _final_by_hand(batch["slot"], c["t_safe"])
    by_batch = Counter(c["batch"] for c in commits)
    for number, batch in batches.items():
        ours = [messages[c["msg_id"]] for c in commits if c["batch"] == number]
        assert batch["messages"] == by_batch[number] == len(ours)
        # The calldata's uncompressed bytes are the batch's transactions' inputs: each message's
        # input is its size (at least the header's).
        assert batch["bytes"] == sum(max(m["size"], HEADER.size) for m in ours)
        assert 0 < batch["compressed_bytes"] < batch["bytes"]  # zlib on mostly zero padding
        # One L1 transaction: 21,000 gas, 4 to 16 a calldata byte (at most the EIP-7623 floor above).
        assert 21_000 + 4 * batch["compressed_bytes"] <= batch["gas"] <= 21_000 + 40 * batch["compressed_bytes"]
        # Paid at least the L1 block's base fee for every gas (effectiveGasPrice adds the tip).
        assert batch["cost_wei"] >= batch["gas"] * l1[batch["slot"]]["base_fee"]
        assert batch["t_closed"] - batch["t_opened"] <= MAX_DELAY_NS
        assert batch["t_safe"] >= batch["t_closed"]  # posted when it closed, in a later block
        assert l1[batch["slot"]]["batches"] >= 1
    # The L1 makes a block every slot: its heads a slot apart on average, each in order and
    # less than two apart. (A head's arrival is stamped when this process reads it: on a loaded
    # machine one came 390 ms late and the next 130 ms early, gaps of 1.39 s and 0.87 s.)
    slots = sorted(l1)
    assert slots == list(range(1, slots[-1] + 1))
    gaps = [l1[k + 1]["t"] - l1[k]["t"] for k in slots[:-1]]
    assert all(0 < gap < 2 * SLOT_NS for gap in gaps), gaps
    assert 0.7 * SLOT_NS < sum(gaps) / len(gaps) < 1.3 * SLOT_NS, gaps
    assert sum(b["batches"] for b in l1.values()) == len(batches)
    # The summary's rollup section reads them as a sim run's.
    rollup = json.loads((result.run_dir / "summary.json").read_text())["rollup"]
    assert rollup["messages"] == len(commits) and rollup["batches"]["count"] == len(batches)
    assert rollup["batches"]["data"] == "calldata" and rollup["l1"]["blocks"] == len(l1)


@pytest.mark.slow
def test_a_paused_l2_soft_confirms_nothing_while_the_l1_goes_on(tmp_path: Path) -> None:
    from msgstorm.runner import run

    require_anvil()
    scenario = _scenario("8s", 'faults=[{kind="pause", at="2s", duration="3s", node="anvil"}]')
    result = run(scenario, tmp_path / "run")
    events = _rows(result.run_dir, "events")
    start, end = (next(e["t"] for e in events if e["kind"] == kind and e["node"] == "anvil")
                  for kind in ("fault_start", "fault_end"))
    # Each edge at its time or after (a loaded machine's stall of the run's loop sends a signal
    # late, and the window's length moves by as much).
    assert start >= 2_000_000_000 and end >= 5_000_000_000
    commits = _rows(result.run_dir, "commits")
    # The sequencer is down: no message is soft-confirmed between the pause and the resume.
    assert not [c for c in commits if start + 50_000_000 < c["t_soft"] < end], "soft during the outage"
    assert [c for c in commits if c["t_soft"] < start] and [c for c in commits if c["t_soft"] >= end]
    # Sent during the outage, soft-confirmed after it (the pool kept them).
    messages = {m["msg_id"]: m for m in _rows(result.run_dir, "messages")}
    during = [c for c in commits if start + 100_000_000 <= messages[c["msg_id"]]["t_sent"] < end - 100_000_000]
    assert during and all(c["t_soft"] >= end for c in during)
    # The L1 went on: its blocks every slot through the outage, and the batch open when the
    # L2 stopped was posted by its delay and landed during it.
    l1_times = [b["t"] for b in _rows(result.run_dir, "l1_blocks")]
    assert len([t for t in l1_times if start < t < end]) >= 2
    batches = _rows(result.run_dir, "batches")
    assert [b for b in batches if start < b["t_safe"] < end]
