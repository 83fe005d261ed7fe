"""Per-message state while a simulation runs, and its rows for the ``messages`` table.

Each unsettled message has a record (a plain list: from Python code, index access on a
list is faster than on a numpy array; docs/performance.md). A record leaves the live set when
its message reaches a terminal status and its row is written, so memory follows the
messages in flight rather than the length of the run.
"""

from __future__ import annotations

from itertools import repeat
from typing import Any

import numpy as np
import pyarrow as pa

from msgstorm.scenario.schema import MESSAGE_KINDS
from msgstorm.sim.block_contents import BlockContents

__all__ = [
    "COMMITTED",
    "DROPPED",
    "HELD",
    "IN_BLOCK",
    "IN_FLIGHT",
    "IN_SERVICE",
    "LOST",
    "PENDING",
    "QUEUED",
    "REJECTED",
    "SEQUENCED",
    "STATUS_NAMES",
    "MessageState",
]

# Where a message is. Below COMMITTED it is still moving; the rest are terminal statuses.
IN_FLIGHT, QUEUED, IN_SERVICE, SEQUENCED, IN_BLOCK, HELD = 0, 1, 2, 3, 4, 5
COMMITTED, DROPPED, REJECTED, LOST, PENDING = 10, 11, 12, 13, 14
STATUS_NAMES = {COMMITTED: "committed", DROPPED: "dropped", REJECTED: "rejected", LOST: "lost",
                PENDING: "pending"}
NULL = -1

# Fields of a message record.
(MSG_ID, KIND, AGENT, ORIGIN, KEY, SIZE, FEE, T_INTENDED, T_SENT, T_RECEIVED, T_DEQUEUED,
 T_SEQUENCED, SEQ_NO, T_COMMITTED, BLOCK, WHERE) = range(16)


class MessageState:
    """Records of the messages still moving; a record leaves when its row is written.

    A record is a plain list indexed by the field constants above (list indexing is the
    cheapest access Python has). ``live`` holds only unsettled messages, so memory is
    bounded by what is in flight, not by how many messages the run sends.
    """

    def __init__(self, agent_names: list[str], node_names: list[str]) -> None:
        self._kind_dict = pa.array(MESSAGE_KINDS, pa.string())
        self.agent_names = agent_names  # an agent's index in a record's AGENT field is its place here
        self._agent_dict = pa.array(agent_names, pa.string())
        self._node_dict = pa.array(node_names, pa.string())
        self._status_dict = pa.array([STATUS_NAMES[code] for code in range(COMMITTED, PENDING + 1)], pa.string())
        self.live: dict[int, list[Any]] = {}
        self.count = 0  # messages generated so far (msg_ids 0 .. count-1)
        self.terminal = 0  # messages settled so far

    def add(self, batch: Any, keep: np.ndarray | None = None) -> None:
        """Take in a traffic batch (msg_ids must continue from ``count``); ``keep``: which of
        its messages get a record here (the rest are a sampled relay's pool's,
        sim/sampled_pool.py); default all."""
        n = len(batch)
        if n == 0:
            return
        if int(batch.msg_id[0]) != self.count:
            raise ValueError("traffic batches must have consecutive msg_ids")

        def column(values: np.ndarray) -> list[Any]:
            chosen: list[Any] = (values if keep is None else values[keep]).tolist()
            return chosen

        ids = column(batch.msg_id)
        null = repeat(NULL)
        records = map(list, zip(
            ids, column(batch.kind), column(batch.agent), column(batch.node), column(batch.key),
            column(batch.size), column(batch.fee), column(batch.t_intended),
            null, null, null, null, null, null, null, repeat(IN_FLIGHT),
        ))
        self.live.update(zip(ids, records))
        self.count += n

    def settle(self, m: int, status: int) -> list[Any]:
        """Remove a message's record with its terminal status; the caller keeps it for the row."""
        record = self.live.pop(m)
        record[WHERE] = status
        self.terminal += 1
        return record

    def contents(self, take: list[int]) -> BlockContents:
        """A block's messages (all live: they were just taken into it) and their sizes."""
        live = self.live
        return BlockContents.of(take, [live[m][SIZE] for m in take])

    def back_in_flight(self, messages: list[int]) -> None:
        """Messages a crash or failover took from the sequencer or the chain: they are in
        flight again, as if never received (a standby may still sequence them)."""
        live = self.live
        for m in messages:
            record = live[m]
            record[WHERE] = IN_FLIGHT
            record[T_RECEIVED] = record[T_DEQUEUED] = record[T_SEQUENCED] = NULL
            record[SEQ_NO] = record[BLOCK] = NULL

    def rows(self, records: list[list[Any]]) -> dict[str, Any]:
        """Columns for the ``messages`` table from settled records."""
        # The records transposed by ``zip`` (C level), then each field read into its int64
        # row by an iterator of known length: ints go in as they are, exact (a float64 round
        # trip of whole records was exact below 2**53 only, and slower), and the fees keep
        # their float column.
        n = len(records)
        table = np.empty((WHERE + 1, n), np.int64)
        if not n:
            return self.rows_from_columns(table, np.empty(0, np.float64))
        fields = list(zip(*records, strict=True))
        for field, values in enumerate(fields):
            if field != FEE:
                table[field] = np.fromiter(values, np.int64, n)
        fee = np.fromiter(fields[FEE], np.float64, n)
        table[FEE] = fee  # cast as ``astype`` casts
        return self.rows_from_columns(table, fee)

    def rows_from_columns(self, table: np.ndarray, fee: np.ndarray) -> dict[str, Any]:
        """Columns for the ``messages`` table from settled records given as columns, int64
        [fields, n], and their fees: the int64 fields go to Arrow as they are (no copy), and
        a time with no NULL in the batch gets no validity mask. Names stay codes into small
        dictionaries (the history writer stores them as they are), not a string per row."""

        # One pass finds the stages no message of the batch missed (the usual case): those
        # columns need no mask.
        missed = table[T_SENT:BLOCK + 1].min(axis=1) < 0

        def nullable(field: int) -> pa.Array:
            values = table[field]
            return pa.array(values, mask=values < 0) if missed[field - T_SENT] else pa.array(values)

        def codes(names: pa.Array, field: int, first: int = 0) -> pa.DictionaryArray:
            indices = table[field].astype(np.int32)
            if first:
                indices -= first
            return pa.DictionaryArray.from_arrays(indices, names)

        return {
            "msg_id": table[MSG_ID],
            "kind": codes(self._kind_dict, KIND),
            "agent": codes(self._agent_dict, AGENT),
            "node": codes(self._node_dict, ORIGIN),
            "key": table[KEY],
            "size": table[SIZE].astype(np.int32),
            "fee": fee,
            "t_intended": table[T_INTENDED],
            "t_sent": nullable(T_SENT),
            "t_received": nullable(T_RECEIVED),
            "t_dequeued": nullable(T_DEQUEUED),
            "t_sequenced": nullable(T_SEQUENCED),
            "seq_no": nullable(SEQ_NO),
            "t_committed": nullable(T_COMMITTED),
            "block": nullable(BLOCK),
            "status": codes(self._status_dict, WHERE, COMMITTED),
        }
