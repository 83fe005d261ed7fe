"""A validator network's consensus, per validator and per height, from the history alone.

Place in the pipeline: a summary section (``validators``, ``analysis/sections.py``) of a run
whose ``block_committed`` events are per validator and say the round each height was
decided in (the ``cometbft`` live target writes them: ``live/chain/comet_target.py``).
Per validator: heights committed, blocks it proposed, heights decided in a round above 0,
the interval between its commits (p50, max), its mempool (``queue_depth`` samples: mean,
max) and its height lag behind the highest validator (the most heights it was behind at
any commit of any validator). For the network: the longest stretch without any commit (the
chain halted: from when, until when) and, per height, the round, proposer and interval
(``heights``, for the report's timeline). The evidence of misbehaviour the chain committed
(``evidence`` events: a ``double_sign`` fault's duplicate votes), item by item and counted
against each validator, when there is any.

The lag is measured at each commit time: after the events up to and including it, the highest
height any validator holds minus each validator's own, so a validator that never commits
past height h while the others go on lags more with every height they add.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

import numpy as np

from msgstorm.analysis._common import events_of, ms
from msgstorm.history.events import EventKind
from msgstorm.history.reader import History

__all__ = ["evidence_rows", "height_lags", "longest_halt", "validators_summary"]


def height_lags(commits: list[tuple[int, str, int]], names: list[str]) -> dict[str, int]:
    """Each validator's largest height lag behind the highest, over ``commits`` ((t, node,
    height), any order): measured after all the commits of each time, in time order (commits
    stamped alike, e.g. read together at the run's end, count as at once)."""
    # Every validator starts at the height before the first one seen committed (the heights
    # made before the run are no one's lag).
    start = min((height for _, _, height in commits), default=1) - 1
    top = dict.fromkeys(names, start)
    worst = dict.fromkeys(names, 0)
    ordered = sorted(commits)
    for k, (t, node, height) in enumerate(ordered):
        top[node] = max(top[node], height)
        if k + 1 < len(ordered) and ordered[k + 1][0] == t:
            continue
        highest = max(top.values())
        for name in names:
            worst[name] = max(worst[name], highest - top[name])
    return worst


def longest_halt(times: list[int], t_end: int | None = None) -> tuple[int, int] | None:
    """The longest stretch between two commits in a row (any validator's), and from the last
    to ``t_end`` when given: (from, to) in ns; None with no commit."""
    if not times:
        return None
    marks = sorted(set(times)) + ([t_end] if t_end is not None and t_end > max(times) else [])
    if len(marks) < 2:
        return None
    gaps = np.diff(np.asarray(marks, dtype=np.int64))
    at = int(np.argmax(gaps))
    return marks[at], marks[at + 1]


def validators_summary(history: History) -> dict[str, Any] | None:
    """Per validator and per height (the module docstring); None when the run's commits are
    not per validator with their rounds."""
    committed = events_of(history, EventKind.BLOCK_COMMITTED)
    if committed.count == 0:
        return None
    details = committed.details()
    if not details or "round" not in details[0]:
        return None
    times = committed.column("t")
    nodes = committed.column("node")
    heights = committed.column("height")
    names = sorted({str(n) for n in nodes})
    rows: list[tuple[int, str, int]] = []
    own_times: dict[str, list[int]] = defaultdict(list)
    rounds: dict[int, int] = {}
    proposer_of: dict[int, str] = {}
    first_at: dict[int, int] = {}
    above_zero: dict[str, int] = dict.fromkeys(names, 0)
    for t, node, height, detail in zip(times, nodes, heights, details, strict=True):
        rows.append((int(t), str(node), int(height)))
        own_times[str(node)].append(int(t))
        round_ = int(detail.get("round", -1))
        if round_ > 0:
            above_zero[str(node)] += 1
        if round_ >= 0:
            rounds[int(height)] = max(rounds.get(int(height), 0), round_)
        proposer_of[int(height)] = str(detail.get("proposer", ""))
        first_at[int(height)] = min(first_at.get(int(height), int(t)), int(t))
    lags = height_lags(rows, names)
    depth = events_of(history, EventKind.QUEUE_DEPTH)
    depths: dict[str, list[float]] = defaultdict(list)
    for node, value in zip(depth.column("node"), depth.column("value"), strict=True):
        if node in lags and value is not None:
            depths[str(node)].append(float(value))
    proposed: dict[str, int] = defaultdict(int)
    for proposer in proposer_of.values():
        proposed[proposer] += 1
    table = []
    for name in names:
        gaps = np.diff(np.sort(np.asarray(own_times[name], dtype=np.int64)))
        table.append({
            "name": name,
            "heights": len(own_times[name]),
            "proposed": proposed.get(name, 0),
            "rounds_above_0": above_zero[name],
            "interval_p50_ms": ms(int(np.median(gaps))) if gaps.size else None,
            "interval_max_ms": ms(int(gaps.max())) if gaps.size else None,
            "mempool_mean": round(float(np.mean(depths[name])), 3) if depths[name] else None,
            "mempool_max": int(max(depths[name])) if depths[name] else None,
            "height_lag_max": lags[name],
        })
    ordered = sorted(first_at)
    timeline = [{"height": h, "t_s": round(first_at[h] / 1e9, 6), "round": rounds.get(h, -1),
                 "proposer": proposer_of[h],
                 "interval_ms": ms(first_at[h] - first_at[ordered[i - 1]]) if i else None}
                for i, h in enumerate(ordered)]
    halt = longest_halt([int(t) for t in times])
    summary: dict[str, Any] = {
        "validators": table,
        "heights": timeline,
        "max_round": max(rounds.values(), default=0),
        "longest_halt_ms": ms(halt[1] - halt[0]) if halt else None,
        "halt_from_s": round(halt[0] / 1e9, 6) if halt else None,
        "halt_to_s": round(halt[1] / 1e9, 6) if halt else None,
    }
    evidence = evidence_rows(history)
    if evidence:
        summary["evidence"] = evidence
        against = Counter(row["validator"] for row in evidence)
        for row in table:
            row["evidence"] = against.get(row["name"], 0)
    return summary


def evidence_rows(history: History) -> list[dict[str, Any]]:
    """Each item of evidence the chain committed (``evidence`` events), in time and height order."""
    found = events_of(history, EventKind.EVIDENCE)
    if found.count == 0:
        return []
    rows = []
    for t, node, height, detail in zip(found.column("t"), found.column("node"), found.column("height"),
                                       found.details(), strict=True):
        rows.append({"t_s": round(int(t) / 1e9, 6), "height": int(height),
                     "validator": str(node) if node is not None else str(detail.get("address")),
                     "type": str(detail.get("type", "")), "vote_height": detail.get("vote_height"),
                     "round": detail.get("round")})
    return sorted(rows, key=lambda row: (row["t_s"], row["height"], row["validator"]))

