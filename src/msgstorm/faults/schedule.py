"""The fault schedule (the nemesis): when each fault starts and ends.

Shared by every target: the simulator applies these operations in virtual time, a live
target in wall time. A ``nemesis`` entry (faults drawn from a seeded mix, one every
``every``) and a ``script`` entry (a compound script of faults at offsets, repeated) are
expanded here into the faults they stand for. Each start and end is written to the history as a
``fault_start``/``fault_end`` event carrying ``fault_id``, so analysis can line anomalies
up with fault windows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from msgstorm.scenario.schema import (
    CrashFault,
    FaultSpec,
    NemesisFault,
    OneFault,
    RestartFault,
    Scenario,
    ScriptFault,
    fault_entries,
)

__all__ = ["FaultOp", "concrete_faults", "drawn_nodes", "fault_entries", "fault_schedule"]


@dataclass(frozen=True, order=True)
class FaultOp:
    """One scheduled operation; sorting by (t_ns, order) gives the deterministic apply order."""

    t_ns: int
    order: int
    action: Literal["start", "end"]
    fault_id: int
    spec: FaultSpec
    source: int | None = None  # the [[faults]] entry (a nemesis or a script) it was drawn from


def concrete_faults(scenario: Scenario) -> list[tuple[OneFault, int | None]]:
    """The faults to apply, each with its absolute ``at``, in entry order: a plain entry as
    it is; a nemesis's draws (seeded: the same scenario draws the same faults) and a
    script's steps in their places, each with the index of the entry it came from. Without
    a nemesis or a script this is ``scenario.faults`` itself, in order."""
    out: list[tuple[OneFault, int | None]] = []
    for index, spec in enumerate(scenario.faults):
        if isinstance(spec, NemesisFault):
            rng = np.random.default_rng(spec.seed)
            weights = np.asarray([entry.weight for entry in spec.mix], dtype=np.float64)
            cumulative = np.cumsum(weights / weights.sum())
            until = spec.until if spec.until is not None else scenario.run.duration
            for t in range(spec.at, until, spec.every):
                drawn = spec.mix[min(int(np.searchsorted(cumulative, rng.random(), side="right")), len(spec.mix) - 1)]
                out.append((drawn.fault.model_copy(update={"at": t + drawn.fault.at}), index))
        elif isinstance(spec, ScriptFault):
            for k in range(spec.times):
                start = spec.at + k * (spec.every or 0)
                out += [(step.model_copy(update={"at": start + step.at}), index) for step in spec.steps]
        else:
            out.append((spec, None))
    return out


def fault_schedule(scenario: Scenario) -> list[FaultOp]:
    """Start and end operations for every fault, in time order (ends before starts at ties).
    A fault's ``fault_id`` is its place among ``concrete_faults``."""
    ops: list[FaultOp] = []
    for fault_id, (spec, source) in enumerate(concrete_faults(scenario)):
        if isinstance(spec, CrashFault):
            end = None if spec.restart_after is None else spec.at + spec.restart_after
        elif isinstance(spec, RestartFault):
            end = spec.at + spec.down  # stopped at ``at``, started again ``down`` later
        else:
            end = None if spec.duration is None else spec.at + spec.duration
        ops.append(FaultOp(spec.at, 2 * fault_id + 1, "start", fault_id, spec, source))
        if end is not None:
            ops.append(FaultOp(end, 2 * fault_id, "end", fault_id, spec, source))
    return sorted(ops, key=lambda op: (op.t_ns, op.action != "end", op.order))


def drawn_nodes(seed: int, fault_id: int, pool: list[int], count: int) -> list[int]:
    """The ``count`` nodes of ``pool`` a fault that draws its byzantine nodes takes: the first
    ``count`` of one permutation seeded by the run's seed and the fault's id, so the draw is
    the same at its start and its end, and a larger count adds nodes to a smaller one's."""
    order = np.random.default_rng([seed, fault_id]).permutation(len(pool))
    return [pool[i] for i in order[:count].tolist()]
