"""Arrival processes: counts, spacing, self-excitation, ramps, phases and replay files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import TypeAdapter

from msgstorm.scenario.traffic import ArrivalSpec
from msgstorm.traffic import ArrivalProcess, make_arrival

S = 1_000_000_000
_SPEC: TypeAdapter[Any] = TypeAdapter(ArrivalSpec)


def _arrival(
    spec: dict[str, Any], t_end_ns: int, t0_ns: int = 0, seed: int = 1, instances: int = 1
) -> ArrivalProcess:
    rng = np.random.default_rng(seed)
    return make_arrival(_SPEC.validate_python(spec), rng, t0_ns, t_end_ns, instances)


def _windows(process: ArrivalProcess, start_ns: int, end_ns: int, window_ns: int) -> np.ndarray:
    """Times over [start, end) asked window by window; checks each window's contract."""
    parts = []
    for lo in range(start_ns, end_ns, window_ns):
        hi = min(lo + window_ns, end_ns)
        times = process.times(lo, hi)
        assert times.dtype == np.int64
        assert np.all((times >= lo) & (times < hi))
        assert np.all(np.diff(times) >= 0)
        parts.append(times)
    return np.concatenate(parts)


def test_poisson_count_is_within_four_standard_deviations() -> None:
    process = _arrival({"process": "poisson", "rate": "10000/s"}, t_end_ns=100 * S)
    times = _windows(process, 0, 100 * S, S)
    expected = 10_000 * 100
    assert abs(times.size - expected) < 4 * np.sqrt(expected)


def test_poisson_interarrivals_have_unit_coefficient_of_variation() -> None:
    process = _arrival({"process": "poisson", "rate": "1000/s"}, t_end_ns=100 * S)
    gaps = np.diff(_windows(process, 0, 100 * S, S)).astype(np.float64)
    assert gaps.std() / gaps.mean() == pytest.approx(1.0, abs=0.02)
    assert gaps.mean() == pytest.approx(1e6, rel=0.02)


def test_poisson_instances_are_drawn_uniformly() -> None:
    process = _arrival({"process": "poisson", "rate": "100/s"}, t_end_ns=100 * S, instances=4)
    times, instance = process.events(0, 100 * S)
    assert times.size == pytest.approx(40_000, rel=0.03)
    shares = np.bincount(instance, minlength=4) / instance.size
    assert np.allclose(shares, 0.25, atol=0.01)


def test_constant_spacing_is_exact_and_windows_do_not_matter() -> None:
    process = _arrival({"process": "constant", "rate": "1000/s"}, t0_ns=5 * S, t_end_ns=15 * S)
    times = _windows(process, 5 * S, 15 * S, 333_333_333)
    assert times.size == 10_000
    assert np.all(np.diff(times) == 1_000_000)
    assert 5 * S <= times[0] < 5 * S + 1_000_000
    again = _arrival({"process": "constant", "rate": "1000/s"}, t0_ns=5 * S, t_end_ns=15 * S)
    assert np.array_equal(again.times(0, 20 * S), times)


def test_constant_instances_have_own_phases() -> None:
    process = _arrival({"process": "constant", "rate": "10/s"}, t_end_ns=10 * S, instances=50)
    times, instance = process.events(0, 10 * S)
    assert times.size == 50 * 10 * 10
    assert np.all(np.diff(times) >= 0)
    firsts = np.array([times[instance == i][0] for i in range(50)])
    assert np.unique(firsts).size == 50  # not in lockstep
    assert np.all(firsts < 100_000_000)
    for i in (0, 17, 49):
        assert np.all(np.diff(times[instance == i]) == 100_000_000)


def test_burst_sends_each_batch_from_its_periods_start() -> None:
    # 4/s a batch a second, 0.1 s apart, from t0 = 2 s: 2.0, 2.1, 2.2, 2.3, then 3.0, ...
    process = _arrival({"process": "burst", "rate": "4/s", "spacing": "100ms"}, t0_ns=2 * S, t_end_ns=4 * S + 150_000_000)
    times = _windows(process, 0, 6 * S, 70_000_000)
    ms = 1_000_000
    assert times.tolist() == [2000 * ms, 2100 * ms, 2200 * ms, 2300 * ms, 3000 * ms, 3100 * ms, 3200 * ms,
                              3300 * ms, 4000 * ms, 4100 * ms]
    assert np.array_equal(process.times(0, 6 * S), times)


def test_burst_without_spacing_is_all_at_once_and_copies_send_together() -> None:
    process = _arrival({"process": "burst", "rate": "3/s", "every": "2s"}, t_end_ns=3 * S, instances=2)
    times, instance = process.events(0, 3 * S)
    assert times.tolist() == [0] * 12 + [2 * S] * 12  # 3/s over 2 s: 6 a batch, each of the 2 copies
    assert instance.tolist() == [0, 1] * 12


def test_burst_is_cut_at_the_period_end_like_the_load_tool() -> None:
    # 10 due a second 0.3 s apart: writes end at 0.3, 0.6, 0.9, 1.2 s; the tool stops after
    # the fourth (its writes have reached 1 s), so 4 a second are sent: 0, 0.3, 0.6, 0.9.
    process = _arrival({"process": "burst", "rate": "10/s", "spacing": "300ms"}, t_end_ns=2 * S)
    ms = 1_000_000
    assert process.times(0, 2 * S).tolist() == [0, 300 * ms, 600 * ms, 900 * ms,
                                                1000 * ms, 1300 * ms, 1600 * ms, 1900 * ms]
    # Exactly filling the period: 0.25 s apart, the fourth write ends at 1 s: 4 sent.
    exact = _arrival({"process": "burst", "rate": "10/s", "spacing": "250ms"}, t_end_ns=S)
    assert exact.times(0, S).size == 4


def test_a_burst_of_a_fraction_of_a_message_is_refused_naming_a_rate_that_works() -> None:
    with pytest.raises(ValueError, match=r"'rate' × 'every' is 1.5 messages a batch.*rate = \"4/s\""):
        _SPEC.validate_python({"process": "burst", "rate": "3/s", "every": "500ms"})
    with pytest.raises(ValueError, match=r"is 0.5 messages a batch.*rate = \"1/s\""):
        _SPEC.validate_python({"process": "burst", "rate": "0.5/s"})
    assert _SPEC.validate_python({"process": "burst", "rate": "0.5/s", "every": "2s"}).batch == 1


def _hawkes(branching: float, decay: str, seed: int = 1) -> ArrivalProcess:
    spec = {"process": "hawkes", "baseline": "500/s", "branching": branching, "decay": decay}
    return _arrival(spec, t_end_ns=1_000 * S, seed=seed)


def test_hawkes_mean_rate_is_baseline_over_one_minus_branching() -> None:
    times = _windows(_hawkes(0.5, "1ms"), 0, 200 * S, S)
    assert times.size / 200 == pytest.approx(500 / (1 - 0.5), rel=0.03)


def test_hawkes_counts_are_overdispersed() -> None:
    duration_ns = 200 * S
    hawkes = _windows(_hawkes(0.8, "10ms"), 0, duration_ns, S)
    counts = np.bincount(hawkes // (100_000_000), minlength=2000)
    assert counts.var() > 3 * counts.mean()

    poisson = _arrival({"process": "poisson", "rate": "2500/s"}, t_end_ns=duration_ns)
    counts = np.bincount(_windows(poisson, 0, duration_ns, S) // 100_000_000, minlength=2000)
    assert counts.var() / counts.mean() == pytest.approx(1.0, abs=0.2)


def test_hawkes_small_windows_match_one_long_window() -> None:
    # Children wait 200 ms on average, so most cross a 100 ms window edge: dropping
    # instead of carrying them would cut the rate by far more than the tolerance.
    expected_per_s = 500 / (1 - 0.8)
    windowed = _windows(_hawkes(0.8, "200ms", seed=2), 0, 200 * S, 100_000_000)
    whole = _hawkes(0.8, "200ms", seed=3).times(0, 200 * S)
    assert windowed.size / 200 == pytest.approx(expected_per_s, rel=0.05)
    assert whole.size / 200 == pytest.approx(expected_per_s, rel=0.05)
    assert windowed.size / whole.size == pytest.approx(1.0, rel=0.07)


def test_step_ramp_levels_match_configuration() -> None:
    spec = {"process": "step_ramp", "start": "1000/s", "step": "1000/s", "every": "2s", "steps": 4}
    times = _windows(_arrival(spec, t_end_ns=20 * S), 0, 20 * S, S)
    per_step = np.bincount(times // (2 * S), minlength=10)
    for k, level_per_s in enumerate([1000, 2000, 3000, 4000]):
        expected = level_per_s * 2
        assert abs(per_step[k] - expected) < 4 * np.sqrt(expected)
    assert per_step[4:].sum() == 0  # nothing after the last step

    even = _arrival({**spec, "poisson": False}, t_end_ns=20 * S)
    times = _windows(even, 0, 20 * S, S)
    per_step = np.bincount(times // (2 * S), minlength=10)
    assert np.all(np.abs(per_step[:4] - np.array([2000, 4000, 6000, 8000])) <= 1)
    assert per_step[4:].sum() == 0
    inside_third_step = times[(times >= 4 * S + 1) & (times < 6 * S)]
    assert set(np.diff(inside_third_step).tolist()) <= {333_333, 333_334}


def test_linear_ramp_count_follows_the_integral() -> None:
    spec = {"process": "linear_ramp", "start": "0/s", "end": "2000/s"}
    times = _windows(_arrival(spec, t_end_ns=100 * S), 0, 100 * S, S)
    # ∫ rate = 100 s × 1000/s on average; the first half holds a quarter of it.
    assert abs(times.size - 100_000) < 4 * np.sqrt(100_000)
    first_half = np.count_nonzero(times < 50 * S)
    assert abs(first_half - 25_000) < 4 * np.sqrt(25_000)

    even = _windows(_arrival({**spec, "poisson": False}, t_end_ns=100 * S), 0, 100 * S, S)
    assert abs(even.size - 100_000) <= 1
    assert abs(np.count_nonzero(even < 50 * S) - 25_000) <= 1
    gaps = np.diff(even)
    assert gaps[:100].mean() > gaps[-100:].mean()  # spacing shrinks as the rate grows


def test_decreasing_linear_ramp_is_deterministic_and_ends_in_time() -> None:
    spec = {"process": "linear_ramp", "start": "1000/s", "end": "0/s", "poisson": False}
    times = _windows(_arrival(spec, t0_ns=S, t_end_ns=11 * S), 0, 12 * S, S)
    assert abs(times.size - 5_000) <= 1
    assert times.min() >= S and times.max() < 11 * S


def test_phases_are_consecutive_then_silent() -> None:
    spec = {
        "process": "phases",
        "phases": [
            {"duration": "2s", "arrival": {"process": "constant", "rate": "100/s"}},
            {"duration": "3s", "arrival": {"process": "poisson", "rate": "1000/s"}},
            {"duration": "1s", "arrival": {"process": "constant", "rate": "0/s"}},
            {"duration": "1s", "arrival": {"process": "constant", "rate": "10/s"}},
        ],
    }
    times = _windows(_arrival(spec, t0_ns=S, t_end_ns=20 * S), 0, 20 * S, 700_000_000)
    assert np.count_nonzero(times < S) == 0
    assert np.count_nonzero((times >= S) & (times < 3 * S)) == 200
    assert abs(np.count_nonzero((times >= 3 * S) & (times < 6 * S)) - 3000) < 4 * np.sqrt(3000)
    assert np.count_nonzero((times >= 6 * S) & (times < 7 * S)) == 0
    assert np.count_nonzero((times >= 7 * S) & (times < 8 * S)) == 10
    assert np.count_nonzero(times >= 8 * S) == 0


def test_replay_from_csv_with_unit_and_speed(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    path.write_text("ts,side\n1000,buy\n1000.5,sell\n1002,buy\n1010,buy\n")
    spec = {"process": "replay", "path": str(path), "column": "ts", "time_unit": "ms", "speed": 2}
    process = _arrival(spec, t0_ns=S, t_end_ns=10 * S)
    assert process.times(0, S + 2_000_000).tolist() == [S, S + 250_000, S + 1_000_000]
    assert process.times(S + 2_000_000, 10 * S).tolist() == [S + 5_000_000]


def test_replay_from_parquet_integer_ns_and_us(tmp_path: Path) -> None:
    path = tmp_path / "trace.parquet"
    epoch_ns = 1_700_000_000_123_456_789  # too big for float64 to keep every ns
    pq.write_table(pa.table({"t": pa.array([epoch_ns, epoch_ns + 7, epoch_ns + 3 * S])}), path)
    process = _arrival({"process": "replay", "path": str(path)}, t_end_ns=10 * S, instances=2)
    times, instance = process.events(0, 10 * S)
    assert times.tolist() == [0, 0, 7, 7, 3 * S, 3 * S]
    assert instance.tolist() == [0, 1, 0, 1, 0, 1]

    spec = {"process": "replay", "path": str(path), "time_unit": "us", "speed": 0.5}
    slowed = _arrival(spec, t_end_ns=10**16)
    assert slowed.times(0, 10**16).tolist() == [0, 14_000, 6 * S * 1_000]


def test_a_replay_file_is_read_once_for_validation_and_run_and_again_once_rewritten(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, scenario_from: Any, run_scenario: Any) -> None:
    from msgstorm.scenario import replay

    reads: list[str] = []
    read_csv = replay.pa_csv.read_csv
    monkeypatch.setattr(replay.pa_csv, "read_csv", lambda path, **options: reads.append(path) or read_csv(
        path, **options))
    path = tmp_path / "trace.csv"
    path.write_text("ts\n0\n0.1\n0.25\n")
    text = f"""
[run]
name = "replayed"
duration = "1s"
[network]
regions = ["us-east"]
nodes_per_region = 1
[[agents]]
name = "trace"
arrival = {{ process = "replay", path = "{path}", column = "ts" }}
"""
    scenario = scenario_from(text)
    for name in ("first", "second"):  # validated, then run twice: one read
        assert run_scenario(scenario, name).summary["messages"]["sent"] == 3
    assert reads == [str(path)]
    path.write_text("ts\n0\n0.1\n0.25\n0.5\n0.75\n")  # the file changed: read again
    assert run_scenario(scenario_from(text), "third").summary["messages"]["sent"] == 5
    assert reads == [str(path)] * 2


def test_replay_bad_column_names_path_and_column(tmp_path: Path) -> None:
    csv_path = tmp_path / "trace.csv"
    csv_path.write_text("ts\n1\n2\n")
    with pytest.raises(ValueError, match=r"no column 'when'.*\['ts'\]") as error:
        _arrival({"process": "replay", "path": str(csv_path), "column": "when"}, t_end_ns=S)
    assert str(csv_path) in str(error.value)

    parquet_path = tmp_path / "trace.parquet"
    pq.write_table(pa.table({"ts": [1, 2]}), parquet_path)
    with pytest.raises(ValueError, match="no column 'when'") as error:
        _arrival({"process": "replay", "path": str(parquet_path), "column": "when"}, t_end_ns=S)
    assert str(parquet_path) in str(error.value)

    text_path = tmp_path / "words.csv"
    text_path.write_text("ts\nsoon\nlater\n")
    with pytest.raises(ValueError, match="column 'ts' holds string"):
        _arrival({"process": "replay", "path": str(text_path), "column": "ts"}, t_end_ns=S)

    missing = tmp_path / "missing.parquet"
    with pytest.raises(ValueError, match="missing.parquet"):
        _arrival({"process": "replay", "path": str(missing)}, t_end_ns=S)
