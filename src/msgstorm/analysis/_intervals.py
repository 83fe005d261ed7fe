"""Messages binned into consecutive time intervals: the shared core of windows and ramp steps.

Place in the pipeline: ``windows`` bins the whole run into fixed windows, ``capacity`` bins a
step ramp into its steps, and ``failure`` walks either; all three need the same counts
(offered, committed, dropped, rejected, lost, pending, unsent) and latency populations per interval, computed
here with vectorised numpy so a run of millions of messages stays quick.

Intervals are given by ``edges`` (n+1 increasing times): interval i is
``[edges[i], edges[i+1])``. Offered load and losses are attributed by ``t_intended``,
throughput by ``t_committed``; latency by either, as the caller chooses. (A ramp's steps
count their throughput their own way: ``capacity.ramp_steps``.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from msgstorm.analysis._common import F64, I64, NS_PER_S, Bools, MessageArrays

_BIN_CHUNK = 1 << 20  # times placed per searchsorted: its int64 answer stays a chunk long
# Intervals up to this many: the latencies are placed by interval a chunk at a time
# (``_grouped_latencies``, a count per interval and chunk); more, and they are sorted whole.
_PLACED_INTERVALS = 1 << 16


def bin_index(t: I64, present: Bools, edges: I64, clip_last: bool) -> npt.NDArray[np.int32]:
    """Interval index of each time; -1 when null or outside (times at/after the last edge go
    to the last interval when ``clip_last``). As int32, placed a chunk at a time: at ten
    million messages an int64 index a message is 80 MB, and the analysis holds two."""
    n = len(edges) - 1
    if n <= 0:
        return np.full(t.shape, -1, dtype=np.int32)
    index = np.empty(t.shape, dtype=np.int32)
    for start in range(0, t.size, _BIN_CHUNK):
        index[start:start + _BIN_CHUNK] = np.searchsorted(edges, t[start:start + _BIN_CHUNK], side="right")
    index -= 1  # in place: at ten million messages every array counts
    index[t >= edges[-1]] = n - 1 if clip_last else -1
    index[~present] = -1
    return index


def overlap_range(
    edges: I64, start_ns: int, end_ns: int, clip_last: bool
) -> tuple[int, int] | None:
    """Indices (first, last) of the intervals overlapping the span ``[start, end)`` (a span
    with ``end <= start`` is the instant ``start``); None when it overlaps none. With
    ``clip_last`` a span at or after the last edge falls in the last interval."""
    n = len(edges) - 1
    if n <= 0:
        return None
    end_ns = max(end_ns, start_ns)
    if start_ns >= edges[-1]:
        return (n - 1, n - 1) if clip_last else None
    if end_ns < edges[0] or (end_ns == edges[0] and end_ns > start_ns):
        return None
    first = max(0, int(np.searchsorted(edges, start_ns, side="right")) - 1)
    if end_ns > start_ns:
        last = int(np.searchsorted(edges, end_ns, side="left")) - 1
    else:
        last = first
    return (first, min(last, n - 1))


@dataclass(frozen=True)
class IntervalLoad:
    """Per-interval counts and latency populations."""

    edges: I64
    offered: I64  # messages with t_intended in the interval
    committed: I64  # messages with t_committed in the interval (ramp steps: see capacity.ramp_steps)
    dropped: I64  # by t_intended
    rejected: I64
    lost: I64
    pending: I64  # by t_intended: not settled when the run ended
    unsent: I64  # by t_intended: a live generator behind its schedule never sent them
    latencies_ns: list[I64]  # latency population per interval (attribution chosen by caller)

    @property
    def count(self) -> int:
        return max(len(self.edges) - 1, 0)

    @property
    def starts(self) -> I64:
        return self.edges[:-1]

    @property
    def ends(self) -> I64:
        return self.edges[1:]

    @property
    def lengths_s(self) -> F64:
        lengths = np.maximum(self.ends - self.starts, 1)
        return np.asarray(lengths, dtype=np.float64) / NS_PER_S

    @property
    def offered_per_s(self) -> F64:
        return np.asarray(self.offered / self.lengths_s, dtype=np.float64)

    @property
    def throughput_per_s(self) -> F64:
        return np.asarray(self.committed / self.lengths_s, dtype=np.float64)


def interval_load(
    messages: MessageArrays,
    edges: I64,
    *,
    latency_by: Literal["committed", "intended"],
    clip_last: bool,
) -> IntervalLoad:
    """Bin messages into the intervals given by ``edges``. The counts are taken first and the
    index the latencies are not grouped by is let go, so the latencies' grouping (the step's
    largest moment) holds one index beside it, not two."""
    n = max(len(edges) - 1, 0)
    intended_bin = bin_index(messages.t_intended, np.ones(messages.count, dtype=np.bool_), edges, clip_last)
    offered = bin_counts(intended_bin, n)
    dropped = bin_counts(intended_bin, n, messages.status["dropped"])
    rejected = bin_counts(intended_bin, n, messages.status["rejected"])
    lost = bin_counts(intended_bin, n, messages.status["lost"])
    pending = bin_counts(intended_bin, n, messages.status["pending"])
    unsent = bin_counts(intended_bin, n, messages.status["unsent"])
    committed = messages.committed
    committed_bin = bin_index(messages.t_committed.values, committed, edges, clip_last)
    committed_counts = bin_counts(committed_bin, n)

    if latency_by == "committed":
        latency_bin = committed_bin
    else:
        latency_bin = intended_bin
    del intended_bin, committed_bin
    if n <= _PLACED_INTERVALS:
        sizes = bin_counts(latency_bin, n, committed)
        latency = _grouped_latencies(messages, latency_bin, sizes)
        del latency_bin
    else:
        in_some = (latency_bin >= 0) & committed
        latency = messages.t_committed.values[in_some]
        latency -= messages.t_intended[in_some]
        groups = latency_bin[in_some]
        del in_some, latency_bin
        # A stable sort has one answer. Commits written in time order (a one-node run's
        # are) are grouped already: no sort.
        grouped = bool(np.all(groups[1:] >= groups[:-1]))
        order = None if grouped else np.argsort(groups, kind="stable")
        sizes = np.bincount(groups, minlength=n)[:n]
        del groups
        if order is not None:
            latency = latency[order]
        del order
    split = np.split(latency, np.cumsum(sizes)[:-1]) if n else []
    return IntervalLoad(
        edges=edges,
        offered=offered,
        committed=committed_counts,
        dropped=dropped,
        rejected=rejected,
        lost=lost,
        pending=pending,
        unsent=unsent,
        latencies_ns=[np.asarray(group, dtype=np.int64) for group in split],
    )


def _grouped_latencies(messages: MessageArrays, latency_bin: npt.NDArray[np.int32], sizes: I64) -> I64:
    """The latencies of committed messages with an interval (``latency_bin >= 0``), grouped
    by interval and in row order within each (what a stable sort by interval gives), placed
    a chunk of rows at a time at their interval's next free slots: the run's latencies are
    held once, in their final order, without the unsorted copy, the intervals of the kept
    ones and the sort's order beside them (docs/performance.md)."""
    latency = np.empty(int(sizes.sum()), dtype=np.int64)
    if _in_row_order(messages, latency_bin, latency):
        return latency
    following = np.cumsum(sizes) - sizes  # each interval's next free slot
    committed = messages.committed
    for rows in chunk_slices(latency_bin.size):
        chosen = committed[rows] & (latency_bin[rows] >= 0)
        groups = latency_bin[rows][chosen]
        if groups.size == 0:
            continue
        block = messages.t_committed.values[rows][chosen]
        block -= messages.t_intended[rows][chosen]
        # The chunk's latencies by interval, stably (a radix sort on 16 bits), each one's
        # rank among its interval's in the chunk, and their slots after the chunks before.
        order = np.argsort(groups.astype(np.uint16), kind="stable")
        groups = groups[order]
        counts = np.bincount(groups, minlength=sizes.size)
        rank = np.arange(groups.size, dtype=np.int64) - (np.cumsum(counts) - counts)[groups]
        latency[following[groups] + rank] = block[order]
        following += counts
    return latency


def _in_row_order(messages: MessageArrays, latency_bin: npt.NDArray[np.int32], latency: I64) -> bool:
    """Fill ``latency`` in row order, a chunk at a time, while the kept rows' intervals do not
    decrease (a one-node run commits in time order): then row order is already grouped by
    interval, the order the placement below gives. False, ``latency`` partly written, as soon
    as an interval decreases: the caller places them all."""
    committed = messages.committed
    written, last = 0, -1
    for rows in chunk_slices(latency_bin.size):
        chosen = committed[rows] & (latency_bin[rows] >= 0)
        groups = latency_bin[rows][chosen]
        if groups.size == 0:
            continue
        if groups[0] < last or bool(np.any(groups[1:] < groups[:-1])):
            return False
        last = int(groups[-1])
        block = latency[written:written + groups.size]
        np.subtract(messages.t_committed.values[rows][chosen], messages.t_intended[rows][chosen], out=block)
        written += groups.size
    return True


def chunk_slices(size: int) -> Iterator[slice]:
    """Slices of ``size`` rows a chunk at a time, for a pass whose temporaries are a chunk
    long rather than the run's."""
    return (slice(start, start + _BIN_CHUNK) for start in range(0, size, _BIN_CHUNK))


def bin_counts(index: npt.NDArray[np.int32], n: int, mask: Bools | None = None) -> I64:
    """Messages in each of ``n`` intervals (``index`` from ``bin_index``; -1 counts nowhere),
    only those in ``mask`` if given. A chunk at a time: ``bincount`` widens its input to
    int64, at ten million messages 80 MB beside the int32 index."""
    counts = np.zeros(n, dtype=np.int64)
    for rows in chunk_slices(index.size):
        part = index[rows]
        chosen = part >= 0 if mask is None else (part >= 0) & mask[rows]
        counts += np.bincount(part[chosen], minlength=n)[:n]
    return counts
