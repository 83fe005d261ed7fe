"""Rows on their way from the shadow network into the history writer.

The simulator settles messages, emits events and collects deliveries one at a time; the
recorder batches them and hands the history writer whole row groups, so the hot loop never
touches Arrow or Parquet and memory holds at most a batch per table.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa

from msgstorm.history.writer import HistoryWriter
from msgstorm.sim.state import MessageState

__all__ = ["Recorder", "FLUSH_ROWS"]

FLUSH_ROWS = 16_384


class Recorder:
    def __init__(self, writer: HistoryWriter, msgs: MessageState, node_names: list[str]) -> None:
        self.writer = writer
        self.msgs = msgs
        self.names = node_names
        self.events: list[tuple[int, str, str | None, float | None, int | None, str | None]] = []
        self.final: list[list[Any]] = []  # settled records awaiting their Parquet row group
        self.tables: list[tuple[np.ndarray, np.ndarray]] = []  # the same as columns (see settled_table)
        self.table_rows = 0

    def event(self, t: int, kind: str, node: int | None = None, value: float | None = None,
              height: int | None = None, detail: dict[str, Any] | None = None) -> None:
        self.events.append((t, kind, None if node is None else self.names[node], value, height,
                            None if detail is None else json.dumps(detail, sort_keys=True)))
        if len(self.events) >= FLUSH_ROWS:
            self.flush_events()

    def event_rows(self, rows: list[tuple[int, str, str | None, float | None, int | None, str | None]]) -> None:
        """Events already made into rows as ``event`` makes them (node by name, detail as JSON),
        flushed at the same rows as one ``event`` call each would flush them."""
        while rows:
            room = FLUSH_ROWS - len(self.events)
            self.events.extend(rows[:room])
            rows = rows[room:]
            if len(self.events) >= FLUSH_ROWS:
                self.flush_events()

    def settle(self, m: int, status: int) -> None:
        """A message reached a terminal status: its record becomes a row."""
        self.settled([self.msgs.settle(m, status)])

    def settled(self, records: list[list[Any]]) -> None:
        """Records already taken out of the live set (block commits do this in bulk)."""
        self.final.extend(records)
        if len(self.final) >= FLUSH_ROWS:
            self.flush_messages()

    def settled_table(self, table: np.ndarray, fee: np.ndarray) -> None:
        """Settled records as columns, int64[fields, n], and their fees (the one-node loop's)."""
        self.tables.append((table, fee))
        self.table_rows += table.shape[1]
        if self.table_rows >= FLUSH_ROWS:
            self.flush_messages()

    def deliveries(self, rows: np.ndarray) -> None:
        """Delivery rows as int64[4, n]: msg_id, node, t_delivered, hops."""
        if rows.shape[1]:
            names = pa.array(self.names, type=pa.string())
            node = pa.DictionaryArray.from_arrays(rows[1].astype(np.int32), names)  # codes, not strings
            self.writer.append("deliveries", {"msg_id": rows[0], "node": node, "t_delivered": rows[2],
                                              "hops": rows[3].astype(np.int32)})

    def hop_stages(self, hops: dict[str, np.ndarray]) -> None:
        """Hops done (sim/hop_stages.py's columns; sender -1 at the origin) into ``hop_stages``."""
        if hops["item"].size:
            names = pa.array(self.names, type=pa.string())
            sender = hops["sender"]
            self.writer.append("hop_stages", {
                "kind": pa.DictionaryArray.from_arrays(hops["block"].astype(np.int32), pa.array(["message", "block"])),
                "item": hops["item"],
                "node": pa.DictionaryArray.from_arrays(hops["node"].astype(np.int32), names),
                "sender": pa.DictionaryArray.from_arrays(pa.array(sender.astype(np.int32), mask=sender < 0), names),
                "hops": hops["hops"].astype(np.int32),
                "t": hops["t"],
                **{name: hops[name] for name in ("announce_ns", "request_ns", "transfer_ns", "validation_ns")},
            })

    def flush_events(self) -> None:
        if self.events:
            # desync_start is written when detected, stamped with when it began: restore
            # time order within the batch (stable, so same-time events keep their order).
            self.events.sort(key=lambda event: event[0])
            t, kind, node, value, height, detail = zip(*self.events)
            self.writer.append("events", {"t": t, "kind": kind, "node": node, "value": value,
                                          "height": height, "detail": detail})
            self.events = []

    def flush_messages(self) -> None:
        # At most FLUSH_ROWS records a batch: a run's end settles every record left at once,
        # and its rows as one batch would raise the run's peak memory.
        final, self.final = self.final, []
        for at in range(0, len(final), FLUSH_ROWS):
            self.writer.append("messages", self.msgs.rows(final[at:at + FLUSH_ROWS]))
        # Each piece is its own record batch: the writer cuts parts by rows, whatever the
        # batches, so joining them first would only copy them.
        for table, fee in self.tables:
            self.writer.append("messages", self.msgs.rows_from_columns(table, fee))
        self.tables = []
        self.table_rows = 0

    def flush(self) -> None:
        self.flush_messages()
        self.flush_events()
