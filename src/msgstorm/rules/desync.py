"""Desync detection, shared by the simulator and the live validator network: nodes whose
height trails the highest too long.

Place in the pipeline: ``sim/desync.py`` (the shadow network's chains) and
``live/chain/comet_target.py`` (CometBFT validators' commits) both decide desync with this
one rule. A node is desynchronised when its height trails the highest by more than
``max_height_gap`` for at least ``min_duration``. The tracker is told the heights at every
block and whenever a node catches up, and writes a start (stamped with when the gap began)
and an end event through the callback it is given, as the kinds it is given (the history's
``desync_start`` and ``desync_end``: this package imports nothing of msgstorm).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["Event", "HeightGapTracker"]

_NONE = -1
Event = Callable[..., None]  # (t, kind, node, value, detail=...)


class HeightGapTracker:
    def __init__(self, nodes: int, max_gap: int, min_duration_ns: int, event: Event, start_kind: Any,
                 end_kind: Any) -> None:
        self.start_kind = start_kind
        self.end_kind = end_kind
        self.max_gap = max_gap
        self.min_duration_ns = min_duration_ns
        self.event = event
        self.gap_since = [_NONE] * nodes  # when the node's gap first exceeded the bound
        self.open: set[int] = set()  # the nodes whose gap_since is set
        self.gap_max = [0] * nodes
        self.desynced = [False] * nodes

    def check(self, t: int, top: int, heights: list[int], up: list[bool]) -> None:
        """At a new block: start gaps, promote long ones to episodes, end closed ones."""
        for node, height in enumerate(heights):
            if not up[node]:
                continue  # a crashed node is down (node_down), not desynchronised
            gap = top - height
            if gap > self.max_gap:
                if self.gap_since[node] == _NONE:
                    self.gap_since[node] = t
                    self.open.add(node)
                    self.gap_max[node] = gap
                elif gap > self.gap_max[node]:
                    self.gap_max[node] = gap
                if not self.desynced[node] and t - self.gap_since[node] >= self.min_duration_ns:
                    self.desynced[node] = True
                    self.event(self.gap_since[node], self.start_kind, node, float(gap),
                               detail={"detected_at": t})
            elif self.gap_since[node] != _NONE:
                self._end(t, node, gap)

    def lagging(self, node: int) -> bool:
        """Whether ``node``'s gap is open (its height last trailed by more than the bound):
        only then can ``caught_up`` end anything, so a caller may skip computing the gap."""
        return self.gap_since[node] != _NONE

    def lagging_nodes(self) -> set[int]:
        """The nodes ``lagging`` is true of."""
        return self.open

    def caught_up(self, t: int, node: int, gap: int) -> None:
        """A node applied blocks: end its gap once it is back within the bound."""
        if self.gap_since[node] != _NONE and gap <= self.max_gap:
            self._end(t, node, gap)

    def close(self, t: int, gaps: list[int]) -> None:
        """At the end of the run: episodes still open end here, marked open."""
        for node, gap in enumerate(gaps):
            if self.desynced[node]:
                detail: dict[str, Any] = {"max_gap": self.gap_max[node], "open": True}
                self.event(t, self.end_kind, node, float(gap), detail=detail)

    def _end(self, t: int, node: int, gap: int) -> None:
        if self.desynced[node]:
            self.event(t, self.end_kind, node, float(gap), detail={"max_gap": self.gap_max[node]})
            self.desynced[node] = False
        self.gap_since[node] = _NONE
        self.open.discard(node)
