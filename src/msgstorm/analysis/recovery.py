"""Recovery after a fault: how long from a fault's end until the run is back to normal.

Place in the pipeline: analysis, from the history alone, so it reads the same on the
simulator and on a live target. For each fault window that ended (``analysis/faults.py``):

- the pre-fault p99 (``PRE_FAULT_P99_MEANING``, which summary.json's description of
  ``pre_fault_p99_ms`` is): the latency (from ``t_intended``) of the messages intended in the
  ``BASELINE_NS`` before the fault began and committed, whenever that was (keeping only
  those committed before the fault began would keep the fast ones near its start and pull
  the baseline down; one never committed is a loss, which the delivery check counts, and
  left out here so that one drop does not erase the baseline of a small run). The window starts no earlier than the end of
  the fault before (a nemesis's draws closer than ``BASELINE_NS`` apart), so it does not
  measure that fault; with another fault in force when this one began, or a baseline that is
  not finite and above 0, there is no normal to compare with;
- from the fault's end, bins of ``BIN_NS``: the fault has recovered at the start of the first
  bin in which throughput (messages committed in the bin) is at least ``THROUGHPUT_SHARE`` of
  the offered load (messages intended in the bin) and the p99 latency of the messages
  intended in the bin (one not committed counts as endless) is at most ``P99_FACTOR`` x the
  pre-fault p99. A bin with nothing offered says nothing and is passed over.

``recovery_s`` is that bin's start minus the fault's end (0: back to normal at once); null
when the fault did not end, had no baseline (no messages before it, another fault in force
as it began, a baseline endless or 0), or the run ended first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from msgstorm.analysis._common import MessageArrays
from msgstorm.analysis.faults import FaultWindow

__all__ = ["BASELINE_NS", "BIN_NS", "P99_FACTOR", "PRE_FAULT_P99_MEANING", "THROUGHPUT_SHARE", "Recovery",
           "recovery_times"]

BIN_NS = 100_000_000
BASELINE_NS = 5_000_000_000
THROUGHPUT_SHARE = 0.9
P99_FACTOR = 2.0
# What ``Recovery.pre_fault_p99_ns`` measures, in one sentence: summary.json's description of
# ``pre_fault_p99_ms`` (``analysis/summary_model.py``) is this text.
PRE_FAULT_P99_MEANING = (
    f"p99 latency (from t_intended) of the messages intended in the {BASELINE_NS / 1e9:g} s before the fault began "
    "(from the end of the fault before, if that is later) and committed, whenever that was (during or after the "
    "fault too); a message never committed is left out (the delivery check counts it); null without such "
    "messages, with another fault in force as it began, or with a p99 of 0")


@dataclass(frozen=True)
class Recovery:
    """One fault's recovery: the baseline p99 (ns) and the time to recover (ns); None when
    it cannot be told (see the module docstring)."""

    pre_fault_p99_ns: int | None
    recovery_ns: int | None


def _p99(latency_ns: np.ndarray) -> float:
    """Nearest-rank p99 with ``inf`` for messages never committed."""
    ordered = np.sort(latency_ns)
    return float(ordered[max(0, int(np.ceil(0.99 * ordered.size)) - 1)])


def _baseline_start(window: FaultWindow, windows: list[FaultWindow]) -> int | None:
    """Where ``window``'s baseline starts: ``BASELINE_NS`` before the fault began, or at the
    end of a fault that ended later; None when another fault was in force as it began."""
    start_ns = window.t_start_ns - BASELINE_NS
    for other in windows:
        if other is window or other.t_start_ns >= window.t_start_ns:
            continue
        if other.t_end_ns is None or other.t_end_ns > window.t_start_ns:
            return None
        start_ns = max(start_ns, other.t_end_ns)
    return start_ns


def recovery_times(messages: MessageArrays, windows: list[FaultWindow], end_ns: int) -> list[Recovery]:
    """The recovery of each fault window, in the order given; ``end_ns`` the run's end."""
    if all(window.t_end_ns is None for window in windows):  # nothing to recover from: no column read
        return [Recovery(None, None) for _ in windows]
    intended = messages.t_intended
    committed = messages.t_committed.present
    t_committed = messages.t_committed.values
    if bool(np.all(intended[1:] >= intended[:-1])):  # rows in intended order already: no sort, no copies
        intended_sorted = intended
        latency_sorted = np.where(committed, t_committed - intended, np.inf).astype(np.float64, copy=False)
    else:
        order = np.argsort(intended, kind="stable")
        intended_sorted = intended[order]
        latency_sorted = np.where(committed[order], (t_committed - intended)[order], np.inf).astype(np.float64)
        del order
    commits = t_committed[committed]
    if not bool(np.all(commits[1:] >= commits[:-1])):
        commits.sort()
    out: list[Recovery] = []
    for window in windows:
        if window.t_end_ns is None:
            out.append(Recovery(None, None))
            continue
        baseline_from = _baseline_start(window, windows)
        if baseline_from is None:
            out.append(Recovery(None, None))
            continue
        first = int(np.searchsorted(intended_sorted, baseline_from, side="left"))
        last = int(np.searchsorted(intended_sorted, window.t_start_ns, side="left"))
        before = latency_sorted[first:last]
        before = before[np.isfinite(before)]  # a loss is the delivery check's; here, latencies
        baseline = _p99(before) if before.size else np.inf
        if not 0 < baseline < np.inf:
            out.append(Recovery(None, None))
            continue
        recovered: int | None = None
        for start in range(window.t_end_ns, end_ns, BIN_NS):
            stop = start + BIN_NS
            lo = int(np.searchsorted(intended_sorted, start, side="left"))
            hi = int(np.searchsorted(intended_sorted, stop, side="left"))
            if hi == lo:
                continue
            throughput = int(np.searchsorted(commits, stop, side="left") - np.searchsorted(commits, start, side="left"))
            if throughput >= THROUGHPUT_SHARE * (hi - lo) and _p99(latency_sorted[lo:hi]) <= P99_FACTOR * baseline:
                recovered = start - window.t_end_ns
                break
        out.append(Recovery(int(baseline), recovered))
    return out
