"""Byzantine nodes: which faults made which nodes byzantine, and what flooding cost.

Place in the pipeline: analysis, read from the history only. A fault of byzantine nodes
(``censor_nodes``, ``delay_nodes``, ``reorder_nodes``, ``flood_invalid``, ``equivocate_votes``,
``withhold_votes``, ``twins``) names its nodes in its ``fault_start`` event's ``detail["byzantine"]``;
a flood's counts come from the run's ``flood`` event (``sim/flood.py``: the invalid
messages sent, and those their receivers validated and dropped).

An ``eclipse`` fault names its target (honest) in ``detail["eclipsed"]``, and a surrounding
one its attackers in ``detail["byzantine"]``.

Censorship per victim: a victim is an agent whose messages a ``censor_nodes`` fault censors
(of its ``kinds``, sent by its ``agents`` or by anyone). Of each victim's such messages sent
while the fault was on, the censored ones are those a censoring producer held and left out of
a block it made (the ``censored`` msg_ids of its ``block_produced`` events, ``sim/forks.py``);
the rate is their share. (Censoring relays withhold without a record: what they cost shows
as delay, or as ``lost`` where they were the only path.)

``byzantine_summary``: ``{faults: [{fault_id, kind, nodes}], eclipsed, invalid_sent,
invalid_validated, censorship: [{agent, kinds, messages, censored, rate}]}`` in start order
(``eclipsed``: the eclipsed nodes, each once; the counts 0 without a flood; ``censorship``
by agent name, empty without a ``censor_nodes`` fault); None for a run without such a fault
or an eclipse.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from msgstorm.analysis._common import events_of
from msgstorm.history.events import EventKind
from msgstorm.history.reader import History

__all__ = ["byzantine_summary", "censorship_by_victim"]


def censorship_by_victim(history: History) -> list[dict[str, Any]]:
    """Each victim's messages a ``censor_nodes`` fault censors, sent in its window, and how
    many of them a censoring producer left out of a block (see the module docstring)."""
    starts = events_of(history, EventKind.FAULT_START)
    ends = events_of(history, EventKind.FAULT_END)
    end_of = {detail.get("fault_id"): int(t) for t, detail in zip(ends.t.tolist(), ends.details(), strict=True)}
    windows = [(detail, int(t), end_of.get(detail.get("fault_id")))
               for t, detail in zip(starts.t.tolist(), starts.details(), strict=True)
               if detail.get("kind") == "censor_nodes"]
    if not windows:
        return []
    censored: set[int] = set()
    for detail in events_of(history, EventKind.BLOCK_PRODUCED).details():
        censored.update(detail.get("censored", ()))
    table = history.table("messages")
    msg_id = table.column("msg_id").to_numpy()
    kind = table.column("kind").to_numpy(zero_copy_only=False)
    agent = table.column("agent").to_numpy(zero_copy_only=False)
    sent = table.column("t_sent").fill_null(-1).to_numpy()  # unsent: -1, before every window
    victim = np.zeros(len(msg_id), dtype=np.bool_)
    for detail, t_from, t_to in windows:
        hit = np.isin(kind, list(detail.get("kinds") or ())) & (sent >= t_from)
        if t_to is not None:
            hit &= sent < t_to
        if detail.get("agents") is not None:
            hit &= np.isin(agent, list(detail["agents"]))
        victim |= hit
    left_out = victim & np.isin(msg_id, np.fromiter(censored, dtype=np.int64, count=len(censored)))
    out = []
    for name in sorted(set(agent[victim].tolist())):
        mine = victim & (agent == name)
        messages, censored_count = int(mine.sum()), int((left_out & mine).sum())
        out.append({"agent": name, "kinds": sorted(set(kind[mine].tolist())), "messages": messages,
                    "censored": censored_count, "rate": censored_count / messages})
    return out


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
        "censorship": censorship_by_victim(history),
    }
