"""Streaming history writer: targets append rows while running, Parquet files grow on disk.

Rows are buffered per table and flushed as Parquet row groups, so memory stays bounded
and a run that is interrupted still leaves readable files once ``close`` runs (the
runner calls it from a ``finally``). Output is deterministic: same rows, same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from msgstorm.history.schema import TABLES

__all__ = ["HistoryWriter"]


class _TableSink:
    def __init__(self, path: Path, schema: pa.Schema, row_group_size: int) -> None:
        self.schema = schema
        self.row_group_size = row_group_size
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0
        self.rows_written = 0
        self.writer = pq.ParquetWriter(path, schema, compression="zstd")

    def append(self, columns: dict[str, Any]) -> None:
        batch = pa.RecordBatch.from_pydict(columns, schema=self.schema)
        if batch.num_rows == 0:
            return
        self.pending.append(batch)
        self.pending_rows += batch.num_rows
        if self.pending_rows >= self.row_group_size:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        table = pa.Table.from_batches(self.pending, schema=self.schema)
        self.writer.write_table(table, row_group_size=self.row_group_size)
        self.rows_written += table.num_rows
        self.pending = []
        self.pending_rows = 0

    def close(self) -> None:
        self.flush()
        self.writer.close()


class HistoryWriter:
    """Writes ``messages``, ``deliveries``, ``events`` and ``run`` under ``RUN_DIR/history``.

    Lifecycle: create, ``append(table, columns)`` any number of times, ``close()`` once.
    """

    def __init__(self, history_dir: Path, row_group_size: int = 65_536) -> None:
        history_dir.mkdir(parents=True, exist_ok=True)
        self.dir = history_dir
        self._sinks = {
            name: _TableSink(history_dir / f"{name}.parquet", schema, row_group_size)
            for name, schema in TABLES.items()
        }
        self.closed = False

    def append(self, table: str, columns: dict[str, Any]) -> None:
        """Append rows given as equal-length columns (lists or numpy arrays)."""
        self._sinks[table].append(columns)

    def rows(self, table: str) -> int:
        sink = self._sinks[table]
        return sink.rows_written + sink.pending_rows

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for sink in self._sinks.values():
            sink.close()
