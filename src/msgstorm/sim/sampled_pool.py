"""Sampled transaction relay: the one pool the producers build blocks from when only a
sample of the messages is relayed receipt by receipt (``[network.relay] sample``).

Place in the pipeline: inside the simulator, under ``sim/forks.py`` (which asks it for a
producer's mempool when it makes a block) and beside ``sim/shadow.py`` (which hands it
each traffic batch and sends only the sampled messages into the gossip kernel).

The rule, stated once here (docs/networks.md says it to users):

- **Sampled**: a message whose msg_id is a multiple of ``stride`` (round(1 / sample); the
  rule ``history.delivery_sample`` uses), and the first message sent from each region (so
  that every later message has a sampled one before it from its region). The gossip
  kernel relays it receipt by receipt as every message is relayed without a sample; its
  validation at each producer is logged there and written into ``arrived[row, producer]``.
- **Derived**: every other message m, sent from a node of region a, has a representative
  r(m): the last sampled message sent from region a before it (the largest smaller
  msg_id). m reaches producer p as many ns after its own sending as r(m) reached p after
  r(m)'s: t_sent(m) + (arrived[r, p] − t_sent(r)); never if r(m) never reached p. Since
  r(m) was sent first, by the time t_sent(m) + offset comes r(m) has reached p too, so a
  mempool read at any time knows every derived arrival up to it. A representative's
  arrival at every node is one draw of the network's arrival law for a message from its
  region (its origin is a sender of that region, as m's is), so each derived message's
  arrival at each producer has the law full relay gives it (under the sample's load);
  messages sharing a representative share their offsets.
- **A producer's mempool**: the open messages (not committed) that have reached it by the
  block's time and after its last restart (a crash empties a mempool), oldest arrival
  first (ties: smaller msg_id first), as the per-node mempools of a full relay are ordered.

Unsampled messages cost the kernel nothing: no receipts, no uplink time, no held bits
(their bytes on the uplinks are left out; docs/networks.md says what that changes). Their
records are columns here (``MessageState``'s fields that vary, in their batch types), not
Python lists: a 1.2-million-message run keeps about 70 bytes a message instead of about
500, and their ``messages`` rows are made from the columns when they settle.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from msgstorm.sim.state import (
    AGENT,
    BLOCK,
    COMMITTED,
    IN_BLOCK,
    KEY,
    KIND,
    LOST,
    MSG_ID,
    NULL,
    ORIGIN,
    PENDING,
    QUEUED,
    SIZE,
    T_COMMITTED,
    T_DEQUEUED,
    T_INTENDED,
    T_RECEIVED,
    T_SENT,
    T_SEQUENCED,
    WHERE,
)
from msgstorm.traffic.generate import MessageBatch

__all__ = ["SampledPool"]

_FIELDS = WHERE + 1
_FIRST_ROWS = 1 << 10
_NEVER = np.iinfo(np.int64).max
# The fields an unsampled message's record keeps, and their types: the batch's, and the
# stages a block moves. T_SENT is T_INTENDED, T_SEQUENCED is T_DEQUEUED, SEQ_NO is null,
# T_RECEIVED is worked out when the row is made (``first_arrival``).
_KEPT = {KIND: np.int8, AGENT: np.int32, ORIGIN: np.int32, KEY: np.int64, SIZE: np.int32, T_INTENDED: np.int64,
         T_DEQUEUED: np.int64, T_COMMITTED: np.int64, BLOCK: np.int64, WHERE: np.int8}
_FROM_BATCH = {KIND: "kind", AGENT: "agent", ORIGIN: "node", KEY: "key", SIZE: "size", T_INTENDED: "t_intended"}


def _grown(array: np.ndarray, rows: int, fill: int) -> np.ndarray:
    """``array`` with room for ``rows`` along its last axis (by half again, at least), new
    entries ``fill``."""
    size = array.shape[-1]
    if rows <= size:
        return array
    size = max(rows, size + size // 2)
    grown = np.full((*array.shape[:-1], size), fill, dtype=array.dtype)
    grown[..., :array.shape[-1]] = array
    return grown


class SampledPool:
    """Lifecycle: built with the producers' nodes; ``add`` takes each traffic batch (in
    msg_id order) before any of it is sent; ``arrive`` the kernel's logged validations at
    producers; ``mempool`` is read when a producer makes a block; ``included`` and
    ``commit`` follow the blocks; ``settle_rest`` writes what is left at the end."""

    def __init__(self, stride: int, producers: list[int], nodes: int, region_of: list[int], regions: int) -> None:
        self.stride = stride
        # What the unsampled messages cost the nodes, for the relay_sample event (sim/background_load.py).
        self.load_detail: dict[str, object] = {}
        self.column = np.full(nodes, -1, dtype=np.int64)  # node -> its column of ``arrived`` (-1: not a producer)
        self.column[np.asarray(producers, dtype=np.int64)] = np.arange(len(producers), dtype=np.int64)
        self.region_of = np.asarray(region_of, dtype=np.int64)
        self.count = 0  # messages taken in (msg_ids 0 .. count-1)
        # Per message (by msg_id): its representative's row, whether it is sampled, and
        # whether it is still open (not committed). Unsampled ones' records: ``field[f][msg_id]``
        # for the fields in _KEPT (sampled ones keep theirs in ``MessageState.live``; their
        # entries here are unused but for T_INTENDED).
        self.rep = np.full(_FIRST_ROWS, -1, dtype=np.int64)
        self.is_sampled = np.zeros(_FIRST_ROWS, dtype=bool)
        self.open = np.zeros(_FIRST_ROWS, dtype=bool)
        self.field = {f: np.full(_FIRST_ROWS, NULL, dtype=kind) for f, kind in _KEPT.items()}
        self.fee = np.zeros(_FIRST_ROWS, dtype=np.float64)
        # Per sampled message (a row each, in msg_id order): its msg_id, its sending, and its
        # validation at each producer (NULL: not yet).
        self.sample_id = np.zeros(_FIRST_ROWS, dtype=np.int64)
        self.sample_sent = np.zeros(_FIRST_ROWS, dtype=np.int64)
        self.arrived = np.full((_FIRST_ROWS, len(producers)), NULL, dtype=np.int64)
        self.samples = 0
        self.last_row = np.full(regions, -1, dtype=np.int64)  # each region's last sampled row so far
        self.restarted = np.full(len(producers), -1, dtype=np.int64)  # each producer's last restart
        self.open_unsampled = 0

    # --- traffic --------------------------------------------------------------------------

    def add(self, batch: MessageBatch) -> np.ndarray:
        """Take in a traffic batch (msg_ids continuing from ``count``): each message gets its
        representative, each unsampled one its record (sent at its intended time, waiting in
        the pool). Returns which of the batch's messages are sampled."""
        n = len(batch)
        ids = batch.msg_id.astype(np.int64)
        sampled: np.ndarray = ids % self.stride == 0
        if n == 0:
            return sampled
        if int(ids[0]) != self.count:
            raise ValueError("traffic batches must have consecutive msg_ids")
        region = self.region_of[batch.node.astype(np.int64)]
        for r in np.flatnonzero(self.last_row < 0).tolist():  # a region's first message is sampled
            from_r = np.flatnonzero(region == r)
            if from_r.size:
                sampled[from_r[0]] = True
        end = self.count + n
        self.rep = _grown(self.rep, end, -1)
        self.is_sampled = _grown(self.is_sampled, end, 0)
        self.is_sampled[self.count:end] = sampled
        self.open = _grown(self.open, end, 0)
        self.field = {f: _grown(column, end, NULL) for f, column in self.field.items()}
        self.fee = _grown(self.fee, end, 0)
        rows = np.flatnonzero(sampled)
        first_row = self.samples
        self.samples += rows.size
        self.sample_id = _grown(self.sample_id, self.samples, 0)
        self.sample_sent = _grown(self.sample_sent, self.samples, 0)
        if self.samples > self.arrived.shape[0]:
            self.arrived = _grown(self.arrived.T, self.samples, NULL).T.copy()
        self.sample_id[first_row:self.samples] = ids[rows]
        self.sample_sent[first_row:self.samples] = batch.t_intended[rows]
        row_at = np.full(n, -1, dtype=np.int64)
        row_at[rows] = np.arange(first_row, self.samples, dtype=np.int64)
        rep = np.empty(n, dtype=np.int64)
        for r in np.unique(region).tolist():
            at = np.flatnonzero(region == r)
            # Sampled rows grow with msg_id: the running maximum is the last one so far (the
            # region's first message is sampled, so there is always one).
            last = np.maximum.accumulate(np.maximum(row_at[at], self.last_row[r]))
            rep[at] = last
            self.last_row[r] = int(last[-1])
        self.rep[self.count:end] = rep
        self.open[self.count:end] = True
        unsampled = ~sampled
        for f, name in _FROM_BATCH.items():
            self.field[f][self.count:end] = getattr(batch, name)
        self.field[WHERE][self.count:end] = np.where(unsampled, QUEUED, NULL)
        self.fee[self.count:end] = batch.fee
        self.open_unsampled += int(unsampled.sum())
        self.count = end
        return sampled

    # --- the kernel's log ------------------------------------------------------------------

    def arrive(self, nodes: np.ndarray, items: np.ndarray, t: np.ndarray) -> None:
        """Validations of sampled messages at producers (the kernel's mempool log): the first
        at each producer is its arrival there."""
        columns = self.column[nodes]
        keep = (columns >= 0) & (items < self.count)
        keep[keep] = self.is_sampled[items[keep]]
        if not keep.any():
            return
        rows = self.rep[items[keep]]  # a sampled message is its own representative
        columns, t = columns[keep], t[keep]
        # One row per (message, producer), its earliest (a node may log a message twice).
        pair = rows * self.arrived.shape[1] + columns
        order = np.lexsort((t, pair))
        first_of_pair = np.ones(order.size, dtype=bool)
        first_of_pair[1:] = pair[order][1:] != pair[order][:-1]
        order = order[first_of_pair]
        rows, columns, t = rows[order], columns[order], t[order]
        current = self.arrived[rows, columns]
        first = (current == NULL) | (t < current)
        self.arrived[rows[first], columns[first]] = t[first]

    def restart(self, node: int, t: int) -> None:
        """A producer came back at ``t`` with an empty mempool."""
        column = int(self.column[node])
        if column >= 0:
            self.restarted[column] = t

    # --- blocks ----------------------------------------------------------------------------

    def arrivals(self, node: int, msg_ids: np.ndarray) -> np.ndarray:
        """When each message reached producer ``node`` (NULL: not known to have reached it)."""
        column = int(self.column[node])
        rep = self.rep[msg_ids]
        known = rep >= 0
        at = np.full(msg_ids.size, NULL, dtype=np.int64)
        if column < 0:
            return at
        reached = self.arrived[rep[known], column]
        sent = self.field[T_INTENDED][msg_ids[known]]
        sampled = self.is_sampled[msg_ids[known]]
        own = np.where(sampled, reached, sent + reached - self.sample_sent[rep[known]])
        at[known] = np.where(reached == NULL, NULL, own)
        return at

    def mempool(self, node: int, t: int) -> np.ndarray:
        """Producer ``node``'s mempool at ``t``: the open messages that reached it by ``t``
        and after its last restart, oldest arrival first (ties: smaller msg_id first)."""
        candidates = np.flatnonzero(self.open[:self.count])
        at = self.arrivals(node, candidates)
        since = self.restarted[self.column[node]] if self.column[node] >= 0 else -1
        there = (at != NULL) & (at <= t) & (at > since)
        candidates, at = candidates[there], at[there]
        ordered: np.ndarray = candidates[np.lexsort((candidates, at))]
        return ordered

    def _earliest(self) -> np.ndarray:
        """Each sampled message's first validation at any producer (``_NEVER``: none)."""
        reached = self.arrived[:self.samples]
        earliest: np.ndarray = np.where(reached == NULL, _NEVER, reached).min(axis=1, initial=_NEVER)
        return earliest

    def first_arrival(self, msg_ids: np.ndarray, earliest: np.ndarray | None = None) -> np.ndarray:
        """Each message's first arrival at any producer (NULL: none known); ``earliest``:
        ``_earliest()`` when the caller has it already."""
        first = (self._earliest() if earliest is None else earliest)[self.rep[msg_ids]]
        offset = first - self.sample_sent[self.rep[msg_ids]]
        out: np.ndarray = np.where(first == _NEVER, NULL, self.field[T_INTENDED][msg_ids] + offset)
        return out

    def record(self, m: int) -> list[int]:
        """Unsampled message ``m``'s record, as ``MessageState`` keeps one (its kind, agent
        and size are what a block reads)."""
        record: list[int] = self.rows(np.asarray([m], dtype=np.int64), np.asarray([NULL], dtype=np.int64))[0][:, 0].tolist()
        return record

    def rows(self, ids: np.ndarray, t_received: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Unsampled messages' records as int64[fields, n] (``MessageState.rows_from_columns``
        takes them), given their ``t_received``, and their fees."""
        table = np.full((_FIELDS, ids.size), NULL, dtype=np.int64)
        table[MSG_ID] = ids
        for f, column in self.field.items():
            table[f] = column[ids]
        table[T_SENT] = table[T_INTENDED]
        table[T_SEQUENCED] = table[T_DEQUEUED]
        table[T_RECEIVED] = t_received
        return table, self.fee[ids]

    def included(self, messages: list[int], block: int, t: int) -> None:
        """Unsampled messages went into ``block`` made at ``t`` (the first block to include
        one is where it left the mempool)."""
        ids = np.asarray(messages, dtype=np.int64)
        self.field[WHERE][ids] = IN_BLOCK
        first = ids[self.field[BLOCK][ids] < 0]
        self.field[BLOCK][first] = block
        self.field[T_DEQUEUED][first] = t

    def commit(self, messages: list[int], block: int, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Unsampled messages of ``block`` commit at ``t`` (those still open): their rows,
        int64[fields, n], and fees."""
        ids = np.asarray(messages, dtype=np.int64)
        ids = ids[self.open[ids]]
        self.open[ids] = False
        self.open_unsampled -= ids.size
        self.field[T_COMMITTED][ids] = t
        self.field[WHERE][ids] = COMMITTED
        self.field[BLOCK][ids] = block
        return self.rows(ids, self.first_arrival(ids))

    def busy(self) -> bool:
        """Unsampled messages still wait in the pool or in blocks."""
        return self.open_unsampled > 0

    def settle_rest(self, t_end: int, rows: int = 1 << 16) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """At the end: the unsampled messages still open, as rows (``rows`` at a time). One
        that reached a producer by ``t_end`` (or will: its representative reached one) is
        pending; one whose representative reached none is lost, as a relayed message that
        reached no producer would be."""
        ids = np.flatnonzero(self.open[:self.count])
        ids = ids[~self.is_sampled[ids]]
        self.open[ids] = False
        self.open_unsampled = 0
        earliest = self._earliest()
        for start in range(0, ids.size, rows):
            part = ids[start:start + rows]
            first = self.first_arrival(part, earliest)
            self.field[WHERE][part] = np.where(first == NULL, LOST, PENDING)
            yield self.rows(part, np.where(first <= t_end, first, NULL))

    def close_sampled(self, m: int) -> None:
        """A sampled message settled (its record is written by ``MessageState``)."""
        self.open[m] = False
