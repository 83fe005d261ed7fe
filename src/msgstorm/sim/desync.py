"""Desync detection in the shadow network: nodes whose height trails the leader too long.

The rule (``max_height_gap`` for at least ``min_duration``, a start stamped with when the gap
began) is ``rules/desync.py``'s, shared with the live validator network; this tracker writes
its events as the history's ``desync_start`` and ``desync_end``.
"""

from __future__ import annotations

from msgstorm.history.events import EventKind
from msgstorm.rules.desync import Event, HeightGapTracker

__all__ = ["DesyncTracker"]


class DesyncTracker(HeightGapTracker):
    def __init__(self, nodes: int, max_gap: int, min_duration_ns: int, event: Event) -> None:
        super().__init__(nodes, max_gap, min_duration_ns, event, EventKind.DESYNC_START, EventKind.DESYNC_END)
