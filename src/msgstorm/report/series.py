"""Plot-ready series drawn from a run's history and analysis, for the HTML reports.

Place in the pipeline: History + Analysis -> **series** -> figures -> report.html. Everything
here is a view of what analysis already defines (latency is ``t_committed - t_intended`` of
committed messages, percentiles nearest-rank, propagation ``t_delivered - t_sent``); it adds
only what a plot needs beyond the summary: the whole percentile spectrum, propagation split by
origin and destination region, the spans to shade (faults, backpressure, desync) and the queue
depth samples, thinned so a long run still makes a small page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from msgstorm.analysis import Analysis
from msgstorm.analysis._common import events_of, message_rows
from msgstorm.analysis.desync import desync_episodes
from msgstorm.analysis.faults import fault_windows
from msgstorm.analysis.queue import RELEASED_STATES, depth_samples
from msgstorm.history.reader import History

__all__ = [
    "RegionMatrix",
    "Span",
    "latency_ns",
    "latency_ns_of",
    "percentile_spectrum",
    "queue_depth_series",
    "region_matrix",
    "shaded_spans",
    "validation_backlog_series",
]

NS_PER_S = 1e9
NS_PER_MS = 1e6
MAX_POINTS = 2_000  # per line: enough for a screen, small enough for the page

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


def latency_ns(history: History) -> I64:
    """Latency of every committed message (as analysis defines it), unsorted."""
    codes, names = history.codes("messages", "status")
    if "committed" not in names:
        return np.zeros(0, dtype=np.int64)
    committed = codes == names.index("committed")
    del codes
    t_committed = history.column("messages", "t_committed")
    committed &= np.asarray(pc.is_valid(t_committed).to_numpy(), dtype=np.bool_)
    latency: I64 = np.asarray(t_committed.fill_null(0).to_numpy(), dtype=np.int64)[committed]
    del t_committed
    intended = np.asarray(history.column("messages", "t_intended").to_numpy(), dtype=np.int64)
    latency -= intended[committed]
    return latency


def latency_ns_of(messages: pa.Table) -> I64:
    """Latency of the committed messages of a ``messages`` table (needs the columns status,
    t_intended, t_committed only, so a caller may read just those)."""
    committed = pc.and_(pc.equal(messages.column("status"), "committed"),
                        pc.is_valid(messages.column("t_committed")))
    chosen = messages.filter(committed)
    t_committed = np.asarray(chosen.column("t_committed").to_numpy(), dtype=np.int64)
    t_intended = np.asarray(chosen.column("t_intended").to_numpy(), dtype=np.int64)
    return t_committed - t_intended


def percentile_spectrum(latencies_ns: I64, points: int = 240) -> tuple[list[float], list[float], list[float]]:
    """(percentile, 1/(1-p), latency ms) from p=0 up to the max, spaced evenly on 1/(1-p)'s
    log scale as HdrHistogram plots are; nearest-rank, so every value is an observed latency.
    The last point is the maximum, placed at 1/(1-p) = n (one past the last finite step)."""
    n = int(latencies_ns.size)
    if n == 0:
        return [], [], []
    ordered = np.sort(latencies_ns)
    decades = math.log10(n) if n > 1 else 0.0
    inverse = np.unique(np.concatenate([np.logspace(0.0, decades, points), [float(n)]]))
    p = 1.0 - 1.0 / inverse
    rank = np.clip(np.ceil(p * n).astype(np.int64), 1, n) - 1
    values_ms = ordered[rank] / NS_PER_MS
    return (
        [round(100.0 * v, 6) for v in p.tolist()],
        [round(v, 6) for v in inverse.tolist()],
        [round(v, 3) for v in values_ms.tolist()],
    )


@dataclass(frozen=True)
class RegionMatrix:
    """Gossip propagation from origin region (rows) to receiving region (columns), in ms."""

    origins: list[str]
    destinations: list[str]
    p50_ms: list[list[float | None]]
    p99_ms: list[list[float | None]]
    count: list[list[int]]


def region_matrix(history: History) -> RegionMatrix:
    """Per (origin, destination) region: p50/p99 of ``t_delivered - t_sent``. The origin is the
    region of the node the message was sent through; nodes not in the run's node list count
    as region "unknown". Deliveries of unknown messages or without ``t_sent`` are skipped."""
    region_of = {node["name"]: node.get("region", "unknown") for node in history.nodes}
    regions = sorted(set(region_of.values()))
    if history.num_rows("deliveries") == 0 or history.num_rows("messages") == 0:
        empty: list[list[float | None]] = [[None] * len(regions) for _ in regions]
        return RegionMatrix(regions, regions, empty, [row[:] for row in empty],
                            [[0] * len(regions) for _ in regions])
    # Node names as dictionary codes: a handful of names, not one Python string per row.
    origin_codes, origin_names = history.codes("messages", "node")
    destination_codes, destination_names = history.codes("deliveries", "node")
    names = sorted(set(region_of) | set(origin_names) | set(destination_names))
    regions = sorted({region_of.get(name, "unknown") for name in names})
    region_index = {region: i for i, region in enumerate(regions)}
    node_region = {name: region_index[region_of.get(name, "unknown")] for name in names}
    origin_lookup = np.array([node_region[name] for name in origin_names], dtype=np.int64)
    destination = np.array([node_region[name] for name in destination_names], dtype=np.int64)[destination_codes]
    del destination_codes
    delivered_id = np.asarray(history.column("deliveries", "msg_id").to_numpy(), dtype=np.int64)
    ids = np.asarray(history.column("messages", "msg_id").to_numpy(), dtype=np.int64)
    row, known = message_rows(ids, delivered_id)
    del ids, delivered_id
    origin = origin_lookup[origin_codes[row]]
    del origin_codes
    t_sent_column = history.column("messages", "t_sent")
    known &= np.asarray(pc.is_valid(t_sent_column).to_numpy(), dtype=np.bool_)[row]
    t_sent = np.asarray(t_sent_column.fill_null(0).to_numpy(), dtype=np.int64)[row]
    del t_sent_column, row
    t_delivered = np.asarray(history.column("deliveries", "t_delivered").to_numpy(), dtype=np.int64)
    propagation = (t_delivered - t_sent)[known]
    pair = (origin * len(regions) + destination)[known]

    size = len(regions)
    p50: list[list[float | None]] = [[None] * size for _ in range(size)]
    p99: list[list[float | None]] = [[None] * size for _ in range(size)]
    count = [[0] * size for _ in range(size)]
    by_pair = np.argsort(pair, kind="stable")
    bounds = np.searchsorted(pair[by_pair], np.arange(size * size + 1))
    for code in range(size * size):
        values = propagation[by_pair[bounds[code]:bounds[code + 1]]]
        if values.size == 0:
            continue
        i, j = divmod(code, size)
        p50[i][j] = round(float(np.percentile(values, 50.0, method="inverted_cdf")) / NS_PER_MS, 3)
        p99[i][j] = round(float(np.percentile(values, 99.0, method="inverted_cdf")) / NS_PER_MS, 3)
        count[i][j] = int(values.size)
    return RegionMatrix(regions, regions, p50, p99, count)


@dataclass(frozen=True)
class Span:
    """A time span to shade on time plots: ``kind`` is "fault", "backpressure" or "desync"."""

    kind: str
    label: str
    start_s: float
    end_s: float


def shaded_spans(history: History, analysis: Analysis) -> list[Span]:
    """Fault windows, backpressure-engaged spans and desync episodes (per node), in seconds.
    A span still open at the run's end is drawn up to the end."""
    t_end_s = float(analysis.summary.get("duration_s") or 0.0)
    spans: list[Span] = []
    for fault in fault_windows(history):
        end = fault.t_end_ns / NS_PER_S if fault.t_end_ns is not None else t_end_s
        label = f"fault {fault.fault_id}: {fault.kind}" if fault.fault_id is not None else f"fault: {fault.kind}"
        spans.append(Span("fault", label, fault.t_start_ns / NS_PER_S, end))
    engaged_since: tuple[float, str] | None = None
    for change in analysis.timelines.get("backpressure", []):
        t_s, state = change["t_ns"] / NS_PER_S, str(change["state"])
        engaged = state not in RELEASED_STATES
        if engaged and engaged_since is None:
            engaged_since = (t_s, state)
        elif not engaged and engaged_since is not None:
            spans.append(Span("backpressure", f"backpressure: {engaged_since[1]}", engaged_since[0], t_s))
            engaged_since = None
    if engaged_since is not None:
        spans.append(Span("backpressure", f"backpressure: {engaged_since[1]}", engaged_since[0], t_end_s))
    for episode in desync_episodes(history):
        end = episode.t_end_ns / NS_PER_S if episode.t_end_ns is not None else t_end_s
        spans.append(Span("desync", f"desync: {episode.node} (gap {episode.max_height_gap})",
                          episode.t_start_ns / NS_PER_S, end))
    return spans


def queue_depth_series(history: History, max_points: int = MAX_POINTS) -> tuple[list[float], list[float]]:
    """(t seconds, depth) of the sequencer queue: ``queue_depth_max`` samples (the peak since
    the previous sample, so spikes between samples still show), else ``queue_depth``; thinned
    to at most ``max_points`` by keeping each bucket's peak."""
    samples = depth_samples(history)
    t, depth = (samples.t_max, samples.depth_max) if samples.t_max.size else (samples.t, samples.depth)
    if t.size > max_points:
        bucket = (np.arange(t.size) * max_points) // t.size
        starts = np.searchsorted(bucket, np.arange(max_points))
        t = t[starts]
        depth = np.maximum.reduceat(depth, starts)
    return [round(v / NS_PER_S, 6) for v in t.tolist()], [float(v) for v in depth.tolist()]


def validation_backlog_series(history: History, max_points: int = MAX_POINTS
                              ) -> tuple[list[float], list[float], list[float]]:
    """(t seconds, largest node backlog, sum over the sampled nodes) per ``validation_backlog``
    sample time, thinned to at most ``max_points`` samples by keeping each bucket's peak."""
    rows = events_of(history, "validation_backlog")
    if rows.t.size == 0:
        return [], [], []
    times, starts = np.unique(rows.t, return_index=True)
    largest = np.maximum.reduceat(rows.value, starts)
    total = np.add.reduceat(rows.value, starts)
    if times.size > max_points:
        bucket = (np.arange(times.size) * max_points) // times.size
        keep = np.searchsorted(bucket, np.arange(max_points))
        times = times[keep]
        largest = np.maximum.reduceat(largest, keep)
        total = np.maximum.reduceat(total, keep)
    return ([round(v / NS_PER_S, 6) for v in times.tolist()], [round(v, 3) for v in largest.tolist()],
            [round(v, 3) for v in total.tolist()])
