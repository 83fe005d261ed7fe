"""Latency, its stages, and jitter: the "where does time go" part of analysis.

Place in the pipeline: reads ``messages`` (via ``MessageArrays``) and feeds the summary's
``latency_ms``, ``latency_stages_ms`` and ``jitter_ms``; windows, capacity and failure reuse
``latency_ms`` and ``jitter_ms`` on their own latency populations.

- Latency is ``t_committed - t_intended`` of committed messages (no coordinated omission).
- Stages (committed messages only, so the stages split the latency reported above):
  propagation = t_received - t_intended (includes send lag), queue_wait = t_dequeued -
  t_received, service = t_sequenced - t_dequeued, block_wait = t_committed - t_sequenced.
- Jitter: population standard deviation of latency and p99 - p50.
- IPDV (RFC 3393) per stream: a stream is one ``agent``; its committed messages in
  ``t_intended`` order (ties by msg_id); IPDV of consecutive messages is the difference of
  their one-way delays, ``latency[i+1] - latency[i]``. Reported over all streams pooled as
  the mean and p99 of |IPDV|.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from msgstorm.analysis._common import I64, MessageArrays, ms, percentile, percentiles

__all__ = [
    "LATENCY_PERCENTILES",
    "STAGES",
    "ipdv_ms",
    "jitter_ms",
    "latency_and_jitter_ms",
    "latency_ms",
    "stage_breakdown_ms",
]

LATENCY_PERCENTILES: dict[str, float] = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p999": 99.9}
STAGES: tuple[str, ...] = ("propagation", "queue_wait", "service", "block_wait")
# Rows a chunk of ``_abs_diff_in_place`` takes (8 MB of differences at a time).
_DIFF_CHUNK = 1 << 20


def latency_and_jitter_ms(
    latency_ns: I64, scratch: bool = False
) -> tuple[dict[str, float | None], dict[str, float | None], dict[float, float]]:
    """``latency_ms`` and ``jitter_ms`` of one population from one partition of it, and the
    percentiles taken (ns, by q). ``scratch``: the caller's own array, reordered in place."""
    if latency_ns.size == 0:
        return ({name: None for name in (*LATENCY_PERCENTILES, "max", "mean")},
                {"stddev": None, "p99_minus_p50": None}, {})
    # What does not depend on the order first: the partition below reorders a scratch array.
    largest = float(latency_ns.max())
    mean = float(latency_ns.mean())
    stddev = _stddev(latency_ns)
    taken = dict(zip(LATENCY_PERCENTILES.values(), percentiles(latency_ns, tuple(LATENCY_PERCENTILES.values()),
                                                                  scratch=scratch)))
    latency: dict[str, float | None] = {name: ms(taken[q]) for name, q in LATENCY_PERCENTILES.items()}
    latency["max"] = ms(largest)
    latency["mean"] = ms(mean)
    jitter = {"stddev": ms(stddev), "p99_minus_p50": ms(taken[99.0] - taken[50.0])}
    return latency, jitter, taken


def latency_ms(latency_ns: I64) -> dict[str, float | None]:
    """{p50, p90, p99, p999, max, mean} in ms; every value None for an empty population."""
    return latency_and_jitter_ms(latency_ns)[0]


def jitter_ms(latency_ns: I64) -> dict[str, float | None]:
    """{stddev, p99_minus_p50} in ms; None for an empty population."""
    return latency_and_jitter_ms(latency_ns)[1]


def _stage_ns(messages: MessageArrays, start: str | None, end: str) -> I64:
    """The stage's durations of committed messages (``start`` None: from ``t_intended``),
    in row order. The two columns are read a Parquet part at a time and only the durations
    are kept: at ten million messages the stage's columns (180 MB) are never held."""
    committed = messages.committed
    spans = np.empty(int(np.count_nonzero(committed)), dtype=np.int64)
    filled = 0
    for rows, stamps in messages.stamp_parts([name for name in (start, end) if name is not None]):
        finish = stamps[-1]
        chosen = committed[rows] & finish.present
        begin = messages.t_intended[rows]
        if start is not None:
            chosen &= stamps[0].present
            begin = stamps[0].values
        block = finish.values[chosen]
        block -= begin[chosen]
        spans[filled:filled + block.size] = block
        filled += block.size
    return spans[:filled]


def stage_breakdown_ms(messages: MessageArrays) -> dict[str, dict[str, float | None]]:
    """{propagation, queue_wait, service, block_wait}: each {p50, p99} in ms."""
    # One stage at a time, a part of its two columns at a time.
    spans = {
        "propagation": (None, "t_received"),
        "queue_wait": ("t_received", "t_dequeued"),
        "service": ("t_dequeued", "t_sequenced"),
        "block_wait": ("t_sequenced", "t_committed"),
    }
    result: dict[str, dict[str, float | None]] = {}
    for stage in STAGES:
        values = _stage_ns(messages, *spans[stage])
        if values.size == 0:
            result[stage] = {"p50": None, "p99": None}
        else:
            # Only order statistics are taken of these spans: partitioning them in place
            # saves a copy as long as the run.
            p50, p99 = percentiles(values, (50.0, 99.0), scratch=True)
            result[stage] = {"p50": ms(p50), "p99": ms(p99)}
        del values  # before the next stage's are made: one stage's spans held at a time, not two
    return result


def ipdv_ms(messages: MessageArrays) -> dict[str, float | None]:
    """{ipdv_mean, ipdv_p99}: mean and p99 of |IPDV| in ms over every agent's stream."""
    committed = messages.committed
    agent = messages.agent[committed]  # read for this and dropped
    if agent.size and bool(np.all(agent == agent[0])) and _in_send_order(messages, committed):
        # One stream whose rows are in (t_intended, msg_id) order already (a run of one agent
        # writes them so): no sort, and every neighbour is in the same stream.
        del agent
        ipdv = _abs_diff_in_place(messages.latency_ns())  # latency_ns: this call's own array
    else:
        ids = messages.msg_id  # read for this and dropped; one temporary at a time
        by_id = ids[committed]
        del ids
        intended = messages.t_intended[committed]
        order = np.lexsort((by_id, intended, agent))
        del by_id, intended
        agent = agent[order]
        latency = messages.latency_ns()[order]
        del order
        same_stream = agent[1:] == agent[:-1]
        ipdv = np.abs(np.diff(latency))[same_stream]
    if ipdv.size == 0:
        return {"ipdv_mean": None, "ipdv_p99": None}
    return {"ipdv_mean": ms(float(ipdv.mean())), "ipdv_p99": ms(percentile(ipdv, 99.0, scratch=True))}


def _stddev(values: I64) -> float:
    """``np.std`` of ``values`` as float64, the same operations in the same order (the sum
    of the values, its mean, each value's square deviation summed: numpy's ``_var``), on one
    float copy changed in place rather than that copy and the deviations beside it (one
    float64 array fewer at the peak)."""
    deviation = values.astype(np.float64)
    mean = np.add.reduce(deviation, keepdims=True)
    np.true_divide(mean, deviation.size, out=mean)
    np.subtract(deviation, mean, out=deviation)
    np.multiply(deviation, deviation, out=deviation)
    return float(np.sqrt(np.add.reduce(deviation) / deviation.size))


def _abs_diff_in_place(values: I64) -> I64:
    """``np.abs(np.diff(values))`` written over ``values`` (the caller's own array) a chunk at
    a time, front to back, and returned as its first ``size - 1`` elements: each chunk's
    differences are taken before it is overwritten and it reads one element past itself, not
    yet written, so the run's latencies and their differences are never held side by side."""
    size = max(int(values.size) - 1, 0)
    for start in range(0, size, _DIFF_CHUNK):
        stop = min(start + _DIFF_CHUNK, size)
        step = values[start + 1:stop + 1] - values[start:stop]
        np.abs(step, out=step)
        values[start:stop] = step
    return values[:size]


def _in_send_order(messages: MessageArrays, committed: npt.NDArray[np.bool_]) -> bool:
    """Whether the committed messages' rows are in (t_intended, msg_id) order: each pair of
    consecutive committed rows, taken a chunk of rows at a time (with the last committed row
    of the chunk before), so no copy of the run's intended times or their steps is made."""
    msg_id: I64 | None = None  # read only if two intended times tie
    previous = np.zeros(0, dtype=np.intp)
    for start in range(0, committed.size, _DIFF_CHUNK):
        rows = np.flatnonzero(committed[start:start + _DIFF_CHUNK]) + start
        if rows.size == 0:
            continue
        rows = np.concatenate([previous, rows])
        step = np.diff(messages.t_intended[rows])
        if not bool((step >= 0).all()):
            return False
        tied = step == 0
        if tied.any():
            msg_id = messages.msg_id if msg_id is None else msg_id
            ids = msg_id[rows]
            if not bool((ids[1:] >= ids[:-1])[tied].all()):
                return False
        previous = rows[-1:]
    return True
