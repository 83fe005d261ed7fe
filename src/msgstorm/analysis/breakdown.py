"""Per message kind and per agent: what happened to their messages, and how fast.

Place in the pipeline: one analysis step, reading the ``messages`` table (through
``MessageArrays``) and the ``validation_backlog`` events. ``by_group`` gives the summary's
``by_kind`` and ``by_agent``: for each kind (or agent) the messages sent, the counts by
status, and the latency p50/p99 of the committed ones (``t_committed - t_intended``, nearest
rank, as ``latency_ms``). ``gossip_backlog_summary`` gives ``gossip_backlog``: the largest
validation backlog sampled on a gossip node (in receipts' worth of queued CPU work), which
node, and the mean over every sampled node that had one; null without samples.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from msgstorm.analysis._common import MessageArrays, events_of, ms, percentiles, rounded
from msgstorm.history.events import EventKind
from msgstorm.history.reader import History

__all__ = ["by_group", "gossip_backlog_summary"]


def by_group(history: History, messages: MessageArrays, column: str) -> dict[str, dict[str, Any]]:
    """``{name: {sent, committed, dropped, rejected, lost, pending, unsent, latency_ms: {p50, p99}}}``
    for each distinct value of ``column`` ("kind" or "agent"), in name order."""
    codes, names = history.codes("messages", column)
    out: dict[str, dict[str, Any]] = {}
    for code in sorted(range(len(names)), key=lambda c: names[c]):
        mine = None if len(names) == 1 else codes == code  # one name: every message is its
        by_status = messages.status_counts(mine)
        entry: dict[str, Any] = {"sent": (messages.count if mine is None else int(mine.sum())) - by_status["unsent"]}
        entry.update(by_status)
        if mine is None:  # every committed message: asked of by_kind and by_agent alike
            p50, p99 = messages.latency_percentiles((50.0, 99.0))
        else:
            done = messages.latency_ns(mine)
            p50, p99 = percentiles(done, (50.0, 99.0), scratch=True) if done.size else (None, None)
        entry["latency_ms"] = {"p50": ms(p50), "p99": ms(p99)}
        out[names[code]] = entry
    return out


def gossip_backlog_summary(history: History) -> dict[str, Any] | None:
    """{max, node, mean} of the ``validation_backlog`` samples, or None without any."""
    rows = events_of(history, EventKind.VALIDATION_BACKLOG)
    if rows.value.size == 0:
        return None
    top = int(np.argmax(rows.value))  # the first sample to reach the maximum
    return {
        "max": rounded(float(rows.value[top])),
        "node": rows.column("node")[top],
        "mean": rounded(float(rows.value.mean())),
        "samples": int(rows.value.size),
    }
