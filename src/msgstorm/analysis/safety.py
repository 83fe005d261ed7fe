"""Safety and liveness of the chain, Jepsen style, from the history alone.

Place in the pipeline: two checkers registered in ``CHECKERS`` (``analysis/delivery.py``
runs them), read after the metrics; each answers valid / invalid / unknown.

- ``safety``: no two different blocks finalised at one height by honest nodes. A node
  finalises a block when its own view (its longest chain) puts the block ``confirmations``
  deep: that many blocks at and above it (``blocks.producers.confirmations``). The simulator
  writes each such moment as a row of the ``finalized`` table (``sim/forks.py``), again
  when a view that left a finalised block finalises the other branch's block at that
  height, so two rows of one node at one height with different blocks are a conflict too.
  With finality by votes (``blocks.producers.finality = "votes"``, ``sim/votes.py``) a row
  is a node seeing votes for the block from more than 2/3 of the validators' stake: the
  same table, the same check. Honest nodes are those no ``equivocate``,
  ``equivocate_votes`` or ``censor_nodes`` fault names (its ``fault_start`` events). Invalid
  lists each conflicting height with its blocks and the honest nodes that finalised each.
  A run without ``[blocks.producers]`` has one chain made by one sequencer: vacuously valid.
- ``liveness``: commits keep coming: the first ``block_committed`` event's time and the
  longest gap between two in a row (when and how long); invalid when blocks were made and
  none committed. With finality by votes (the history has a ``votes`` table) it also asks
  that every honest node keep finalising while blocks are made: the longest an honest node
  went without finalising a block, from the first block made to the last (``finality_stall``),
  is invalid beyond ``STALL_BLOCKS`` times the median gap between blocks made (a quorum
  out of reach: too much byzantine or unreachable stake). A run interrupted (Ctrl-C,
  SIGTERM) or cut off is unknown, with the reason and what was seen before the stop: the
  blocks made just before it had no time to commit, and what would have come after is
  not in the history.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from math import fsum
from typing import Any

import numpy as np
import pyarrow as pa

from msgstorm.analysis._common import events_of, ms
from msgstorm.analysis.delivery import Verdict
from msgstorm.history.events import EventKind
from msgstorm.history.reader import History
from msgstorm.scenario.registry import CHECKERS
from msgstorm.scenario.units import duration_ms, run_time_s

__all__ = ["QUORUM_BOUND", "STALL_BLOCKS", "FinalityStall", "byzantine_stake", "check_liveness", "check_safety",
           "conflicts", "contested_rows", "dishonest_nodes", "finality_stall", "finality_summary"]

_SHOWN = 5  # conflicting heights written out in the detail
STALL_BLOCKS = 3  # block gaps an honest node may go without finalising under finality by votes
# The byzantine stake a two-thirds quorum tolerates: below it (f < n/3 of equal stakes) two
# quorums share an honest validator (safety) and the honest stake is a quorum (liveness).
QUORUM_BOUND = 1 / 3


@dataclass(frozen=True)
class FinalityStall:
    """The longest an honest node went without finalising a block while blocks were made."""

    node: str
    t_from: int
    t_to: int
    bound_ns: int  # STALL_BLOCKS x the median gap between blocks made

    @property
    def ns(self) -> int:
        return self.t_to - self.t_from


def dishonest_nodes(history: History) -> set[str]:
    """Nodes an ``equivocate`` fault (the producer it names) or a fault of byzantine nodes
    (``equivocate_votes``, ``censor_nodes``, ``delay_nodes``, ``reorder_nodes``, ``twins``,
    a surrounding ``eclipse``'s attackers: those its ``byzantine`` detail lists) made
    byzantine, for any part of the run."""
    starts = events_of(history, EventKind.FAULT_START)
    nodes = starts.column("node")
    byzantine: set[str] = set()
    for node, detail in zip(nodes, starts.details(), strict=True):
        if detail.get("kind") == "equivocate" and node is not None:
            byzantine.add(node)
        byzantine.update(detail.get("byzantine", ()))
    return byzantine


def contested_rows(finalized: pa.Table) -> tuple[list[str], list[int], list[int]]:
    """The ``finalized`` rows (node, height, block columns, in row order) at the heights
    where more than one block was finalised, by any node: the only rows that can show a
    conflict, found without reading every row into Python (a 6,000-node run has a row per
    node and height)."""
    height = finalized.column("height").to_numpy()
    block = finalized.column("block").to_numpy()
    width = int(block.max(initial=0)) + 1
    pairs = np.unique(height.astype(np.int64) * width + block)  # each (height, block) once
    heights, blocks_at = np.unique(pairs // width, return_counts=True)
    rows = np.flatnonzero(np.isin(height, heights[blocks_at > 1]))
    if not rows.size:  # the common case, without ``take`` (it imports pyarrow.compute: about 0.15 s)
        return [], [], []
    taken = finalized.take(rows)
    return (taken.column("node").to_pylist(), taken.column("height").to_pylist(),
            taken.column("block").to_pylist())


def conflicts(history: History) -> dict[int, dict[int, list[str]]]:
    """Heights at which honest nodes finalised more than one block: height -> block -> the
    honest nodes that finalised it (sorted), heights and blocks ascending."""
    table = history.table("finalized")
    if table.num_rows == 0:
        return {}
    byzantine = dishonest_nodes(history)
    by_height: dict[int, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for node, height, block in zip(*contested_rows(table), strict=True):
        if node not in byzantine:
            by_height[height][block].add(node)
    return {height: {block: sorted(nodes) for block, nodes in sorted(blocks.items())}
            for height, blocks in sorted(by_height.items()) if len(blocks) > 1}


def finality_stall(history: History) -> FinalityStall | None:
    """Under finality by votes, the honest node that went longest without finalising (from
    the first block made to the last); ``None`` without votes or with fewer than two blocks."""
    if history.table("votes").num_rows == 0:
        return None
    made = np.unique(history.table("blocks").column("t_produced").to_numpy())
    if made.size < 2:
        return None
    first, last = int(made[0]), int(made[-1])
    bound = STALL_BLOCKS * int(np.median(np.diff(made)))
    byzantine = dishonest_nodes(history)
    finalized = history.table("finalized")
    times: dict[str, list[int]] = defaultdict(list)
    for node, t in zip(finalized.column("node").to_pylist(), finalized.column("t").to_pylist(), strict=True):
        times[node].append(t)
    nodes = [entry["name"] for entry in history.nodes if entry["name"] not in byzantine]
    worst: FinalityStall | None = None
    for node in nodes:
        marks = [first, *sorted(t for t in times[node] if first < t < last), last]
        gaps = np.diff(np.asarray(marks, dtype=np.int64))
        at = int(np.argmax(gaps))
        if worst is None or int(gaps[at]) > worst.ns:
            worst = FinalityStall(node, marks[at], marks[at + 1], bound)
    return worst


def byzantine_stake(history: History) -> dict[str, float]:
    """The byzantine voters (``equivocate_votes``, ``withhold_votes`` and ``twins`` faults) and
    each one's share of the stake."""
    starts = events_of(history, EventKind.FAULT_START)
    stake: dict[str, float] = {}
    for detail in starts.details():
        if detail.get("kind") in ("equivocate_votes", "withhold_votes", "twins"):
            stake.update(detail.get("stake", {}))
    return dict(sorted(stake.items()))


def finality_summary(history: History) -> dict[str, Any] | None:
    """Finality by votes against the quorum bound (summary.json's ``finality``); ``None``
    without votes."""
    if history.table("votes").num_rows == 0:
        return None
    producers = history.scenario.get("blocks", {}).get("producers") or {}
    validators = len(producers.get("nodes") or []) or producers.get("count") or len(history.nodes)
    stake = byzantine_stake(history)
    share = fsum(stake.values())
    found = conflicts(history)
    stall = finality_stall(history)
    finalized = history.table("finalized")
    return {
        "validators": validators,
        "byzantine": len(stake),
        "byzantine_voters": list(stake),
        "byzantine_stake": share,
        "within_bound": share < QUORUM_BOUND,
        "conflicting_heights": len(found),
        "conflicts_at": sorted(found)[:_SHOWN],
        "safe": not found,
        "live": stall is None or stall.ns <= stall.bound_ns,
        "longest_stall_ms": None if stall is None else ms(stall.ns),
        "stall_bound_ms": None if stall is None else ms(stall.bound_ns),
        "finalized_height": int(np.max(finalized.column("height").to_numpy())) if finalized.num_rows else 0,
    }


@CHECKERS.register("safety")
def check_safety(history: History) -> Verdict:
    name = "safety"
    finalized = history.table("finalized")
    if finalized.num_rows == 0:
        return Verdict(name, "valid", "no block finalised across producers (one chain, or none deep enough)")
    found = conflicts(history)
    byzantine = sorted(dishonest_nodes(history))
    honest = f" (byzantine: {', '.join(byzantine)})" if byzantine else ""
    if not found:
        top = int(np.max(finalized.column("height").to_numpy()))
        return Verdict(name, "valid", f"honest nodes finalised one block at each height up to {top}{honest}")
    shown = "; ".join(
        f"height {height}: " + ", ".join(f"block {block} by {' '.join(nodes)}" for block, nodes in blocks.items())
        for height, blocks in list(found.items())[:_SHOWN])
    more = f" (+{len(found) - _SHOWN} more heights)" if len(found) > _SHOWN else ""
    return Verdict(name, "invalid", f"conflicting blocks finalised at {len(found)} height{'s' * (len(found) > 1)}{honest}: "
                   f"{shown}{more}")


@CHECKERS.register("liveness")
def check_liveness(history: History) -> Verdict:
    seen = _liveness_seen(history)
    stopped = _stopped_early(history)
    if stopped is not None:  # liveness is about the whole run: one stopped part way cannot show it
        return Verdict(seen.name, "unknown", f"{stopped}: whether commits kept coming is not known; "
                                             f"seen before the stop: {seen.detail}")
    return seen


def _span(ns: int) -> str:
    """A gap in a verdict: below a second its exact milliseconds, as summary.json's verdicts
    have always given them (``254.421 ms``); from a second on in the unit that reads best
    (``13 s``, ``3.9 h``), as every duration a person reads."""
    return f"{ms(ns)} ms" if ns < 1_000_000_000 else duration_ms(ms(ns))


def _stopped_early(history: History) -> str | None:
    """How the run stopped before its end (interrupted or cut off, and when), or None."""
    info = history.run_info
    at = info.get("t_end")
    when = f" at {run_time_s(at / 1e9)}" if isinstance(at, int) and at > 0 else ""
    if history.cut_off:
        return "the run was cut off (killed before it wrote its end)"
    if info.get("interrupted"):
        return f"the run was interrupted{when} (Ctrl-C or SIGTERM)"
    return None


def _liveness_seen(history: History) -> Verdict:
    """The liveness verdict on what the history holds, as if the run had ended there."""
    name = "liveness"
    commits = events_of(history, EventKind.BLOCK_COMMITTED).t
    if commits.size == 0:
        made = events_of(history, EventKind.BLOCK_PRODUCED).t.size
        if made:
            return Verdict(name, "invalid", f"{made} blocks made and none committed")
        return Verdict(name, "valid", "no blocks in this history")
    first = f"{commits.size} commits, the first at {run_time_s(commits[0] / 1e9)}"
    if commits.size > 1:
        gaps = np.diff(commits)
        worst = int(np.argmax(gaps))
        first += (f"; longest gap between commits {_span(int(gaps[worst]))} "
                  f"(from {run_time_s(commits[worst] / 1e9)} to {run_time_s(commits[worst + 1] / 1e9)})")
    stall = finality_stall(history)
    if stall is None:
        return Verdict(name, "valid", first)
    said = (f"{first}; longest an honest node went without finalising {_span(stall.ns)} ({stall.node}, "
            f"from {run_time_s(stall.t_from / 1e9)} to {run_time_s(stall.t_to / 1e9)}; "
            f"bound {_span(stall.bound_ns)})")
    return Verdict(name, "invalid" if stall.ns > stall.bound_ns else "valid", said)
