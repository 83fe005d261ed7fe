"""Fault windows from the history: when each scheduled fault was active.

Place in the pipeline: faults are scheduled operations recorded as ``fault_start`` /
``fault_end`` events (detail ``{"fault_id": int, "kind": str, ...}``); this module pairs them
by ``fault_id`` so windows can count active faults and the summary can list them, lining
anomalies up with fault windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from msgstorm.analysis._common import events_of, ms, seconds
from msgstorm.history.events import EventKind
from msgstorm.history.reader import History

if TYPE_CHECKING:
    from msgstorm.analysis.recovery import Recovery

__all__ = ["FaultWindow", "fault_windows", "faults_summary"]


@dataclass(frozen=True)
class FaultWindow:
    """One fault's active span; ``t_end_ns`` is None when it never ended (e.g. no restart)."""

    fault_id: int | None
    kind: str | None
    t_start_ns: int
    t_end_ns: int | None


def _key(detail: dict[str, Any], node: str | None) -> object:
    fault_id = detail.get("fault_id")
    return fault_id if fault_id is not None else ("no-id", detail.get("kind"), node)


def fault_windows(history: History) -> list[FaultWindow]:
    """Pair ``fault_start`` with the next ``fault_end`` of the same fault_id, in start order.

    A ``fault_end`` without a start is ignored; a start without an end stays open.
    """
    rows = events_of(history, EventKind.FAULT_START, EventKind.FAULT_END)
    open_faults: dict[object, list[int]] = {}
    windows: list[FaultWindow | None] = []
    details = rows.details()
    for t, kind, node, detail in zip(rows.t.tolist(), rows.kinds(), rows.nodes(), details):
        key = _key(detail, node)
        if kind == "fault_start":
            fault_id = detail.get("fault_id")
            windows.append(
                FaultWindow(
                    fault_id=int(fault_id) if isinstance(fault_id, (int, float)) else None,
                    kind=str(detail["kind"]) if "kind" in detail else None,
                    t_start_ns=int(t),
                    t_end_ns=None,
                )
            )
            open_faults.setdefault(key, []).append(len(windows) - 1)
        elif open_faults.get(key):
            index = open_faults[key].pop(0)
            started = windows[index]
            assert started is not None
            windows[index] = FaultWindow(started.fault_id, started.kind, started.t_start_ns, int(t))
    return [window for window in windows if window is not None]


def faults_summary(windows: list[FaultWindow], recoveries: list[Recovery] | None = None) -> list[dict[str, Any]]:
    """[{fault_id, kind, start_s, end_s, pre_fault_p99_ms, baseline_s, no_baseline, recovery_s}]
    for summary.json (end_s None while still active; the recovery, ``analysis/recovery.py``,
    None when it cannot be told; ``baseline_s`` the span [from, to) its p99 before was
    measured over; ``no_baseline`` {reason, fault_id} when there was none to measure)."""
    rows = []
    for index, window in enumerate(windows):
        recovery = recoveries[index] if recoveries else None
        span = recovery.baseline_ns if recovery is not None else None
        missing = recovery.no_baseline if recovery is not None else None
        rows.append({
            "fault_id": window.fault_id,
            "kind": window.kind,
            "start_s": seconds(window.t_start_ns),
            "end_s": seconds(window.t_end_ns),
            "pre_fault_p99_ms": ms(recovery.pre_fault_p99_ns) if recovery is not None else None,
            "baseline_s": [seconds(span[0]), seconds(span[1])] if span is not None else None,
            "no_baseline": {"reason": missing.reason, "fault_id": missing.fault_id} if missing is not None else None,
            "recovery_s": seconds(recovery.recovery_ns) if recovery is not None else None,
        })
    return rows
