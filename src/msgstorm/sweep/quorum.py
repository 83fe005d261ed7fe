"""Where safety and liveness break against the quorum bound, from a sweep's table.

Place in the pipeline: after a sweep (``msgstorm sweep``), read from ``sweep.parquet`` (its
rows carry each run's ``finality`` summary, ``analysis/safety.py``). For a sweep over the
number of byzantine voters (``--grid faults.N.count=0,1,2,...`` on an ``equivocate_votes``
fault) under finality by votes, one line per point: the byzantine voters and their stake,
whether that is within the bound a two-thirds quorum implies (stake below 1/3: f < n/3),
and in how many seeds safety and liveness held; then the first point at which each broke.
A sweep whose runs have no finality by votes has no such lines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

__all__ = ["QuorumPoint", "quorum_lines", "quorum_points"]

_COLUMNS = ("finality.validators", "finality.byzantine", "finality.byzantine_stake", "finality.safe",
            "finality.live")


@dataclass(frozen=True)
class QuorumPoint:
    point: int
    validators: int
    byzantine: float  # mean over the point's seeds (the same in each for a named or counted set)
    byzantine_stake: float  # mean share of the stake
    seeds: int
    safe: int  # seeds in which no honest nodes finalised conflicting blocks
    live: int  # seeds in which no honest node stalled past the bound

    @property
    def within_bound(self) -> bool:
        return self.byzantine_stake < 1 / 3


def quorum_points(table: pa.Table) -> list[QuorumPoint]:
    """Per point of a sweep's table (finished runs with finality by votes only), in point order."""
    if any(name not in table.column_names for name in _COLUMNS) or table.num_rows == 0:
        return []
    point = table.column("point").to_numpy()
    values = {name: table.column(name).to_numpy(zero_copy_only=False).astype(np.float64) for name in _COLUMNS}
    done = ~np.isnan(values["finality.safe"])
    out = []
    for p in sorted(set(point[done].tolist())):
        rows = done & (point == p)
        out.append(QuorumPoint(
            point=int(p),
            validators=int(np.max(values["finality.validators"][rows])),
            byzantine=float(np.mean(values["finality.byzantine"][rows])),
            byzantine_stake=float(np.mean(values["finality.byzantine_stake"][rows])),
            seeds=int(rows.sum()),
            safe=int(values["finality.safe"][rows].sum()),
            live=int(values["finality.live"][rows].sum()),
        ))
    return out


def quorum_lines(points: list[QuorumPoint]) -> list[str]:
    """The lines ``msgstorm sweep`` prints: a table, then where each property first broke."""
    if not points:
        return []
    n = max(p.validators for p in points)
    lines = [f"quorum bound: byzantine stake < 1/3 (f < n/3 = {n / 3:.3g} of {n} equal validators)",
             "  f     stake   within bound   safety held   liveness held"]
    ordered = sorted(points, key=lambda p: (p.byzantine_stake, p.point))
    for p in ordered:
        lines.append(f"  {p.byzantine:<5g} {p.byzantine_stake:<7.3f} {'yes' if p.within_bound else 'no':<14} "
                     f"{f'{p.safe}/{p.seeds}':<13} {p.live}/{p.seeds}")
    for name, broke in (("safety", [p for p in ordered if p.safe < p.seeds]),
                        ("liveness", [p for p in ordered if p.live < p.seeds])):
        if broke:
            first = broke[0]
            lines.append(f"{name} first broke at f = {first.byzantine:g} (stake {first.byzantine_stake:.3f}), "
                         f"{'within' if first.within_bound else 'beyond'} the bound")
        else:
            lines.append(f"{name} held at every point")
    return lines
