"""Authentication and integrity: the cost a run used, and what its adversaries got through.

Place in the pipeline: analysis, read from the history only. ``security`` comes from the
run's ``security`` event (the scheme and the verification cost per message, and where the
cost came from: the scenario or this machine's calibration); ``integrity`` counts the rows of
the ``integrity`` table (``sim/integrity.py`` writes one per adversary's message the leader
verified; a live run's consumers one per altered or replayed payload they received).

``integrity_summary``: ``{scheme, tampered, replayed, replayed_other_chain, detected,
accepted}`` — exact counts: every row is tampered or replayed, and detected (rejected) or
accepted; ``accepted`` is what an adversary got through. None for a run without ``[security]``,
adversary or table rows.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from msgstorm.analysis._common import events_of
from msgstorm.history.reader import History

__all__ = ["ADVERSARY_FAULTS", "integrity_summary", "security_summary"]

# Fault kinds (and toxics) whose messages the ``integrity`` table counts.
ADVERSARY_FAULTS = frozenset({"tamper", "replay"})


def security_summary(history: History) -> dict[str, Any] | None:
    """``{scheme, verify, chain_id, verify_cost_us, sign_cost_us, source}`` from the run's
    ``security`` event; None without one."""
    rows = events_of(history, "security")
    if not rows.rows.size:
        return None
    detail = json.loads(rows.events.column("detail")[int(rows.rows[0])].as_py() or "{}")
    sign_ns = detail.get("sign_ns")
    return {"scheme": detail.get("scheme"), "verify": detail.get("verify"), "chain_id": detail.get("chain_id"),
            "verify_cost_us": round(float(detail.get("verify_ns", 0)) / 1e3, 3),
            "sign_cost_us": None if sign_ns is None else round(float(sign_ns) / 1e3, 3),
            "source": detail.get("source")}


def _has_adversary(history: History) -> bool:
    for fault in history.scenario.get("faults") or []:
        if fault.get("kind") in ADVERSARY_FAULTS or fault.get("toxic") in ADVERSARY_FAULTS:
            return True
    return False


def integrity_summary(history: History) -> dict[str, Any] | None:
    table = history.table("integrity")
    security = history.scenario.get("security") or {}
    if not table.num_rows and not security and not _has_adversary(history):
        return None
    attack = np.asarray(table.column("attack").to_pylist(), dtype=object)
    chain = np.asarray(table.column("chain").to_pylist(), dtype=object)
    detected = np.asarray(table.column("detected").to_pylist(), dtype=bool)
    replayed = attack == "replayed"
    return {"scheme": security.get("scheme", "none"), "tampered": int((attack == "tampered").sum()),
            "replayed": int(replayed.sum()), "replayed_other_chain": int((replayed & (chain == "other")).sum()),
            "detected": int(detected.sum()), "accepted": int((~detected).sum())}
