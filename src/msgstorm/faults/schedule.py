"""The fault schedule (the nemesis): when each fault starts and ends.

Shared by every target: the simulator applies these operations in virtual time, a live
target in wall time. Each start and end is written to the history as a
``fault_start``/``fault_end`` event carrying ``fault_id``, so analysis can line anomalies
up with fault windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from msgstorm.scenario.schema import CrashFault, FaultSpec, RestartFault, Scenario

__all__ = ["FaultOp", "fault_schedule"]


@dataclass(frozen=True, order=True)
class FaultOp:
    """One scheduled operation; sorting by (t_ns, order) gives the deterministic apply order."""

    t_ns: int
    order: int
    action: Literal["start", "end"]
    fault_id: int
    spec: FaultSpec


def fault_schedule(scenario: Scenario) -> list[FaultOp]:
    """Start and end operations for every fault, in time order (ends before starts at ties)."""
    ops: list[FaultOp] = []
    for fault_id, spec in enumerate(scenario.faults):
        if isinstance(spec, CrashFault):
            end = None if spec.restart_after is None else spec.at + spec.restart_after
        elif isinstance(spec, RestartFault):
            end = spec.at + spec.down  # stopped at ``at``, started again ``down`` later
        else:
            end = None if spec.duration is None else spec.at + spec.duration
        ops.append(FaultOp(spec.at, 2 * fault_id + 1, "start", fault_id, spec))
        if end is not None:
            ops.append(FaultOp(end, 2 * fault_id, "end", fault_id, spec))
    return sorted(ops, key=lambda op: (op.t_ns, op.action != "end", op.order))
