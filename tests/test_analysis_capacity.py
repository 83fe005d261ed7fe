"""The knee of a step ramp: highest step rate before throughput or p99 latency degrades."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_analysis_history import MS, S, message, scenario_dict, write_history

from msgstorm.analysis import STEP_SCHEMA, capacity, find_step_ramp
from msgstorm.analysis.capacity import limit_cause

RAMP = """
[run]
name = "ramp"
duration = "5s"
window = "1s"

[[agents]]
name = "ramp"
arrival = { process = "step_ramp", start = "100/s", step = "100/s", every = "1s", steps = 5, poisson = false }

[analysis]
knee_latency_factor = 3
throughput_fraction = "95%"
"""


def ramp_messages(
    latency_ms_by_step: list[float], dropped_every: dict[int, int] | None = None
) -> list[dict[str, Any]]:
    """Messages of a deterministic 100/s..500/s ramp, step k with the given latency; in steps
    named in ``dropped_every`` every n-th message is dropped instead."""
    rows: list[dict[str, Any]] = []
    for step, latency in enumerate(latency_ms_by_step):
        rate = 100 * (step + 1)
        for i in range(rate):
            msg_id = len(rows)
            t = step * S + i * S // rate
            drop = (
                dropped_every is not None and step in dropped_every and i % dropped_every[step] == 0
            )
            if drop:
                rows.append(message(msg_id, t, status="dropped"))
            else:
                rows.append(message(msg_id, t, latency_ns=int(latency * MS)))
    return rows


def test_knee_is_the_step_before_latency_explodes(tmp_path: Path) -> None:
    history = write_history(
        tmp_path, ramp_messages([1, 1.2, 1.5, 50, 200]), scenario=scenario_dict(RAMP), t_end=6 * S
    )
    knee, steps, _ = capacity(history)
    assert knee is not None and steps is not None
    assert knee["knee_rate_per_s"] == 300.0
    assert "3 x low-load p99 (1.0 ms, least of steps 1, 2, 3)" in knee["method"] and "95%" in knee["method"]
    assert knee["limited_by"] is None and knee["at_limit"] is None  # the simulator: the layer modelled
    assert "first failing step 4" in knee["method"]
    assert steps.schema == STEP_SCHEMA
    assert steps.column("step").to_pylist() == [1, 2, 3, 4, 5]
    assert steps.column("t_start_ns").to_pylist() == [0, S, 2 * S, 3 * S, 4 * S]
    assert steps.column("nominal_rate_per_s").to_pylist() == [100.0, 200.0, 300.0, 400.0, 500.0]
    assert steps.column("offered_per_s").to_pylist() == [100.0, 200.0, 300.0, 400.0, 500.0]
    assert steps.column("p99_ms").to_pylist() == [1.0, 1.2, 1.5, 50.0, 200.0]
    assert steps.column("passed").to_pylist() == [True, True, True, False, False]


def test_knee_is_the_last_step_when_nothing_degrades(tmp_path: Path) -> None:
    history = write_history(
        tmp_path, ramp_messages([1, 1, 1, 1, 1]), scenario=scenario_dict(RAMP), t_end=6 * S
    )
    knee, steps, _ = capacity(history)
    assert knee is not None and steps is not None
    assert knee["knee_rate_per_s"] == 500.0
    assert "every step passed" in knee["method"]
    assert steps.column("throughput_per_s").to_pylist() == [100.0, 200.0, 300.0, 400.0, 500.0]


def test_a_ramp_that_passed_every_step_reached_no_knee(tmp_path: Path) -> None:
    """Every step passed: 500/s is only a lower bound on the knee, and the capacity says so
    (``knee_reached`` false); a ramp with a failing step writes no flag (its knee was reached)."""
    passing = write_history(tmp_path / "passing", ramp_messages([1, 1, 1, 1, 1]), scenario=scenario_dict(RAMP),
                            t_end=6 * S)
    knee, _, _ = capacity(passing)
    assert knee is not None and knee["knee_reached"] is False and knee["knee_rate_per_s"] == 500.0
    failing = write_history(tmp_path / "failing", ramp_messages([1, 1, 1, 50, 200]), scenario=scenario_dict(RAMP),
                            t_end=6 * S)
    knee, _, _ = capacity(failing)
    assert knee is not None and "knee_reached" not in knee and knee["knee_rate_per_s"] == 300.0
    first = write_history(tmp_path / "first", ramp_messages([1, 1, 1, 1, 1], {0: 2}), scenario=scenario_dict(RAMP),
                          t_end=6 * S)
    knee, _, _ = capacity(first)  # the first step failed: no knee at all, not a bound
    assert knee is not None and "knee_reached" not in knee and knee["knee_rate_per_s"] is None


def test_throughput_short_of_offered_fails_a_step(tmp_path: Path) -> None:
    # step 4 loses every other message: throughput 200/s < 95% of 400/s
    history = write_history(
        tmp_path, ramp_messages([1, 1, 1, 1, 1], {3: 2}), scenario=scenario_dict(RAMP), t_end=6 * S
    )
    knee, _, _ = capacity(history)
    assert knee is not None and knee["knee_rate_per_s"] == 300.0


def test_stop_at_first_failure_even_if_a_later_step_passes(tmp_path: Path) -> None:
    history = write_history(
        tmp_path, ramp_messages([1, 1, 1, 10, 1]), scenario=scenario_dict(RAMP), t_end=6 * S
    )
    knee, steps, _ = capacity(history)
    assert knee is not None and steps is not None
    assert knee["knee_rate_per_s"] == 300.0
    assert steps.column("passed").to_pylist() == [True, True, True, False, True]


def test_a_knee_among_the_low_load_steps_is_called_an_upper_bound(tmp_path: Path) -> None:
    history = write_history(tmp_path, ramp_messages([1, 50, 200, 400, 800]), scenario=scenario_dict(RAMP), t_end=6 * S)
    knee, _, _ = capacity(history)
    assert knee is not None and "the knee lies among the low-load steps" in knee["method"]


def test_no_ramp_no_capacity(tmp_path: Path) -> None:
    history = write_history(tmp_path, [message(1, 0, latency_ns=MS)])
    assert capacity(history) == (None, None, None)
    assert find_step_ramp(history.scenario) is None


def test_ramp_inside_phases_starts_after_earlier_phases() -> None:
    scenario = scenario_dict("""
[run]
name = "phased"
duration = "5s"

[[agents]]
name = "background"
arrival = { process = "constant", rate = "10/s" }

[[agents]]
name = "ramp"
count = 2
start = "500ms"
arrival = { process = "phases", phases = [
  { duration = "1s", arrival = { process = "constant", rate = "50/s" } },
  { duration = "10s", arrival = { process = "step_ramp", start = "100/s", step = "50/s", every = "1s", steps = 5 } },
] }
""")
    ramp = find_step_ramp(scenario)
    assert ramp is not None and ramp.agent == "ramp"
    # the ramp starts at 0.5 s + 1 s, and traffic stops at run.duration (5 s)
    assert ramp.edges.tolist() == [1500 * MS, 2500 * MS, 3500 * MS, 4500 * MS, 5 * S]
    assert ramp.nominal_rate_per_s == [200.0, 300.0, 400.0, 500.0]  # x count


def test_steady_pipeline_delay_is_not_a_throughput_shortfall(tmp_path: Path) -> None:
    # 400 ms latency everywhere: unshifted, step 2 would count only 160 commits for 200
    # offered; throughput is counted with the first step's median latency as the lag
    history = write_history(
        tmp_path,
        ramp_messages([400, 400, 400, 400, 400]),
        scenario=scenario_dict(RAMP),
        t_end=7 * S,
    )
    knee, steps, _ = capacity(history)
    assert knee is not None and steps is not None
    assert knee["knee_rate_per_s"] == 500.0
    assert steps.column("throughput_per_s").to_pylist() == [100.0, 200.0, 300.0, 400.0, 500.0]


def test_a_live_step_the_generator_could_not_keep_fails_and_says_so(tmp_path: Path) -> None:
    # Latency stays flat, but in step 3 every message left 5 ms late: the load asked for
    # was not offered there, so the knee is step 2's, the generator's limit.
    rows = ramp_messages([1, 1, 1, 1, 1])
    for row in rows:
        if 2 * S <= row["t_intended"] < 3 * S:
            row["t_sent"] = row["t_intended"] + 5 * MS
    history = write_history(tmp_path, rows, scenario=scenario_dict(RAMP), t_end=6 * S, target="nats")
    knee, steps, _ = capacity(history)
    assert knee is not None and steps is not None
    assert knee["knee_rate_per_s"] == 200.0
    assert "first failing step 3 (there the generator could not keep the schedule" in knee["method"]
    assert steps.column("passed").to_pylist() == [True, True, False, True, True]
    assert knee["limited_by"] == "generator"
    assert knee["at_limit"]["step"] == 3 and knee["at_limit"]["send_lag_p50_ms"] == 5.0
    assert "least of steps 1, 2, 4" in knee["method"]  # the late step is no low-load baseline


def test_the_same_late_sends_on_the_simulator_change_nothing(tmp_path: Path) -> None:
    rows = ramp_messages([1, 1, 1, 1, 1])
    for row in rows:
        if 2 * S <= row["t_intended"] < 3 * S:
            row["t_sent"] = row["t_intended"] + 5 * MS
    knee, _, _ = capacity(write_history(tmp_path, rows, scenario=scenario_dict(RAMP), t_end=6 * S))
    assert knee is not None and knee["knee_rate_per_s"] == 500.0


def test_a_hiccup_delaying_a_few_messages_of_a_live_step_does_not_fail_it(tmp_path: Path) -> None:
    # 5 of step 2's 200 messages left 30 ms late (a scheduler hiccup): the bulk was on time,
    # so the step was offered as asked (the hiccup shows in its latency, judged on its own).
    rows = ramp_messages([1, 1, 1, 1, 1])
    late = [row for row in rows if S <= row["t_intended"] < 2 * S][:5]
    for row in late:
        row["t_sent"] = row["t_intended"] + 30 * MS
    knee, steps, _ = capacity(write_history(tmp_path, rows, scenario=scenario_dict(RAMP), t_end=6 * S, target="nats"))
    assert knee is not None and steps is not None
    assert knee["knee_rate_per_s"] == 500.0
    assert steps.column("passed").to_pylist() == [True] * 5


def test_one_noisy_low_step_moves_neither_the_bar_nor_the_knee(tmp_path: Path) -> None:
    """A first step with a 20 ms p99 (a hiccup of the machine) would have set a 60 ms bar
    and passed step 5's 50 ms; the bar is the least of the first three steps' p99s."""
    clean = capacity(write_history(tmp_path / "clean", ramp_messages([1, 1, 1.2, 1.5, 50]),
                                   scenario=scenario_dict(RAMP), t_end=6 * S))[0]
    noisy = capacity(write_history(tmp_path / "noisy", ramp_messages([20, 1, 1.2, 1.5, 50]),
                                   scenario=scenario_dict(RAMP), t_end=6 * S))[0]
    assert clean is not None and noisy is not None
    assert clean["knee_rate_per_s"] == noisy["knee_rate_per_s"] == 400.0


def test_an_inflated_start_moves_neither_the_bar_nor_the_knee(tmp_path: Path) -> None:
    """Steps of 1, 1, 2, 4 and 50 ms p99 from a clean start: the low-load p99 is 1 ms, the
    bar 3 ms, and step 4's 4 ms fails it (knee 300/s). A start that inflates step 1 to 20 ms
    (a process warming up, a saturated generator that still kept its schedule on average)
    leaves the least p99 of steps 1-3 at 1 ms and the knee where it was; the median of the
    three, the rule before, would be 2 ms, a 6 ms bar, and step 4 would pass (knee 400/s).
    Steps 1 and 2 inflated alike leave the least at 2 ms (step 3's): a 6 ms bar, knee 400/s,
    where the median (20 ms: a 60 ms bar) would have passed step 5 too (500/s)."""
    def knee_of(name: str, p99s_ms: list[float]) -> dict[str, Any]:
        knee = capacity(write_history(tmp_path / name, ramp_messages(p99s_ms), scenario=scenario_dict(RAMP),
                                      t_end=6 * S))[0]
        assert knee is not None
        return knee

    clean = knee_of("clean", [1, 1, 2, 4, 50])
    inflated = knee_of("inflated", [20, 1, 2, 4, 50])
    assert clean["knee_rate_per_s"] == inflated["knee_rate_per_s"] == 300.0
    assert "low-load p99 (1.0 ms, least of steps 1, 2, 3)" in inflated["method"]
    assert "first failing step 4" in inflated["method"]
    two = knee_of("two", [20, 20, 2, 4, 50])
    assert two["knee_rate_per_s"] == 400.0 and "low-load p99 (2.0 ms" in two["method"]


def test_a_saturated_start_does_not_raise_the_send_lag_limit_it_is_judged_by(tmp_path: Path) -> None:
    """Transactions committing 500 ms after they are due, but in steps 1 and 2 the generator
    sent every one 60 ms late, which it adds to their latency (700 ms there). The send lag
    limit is a tenth of the low-load p50: the least of steps 1-3's (500 ms), so 50 ms, and
    both steps were the generator's limit: the ramp fails at its first step, and steps 3-5
    give the low-load p99. The median of the three p50s, the rule before, was the inflated
    700 ms: a 70 ms limit under which the late start counted as kept, and a 2.1 s bar that
    every step passed."""
    rows = ramp_messages([700, 700, 500, 500, 500])
    for row in rows:
        if row["t_intended"] < 2 * S:
            row["t_sent"] = row["t_intended"] + 60 * MS
    knee, steps, _ = capacity(write_history(tmp_path, rows, scenario=scenario_dict(RAMP), t_end=7 * S,
                                            target="anvil"))
    assert knee is not None and steps is not None
    assert steps.column("passed").to_pylist() == [False, False, True, True, True]
    assert knee["knee_rate_per_s"] is None and knee["limited_by"] == "generator"
    assert "first failing step 1 (there the generator could not keep the schedule" in knee["method"]
    assert "low-load p99 (500.0 ms, least of steps 3, 4, 5)" in knee["method"]


def _cpu_samples(name: str, cores: float) -> list[dict[str, Any]]:
    """``cpu_seconds`` samples every 100 ms of a process busy on ``cores`` CPUs for 6 s."""
    return [{"t": k * 100 * MS, "kind": "cpu_seconds", "node": name, "value": cores * k / 10, "height": None,
             "detail": None} for k in range(61)]


def test_a_live_knee_says_the_broker_or_the_machine_limited_it(tmp_path: Path) -> None:
    rows = ramp_messages([1, 1, 1.2, 50, 200])
    host = '{"cpus": 2}'
    quiet = _cpu_samples("publisher", 0.3) + _cpu_samples("nats-server", 0.6)
    knee = capacity(write_history(tmp_path / "broker", rows, quiet, scenario=scenario_dict(RAMP), t_end=6 * S,
                                  target="nats", host=host))[0]
    assert knee is not None and knee["knee_rate_per_s"] == 300.0
    assert knee["limited_by"] == "broker"
    assert knee["at_limit"]["step"] == 4 and knee["at_limit"]["machine_cpus"] == 2
    assert knee["at_limit"]["cpu_busy"] == {"publisher": 0.3, "nats-server": 0.6}
    busy = _cpu_samples("publisher", 1.0) + _cpu_samples("nats-server", 0.9)
    knee = capacity(write_history(tmp_path / "machine", rows, busy, scenario=scenario_dict(RAMP), t_end=6 * S,
                                  target="nats", host=host))[0]
    assert knee is not None and knee["limited_by"] == "machine CPU"


def _machine_samples(busy_cores: list[float]) -> list[dict[str, Any]]:
    """``machine_cpu_seconds`` samples every 100 ms of a machine whose cores are busy
    ``busy_cores[k]`` in second k (cumulative from an uptime's worth of busy seconds)."""
    rows, total = [], 1000.0
    for k in range(10 * len(busy_cores) + 1):
        rows.append({"t": k * 100 * MS, "kind": "machine_cpu_seconds", "node": None, "value": total, "height": None,
                     "detail": None})
        total += busy_cores[min(k // 10, len(busy_cores) - 1)] / 10
    return rows


def test_a_live_knee_says_when_other_work_on_the_machine_held_its_cpus(tmp_path: Path) -> None:
    """Step 4 (second 3-4) fails: with the machine's cores 1.96 of 2 busy while msgstorm and
    the broker used 0.9 of them, other work set the knee; at 1.5 busy, or with the same
    busy cores only in the step before, the broker did."""
    rows = ramp_messages([1, 1, 1.2, 50, 200])
    host = '{"cpus": 2}'
    ours = _cpu_samples("publisher", 0.3) + _cpu_samples("nats-server", 0.6)

    def limit(name: str, busy: list[float]) -> dict[str, Any]:
        knee = capacity(write_history(tmp_path / name, rows, ours + _machine_samples(busy),
                                      scenario=scenario_dict(RAMP), t_end=6 * S, target="nats", host=host))[0]
        assert knee is not None and knee["knee_rate_per_s"] == 300.0
        return knee

    saturated = limit("saturated", [1.0, 1.0, 1.0, 1.96, 1.96, 1.96])
    assert saturated["limited_by"] == "machine"
    assert saturated["at_limit"]["machine_busy"] == pytest.approx(1.96)
    assert saturated["at_limit"]["cpu_busy"] == {"publisher": 0.3, "nats-server": 0.6}
    busy = limit("busy", [1.0, 1.0, 1.0, 1.5, 1.5, 1.5])
    assert busy["limited_by"] == "broker" and busy["at_limit"]["machine_busy"] == pytest.approx(1.5)
    before = limit("before", [1.0, 1.0, 1.96, 1.0, 1.0, 1.0])
    assert before["limited_by"] == "broker" and before["at_limit"]["machine_busy"] == pytest.approx(1.0)
    unrecorded = capacity(write_history(tmp_path / "unrecorded", rows, ours, scenario=scenario_dict(RAMP),
                                        t_end=6 * S, target="nats", host=host))[0]
    assert unrecorded is not None and unrecorded["limited_by"] == "broker"
    assert unrecorded["at_limit"]["machine_busy"] is None


def test_a_live_send_lag_counts_against_the_latency_it_is_part_of(tmp_path: Path) -> None:
    """Transactions that commit 500 ms after they are due (a chain's blocks): step 3's bulk
    leaving 5 ms late is a hundredth of that, neither less load nor more latency, and is
    not the generator's limit; leaving 60 ms late (over a tenth of 500 ms) is."""
    def ramp(lag_ms: float) -> list[dict[str, Any]]:
        rows = ramp_messages([500, 500, 500, 500, 500])
        for row in rows:
            if 2 * S <= row["t_intended"] < 3 * S:
                row["t_sent"] = row["t_intended"] + int(lag_ms * MS)
        return rows

    few = capacity(write_history(tmp_path / "few", ramp(5), scenario=scenario_dict(RAMP), t_end=7 * S,
                                 target="anvil"))[0]
    assert few is not None and few["knee_rate_per_s"] == 500.0 and few["limited_by"] != "generator"
    many = capacity(write_history(tmp_path / "many", ramp(60), scenario=scenario_dict(RAMP), t_end=7 * S,
                                  target="anvil"))[0]
    assert many is not None and many["knee_rate_per_s"] == 200.0 and many["limited_by"] == "generator"


@pytest.mark.parametrize("target", ["nats", "anvil"])
def test_a_generator_behind_on_a_saturated_machine_is_the_machines_limit_on_every_live_target(
        tmp_path: Path, target: str) -> None:
    """Step 3 (second 2-3): every message left 5 ms late while the machine's two cores were
    busy 2.0 (msgstorm's own processes 0.84 of them): the generator was behind because the
    machine was full, so the machine limited the knee, on a broker and on a chain node alike;
    with the machine at 1.0 the generator's own limit did."""
    rows = ramp_messages([1, 1, 1, 1, 1])
    for row in rows:
        if 2 * S <= row["t_intended"] < 3 * S:
            row["t_sent"] = row["t_intended"] + 5 * MS
    host = '{"cpus": 2}'
    ours = _cpu_samples("publisher", 0.84)

    def limit(name: str, busy: list[float]) -> dict[str, Any]:
        knee = capacity(write_history(tmp_path / name, rows, ours + _machine_samples(busy),
                                      scenario=scenario_dict(RAMP), t_end=6 * S, target=target, host=host))[0]
        assert knee is not None and knee["knee_rate_per_s"] == 200.0
        return knee

    full = limit("full", [1.0, 1.0, 2.0, 1.0, 1.0, 1.0])
    assert full["limited_by"] == "machine" and full["at_limit"]["machine_busy"] == pytest.approx(2.0)
    room = limit("room", [1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    assert room["limited_by"] == "generator" and room["at_limit"]["machine_busy"] == pytest.approx(1.0)


def test_the_limit_precedence_is_machine_then_generator_then_broker() -> None:
    assert limit_cause(True, 1.9, 2.0, 2) == "machine CPU"  # the run's own processes filled it
    assert limit_cause(True, 0.6, 1.9, 2) == "machine"  # 1.9 >= 95% of 2
    assert limit_cause(True, 0.6, 1.89, 2) == "generator"  # just under: room on the machine
    assert limit_cause(False, 0.6, 1.0, 2) == "broker"
    assert limit_cause(True, None, None, None) == "generator"  # nothing known of the machine
