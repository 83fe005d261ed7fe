"""The progress snapshot: what a running target publishes while it runs.

Place in the pipeline: beside the history. A target (the simulator today, a live driver
later) hands a ``ProgressSnapshot`` to its progress callback every so often; the terminal
bar and the Prometheus exporter (``report/live.py``, ``report/prometheus.py``) read it.
The snapshot carries raw counts and the commit latencies since the previous snapshot, never
a percentile: consumers that show one compute it with the analysis's definition
(``RecentLatencies``), so a live p99 and the final summary's p99 mean the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

__all__ = ["Progress", "ProgressSnapshot", "RecentLatencies", "nearest_rank", "nearest_rank_index"]


def _no_latencies() -> np.ndarray:
    return np.zeros(0, dtype=np.int64)


@dataclass(frozen=True)
class ProgressSnapshot:
    """Counts so far at virtual (sim) or run (live) time ``t_ns``.

    ``sent`` counts messages the schedule has generated (it runs ahead of ``t_ns`` by up
    to one traffic window), ``emitted`` those whose send time has come; ``settled`` those
    with a terminal status. ``latencies_ns`` holds the commit latencies
    (``t_committed - t_intended``) of the messages committed since the previous snapshot.
    """

    t_ns: int
    end_ns: int
    sent: int
    emitted: int
    settled: int
    committed: int
    dropped: int
    rejected: int
    queue_depth: int
    base_fee: float | None
    faults_active: int
    leader: str
    latencies_ns: np.ndarray = field(default_factory=_no_latencies)
    final: bool = False
    # A live run's own: its target, the generator's latest send lag, receipts so far (every
    # consumer's), and publishes the client says will never arrive (dropped or refused).
    target: str = "sim"
    send_lag_ns: int | None = None
    receipts: int = 0


Progress = Callable[[ProgressSnapshot], None]


def nearest_rank_index(n: int, q: float) -> int:
    """The 0-based position, in sorted order, of the nearest-rank percentile ``q`` (0..100) of
    ``n`` values: rank ceil(q/100 x n), at least 1. Exact rational arithmetic on the decimal
    ``q`` as written: in floating point 99.9/100 x 1,000 is 999.0000000000001, whose ceiling
    would take the rank above (the maximum of 1,000 values for p99.9)."""
    if n <= 0:
        raise ValueError("a percentile of no values")
    share = Fraction(repr(float(q))) / 100
    if not 0 <= share <= 1:
        raise ValueError(f"a percentile between 0 and 100, got {q!r}")
    rank = math.ceil(share * n)
    return min(max(rank, 1), n) - 1


def nearest_rank(values: np.ndarray, q: float) -> float:
    """The exact nearest-rank percentile ``q`` (0..100) of a non-empty array, the
    analysis's definition (``analysis/_common.py`` takes its ranks from here): the smallest
    value with at least q% of the values at or below it."""
    position = nearest_rank_index(int(values.size), q)
    return float(np.partition(values, position)[position])


class RecentLatencies:
    """The latest ``keep`` commit latencies from a stream of snapshots, and their p99."""

    def __init__(self, keep: int = 4096) -> None:
        self.keep = keep
        self._window = np.zeros(0, dtype=np.int64)

    def add(self, latencies_ns: np.ndarray) -> None:
        if latencies_ns.size:
            self._window = np.concatenate([self._window, latencies_ns.astype(np.int64)])[-self.keep:]

    def p99_ms(self) -> float | None:
        if not self._window.size:
            return None
        return nearest_rank(self._window, 99.0) / 1e6
