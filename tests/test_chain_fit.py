"""The twin of a chain node: the base-fee rule, the chain's rules fitted from a real anvil's
blocks, and ``calibrate --check`` predicting its knee (or saying why it cannot)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from conftest import require_anvil
from test_analysis_history import MS, event, message, scenario_dict, write_history
from typer.testing import CliRunner

from msgstorm.analysis.calibrate import PREDICTION_TOLERANCE, calibrate
from msgstorm.analysis.capacity import MACHINE_BUSY_SHARE, MACHINE_SATURATED_SHARE, capacity
from msgstorm.analysis.chain_fit import chain_blocks, fit_chain
from msgstorm.analysis.cpu import machine_cpu
from msgstorm.cli import app
from msgstorm.history import read_history
from msgstorm.live.chain.calldata import encode, intrinsic_gas
from msgstorm.rules.base_fee import next_base_fee
from msgstorm.runner import run
from msgstorm.scenario import load_scenario, parse_scenario
from msgstorm.scenario.schema import MESSAGE_KINDS

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "live-anvil.toml"


def test_the_base_fee_rule_by_hand() -> None:
    # A full block of a 50%-target chain: +12.5%; an empty one: -12.5%; at target: unchanged;
    # three quarters full: +6.25%; never under the floor.
    assert next_base_fee(8.0, 100, 100, 0.5, 0.125, 0.01) == 9.0
    assert next_base_fee(8.0, 0, 100, 0.5, 0.125, 0.01) == 7.0
    assert next_base_fee(8.0, 50, 100, 0.5, 0.125, 0.01) == 8.0
    assert next_base_fee(8.0, 75, 100, 0.5, 0.125, 0.01) == 8.5
    assert next_base_fee(0.011, 0, 100, 0.5, 0.125, 0.01) == 0.01
    # A 25% target caps the change at max_change: a full block is three targets over.
    assert next_base_fee(8.0, 100, 100, 0.25, 0.125, 0.01) == 9.0


ORDER_GAS, CANCEL_GAS, GAS_LIMIT = 30_000, 50_000, 1_000_000


def _chain_history(run_dir: Path, max_change: float) -> object:
    """A chain node's run built by hand: 24 blocks 500 ms apart, block k holding k % 7 orders
    (30,000 gas each) and k % 5 cancels (50,000), its base fee (wei, whole, from 1 gwei) by
    EIP-1559 with a half-full target and ``max_change`` a block."""
    messages, events = [], []
    fee_wei, msg_id = 1_000_000_000, 0
    for k in range(24):
        height, t = 100 + k, 250 * MS + k * 500 * MS
        orders, cancels = k % 7, k % 5
        for kind in ["order"] * orders + ["cancel"] * cancels:
            messages.append(message(msg_id, t - 100 * MS, latency_ns=100 * MS, kind=kind, block=height))
            msg_id += 1
        used = ORDER_GAS * orders + CANCEL_GAS * cancels
        events.append(event(t, "block_produced", node="anvil", value=float(orders + cancels), height=height,
                            gas=used, gas_limit=GAS_LIMIT, base_fee_wei=fee_wei, ours=orders + cancels))
        fee_wei = round(next_base_fee(fee_wei, used, GAS_LIMIT, 0.5, max_change, 1))
    return write_history(run_dir, messages, events, scenario=scenario_dict(), t_end=12_500 * MS, target="anvil")


@pytest.mark.parametrize("max_change", [0.125, 0.25])
def test_the_chain_fit_reads_back_the_rules_a_run_was_made_with(tmp_path: Path, max_change: float) -> None:
    history = _chain_history(tmp_path, max_change)
    chain = fit_chain(history, 0, 12_000 * MS)  # type: ignore[arg-type]
    assert chain is not None
    assert chain.gas_limit == GAS_LIMIT
    assert chain.gas_per_kind == {"order": ORDER_GAS, "cancel": CANCEL_GAS}
    assert chain.measured_interval_ns == 500 * MS
    assert chain.initial_base_fee == 1.0  # 1 gwei in the default fee unit
    assert chain.rule.target == pytest.approx(0.5, rel=1e-6)
    assert chain.rule.max_change == pytest.approx(max_change, rel=1e-6)
    assert chain.rule.recomputed_pairs == 23 and chain.rule.recomputed_error < 1e-7  # whole wei of ~1e8
    orders = sum(k % 7 for k in range(24))
    cancels = sum(k % 5 for k in range(24))
    assert chain.mean_gas == pytest.approx((ORDER_GAS * orders + CANCEL_GAS * cancels) / (orders + cancels))
    assert chain.capacity_per_s == pytest.approx(GAS_LIMIT / chain.mean_gas * 2)
    assert chain.fullest_block == max(k % 7 + k % 5 for k in range(24)) == 9


def test_the_chain_fit_reads_only_the_blocks_it_is_given(tmp_path: Path) -> None:
    history = _chain_history(tmp_path, 0.125)
    few = fit_chain(history, 0, 2_000 * MS)  # type: ignore[arg-type]
    assert few is not None and few.blocks == 4
    with pytest.raises(ValueError, match="the chain fit needs at least 4"):
        fit_chain(history, 0, 1_500 * MS)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def anvil_ramp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/live-anvil.toml, shortened: five 3 s steps of 60/s more, up to 300/s, past
    what its blocks hold (3,000,000 gas every 500 ms, about 22,300 gas a transaction:
    about 270/s)."""
    require_anvil()
    scenario = load_scenario(EXAMPLE, overrides=[
        "run.duration=15s", "run.drain=3s", "live.start_timeout=60s",
        'agents.0.arrival={process = "step_ramp", start = "60/s", step = "60/s", every = "3s", steps = 5}'])
    run_dir = tmp_path_factory.mktemp("anvil") / "ramp"
    run(scenario, run_dir, write_report=False)
    return run_dir


@pytest.mark.slow
def test_the_fitted_chain_is_the_nodes_and_recomputes_its_base_fee_block_by_block(anvil_ramp: Path) -> None:
    history = read_history(anvil_ramp)
    calibration = calibrate(history)
    chain = calibration.chain
    assert chain is not None, "an anvil run's twin is its chain"
    assert chain.gas_limit == 3_000_000
    assert chain.policy == "fee_priority"
    assert abs(chain.measured_interval_ns - 500e6) < 0.05 * 500e6
    # The twin's blocks: the node's own pace (its mean head spacing, to the microsecond).
    assert calibration.pace is not None and calibration.pace.configured_interval_ns == 500_000_000
    assert calibration.block_interval_ns == round(calibration.pace.block_interval_ns / 1_000) * 1_000
    # The gas of a transaction, from calldata.py's rule on what each committed message carried.
    messages = history.messages.to_pylist()
    kinds = {kind: MESSAGE_KINDS.index(kind) for kind in MESSAGE_KINDS}
    agents = [agent.name for agent in load_scenario(EXAMPLE).agents]
    intrinsic = [intrinsic_gas(encode(m["msg_id"], kinds[m["kind"]], agents.index(m["agent"]), m["t_intended"],
                                      m["size"])) for m in messages if m["status"] == "committed"]
    assert abs(chain.mean_gas - float(np.mean(intrinsic))) < 0.01 * float(np.mean(intrinsic))
    for gas in chain.gas_per_kind.values():
        assert min(intrinsic) - 50 <= gas <= max(intrinsic) + 50
    # EIP-1559 as anvil runs it: half-full target, 1/8 a block.
    assert abs(chain.rule.target - 0.5) < 0.01
    assert abs(chain.rule.max_change - 0.125) < 0.005
    # Every block's base fee of the run, recomputed from the block before with the twin's
    # rule, is the node's (anvil rounds to whole wei).
    blocks = chain_blocks(history)
    # 18 s at a block every 500 ms: 36 blocks on an idle machine; a loaded one mines some late
    # (27 seen at load 9). Twenty pairs are plenty to check the rule on.
    assert blocks is not None and blocks.count >= 21
    checked = 0
    for n in range(blocks.count - 1):
        if blocks.height[n + 1] != blocks.height[n] + 1:
            continue
        fee = next_base_fee(float(blocks.base_fee_wei[n]), float(blocks.gas_used[n]), float(blocks.gas_limit[n]),
                            chain.rule.target, chain.rule.max_change, 1.0)
        assert math.isclose(fee, float(blocks.base_fee_wei[n + 1]), rel_tol=1e-4, abs_tol=2), n
        checked += 1
    assert checked == chain.rule.recomputed_pairs >= 20
    assert chain.rule.recomputed_error < 1e-4
    # No block held more than the gas limit allows of transactions of the fitted gas.
    assert chain.fullest_block <= chain.txs_per_block + 1


@pytest.mark.slow
def test_check_predicts_the_chains_knee_within_15_percent_or_says_why_not(anvil_ramp: Path, tmp_path: Path) -> None:
    """Within 15% of the node's knee (exit 0), or no prediction, said why (exit 1): the twin's
    knee missed where the machine's cores were busy with other work at the measured limit (as
    the run's own machine samples show, read here apart from ``capacity``), or the fit or the
    ramp doubted it first. A miss with neither is a failure of the twin."""
    history = read_history(anvil_ramp)
    calibration = calibrate(history)
    result = CliRunner().invoke(app, ["calibrate", str(anvil_ramp), "-o", str(tmp_path / "twin.toml"), "--check"])
    said = " ".join(result.output.split())
    assert "base fee, block by block over the ramp's" in said, said
    twin = load_scenario(tmp_path / "twin.toml")
    assert twin.blocks.max_gas == 3_000_000 and twin.backpressure.mode == "eip1559"
    assert twin.sequencer.policy == "fee_priority"
    # The twin's blocks come at the node's pace over the steps the knee credited.
    assert calibration.pace is not None and twin.blocks.interval == calibration.block_interval_ns
    assert abs(calibration.block_interval_ns - calibration.pace.block_interval_ns) <= 1_000
    # Whether the machine was saturated at the measured limit, from its samples.
    knee, steps, _ = capacity(history)
    machine = machine_cpu(history)
    assert knee is not None and steps is not None and machine is not None and machine.cpus
    at = knee["at_limit"]["step"] - 1
    busy = machine.cores(int(steps.column("t_start_ns")[at].as_py()), int(steps.column("t_end_ns")[at].as_py()))
    assert busy is not None and 0.0 <= busy <= machine.cpus + 0.05
    saturated = busy >= MACHINE_SATURATED_SHARE * machine.cpus and knee["limited_by"] != "generator" and sum(
        knee["at_limit"]["cpu_busy"].values()) < MACHINE_BUSY_SHARE * machine.cpus
    assert bool(calibration.machine_limit) == saturated, (busy, knee)
    if calibration.doubts:
        # On a loaded machine the ramp's knee can be msgstorm's own (a generator behind): then
        # the twin's knee is not a prediction, and --check says why.
        assert result.exit_code == 1, said
        assert "is not a prediction of the measured" in said, said
        assert any(doubt.split(":")[0] in said for doubt in calibration.doubts), said
        return
    twin_knee, _, _ = capacity(read_history(tmp_path / "twin"))
    measured = calibration.measured_knee_per_s
    assert twin_knee is not None and measured is not None
    knee_rate = twin_knee["knee_rate_per_s"]
    if result.exit_code == 0:
        assert abs(knee_rate - measured) <= PREDICTION_TOLERANCE * measured
        assert f"predicted knee {knee_rate:,.0f}/s" in said
        return
    # A miss is only ever the machine's, and named so.
    assert result.exit_code == 1 and saturated, said
    assert abs(knee_rate - measured) > PREDICTION_TOLERANCE * measured
    assert "is not a prediction of the measured" in said and "the measured knee is this machine's" in said, said


def test_a_sim_run_with_blocks_has_no_chain_twin(tmp_path: Path) -> None:
    # A simulated chain writes no gas limit per block: its twin stays the one-queue model.
    text = """
[run]
name = "sim-chain"
duration = "12s"
[blocks]
interval = "200ms"
max_gas = 2_000_000
[backpressure]
mode = "eip1559"
[sequencer]
service = { dist = "exponential", mean = "200us" }
[[agents]]
name = "ramp"
arrival = { process = "step_ramp", start = "500/s", step = "500/s", every = "2s", steps = 6 }
"""
    run(parse_scenario(text, source="sim.toml"), tmp_path / "run", write_report=False)
    history = read_history(tmp_path / "run")
    assert chain_blocks(history) is None
