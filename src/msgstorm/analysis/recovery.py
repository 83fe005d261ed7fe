"""Recovery after a fault: how long from a fault's end until the run is back to normal.

Place in the pipeline: analysis, from the history alone, so it reads the same on the
simulator and on a live target. For each fault window that ended (``analysis/faults.py``):

- the baseline, the normal to compare with: the messages intended in a clean stretch before
  the fault began. The stretch looked at is the ``BASELINE_NS`` before the fault began, from
  the end of the fault before if that is later (a nemesis's draws closer than
  ``BASELINE_NS`` apart), so it does not measure that fault. It is cut, counting back from
  the fault's start, into steps of ``CLEAN_STEP_NS``; a step is clean when no message
  intended in it was dropped (a layer shedding load, as under a burst, is past its normal;
  a message lost or refused is not counted: a fault loses those in flight as it begins, and
  a fee rule refuses underpriced messages at any load). The baseline is the last clean steps in a row: those right before the
  fault, or, when the steps there are not clean, the latest clean ones before them (a
  flash crash's partition during the burst is measured against the calm before the burst,
  not the burst). ``Recovery.baseline_ns`` says which span it was;
- the pre-fault p99 (``PRE_FAULT_P99_MEANING``, which summary.json's description of
  ``pre_fault_p99_ms`` is): the latency (from ``t_intended``) of the baseline's messages
  committed, whenever that was (keeping only those committed before the fault began would
  keep the fast ones near its start and pull the baseline down; one never committed is a
  loss, which the delivery check counts, and left out here so that one drop does not erase
  the baseline of a small run);
- from the fault's end, bins of ``BIN_NS``: the fault has recovered at the start of the first
  bin in which throughput (messages committed in the bin) is at least ``THROUGHPUT_SHARE`` of
  the offered load (messages intended in the bin) and the p99 latency of the messages
  intended in the bin (one not committed counts as endless) is at most ``P99_FACTOR`` x the
  pre-fault p99. A bin with nothing offered says nothing and is passed over.

``recovery_s`` is that bin's start minus the fault's end (0: back to normal at once); null
when the fault did not end or the run ended first ("not recovered"), or when there was no
baseline, and then ``NoBaseline`` says why (never "not recovered": nothing was measured):
another fault in force as this one began (``fault_in_force``), a fault before that left no
clean step to measure (``fault_before``), messages dropped in every step
(``shed_before``), or nothing committed in the clean steps or a p99 of 0
(``nothing_before``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from msgstorm.analysis._common import MessageArrays
from msgstorm.analysis.faults import FaultWindow

__all__ = ["BASELINE_NS", "BIN_NS", "CLEAN_STEP_NS", "NO_BASELINE_REASONS", "P99_FACTOR", "PRE_FAULT_P99_MEANING",
           "THROUGHPUT_SHARE", "NoBaseline", "NoBaselineReasonName", "Recovery", "recovery_times"]

BIN_NS = 100_000_000
BASELINE_NS = 5_000_000_000
CLEAN_STEP_NS = 1_000_000_000
NoBaselineReasonName = Literal["fault_in_force", "fault_before", "shed_before", "nothing_before"]
NO_BASELINE_REASONS: tuple[str, ...] = get_args(NoBaselineReasonName)
THROUGHPUT_SHARE = 0.9
P99_FACTOR = 2.0
# What ``Recovery.pre_fault_p99_ns`` measures, in one sentence: summary.json's description of
# ``pre_fault_p99_ms`` (``analysis/summary_model.py``) is this text.
PRE_FAULT_P99_MEANING = (
    f"p99 latency (from t_intended) of the messages intended in the baseline (baseline_s): the last "
    f"{CLEAN_STEP_NS / 1e9:g} s steps in a row, counted back from the fault's start over the {BASELINE_NS / 1e9:g} s "
    "before it (from the end of the fault before, if that is later), in which no message was dropped, and "
    "committed, whenever that was (during or after the fault too); a message never committed is left "
    "out (the delivery check counts it); null without a baseline (no_baseline says why)")


@dataclass(frozen=True)
class NoBaseline:
    """Why a fault has no baseline (one of ``NO_BASELINE_REASONS``), and the fault to blame
    when another fault is the reason."""

    reason: NoBaselineReasonName
    fault_id: int | None = None


@dataclass(frozen=True)
class Recovery:
    """One fault's recovery: the baseline p99 (ns), the span it was measured over
    (``[from, to)``, ns) and the time to recover (ns); None when it cannot be told (see the
    module docstring), with ``no_baseline`` saying why when there was nothing to compare with."""

    pre_fault_p99_ns: int | None
    recovery_ns: int | None
    baseline_ns: tuple[int, int] | None = None
    no_baseline: NoBaseline | None = None


def _p99(latency_ns: np.ndarray) -> float:
    """Nearest-rank p99 with ``inf`` for messages never committed."""
    ordered = np.sort(latency_ns)
    return float(ordered[max(0, int(np.ceil(0.99 * ordered.size)) - 1)])


def _baseline_start(window: FaultWindow, windows: list[FaultWindow]) -> tuple[int, FaultWindow | None] | NoBaseline:
    """Where the stretch looked at for ``window``'s baseline starts: ``BASELINE_NS`` before the
    fault began (not before the run's start), or at the end of a fault that ended later (returned with it); ``NoBaseline``
    when another fault was in force as it began."""
    start_ns, cut_by = max(0, window.t_start_ns - BASELINE_NS), None
    for other in windows:
        if other is window or other.t_start_ns >= window.t_start_ns:
            continue
        if other.t_end_ns is None or other.t_end_ns > window.t_start_ns:
            return NoBaseline("fault_in_force", other.fault_id)
        if other.t_end_ns > start_ns:
            start_ns, cut_by = other.t_end_ns, other
    return start_ns, cut_by


def _clean_span(start_ns: int, end_ns: int, shed_sorted: np.ndarray) -> tuple[int, int] | None:
    """The last clean steps in a row in ``[start_ns, end_ns)``: steps of ``CLEAN_STEP_NS``
    counted back from ``end_ns`` (the first may be shorter), clean when no time of
    ``shed_sorted`` falls in it; None when no step is clean."""
    span_end: int | None = None
    span_start = end_ns
    step_end = end_ns
    while step_end > start_ns:
        step_start = max(start_ns, step_end - CLEAN_STEP_NS)
        shed = np.searchsorted(shed_sorted, step_end, side="left") > np.searchsorted(shed_sorted, step_start, side="left")
        if not shed:
            span_end = step_end if span_end is None else span_end
            span_start = step_start
        elif span_end is not None:
            break
        step_end = step_start
    return None if span_end is None else (span_start, span_end)


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
    shed_sorted = np.sort(intended[messages.status["dropped"]])
    out: list[Recovery] = []
    for window in windows:
        if window.t_end_ns is None:
            out.append(Recovery(None, None))
            continue
        looked_at = _baseline_start(window, windows)
        if isinstance(looked_at, NoBaseline):
            out.append(Recovery(None, None, no_baseline=looked_at))
            continue
        looked_from, cut_by = looked_at
        span = _clean_span(looked_from, window.t_start_ns, shed_sorted)
        if span is None:  # nothing left after the fault before, every step shed, or a fault at 0
            missing = (NoBaseline("fault_before", cut_by.fault_id) if cut_by is not None
                       else NoBaseline("shed_before") if looked_from < window.t_start_ns
                       else NoBaseline("nothing_before"))
            out.append(Recovery(None, None, no_baseline=missing))
            continue
        first = int(np.searchsorted(intended_sorted, span[0], side="left"))
        last = int(np.searchsorted(intended_sorted, span[1], side="left"))
        before = latency_sorted[first:last]
        before = before[np.isfinite(before)]  # a loss is the delivery check's; here, latencies
        baseline = _p99(before) if before.size else np.inf
        if not 0 < baseline < np.inf:
            out.append(Recovery(None, None, no_baseline=NoBaseline("nothing_before")))
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
        out.append(Recovery(int(baseline), recovered, span))
    return out
