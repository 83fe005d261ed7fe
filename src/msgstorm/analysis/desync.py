"""Desync episodes: spans during which a node's committed view fell behind by too much.

Place in the pipeline: the target decides when a node is desynchronised (height gap above
``desync.max_height_gap`` for ``desync.min_duration``) and records ``desync_start`` /
``desync_end`` events (node set; ``value`` the height gap; ``desync_end`` detail
``{"max_gap": int}``). This module pairs them per node for windows and the failure threshold,
and summarises them as ``desync {episodes, max_height_gap}``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from msgstorm.analysis._common import events_of
from msgstorm.history.events import EventKind
from msgstorm.history.reader import History

__all__ = ["DesyncEpisode", "desync_episodes", "desync_summary"]


@dataclass(frozen=True)
class DesyncEpisode:
    """One node's desync span; ``t_end_ns`` None when it had not ended by the run's end."""

    node: str | None
    t_start_ns: int
    t_end_ns: int | None
    max_height_gap: int


def _gap(value: float, detail_gap: object) -> int:
    gaps = [int(value)] if not math.isnan(value) else []
    if isinstance(detail_gap, (int, float)):
        gaps.append(int(detail_gap))
    return max(gaps, default=0)


def desync_episodes(history: History) -> list[DesyncEpisode]:
    """Pair each ``desync_start`` with the node's next ``desync_end``, in start order.

    The episode's gap is the largest of the start value, end value and end ``max_gap``.
    """
    rows = events_of(history, EventKind.DESYNC_START, EventKind.DESYNC_END)
    episodes: list[DesyncEpisode] = []
    open_by_node: dict[str | None, int] = {}
    for t, kind, node, value, detail in zip(
        rows.t.tolist(), rows.kinds(), rows.nodes(), rows.value.tolist(), rows.details()
    ):
        gap = _gap(value, detail.get("max_gap"))
        if kind == "desync_start":
            if node in open_by_node:  # a second start before the end: keep the first open
                continue
            open_by_node[node] = len(episodes)
            episodes.append(DesyncEpisode(node, int(t), None, gap))
        elif node in open_by_node:
            index = open_by_node.pop(node)
            started = episodes[index]
            episodes[index] = DesyncEpisode(
                node, started.t_start_ns, int(t), max(started.max_height_gap, gap)
            )
    return episodes


def desync_summary(episodes: list[DesyncEpisode]) -> dict[str, int]:
    """{episodes, max_height_gap}; the gap is 0 when there was no episode."""
    return {
        "episodes": len(episodes),
        "max_height_gap": max((episode.max_height_gap for episode in episodes), default=0),
    }
