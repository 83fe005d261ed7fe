"""Authentication and integrity: the cost a run used, and what its adversaries got through.

Place in the pipeline: analysis, read from the history only. ``security`` comes from the
run's ``security`` event (the scheme and the verification cost per message, and where the
cost came from: the scenario or this machine's calibration); ``integrity`` counts the rows of
the ``integrity`` table (``sim/integrity.py`` writes one per adversary's message the leader
verified; a live run's consumers one per altered or replayed payload they received).

``integrity_summary``: ``{scheme, tampered, replayed, replayed_other_chain, detected,
accepted, censored}`` (``censored``: messages a censoring producer kept back or dropped) — exact counts: every row is tampered or replayed, and detected (rejected) or
accepted; ``accepted`` is what an adversary got through. Live, the adversary is the fault
proxy's ``tamper`` and ``replay`` toxics (``live/adversary_toxics.py``), which count what they
did in their ``fault_end`` events, and the consumers count what their verification refused
(the ``integrity`` event): ``accepted`` is what the toxics did less what was refused. None
for a run without ``[security]``, adversary or table rows.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from msgstorm.analysis._common import events_of
from msgstorm.history.events import EventKind
from msgstorm.history.reader import History

__all__ = ["ADVERSARY_FAULTS", "integrity_summary", "security_summary"]

# Fault kinds (and toxics) whose messages the ``integrity`` table counts.
ADVERSARY_FAULTS = frozenset({"tamper", "replay", "censor"})


def security_summary(history: History) -> dict[str, Any] | None:
    """``{scheme, verify, chain_id, verify_cost_us, sign_cost_us, source}`` from the run's
    ``security`` event; None without one. Under scheme ``none`` nothing is signed or verified:
    the costs and their source are null, not applicable (a ``verify_cost`` the scenario gives
    is not used, and no node's processing time grows)."""
    rows = events_of(history, EventKind.SECURITY)
    if not rows.rows.size:
        return None
    detail = json.loads(rows.events.column("detail")[int(rows.rows[0])].as_py() or "{}")
    summary = {"scheme": detail.get("scheme"), "verify": detail.get("verify"), "chain_id": detail.get("chain_id"),
               "verify_cost_us": None, "sign_cost_us": None, "source": None}
    if detail.get("scheme") == "none":
        return summary
    sign_ns = detail.get("sign_ns")
    return summary | {"verify_cost_us": round(float(detail.get("verify_ns", 0)) / 1e3, 3),
                      "sign_cost_us": None if sign_ns is None else round(float(sign_ns) / 1e3, 3),
                      "source": detail.get("source")}


def _has_adversary(history: History) -> bool:
    for fault in history.scenario.get("faults") or []:
        if fault.get("kind") in ADVERSARY_FAULTS or fault.get("toxic") in ADVERSARY_FAULTS:
            return True
    return False


def _live_counts(history: History) -> dict[str, int] | None:
    """A live run's counts: what the adversary's toxics did (their ``fault_end`` stats) and
    what the consumers refused (the ``integrity`` event; a message counts as detected when
    every consumer refused it, so the least of theirs). None without either."""
    ends = events_of(history, EventKind.FAULT_END)
    tampered = replayed = 0
    seen = False
    for row in ends.rows.tolist():
        detail = json.loads(ends.events.column("detail")[int(row)].as_py() or "{}")
        if detail.get("toxic") in ADVERSARY_FAULTS:
            seen = True
            tampered += int(detail.get("tampered_messages", 0))
            replayed += int(detail.get("replayed_messages", 0))
    refused = events_of(history, EventKind.INTEGRITY)
    consumers: list[dict[str, int]] = []
    if refused.rows.size:
        seen = True
        consumers = json.loads(refused.events.column("detail")[int(refused.rows[0])].as_py() or "{}")["consumers"]
    if not seen:
        return None
    detected_tampered = min((c["tampered"] for c in consumers), default=0)
    detected_replayed = min((c["replayed"] for c in consumers), default=0)
    detected = detected_tampered + detected_replayed
    return {"tampered": tampered, "replayed": replayed, "replayed_other_chain": 0, "detected": detected,
            "accepted": tampered + replayed - detected, "censored": 0}


def integrity_summary(history: History) -> dict[str, Any] | None:
    table = history.table("integrity")
    security = history.scenario.get("security") or {}
    scheme = security.get("scheme", "none")
    if not history.is_simulated:
        live = _live_counts(history)
        return None if live is None and not security else {
            "scheme": scheme, **(live or {"tampered": 0, "replayed": 0, "replayed_other_chain": 0, "detected": 0,
                                          "accepted": 0, "censored": 0})}
    if not table.num_rows and not security and not _has_adversary(history):
        return None
    attack = np.asarray(table.column("attack").to_pylist(), dtype=object)
    chain = np.asarray(table.column("chain").to_pylist(), dtype=object)
    detected = np.asarray(table.column("detected").to_pylist(), dtype=bool)
    replayed = attack == "replayed"
    forged = replayed | (attack == "tampered")  # what verification judges (not what a censor kept back)
    return {"scheme": scheme, "tampered": int((attack == "tampered").sum()),
            "replayed": int(replayed.sum()), "replayed_other_chain": int((replayed & (chain == "other")).sum()),
            "detected": int((detected & forged).sum()), "accepted": int((~detected & forged).sum()),
            "censored": int((attack == "censored").sum())}
