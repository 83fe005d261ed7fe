"""Per-window metrics: the run cut into fixed windows, the time series the report plots.

Place in the pipeline: after the whole-run metrics, the run is cut into windows
``[k*w, (k+1)*w)`` (w = ``run.window`` unless given) up to the run's ``t_end``; the failure
threshold walks these windows when there is no step ramp, and the HTML report plots them.

Columns (names are a contract with the report):

- ``t_start_ns``, ``t_end_ns``: the window; the last one ends at ``t_end`` (it may be shorter
  than w, and anything recorded at or after ``t_end`` is counted in it).
- ``offered_per_s``: messages with ``t_intended`` in the window / window length.
- ``throughput_per_s``: messages with ``t_committed`` in the window / window length.
- ``p50_ms``, ``p99_ms``, ``max_ms``, ``jitter_ms`` (stddev): latency of the messages committed
  in the window; null when none were.
- ``dropped``, ``rejected``, ``lost``, ``pending``: messages with that status, by ``t_intended``
  window (pending: still waiting when the run ended, as a flood leaves a queue behind).
- ``queue_depth_max``: max of ``queue_depth`` / ``queue_depth_max`` samples taken in the window
  (null without samples; every sample counts, a row held until the next:
  ``analysis/samples.py``).
- ``base_fee``: last ``base_fee`` value recorded in the window, or null.
- ``desync_nodes``: distinct nodes in a desync episode at any point in the window.
- ``faults_active``: faults active at any point in the window.

Episodes and faults span ``[start, end)`` (one ending exactly at a window's start is not
active in it); one that never ends lasts to ``t_end``.

Rates use the window's own length, so the shorter last window is not under-reported.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from msgstorm.analysis._common import (
    DEFAULT_WINDOW_NS,
    I64,
    MessageArrays,
    events_of,
    ms,
    percentiles,
    rounded,
    run_t_end_ns,
    scenario_section,
)
from msgstorm.analysis._intervals import IntervalLoad, bin_index, interval_load, overlap_range
from msgstorm.analysis.desync import DesyncEpisode, desync_episodes
from msgstorm.analysis.faults import FaultWindow, fault_windows
from msgstorm.analysis.samples import grid_series
from msgstorm.history.events import EventKind
from msgstorm.history.reader import History

__all__ = ["WINDOW_SCHEMA", "horizon_ns", "window_edges", "window_metrics", "window_ns_of"]

WINDOW_SCHEMA = pa.schema(
    [
        pa.field("t_start_ns", pa.int64(), nullable=False),
        pa.field("t_end_ns", pa.int64(), nullable=False),
        pa.field("offered_per_s", pa.float64(), nullable=False),
        pa.field("throughput_per_s", pa.float64(), nullable=False),
        pa.field("p50_ms", pa.float64()),
        pa.field("p99_ms", pa.float64()),
        pa.field("max_ms", pa.float64()),
        pa.field("jitter_ms", pa.float64()),
        pa.field("dropped", pa.int64(), nullable=False),
        pa.field("rejected", pa.int64(), nullable=False),
        pa.field("lost", pa.int64(), nullable=False),
        pa.field("pending", pa.int64(), nullable=False),
        pa.field("unsent", pa.int64(), nullable=False),
        pa.field("queue_depth_max", pa.float64()),
        pa.field("base_fee", pa.float64()),
        pa.field("desync_nodes", pa.int64(), nullable=False),
        pa.field("faults_active", pa.int64(), nullable=False),
    ]
)


def window_ns_of(history: History) -> int:
    """The scenario's ``run.window`` (1 s when absent)."""
    return int(scenario_section(history, "run").get("window") or DEFAULT_WINDOW_NS)


def horizon_ns(history: History, messages: MessageArrays) -> int:
    """The run's ``t_end``; for a history without one, just past the latest message time."""
    t_end = run_t_end_ns(history)
    if t_end > 0 or messages.count == 0:
        return t_end
    latest = [int(messages.t_intended.max())]
    if messages.t_committed.present.any():
        latest.append(int(messages.t_committed.values[messages.t_committed.present].max()))
    return max(latest) + 1


def window_edges(horizon: int, window_ns: int) -> I64:
    """Edges of windows ``[k*w, (k+1)*w)`` covering ``[0, horizon)``; the last ends at horizon."""
    if horizon <= 0:
        return np.zeros(0, dtype=np.int64)
    count = math.ceil(horizon / window_ns)
    edges = np.arange(count + 1, dtype=np.int64) * window_ns
    edges[-1] = horizon
    return edges


def window_metrics(
    history: History,
    window_ns: int | None = None,
    *,
    messages: MessageArrays | None = None,
    episodes: list[DesyncEpisode] | None = None,
    faults: list[FaultWindow] | None = None,
) -> pa.Table:
    """One row per window (see the module docstring); an empty table for an empty run."""
    messages = messages if messages is not None else MessageArrays.from_history(history)
    table, _ = window_table(history, window_ns, messages, episodes, faults)
    return table


def window_table(
    history: History,
    window_ns: int | None,
    messages: MessageArrays,
    episodes: list[DesyncEpisode] | None = None,
    faults: list[FaultWindow] | None = None,
) -> tuple[pa.Table, IntervalLoad]:
    """The window table and the interval load behind it (the failure threshold reuses it)."""
    width = window_ns if window_ns is not None else window_ns_of(history)
    if width <= 0:
        raise ValueError(f"window must be a positive number of ns, got {width}")
    horizon = horizon_ns(history, messages)
    edges = window_edges(horizon, width)
    load = interval_load(messages, edges, latency_by="committed", clip_last=True)
    episodes = episodes if episodes is not None else desync_episodes(history)
    faults = faults if faults is not None else fault_windows(history)

    latencies = load.latencies_ns
    # Each window's p50 and p99 in one partition (of a copy: the failure threshold reads
    # these arrays again).
    middle_tail = [percentiles(v, (50.0, 99.0)) if v.size else [None, None] for v in latencies]
    columns = {
        "t_start_ns": load.starts,
        "t_end_ns": load.ends,
        "offered_per_s": [rounded(v) for v in load.offered_per_s.tolist()],
        "throughput_per_s": [rounded(v) for v in load.throughput_per_s.tolist()],
        "p50_ms": [ms(p50) for p50, _ in middle_tail],
        "p99_ms": [ms(p99) for _, p99 in middle_tail],
        "max_ms": [ms(float(v.max())) if v.size else None for v in latencies],
        "jitter_ms": [
            ms(float(np.std(v.astype(np.float64)))) if v.size else None for v in latencies
        ],
        "dropped": load.dropped,
        "rejected": load.rejected,
        "lost": load.lost,
        "pending": load.pending,
        "unsent": load.unsent,
        "queue_depth_max": _queue_depth_max(history, edges),
        "base_fee": _last_base_fee(history, edges),
        "desync_nodes": _desync_nodes(episodes, edges, horizon),
        "faults_active": _faults_active(faults, edges, horizon),
    }
    return pa.table(columns, schema=WINDOW_SCHEMA), load


def _queue_depth_max(history: History, edges: I64) -> list[float | None]:
    # Every sample's value (``analysis/samples.py``: the rows are written as they change).
    t_depth, depth = grid_series(history, EventKind.QUEUE_DEPTH)
    t_max, depth_max = grid_series(history, EventKind.QUEUE_DEPTH_MAX)
    t, value = np.concatenate([t_depth, t_max]), np.concatenate([depth, depth_max])
    n = max(len(edges) - 1, 0)
    index = bin_index(t, np.ones(t.size, dtype=np.bool_), edges, clip_last=True)
    peak = np.full(n, -np.inf)
    chosen = index >= 0
    np.maximum.at(peak, index[chosen], value[chosen])
    return [None if math.isinf(v) else float(v) for v in peak.tolist()]


def _last_base_fee(history: History, edges: I64) -> list[float | None]:
    rows = events_of(history, EventKind.BASE_FEE)
    n = max(len(edges) - 1, 0)
    valid = ~np.isnan(rows.value)
    index = bin_index(rows.t, valid, edges, clip_last=True)
    last: list[float | None] = [None] * n
    for window, value in zip(index.tolist(), rows.value.tolist()):  # time order: last wins
        if window >= 0:
            last[window] = float(value)
    return last


def _desync_nodes(episodes: list[DesyncEpisode], edges: I64, horizon: int) -> I64:
    n = max(len(edges) - 1, 0)
    by_node: dict[str | None, np.ndarray] = {}
    for episode in episodes:
        end = episode.t_end_ns if episode.t_end_ns is not None else horizon
        span = overlap_range(edges, episode.t_start_ns, end, clip_last=True)
        if span is None:
            continue
        covered = by_node.setdefault(episode.node, np.zeros(n, dtype=np.bool_))
        covered[span[0] : span[1] + 1] = True
    total = np.zeros(n, dtype=np.int64)
    for covered in by_node.values():
        total += covered
    return total


def _faults_active(faults: list[FaultWindow], edges: I64, horizon: int) -> I64:
    n = max(len(edges) - 1, 0)
    change = np.zeros(n + 1, dtype=np.int64)
    for fault in faults:
        end = fault.t_end_ns if fault.t_end_ns is not None else horizon
        span = overlap_range(edges, fault.t_start_ns, end, clip_last=True)
        if span is not None:
            change[span[0]] += 1
            change[span[1] + 1] -= 1
    return np.cumsum(change)[:n]
