"""Byzantine nodes: which faults made which nodes byzantine, and what flooding cost.

Place in the pipeline: analysis, read from the history only. A fault of byzantine nodes
(``censor_nodes``, ``delay_nodes``, ``reorder_nodes``, ``flood_invalid``, ``equivocate_votes``,
``withhold_votes``, ``twins``) names its nodes in its ``fault_start`` event's ``detail["byzantine"]``;
a flood's counts come from the run's ``flood`` event (``sim/flood.py``: the invalid
messages sent, and those their receivers validated and dropped).

An ``eclipse`` fault names its target (honest) in ``detail["eclipsed"]``.

``byzantine_summary``: ``{faults: [{fault_id, kind, nodes}], eclipsed, invalid_sent,
invalid_validated}`` in start order (``eclipsed``: the eclipsed nodes, each once; the counts
0 without a flood); None for a run without such a fault or an eclipse.
"""

from __future__ import annotations

from typing import Any

from msgstorm.analysis._common import events_of
from msgstorm.history.events import EventKind
from msgstorm.history.reader import History

__all__ = ["byzantine_summary"]


def byzantine_summary(history: History) -> dict[str, Any] | None:
    details = events_of(history, EventKind.FAULT_START).details()
    faults = [{"fault_id": detail.get("fault_id"), "kind": detail.get("kind"), "nodes": list(detail["byzantine"])}
              for detail in details if "byzantine" in detail]
    eclipsed = list(dict.fromkeys(str(detail["eclipsed"]) for detail in details if "eclipsed" in detail))
    if not faults and not eclipsed:
        return None
    flood = events_of(history, EventKind.FLOOD).details()
    return {
        "faults": faults,
        "eclipsed": eclipsed,
        "invalid_sent": sum(int(detail.get("sent", 0)) for detail in flood),
        "invalid_validated": sum(int(detail.get("validated", 0)) for detail in flood),
    }
