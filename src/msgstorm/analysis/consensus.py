"""Round-based BFT consensus read from the history's ``heights`` table: rounds per height,
block interval, each node's height lag, safety and liveness, and the failure conditions
that fired.

Place in the pipeline: analysis, the summary's ``consensus`` section (absent when the
history has no ``heights`` rows: sim without ``blocks.producers.consensus``, or a target
that does not write them). Reads only the history (``heights``, ``finalized``, the run's
scenario), so a live validator network's rows are read by the same code.

Definitions (a height's *commit* is its first row, by any node):

- ``rounds_mean``, ``rounds_max``: the rounds a committed height took (its commit's round
  + 1, so 1 for a height committed in its first round, round 0), mean and most: one unit,
  a count of rounds, not a round's index; ``heights_above_round_0``: heights whose commit
  needed a round above 0 (took more than one round).
- ``interval_ms``: the time between consecutive heights' commits.
- a node's ``lag``: how many heights it is behind the highest committed one; its largest
  value is reached just before the node commits a height (the heights committed by then
  minus the node's own) or at the end of the run.
- ``conflicting_heights``: heights at which two nodes committed different blocks (the
  ``finalized`` rows): safety. ``longest_without_commit_ms``: the longest stretch of the run
  (from its start to its end) without a commit: liveness.
- ``mempool_full``: ``mempool_full`` events (a node's mempool full, turning arrivals away;
  once a node and height).
- ``conditions``: the failure conditions that fired: "round above 0", "height lag above
  {bound}" (``desync.max_height_gap``), "mempool full".
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from typing import Any

import numpy as np

from msgstorm.analysis._common import rounded, run_t_end_ns
from msgstorm.analysis._intervals import overlap_range
from msgstorm.history.events import EventKind
from msgstorm.history.reader import History

__all__ = ["consensus_marks", "consensus_summary", "height_rows"]

NS_PER_MS = 1_000_000


def height_rows(history: History) -> list[dict[str, Any]]:
    """The ``heights`` rows (empty when the history has none)."""
    rows: list[dict[str, Any]] = history.table("heights").to_pylist()
    return rows


def _ms(values: list[int]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "max": None, "mean": None}
    array = np.asarray(values, dtype=np.float64) / NS_PER_MS
    return {"p50": rounded(float(np.percentile(array, 50))), "p99": rounded(float(np.percentile(array, 99))),
            "max": rounded(float(array.max())), "mean": rounded(float(array.mean()))}


def _lag_bound(history: History) -> int:
    desync = (history.scenario or {}).get("desync") or {}
    return int(desync.get("max_height_gap", 2))


def consensus_summary(history: History) -> dict[str, Any] | None:
    rows = height_rows(history)
    if not rows:
        return None
    first: dict[int, dict[str, Any]] = {}
    for row in rows:
        known = first.get(row["height"])
        if known is None or row["t_committed"] < known["t_committed"]:
            first[row["height"]] = row
    heights = sorted(first)
    commit_t = [first[h]["t_committed"] for h in heights]
    intervals = [b - a for a, b in zip(commit_t, commit_t[1:], strict=False)]
    t_end = max(run_t_end_ns(history) or 0, commit_t[-1])
    gaps = [commit_t[0], *intervals, t_end - commit_t[-1]]
    by_node: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        by_node[row["node"]].append(row)
    per_node: dict[str, dict[str, Any]] = {}
    lag_max = 0
    for node in sorted(by_node):
        own = sorted(by_node[node], key=lambda r: r["height"])
        # Heights committed strictly before this node committed each of its own, less the heights
        # below it: its lag just before (heights counted from the table's first: a live network's
        # heights before the clock started have no rows).
        lag = max([bisect_left(commit_t, r["t_committed"]) - bisect_left(heights, r["height"]) for r in own]
                  + [heights[-1] - own[-1]["height"]])
        lag = max(lag, 0)
        lag_max = max(lag_max, lag)
        node_intervals = [r["interval_ns"] for r in own if r["interval_ns"] is not None]
        per_node[node] = {"committed": len(own), "height": own[-1]["height"],
                          "above_round_0": sum(1 for r in own if r["round"] > 0), "lag_max": lag,
                          "interval_p50_ms": _ms(node_intervals)["p50"],
                          "proposed": sum(1 for h in heights if first[h]["proposer"] == node)}
    blocks_at: dict[int, set[int]] = defaultdict(set)
    for row in history.table("finalized").to_pylist():
        blocks_at[row["height"]].add(row["block"])
    conflicting = sorted(h for h, blocks in blocks_at.items() if len(blocks) > 1)
    took = [first[h]["round"] + 1 for h in heights]  # rounds each height took: round 0 is its first
    bound = _lag_bound(history)
    above = sum(1 for rounds in took if rounds > 1)
    conditions = []
    if above:
        conditions.append("round above 0")
    if lag_max > bound:
        conditions.append(f"height lag above {bound}")
    events = history.table("events")
    mempool_full = sum(1 for kind in events.column("kind").to_pylist() if kind == EventKind.MEMPOOL_FULL)
    if mempool_full:
        conditions.append("mempool full")
    return {
        "height": heights[-1],
        "nodes": len(by_node),
        "rounds_mean": rounded(sum(took) / len(took)),
        "rounds_max": max(took),
        "heights_above_round_0": above,
        "interval_ms": _ms(intervals),
        "lag_max": lag_max,
        "lag_bound": bound,
        "conflicting_heights": len(conflicting),
        "conflicts_at": conflicting[:5],
        "longest_without_commit_ms": rounded(max(gaps) / NS_PER_MS),
        "mempool_full": mempool_full,
        "conditions": conditions,
        "per_node": per_node,
    }


def consensus_marks(history: History, edges: np.ndarray, clip_last: bool) -> tuple[np.ndarray, np.ndarray] | None:
    """Per interval of ``edges``: whether a height's commit (its first) needed a round above
    0 in it; whether some node's height lag was above the bound in it (a lag begins when a
    commit leaves a node more than the bound behind and ends when the node commits enough).
    None without a heights table."""
    rows = height_rows(history)
    if not rows:
        return None
    count = len(edges) - 1
    rounds = np.zeros(max(count, 0), dtype=np.bool_)
    lagging = np.zeros(max(count, 0), dtype=np.bool_)
    bound = _lag_bound(history)
    rows.sort(key=lambda r: (r["t_committed"], r["height"]))
    first_seen: set[int] = set()
    base = min(row["height"] for row in rows) - 1  # 0 in sim; a live network's heights before the clock started
    own: dict[str, int] = {row["node"]: base for row in rows}
    top = 0
    behind_since: int | None = None
    for row in rows:
        t, height = row["t_committed"], row["height"]
        own[row["node"]] = max(own[row["node"]], height)
        if height not in first_seen:
            first_seen.add(height)
            top = max(top, height)
            if row["round"] > 0:
                span = overlap_range(edges, t, t, clip_last)
                if span is not None:
                    rounds[span[0]:span[1] + 1] = True
        behind = top - min(own.values()) > bound
        if behind and behind_since is None:
            behind_since = t
        elif not behind and behind_since is not None:
            span = overlap_range(edges, behind_since, t, clip_last)
            if span is not None:
                lagging[span[0]:span[1] + 1] = True
            behind_since = None
    if behind_since is not None:
        span = overlap_range(edges, behind_since, max(run_t_end_ns(history), behind_since), clip_last)
        if span is not None:
            lagging[span[0]:span[1] + 1] = True
    return rounds, lagging
