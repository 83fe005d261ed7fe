"""Sequencer outages (``sequencer_outage`` faults): how long down, the backlog, its drain.

Place in the pipeline: analysis, from the ``events`` (each outage's ``fault_end`` carries
the backlog queued when the sequencer returned: ``sim/rollup/outage.py``) and the messages'
``t_received`` (live: ``t_intended``) and ``t_sequenced``. The drain is how long after the
return the last message received (meant, live) before it was sequenced: with one worker at a
constant service time ``s`` and FIFO, ``backlog x s``. An outage with ``lose_unposted`` adds ``lost_unposted``: the messages its
``unposted_lost`` events name (the queued ones at its start, the soft-confirmed ones whose batch
was not on L1: ``sim/rollup/unposted.py``). summary.json's ``outages``; absent for a run without one.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from msgstorm.history.reader import History
from msgstorm.history.schema import is_simulated

__all__ = ["OUTAGE_KIND", "outage_summary", "outage_windows_ns"]

OUTAGE_KIND = "sequencer_outage"


def outage_windows_ns(history: History) -> list[tuple[int, int | None]]:
    """(down, up) of each sequencer outage from its fault events, by start (up None: down at the end)."""
    starts, ends = _outage_events(history)
    return sorted((start, ends.get(fault_id, (None, 0))[0]) for fault_id, start in starts.items())


def _outage_events(history: History) -> tuple[dict[int, int], dict[int, tuple[int, int]]]:
    starts, ends, _ = _outage_rows(history)
    return starts, ends


def _outage_rows(history: History) -> tuple[dict[int, int], dict[int, tuple[int, int]], dict[int, int]]:
    """Each outage's start, (end, backlog) and, with lose_unposted, the messages it lost."""
    events = history.table("events")
    starts: dict[int, int] = {}
    ends: dict[int, tuple[int, int]] = {}
    lost: dict[int, int] = {}
    for kind, t, value, detail in zip(events.column("kind").to_pylist(), events.column("t").to_pylist(),
                                      events.column("value").to_pylist(), events.column("detail").to_pylist(),
                                      strict=True):
        if kind not in ("fault_start", "fault_end", "unposted_lost") or not detail:
            continue
        fields = json.loads(detail)
        if kind == "unposted_lost":
            lost[fields["fault_id"]] = lost.get(fields["fault_id"], 0) + int(value or 0)
            continue
        if fields.get("kind") != OUTAGE_KIND:
            continue
        if kind == "fault_start":
            starts[fields["fault_id"]] = t
        else:
            # The simulator's end event holds the backlog as its value; a live one in its detail.
            ends[fields["fault_id"]] = (t, int(value if value is not None else fields.get("backlog", 0)))
    return starts, ends, lost


def outage_summary(history: History) -> list[dict[str, Any]] | None:
    """One entry per sequencer outage, in the order they started; ``None`` without one."""
    starts, ends, lost = _outage_rows(history)
    if not starts:
        return None
    # Sim: what reached the sequencer before its return; live (live/chain/forced.py): what was
    # meant before it (the down sequencer took nothing, so nothing was received meanwhile).
    arrived = "t_received" if is_simulated(history.scenario.get("target")) else "t_intended"
    received, has_received = history.ints("messages", arrived)
    sequenced, has_sequenced = history.ints("messages", "t_sequenced")
    out = []
    for fault_id, start in sorted(starts.items(), key=lambda item: item[1]):
        end, backlog = ends.get(fault_id, (None, 0))
        drain_s: float | None = None
        if end is not None:
            waited = has_received & has_sequenced & (received < end) & (sequenced >= end)
            drain_s = float(np.max(sequenced[waited]) - end) / 1e9 if waited.any() else 0.0
        out.append({"at_s": start / 1e9, "down_s": None if end is None else (end - start) / 1e9,
                    "backlog": backlog, "drain_s": drain_s,
                    **({"lost_unposted": lost[fault_id]} if fault_id in lost else {})})
    return out
