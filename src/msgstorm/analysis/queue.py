"""What waits to be served, backpressure and base fee.

Place in the pipeline: one analysis step. The summary's ``queue`` counts what the queue-wait
stage measures, from the ``messages`` table: a message waits from ``t_received`` (it reached
the sequencer's intake, a producer's mempool, a live node) until ``t_dequeued`` (service
started, or it left the mempool into a block), whatever held it: the queue policy, the fee
waiting list, a lane's queue, a mempool, a down sequencer's backlog. ``max_depth`` is the
most messages waiting at once and ``mean_depth`` the mean over the run's time, from 0 to its
end (the waits' sum over that span: Little's law, exact, no sampling). A message still
waiting when the run ended (``pending``, received and never dequeued) waits to the end; one
that left otherwise before service (dropped, rejected) has no time it left recorded and is
not counted. Without any such row (a live broker, which sees no stage inside it) both are
null.

The target also samples the sequencer's own queue every ``run.sample_interval``
(``queue_depth`` = current depth, ``queue_depth_max`` = max since the previous sample; the
block backlog beside it; written as they change, read back at every sample by
``analysis/samples.py``) and records ``backpressure`` state changes (detail ``{"state":
...}``) and ``base_fee`` values; this module turns those into ``max_block_backlog``, the
summary's ``backpressure`` and ``base_fee``, the timelines the report plots, and the
depth-at-a-time lookup the failure threshold uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from msgstorm.analysis._common import (
    F64,
    I64,
    MessageArrays,
    events_of,
    plain_number,
    rounded,
    seconds,
)
from msgstorm.analysis.samples import grid_series
from msgstorm.history.events import EventKind
from msgstorm.history.reader import History
from msgstorm.history.schema import SIM_TARGET, is_simulated

__all__ = [
    "RELEASED_STATES",
    "DepthSamples",
    "backpressure_summary",
    "backpressure_timeline",
    "base_fee_summary",
    "base_fee_timeline",
    "depth_samples",
    "fee_unit",
    "queue_summary",
    "waiting_depth",
    "waiting_series",
]

# Backpressure states meaning "not engaged"; any other state (suspended, shedding, ...) is.
RELEASED_STATES: frozenset[str] = frozenset({"resumed", "normal", "released", "off", "clear"})


@dataclass(frozen=True)
class DepthSamples:
    """Queue depth samples in time order: current depth and max-since-previous-sample."""

    t: I64
    depth: F64
    t_max: I64
    depth_max: F64
    t_backlog: I64
    backlog: F64

    def depth_at(self, t_ns: int) -> float:
        """Depth of the last ``queue_depth`` sample at or before ``t_ns`` (0 before any)."""
        index = int(np.searchsorted(self.t, t_ns, side="right")) - 1
        return float(self.depth[index]) if index >= 0 else 0.0

    def waiting_at(self, t_ns: int) -> float:
        """Queue depth plus the block backlog (sequenced, waiting for block space) at ``t_ns``:
        the work the layer has accepted but not yet put into blocks."""
        index = int(np.searchsorted(self.t_backlog, t_ns, side="right")) - 1
        return self.depth_at(t_ns) + (float(self.backlog[index]) if index >= 0 else 0.0)


def depth_samples(history: History) -> DepthSamples:
    """The sequencer's samples as taken, at every sample time (``analysis/samples.py``:
    the rows are written as they change)."""
    t, depth = grid_series(history, EventKind.QUEUE_DEPTH)
    t_max, depth_max = grid_series(history, EventKind.QUEUE_DEPTH_MAX)
    t_backlog, backlog = grid_series(history, EventKind.BLOCK_BACKLOG)
    return DepthSamples(t, depth, t_max, depth_max, t_backlog, backlog)


def _waits(messages: MessageArrays, t_end_ns: int) -> tuple[I64, I64, float] | None:
    """The queue-wait stage's waits that last (module docstring): (their starts, their ends,
    each sorted; the sum of every wait in ns); None without any message in the stage.

    Waiting is the half-open span ``[t_received, t_dequeued)``, so one served as it arrives
    never waits, and one leaving as another arrives is not counted beside it."""
    received, dequeued = messages.t_received, messages.t_dequeued
    still = received.present & ~dequeued.present & messages.status["pending"]
    both = received.present & dequeued.present
    arrive = np.concatenate([received.values[both], received.values[still]])
    leave = np.concatenate([dequeued.values[both], np.full(int(np.count_nonzero(still)), t_end_ns, dtype=np.int64)])
    del received, dequeued, both, still
    if arrive.size == 0:
        return None
    leave = np.maximum(leave, arrive)  # a wait is never negative (a stamp past the end: none)
    waits = leave - arrive
    total_ns = float(waits.sum(dtype=np.float64))
    waited = waits > 0
    del waits
    return _sorted(arrive[waited]), _sorted(leave[waited]), total_ns


def waiting_depth(messages: MessageArrays, t_end_ns: int) -> tuple[int | None, float | None]:
    """(the most messages waiting at once, their mean number over ``[0, t_end_ns]``) of every
    message in the queue-wait stage (module docstring; ``_waits``); (None, None) without any.

    The most at once is at an arrival: the arrivals up to it less the departures up to it,
    both sorted (no event list of twice the messages is sorted)."""
    waits = _waits(messages, t_end_ns)
    if waits is None:
        return None, None
    arrive, leave, total_ns = waits
    most = 0
    if arrive.size:
        left = np.searchsorted(leave, arrive, side="right")  # departures at or before each arrival
        most = int((np.arange(1, arrive.size + 1, dtype=np.int64) - left).max())
    mean = total_ns / t_end_ns if t_end_ns > 0 else None
    return most, mean


def waiting_series(messages: MessageArrays, t_end_ns: int) -> tuple[I64, I64]:
    """(times, messages waiting from each on) at every time a message entered or left the
    queue-wait stage: the count ``waiting_depth`` takes its most and mean of (the same
    waits, departures before arrivals at equal times), so the series' peak is its most.
    Empty without any wait."""
    waits = _waits(messages, t_end_ns)
    if waits is None or not waits[0].size:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    arrive, leave, _ = waits
    times = np.concatenate([leave, arrive])
    order = np.argsort(times, kind="stable")  # a departure before an arrival at its time
    times = times[order]
    depth = np.cumsum(np.where(order < leave.size, -1, 1))
    last = np.append(times[1:] != times[:-1], True)  # the count after everything at a time
    return times[last], depth[last]


def _sorted(times: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """``times`` sorted; as they are when already in order (a one-node run's arrivals and
    departures are), without sorting them."""
    return times if bool(np.all(times[1:] >= times[:-1])) else np.sort(times)


def queue_summary(samples: DepthSamples, messages: MessageArrays, t_end_ns: int) -> dict[str, int | float | None]:
    """{max_depth, mean_depth: what waits in the queue-wait stage, at most and over time
    (``waiting_depth``), max_block_backlog: the most sequenced messages seen waiting for
    block space (samples)}."""
    most, mean = waiting_depth(messages, t_end_ns)
    return {
        "max_depth": most,
        "mean_depth": rounded(mean),
        "max_block_backlog": plain_number(float(samples.backlog.max())) if samples.backlog.size else None,
    }


def backpressure_timeline(history: History) -> list[dict[str, Any]]:
    """[{t_ns, state}] of every backpressure event, in time order."""
    rows = events_of(history, EventKind.BACKPRESSURE)
    return [
        {"t_ns": int(t), "state": str(detail.get("state", "unknown"))}
        for t, detail in zip(rows.t.tolist(), rows.details())
    ]


def backpressure_summary(timeline: list[dict[str, Any]]) -> dict[str, Any]:
    """{events: count, first_engaged_s: time of the first state not in RELEASED_STATES or None}."""
    engaged = [entry["t_ns"] for entry in timeline if entry["state"] not in RELEASED_STATES]
    return {"events": len(timeline), "first_engaged_s": seconds(engaged[0]) if engaged else None}


def base_fee_timeline(history: History) -> list[dict[str, Any]]:
    """[{t_ns, base_fee}] in time order (events with a null value are skipped)."""
    rows = events_of(history, EventKind.BASE_FEE)
    return [
        {"t_ns": int(t), "base_fee": float(value)}
        for t, value in zip(rows.t.tolist(), rows.value.tolist())
        if not np.isnan(value)
    ]


# A fee unit by its size in wei, as a person names it.
_WEI_UNITS = {1: "wei", 10**9: "gwei", 10**18: "ETH"}
GWEI = 10**9


def fee_unit(scenario: dict[str, Any]) -> str:
    """The unit a run's fees and base fee are in: on an EVM node ``live.anvil.fee_unit_wei``
    wei (gwei unless set), on the simulator gwei (a simulated chain's fees are given as a
    chain's day gives them: examples/black-thursday-2020.toml's base fee file)."""
    if is_simulated(str(scenario.get("target") or SIM_TARGET)):
        return _WEI_UNITS[GWEI]
    wei = int(((scenario.get("live") or {}).get("anvil") or {}).get("fee_unit_wei") or GWEI)
    return _WEI_UNITS.get(wei, f"x {wei:,} wei")


def base_fee_summary(timeline: list[dict[str, Any]], unit: str) -> dict[str, Any] | None:
    """{min, max, last, unit} of the base fee, or None when no base fee was recorded."""
    if not timeline:
        return None
    fees = [entry["base_fee"] for entry in timeline]
    return {
        "min": rounded(min(fees), 9),
        "max": rounded(max(fees), 9),
        "last": rounded(fees[-1], 9),
        "unit": unit,
    }
