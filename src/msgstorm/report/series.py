"""Plot-ready series drawn from a run's history and analysis, for the HTML reports.

Place in the pipeline: History + Analysis -> **series** -> figures -> report.html. Everything
here is a view of what analysis already defines (latency is ``t_committed - t_intended`` of
committed messages, percentiles nearest-rank, propagation ``t_delivered - t_sent``); it adds
only what a plot needs beyond the summary: the whole percentile spectrum, propagation split by
origin and destination region, the spans to shade (faults, backpressure, desync) and the queue
depth samples. A fault in force from the run's start to the end of its traffic (an oracle an
hour late all day) is a condition of the run, not an incident: it is not shaded
(``whole_run_faults``; the page's faults table says so). Each plot gets a few thousand points at most, what a screen shows: a long
series is thinned (``thin_lowest_highest``, ``bucket_peaks``) so that spikes and dips stay,
and a long run still makes a small page that draws at once.

Columns come from ``History.ints`` and ``History.codes``, the read-only copies the analysis
used (a million messages: nothing is read again); a run of one region takes its propagation
from the summary rather than from the deliveries.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from msgstorm.analysis import Analysis
from msgstorm.analysis._common import MessageArrays, events_of, percentiles, run_t_end_ns
from msgstorm.analysis.connections import down_spans
from msgstorm.analysis.cpu import machine_cpu, process_cpu
from msgstorm.analysis.desync import desync_episodes
from msgstorm.analysis.faults import FaultWindow, fault_windows
from msgstorm.analysis.propagation import joined_propagation
from msgstorm.analysis.queue import RELEASED_STATES, depth_samples, waiting_series
from msgstorm.analysis.summary_chain import RegionPropagation
from msgstorm.history.events import EventKind
from msgstorm.history.reader import History

__all__ = [
    "MACHINE_LINE",
    "MAX_POINTS",
    "CpuLine",
    "RegionMatrix",
    "Span",
    "bucket_peaks",
    "bucket_starts",
    "cpu_series",
    "latency_ns",
    "latency_ns_of",
    "percentile_spectrum",
    "queue_depth_series",
    "region_matrix",
    "shaded_spans",
    "thin_lowest_highest",
    "validation_backlog_series",
    "whole_run_faults",
]

NS_PER_S = 1e9
NS_PER_MS = 1e6
MAX_POINTS = 2_000  # per line or set of bars: enough for a screen, small enough for the page

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


def latency_ns(history: History) -> I64:
    """Latency of every committed message (as analysis defines it), unsorted."""
    codes, names = history.codes("messages", "status")
    if "committed" not in names:
        return np.zeros(0, dtype=np.int64)
    committed = codes == names.index("committed")
    del codes
    t_committed, present = history.ints("messages", "t_committed")
    committed &= present
    latency: I64 = t_committed[committed]
    del t_committed, present
    latency -= history.ints("messages", "t_intended")[0][committed]
    return latency


def latency_ns_of(messages: pa.Table) -> I64:
    """Latency of the committed messages of a ``messages`` table (needs the columns status,
    t_intended, t_committed only, so a caller may read just those)."""
    import pyarrow.compute as pc  # here, not at import: ``msgstorm report`` does without it

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
    decades = math.log10(n) if n > 1 else 0.0
    inverse = np.unique(np.concatenate([np.logspace(0.0, decades, points), [float(n)]]))
    p = 1.0 - 1.0 / inverse
    rank = np.clip(np.ceil(p * n).astype(np.int64), 1, n) - 1
    rank[-1] = n - 1  # the maximum (nearest rank at 1 - 1/n is the second largest)
    # Only these ranks are read: selected in one partition, not a sort of every latency
    # (a million latencies: 25 ms against 55).
    ordered = np.partition(latencies_ns, np.unique(rank))
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


# The summary's typed ``propagation_ms`` (``Summary.propagation_ms``).
ByReceiver = Mapping[str, RegionPropagation]


def region_matrix(history: History, by_receiver: ByReceiver | None = None) -> RegionMatrix:
    """Per (origin, destination) region: p50/p99 of ``t_delivered - t_sent``. The origin is the
    region of the node the message was sent through; nodes not in the run's node list count
    as region "unknown". Deliveries of unknown messages or without ``t_sent`` are skipped.
    Percentiles are nearest-rank, as analysis takes them.

    ``by_receiver``: the summary's ``propagation_ms`` (the same deliveries joined to the same
    messages, grouped by the receiving region only). A run of one region has one cell, and
    that cell is its region's entry there (a ``RegionPropagation``), so the deliveries are not
    read again."""
    region_of = {node["name"]: node.get("region", "unknown") for node in history.nodes}
    regions = sorted(set(region_of.values()))
    if history.num_rows("deliveries") == 0 or history.num_rows("messages") == 0:
        return _region_matrix(regions, [])
    # Node names as dictionary codes: a handful of names, not one Python string per row.
    origin_codes, origin_names = history.codes("messages", "node")
    destination_names = history.codes("deliveries", "node")[1]
    names = sorted(set(region_of) | set(origin_names) | set(destination_names))
    regions = sorted({region_of.get(name, "unknown") for name in names})
    if len(regions) == 1 and by_receiver is not None:
        cell = by_receiver.get(regions[0])
        if cell is None:
            return RegionMatrix(regions, regions, [[None]], [[None]], [[0]])
        return RegionMatrix(regions, regions, [[cell.p50]], [[cell.p99]], [[cell.count]])

    region_index = {region: i for i, region in enumerate(regions)}
    msg_id = history.ints("messages", "msg_id")[0]
    t_sent, present = history.ints("messages", "t_sent")
    if len(regions) == 1:  # one cell: no need to know who sent or received what
        propagation, _ = joined_propagation(history, msg_id, t_sent, present, lambda name: 0)
        return _region_matrix(regions, [propagation])
    # The (origin, destination) cell of each delivery, from one pass over the deliveries.
    origin_region = np.array([region_index[region_of.get(name, "unknown")] for name in origin_names], dtype=np.int32)
    propagation, cell_of = joined_propagation(history, msg_id, t_sent, present,
                                           lambda name: region_index[region_of.get(name, "unknown")],
                                           origin_region[origin_codes], len(regions))
    del msg_id, t_sent, present, origin_codes
    return _region_matrix(regions, _split_by(propagation, cell_of, len(regions) ** 2))


def _split_by(values: I64, group: npt.NDArray[np.int32], groups: int) -> list[I64]:
    """``[values[group == g] for g in range(groups)]``, from one stable sort of the group
    codes narrowed to the fewest bytes (a radix sort), not one pass over every row per group."""
    order = np.argsort(group.astype(np.min_scalar_type(max(groups - 1, 0))), kind="stable")
    return np.split(values[order], np.cumsum(np.bincount(group, minlength=groups))[:-1])


def _region_matrix(regions: list[str], cells: list[I64]) -> RegionMatrix:
    """The matrix from each cell's propagation times (row-major; none: every cell empty).
    Each cell's values are partitioned in place."""
    size = len(regions)
    p50: list[list[float | None]] = [[None] * size for _ in range(size)]
    p99: list[list[float | None]] = [[None] * size for _ in range(size)]
    count = [[0] * size for _ in range(size)]
    for code, values in enumerate(cells):
        if values.size == 0:
            continue
        i, j = divmod(code, size)
        median, tail = percentiles(values, (50.0, 99.0), scratch=True)
        p50[i][j] = round(float(median) / NS_PER_MS, 3)
        p99[i][j] = round(float(tail) / NS_PER_MS, 3)
        count[i][j] = int(values.size)
    return RegionMatrix(regions, regions, p50, p99, count)


@dataclass(frozen=True)
class Span:
    """A time span to shade on time plots: ``kind`` is "fault", "recovery" (a fault's end to
    its recovery, ``analysis/recovery.py``), "backpressure", "desync" or "disconnected" (a
    live client without its connection)."""

    kind: str
    label: str
    start_s: float
    end_s: float


def _spans_the_run(fault: FaultWindow, duration_ns: int | None) -> bool:
    """In force from the run's start to the end of its traffic (``run.duration``) or later."""
    return (duration_ns is not None and fault.t_start_ns <= 0
            and (fault.t_end_ns is None or fault.t_end_ns >= duration_ns))


def _duration_ns(history: History) -> int | None:
    duration = (history.scenario.get("run") or {}).get("duration")
    return int(duration) if isinstance(duration, (int, float)) else None


def whole_run_faults(history: History) -> list[FaultWindow]:
    """The faults in force for the whole run: from its start to the end of its traffic."""
    duration_ns = _duration_ns(history)
    return [fault for fault in fault_windows(history) if _spans_the_run(fault, duration_ns)]


def shaded_spans(history: History, analysis: Analysis) -> list[Span]:
    """Fault windows, backpressure-engaged spans, desync episodes (per node) and a live run's
    clients without their connection, in seconds; not a fault in force for the whole run
    (``whole_run_faults``), which would shade every chart from end to end.
    A span still open at the run's end is drawn up to the end."""
    result = analysis.result
    t_end_s = float(result.duration_s or 0.0)
    duration_ns = _duration_ns(history)
    spans: list[Span] = []
    whole: set[int | None] = set()
    for fault in fault_windows(history):
        if _spans_the_run(fault, duration_ns):
            whole.add(fault.fault_id)
            continue
        end = fault.t_end_ns / NS_PER_S if fault.t_end_ns is not None else t_end_s
        label = f"fault {fault.fault_id}: {fault.kind}" if fault.fault_id is not None else f"fault: {fault.kind}"
        spans.append(Span("fault", label, fault.t_start_ns / NS_PER_S, end))
    for said in result.faults:
        if said.fault_id in whole:
            continue
        if said.end_s is not None and said.recovery_s:
            spans.append(Span("recovery", f"recovery after fault {said.fault_id}: {said.recovery_s:g} s",
                              said.end_s, said.end_s + said.recovery_s))
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
    for client, start, end_ns in down_spans(history):
        end = end_ns / NS_PER_S if end_ns is not None else t_end_s
        spans.append(Span("disconnected", f"disconnected: {client}", start / NS_PER_S, end))
    return spans


def bucket_starts(n: int, buckets: int) -> I64:
    """The first index of each of ``buckets`` runs of consecutive points that split ``n``
    points as evenly as can be (sizes differ by one at most)."""
    return (np.arange(buckets, dtype=np.int64) * n + buckets - 1) // buckets


def thin_lowest_highest(values: F64, max_points: int = MAX_POINTS) -> I64:
    """Which points of a line to draw: all of them when there are at most ``max_points``;
    else the first, the last, and in each of ``max_points // 2 - 1`` runs of consecutive
    points the lowest and the highest (NaN counts as neither), in order. A spike or a dip
    of one point stays on the plot, as the eye would see it at full resolution."""
    n = int(values.size)
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    buckets = max(max_points // 2 - 1, 1)
    starts = bucket_starts(n, buckets)
    bucket = np.repeat(np.arange(buckets), np.diff(np.append(starts, n)))
    missing = np.isnan(values)
    # Sorted by bucket, then value: each bucket's first entry is its lowest (its highest, on
    # the negated values); a stable sort keeps the earliest of equal values.
    lowest = np.lexsort((np.where(missing, np.inf, values), bucket))[starts]
    highest = np.lexsort((np.where(missing, np.inf, -values), bucket))[starts]
    return np.unique(np.concatenate([[0, n - 1], lowest, highest]))


def bucket_peaks(values: F64 | I64, max_points: int = MAX_POINTS) -> tuple[I64, I64, F64 | I64]:
    """Bars of at most ``max_points``: (first point, last point, largest value) of each run
    of consecutive points; one point a run, as it is, when there are no more than that."""
    n = int(values.size)
    if n <= max_points:
        index = np.arange(n, dtype=np.int64)
        return index, index, values
    starts = bucket_starts(n, max_points)
    return starts, np.append(starts[1:], n) - 1, np.maximum.reduceat(values, starts)


def queue_depth_series(history: History, max_points: int = MAX_POINTS) -> tuple[list[float], list[float]]:
    """(t seconds, depth): the messages waiting in the queue-wait stage at each time one
    entered or left it (``analysis/queue.py``'s ``waiting_series``: the count the summary's
    queue depth max and mean are of, so the chart's peak is the card's max), thinned to at
    most ``max_points`` by keeping each bucket's peak. A run without that stage (a live
    node, which samples its own pool) draws its sampled queue instead: ``queue_depth_max``
    samples (the peak since the previous one), else ``queue_depth``."""
    t, waiting = waiting_series(MessageArrays.from_history(history), run_t_end_ns(history))
    depth = waiting.astype(np.float64)
    if not t.size:
        samples = depth_samples(history)
        t, depth = (samples.t_max, samples.depth_max) if samples.t_max.size else (samples.t, samples.depth)
    if t.size > max_points:
        starts = bucket_starts(t.size, max_points)
        t = t[starts]
        depth = np.maximum.reduceat(depth, starts)
    return [round(v / NS_PER_S, 6) for v in t.tolist()], [float(v) for v in depth.tolist()]


def validation_backlog_series(history: History, max_points: int = MAX_POINTS
                              ) -> tuple[list[float], list[float], list[float]]:
    """(t seconds, largest node backlog, sum over the sampled nodes) per ``validation_backlog``
    sample time, thinned to at most ``max_points`` samples by keeping each bucket's peak."""
    rows = events_of(history, EventKind.VALIDATION_BACKLOG)
    if rows.t.size == 0:
        return [], [], []
    times, starts = np.unique(rows.t, return_index=True)
    largest = np.maximum.reduceat(rows.value, starts)
    total = np.add.reduceat(rows.value, starts)
    if times.size > max_points:
        keep = bucket_starts(times.size, max_points)
        times = times[keep]
        largest = np.maximum.reduceat(largest, keep)
        total = np.maximum.reduceat(total, keep)
    return ([round(v / NS_PER_S, 6) for v in times.tolist()], [round(v, 3) for v in largest.tolist()],
            [round(v, 3) for v in total.tolist()])


@dataclass(frozen=True)
class CpuLine:
    """One process's CPUs busy between its samples (a live run's ``cpu_seconds``)."""

    name: str
    cpus: int | None  # the CPUs a server may run on at once (None: msgstorm's own process)
    t: list[float]  # seconds: the end of each span
    cores: list[float]  # mean CPUs busy over the span


# The machine's line in the CPU chart: every core's busy time, whoever used it.
MACHINE_LINE = "machine (every process)"


def cpu_series(history: History, max_points: int = MAX_POINTS) -> list[CpuLine]:
    """Each sampled process's busy CPUs over time, servers first, then the machine's total
    (``MACHINE_LINE``, its limit its cores) when the run sampled it; more samples than
    ``max_points`` are merged into that many spans (the samples are cumulative, so a merged
    span's value is its exact mean)."""
    processes = sorted(process_cpu(history).values(), key=lambda p: (p.cpus is None, p.name))
    machine = machine_cpu(history)
    lines = []
    for samples in [*processes, *([machine] if machine is not None else [])]:
        t, seconds = samples.t, samples.seconds
        if t.size < 2:
            continue
        if t.size - 1 > max_points:
            keep = np.append(bucket_starts(t.size - 1, max_points), t.size - 1)
            t, seconds = t[keep], seconds[keep]
        span = np.diff(t).astype(np.float64)
        ok = span > 0
        cores = np.diff(seconds)[ok] / (span[ok] / NS_PER_S)
        name = MACHINE_LINE if samples is machine else samples.name
        lines.append(CpuLine(name=name, cpus=samples.cpus, t=[round(v / NS_PER_S, 6) for v in t[1:][ok].tolist()],
                             cores=[round(v, 4) for v in cores.tolist()]))
    return lines
