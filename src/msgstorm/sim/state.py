"""Per-message state while a simulation runs, and its rows for the ``messages`` table.

Fields the hot loop reads or writes are plain Python lists (index access on a list is
several times faster than on a numpy array from Python code); fields only needed when a
row is written stay in numpy arrays. A row is written once, when its message reaches a
terminal status (or when the run ends).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from msgstorm.scenario.schema import MESSAGE_KINDS

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


class _Growable:
    """A numpy column that grows by doubling (amortised O(1) appends of whole batches)."""

    def __init__(self, dtype: Any) -> None:
        self.data = np.empty(1024, dtype=dtype)
        self.size = 0

    def extend(self, values: np.ndarray) -> None:
        end = self.size + len(values)
        if end > len(self.data):
            grown = np.empty(max(end, 2 * len(self.data)), dtype=self.data.dtype)
            grown[: self.size] = self.data[: self.size]
            self.data = grown
        self.data[self.size:end] = values
        self.size = end


class MessageState:
    def __init__(self, agent_names: list[str], node_names: list[str]) -> None:
        self.agent_names = np.array(agent_names, dtype=object)
        self.node_names = np.array(node_names, dtype=object)
        self.kind_names = np.array(MESSAGE_KINDS, dtype=object)
        self._kind_dict = pa.array(MESSAGE_KINDS, pa.string())
        self._agent_dict = pa.array(agent_names, pa.string())
        self._node_dict = pa.array(node_names, pa.string())
        self._status_dict = pa.array([STATUS_NAMES[code] for code in range(COMMITTED, PENDING + 1)], pa.string())
        # Read by the hot loop.
        self.kind: list[int] = []
        self.size: list[int] = []
        self.fee: list[float] = []
        self.origin: list[int] = []
        # Written by the hot loop (NULL = stage not reached).
        self.t_sent: list[int] = []
        self.t_received: list[int] = []
        self.t_dequeued: list[int] = []
        self.t_sequenced: list[int] = []
        self.seq_no: list[int] = []
        self.t_committed: list[int] = []
        self.block: list[int] = []
        self.where: list[int] = []
        # Only needed for rows.
        self._agent = _Growable(np.int32)
        self._key = _Growable(np.int64)
        self._t_intended = _Growable(np.int64)
        self.count = 0
        self.terminal = 0

    def add(self, batch: Any) -> None:
        """Append a traffic batch (msg_ids must continue from ``count``)."""
        n = len(batch)
        if n == 0:
            return
        if int(batch.msg_id[0]) != self.count:
            raise ValueError("traffic batches must have consecutive msg_ids")
        self.kind.extend(batch.kind.tolist())
        self.size.extend(batch.size.tolist())
        self.fee.extend(batch.fee.tolist())
        self.origin.extend(batch.node.tolist())
        nulls = [NULL] * n
        for column in (self.t_sent, self.t_received, self.t_dequeued, self.t_sequenced,
                       self.seq_no, self.t_committed, self.block):
            column.extend(nulls)
        self.where.extend([IN_FLIGHT] * n)
        self._agent.extend(batch.agent)
        self._key.extend(batch.key)
        self._t_intended.extend(batch.t_intended)
        self.count += n

    def t_intended(self, indices: list[int]) -> np.ndarray:
        """Intended send times of these messages (int64 ns)."""
        return self._t_intended.data[np.asarray(indices, dtype=np.int64)]

    def rows(self, indices: list[int], statuses: list[int] | None = None) -> dict[str, Any]:
        """Columns for the ``messages`` table for these message indices."""
        idx = np.asarray(indices, dtype=np.int64)
        n = len(indices)
        # Rows usually settle in msg_id order (FIFO commits): then list slices, converted in
        # C, replace a Python-level gather.
        first = indices[0] if n else 0
        contiguous = n > 0 and indices[-1] - first + 1 == n and bool(np.all(np.diff(idx) == 1))

        def gather(column: list[Any], dtype: Any) -> np.ndarray:
            if contiguous:
                return np.array(column[first:first + n], dtype=dtype)
            return np.fromiter((column[i] for i in indices), dtype=dtype, count=n)

        def nullable(column: list[int]) -> pa.Array:
            values = gather(column, np.int64)
            return pa.array(values, mask=values < 0)

        where = np.asarray(statuses, dtype=np.int64) if statuses is not None else gather(self.where, np.int64)
        # Names are taken from small dictionaries in C (pyarrow take) instead of building
        # one Python string per row.
        return {
            "msg_id": idx,
            "kind": pc.take(self._kind_dict, gather(self.kind, np.int64)),
            "agent": pc.take(self._agent_dict, self._agent.data[idx]),
            "node": pc.take(self._node_dict, gather(self.origin, np.int64)),
            "key": self._key.data[idx],
            "size": gather(self.size, np.int32),
            "fee": gather(self.fee, np.float64),
            "t_intended": self._t_intended.data[idx],
            "t_sent": nullable(self.t_sent),
            "t_received": nullable(self.t_received),
            "t_dequeued": nullable(self.t_dequeued),
            "t_sequenced": nullable(self.t_sequenced),
            "seq_no": nullable(self.seq_no),
            "t_committed": nullable(self.t_committed),
            "block": nullable(self.block),
            "status": pc.take(self._status_dict, where - COMMITTED),
        }
