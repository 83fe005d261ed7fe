"""The rollup behind the L2 (sim/rollup/): commit times, batches, L1 fees, and its scenario table."""

from __future__ import annotations

from collections.abc import Callable
from math import ceil, exp

import pyarrow as pa
import pytest

from msgstorm.history.reader import History, read_history
from msgstorm.history.schema import DELIVERIES, EVENTS, MESSAGES, RUN
from msgstorm.rules.base_fee import next_base_fee_wei
from msgstorm.rules.blob_fee import (
    BLOB_BASE_FEE_UPDATE_FRACTION_PRAGUE,
    GAS_PER_BLOB,
    blob_base_fee,
    fake_exponential,
    next_excess_blob_gas,
)
from msgstorm.scenario.errors import ScenarioError
from msgstorm.scenario.rollup import RollupSpec
from msgstorm.scenario.schema import Scenario
from msgstorm.sim.rollup.stage import commit_rows, run_rollup

MS = 1_000_000
S = 1_000_000_000


def _history(t_intended: list[int], delay_ns: int, block_ns: int, size: int) -> History:
    """Committed messages sequenced ``delay_ns`` after they were meant to go, each in the L2
    block that closes at the next multiple of ``block_ns`` (its height: that time / block_ns)."""
    n = len(t_intended)
    t_sequenced = [t + delay_ns for t in t_intended]
    t_committed = [ceil(t / block_ns) * block_ns for t in t_sequenced]
    messages = pa.table({
        "msg_id": list(range(n)), "kind": ["order"] * n, "agent": ["a"] * n, "node": ["n"] * n, "key": [0] * n,
        "size": [size] * n, "fee": [1.0] * n, "t_intended": t_intended, "t_sent": t_intended,
        "t_received": t_intended, "t_dequeued": t_intended, "t_sequenced": t_sequenced, "seq_no": list(range(n)),
        "t_committed": t_committed, "block": [t // block_ns for t in t_committed], "status": ["committed"] * n,
    }, schema=MESSAGES)
    return History(messages=messages, deliveries=DELIVERIES.empty_table(), events=EVENTS.empty_table(),
                   run=RUN.empty_table())


def _spec(**batcher: object) -> RollupSpec:
    return RollupSpec.model_validate({
        "block_time": "250ms",
        "batcher": {"max_delay": "5s", "max_size": 1_000_000, "compression_ratio": 0.5, "data": "calldata",
                    **batcher},
        "l1": {"slot": "12s", "slots_per_epoch": 2, "finality_epochs": 2, "background_gas": 0,
               "initial_base_fee": 10_000_000_000},
    })


def test_soft_safe_and_final_times_are_the_hand_computed_ones() -> None:
    # A message every 100 ms, sequenced 10 ms later, in the 250 ms block closing after that:
    # soft at that block (message i at the first multiple of 250 ms after i x 100 + 10 ms).
    # Batches close every 5 s from their first block (0.25 s): at 5.25, 10.25, 15.25 and, the
    # last, 20.25 s; each lands in slot t // 12 s + 1: 1, 1, 2, 2 (12 s and 24 s). Epochs are
    # 2 slots (24 s): slot 1 is in epoch 0, final at (0 + 1 + 2) x 24 = 72 s; slot 2 in epoch 1,
    # final at 96 s.
    history = _history([i * 100 * MS for i in range(160)], 10 * MS, 250 * MS, 1000)
    rollup = run_rollup(history, _spec())
    assert rollup.batches.t_closed == [5250 * MS, 10250 * MS, 15250 * MS, 20250 * MS]
    assert rollup.landed.slot == [1, 1, 2, 2]
    # Batch 0: blocks at 0.25 ... 5.0 s (20), messages 0-49 (message 49 sequenced at 4.91 s);
    # 50,000 bytes, 25,000 compressed, 21,000 + 16 x 25,000 gas.
    assert rollup.batches.blocks[0] == 20
    assert rollup.batches.messages[0] == 50
    assert rollup.batches.compressed_bytes[0] == 25_000
    assert rollup.landed.gas[0] == 421_000
    rows = {}
    for part in commit_rows(history, rollup):
        for i, msg_id in enumerate(part["msg_id"].tolist()):
            rows[msg_id] = (int(part["t_soft"][i]), int(part["t_safe"][i]), int(part["t_final"][i]),
                            int(part["batch"][i]))
    assert len(rows) == 160
    assert rows[0] == (250 * MS, 12 * S, 72 * S, 0)  # sequenced at 10 ms
    assert rows[49] == (5000 * MS, 12 * S, 72 * S, 0)  # sequenced at 4.91 s
    assert rows[50] == (5250 * MS, 12 * S, 72 * S, 1)  # block 5.25 s: the one that found batch 0 due
    assert rows[102] == (10250 * MS, 24 * S, 96 * S, 2)  # sequenced at 10.21 s
    assert rows[159] == (16000 * MS, 24 * S, 96 * S, 3)  # sequenced at 15.91 s


def test_soft_is_the_l2_block_so_op_stack_s_2_s_blocks_show_in_it() -> None:
    # 40 messages 100 ms apart, each sequenced 10 ms after it was meant to go, in 2 s blocks
    # (op-stack's): message i is in the block of 2 s (i < 20) or 4 s, so its soft latency is
    # 2,000 - 100 i ms (i < 20) or 4,000 - 100 i ms: each of 100, 200, ..., 2,000 ms twice;
    # the median (nearest rank 20 of 40) 1,000 ms, not the 10 ms of its sequencing.
    intended = [i * 100 * MS for i in range(40)]
    history = _history(intended, 10 * MS, 2 * S, 100)
    soft = sorted(int(t) - intended[int(m)] for part in commit_rows(history, run_rollup(history, _spec()))
                  for m, t in zip(part["msg_id"], part["t_soft"], strict=True))
    assert soft == sorted(2 * [k * 100 * MS for k in range(1, 21)])
    assert soft[19] == 1000 * MS


def test_a_batch_closes_full_at_the_block_that_would_overflow_it() -> None:
    # 1000-byte messages at 0.5 compression: 500 bytes a block; max_size 2,000: four blocks
    # fit, the fifth (at 1.25 s) closes the batch at once and opens the next.
    history = _history([i * 250 * MS for i in range(12)], 10 * MS, 250 * MS, 1000)
    rollup = run_rollup(history, _spec(max_size=2000))
    assert rollup.batches.t_closed[:2] == [1250 * MS, 2250 * MS]
    assert rollup.batches.full[:2] == [True, True]
    assert rollup.batches.blocks[:2] == [4, 4]


def test_l1_fees_follow_the_fee_rules_block_by_block() -> None:
    # Blob batches pushing L1 over its blob target (every block already holds the target of 6
    # from other rollups): the excess blob gas and the blob fee climb; each block's fees and
    # each batch's cost recomputed from the tables with the rules.
    history = _history([i * 10 * MS for i in range(30_000)], 10 * MS, 250 * MS, 1000)
    spec = RollupSpec.model_validate({
        "batcher": {"max_delay": "12s", "max_size": 3 * GAS_PER_BLOB, "compression_ratio": 1.0, "data": "blobs"},
        "l1": {"background_gas": 16_000_000, "background_blobs": 6},
    })
    rollup = run_rollup(history, spec)
    l1 = rollup.l1
    assert len(l1.slot) > 20
    assert l1.excess_blob_gas[-1] > 0
    assert max(l1.blob_base_fee) > 1  # the rule moved the fee: else the check below proves little
    for k in range(len(l1.slot)):
        assert l1.blob_base_fee[k] == blob_base_fee(l1.excess_blob_gas[k], BLOB_BASE_FEE_UPDATE_FRACTION_PRAGUE)
        if k + 1 < len(l1.slot):
            assert l1.base_fee[k + 1] == next_base_fee_wei(l1.base_fee[k], l1.gas_used[k], 30_000_000)
            assert l1.excess_blob_gas[k + 1] == next_excess_blob_gas(l1.excess_blob_gas[k], l1.blobs[k], 6)
        assert l1.blobs[k] <= 9
    for b, slot in enumerate(rollup.landed.slot):
        k = slot - 1
        assert rollup.landed.cost_wei[b] == (rollup.landed.gas[b] * l1.base_fee[k]
                                             + rollup.landed.blob_gas[b] * l1.blob_base_fee[k])
        assert rollup.landed.blobs[b] == ceil(rollup.batches.compressed_bytes[b] / GAS_PER_BLOB)


def test_fake_exponential_is_e_to_the_ratio() -> None:
    assert blob_base_fee(0, BLOB_BASE_FEE_UPDATE_FRACTION_PRAGUE) == 1
    for numerator in (1, 1_000_000, 5_007_716, 20_000_000):
        value = fake_exponential(10**18, numerator, 5_007_716)
        assert value == pytest.approx(10**18 * exp(numerator / 5_007_716), rel=1e-12)
    # Below target, the excess falls by the shortfall and stops at zero.
    assert next_excess_blob_gas(GAS_PER_BLOB, 5, 6) == 0
    assert next_excess_blob_gas(GAS_PER_BLOB, 9, 6) == 4 * GAS_PER_BLOB


_BASE = """
[run]
name = "r"
duration = "10s"
[[agents]]
name = "t"
role = "trader"
arrival = { process = "constant", rate = "10/s" }
"""


def test_a_preset_fills_what_the_file_leaves_out(scenario_from: Callable[..., Scenario]) -> None:
    scenario = scenario_from(_BASE + '[rollup]\npreset = "op-stack"\nbatcher = { max_delay = "1min" }\n')
    assert scenario.rollup is not None
    assert scenario.rollup.block_time == 2 * S
    assert scenario.blocks.interval == 2 * S  # [blocks] interval taken from the rollup
    assert scenario.rollup.batcher.max_delay == 60 * S  # the file's value wins
    assert scenario.rollup.batcher.data == "blobs"  # the preset's
    assert scenario.rollup.l1.max_blobs == 9
    arbitrum = scenario_from(_BASE + '[rollup]\npreset = "arbitrum-one"\n').rollup
    assert arbitrum is not None and arbitrum.batcher.data == "blobs"
    # Nitro's blob batch: 254 bits of each of 4,096 field elements = 130,048 bytes a blob, times
    # half of Pectra's 9 blobs (585,216), less its 2,000-byte margin.
    assert arbitrum.batcher.max_size == 583_216
    assert arbitrum.batcher.compression_ratio == 0.4 and arbitrum.batcher.max_delay == 3600 * S
    # Its most blobs a batch: ceil(583,216 / 131,072) = 5, room beside the 3 background blobs of 9.
    assert ceil(arbitrum.batcher.max_size / GAS_PER_BLOB) == 5 <= 9 - arbitrum.l1.blobs_in_background


def test_a_block_interval_other_than_the_rollups_is_refused(scenario_from: Callable[..., Scenario]) -> None:
    with pytest.raises(ScenarioError, match="rollup.block_time"):
        scenario_from(_BASE + '[blocks]\ninterval = "1s"\n[rollup]\npreset = "arbitrum-one"\n')


def test_a_blob_batch_bigger_than_a_block_is_refused(scenario_from: Callable[..., Scenario]) -> None:
    with pytest.raises(ScenarioError, match=r"test.toml.*rollup.*max_size") as error:
        scenario_from(_BASE + '[rollup]\nbatcher = { data = "blobs", max_size = 2000000 }\n')
    assert "9 blobs" in str(error.value)


def test_a_sim_run_gives_every_committed_message_its_three_levels(
        scenario_from: Callable[..., Scenario], run_scenario: Callable[..., object], tmp_path: object) -> None:
    scenario = scenario_from(_BASE + '[network]\nnodes_per_region = 1\n[rollup]\npreset = "arbitrum-one"\n'
                             'batcher = { max_delay = "2s" }\nl1 = { slots_per_epoch = 4 }\n')
    result = run_scenario(scenario, "rollup")
    history = read_history(result.run_dir)  # type: ignore[attr-defined]
    messages = history.table("messages")
    commits = history.table("commits")
    committed = [m for m in messages.to_pylist() if m["status"] == "committed"]
    assert commits.num_rows == len(committed) == 100
    in_block = {m["msg_id"]: m["t_committed"] for m in committed}
    sequenced = {m["msg_id"]: m["t_sequenced"] for m in committed}
    batches = history.table("batches").to_pylist()
    for row in commits.to_pylist():
        assert row["t_soft"] == in_block[row["msg_id"]] >= sequenced[row["msg_id"]]  # soft: its L2 block
        batch = batches[row["batch"]]
        assert row["t_safe"] == batch["slot"] * 12 * S > batch["t_closed"] >= row["t_soft"]
        assert row["t_final"] == (batch["slot"] // 4 + 3) * 4 * 12 * S
    summary = result.analysis.summary  # type: ignore[attr-defined]
    assert summary["rollup"]["messages"] == 100
    assert summary["rollup"]["batches"]["count"] == len(batches)


_TIMEBOOST = """
[run]
name = "timeboost"
duration = "4s"
drain = "1s"
[network]
nodes_per_region = 1
processing = "50us"
[sequencer]
service = "1ms"
[rollup]
preset = "arbitrum-one"
timeboost = { round = "1s", delay = "200ms", express = ["searcher", "traders"] }
[[agents]]
name = "searcher"
role = "trader"
arrival = { process = "constant", rate = "10/s" }
[[agents]]
name = "traders"
role = "trader"
arrival = { process = "constant", rate = "7/s" }
"""


def test_the_express_lane_goes_at_once_and_everyone_else_waits_the_delay(
        scenario_from: Callable[..., Scenario], run_scenario: Callable[..., object]) -> None:
    # Rounds of 1 s: the searcher holds the lane in rounds 0 and 2, the traders in 1 and 3. A
    # message of the round's holder is served on arrival (an idle worker, 1 ms a message); any
    # other waits 200 ms first, then at most a message's service (1 ms) behind another.
    result = run_scenario(scenario_from(_TIMEBOOST))
    messages = read_history(result.run_dir).table("messages").to_pylist()  # type: ignore[attr-defined]
    express = ["searcher", "traders"]
    fast = slow = 0
    for m in messages:
        assert m["status"] == "committed"
        wait = m["t_dequeued"] - m["t_received"]
        if m["agent"] == express[(m["t_received"] // S) % 2]:
            assert 0 <= wait <= MS, m
            fast += 1
        else:
            assert 200 * MS <= wait <= 201 * MS, m
            slow += 1
    assert fast > 20 and slow > 20


def test_an_express_lane_for_an_unknown_agent_is_refused(scenario_from: Callable[..., Scenario]) -> None:
    with pytest.raises(ScenarioError, match=r"rollup.timeboost.express: \['whale'\] are not agents"):
        scenario_from(_BASE + '[rollup]\ntimeboost = { express = ["t", "whale"] }\n')


def test_the_report_page_shows_the_rollup_rows_the_terminal_prints(
        scenario_from: Callable[..., Scenario], run_scenario: Callable[..., object]) -> None:
    from msgstorm.analysis.summary_model import Summary
    from msgstorm.report.page import esc
    from msgstorm.report.rollup import rollup_rows

    scenario = scenario_from(_BASE + '[network]\nnodes_per_region = 1\n[rollup]\npreset = "op-stack"\n')
    result = run_scenario(scenario, "page")
    page = (result.run_dir / "report.html").read_text()  # type: ignore[attr-defined]
    rows = rollup_rows(Summary.model_validate(result.analysis.summary).rollup)  # type: ignore[attr-defined, arg-type]
    assert 'id="rollup-table"' in page and len(rows) == 7
    for label, text in rows:
        assert f"<tr><td>{esc(label)}</td><td>{esc(text)}</td></tr>" in page, (label, text)


def _rollup_rows(data: str) -> dict[str, str]:
    from msgstorm.analysis.summary_chain import Rollup
    from msgstorm.report.rollup import rollup_rows

    level = {"p50": 1.0, "p99": 2.0, "max": 3.0}
    rollup = Rollup.model_validate({
        "messages": 10, "latency_ms": dict.fromkeys(("soft", "safe", "final"), level),
        "split_ms": dict.fromkeys(("sequencing", "batch_and_l1", "finality"), level),
        "batches": {"count": 2, "full": 0, "compressed_bytes_mean": 100.0, "interval_s_mean": 60.0, "data": data},
        "l1": {"blocks": 10, "cost_eth": 0.001, "base_fee_gwei": {"first": 10.0, "last": 12.5, "max": 12.5},
               "blob_base_fee_wei": {"first": 1.0, "last": 3.0, "max": 4.0}}})
    return dict(rollup_rows(rollup))


def test_the_rollup_rows_show_the_blob_fee_only_for_a_rollup_that_posts_blobs() -> None:
    """Every batch is an L1 transaction paying gas at the base fee; only blobs pay the blob
    base fee, so a calldata rollup's rows leave it out and a blob rollup's show both."""
    calldata, blobs = _rollup_rows("calldata"), _rollup_rows("blobs")
    cost = "0.0010 ETH over 10 blocks / 10.000 → 12.500 (max 12.500) gwei"
    assert calldata["rollup L1 cost / base fee"] == blobs["rollup L1 cost / base fee"] == cost
    assert "rollup blob base fee" not in calldata
    assert blobs["rollup blob base fee"] == "1.000 → 3.000 (max 4.000) wei"
    assert set(blobs) - set(calldata) == {"rollup blob base fee"} and len(calldata) == 6


def test_a_batch_no_l1_block_has_room_for_is_refused(scenario_from: Callable[..., Scenario]) -> None:
    # 6 blobs of other rollups in a 9-blob block leave 3: a 4-blob batch would wait forever.
    with pytest.raises(ScenarioError, match=r"more than the 3 blobs an L1 block has room for"):
        scenario_from(_BASE + '[rollup]\nbatcher = { data = "blobs", max_size = 524288 }\n'
                      'l1 = { background_blobs = 6 }\n')
    # One L2 block bigger than max_size alone: a batch of its own, too big for any block.
    history = _history([0, 1, 2], 10 * MS, 250 * MS, 400_000)
    with pytest.raises(ValueError, match="fits in no L1 block"):
        run_rollup(history, _spec(max_size=100_000, compression_ratio=1.0, data="blobs"))


def test_a_rollup_on_a_live_target_is_refused(scenario_from: Callable[..., Scenario]) -> None:
    with pytest.raises(ScenarioError, match=r"\[rollup\] runs on target 'anvil' or 'sim' only: target 'nats' cannot run it"):
        scenario_from('target = "nats"\n' + _BASE + '[rollup]\npreset = "op-stack"\n')


def test_the_report_draws_each_batch_and_each_l1_block_as_the_history_holds_them(
        scenario_from: Callable[..., Scenario], run_scenario: Callable[..., object]) -> None:
    """The batches plot: per batch, at its close time, t_safe - t_opened and t_final -
    t_opened in seconds and its compressed bytes; the fees plot: per L1 block, its base fee
    in gwei and its blob base fee in wei (read back from the page)."""
    import json
    import re

    scenario = scenario_from(_BASE + '[network]\nnodes_per_region = 1\n[rollup]\npreset = "arbitrum-one"\n'
                             'batcher = { max_delay = "2s", data = "calldata" }\nl1 = { slots_per_epoch = 4 }\n')
    result = run_scenario(scenario, "plots")
    page = (result.run_dir / "report.html").read_text()  # type: ignore[attr-defined]
    figures = {m.group(1): json.loads(m.group(2)) for m in
               re.finditer(r'<script type="application/json" id="fig-([^"]+)">(.*?)</script>', page, re.S)}
    history = read_history(result.run_dir)  # type: ignore[attr-defined]
    batches = history.table("batches").to_pylist()
    assert len(batches) >= 2
    drawn = {trace["name"]: trace for trace in figures["rollup-batches"]["data"]}
    closed = [b["t_closed"] / S for b in batches]
    assert drawn["first block to safe (s)"]["x"] == closed == drawn["compressed bytes"]["x"]
    assert drawn["first block to safe (s)"]["y"] == pytest.approx([(b["t_safe"] - b["t_opened"]) / S for b in batches])
    assert drawn["first block to final (s)"]["y"] == pytest.approx([(b["t_final"] - b["t_opened"]) / S
                                                                     for b in batches])
    assert drawn["compressed bytes"]["y"] == [b["compressed_bytes"] for b in batches]
    blocks = history.table("l1_blocks").to_pylist()
    fees = {trace["name"]: trace for trace in figures["rollup-fees"]["data"]}
    assert fees["base fee (gwei)"]["x"] == [b["t"] / S for b in blocks]
    assert fees["base fee (gwei)"]["y"] == pytest.approx([b["base_fee"] / 1e9 for b in blocks])
    assert fees["base fee (gwei)"]["customdata"] == [b["batches"] for b in blocks]
    # Batches as calldata: the blob fee they did not pay is not drawn, nor shown in the table.
    assert all(b["blobs"] == 0 for b in batches) and "blob base fee (wei)" not in fees
    assert "rollup L1 cost / base fee" in page and "rollup blob base fee" not in page
    blob_run = run_scenario(scenario_from(_BASE + '[network]\nnodes_per_region = 1\n[rollup]\npreset = "op-stack"\n'),
                            "blobs")
    page = (blob_run.run_dir / "report.html").read_text()  # type: ignore[attr-defined]
    [fees_json] = re.findall(r'<script type="application/json" id="fig-rollup-fees">(.*?)</script>', page, re.S)
    blob_fee = {trace["name"]: trace for trace in json.loads(fees_json)["data"]}["blob base fee (wei)"]
    blocks = read_history(blob_run.run_dir).table("l1_blocks").to_pylist()  # type: ignore[attr-defined]
    assert blob_fee["y"] == [b["blob_base_fee"] for b in blocks]


def test_a_run_without_a_rollup_draws_no_rollup_plot(
        scenario_from: Callable[..., Scenario], run_scenario: Callable[..., object]) -> None:
    result = run_scenario(scenario_from(_BASE + '[network]\nnodes_per_region = 1\n'), "plain")
    page = (result.run_dir / "report.html").read_text()  # type: ignore[attr-defined]
    assert 'id="fig-rollup-batches"' not in page and 'id="fig-rollup-fees"' not in page
