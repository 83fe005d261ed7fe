"""Recovery after a fault, on hand-built histories whose answer is worked out on paper."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from test_analysis_history import MS, S, event, message, write_history

from msgstorm.analysis.recovery import PRE_FAULT_P99_MEANING
from msgstorm.analysis.summary import analyse
from msgstorm.analysis.summary_model import Fault, summary_json_schema
from msgstorm.report.terminal import _faults_table
from msgstorm.report.text import baseline_span, recovered_after


def _history(tmp_path: Path, backlog_clears_ns: int):  # type: ignore[no-untyped-def]
    """One message every 10 ms for 6 s, each 2 ms late, except those intended during the
    fault (2 s .. 3 s) and after it until ``backlog_clears_ns``: those all arrive at
    ``backlog_clears_ns`` (a stalled broker that drains its backlog at once)."""
    rows = []
    for i in range(600):
        t = i * 10 * MS
        latency = 2 * MS if t < 2 * S or t >= backlog_clears_ns else backlog_clears_ns - t
        rows.append(message(i, t, latency_ns=latency))
    events = [event(0, "run_start", target="sim"), event(2 * S, "fault_start", fault_id=0, kind="pause"),
              event(3 * S, "fault_end", fault_id=0, kind="pause")]
    return write_history(tmp_path, rows, events, t_end=6 * S)


def test_recovery_is_from_the_fault_end_to_the_first_bin_back_to_normal(tmp_path: Path) -> None:
    # Backlog cleared at 3.45 s: the bins from 3.0 s and from 3.1 .. 3.3 s hold messages still
    # waiting (p99 above 2 x 2 ms); the bin from 3.4 s has its first 5 messages 50 .. 10 ms late
    # (p99 above 4 ms), so the first bin back to normal starts at 3.5 s: 0.5 s after the end.
    faults = analyse(_history(tmp_path / "a", int(3.45 * S))).summary["faults"]
    assert faults == [{"fault_id": 0, "kind": "pause", "start_s": 2.0, "end_s": 3.0, "pre_fault_p99_ms": 2.0,
                       "baseline_s": [0.0, 2.0], "no_baseline": None, "recovery_s": 0.5}]


def test_a_fault_with_nothing_held_recovers_at_once_and_one_never_healed_has_no_recovery(tmp_path: Path) -> None:
    faults = analyse(_history(tmp_path / "b", 3 * S)).summary["faults"]
    assert faults[0]["recovery_s"] == 0.0
    faults = analyse(_history(tmp_path / "c", 7 * S)).summary["faults"]  # still held at the run's end
    assert faults[0]["recovery_s"] is None and faults[0]["pre_fault_p99_ms"] == 2.0


def _faults(tmp_path: Path, latency_ns, windows: list[tuple[int, int]]):  # type: ignore[no-untyped-def]
    """One message every 10 ms for 6 s, ``latency_ns(t)`` late (None: never committed), and
    a pause fault over each of ``windows``."""
    rows = [message(i, i * 10 * MS, latency_ns=latency_ns(i * 10 * MS)) for i in range(600)]
    events = [event(0, "run_start", target="sim")]
    for fault_id, (start, end) in enumerate(windows):
        events += [event(start, "fault_start", fault_id=fault_id, kind="pause"),
                   event(end, "fault_end", fault_id=fault_id, kind="pause")]
    return analyse(write_history(tmp_path, rows, events, t_end=6 * S)).summary["faults"]


def test_the_baseline_keeps_the_slow_messages_intended_just_before_the_fault(tmp_path: Path) -> None:
    # Intended 1.9 .. 2.0 s (10 of the 200 in the baseline), each 150 ms late: committed after
    # the fault began, they are still part of the normal before it (p99: the 198th of 200).
    faults = _faults(tmp_path, lambda t: 150 * MS if 1.9 * S <= t < 2 * S else 2 * MS, [(2 * S, 3 * S)])
    assert faults[0]["pre_fault_p99_ms"] == 150.0


def test_the_baseline_starts_after_the_fault_before(tmp_path: Path) -> None:
    # The first fault (1.0 .. 1.5 s) holds its messages 300 ms; the second's baseline is
    # 1.5 .. 2.0 s, all 2 ms late, not the first fault's backlog.
    faults = _faults(tmp_path, lambda t: 300 * MS if S <= t < 1.5 * S else 2 * MS, [(S, 1.5 * S), (2 * S, 2.5 * S)])
    assert faults[1]["pre_fault_p99_ms"] == 2.0 and faults[1]["recovery_s"] == 0.0
    # A fault that began while another was in force has no normal to compare with.
    faults = _faults(tmp_path / "overlap", lambda t: 2 * MS, [(S, 3 * S), (2 * S, 2.5 * S)])
    assert faults[1]["pre_fault_p99_ms"] is None and faults[1]["recovery_s"] is None
    assert faults[1]["no_baseline"] == {"reason": "fault_in_force", "fault_id": 0}
    assert recovered_after(Fault.model_validate(faults[1])) == "no baseline (fault 0 in force)"


def test_a_fault_that_begins_as_the_one_before_ends_has_no_baseline_and_says_so_not_not_recovered(
        tmp_path: Path) -> None:
    # As examples/oracle-attack.toml's censor fault: the oracle fault ends as it begins, so no
    # time is left before it to measure a normal in. Nothing was measured: "no baseline",
    # naming the fault before, never "not recovered".
    faults = _faults(tmp_path, lambda t: 2 * MS, [(S, 2 * S), (2 * S, 3 * S)])
    assert faults[0]["baseline_s"] == [0.0, 1.0] and faults[0]["recovery_s"] == 0.0
    assert faults[1]["pre_fault_p99_ms"] is None and faults[1]["baseline_s"] is None
    assert faults[1]["recovery_s"] is None
    assert faults[1]["no_baseline"] == {"reason": "fault_before", "fault_id": 0}
    assert recovered_after(Fault.model_validate(faults[1])) == "no baseline (fault 0 before)"
    table = Console(width=200, record=True)
    table.print(_faults_table([Fault.model_validate(fault) for fault in faults]))
    shown = table.export_text()
    assert "no baseline (fault 0 before)" in shown and "not recovered" not in shown, shown
    # A fault whose run ended before it recovered is "not recovered": it had a baseline.
    held = _faults(tmp_path / "held", lambda t: 2 * MS if t < 2 * S else 10 * S, [(2 * S, 3 * S)])
    assert held[0]["no_baseline"] is None and recovered_after(Fault.model_validate(held[0])) == "not recovered"


def test_the_baseline_is_the_last_clean_steps_not_a_burst_that_shed_messages(tmp_path: Path) -> None:
    # One message every 10 ms; a burst from 2.5 s to 4 s: every 10th message dropped, the rest
    # 300 ms late. The fault (4 .. 5 s) is measured against the last whole seconds before it in
    # which nothing was shed: 3 .. 4 s and 2 .. 3 s shed, so 0 .. 2 s (p99 2 ms), not the 5 s
    # before it (whose p99 the burst sets at 300 ms). After the fault, messages intended in
    # 5.0 .. 5.3 s are 100 ms late: over 2 x 2 ms, so the first bin back to normal starts at
    # 5.3 s: 0.3 s (against the burst's 300 ms it would have been 0 s, "recovered at once").
    rows = []
    for i in range(800):
        t = i * 10 * MS
        if 2.5 * S <= t < 4 * S:
            rows.append(message(i, t, status="dropped") if i % 10 == 0 else message(i, t, latency_ns=300 * MS))
        else:
            rows.append(message(i, t, latency_ns=100 * MS if 5 * S <= t < 5.3 * S else 2 * MS))
    events = [event(0, "run_start", target="sim"), event(4 * S, "fault_start", fault_id=0, kind="pause"),
              event(5 * S, "fault_end", fault_id=0, kind="pause")]
    faults = analyse(write_history(tmp_path, rows, events, t_end=8 * S)).summary["faults"]
    assert faults[0]["baseline_s"] == [0.0, 2.0] and faults[0]["pre_fault_p99_ms"] == 2.0
    assert faults[0]["recovery_s"] == 0.3
    assert baseline_span(Fault.model_validate(faults[0])) == "0–2 s"
    # Shedding in every second before the fault: no baseline, and the reason.
    shed = [message(i, i * 10 * MS, status="dropped") if i % 10 == 0 and i < 400 else
            message(i, i * 10 * MS, latency_ns=2 * MS) for i in range(800)]
    faults = analyse(write_history(tmp_path / "shed", shed, events, t_end=8 * S)).summary["faults"]
    assert faults[0]["no_baseline"] == {"reason": "shed_before", "fault_id": None}
    assert recovered_after(Fault.model_validate(faults[0])) == "no baseline (messages dropped before)"


def test_a_baseline_of_zero_or_of_nothing_committed_is_no_baseline(tmp_path: Path) -> None:
    faults = _faults(tmp_path / "zero", lambda t: 0, [(2 * S, 3 * S)])
    assert faults[0]["pre_fault_p99_ms"] is None and faults[0]["recovery_s"] is None
    assert recovered_after(Fault.model_validate(faults[0])) == "no baseline (nothing committed before)"
    faults = _faults(tmp_path / "lost", lambda t: None if t < 2 * S else 2 * MS, [(2 * S, 3 * S)])
    assert faults[0]["pre_fault_p99_ms"] is None and faults[0]["recovery_s"] is None


def test_the_baseline_keeps_messages_committed_after_the_fault_ended_as_its_description_says(tmp_path: Path) -> None:
    # Intended 1.95 .. 2.0 s (5 of the 200 in the baseline), each 1.5 s late: committed at
    # 3.45 .. 3.5 s, after the fault (2 .. 3 s) had ended. Committed whenever: they are in the
    # baseline, whose p99 (the 198th of 200 latencies) is one of them.
    faults = _faults(tmp_path, lambda t: 1500 * MS if 1.95 * S <= t < 2 * S else 2 * MS, [(2 * S, 3 * S)])
    assert faults[0]["pre_fault_p99_ms"] == 1500.0
    described = summary_json_schema()["$defs"]["Fault"]["properties"]["pre_fault_p99_ms"]["description"]
    assert described == PRE_FAULT_P99_MEANING and "committed, whenever that was" in described
    assert "committed before it" not in described
