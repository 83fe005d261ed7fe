"""The twin of a validator network (analysis/comet_fit.py, report/twin.py's
``comet_twin_scenario``, ``msgstorm calibrate --check`` on a run with a ``heights`` table):
the fit worked by hand on a written history, the check's verdicts, a sim ground truth whose
costs the fit recovers, and a live run on four CometBFT validators."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import require_cometbft
from test_analysis_history import MS, S, event, message, scenario_dict, write_history
from typer.testing import CliRunner

from msgstorm.analysis.comet_fit import (
    CometFit,
    CometStep,
    check_comet,
    comet_steps,
    comet_timeouts,
    fit_comet,
)
from msgstorm.cli import app
from msgstorm.history import read_history
from msgstorm.report.twin import comet_twin_scenario, comet_twin_toml
from msgstorm.runner import run
from msgstorm.scenario import parse_scenario

RAMP = """
[run]
name = "comet-fit"
seed = 4
duration = "12s"
drain = "0s"
window = "1s"

[network]
regions = ["local"]
nodes_per_region = 4
intra_region_latency = "1ms"

[blocks.producers]
consensus = "tendermint"

[blocks.producers.tendermint]
timeout_commit = "500ms"

[[agents]]
name = "ramp"
arrival = { process = "step_ramp", start = "10/s", step = "10/s", every = "4s", steps = 3 }
"""

# (transactions, round) of heights 2 to 18; height 1 is committed at 100 ms. Each interval is
# 523 ms + 1 ms a transaction, except height 17's round 1, two seconds.
BLOCKS = [(5, 0), (7, 0), (5, 0), (9, 0), (6, 0), (8, 0), (5, 0),  # step 1: commits up to 3,806 ms
          (10, 0), (14, 0), (12, 0), (16, 0), (10, 0), (12, 0), (14, 0),  # step 2: up to 7,555 ms
          (11, 0), (20, 1), (15, 0)]  # step 3


def _heights() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The ``heights`` rows (four validators, the first a millisecond ahead) and the
    ``block_produced`` events of ``BLOCKS``."""
    t, rows, events = 100 * MS, [], []
    for height in range(1, len(BLOCKS) + 2):
        if height > 1:
            txs, round_ = BLOCKS[height - 2]
            t += 2 * S if round_ else (523 + txs) * MS
        else:
            txs, round_ = 3, 0
        events.append(event(t, "block_produced", node="local-0", value=float(txs), height=height))
        for v in range(4):
            rows.append({"node": f"local-{v}", "height": height, "round": round_, "proposer": "local-0",
                         "t_committed": t + v * MS, "interval_ns": None})
    return rows, events


def _messages() -> list[dict[str, Any]]:
    """The ramp's messages, evenly spread, each accepted when due, proposed 400 ms later and
    committed 600 ms after it was due."""
    rows, msg_id = [], 0
    for step, rate in enumerate((10, 20, 30)):
        for k in range(4 * rate):
            rows.append(message(msg_id, step * 4 * S + k * S // rate, stages_ns=(0, 400 * MS, 0, 200 * MS)))
            msg_id += 1
    return rows


def _history(tmp_path: Path) -> Any:
    heights, events = _heights()
    nodes = [{"name": f"local-{v}", "region": "local"} for v in range(4)]
    return write_history(tmp_path, _messages(), events, scenario=scenario_dict(RAMP), t_end=12 * S, nodes=nodes,
                         tables={"heights": heights})


def test_the_fit_reads_the_line_of_the_interval_on_the_blocks_transactions_worked_by_hand(tmp_path: Path) -> None:
    """Steps 1 and 2 (10/s and 20/s, at most 70% of the 30/s the ramp passed at): every
    interval is exactly 523 ms + 1 ms a transaction, so the line is slope 1 ms, intercept
    523 ms; the link is the sim network's 1 ms, so execution = 523 - 500 - 4 x 1 = 19 ms
    (the simulator's four link delays from a proposal to its first commit)."""
    fit = fit_comet(_history(tmp_path), 0.7)
    assert fit.validators == 4
    assert fit.fit_steps == (1, 2)
    assert fit.fit_heights == 14  # heights 2-15 (height 16 commits at 8,089 ms, in step 3)
    assert fit.per_tx_ns == pytest.approx(1 * MS, rel=1e-9)
    assert fit.intercept_ns == pytest.approx(523 * MS, rel=1e-9)
    assert fit.link_latency_ns == 1 * MS and "intra_region_latency" in fit.link_source
    assert fit.execution_ns == 19 * MS
    assert fit.rms_error_ns == pytest.approx(0, abs=1e3)
    assert fit.rounds_above_0 == 1  # height 17
    assert fit.timeouts["timeout_commit"] == 500 * MS and fit.timeouts["timeout_propose"] == 3 * S
    # Per step: the median interval of the heights first committed in it, and the p50 commit latency.
    steps = {s.step: s for s in fit.steps}
    assert steps[1].heights == 7 and steps[1].interval_p50_ns == 529 * MS  # 528,530,528,532,529,531,528
    assert steps[2].interval_p50_ns == 535 * MS  # 533,537,535,539,533,535,537
    assert steps[3].interval_p50_ns == 538 * MS  # 534, 2000 (round 1), 538
    assert [s.commit_p50_ns for s in fit.steps] == [600 * MS] * 3
    assert steps[1].txs_per_block == pytest.approx(45 / 7)
    # Admission: the mean wait from acceptance to proposal (400 ms) less the mean residual
    # interval E[T^2] / (2 E[T]) of the heights of steps 1 and 2 and 3/4 of the 1 ms hop.
    intervals = [523 + txs for txs, _ in BLOCKS[:14]]
    residual = sum(t * t for t in intervals) / (2 * sum(intervals))  # ms
    assert fit.admission_ns == round((400 - residual - 0.75) * MS)
    assert 132 * MS < fit.admission_ns < 134 * MS  # 400 - about 266 - 0.75


def test_the_twin_scenario_is_the_network_with_the_fitted_costs(tmp_path: Path) -> None:
    fit = fit_comet(_history(tmp_path), 0.7)
    table = comet_twin_scenario(fit)
    tendermint = table["blocks"]["producers"]["tendermint"]
    assert tendermint["execution"] == "19ms" and tendermint["execution_per_tx"] == "1ms"
    assert tendermint["timeout_commit"] == "500ms" and tendermint["timeout_propose"] == "3s"
    assert table["network"]["nodes_per_region"] == 4 and table["network"]["intra_region_latency"] == "1ms"
    # The agents send to a node of their own, the admission delay from every validator, and
    # nothing goes back through it.
    assert table["network"]["regions"] == ["local", "entry"] and table["network"]["nodes"] == {"entry": 1}
    assert table["network"]["links"] == [{"between": ["entry", "local"], "latency": f"{fit.admission_ns}ns",
                                          "one_way": True}]
    assert table["network"]["latency"] == {"local/entry": "3600s"}
    assert table["blocks"]["producers"]["nodes"] == ["local-0", "local-1", "local-2", "local-3"]
    assert [agent["region"] for agent in table["agents"]] == ["entry"]
    text = comet_twin_toml(fit, "test", "0")
    twin = parse_scenario(text, source="twin.toml")  # it loads
    assert twin.blocks.producers is not None and twin.blocks.producers.tendermint.execution_per_tx == 1 * MS
    assert "1.0 us" not in text and "interval = 523 ms + 1,000.0 us a transaction" in text


def test_a_validator_network_without_a_ramp_or_low_heights_gives_no_twin_and_says_why(tmp_path: Path) -> None:
    heights, events = _heights()
    no_ramp = RAMP.replace('arrival = { process = "step_ramp", start = "10/s", step = "10/s", every = "4s", steps = 3 }',
                           'arrival = { process = "constant", rate = "10/s" }')
    write_history(tmp_path / "flat", _messages(), events, scenario=scenario_dict(no_ramp), t_end=12 * S,
                  tables={"heights": heights})
    result = CliRunner().invoke(app, ["calibrate", str(tmp_path / "flat")])
    assert result.exit_code == 2, result.output
    assert "the validator network gives no twin: the run has no step ramp" in result.output
    # Heights committed only in step 3: nothing at low load to fit a line on.
    late = [row for row in heights if row["height"] >= 16]
    write_history(tmp_path / "late", _messages(), [e for e in events if e["height"] >= 16],
                  scenario=scenario_dict(RAMP), t_end=12 * S, tables={"heights": late})
    with pytest.raises(ValueError, match=r"only 0 round-0 height\(s\) .* the fit needs 4"):
        fit_comet(read_history(tmp_path / "late"), 0.7)


def test_a_live_runs_timeouts_are_those_its_validators_were_started_with() -> None:
    """blocks.interval is timeout_commit; each *_delta half its timeout (live/chain/cometbft.py)."""
    scenario = {"target": "cometbft", "blocks": {"interval": 400 * MS},
                "live": {"cometbft": {"timeout_propose": 2 * S, "timeout_vote": 600 * MS, "mempool_size": 70}}}
    assert comet_timeouts(scenario) == {
        "timeout_propose": 2 * S, "timeout_propose_delta": 1 * S, "timeout_prevote": 600 * MS,
        "timeout_prevote_delta": 300 * MS, "timeout_precommit": 600 * MS, "timeout_precommit_delta": 300 * MS,
        "timeout_commit": 400 * MS, "mempool_size": 70}


def _step(step: int, interval_ms: float, commit_ms: float, behind: bool = False, heights: int = 10) -> CometStep:
    return CometStep(step=step, offered_per_s=10.0 * step, passed=True, heights=heights, interval_p50_ns=interval_ms * MS,
                     commit_p50_ns=commit_ms * MS, txs_per_block=1.0, generator_behind=behind)


def _fit(steps: list[CometStep], machine_limit: str = "") -> CometFit:
    return CometFit(scenario_name="x", target="cometbft", seed=1, validators=4, timeouts={}, per_tx_ns=0.0,
                    intercept_ns=0.0, execution_ns=0, link_latency_ns=0, link_source="", admission_ns=0, fit_steps=(1,),
                    fit_heights=4, rms_error_ns=0.0, rounds_above_0=0, measured_knee_per_s=None, steps=tuple(steps),
                    scenario={}, machine_limit=machine_limit)


def test_the_check_names_the_steps_off_by_more_than_15_percent_and_skips_a_step_the_generator_was_behind_at() -> None:
    measured = [_step(1, 500, 400), _step(2, 500, 400), _step(3, 500, 400), _step(4, 500, 400, behind=True)]
    # Step 1: +14% / -14%, within; step 2: interval +16%; step 3: commit -16%; step 4 not judged.
    twin = [_step(1, 570, 344), _step(2, 580, 400), _step(3, 500, 336), _step(4, 900, 900)]
    verdict = check_comet(_fit(measured), twin)
    assert verdict.predicted and verdict.off == [2, 3] and not verdict.within_tolerance
    assert verdict.steps[0].interval_error == pytest.approx(0.14) and verdict.steps[0].commit_error == pytest.approx(-0.14)
    assert "generator was behind" in verdict.steps[3].judged
    assert check_comet(_fit(measured[:1]), twin[:1]).within_tolerance
    # A busy machine is the reason when a step misses; every step behind leaves nothing to judge.
    busy = check_comet(_fit(measured, "the machine was busy"), twin)
    assert not busy.predicted and busy.doubts == ("the machine was busy",)
    assert check_comet(_fit(measured[:1], "the machine was busy"), twin[:1]).within_tolerance
    nothing = check_comet(_fit([measured[3]]), [twin[3]])
    assert not nothing.predicted and "generator was behind at step(s) 4" in nothing.doubts[0]


def test_steps_of_few_heights_that_miss_are_not_a_prediction_and_the_check_says_by_how_much() -> None:
    """Step 2 holds 3 heights of 800 ms: where they fall moves its p50 by about 800 / (2 x 3)
    = 133 ms, 17% of its measured 800 ms; a miss there says so rather than count as one."""
    measured = [_step(1, 800, 800), _step(2, 800, 800, heights=3)]
    twin = [_step(1, 800, 800), _step(2, 800, 660)]  # -17.5%
    verdict = check_comet(_fit(measured), twin)
    assert verdict.off == [2] and not verdict.predicted
    assert "step 2: 3" in verdict.doubts[0] and "133 ms, 17% of its measured" in verdict.doubts[0]
    # A step of enough heights that misses is a miss.
    many = check_comet(_fit([measured[0], _step(2, 800, 800, heights=8)]), twin)
    assert many.predicted and many.off == [2]


SIM_GROUND_TRUTH = """
[run]
name = "comet-truth"
seed = 11
duration = "15s"
drain = "2s"
window = "1s"

[network]
regions = ["local"]
nodes_per_region = 4
intra_region_latency = "2ms"
processing = "0ns"
bandwidth = "unlimited"

[gossip]
mode = "flood"
degree = 3
peers = 3

[blocks]
max_messages = 100000

[blocks.producers]
consensus = "tendermint"

[blocks.producers.tendermint]
timeout_commit = "200ms"
execution = "30ms"
execution_per_tx = "500us"

[[agents]]
name = "ramp"
arrival = { process = "step_ramp", start = "50/s", step = "50/s", every = "3s", steps = 5 }
"""


def test_a_sim_tendermint_ramp_calibrates_to_its_own_costs_and_its_twin_repeats_its_steps(tmp_path: Path) -> None:
    """With no processing and constant 2 ms links every round-0 interval is exactly
    200 + 4 x 2 + 30 ms + 0.5 ms a transaction (four link delays from a proposal to its
    first commit), so the line gives 0.5 ms and 238 ms, and execution = 238 - 200 - 8 = 30 ms;
    the twin, that network again, has the same steps."""
    source = tmp_path / "source"
    run(parse_scenario(SIM_GROUND_TRUTH, source="truth.toml"), source)
    fit = fit_comet(read_history(source))
    assert fit.validators == 4 and fit.link_latency_ns == 2 * MS
    assert fit.per_tx_ns == pytest.approx(0.5 * MS, rel=1e-3)
    assert fit.intercept_ns == pytest.approx(238 * MS, rel=1e-4)
    assert abs(fit.execution_ns - 30 * MS) <= 50_000
    twin = tmp_path / "twin.toml"
    result = CliRunner().invoke(app, ["calibrate", str(source), "-o", str(twin), "--check"])
    assert result.exit_code == 0, result.output
    assert "every judged step within 15%" in result.output
    twin_steps, _ = comet_steps(read_history(tmp_path / "twin"))
    for measured, predicted in zip(fit.steps, twin_steps, strict=True):
        assert measured.interval_p50_ns is not None and predicted.interval_p50_ns is not None
        assert predicted.interval_p50_ns == pytest.approx(measured.interval_p50_ns, rel=0.01)
        # Blocks grow with the rate: more transactions a block at each step.
    assert [s.txs_per_block or 0 for s in fit.steps] == sorted(s.txs_per_block or 0 for s in fit.steps)


LIVE = """
target = "cometbft"
[run]
name = "comet-twin-live"
seed = 5
duration = "12s"
drain = "4s"
window = "1s"
[blocks]
interval = "300ms"
[live]
start_timeout = "30s"
[live.cometbft]
validators = 4
[[agents]]
name = "ramp"
arrival = { process = "step_ramp", start = "20/s", step = "20/s", every = "3s", steps = 4 }
size = "60B"
keys = 100
"""


@pytest.mark.slow
@pytest.mark.serial
def test_a_live_validator_network_calibrates_and_its_check_prints_every_step_and_a_verdict(tmp_path: Path) -> None:
    require_cometbft()
    source = tmp_path / "source"
    run(parse_scenario(LIVE, source="live.toml"), source)
    result = CliRunner().invoke(app, ["calibrate", str(source), "-o", str(tmp_path / "twin.toml"), "--check"])
    assert "4 validators, timeout_commit 300 ms" in result.output, result.output
    rows = [line for line in result.output.splitlines() if line[:4].strip().isdigit()]
    assert [int(line.split()[0]) for line in rows] == [1, 2, 3, 4], result.output
    if result.exit_code == 0:
        assert "every judged step within 15%" in result.output
    else:
        assert result.exit_code == 1 and ("off the measured block interval" in result.output
                                          or "not a prediction" in result.output), result.output
