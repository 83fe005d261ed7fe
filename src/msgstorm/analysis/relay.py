"""Relay counts: what the nodes sent to pass items on, from the history.

Place in the pipeline: analysis, read by ``analysis/summary.py`` as summary.json's
``relay`` (absent when the run wrote no ``relay`` event: a live run, or a sim run whose
``[network.relay]`` pushes everything). It reads only that event (history/events.py), which
the simulator writes at the run's end from its gossip kernel's counters:

- ``payloads``: payload copies put on uplinks (pushes, answers to requests, compact blocks
  and the missing messages sent for them);
- ``announcements`` received, ``requests`` served, ``fallbacks`` (a request after a timeout);
- ``duplicates_avoided``: announcements that led to no transfer (the peer held the item or
  had asked for it already), each a payload copy push would have sent;
- ``compact``: compact blocks a node had already (``duplicates``), ``getblocktxn`` requests,
  the messages they asked for (``missing``) and their bytes, and the messages of compact
  blocks their receivers held already (``held``: sent as short ids, not again);
- ``uploaded_bytes``: payload bytes each region's nodes put on their uplinks, and
  ``uploaded_bytes_per_node``: the same per node of the region.
"""

from __future__ import annotations

import json
from typing import Any

from msgstorm.analysis._common import events_of
from msgstorm.history.events import EventKind
from msgstorm.history.reader import History

__all__ = ["relay_summary"]


def relay_summary(history: History) -> dict[str, Any] | None:
    """The ``relay`` section from the run's last ``relay`` event; None without one."""
    rows = events_of(history, EventKind.RELAY)
    if not rows.rows.size:
        return None
    detail = json.loads(rows.events.column("detail")[int(rows.rows[-1])].as_py() or "{}")
    uploaded: dict[str, int] = detail.get("uploaded_bytes") or {}
    nodes_per_region: dict[str, int] = {}
    for node in history.nodes:
        region = node.get("region")
        if region is not None:
            nodes_per_region[region] = nodes_per_region.get(region, 0) + 1
    per_node = {region: (None if not nodes_per_region.get(region) else round(total / nodes_per_region[region]))
                for region, total in uploaded.items()}
    return {
        "payloads": int(detail.get("payloads", 0)),
        "announcements": int(detail.get("announcements", 0)),
        "requests": int(detail.get("requests", 0)),
        "fallbacks": int(detail.get("fallbacks", 0)),
        "duplicates_avoided": int(detail.get("duplicates_avoided", 0)),
        "compact": {key: int(value) for key, value in (detail.get("compact") or {}).items()},
        "uploaded_bytes": {region: int(total) for region, total in uploaded.items()},
        "uploaded_bytes_per_node": per_node,
    }
