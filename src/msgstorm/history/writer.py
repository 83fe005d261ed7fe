"""Streaming, crash-safe history writer: targets append rows while running, parts land on disk.

Place in the pipeline: target (sim or live) -> **HistoryWriter** -> ``RUN_DIR/history`` ->
``read_history`` -> analysis. Each table is a directory of Parquet parts
(``history/messages/part-000000.parquet``, ...). A part is written under a temporary name,
fsync'd and renamed into place when complete, so whatever happens to the process — Ctrl-C,
SIGTERM, SIGKILL, power loss — every part on disk is whole and readable, and a reader never
sees a half-written one. Rows are buffered per table and a part is cut whenever a table holds
``row_group_size`` rows or ``FLUSH_INTERVAL_S`` of wall time has passed since the last cut,
so a killed run loses at most about a second of rows.

Content is deterministic (same rows, same order); where parts are cut depends on wall time,
so byte-for-byte the files of two runs may differ while their rows are the same.

Encoding and compressing a part runs on a background thread (pyarrow releases the GIL
there), and writing and syncing it on another, so on a machine with a second core it overlaps
with the simulation instead of adding to it, and a slow disk holds up neither. When the
caller is about to wait for every part (``sync``, ``close``: the end of a run), a helper
thread encodes the waiting parts from the newest back while the first goes on from the
oldest, so both cores encode a run's last parts. Parts land (are renamed into place)
in the order they were cut, whichever thread encoded them, so a killed run keeps a prefix of
each table's rows, never a part whose predecessor is missing. At most ``_IN_FLIGHT`` parts
wait to be encoded and ``_LANDING`` to be written, which keeps memory bounded; a write error
surfaces on a later append or at ``close``.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from msgstorm.history.events import EVENT_KINDS
from msgstorm.history.schema import LAZY_TABLES, TABLES

__all__ = ["FLUSH_INTERVAL_S", "PART_GLOB", "HistoryWriter", "use_system_allocator"]

_IN_FLIGHT = 3
# Parts encoded or not, not yet landed (see _Background.submit): room for a few slow fsyncs,
# few enough that a killed run still loses only about a second of rows.
_LANDING = 6
# The columns whose parts carry min/max statistics (see _TableSink).
_STATISTICS = frozenset({"msg_id", "t_intended", "t_committed", "block", "t_delivered", "t", "height"})
# At most this much wall time between parts of a table that has rows waiting.
FLUSH_INTERVAL_S = 1.0
_KNOWN_KINDS = frozenset(EVENT_KINDS)
PART_GLOB = "part-*.parquet"


def use_system_allocator() -> None:
    """Arrow allocates through the C library's allocator from here on. Its default (mimalloc)
    keeps the pages of freed buffers for reuse; writing a history frees a part's buffers
    after each encode, and analysis reads one large column after another and drops each once
    converted, so the kept pages only add to the peak (docs/performance.md). The system
    allocator hands them back at once."""
    if pa.default_memory_pool().backend_name != "system":
        pa.set_memory_pool(pa.system_memory_pool())


def _fsync_dir(directory: Path) -> None:
    """Make a rename durable (the directory entry itself must reach the disk)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # a platform without directory descriptors
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _encode_part(table: pa.Table, row_group_size: int, strings: list[str], encodings: dict[str, str],
                 compression: dict[str, str], statistics: list[str]) -> pa.Buffer:
    """A part's Parquet file, in memory (written with one call by ``_land_part``: Arrow's file
    stream writes page by page, a system call each)."""
    # Dictionary pages only for the string columns (kinds, agents, nodes, statuses: a
    # handful of values each). On the numeric columns they cost a third of the write
    # time and, with times and ids nearly all distinct, save nothing.
    # A string column may come as dictionary codes (see ``_batch``); without the Arrow schema
    # stored beside the Parquet one, every reader sees it as the string column it is.
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression=compression, use_dictionary=strings, column_encoding=encodings,
                   row_group_size=row_group_size, store_schema=False, write_statistics=statistics)
    return sink.getvalue()


def _land_part(data: pa.Buffer, directory: Path, name: str, durable: bool = True) -> None:
    """Write a part under a temporary name, make it durable (unless not ``durable``: the
    rename alone keeps a killed process's parts whole), rename it into place."""
    temporary = directory / f".{name}.tmp"
    with open(temporary, "wb") as handle:
        handle.write(data)
        if durable:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(temporary, directory / name)
    if durable:
        _fsync_dir(directory)


def _batch(columns: dict[str, Any], schema: pa.Schema) -> pa.RecordBatch:
    """Rows in ``schema``. A string column given as a ``pa.DictionaryArray`` of strings (a
    target's names taken from their codes) stays one: the Parquet writer stores its codes
    and names as they are, where a column of strings would be made and hashed again. Arrays
    of the column's type are taken as they are, numpy arrays of it without a copy."""
    arrays: list[pa.Array] = []
    fields: list[pa.Field] = []
    for field in schema:
        value = columns[field.name]
        if isinstance(value, pa.Array):
            if isinstance(value, pa.DictionaryArray) and pa.types.is_string(field.type) \
                    and pa.types.is_string(value.type.value_type):
                field = field.with_type(value.type)
            elif value.type != field.type:
                value = value.cast(field.type)
        else:
            value = pa.array(value, type=field.type)
        arrays.append(value)
        fields.append(field)
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


def _table(batches: list[pa.RecordBatch], schema: pa.Schema) -> pa.Table:
    """One part's batches as a table (batches that differ in how a string column comes,
    names or codes, are cast to the contract's types first)."""
    if all(batch.schema.equals(batches[0].schema) for batch in batches):
        return pa.Table.from_batches(batches)
    return pa.concat_tables([pa.Table.from_batches([batch]).cast(schema) for batch in batches])


class _TableSink:
    def __init__(self, directory: Path, schema: pa.Schema, row_group_size: int, background: _Background,
                 eager: bool = True, durable: bool = True) -> None:
        if eager:  # a table only some runs write (the market's, ranks) gets its directory with its first part
            directory.mkdir(parents=True, exist_ok=True)
        self.make_directory = not eager
        self.durable = durable
        self.directory = directory
        self.background = background
        self.schema = schema
        self.row_group_size = row_group_size
        self.strings = [field.name for field in schema if pa.types.is_string(field.type)]
        # The int64 columns (ids, times, sequence numbers) are stored as deltas: consecutive
        # rows are close (times of one run, ids counting up), so the deltas pack into a few
        # bits. A million messages: written in 0.24 s instead of 0.38 s, read back about
        # three times faster, a quarter smaller on disk. zstd on top of the packed deltas
        # saves a tenth of their size and costs a third of their read time (ten columns of
        # a million messages: 60 ms against 75-95): they are left uncompressed. The other
        # columns (fees, sizes, dictionary pages) are compressed with LZ4: zstd set up a
        # compression context for each of them in every part, a twentieth of a part's
        # encoding time, for files 1% smaller.
        self.encodings = {field.name: "DELTA_BINARY_PACKED" for field in schema if pa.types.is_int64(field.type)}
        self.compression = {field.name: "none" if field.name in self.encodings else "lz4" for field in schema}
        # Min/max statistics for the columns a reader selects rows by (ids, the time a message
        # was meant to go and the time it committed, blocks; a delivery's time, an event's):
        # a query on them skips the parts outside its range. Every other column's would cost
        # a tenth of a part's encoding time and skip nothing more: rows are in settle order,
        # so all of a message's times rise together with these. String columns carry none
        # (the writer finds them value by value through the dictionary).
        self.statistics = [field.name for field in schema if field.name in _STATISTICS]
        self.line = _Line()
        self.pending: list[pa.RecordBatch] = []
        self.pending_rows = 0
        self.rows_written = 0
        self.parts = 0

    def append(self, columns: dict[str, Any]) -> None:
        batch = _batch(columns, self.schema)
        if batch.num_rows == 0:
            return
        self.pending.append(batch)
        self.pending_rows += batch.num_rows
        # Parts of exactly row_group_size rows, each one Parquet row group: a reader pays
        # per row group read (a part of 65,536 rows plus a few had two, and a column of ten
        # million messages read a fifth slower).
        while self.pending_rows >= self.row_group_size:
            self._cut(self.row_group_size)

    def flush(self) -> None:
        """Every row waiting, as one part (however few: the interval or the end cut it)."""
        if self.pending_rows:
            self._cut(self.pending_rows)

    def _cut(self, rows: int) -> None:
        # Waiting for room first, the one step a Ctrl-C is likely to interrupt: then the rows
        # are still pending, and the part is cut again later. Past it, nothing waits: the
        # rows leave pending and the part is handed over at once.
        self.background.make_room()
        if self.make_directory:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.make_directory = False
        table = _table(self.pending, self.schema)
        part, rest = table.slice(0, rows), table.slice(rows)  # slices share the buffers
        name = f"part-{self.parts:06d}.parquet"
        directory = self.directory
        self.parts += 1
        self.rows_written += rows
        self.pending = rest.to_batches()
        self.pending_rows -= rows
        self.background.hand_over(
            lambda: _encode_part(part, self.row_group_size, self.strings, self.encodings, self.compression,
                                 self.statistics),
            (lambda data: _land_part(data, directory, name)) if self.durable
            else (lambda data: _land_part(data, directory, name, durable=False)), self.line)


class _Line:
    """A table's parts in order: once one fails, none after it lands (a killed or failed run
    keeps a prefix of the table, never rows with a hole before them)."""

    def __init__(self) -> None:
        self.failed: BaseException | None = None


class _Part:
    """One part on its way to disk: encoded once, by whichever encoding thread claims it
    first, then landed by the landing thread."""

    def __init__(self, encode: Callable[[], pa.Buffer], land: Callable[[pa.Buffer], None], line: _Line) -> None:
        self._encode: Callable[[], pa.Buffer] | None = encode
        self._land = land
        self.line = line
        self._claim = threading.Lock()
        self._data: pa.Buffer | None = None
        self.encoded = threading.Event()
        self.landed = threading.Event()
        self.error: BaseException | None = None

    def encode(self) -> None:
        """Encode the part, unless another thread has started it."""
        if not self._claim.acquire(blocking=False):
            return
        encode, self._encode = self._encode, None  # the part's rows are freed once encoded
        try:
            assert encode is not None
            self._data = encode()
        except BaseException as error:  # noqa: BLE001 - raised by result()
            self.error = error
        finally:
            self.encoded.set()

    def land(self) -> None:
        """Once encoded, write it into place; not if it failed to encode, nor if a part of
        its table before it failed."""
        self.encoded.wait()
        data, self._data = self._data, None
        try:
            if self.error is None and self.line.failed is not None:
                self.error = self.line.failed  # not written: it would follow a hole (the cause is raised)
            elif self.error is None and data is not None:
                self._land(data)
        except BaseException as error:  # noqa: BLE001 - raised by result()
            self.error = error
        finally:
            if self.error is not None and self.line.failed is None:
                self.line.failed = self.error
            self.landed.set()

    def result(self) -> None:
        self.landed.wait()
        if self.error is not None:
            raise self.error


class _Background:
    """Parts through two threads: one encodes them in the order they were cut (CPU), the
    other writes, syncs and renames them in that order (mostly waiting for the disk), so a
    part's fsync does not hold up the next part's encoding. When the caller is about to wait
    for all of them, a third thread helps encode (``help``)."""

    def __init__(self) -> None:
        self.encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="msgstorm-history")
        self.lander = ThreadPoolExecutor(max_workers=1, thread_name_prefix="msgstorm-history-land")
        self.helper: ThreadPoolExecutor | None = None
        self.jobs: deque[_Part] = deque()  # not landed yet, oldest first

    def make_room(self) -> None:
        """Wait until another part may be handed over."""
        # Parts waiting to be encoded hold their rows (megabytes each): at most _IN_FLIGHT.
        # Encoded parts waiting for the disk hold only their file (a tenth of that): up to
        # _LANDING of them, so that a slow fsync does not hold up the simulation.
        while True:
            waiting = [part for part in self.jobs if not part.encoded.is_set()]
            if len(waiting) < _IN_FLIGHT:
                break
            waiting[0].encoded.wait()  # the oldest: the encoding thread goes in order
        while len(self.jobs) >= _LANDING:
            self.jobs.popleft().result()  # re-raises a failed write here

    def hand_over(self, encode: Callable[[], pa.Buffer], land: Callable[[pa.Buffer], None], line: _Line) -> None:
        """Encode a part and land it (``land(data)``) after every part handed over before it
        (``make_room`` first)."""
        part = _Part(encode, land, line)
        # One hand-over from this thread: the encoding thread asks for the landing itself,
        # so a Ctrl-C here cannot leave a part that is encoded but never landed (or waited
        # for and never encoded). The landings are asked for in order, as the jobs run.
        self.encoder.submit(self._encode_then_land, part)
        self.jobs.append(part)

    def _encode_then_land(self, part: _Part) -> None:
        part.encode()  # returns at once if the helper took it
        self.lander.submit(part.land)

    def help(self) -> None:
        """A second encoding thread takes the waiting parts nobody has started, newest first,
        while the first goes on from the oldest (called when the caller is about to wait for
        them all: at the end of a run both cores encode its last parts). Encoding stays off
        the caller's thread, so Ctrl-C there interrupts only its waiting."""
        waiting = list(self.jobs)
        if len(waiting) < 2:
            return
        if self.helper is None:
            self.helper = ThreadPoolExecutor(max_workers=1, thread_name_prefix="msgstorm-history-end")
        for part in reversed(waiting):
            self.helper.submit(part.encode)

    def wait(self) -> None:
        self.help()
        while self.jobs:
            self.jobs.popleft().result()

    def shutdown(self) -> None:
        # The encoding thread first: its jobs ask for the last landings.
        for pool in (self.encoder, self.helper, self.lander):
            if pool is not None:
                pool.shutdown(wait=True)


class HistoryWriter:
    """Writes ``messages``, ``deliveries``, ``events`` and ``run`` under ``RUN_DIR/history``.

    Lifecycle: create, ``append(table, columns)`` any number of times (``flush`` to make what
    was appended durable now, of every table or of some), ``close()`` once.

    ``durable`` False skips the fsyncs (a part still lands whole, renamed into place): for a
    history read once and then removed, as a sweep's runs are, where the syncs cost more
    wall time than the rest of writing it (docs/performance.md, "Sweeps").
    """

    def __init__(self, history_dir: Path, row_group_size: int = 65_536,
                 clock: Callable[[], float] = time.monotonic, *, durable: bool = True) -> None:
        history_dir.mkdir(parents=True, exist_ok=True)
        use_system_allocator()
        self.dir = history_dir
        self._clock = clock
        self._last_flush = clock()
        self._background = _Background()
        self._sinks = {
            name: _TableSink(history_dir / name, schema, row_group_size, self._background,
                             eager=name not in LAZY_TABLES, durable=durable)
            for name, schema in TABLES.items()
        }
        self.closed = False

    def append(self, table: str, columns: dict[str, Any]) -> None:
        """Append rows given as equal-length columns (lists or numpy arrays). Event kinds
        must be ``EventKind`` values: an unknown kind raises ``ValueError`` and nothing of
        the batch is written."""
        if table == "events":
            unknown = set(columns["kind"]) - _KNOWN_KINDS
            if unknown:
                raise ValueError(f"unknown event kind(s) {sorted(map(str, unknown))}; "
                                 f"kinds are msgstorm.history.events.EventKind")
        self._sinks[table].append(columns)
        if self._clock() - self._last_flush >= FLUSH_INTERVAL_S:
            self.flush()

    def flush(self, *tables: str) -> None:
        """Cut a part of every table that has rows waiting (written on the background thread),
        or of ``tables`` only (a live run's events, made durable as they happen)."""
        if not tables:
            self._last_flush = self._clock()
        for name in tables or self._sinks:
            self._sinks[name].flush()

    def sync(self) -> None:
        """Flush and wait until every part is on disk."""
        self.flush()
        self._background.wait()

    def rows(self, table: str) -> int:
        sink = self._sinks[table]
        return sink.rows_written + sink.pending_rows

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        # Every table is flushed even if one failed: what the others hold stays readable.
        failure: BaseException | None = None
        for sink in self._sinks.values():
            try:
                sink.flush()
            except BaseException as error:  # noqa: BLE001 - raised below
                failure = failure or error
        self._background.help()
        while self._background.jobs:
            try:
                self._background.jobs.popleft().result()
            except BaseException as error:  # noqa: BLE001 - raised below
                failure = failure or error
        self._background.shutdown()
        if failure is not None:
            raise failure
