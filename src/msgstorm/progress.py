"""The progress snapshot: what a running target publishes while it runs.

Place in the pipeline: beside the history. A target (the simulator today, a live driver
later) hands a ``ProgressSnapshot`` to its progress callback every so often; the terminal
bar and the Prometheus exporter (``report/live.py``, ``report/prometheus.py``) read it.
The snapshot carries raw counts and the commit latencies since the previous snapshot, never
a percentile: consumers that show one compute it with the analysis's definition
(``RecentLatencies``), so a live p99 and the final summary's p99 mean the same thing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

__all__ = ["Progress", "ProgressSnapshot", "RecentLatencies", "nearest_rank"]


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


Progress = Callable[[ProgressSnapshot], None]


def nearest_rank(values: np.ndarray, q: float) -> float:
    """The exact nearest-rank percentile ``q`` (0..100) of a non-empty array, the
    analysis's definition (``analysis/_common.py``): the smallest value with at least q%
    of the values at or below it."""
    return float(np.percentile(values, q, method="inverted_cdf"))


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
