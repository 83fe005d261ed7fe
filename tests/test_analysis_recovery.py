"""Recovery after a fault, on hand-built histories whose answer is worked out on paper."""

from __future__ import annotations

from pathlib import Path

from test_analysis_history import MS, S, event, message, write_history

from msgstorm.analysis.summary import analyse


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
                       "recovery_s": 0.5}]


def test_a_fault_with_nothing_held_recovers_at_once_and_one_never_healed_has_no_recovery(tmp_path: Path) -> None:
    faults = analyse(_history(tmp_path / "b", 3 * S)).summary["faults"]
    assert faults[0]["recovery_s"] == 0.0
    faults = analyse(_history(tmp_path / "c", 7 * S)).summary["faults"]  # still held at the run's end
    assert faults[0]["recovery_s"] is None and faults[0]["pre_fault_p99_ms"] == 2.0
