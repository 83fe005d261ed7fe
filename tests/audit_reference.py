"""The delivery audit as it was written before it streamed over the deliveries parts: whole
Arrow columns, filtered per consumer. Kept only as the reference the streamed audit
(``msgstorm.analysis.audit``) is checked against on random histories
(``tests/test_analysis_audit_reference.py``); not imported by msgstorm."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from msgstorm.analysis._common import I64, message_rows, nullable_ints
from msgstorm.analysis.audit import NODE_COPY_PREFIX, STREAM_NODE, _Lost, _read_back, _run_start
from msgstorm.history.reader import History

_NOT_CONSUMERS = (STREAM_NODE, "publisher")


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
    if history.run_info.get("target", "sim") == "sim":
        return None
    start = _run_start(history) or {}
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

    names = sorted({str(n)[len(NODE_COPY_PREFIX):] for n in pc.unique(pc.cast(deliveries.column("node"), pa.string()))
                    .to_pylist() if n is not None and str(n).startswith(NODE_COPY_PREFIX)})
    return {name: _stream(deliveries, ids, acked_by_row, NODE_COPY_PREFIX + name) for name in names} or None


def _stream(deliveries: pa.Table, ids: I64, acked_by_row: npt.NDArray[np.bool_],
            node: str = STREAM_NODE) -> dict[str, int] | None:

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
