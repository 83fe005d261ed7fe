"""The ``relay`` event's detail: what the gossip kernel counted of the relay protocols.

Place in the pipeline: ``ShadowNetwork.finish`` writes it at the run's end as the history's
``relay`` event (``history/events.py``), which ``analysis/relay.py`` reads; the counts are
``GossipState``'s, read from the kernel's arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from msgstorm.sim.gossip import GossipState

__all__ = ["relay_report"]


def relay_report(gossip: GossipState) -> dict[str, Any]:
    """The relay counts so far as the history's ``relay`` event carries them (its detail;
    history/events.py): payload copies, announcements, requests, fallbacks, announcements
    that led to no transfer, compact relay's counts, and payload bytes uploaded per region."""
    announcements, requests, fallbacks = gossip.relay_counts
    duplicates, gettxn, missing, missing_bytes = gossip.compact_counts
    topology = gossip.topology
    uploaded = np.bincount(np.asarray(topology.region_of, dtype=np.int64), weights=gossip.uploaded_bytes,
                           minlength=len(topology.regions))
    return {
        "payloads": gossip.payloads_sent, "announcements": announcements, "requests": requests,
        "fallbacks": fallbacks, "duplicates_avoided": announcements - requests,
        "compact": {"duplicates": duplicates, "getblocktxn": gettxn, "missing": missing,
                    "missing_bytes": missing_bytes, "held": gossip.compact_held},
        "uploaded_bytes": {region: int(total) for region, total in zip(topology.regions, uploaded.tolist(),
                                                                       strict=True)},
    }
