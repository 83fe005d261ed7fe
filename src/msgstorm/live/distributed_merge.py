"""The merge of a distributed run: the generators' histories as one (``live/distributed.py``).

Place in the pipeline: N x generator history -> **merge_histories** -> the run's
``messages``, ``deliveries`` and ``events``, the tables a one-generator run writes. Pure
functions of what the generators wrote, their share maps and clock facts; the module
docstring of ``live/distributed.py`` says what the merged tables hold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from msgstorm.history.events import EventKind
from msgstorm.history.schema import TABLES

__all__ = ["ClockOffset", "GeneratorHistory", "merge_histories", "t_end_of"]

# Events of which the merged history has one, made from the generators'.
_ONCE = {EventKind.RUN_START, EventKind.RUN_END, EventKind.CLEANUP, EventKind.READ_BACK}


@dataclass(frozen=True)
class ClockOffset:
    """A node's wall clock minus the driver's (``offset_ns``), from the round trip of
    ``rtt_ns`` that measured it: the true offset is within ``rtt_ns / 2`` of it."""

    offset_ns: int
    rtt_ns: int


@dataclass
class GeneratorHistory:
    """What generator ``index`` wrote (its own ids and time axis), where it ran, and how
    its clock stood: ``offset`` to the driver's, ``start_late_ns`` after the agreed instant."""

    index: int
    tables: dict[str, pa.Table]
    ids: np.ndarray  # the schedule's id of each of its messages, by the generator's own id
    host: str
    offset: ClockOffset
    start_late_ns: int
    start_error: str | None = None


def _global(part: GeneratorHistory, table: str) -> pa.Table:
    """``table`` of ``part`` with the schedule's ids."""
    rows = part.tables[table]
    local = rows.column("msg_id").to_numpy()
    if local.size and (local.min() < 0 or local.max() >= part.ids.size):
        raise ValueError(f"generator g{part.index}: {table} has ids outside its share of {part.ids.size} messages")
    return rows.set_column(rows.schema.get_field_index("msg_id"), rows.schema.field("msg_id"),
                           pa.array(part.ids[local], pa.int64()))


def _sequence(messages: pa.Table, generator: np.ndarray) -> pa.Array:
    """``seq_no`` over all generators: rows that had one, in ``t_sequenced`` order (ties
    by generator, then by the generator's own ``seq_no``), numbered 0, 1, 2, ..."""
    seq = messages.column("seq_no").combine_chunks()
    has = ~np.asarray(seq.is_null().to_numpy(zero_copy_only=False))
    t = messages.column("t_sequenced").combine_chunks().fill_null(0).to_numpy()
    own = seq.fill_null(0).to_numpy()
    rows = np.flatnonzero(has)
    order = rows[np.lexsort((own[rows], generator[rows], t[rows]))]
    numbered = np.zeros(len(messages), dtype=np.int64)
    numbered[order] = np.arange(order.size, dtype=np.int64)
    return pa.array(numbered, mask=~has)


def _events(parts: list[GeneratorHistory]) -> pa.Table:
    """Every generator's events but those the merged history has once, on one time axis."""
    kept = []
    for part in parts:
        events = part.tables["events"]
        kinds = events.column("kind").to_pylist()
        nodes = events.column("node").to_pylist()
        keep = [kind not in _ONCE and (part.index == 0 or kind != EventKind.MACHINE_CPU_SECONDS) for kind in kinds]
        if part.index > 0:
            nodes = [f"{node}@g{part.index}" if kind == EventKind.CPU_SECONDS and node is not None else node
                     for kind, node in zip(kinds, nodes)]
        table = events.set_column(events.schema.get_field_index("node"), "node", pa.array(nodes, pa.string()))
        details = [_log_audit(part, detail) if kind == EventKind.LOG_AUDIT else _named(part, detail)
                   for kind, detail in zip(kinds, table.column("detail").to_pylist())]
        table = table.set_column(table.schema.get_field_index("detail"), "detail", pa.array(details, pa.string()))
        kept.append(table.filter(pa.array(keep, pa.bool_())))
    return pa.concat_tables(kept)


def _named(part: GeneratorHistory, detail: str | None) -> str | None:
    """An event's detail (an object) with ``generator`` naming whose it is: a client's
    disconnection, error or reconnection is one generator's (its clients keep the names of a
    one-generator run)."""
    if not detail or not detail.startswith("{"):
        return detail
    return json.dumps({**json.loads(detail), "generator": f"g{part.index}"})


def _log_audit(part: GeneratorHistory, detail: str | None) -> str | None:
    """A generator's audit of its own log (Kafka's ``log_audit``): its ``lost_acks``
    ([partition, offset, msg_id]) with the schedule's ids, and ``generator`` naming it;
    its counts are its own topic's (one event per generator)."""
    if not detail:
        return detail
    audit: dict[str, Any] = json.loads(detail)
    ids = part.ids
    audit["lost_acks"] = [[partition, offset, int(ids[msg_id]) if 0 <= msg_id < ids.size else msg_id]
                          for partition, offset, msg_id in audit.get("lost_acks", [])]
    return json.dumps({"generator": f"g{part.index}", **audit})


def _read_back(parts: list[GeneratorHistory]) -> pa.Table | None:
    """One ``read_back`` event from the generators': each read back its own stream, so the
    union's is stored the sum of theirs (null when any could not be read, or a generator
    read nothing back while another did), at the last one's time, ``seconds`` the longest;
    ``generators`` lists each one's. None when no generator read anything back."""
    phases = []
    for part in parts:
        events = part.tables["events"]
        rows = [row for row in events.to_pylist() if row["kind"] == EventKind.READ_BACK]
        phases.append((part, rows[-1] if rows else None))
    if all(row is None for _, row in phases):
        return None
    values = [row["value"] if row is not None else None for _, row in phases]
    stored = float(sum(v for v in values if v is not None)) if all(
        v is not None and np.isfinite(v) for v in values) else None
    seconds = [json.loads(row["detail"] or "{}").get("seconds") for _, row in phases if row is not None]
    detail = {"seconds": max((s for s in seconds if isinstance(s, int | float)), default=None),
              "generators": [{"name": f"g{part.index}", "stored": None if row is None or row["value"] is None
                              else int(row["value"]) if np.isfinite(row["value"]) else None,
                              "seconds": None if row is None else json.loads(row["detail"] or "{}").get("seconds")}
                             for part, row in phases]}
    t = max(int(row["t"]) for _, row in phases if row is not None)
    return pa.table({"t": pa.array([t], pa.int64()), "kind": [EventKind.READ_BACK],
                     "node": pa.array([None], pa.string()), "value": pa.array([stored], pa.float64()),
                     "height": pa.array([None], pa.int64()), "detail": [json.dumps(detail)]}, schema=TABLES["events"])


def _detail(part: GeneratorHistory, kind: str) -> dict[str, Any]:
    events = part.tables["events"]
    for event_kind, detail in zip(events.column("kind").to_pylist(), events.column("detail").to_pylist()):
        if event_kind == kind and detail:
            loaded: dict[str, Any] = json.loads(detail)
            return loaded
    return {}


def _first_t(part: GeneratorHistory, kind: str) -> int | None:
    events = part.tables["events"]
    times = [t for k, t in zip(events.column("kind").to_pylist(), events.column("t").to_pylist()) if k == kind]
    return None if not times else int(times[0])


def t_end_of(part: GeneratorHistory) -> int:
    """The generator's end (its last run row's ``t_end``) on the merged time axis."""
    return int(part.tables["run"].column("t_end").to_pylist()[-1])


def merge_histories(parts: list[GeneratorHistory], start_at_unix_ns: int | None = None) -> dict[str, pa.Table]:
    """One history from the generators' (``parts``, one per index 0 .. N-1): ``messages``,
    ``deliveries`` and ``events`` as the module docstring says (no ``run`` row: the caller
    writes it), sorted by ``msg_id`` and by time."""
    count = len(parts)
    if [part.index for part in parts] != list(range(count)):
        raise ValueError(f"generators {[part.index for part in parts]}: expected 0 .. {count - 1} in order")
    messages = pa.concat_tables([_global(part, "messages") for part in parts])
    generator = np.repeat(np.arange(count, dtype=np.int64), [len(part.tables["messages"]) for part in parts])
    messages = messages.set_column(messages.schema.get_field_index("seq_no"), "seq_no", _sequence(messages, generator))
    messages = messages.sort_by("msg_id")
    deliveries = pa.concat_tables([_global(part, "deliveries") for part in parts])
    deliveries = deliveries.take(pc.sort_indices(deliveries, [("t_delivered", "ascending"), ("msg_id", "ascending")]))
    events = _events(parts)
    start = _detail(parts[0], EventKind.RUN_START)
    start["processes"] = sum(int(_detail(part, EventKind.RUN_START).get("processes", 1)) for part in parts)
    start["generators"] = [{"name": f"g{part.index}", "host": part.host, "offset_ns": part.offset.offset_ns,
                            "rtt_ns": part.offset.rtt_ns, "start_late_ns": part.start_late_ns,
                            "sent": int(len(part.tables["messages"]))} for part in parts]
    if start_at_unix_ns is not None:
        start["start_at_unix_ns"] = start_at_unix_ns
    t_start = min((t for t in (_first_t(part, EventKind.RUN_START) for part in parts) if t is not None), default=0)
    t_end = max(t_end_of(part) for part in parts)
    ended = [part for part in parts if _first_t(part, EventKind.RUN_END) is not None]
    left = [name for part in parts for name in _detail(part, EventKind.CLEANUP).get("left", [])]
    once = pa.table({
        "t": pa.array([t_start, t_end, t_end], pa.int64()),
        "kind": [EventKind.RUN_START, EventKind.CLEANUP, EventKind.RUN_END],
        "node": pa.array([None, None, None], pa.string()),
        "value": pa.array([None, None, float(sum(_run_end_value(part) for part in ended))], pa.float64()),
        "height": pa.array([None, None, None], pa.int64()),
        "detail": [json.dumps(start), json.dumps({"servers_stopped": 0, "proxies_closed": 0, "resumed": [],
                                                  "left": left}), None]})
    read_back = _read_back(parts)
    events = pa.concat_tables([events.cast(TABLES["events"]), once.cast(TABLES["events"]),
                               *([read_back] if read_back is not None else [])])
    events = events.take(pc.sort_indices(events, [("t", "ascending")]))
    return {"messages": messages, "deliveries": deliveries, "events": events}


def _run_end_value(part: GeneratorHistory) -> float:
    events = part.tables["events"]
    for kind, value in zip(events.column("kind").to_pylist(), events.column("value").to_pylist()):
        if kind == EventKind.RUN_END and value is not None:
            return float(value)
    return 0.0

