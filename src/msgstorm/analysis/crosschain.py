"""Two chains joined: each crossing message from its source intent to its destination commit.

Place in the pipeline: analysis, from the histories alone. A ``[crosschain]`` run's history
(the source's) carries its destination's (``History.destination``, read from
``RUN_DIR/destination``), whose ``relays`` table says what each relayer saw and carried
(``sim/relayers.py``). ``crosschain_table`` joins the source's messages, the relays and the
destination's messages; ``crosschain_summary`` is summary.json's ``crosschain``.

A relayed message enters the destination as one message of its relayer's agent for its kind
(``<relayer>.<kind>``), at its ``t_arrival``: that agent's relays ordered by (``t_arrival``,
source msg_id) are its destination messages ordered by (``t_intended``, msg_id), one for one.

Fates, one per crossing message: ``delivered`` (committed on the destination),
``censored`` (seen, refused by every relayer that saw it), ``never_final`` (no relayer saw
it final: the source never made it so, e.g. a halted chain), ``reverted_on_source`` (relayed
from a block the source's canonical chain does not hold at its end: a reorg took it back
after a relayer that did not wait long enough carried it), ``undelivered`` (relayed, not
committed on the destination). Latency is ``t_dest_commit - t_intended`` of the delivered,
split into source finality (intent -> seen final), relay (seen -> submitted), proof check
(submitted -> arrival) and destination (arrival -> commit); each stage's mean sums to the
total's mean exactly.

A *halt* of the source is its longest gap without a committed block, from the first commit
to the run's end, when it exceeds ``STALL_BLOCKS`` median gaps: the summary names it, the
faults whose window overlaps it, and how many crossing messages their relayers saw inside it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from msgstorm.analysis._common import NS_PER_S, events_of, ms, percentiles, run_t_end_ns
from msgstorm.analysis.faults import fault_windows
from msgstorm.analysis.safety import STALL_BLOCKS
from msgstorm.history.events import EventKind
from msgstorm.history.reader import History

__all__ = ["FATES", "crosschain_summary", "crosschain_table", "source_halt", "stage_split"]

FATES = ("delivered", "censored", "never_final", "reverted_on_source", "undelivered")
_STAGES = (("source_finality", "t_intended", "t_seen"), ("relay", "t_seen", "t_relayed"),
           ("proof_check", "t_relayed", "t_arrival"), ("destination", "t_arrival", "t_dest_commit"))


def _ints(table: pa.Table, column: str) -> np.ndarray:
    """An int64 column with nulls as -1."""
    import pyarrow.compute as pc  # here, not at import: ``msgstorm report`` of most runs does without it
    return np.asarray(pc.fill_null(table.column(column), -1).to_numpy(), dtype=np.int64)


def _dest_ids(relays: pa.Table, destination: History) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each relay's destination msg_id, commit time and whether it committed (-1: none)."""
    messages = destination.columns("messages", ["msg_id", "agent", "t_intended", "t_committed", "status"])
    dest_agent = np.asarray(messages.column("agent").to_pylist(), dtype=object)
    dest_id, dest_t = messages.column("msg_id").to_numpy(), messages.column("t_intended").to_numpy()
    dest_commit = _ints(messages, "t_committed")
    dest_ok = np.asarray(messages.column("status").to_pylist(), dtype=object) == "committed"
    agent = np.asarray(relays.column("dest_agent").to_pylist(), dtype=object)
    arrival, src_id = _ints(relays, "t_arrival"), relays.column("src_msg_id").to_numpy()
    out_id = np.full(relays.num_rows, -1, dtype=np.int64)
    out_commit = np.full(relays.num_rows, -1, dtype=np.int64)
    for name in sorted(set(agent.tolist()) - {""}):
        mine = np.flatnonzero(agent == name)
        mine = mine[np.lexsort((src_id[mine], arrival[mine]))]
        theirs = np.flatnonzero(dest_agent == name)
        theirs = theirs[np.lexsort((dest_id[theirs], dest_t[theirs]))]
        k = min(mine.size, theirs.size)  # a relay past the destination's window has no message
        out_id[mine[:k]] = dest_id[theirs[:k]]
        out_commit[mine[:k]] = np.where(dest_ok[theirs[:k]], dest_commit[theirs[:k]], -1)
    return out_id, out_commit, out_commit >= 0


def crosschain_table(history: History) -> pa.Table | None:
    """One row per crossing message of a ``[crosschain]`` run (``None`` without one): source
    msg_id, kind, relayer, ``t_intended``, ``t_source_commit``, ``t_seen``, ``t_relayed``,
    ``t_arrival``, ``dest_msg_id``, ``t_dest_commit`` (null where not reached) and ``fate``."""
    destination = history.destination
    if destination is None:
        return None
    import pyarrow.compute as pc  # here, not at import: ``msgstorm report`` of most runs does without it
    relays = destination.table("relays")
    source = history.columns("messages", ["msg_id", "t_committed"])
    src_ids = source.column("msg_id").to_numpy()
    order = np.argsort(src_ids)
    src_id = relays.column("src_msg_id").to_numpy()
    at = order[np.searchsorted(src_ids, src_id, sorter=order)] if src_id.size else np.empty(0, np.int64)
    source_commit = _ints(source, "t_committed")[at] if src_id.size else np.empty(0, np.int64)
    dest_id, dest_commit, delivered = _dest_ids(relays, destination)
    outcome = np.asarray(relays.column("outcome").to_pylist(), dtype=object)
    relayed = outcome == "relayed"
    blocks = history.table("blocks")
    reverted = np.zeros(relays.num_rows, dtype=bool)
    if blocks.num_rows:  # producers: a relayed block may have left the canonical chain
        stale = set(blocks.filter(pc.invert(blocks.column("canonical"))).column("block").to_pylist())
        reverted = relayed & np.isin(_ints(relays, "block"), list(stale))
    fate = np.where(outcome == "censored", "censored", "never_final").astype(object)
    fate[relayed] = np.where(delivered[relayed], "delivered", "undelivered")
    fate[reverted] = "reverted_on_source"

    def nullable(values: np.ndarray) -> pa.Array:
        return pa.array(values, type=pa.int64(), mask=values < 0)

    return pa.table({
        "src_msg_id": relays.column("src_msg_id"),
        "kind": relays.column("kind"),
        "relayer": relays.column("relayer"),
        "t_intended": relays.column("t_intended"),
        "t_source_commit": nullable(source_commit),
        "t_seen": relays.column("t_seen"),
        "t_relayed": relays.column("t_relayed"),
        "t_arrival": relays.column("t_arrival"),
        "dest_msg_id": nullable(dest_id),
        "t_dest_commit": nullable(dest_commit),
        "fate": pa.array(fate.tolist(), type=pa.string()),
    })


def stage_split(table: pa.Table, rows: np.ndarray) -> dict[str, dict[str, float | None]]:
    """The split of ``crosschain_table`` rows ``rows`` (a mask of rows that reached the
    destination's commit): each stage's p50 and mean, in ms (None over no rows)."""
    times = {name: _ints(table, name) for name in ("t_intended", "t_seen", "t_relayed", "t_arrival", "t_dest_commit")}
    split: dict[str, dict[str, float | None]] = {}
    for stage, start, end in _STAGES:
        spans = (times[end] - times[start])[rows]
        split[stage] = ({"p50": ms(percentiles(spans, (50.0,))[0]), "mean": ms(float(spans.mean()))}
                        if spans.size else {"p50": None, "mean": None})
    return split


def source_halt(history: History, seen_ns: np.ndarray) -> dict[str, Any] | None:
    """The source's longest gap without a commit, when it is a halt (see the module's
    docstring); ``seen_ns``: when crossing messages were seen final."""
    commits = events_of(history, EventKind.BLOCK_COMMITTED).t
    if commits.size < 2:
        return None
    t_end = max(run_t_end_ns(history), int(commits[-1]))
    marks = np.append(commits, t_end)
    gaps = np.diff(marks)
    at = int(np.argmax(gaps))
    bound = STALL_BLOCKS * int(np.median(np.diff(commits)))
    if int(gaps[at]) <= bound:
        return None
    t_from, t_to = int(marks[at]), int(marks[at + 1])
    faults = [f"{window.kind} at {window.t_start_ns / NS_PER_S:g} s" for window in fault_windows(history)
              if window.t_start_ns < t_to and (window.t_end_ns is None or window.t_end_ns > t_from)]
    return {"from_s": t_from / NS_PER_S, "to_s": t_to / NS_PER_S, "gap_ms": ms(t_to - t_from),
            "bound_ms": ms(bound), "faults": faults,
            "seen_inside": int(np.count_nonzero((seen_ns > t_from) & (seen_ns < t_to)))}


def crosschain_summary(history: History, table: pa.Table | None) -> dict[str, Any] | None:
    """summary.json's ``crosschain`` from the run's ``crosschain_table`` (None: not a
    cross-chain run): counts by fate and relayer, the delivered messages' latency from source
    intent to destination commit and its split, and the source's halt."""
    if table is None:
        return None
    fate = np.asarray(table.column("fate").to_pylist(), dtype=object)
    delivered = fate == "delivered"
    times = {name: _ints(table, name) for name in ("t_intended", "t_seen", "t_relayed", "t_arrival",
                                                   "t_dest_commit")}
    total = (times["t_dest_commit"] - times["t_intended"])[delivered]
    latency: dict[str, float | None] = dict.fromkeys(("p50", "p90", "p99", "max", "mean"))
    if total.size:
        p50, p90, p99, top = percentiles(total, (50.0, 90.0, 99.0, 100.0))
        latency = {"p50": ms(p50), "p90": ms(p90), "p99": ms(p99), "max": ms(top), "mean": ms(float(total.mean()))}
    split = stage_split(table, delivered)
    relayers = np.asarray(table.column("relayer").to_pylist(), dtype=object)
    seen = times["t_seen"]
    return {
        "messages": int(table.num_rows),
        "fates": {name: int(np.count_nonzero(fate == name)) for name in FATES},
        "latency_ms": latency,
        "split_ms": split,
        "by_relayer": {name: int(np.count_nonzero(relayers == name)) for name in sorted(set(relayers.tolist()) - {""})},
        "last_seen_s": float(seen.max()) / NS_PER_S if (seen >= 0).any() else None,
        "source_halt": source_halt(history, seen[seen >= 0]),
    }
