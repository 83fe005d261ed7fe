"""Per-window metrics: offered vs throughput, latency, losses and event-derived columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_analysis_history import MS, S, event, message, write_history

from msgstorm.analysis import WINDOW_SCHEMA, _intervals, window_metrics
from msgstorm.analysis._common import MessageArrays

COLUMNS = [
    "t_start_ns",
    "t_end_ns",
    "offered_per_s",
    "throughput_per_s",
    "p50_ms",
    "p99_ms",
    "max_ms",
    "jitter_ms",
    "dropped",
    "rejected",
    "lost",
    "pending",
    "unsent",
    "queue_depth_max",
    "base_fee",
    "desync_nodes",
    "faults_active",
]


def test_column_names_are_the_report_contract() -> None:
    assert WINDOW_SCHEMA.names == COLUMNS


def test_offered_and_throughput_per_window(tmp_path: Path) -> None:
    rows = [
        # window 0: 4 intended; two commit in window 0, two (600 ms latency) in window 1
        message(1, 100 * MS, latency_ns=10 * MS),
        message(2, 200 * MS, latency_ns=30 * MS),
        message(3, 500 * MS, latency_ns=600 * MS),
        message(4, 900 * MS, latency_ns=600 * MS),
        # window 1: one dropped, one rejected, one lost; window 2: one still pending at the end,
        # one a live generator never sent
        message(5, 1100 * MS, status="dropped"),
        message(6, 1200 * MS, status="rejected"),
        message(7, 1300 * MS, status="lost"),
        message(8, 2500 * MS),
        message(9, 2600 * MS, status="unsent"),
    ]
    table = window_metrics(write_history(tmp_path, rows, t_end=3 * S))
    assert table.schema == WINDOW_SCHEMA
    assert table.column("t_start_ns").to_pylist() == [0, S, 2 * S]
    assert table.column("t_end_ns").to_pylist() == [S, 2 * S, 3 * S]
    assert table.column("offered_per_s").to_pylist() == [4.0, 3.0, 2.0]
    assert table.column("throughput_per_s").to_pylist() == [2.0, 2.0, 0.0]
    assert table.column("p50_ms").to_pylist() == [10.0, 600.0, None]
    assert table.column("p99_ms").to_pylist() == [30.0, 600.0, None]
    assert table.column("max_ms").to_pylist() == [30.0, 600.0, None]
    assert table.column("jitter_ms").to_pylist() == [10.0, 0.0, None]
    assert table.column("dropped").to_pylist() == [0, 1, 0]
    assert table.column("rejected").to_pylist() == [0, 1, 0]
    assert table.column("lost").to_pylist() == [0, 1, 0]
    assert table.column("pending").to_pylist() == [0, 0, 1]
    assert table.column("unsent").to_pylist() == [0, 0, 1]


def test_window_width_and_short_last_window(tmp_path: Path) -> None:
    rows = [message(i, i * 100 * MS, latency_ns=MS) for i in range(25)]  # 10/s for 2.5 s
    table = window_metrics(write_history(tmp_path, rows, t_end=2500 * MS), window_ns=2 * S)
    assert table.column("t_end_ns").to_pylist() == [2 * S, 2500 * MS]
    # rates use the window's own length, so the short last window reads 10/s too
    assert table.column("offered_per_s").to_pylist() == [10.0, 10.0]


def test_event_columns(tmp_path: Path) -> None:
    events = [
        event(1500 * MS, "queue_depth", value=3.0),
        event(100 * MS, "queue_depth", value=5.0),  # events are not globally time-ordered
        event(900 * MS, "queue_depth_max", value=12.0),
        event(1200 * MS, "base_fee", value=1.0),
        event(1800 * MS, "base_fee", value=1.125),
        # n1 desync in windows 0..1, n2 in window 1 only; ends at 2 s exactly: not window 2
        event(500 * MS, "desync_start", node="n1", value=3.0),
        event(1100 * MS, "desync_start", node="n2", value=3.0),
        event(1900 * MS, "desync_end", node="n1", value=0.0, max_gap=4),
        event(2000 * MS, "desync_end", node="n2", value=0.0, max_gap=3),
        # one fault over windows 1..2, one that never ends (window 2 onwards)
        event(1 * S, "fault_start", fault_id=0, kind="partition"),
        event(2500 * MS, "fault_end", fault_id=0, kind="partition"),
        event(2200 * MS, "fault_start", fault_id=1, kind="crash"),
    ]
    table = window_metrics(write_history(tmp_path, [], events, t_end=4 * S))
    # Samples are written as they change (analysis/samples.py): the depth of 5 at 0.1 s holds
    # at every sample to 1.5 s, so window 1 saw it; the series ends at its last row, 1.5 s.
    assert table.column("queue_depth_max").to_pylist() == [12.0, 5.0, None, None]
    assert table.column("base_fee").to_pylist() == [None, 1.125, None, None]
    assert table.column("desync_nodes").to_pylist() == [1, 2, 0, 0]
    assert table.column("faults_active").to_pylist() == [0, 1, 2, 1]


def test_empty_history_has_no_windows(tmp_path: Path) -> None:
    table = window_metrics(write_history(tmp_path, t_end=0))
    assert table.num_rows == 0
    assert table.schema == WINDOW_SCHEMA


def test_interval_latencies_are_grouped_in_row_order_across_chunks(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Each interval's latencies come in row order, whichever interval the rows before and
    after commit in, when they are placed a chunk of two rows at a time (a stable sort by
    interval gives the same)."""
    monkeypatch.setattr(_intervals, "_BIN_CHUNK", 2)
    rows = [
        message(1, 100 * MS, latency_ns=1500 * MS),  # commits at 1.6 s: window 1
        message(2, 200 * MS, latency_ns=10 * MS),  # 0.21 s: window 0
        message(3, 300 * MS, latency_ns=2000 * MS),  # 2.3 s: window 2
        message(4, 400 * MS, latency_ns=700 * MS),  # 1.1 s: window 1
        message(5, 500 * MS, latency_ns=20 * MS),  # 0.52 s: window 0
        message(6, 1200 * MS, latency_ns=900 * MS),  # 2.1 s: window 2
        message(7, 1300 * MS, status="dropped"),
    ]
    messages = MessageArrays(write_history(tmp_path, rows, t_end=3 * S))
    edges = np.array([0, S, 2 * S, 3 * S], dtype=np.int64)
    by_commit = _intervals.interval_load(messages, edges, latency_by="committed", clip_last=True)
    assert [group.tolist() for group in by_commit.latencies_ns] == [[10 * MS, 20 * MS], [1500 * MS, 700 * MS],
                                                                     [2000 * MS, 900 * MS]]
    assert by_commit.committed.tolist() == [2, 2, 2] and by_commit.dropped.tolist() == [0, 1, 0]
    by_intent = _intervals.interval_load(messages, edges, latency_by="intended", clip_last=True)
    assert [group.tolist() for group in by_intent.latencies_ns] == [
        [1500 * MS, 10 * MS, 2000 * MS, 700 * MS, 20 * MS], [900 * MS], []]
    assert by_intent.offered.tolist() == [5, 2, 0]
