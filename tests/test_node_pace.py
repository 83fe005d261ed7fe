"""The pace a chain node kept (analysis/node_pace.py) and the twin it gives, on a chain run
built by hand whose node made its blocks later than it was started to."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
from test_analysis_history import MS, S, event, message, scenario_dict, write_history

from msgstorm.analysis._common import MessageArrays
from msgstorm.analysis.calibrate import calibrate
from msgstorm.analysis.capacity import capacity
from msgstorm.analysis.chain_fit import chain_blocks
from msgstorm.analysis.node_pace import configured_interval_ns, node_pace
from msgstorm.history.reader import History
from msgstorm.report.twin import twin_toml
from msgstorm.rules.base_fee import next_base_fee

CHAIN = """
target = "anvil"
[run]
name = "slow-node"
duration = "12s"
window = "1s"
[blocks]
interval = "500ms"
max_gas = 3_000_000
[sequencer]
policy = "fee_priority"
[backpressure]
mode = "eip1559"
initial_base_fee = 1.0
[[agents]]
name = "ramp"
arrival = { process = "step_ramp", start = "20/s", step = "20/s", every = "3s", steps = 4, poisson = false }
"""
GAS = 30_000
HEAD_EVERY_MS = 700  # the node's pace: 200 ms later a block than its 500 ms
ANSWER_MS = [3, 4, 8, 20]  # send -> the node's answer, by step
LATE_HEADS = (4, 5)  # these heads were read together: both stamped at the second's arrival


def _slow_node(run_dir: Path) -> History:
    """A ramp of 20, 40, 60 and 80/s for 3 s each; the node's heads every 700 ms from 350 ms
    (heights 1, 2, ...), each holding what was answered before it; step 4's transactions
    committed 5 s late (its p99 over the bar: the knee is step 3's 60/s). Base fees by
    EIP-1559 from 1 gwei, whole wei."""
    heads = [350 * MS + k * HEAD_EVERY_MS * MS for k in range(26)]
    arrival = list(heads)
    arrival[LATE_HEADS[0]] = arrival[LATE_HEADS[1]]
    rows: list[dict[str, Any]] = []
    in_block: dict[int, int] = {}
    for step, rate in enumerate([20, 40, 60, 80]):
        for i in range(3 * rate):
            t = step * 3 * S + i * S // rate
            answered = t + ANSWER_MS[step] * MS
            height = next(k for k, head in enumerate(heads) if head > answered) + 1
            committed = arrival[height - 1] + (5 * S if step == 3 else 0)
            rows.append(message(len(rows), t, kind="order", t_received=answered, t_dequeued=committed,
                                t_sequenced=committed, t_committed=committed, block=height, seq_no=len(rows),
                                status="committed"))
            in_block[height] = in_block.get(height, 0) + 1
    events = []
    fee_wei = 1_000_000_000
    for k in range(len(heads)):
        count = in_block.get(k + 1, 0)
        events.append(event(arrival[k], "block_produced", node="anvil", value=float(count), height=k + 1,
                            gas=GAS * count, gas_limit=3_000_000, base_fee_wei=fee_wei, ours=count))
        fee_wei = round(next_base_fee(fee_wei, GAS * count, 3_000_000, 0.5, 0.125, 1))
    return write_history(run_dir, rows, events, scenario=scenario_dict(CHAIN), t_end=19 * S, target="anvil")


def test_the_nodes_pace_is_its_heads_mean_spacing_and_its_answers_per_step(tmp_path: Path) -> None:
    history = _slow_node(tmp_path)
    blocks = chain_blocks(history)
    messages = MessageArrays.from_history(history)
    _, _, load = capacity(history, messages)
    assert blocks is not None and load is not None
    pace = node_pace(history.scenario, blocks, messages, load, [0, 1, 2])
    assert pace.steps == (1, 2, 3)
    assert pace.configured_interval_ns == 500 * MS == configured_interval_ns(history.scenario)
    # Heads in [0, 9 s): 350 ms + k x 700 ms for k = 0..12. Heads 5 and 6 share an arrival
    # (one gap of 0, the next of 1,400 ms): their sum is still the heights' time.
    assert pace.heads == 13
    assert pace.block_interval_ns == pytest.approx(HEAD_EVERY_MS * MS)
    assert pace.production_delay_ns == pytest.approx(200 * MS)
    assert pace.offered_per_s == (20.0, 40.0, 60.0)
    assert pace.answer_mean_ns == tuple(float(ms * MS) for ms in ANSWER_MS[:3])
    assert pace.answers == 3 * (20 + 40 + 60)
    # One head in the steps: no spacing to read.
    first = dataclasses.replace(blocks, **{name: getattr(blocks, name)[:1] for name in
                                           ("t", "height", "txs", "ours", "gas_used", "gas_limit", "base_fee_wei")})
    with pytest.raises(ValueError, match=r"only 1 head\(s\) arrived during steps 1-3"):
        node_pace(history.scenario, first, messages, load, [0, 1, 2])

def test_the_twins_blocks_come_at_the_nodes_pace_not_the_configured_one(tmp_path: Path) -> None:
    history = _slow_node(tmp_path)
    knee, _, _ = capacity(history)
    assert knee is not None and knee["knee_rate_per_s"] == 60.0
    calibration = calibrate(history)
    assert calibration.chain is not None and calibration.pace is not None
    assert calibration.pace.steps == (1, 2, 3)  # the steps the knee credited, none past it
    assert calibration.block_interval_ns == HEAD_EVERY_MS * MS
    # The twin's chain holds what the node's did a second: 100 transactions a 700 ms block.
    assert calibration.chain.txs_per_block == pytest.approx(100.0)
    text = twin_toml(calibration, "by hand", "test")
    assert 'interval = "700ms"' in text
    assert "a head every 700 ms (13 heads; configured 500 ms, so 200 ms late a block)" in text
    assert "20/s 3 ms, 40/s 4 ms, 60/s 8 ms" in text
