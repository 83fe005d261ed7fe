"""Streaming history writer: targets append rows while running, Parquet files grow on disk.

Rows are buffered per table and flushed as Parquet row groups, so memory stays bounded
and a run that is interrupted still leaves readable files once ``close`` runs (the
runner calls it from a ``finally``). Output is deterministic: same rows, same bytes.

Encoding and compressing a row group runs on one background thread (pyarrow releases the
GIL there), so on a machine with a second core it overlaps with the simulation instead
of adding to it. At most ``_IN_FLIGHT`` row groups wait for that thread, which keeps
memory bounded; a write error surfaces on the next append or at ``close``.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from msgstorm.history.schema import TABLES

__all__ = ["HistoryWriter"]

_IN_FLIGHT = 2


class _TableSink:
    def __init__(self, path: Path, schema: pa.Schema, row_group_size: int, background: _Background) -> None:
        self.background = background
        self.schema = schema
        self.row_group_size = row_group_size
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0
        self.rows_written = 0
        # Dictionary pages only for the string columns (kinds, agents, nodes, statuses: a
        # handful of values each). On the numeric columns they cost a third of the write
        # time and, with times and ids nearly all distinct, save nothing.
        strings = [field.name for field in schema if pa.types.is_string(field.type)]
        self.writer = pq.ParquetWriter(path, schema, compression="zstd", use_dictionary=strings)

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
        self.background.submit(self.writer.write_table, table, self.row_group_size)
        self.rows_written += table.num_rows
        self.pending = []
        self.pending_rows = 0

    def close(self) -> None:
        try:
            self.flush()
            self.background.wait()
        finally:
            self.writer.close()


class _Background:
    """One writer thread, fed in order; the caller waits once ``_IN_FLIGHT`` jobs queue."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="msgstorm-history")
        self.jobs: deque[Future[None]] = deque()

    def submit(self, write: object, table: pa.Table, row_group_size: int) -> None:
        while len(self.jobs) >= _IN_FLIGHT:
            self.jobs.popleft().result()  # re-raises a failed write here
        self.jobs.append(self.pool.submit(write, table, row_group_size=row_group_size))  # type: ignore[arg-type]

    def wait(self) -> None:
        while self.jobs:
            self.jobs.popleft().result()

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True)


class HistoryWriter:
    """Writes ``messages``, ``deliveries``, ``events`` and ``run`` under ``RUN_DIR/history``.

    Lifecycle: create, ``append(table, columns)`` any number of times, ``close()`` once.
    """

    def __init__(self, history_dir: Path, row_group_size: int = 65_536) -> None:
        history_dir.mkdir(parents=True, exist_ok=True)
        self.dir = history_dir
        self._background = _Background()
        self._sinks = {
            name: _TableSink(history_dir / f"{name}.parquet", schema, row_group_size, self._background)
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
        # Every table is closed even if one failed: what the others hold stays readable.
        failure: BaseException | None = None
        for sink in self._sinks.values():
            try:
                sink.close()
            except BaseException as error:  # re-raised below, once the rest are closed
                failure = failure or error
        self._background.shutdown()
        if failure is not None:
            raise failure
