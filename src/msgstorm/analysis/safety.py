"""Safety and liveness of the chain, Jepsen style, from the history alone.

Place in the pipeline: two checkers registered in ``CHECKERS`` (``analysis/delivery.py``
runs them), read after the metrics; each answers valid / invalid / unknown.

- ``safety``: no two different blocks finalised at one height by honest nodes. A node
  finalises a block when its own view (its longest chain) puts the block ``confirmations``
  deep: that many blocks at and above it (``blocks.producers.confirmations``). The simulator
  writes each such moment as a row of the ``finalized`` table (``sim/forks.py``), again
  when a view that left a finalised block finalises the other branch's block at that
  height, so two rows of one node at one height with different blocks are a conflict too.
  Honest nodes are those no ``equivocate`` fault names (its ``fault_start`` events). Invalid
  lists each conflicting height with its blocks and the honest nodes that finalised each.
  A run without ``[blocks.producers]`` has one chain made by one sequencer: vacuously valid.
- ``liveness``: commits keep coming: the first ``block_committed`` event's time and the
  longest gap between two in a row (when and how long); invalid when blocks were made and
  none committed.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from msgstorm.analysis._common import events_of, ms
from msgstorm.analysis.delivery import Verdict
from msgstorm.history.events import EventKind
from msgstorm.history.reader import History
from msgstorm.scenario.registry import CHECKERS

__all__ = ["check_liveness", "check_safety", "conflicts", "dishonest_nodes"]

_SHOWN = 5  # conflicting heights written out in the detail


def dishonest_nodes(history: History) -> set[str]:
    """Nodes an ``equivocate`` fault made byzantine (for any part of the run)."""
    starts = events_of(history, EventKind.FAULT_START)
    nodes = starts.column("node")
    return {node for node, detail in zip(nodes, starts.details(), strict=True)
            if detail.get("kind") == "equivocate" and node is not None}


def conflicts(history: History) -> dict[int, dict[int, list[str]]]:
    """Heights at which honest nodes finalised more than one block: height -> block -> the
    honest nodes that finalised it (sorted), heights and blocks ascending."""
    table = history.table("finalized")
    if table.num_rows == 0:
        return {}
    byzantine = dishonest_nodes(history)
    by_height: dict[int, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
    for node, height, block in zip(table.column("node").to_pylist(), table.column("height").to_pylist(),
                                   table.column("block").to_pylist(), strict=True):
        if node not in byzantine:
            by_height[height][block].add(node)
    return {height: {block: sorted(nodes) for block, nodes in sorted(blocks.items())}
            for height, blocks in sorted(by_height.items()) if len(blocks) > 1}


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
    name = "liveness"
    commits = events_of(history, EventKind.BLOCK_COMMITTED).t
    if commits.size == 0:
        made = events_of(history, EventKind.BLOCK_PRODUCED).t.size
        if made:
            return Verdict(name, "invalid", f"{made} blocks made and none committed")
        return Verdict(name, "valid", "no blocks in this history")
    first = f"{commits.size} commits, the first at {commits[0] / 1e9:g} s"
    if commits.size == 1:
        return Verdict(name, "valid", first)
    gaps = np.diff(commits)
    worst = int(np.argmax(gaps))
    return Verdict(name, "valid",
                   f"{first}; longest gap between commits {ms(int(gaps[worst]))} ms "
                   f"(from {commits[worst] / 1e9:g} s to {commits[worst + 1] / 1e9:g} s)")
