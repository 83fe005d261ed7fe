"""The delivery audit of a live run: every receipt checked against what was sent, Jepsen style.

Place in the pipeline: one analysis step, reading the ``messages`` and ``deliveries`` tables
and the run-start event of a live run (its detail says ``fanout``: does every consumer get
every message, or do consumers share them). ``delivery_summary`` gives summary.json's
``delivery``; the ``delivery`` checker turns it into a verdict. Null / valid on the
simulator, whose deliveries are its own gossip and are checked by the other checkers.

Counts, over consumer receipts (rows whose node is not ``stream``):

- ``expected``: receipts a correct run has: sent x consumers on a fan-out target, sent when
  consumers share.
- ``lost``: expected receipts that never came, split by where they sit in send order
  relative to the receipts that did come (per consumer on fan-out, over the group when
  shared): ``prefix`` before the first receipt (a consumer that joined late), ``middle``
  between receipts (a gap: the most damning), ``postfix`` after the last (a consumer that
  stopped, or a run cut short). ``acked``: lost receipts of messages the broker had acked.
  Classed again by what the stream holds, when it was read back (in the ``stream`` copy or
  any node's): ``stored`` (the broker kept the message and never delivered it to that
  consumer: a consumer's fault, or its delivery's) and ``not_stored`` (it never kept it: the
  write was lost); both null when nothing was read back. ``by_consumer``: the same counts per
  consumer on a fan-out target (one consumer can miss what another got); null when consumers
  share the messages (a loss is the group's).
- ``duplicated``: receipts beyond the first of one message (per consumer on fan-out, over
  the group when shared).
- ``unexpected``: receipts of a message never sent.
- ``reordered``: first receipts that came after a later-sent message with the same key on
  the same consumer. Send order is ``t_sent`` (one publisher, one clock), so per-key
  sequence numbers need not travel in the payload: the history has the key and the order.
- ``nodes``: per-node divergence: each server's own copy of the stream, read back node by
  node after the run (rows with node ``stream@<server>``), counted as ``stream`` is against
  what was acked; an acked message missing from any node's copy is invalid;
- ``read_back``: the phase after the run that read the stream back: {done, stored, seconds,
  error, timeout_s} (``error`` says why it could not be done: a server that stayed down, a
  stall over ``live.read_back_timeout``, which ``timeout_s`` gives: the phase's own bound,
  after ``run.duration`` + ``run.drain``), null for a driver that reads nothing back.
- ``stream``: when the driver read the broker's stream back after the run (rows with node
  ``stream``): ``stored``, ``acked_missing`` (acked, yet not in the stream: an acked write
  lost), ``duplicated`` (stored twice), ``unexpected``. Null when nothing was read back.

Verdict: invalid on any lost, duplicated, unexpected or reordered receipt or acked message
missing from the stream; unknown when the run was interrupted or cut off and nothing but
postfix losses were seen (the receipts may have been on their way); valid otherwise.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from msgstorm.analysis._common import I64, events_of, message_rows, nullable_ints
from msgstorm.analysis.connections import connections_summary, trouble_counts
from msgstorm.analysis.delivery import Verdict
from msgstorm.history.events import EventKind
from msgstorm.history.reader import History
from msgstorm.scenario.registry import CHECKERS

__all__ = ["STREAM_NODE", "check_delivery", "delivery_summary"]

STREAM_NODE = "stream"
NODE_COPY_PREFIX = "stream@"  # deliveries rows of one server's own copy, read back node by node
_NOT_CONSUMERS = (STREAM_NODE, "publisher")


@dataclass
class _Lost:
    prefix: int = 0
    middle: int = 0
    postfix: int = 0
    acked: int = 0
    stored: int = 0  # of the lost, messages the stream read back holds (stored, never delivered)

    @property
    def total(self) -> int:
        return self.prefix + self.middle + self.postfix

    def add(self, received: npt.NDArray[np.bool_], acked: npt.NDArray[np.bool_],
            stored: npt.NDArray[np.bool_] | None = None) -> None:
        """``received`` by send position; a missing one is placed against the receipts, and
        classed by ``stored`` (by send position: in a copy of the stream read back)."""
        missing = ~received
        if not missing.any():
            return
        if stored is not None:
            self.stored += int((missing & stored).sum())
        got = np.flatnonzero(received)
        positions = np.flatnonzero(missing)
        if got.size == 0:
            self.postfix += int(positions.size)  # nothing came: no later receipt proves a gap
        else:
            self.prefix += int((positions < got[0]).sum())
            self.postfix += int((positions > got[-1]).sum())
            self.middle += int(((positions > got[0]) & (positions < got[-1])).sum())
        self.acked += int(acked[positions].sum())

    def counts(self, read_back: bool) -> dict[str, int | None]:
        """summary.json's ``lost``: ``stored`` / ``not_stored`` null when nothing was read back."""
        return {"total": self.total, "prefix": self.prefix, "middle": self.middle, "postfix": self.postfix,
                "acked": self.acked, "stored": self.stored if read_back else None,
                "not_stored": self.total - self.stored if read_back else None}


def _run_start(history: History) -> dict[str, Any] | None:
    starts = events_of(history, EventKind.RUN_START)
    return starts.details()[0] if starts.count else None


def _reordered(positions: I64, keys: I64) -> int:
    """First receipts (send positions, in receipt order) that came after a later-sent
    message with the same key: stable-sort by key, then within each key a receipt is out
    of order when an earlier receipt of that key has a larger send position."""
    if positions.size < 2:
        return 0
    by_key = np.argsort(keys, kind="stable")
    key_rank = np.cumsum(np.r_[0, np.diff(keys[by_key]) != 0])
    # Each key's positions lifted above every earlier key's, so one running maximum serves all.
    lifted = key_rank.astype(np.int64) * (int(positions.max()) + 1) + positions[by_key]
    return int((lifted < np.maximum.accumulate(lifted)).sum())


def delivery_summary(history: History) -> dict[str, Any] | None:
    """Null on the simulator and on a live target without consumers (a chain node, whose
    messages end in blocks: ``messages.block``), which no receipt audit applies to."""
    if history.run_info.get("target", "sim") == "sim":
        return None
    start = _run_start(history) or {}
    if start.get("consumers") == 0:
        return None
    fanout = bool(start.get("fanout", True))
    messages = history.columns("messages", ["msg_id", "key", "t_sent", "seq_no"])
    t_sent, was_sent = nullable_ints(messages.column("t_sent"))
    # seq_no is the broker's ack order only on a target with acks (else the receipt order).
    acked_all = nullable_ints(messages.column("seq_no"))[1] & bool(start.get("acks", False))
    ids = np.asarray(messages.column("msg_id").to_numpy(), dtype=np.int64)[was_sent]
    keys_by_row = np.asarray(messages.column("key").to_numpy(), dtype=np.int64)[was_sent]
    acked_by_row = acked_all[was_sent]
    # Send order: t_sent, on one clock; ties (one burst) in msg_id order, the order a burst's
    # messages were handed over in. Not the table's: a live run writes a row when it settles.
    order = np.lexsort((ids, t_sent[was_sent]))
    sent = int(ids.size)
    position_of_row = np.empty(sent, dtype=np.int64)
    position_of_row[order] = np.arange(sent, dtype=np.int64)
    keys = keys_by_row[order]
    acked = acked_by_row[order]

    import pyarrow.compute as pc  # here, not at import: a simulated run's analysis does without it

    deliveries = history.columns("deliveries", ["msg_id", "node", "t_delivered"])
    nodes = pc.cast(deliveries.column("node"), pa.string())
    receipts = deliveries.filter(pc.invert(pc.or_(pc.is_in(nodes, value_set=pa.array(_NOT_CONSUMERS, type=pa.string())),
                                                  pc.starts_with(nodes, NODE_COPY_PREFIX))))
    consumers = sorted(set(receipts.column("node").to_pylist()))
    named = int(start.get("consumers", len(consumers)) or 0)
    consumer_count = max(named, len(consumers))
    expected = sent * (consumer_count if fanout else 1)

    copies = deliveries.filter(pc.or_(pc.equal(nodes, STREAM_NODE), pc.starts_with(nodes, NODE_COPY_PREFIX)))
    read_back = _read_back(history)
    was_read = copies.num_rows > 0 or bool(read_back and read_back["done"])
    stored = None
    if was_read:  # by send position: the message is in a copy of the stream read back
        stored_row, stored_known = message_rows(ids, np.asarray(copies.column("msg_id").to_numpy(), dtype=np.int64))
        stored = np.zeros(sent, dtype=np.bool_)
        stored[position_of_row[stored_row[stored_known]]] = True

    lost, duplicated, unexpected, reordered = _Lost(), 0, 0, 0
    by_consumer: dict[str, _Lost] = {}
    group_received = np.zeros(sent, dtype=np.bool_)
    for consumer in consumers:
        mine = receipts.filter(pc.equal(pc.cast(receipts.column("node"), pa.string()), consumer))
        t = np.asarray(mine.column("t_delivered").to_numpy(), dtype=np.int64)
        in_order = np.argsort(t, kind="stable")  # rows are written in receipt order already
        msg = np.asarray(mine.column("msg_id").to_numpy(), dtype=np.int64)[in_order]
        row, known = message_rows(ids, msg)
        unexpected += int((~known).sum())
        position = position_of_row[row[known]]
        first_positions, first_index = np.unique(position, return_index=True)
        duplicated_here = int(position.size - first_positions.size)
        received = np.zeros(sent, dtype=np.bool_)
        received[first_positions] = True
        if fanout:
            duplicated += duplicated_here
            lost.add(received, acked, stored)
            by_consumer[consumer] = _Lost()
            by_consumer[consumer].add(received, acked, stored)
        else:
            duplicated += int((group_received & received).sum()) + duplicated_here
            group_received |= received
        in_receipt_order = position[np.sort(first_index)]
        reordered += _reordered(in_receipt_order, keys[in_receipt_order])
    if fanout:
        # A consumer that received nothing: named as the live target names its consumers.
        silent = (name for name in (f"consumer-{i}" for i in itertools.count()) if name not in by_consumer)
        for _ in range(consumer_count - len(consumers)):
            nothing = _Lost()
            nothing.add(np.zeros(sent, dtype=np.bool_), acked, stored)
            lost.add(np.zeros(sent, dtype=np.bool_), acked, stored)
            by_consumer[next(silent)] = nothing
    else:
        lost.add(group_received, acked, stored)

    return {
        "fanout": fanout,
        "consumers": consumer_count,
        "expected": expected,
        "received": int(receipts.num_rows),
        "lost": {**lost.counts(was_read),
                 "by_consumer": {name: counts.counts(was_read) for name, counts in sorted(by_consumer.items())}
                 if fanout else None},
        "duplicated": duplicated,
        "unexpected": unexpected,
        "reordered": reordered,
        "stream": _stream(deliveries, ids, acked_by_row),
        "read_back": read_back,
        "nodes": _node_copies(deliveries, ids, acked_by_row),
    }


def _node_copies(deliveries: pa.Table, ids: I64, acked_by_row: npt.NDArray[np.bool_]) -> dict[str, Any] | None:
    """Each server's own copy of the stream, read back node by node (rows with node
    ``stream@<server>``), against what was acked: per-node divergence. None when no node
    was read on its own."""
    import pyarrow.compute as pc

    names = sorted({str(n)[len(NODE_COPY_PREFIX):] for n in pc.unique(pc.cast(deliveries.column("node"), pa.string()))
                    .to_pylist() if n is not None and str(n).startswith(NODE_COPY_PREFIX)})
    return {name: _stream(deliveries, ids, acked_by_row, NODE_COPY_PREFIX + name) for name in names} or None


def _read_back(history: History) -> dict[str, Any] | None:
    """The phase after the run that read the broker's stream back: {done, stored, seconds,
    error}; None for a driver that reads nothing back (or a run stopped before it)."""
    phase = events_of(history, EventKind.READ_BACK)
    if phase.count == 0:
        return None
    value = phase.value[-1]
    done = bool(np.isfinite(value))
    errors = [detail for detail in events_of(history, EventKind.CLIENT_ERROR).details()
              if detail.get("client") == "read_back"]
    seconds = phase.details()[-1].get("seconds")
    timeout_ns = history.scenario.get("live", {}).get("read_back_timeout")
    return {"done": done, "stored": int(value) if done else None,
            "seconds": float(seconds) if isinstance(seconds, int | float) else None,
            "error": None if done else str(errors[-1].get("error")) if errors else "the driver read nothing back",
            "timeout_s": timeout_ns / 1e9 if isinstance(timeout_ns, int | float) else None}


def _stream(deliveries: pa.Table, ids: I64, acked_by_row: npt.NDArray[np.bool_],
            node: str = STREAM_NODE) -> dict[str, int] | None:
    import pyarrow.compute as pc

    stored_rows = deliveries.filter(pc.equal(pc.cast(deliveries.column("node"), pa.string()), node))
    if stored_rows.num_rows == 0:
        return None
    stored = np.asarray(stored_rows.column("msg_id").to_numpy(), dtype=np.int64)
    row, known = message_rows(ids, stored)
    present = np.zeros(ids.size, dtype=np.bool_)
    present[row[known]] = True
    distinct = int(np.unique(stored[known]).size)
    return {"stored": int(stored.size), "acked_missing": int((acked_by_row & ~present).sum()),
            "duplicated": int(known.sum()) - distinct, "unexpected": int((~known).sum())}


def _trouble(history: History, lost: int) -> str:
    """For lost receipts: the connection trouble of the run that may explain them, in brief."""
    connections = connections_summary(history) if lost else None
    if not connections or not connections["incidents"]:
        return ""
    first = connections["incidents"][0]
    said = f": {first['error']}" if first["error"] else ""
    who = f" {first['client']}" if first["client"] else ""
    return (f"; connection trouble: {trouble_counts(connections)} (first at {first['t_s']:.3f} s, "
            f"{first['kind']}{who}{said})")


@CHECKERS.register("delivery")
def check_delivery(history: History) -> Verdict:
    name = "delivery"
    summary = delivery_summary(history)
    if summary is None:
        if history.run_info.get("target", "sim") != "sim":
            return Verdict(name, "valid", "no consumers (a chain node): each message's block or status is "
                                          "checked by the other checkers")
        return Verdict(name, "valid", "simulated target: its deliveries are checked by the other checkers")
    lost, stream = summary["lost"], summary["stream"] or {}
    problems = []
    if lost["total"]:
        stored = (f", {lost['stored']} stored in the stream and never delivered, {lost['not_stored']} never stored"
                  if lost["stored"] is not None else "")
        problems.append(f"{lost['total']} of {summary['expected']} receipts lost (prefix {lost['prefix']}, "
                        f"middle {lost['middle']}, postfix {lost['postfix']}; {lost['acked']} of them acked{stored})")
    for key, what in (("duplicated", "duplicated"), ("unexpected", "never sent"), ("reordered", "out of key order")):
        if summary[key]:
            problems.append(f"{summary[key]} receipts {what}")
    if stream.get("acked_missing"):
        problems.append(f"{stream['acked_missing']} acked messages missing from the stream read back")
    if stream.get("duplicated"):
        problems.append(f"{stream['duplicated']} messages stored twice in the stream")
    for node, copy in (summary.get("nodes") or {}).items():
        if copy and copy.get("acked_missing"):
            problems.append(f"{copy['acked_missing']} acked messages missing from {node}'s copy of the stream")
    info = history.run_info
    if problems:
        only_tail = lost["total"] == lost["postfix"] and len(problems) == 1
        if only_tail and (history.cut_off or info.get("interrupted")):
            return Verdict(name, "unknown", "the run was stopped early: " + problems[0])
        return Verdict(name, "invalid", "; ".join(problems) + _trouble(history, lost["total"]))
    read_back = f"; {stream['stored']} read back from the stream" if stream else ""
    return Verdict(name, "valid", f"{summary['received']} receipts of {summary['expected']} expected, "
                                  f"none lost, duplicated, unexpected or reordered{read_back}")
