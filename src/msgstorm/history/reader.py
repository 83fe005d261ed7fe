"""Reading a run's history back: the only input analysis and reports take.

Place in the pipeline: ``RUN_DIR/history`` -> **read_history** -> ``History`` -> analysis.
A table is a directory of Parquet parts (read in part order, so rows come back in the order
they were written); a leftover temporary file of a part that was being written when the
process died is ignored. Histories written before parts existed (one ``<table>.parquet``
file per table) are read too.

A run that was killed has no final ``run`` row: ``History.cut_off`` says so, and the
analysis reports it instead of presenting a partial history as a whole one.
"""

from __future__ import annotations

import json
import weakref
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from msgstorm.history.schema import OPTIONAL_TABLES, TABLES, is_simulated
from msgstorm.history.writer import PART_GLOB, use_system_allocator

__all__ = ["COLUMN_CACHE_BYTES", "DESTINATION_DIR", "History", "HistoryMissing", "count_rows", "int64_numpy", "read_history", "read_table"]

COLUMN_CACHE_BYTES = 64 * 2**20
# Where a ``[crosschain]`` run keeps its destination chain's run directory, inside its own.
DESTINATION_DIR = "destination"


class History:
    """The four history tables of one run.

    Read from a run directory, a table is loaded only when asked for, and ``columns`` reads
    just the columns a metric needs, so analysing ten million messages does not hold every
    column of every row (``messages`` and ``deliveries`` as whole tables are for tests and
    small tools). Built from Arrow tables (a history in memory), it serves those.
    """

    def __init__(self, messages: pa.Table | None = None, deliveries: pa.Table | None = None,
                 events: pa.Table | None = None, run: pa.Table | None = None, *,
                 directory: Path | None = None) -> None:
        given = {"messages": messages, "deliveries": deliveries, "events": events, "run": run}
        if directory is None and any(table is None for table in given.values()):
            raise ValueError("a History needs every table, or the history directory to read them from")
        self._tables: dict[str, pa.Table] = {name: table for name, table in given.items() if table is not None}
        if directory is None:
            self._tables.update({name: TABLES[name].empty_table() for name in OPTIONAL_TABLES})
        self._directory = directory
        # Each part file opened once (its footer parsed once), read a few columns at a time.
        self._parts: dict[str, list[tuple[pq.ParquetFile, frozenset[str]]]] = {}
        # Columns converted for analysis (``ints``, ``codes``), kept while they fit in
        # COLUMN_CACHE_BYTES (oldest out first): metrics, checkers and the report ask for the
        # same few columns again, and they share one read-only copy. A column over a quarter
        # of the budget (a run of millions of messages) is not kept: there memory, not time,
        # is what limits the analysis, and it is read again when asked for again.
        self._cache: OrderedDict[tuple[str, ...], Any] = OrderedDict()
        self._cached_bytes = 0
        # A ``[crosschain]`` run's second chain, read from ``RUN_DIR/destination`` beside it.
        self.destination: History | None = None
        self._handed_out: dict[tuple[str, ...], tuple[weakref.ref[np.ndarray], weakref.ref[np.ndarray]]] = {}

    def _open_parts(self, name: str) -> list[tuple[pq.ParquetFile, frozenset[str]]]:
        if name not in self._parts:
            assert self._directory is not None
            # String columns come back as the dictionaries Parquet stores them in (codes and
            # a few distinct values), not as a string a row: ``codes`` takes them as they are.
            strings = [field.name for field in TABLES[name] if pa.types.is_string(field.type)]
            files = [pq.ParquetFile(source, read_dictionary=strings) for source in _sources(self._directory, name)]
            self._parts[name] = [(file, frozenset(file.schema_arrow.names)) for file in files]
        return self._parts[name]

    def table(self, name: str) -> pa.Table:
        """A whole table (read once, then kept)."""
        if name not in self._tables:
            assert self._directory is not None
            self._tables[name] = read_table(self._directory, name)
        return self._tables[name]

    def columns(self, name: str, columns: list[str]) -> pa.Table:
        """Only ``columns`` of a table: from memory if the whole table is there, else from disk
        (an integer column ``ints`` holds is wrapped as it is, without a copy)."""
        if name in self._tables:
            return self._tables[name].select(columns)
        fields = [TABLES[name].field(c) for c in columns]
        found: dict[str, Any] = {}
        for field in fields:
            held = self._held_ints(name, field)
            if held is not None:
                found[field.name] = pa.chunked_array([_arrow_ints(*held, field.type)])
        missing = [c for c in columns if c not in found]
        if missing:
            target = pa.schema([TABLES[name].field(c) for c in missing])
            tables = [_conform(_read_part(file, [c for c in missing if c in present]), target)
                      for file, present in self._open_parts(name)]
            read = pa.concat_tables(tables) if tables else target.empty_table()
            found.update({c: read.column(c) for c in missing})
        return pa.Table.from_arrays([found[c] for c in columns], schema=pa.schema(fields))

    def parts(self, name: str, columns: list[str]) -> Iterator[pa.Table]:
        """``columns`` of a table one Parquet part at a time, in the order they were written
        (a history in memory: its table as one part), for a pass that needs the rows but
        never the whole column: memory is one part's Arrow columns plus what the pass keeps.
        String columns may come as dictionaries (as Parquet stores them); a column a former
        version did not write comes as nulls."""
        if name in self._tables:
            yield self._tables[name].select(columns)
            return
        fields = [TABLES[name].field(c) for c in columns]
        at = 0
        for file, present in self._open_parts(name):
            rows = file.metadata.num_rows
            # An integer column ``ints`` holds (read for a metric before) is taken from there,
            # the part's rows of it, and not decoded from the file again: the checkers' and
            # the stage breakdown's passes ask for columns the metrics read whole (an analysis
            # of a million messages decoded 30 columns' worth of parts, now 20). Nothing more
            # is kept for it.
            held = {f.name: ints for f in fields if f.name in present
                    and (ints := self._held_ints(name, f)) is not None}
            unread = [c for c in columns if c in present and c not in held]
            read = _read_part(file, unread) if unread else None
            arrays = []
            for field in fields:
                if field.name in held:
                    values, present_rows = held[field.name]
                    arrays.append(_arrow_ints(values[at:at + rows], present_rows[at:at + rows], field.type))
                elif read is not None and field.name in present:
                    arrays.append(read.column(field.name))
                else:
                    arrays.append(pa.nulls(rows, field.type))
            at += rows
            yield pa.Table.from_arrays(arrays, names=columns)

    def _keep(self, key: tuple[str, ...], values: Any, size: int) -> None:
        if size > COLUMN_CACHE_BYTES // 4:  # a long run's columns: read again rather than held
            return
        self._cache[key] = (values, size)
        self._cached_bytes += size
        while self._cached_bytes > COLUMN_CACHE_BYTES:
            # Integer columns go first, oldest first: a string column's codes take a byte a
            # row (an eighth of an integer column) and cost a read and a renumbering again.
            oldest = next((k for k in self._cache if k[0] == "ints"), next(iter(self._cache)))
            _, dropped = self._cache.pop(oldest)
            self._cached_bytes -= dropped

    def column(self, name: str, column: str) -> pa.ChunkedArray:
        return self.columns(name, [column]).column(column)

    def ints(self, name: str, column: str) -> tuple[np.ndarray, np.ndarray]:
        """An integer column as numpy (int64 values with nulls as 0, bool present mask),
        both read-only: the analysis' metrics and checkers share one copy instead of each
        converting the column again (copy before writing into it)."""
        key = ("ints", name, column)
        if key in self._cache:
            self._cache.move_to_end(key)
            values, present = self._cache[key][0]
            return values, present
        held = self._held(key)
        if held is not None:
            return held
        values, present = int64_numpy(self._int64_chunks(name, column), self.num_rows(name))
        values.setflags(write=False)
        present.setflags(write=False)
        size = int(values.nbytes + present.nbytes)
        # A column no longer kept (or never: ten million messages, 90 MB a column) is handed
        # out again while a metric still holds it (a weak reference), so it is not read twice
        # for nothing and adds no memory. One over the budget is not held once its last
        # holder lets go: kept, it sat under every later step's own columns (the analysis'
        # peak at millions of messages), and reading it again costs tens of milliseconds.
        self._handed_out[key] = (weakref.ref(values), weakref.ref(present))
        self._keep(key, (values, present), size)
        return values, present

    def retain(self, name: str, columns: list[str]) -> None:
        """Integer columns of ``name`` that a caller still holds and a later step will ask for
        again (the analysis' latency columns, which the report reads): kept as the most
        recently used, if the budget allows, so that step does not read them again once
        the caller lets them go. (Held by a metric, not asked of the cache since, they are
        the first the budget drops.)"""
        for column in columns:
            key = ("ints", name, column)
            if key in self._cache:
                self._cache.move_to_end(key)
                continue
            held = self._held(key)
            if held is not None:
                self._keep(key, held, int(held[0].nbytes + held[1].nbytes))

    def _held_ints(self, name: str, field: pa.Field) -> tuple[np.ndarray, np.ndarray] | None:
        """An int64 column ``ints`` holds now (kept, or handed out and still alive), else None:
        nothing is read, and what the budget keeps does not change."""
        if not pa.types.is_int64(field.type):
            return None
        key = ("ints", name, field.name)
        kept = self._cache.get(key)
        return kept[0] if kept is not None else self._held(key)

    def _held(self, key: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray] | None:
        """A large column read before and still in memory (see ``ints``), else None."""
        refs = self._handed_out.get(key)
        if refs is None:
            return None
        values, present = refs[0](), refs[1]()
        return None if values is None or present is None else (values, present)

    def _int64_chunks(self, name: str, column: str) -> Iterator[tuple[int, pa.Array | None]]:
        """(rows, int64 chunk) one part at a time (None: a part written without the column),
        so reading a column holds one part of Arrow memory at a time, not the whole column."""
        if name in self._tables:
            for chunk in self._tables[name].column(column).chunks:
                yield len(chunk), _as_int64(chunk)
            return
        for file, present in self._open_parts(name):
            if column not in present:
                yield file.metadata.num_rows, None
                continue
            for chunk in _read_part(file, [column]).column(column).chunks:
                yield len(chunk), _as_int64(chunk)

    def codes(self, name: str, column: str) -> tuple[np.ndarray, list[str]]:
        """A string column as (integer codes, the distinct values in order of first
        appearance), the codes read-only and as narrow as the values allow: a handful of
        names (kinds, agents, nodes, statuses) costs a byte a row instead of a Python or
        Arrow string."""
        key = ("codes", name, column)
        if key in self._cache:
            self._cache.move_to_end(key)
            indices, values = self._cache[key][0]
            return indices, list(values)
        if name in self._tables:
            encoded = self._tables[name].column(column).combine_chunks().dictionary_encode()
            indices, order = _first_appearance(np.asarray(encoded.indices.to_numpy(zero_copy_only=False)),
                                               len(encoded.dictionary))
            names = encoded.dictionary.to_pylist()
            values = [str(names[code]) for code in order]
        else:
            found = self._part_codes(name, column)
            if found is None:
                return np.zeros(0, dtype=np.int32), []
            indices, values = found
        indices.setflags(write=False)  # shared by later callers: nobody may change it
        self._keep(key, (indices, tuple(values)), int(indices.nbytes))
        return indices, values

    def _part_codes(self, name: str, column: str) -> tuple[np.ndarray, list[str]] | None:
        """``codes`` of a table on disk, a part at a time: each part's dictionary codes are
        renumbered to the values' order of first appearance over the parts so far and placed
        in one array of the column's length, so the column's codes are held once (4 bytes a
        row, then narrowed) rather than as every part's, their unified copy and the
        renumbered one at once (docs/performance.md). None: no part wrote the column. The
        same codes and values as renumbering the unified column."""
        parts = [(file, present) for file, present in self._open_parts(name) if column in present]
        if not parts:
            return None
        codes = np.empty(sum(file.metadata.num_rows for file, _ in parts), dtype=np.int32)
        code_of: dict[str, int] = {}  # value -> its code, in order of first appearance
        at = 0
        for file, _ in parts:
            for chunk in _read_part(file, [column]).column(column).chunks:
                if not pa.types.is_dictionary(chunk.type):  # a former version's
                    chunk = chunk.dictionary_encode()
                indices = np.asarray(chunk.indices.to_numpy(zero_copy_only=False))
                if indices.size == 0:
                    continue
                names = chunk.dictionary.to_pylist()
                used, first = _first_uses(indices, len(names))
                renumber = np.zeros(max(len(names), 1), dtype=np.int32)
                for old in used[np.argsort(first, kind="stable")].tolist():
                    renumber[old] = code_of.setdefault(str(names[old]), len(code_of))
                codes[at:at + indices.size] = renumber[indices]
                at += indices.size
        width = np.int8 if len(code_of) <= 127 else np.int16 if len(code_of) <= 32767 else np.int32
        return codes[:at].astype(width), list(code_of)

    def num_rows(self, name: str) -> int:
        if name in self._tables:
            return int(self._tables[name].num_rows)
        return sum(file.metadata.num_rows for file, _ in self._open_parts(name))

    @property
    def messages(self) -> pa.Table:
        return self.table("messages")

    @property
    def deliveries(self) -> pa.Table:
        return self.table("deliveries")

    @property
    def events(self) -> pa.Table:
        return self.table("events")

    @property
    def run(self) -> pa.Table:
        return self.table("run")

    @property
    def edges(self) -> pa.Table:
        """The overlay's links (empty if the target did not write them)."""
        return self.table("edges")

    @property
    def run_info(self) -> dict[str, Any]:
        """The latest ``run`` row as a dict (the final one if the run ended)."""
        if self.run.num_rows == 0:
            return {}
        return dict(self.run.slice(self.run.num_rows - 1).to_pylist()[0])

    @property
    def is_simulated(self) -> bool:
        """Whether the simulator wrote this history (``history.schema.is_simulated``)."""
        return is_simulated(self.run_info.get("target"))

    @property
    def cut_off(self) -> bool:
        """True when the run never wrote its final row: it was killed or lost power, and the
        history holds what was flushed before that (messages still moving are absent)."""
        info = self.run_info
        return not info or not info.get("completed", True)

    @property
    def start_failure(self) -> str | None:
        """Why a live run never started (a server that would not start, a client that could
        not connect: nothing was sent), from its ``client_error`` event with client
        ``start``; None for a run that started."""
        info = self.run_info
        if not info or info.get("completed", True) or self.run.num_rows < 2:
            return None  # completed, or killed before its final row: not a failed start
        events = self.columns("events", ["kind", "detail"]).to_pylist()
        for event in events:
            if event["kind"] == "client_error" and event["detail"]:
                detail = json.loads(event["detail"])
                if detail.get("client") == "start":
                    return str(detail.get("error", "no detail given"))
        return None

    @property
    def scenario(self) -> dict[str, Any]:
        """The validated scenario the run used (units normalised: ns, per-second, bytes)."""
        return dict(json.loads(self.run_info.get("scenario_json", "{}")))

    @property
    def nodes(self) -> list[dict[str, str]]:
        return list(json.loads(self.run_info.get("nodes_json", "[]")))


class HistoryMissing(FileNotFoundError):
    """A run directory without a readable history."""


def _read_part(file: pq.ParquetFile, columns: list[str]) -> pa.Table:
    """``columns`` of one part file kept open (``History._open_parts``). Arrow's reader keeps
    the last read's column chunks as they are in the file until its next read; a read of no
    column lets them go at once. Kept, every part's last read would be held to the end of
    the run's analysis (docs/dev/performance-log.md, "Costs the docstrings name")."""
    table = file.read(columns=columns, use_threads=False)
    file.read(columns=[], use_threads=False)
    return table


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """A table in ``schema``: columns a former version did not write are filled in (the
    ``run`` table's ``completed``: a one-file history was only readable once complete)."""
    columns = []
    for field in schema:
        if field.name in table.column_names:
            column = table.column(field.name)
            columns.append(column if column.type == field.type else column.cast(field.type))
        elif field.name == "completed":
            columns.append(pa.array([True] * table.num_rows, type=field.type))
        else:
            columns.append(pa.nulls(table.num_rows, type=field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def _first_appearance(indices: np.ndarray, size: int) -> tuple[np.ndarray, list[int]]:
    """Dictionary codes renumbered to the order in which their values first appear, unused
    values left out (a dictionary a target wrote whole may name agents that sent nothing),
    as the narrowest integer that holds them; and the old code of each new one."""
    order: list[int] = []
    seen = np.zeros(size, dtype=np.bool_)
    block = 65_536  # every value has usually appeared in the first block
    wanted = size  # until a value is missing from the first block: then counted (a pass over all)
    for start in range(0, indices.size, block):
        if len(order) == wanted:
            break
        distinct, first = np.unique(indices[start:start + block], return_index=True)
        new = ~seen[distinct]
        order.extend(distinct[new][np.argsort(first[new], kind="stable")].tolist())
        seen[distinct] = True
        if start == 0 and len(order) < size:
            wanted = int(np.count_nonzero(np.bincount(indices, minlength=size)))
    width = np.int8 if len(order) <= 127 else np.int16 if len(order) <= 32767 else np.int32
    if order == list(range(size)):  # the dictionary is in order of appearance already: a cast
        return indices.astype(width), order
    renumber = np.zeros(max(size, 1), dtype=np.int64)
    renumber[order] = np.arange(len(order))
    return renumber.astype(width)[indices], order


def _arrow_ints(values: np.ndarray, present: np.ndarray, type_: pa.DataType) -> pa.Array:
    """Integer values and their present mask (as ``History.ints`` holds them) as an Arrow
    array, nulls where absent."""
    return pa.array(values, type=type_, mask=None if present.all() else ~present)


def _as_int64(chunk: pa.Array) -> pa.Array:
    """An integer chunk as int64 (a cast only when it is not: Arrow's casts load its compute
    module, which a report's start-up should not pay)."""
    return chunk if chunk.type == pa.int64() else chunk.cast(pa.int64())


def int64_numpy(chunks: Iterable[tuple[int, pa.Array | None]], rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer chunks copied straight from their Arrow buffers into one numpy array (nulls as
    0) and a present mask: no filled or concatenated Arrow copy of the whole column."""
    values = np.zeros(rows, dtype=np.int64)
    present = np.zeros(rows, dtype=np.bool_)
    at = 0
    for count, chunk in chunks:
        if chunk is not None and count and chunk.null_count < count:
            validity, data = chunk.buffers()[:2]
            start = chunk.offset
            values[at:at + count] = np.frombuffer(data, dtype=np.int64, count=start + count)[start:]
            if chunk.null_count and validity is not None:
                bits = np.frombuffer(validity, dtype=np.uint8)
                mask = np.unpackbits(bits, count=start + count, bitorder="little")[start:].view(np.bool_)
                present[at:at + count] = mask
                values[at:at + count][~mask] = 0  # a null's slot holds whatever Arrow left there
            else:
                present[at:at + count] = True
        at += count
    return values, present


def _sources(history_dir: Path, name: str) -> list[Path]:
    directory = history_dir / name
    single = history_dir / f"{name}.parquet"
    if directory.is_dir():
        return sorted(directory.glob(PART_GLOB))
    if single.is_file():
        return [single]
    if name in OPTIONAL_TABLES:
        return []
    raise HistoryMissing(f"{directory}: history table missing (is {history_dir.parent} a msgstorm run directory?)")


def read_table(history_dir: Path, name: str, columns: list[str] | None = None) -> pa.Table:
    """One table of a history directory (parts, or a former single file), all columns or some."""
    schema = TABLES[name]
    target = schema if columns is None else pa.schema([schema.field(c) for c in columns])
    wanted = None if columns is None else [c for c in columns]
    tables = []
    for source in _sources(history_dir, name):
        # One file as it is: pq.read_table would import and set up pyarrow.dataset (25 ms
        # at start-up) to read it.
        with pq.ParquetFile(source) as file:
            present = set(file.schema_arrow.names)
            read = file.read(columns=None if wanted is None else [c for c in wanted if c in present])
        tables.append(_conform(read, target))
    if not tables:
        return target.empty_table()
    return pa.concat_tables(tables)


def count_rows(history_dir: Path, name: str) -> int:
    """Rows of a table from the Parquet footers alone."""
    return sum(pq.ParquetFile(source).metadata.num_rows for source in _sources(history_dir, name))


def read_history(run_dir: str | Path) -> History:
    """Read ``RUN_DIR/history``; raises ``FileNotFoundError`` naming what is missing."""
    history_dir = Path(run_dir) / "history"
    if not Path(run_dir).exists():
        raise HistoryMissing(f"{run_dir}: no such directory")
    if not Path(run_dir).is_dir():
        raise HistoryMissing(f"{run_dir}: not a directory (a run directory holds history/, summary.json, ...)")
    if not history_dir.is_dir():
        raise HistoryMissing(f"{history_dir}: no history (is {run_dir} a msgstorm run directory?)")
    for name in TABLES:
        _sources(history_dir, name)  # every table is there (raises naming the missing one)
    use_system_allocator()
    history = History(directory=history_dir)
    history.table("run")  # small, and read at once so a torn history fails here, not mid-analysis
    history.table("events")
    if (Path(run_dir) / DESTINATION_DIR / "history").is_dir():
        history.destination = read_history(Path(run_dir) / DESTINATION_DIR)
    return history


# Dictionaries of at most this many values find each value's first row by one comparison
# a value (a kind, an agent, a status: a handful), rather than by sorting the rows.
_FEW_CODES = 16


def _first_uses(indices: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The codes ``indices`` uses, ascending, and the row of each one's first use: what
    ``np.unique(indices, return_index=True)`` gives, without its sort for a small dictionary
    of ``size`` values."""
    if size > _FEW_CODES:
        used, first = np.unique(indices, return_index=True)
        return used, first
    used = np.flatnonzero(np.bincount(indices, minlength=size))
    return used, np.array([int(np.argmax(indices == code)) for code in used.tolist()], dtype=np.int64)
