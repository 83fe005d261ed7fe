"""The delivery audit of a live run: every receipt checked against what was sent, Jepsen style.

Place in the pipeline: one analysis step, reading the ``messages`` and ``deliveries`` tables
and the run-start event of a live run (its detail says ``fanout``: does every consumer get
every message, or do consumers share them). ``delivery_summary`` gives summary.json's
``delivery``; the ``delivery`` checker turns it into a verdict (one audit per history serves
both). Null / valid on the simulator, whose deliveries are its own gossip and are checked by
the other checkers.

Memory: the sent messages are held as compact columns in send order (an int32 send position
per msg_id, an int32 key code, an acked flag), and the deliveries are read one Parquet part
at a time (``History.parts``), each receipt kept as its send position only; key order is
checked a chunk of receipts at a time. Millions of receipts cost a few bytes each, never the
whole table's Arrow columns.

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
import weakref
from copy import deepcopy
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from msgstorm.analysis._common import events_of
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


_CHUNK = 1 << 20  # receipts per step of the key-order pass: its temporaries stay a few MB


def _reordered(positions: npt.NDArray[np.int32], key_codes: npt.NDArray[np.int32], keys: int) -> int:
    """First receipts (send positions, in receipt order) that came after a later-sent
    message with the same key. A chunk of receipts at a time: within a chunk, a stable sort
    by key and one running maximum over positions lifted above every earlier key's gives
    each receipt the largest position of its key so far; ``latest`` carries each key's
    largest position from the chunks before (so memory is a chunk's, not the run's)."""
    latest = np.full(max(keys, 1), -1, dtype=np.int64)
    late = 0
    for start in range(0, positions.size, _CHUNK):
        position = positions[start:start + _CHUNK].astype(np.int64)
        key = key_codes[position]
        by_key = np.argsort(key, kind="stable")
        key, position = key[by_key], position[by_key]
        del by_key
        new_key = np.r_[True, key[1:] != key[:-1]]
        lift = np.cumsum(new_key, dtype=np.int64) * (int(position.max()) + 1)
        running = np.maximum.accumulate(lift + position) - lift
        del lift
        late += int(((position < running) | (position < latest[key])).sum())
        last = np.r_[np.flatnonzero(new_key)[1:] - 1, key.size - 1]
        latest[key[last]] = np.maximum(latest[key[last]], running[last])
    return late


class _SendOrder:
    """The sent messages in send order, as compact columns: what a receipt is checked against.

    Send order is ``t_sent``, on one clock; ties (one burst) in msg_id order, the order a
    burst's messages were handed over in. Not the table's: a live run writes a row when it
    settles. ``of`` maps msg_ids to send positions (-1: never sent): through a table indexed
    by msg_id when ids are dense (the contract), else a sorted search."""

    def __init__(self, history: History, acks: bool) -> None:
        msg_id = history.ints("messages", "msg_id")[0]
        t_sent, was_sent = history.ints("messages", "t_sent")
        every = bool(was_sent.all())
        ids = msg_id if every else msg_id[was_sent]
        t = t_sent if every else t_sent[was_sent]
        self.count = int(ids.size)
        width = np.int32 if self.count < 2**31 else np.int64
        step = np.diff(t)
        in_order = bool((step >= 0).all()) and bool((np.diff(ids)[step == 0] >= 0).all())
        del step
        position_of_row: npt.NDArray[Any] | None = None
        order: npt.NDArray[np.intp] | None = None
        if not in_order:  # rows written as messages settled: sort them into send order
            order = np.lexsort((ids, t))
            position_of_row = np.empty(self.count, dtype=width)
            position_of_row[order] = np.arange(self.count, dtype=width)
        del t, t_sent  # the run's largest columns: one let go before the next is read
        # seq_no is the broker's ack order only on a target with acks (else the receipt order).
        has_seq = history.ints("messages", "seq_no")[1]
        acked_by_row = (has_seq if every else has_seq[was_sent]) & acks
        self.acked = acked_by_row if order is None else acked_by_row[order]
        key = history.ints("messages", "key")[0]
        key = key if every else key[was_sent]
        low, top = (int(key.min()), int(key.max())) if key.size else (0, -1)
        if low >= 0 and top < 2 * key.size + 1024:  # keys are small numbers: they are their own codes
            codes, self.keys = key.astype(np.int32), top + 1
        else:
            distinct, inverse = np.unique(key, return_inverse=True)
            codes, self.keys = inverse.astype(np.int32), int(distinct.size)
        del key
        self.key_code = codes if order is None else codes[order]
        del codes, order
        self._dense = None
        self._sorted: tuple[npt.NDArray[Any], npt.NDArray[Any]] | None = None
        if self.count:
            top = int(ids.max())
            positions = np.arange(self.count, dtype=width) if position_of_row is None else position_of_row
            if int(ids.min()) >= 0 and top < 2 * self.count + 1024:
                self._dense = np.full(top + 1, -1, dtype=width)
                self._dense[ids] = positions
            else:
                by_id = np.argsort(ids, kind="stable")
                self._sorted = (ids[by_id], positions[by_id])

    def of(self, msg_id: npt.NDArray[np.int64]) -> npt.NDArray[Any]:
        """The send position of each msg_id, -1 for one never sent."""
        if self._dense is not None:
            inside = (msg_id >= 0) & (msg_id < self._dense.size)
            found = np.full(msg_id.size, -1, dtype=self._dense.dtype)
            found[inside] = self._dense[msg_id[inside]]
            return found
        if self._sorted is None:
            return np.full(msg_id.size, -1, dtype=np.int32)
        ids, positions = self._sorted
        at = np.minimum(np.searchsorted(ids, msg_id), ids.size - 1)
        return np.where(ids[at] == msg_id, positions[at], -1)


@dataclass
class _Copy:
    """One copy of the stream read back (``stream`` or ``stream@<server>``): which sent
    messages it holds (by send position) and its rows."""

    held: npt.NDArray[np.bool_]
    rows: int = 0
    known: int = 0
    unexpected: int = 0

    def add(self, position: npt.NDArray[Any]) -> None:
        known = position >= 0
        self.rows += int(position.size)
        self.known += int(known.sum())
        self.unexpected += int(position.size - known.sum())
        self.held[position[known]] = True

    def counts(self, acked: npt.NDArray[np.bool_]) -> dict[str, int]:
        return {"stored": self.rows, "acked_missing": int((acked & ~self.held).sum()),
                "duplicated": self.known - int(self.held.sum()), "unexpected": self.unexpected}


@dataclass
class _Receipts:
    """One consumer's receipts, gathered part by part: send positions (-1: never sent) and
    receipt times, put in receipt order once all are in."""

    positions: list[npt.NDArray[Any]]
    times: list[npt.NDArray[np.int64]]

    def in_receipt_order(self) -> npt.NDArray[Any]:
        position = np.concatenate(self.positions) if self.positions else np.zeros(0, dtype=np.int32)
        t = np.concatenate(self.times) if self.times else np.zeros(0, dtype=np.int64)
        self.positions, self.times = [], []
        if not bool((t[1:] >= t[:-1]).all()):  # rows are written in receipt order already, as a rule
            position = position[np.argsort(t, kind="stable")]
        return position


def _node_kind(node: str | None) -> str:
    """What a ``deliveries`` row's node is: a consumer, a copy of the stream, or neither."""
    if node is None or node == "publisher":
        return "none"
    if node == STREAM_NODE or node.startswith(NODE_COPY_PREFIX):
        return "copy"
    return "consumer"


def _gather(history: History, sent: _SendOrder) -> tuple[dict[str, _Receipts], dict[str, _Copy],
                                                         npt.NDArray[np.bool_] | None]:
    """One pass over the ``deliveries`` parts: each consumer's receipts as send positions,
    each copy of the stream read back, and which sent messages any copy holds (None when
    no copy was read back)."""
    receipts: dict[str, _Receipts] = {}
    copies: dict[str, _Copy] = {}
    for part in history.parts("deliveries", ["msg_id", "node", "t_delivered"]):
        if part.num_rows == 0:
            continue
        node = part.column("node").combine_chunks()
        if not pa.types.is_dictionary(node.type):
            node = node.dictionary_encode()
        names = node.dictionary.to_pylist()
        code = np.asarray(node.indices.fill_null(-1).to_numpy(), dtype=np.int64) if node.null_count else \
            np.asarray(node.indices.to_numpy(), dtype=np.int64)
        used = np.flatnonzero(np.bincount(code[code >= 0], minlength=len(names)))
        if used.size == 0:
            continue
        position = sent.of(np.asarray(part.column("msg_id").to_numpy(), dtype=np.int64))
        t = None
        for index in used.tolist():
            name = str(names[index])
            kind = _node_kind(name)
            if kind == "none":
                continue
            mine = code == index
            if kind == "copy":
                copies.setdefault(name, _Copy(np.zeros(sent.count, dtype=np.bool_))).add(position[mine])
                continue
            if t is None:
                t = np.asarray(part.column("t_delivered").to_numpy(), dtype=np.int64)
            gathered = receipts.setdefault(name, _Receipts([], []))
            gathered.positions.append(position[mine])
            gathered.times.append(t[mine])
    stored = None
    if copies:
        stored = np.zeros(sent.count, dtype=np.bool_)
        for copy in copies.values():
            stored |= copy.held
    return receipts, copies, stored


# One audit per history: the ``delivery`` checker and summary.json's ``delivery`` both ask.
_AUDITS: weakref.WeakKeyDictionary[History, dict[str, Any] | None] = weakref.WeakKeyDictionary()


def delivery_summary(history: History) -> dict[str, Any] | None:
    """Null on the simulator and on a live target without consumers (a chain node, whose
    messages end in blocks: ``messages.block``), which no receipt audit applies to."""
    if history.is_simulated:
        return None
    if history not in _AUDITS:
        _AUDITS[history] = _audit(history)
    return deepcopy(_AUDITS[history])


def _audit(history: History) -> dict[str, Any] | None:
    start = _run_start(history) or {}
    if start.get("consumers") == 0:
        return None
    fanout = bool(start.get("fanout", True))
    sent = _SendOrder(history, bool(start.get("acks", False)))
    count, acked = sent.count, sent.acked
    by_node, copies, stored = _gather(history, sent)
    consumers = sorted(by_node)
    named = int(start.get("consumers", len(consumers)) or 0)
    consumer_count = max(named, len(consumers))
    read_back = _read_back(history)
    was_read = bool(copies) or bool(read_back and read_back["done"])
    if was_read and stored is None:
        stored = np.zeros(count, dtype=np.bool_)

    lost, duplicated, unexpected, reordered, received_rows = _Lost(), 0, 0, 0, 0
    by_consumer: dict[str, _Lost] = {}
    group_received = np.zeros(count, dtype=np.bool_)
    for consumer in consumers:
        position = by_node.pop(consumer).in_receipt_order()
        received_rows += int(position.size)
        known = position >= 0
        unexpected += int(position.size - known.sum())
        position = position[known]
        del known
        received = np.zeros(count, dtype=np.bool_)
        received[position] = True
        firsts = int(received.sum())
        duplicated_here = int(position.size) - firsts
        if duplicated_here:  # the first receipt of each message, in receipt order
            first_index = np.unique(position, return_index=True)[1]
            position = position[np.sort(first_index)]
            del first_index
        if fanout:
            duplicated += duplicated_here
            lost.add(received, acked, stored)
            by_consumer[consumer] = _Lost()
            by_consumer[consumer].add(received, acked, stored)
        else:
            duplicated += int((group_received & received).sum()) + duplicated_here
            group_received |= received
        del received
        reordered += _reordered(position, sent.key_code, sent.keys)
        del position
    if fanout:
        # A consumer that received nothing: named as the live target names its consumers.
        silent = (name for name in (f"consumer-{i}" for i in itertools.count()) if name not in by_consumer)
        for _ in range(consumer_count - len(consumers)):
            nothing = _Lost()
            nothing.add(np.zeros(count, dtype=np.bool_), acked, stored)
            lost.add(np.zeros(count, dtype=np.bool_), acked, stored)
            by_consumer[next(silent)] = nothing
    else:
        lost.add(group_received, acked, stored)

    stream = copies.get(STREAM_NODE)
    nodes = {name[len(NODE_COPY_PREFIX):]: held.counts(acked) for name, held in sorted(copies.items())
             if name.startswith(NODE_COPY_PREFIX)}
    return {
        "fanout": fanout,
        "consumers": consumer_count,
        "expected": count * (consumer_count if fanout else 1),
        "received": received_rows,
        "lost": {**lost.counts(was_read),
                 "by_consumer": {name: counts.counts(was_read) for name, counts in sorted(by_consumer.items())}
                 if fanout else None},
        "duplicated": duplicated,
        "unexpected": unexpected,
        "reordered": reordered,
        "stream": stream.counts(acked) if stream is not None else None,
        "read_back": read_back,
        "nodes": nodes or None,
    }


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
        if not history.is_simulated:
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
