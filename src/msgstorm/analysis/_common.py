"""Shared plumbing for analysis: history columns as numpy arrays, exact percentiles, units.

Place in the pipeline: the first thing every analysis module touches. It knows nothing about
metrics; it reads the history tables once into numpy arrays (nullable times become a value
array plus a ``present`` mask) and says how results are expressed: milliseconds rounded to
3 decimals, plain Python numbers so ``summary.json`` needs no numpy-aware encoder.

Percentiles are exact and nearest-rank: the reported value is always an observed latency,
the smallest one with at least q% of samples at or below it (rank ceil(q/100 x n), taken in
exact rational arithmetic: ``nearest_rank_index``). That is what an HDR histogram reports live, so sim and live read the same way.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from msgstorm.history.events import EventKind
from msgstorm.history.reader import History, int64_numpy
from msgstorm.history.schema import STATUSES
from msgstorm.progress import nearest_rank_index

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
Bools = npt.NDArray[np.bool_]

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000

# Defaults of ``AnalysisSpec`` (used when a history's scenario lacks the section).
DEFAULT_KNEE_LATENCY_FACTOR = 3.0
DEFAULT_THROUGHPUT_FRACTION = 0.95
DEFAULT_WINDOW_NS = NS_PER_S
# Rows a chunk of ``MessageArrays.latency_ns`` gathers at a time (8 MB a column).
_LATENCY_CHUNK = 1 << 20


def nullable_ints(column: pa.ChunkedArray) -> tuple[I64, Bools]:
    """A nullable integer column as (values with nulls as 0, present mask), both the
    caller's own (writable)."""
    chunks = ((len(chunk), chunk if chunk.type == pa.int64() else chunk.cast(pa.int64())) for chunk in column.chunks)
    return int64_numpy(chunks, len(column))


@dataclass(frozen=True)
class Stamp:
    """One nullable time (or number) column: ``values[i]`` is meaningful where ``present[i]``."""

    values: I64
    present: Bools


class _StatusMasks:
    """``status["committed"]`` etc.: a boolean mask per status, computed from one byte a
    message when asked for (five kept masks would cost five bytes a message)."""

    def __init__(self, code: npt.NDArray[np.int8]) -> None:
        self._code = code

    def __getitem__(self, status: str) -> Bools:
        mask: Bools = self._code == STATUSES.index(status)
        return mask


class MessageArrays:
    """The ``messages`` table as numpy arrays, one column at a time, shared by every metric.

    Memory is what decides how long a run can be analysed, so only the columns nearly every
    metric needs are held here: ``t_intended``, ``t_committed`` and the status (about
    18 bytes a message). The stage times, ``seq_no``, ``msg_id`` and the agent codes are
    asked of the history each time (``History.ints``, ``History.codes``): it keeps one
    read-only copy of a column while its budget allows (a million messages: every column,
    shared with the checkers and the report), and for a longer run reads it again, so a
    metric that needs two of them holds two, not all of them (a column of ten million
    messages reads in a few tens of milliseconds). Arrays from here are read-only: a
    metric that computes in place works on its own copy.
    """

    def __init__(self, history: History) -> None:
        self._history = history
        # Held as a whole stamp, so a checker asking the history for it again gets this copy.
        self._t_intended = self._stamp("t_intended")
        self.t_intended: I64 = self._t_intended.values
        self.t_committed = self._stamp("t_committed")
        codes, names = history.codes("messages", "status")
        # One byte a message for the status; each status's mask is made when asked for.
        self._status_code = np.full(codes.shape[0], -1, dtype=np.int8)
        for index, status in enumerate(STATUSES):
            if status in names:
                self._status_code[codes == names.index(status)] = index
        del codes
        self.status = _StatusMasks(self._status_code)
        self._committed: Bools | None = None
        self._latency_percentiles: dict[float, float | None] = {}

    @classmethod
    def from_history(cls, history: History) -> MessageArrays:
        return cls(history)

    def _stamp(self, name: str) -> Stamp:
        values, present = self._history.ints("messages", name)
        return Stamp(values, present)

    def stamp_parts(self, names: Sequence[str]) -> Iterator[tuple[slice, list[Stamp]]]:
        """Columns ``names`` a Parquet part at a time, each as a ``Stamp`` of that part's
        rows, with the rows' slice of the shared arrays: for a pass that needs a row at a
        time, holding one part of them rather than the run's columns."""
        at = 0
        for part in self._history.parts("messages", list(names)):
            rows = slice(at, at + part.num_rows)
            at += part.num_rows
            yield rows, [Stamp(*nullable_ints(part.column(name))) for name in names]

    # Asked of the history on each access, not held here (see the class docstring).
    @property
    def agent(self) -> npt.NDArray[np.integer[Any]]:
        """Dictionary codes of the ``agent`` column: one stream per agent."""
        return self._history.codes("messages", "agent")[0]

    @property
    def msg_id(self) -> I64:
        return self._history.ints("messages", "msg_id")[0]

    @property
    def t_sent(self) -> Stamp:
        return self._stamp("t_sent")

    @property
    def t_received(self) -> Stamp:
        return self._stamp("t_received")

    @property
    def t_dequeued(self) -> Stamp:
        return self._stamp("t_dequeued")

    @property
    def t_sequenced(self) -> Stamp:
        return self._stamp("t_sequenced")

    @property
    def seq_no(self) -> Stamp:
        return self._stamp("seq_no")

    def status_counts(self, mask: Bools | None = None) -> dict[str, int]:
        """Messages of each status (restricted to ``mask`` if given)."""
        code = self._status_code if mask is None else self._status_code[mask]
        # One comparison per status on the byte codes: five times faster than widening them for a bincount.
        return {status: int(np.count_nonzero(code == index)) for index, status in enumerate(STATUSES)}

    @property
    def count(self) -> int:
        return int(self.t_intended.shape[0])

    @property
    def committed(self) -> Bools:
        """Messages whose latency is defined: status committed with a commit time (made once:
        a byte a message, asked for by most metrics)."""
        if self._committed is None:
            self._committed = self.status["committed"] & self.t_committed.present
            self._committed.setflags(write=False)
        return self._committed

    def latency_percentiles(self, qs: tuple[float, ...]) -> list[float | None]:
        """Percentiles of every committed message's latency (None without any), kept once
        computed: the per-kind and per-agent tables ask for them again when there is one
        kind or one agent, and on a long history each is costly (docs/performance.md)."""
        missing = [q for q in qs if q not in self._latency_percentiles]
        if missing:
            latency = self.latency_ns()  # this call's own array: partitioned in place
            found = percentiles(latency, missing, scratch=True) if latency.size else [None] * len(missing)
            self._latency_percentiles.update(zip(missing, found))
            del latency
        return [self._latency_percentiles[q] for q in qs]

    def keep_latency_percentiles(self, known: Mapping[float, float | None]) -> None:
        """Percentiles of every committed message's latency already taken elsewhere (the
        summary's): ``latency_percentiles`` answers from them."""
        self._latency_percentiles.update(known)

    def latency_ns(self, mask: Bools | None = None) -> I64:
        """``t_committed - t_intended`` of committed messages (restricted to ``mask`` if given)."""
        selected = self.committed if mask is None else self.committed & mask
        if selected.all():  # every message (a run that kept up): no gather, one subtraction
            return self.t_committed.values - self.t_intended
        # A chunk of rows at a time: the two gathered columns are a chunk long, and only the
        # latencies are the run's length (at 17 million messages, 280 MB less than whole).
        latency = np.empty(int(np.count_nonzero(selected)), dtype=np.int64)
        at = 0
        for start in range(0, selected.size, _LATENCY_CHUNK):
            rows = slice(start, start + _LATENCY_CHUNK)
            chosen = selected[rows]
            block = self.t_committed.values[rows][chosen]
            block -= self.t_intended[rows][chosen]
            latency[at:at + block.size] = block
            at += block.size
        return latency


@dataclass(frozen=True)
class EventRows:
    """Events of some kinds, stably sorted by ``t`` (writers only order their own events):
    ``rows`` are their row numbers in the ``events`` table."""

    t: I64
    value: F64  # NaN where null
    events: pa.Table
    rows: npt.NDArray[np.intp]

    @property
    def count(self) -> int:
        return int(self.t.shape[0])

    def column(self, name: str) -> list[Any]:
        """One column of these events, as Python values in their order."""
        values = self.events.column(name).to_pylist()
        return [values[row] for row in self.rows.tolist()]

    def nodes(self) -> list[str | None]:
        return self.column("node")

    def kinds(self) -> list[str]:
        return self.column("kind")

    def heights(self) -> list[int | None]:
        return self.column("height")

    def details(self) -> list[dict[str, Any]]:
        return [parse_detail(text) for text in self.column("detail")]


def parse_detail(text: str | None) -> dict[str, Any]:
    """An event's JSON detail as a dict ({} when null; {"raw": text} when not a JSON object)."""
    if not text:
        return {}
    try:
        parsed = json.loads(text)
    except ValueError:
        return {"raw": text}
    return parsed if isinstance(parsed, dict) else {"raw": parsed}


def events_of(history: History, *kinds: EventKind) -> EventRows:
    """The events of the given kinds, stably sorted by time. (Selected in numpy: the events
    table is small, and Arrow's filter and take would load its compute module at a report's
    start-up.) Kinds are ``EventKind`` members only: a misspelt string would select
    nothing and say nothing."""
    for kind_asked in kinds:
        if not isinstance(kind_asked, EventKind):
            raise TypeError(f"events_of takes EventKind members, not {kind_asked!r}")
    events = history.events
    kind = events.column("kind").to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(np.isin(kind, [k.value for k in kinds])) if kind.size else np.zeros(0, dtype=np.intp)
    t = np.asarray(events.column("t").to_numpy(), dtype=np.int64)[rows]
    order = np.argsort(t, kind="stable")
    rows = rows[order]
    value = np.asarray(events.column("value").to_numpy(zero_copy_only=False), dtype=np.float64)[rows]
    return EventRows(t=t[order], value=value, events=events, rows=rows)


class RowLookup:
    """msg_id -> row of the ``messages`` table, built once and asked part by part.

    The contract's ids are dense (0 .. n-1), so a table of row numbers indexed by id (int32
    while they fit) replaces a sort; ids that are not dense fall back to a sorted search.
    A repeated id is looked up to one row of it. Rows written in msg_id order from 0 (a live
    run's are) are their own ids: then no table is made (at ten million messages it is 40 MB,
    plus as much again while it is filled)."""

    def __init__(self, msg_id: I64) -> None:
        self._size = int(msg_id.size)
        self._row_of: npt.NDArray[np.signedinteger[Any]] | None = None
        self._sorted: tuple[npt.NDArray[np.intp], I64] | None = None
        self._identity = False
        if self._size == 0:
            return
        top = int(msg_id.max())
        if int(msg_id.min()) == 0 and top == self._size - 1 and bool(np.all(msg_id[1:] > msg_id[:-1])):
            self._identity = True  # 0 .. n-1 in order: the row of an id is the id
        elif int(msg_id.min()) >= 0 and top < 2 * msg_id.size + 1024:
            width = np.int32 if msg_id.size < 2**31 else np.int64
            self._row_of = np.full(top + 1, -1, dtype=width)
            self._row_of[msg_id] = np.arange(msg_id.size, dtype=width)
        else:
            order = np.argsort(msg_id, kind="stable")
            self._sorted = (order, msg_id[order])

    def rows(self, wanted: I64) -> tuple[npt.NDArray[np.int64], Bools]:
        """For each id in ``wanted``: the row holding it (0 where none does), and whether one does."""
        if self._identity:
            known = (wanted >= 0) & (wanted < self._size)
            return np.where(known, wanted, 0).astype(np.int64, copy=False), known
        if self._row_of is not None:
            top = self._row_of.size - 1
            row = self._row_of[np.clip(wanted, 0, top)].astype(np.int64)
            known = (row >= 0) & (wanted >= 0) & (wanted <= top)
            row[~known] = 0
            return row, known
        if self._sorted is None:
            return np.zeros(wanted.shape[0], dtype=np.int64), np.zeros(wanted.shape[0], dtype=np.bool_)
        order, ids = self._sorted
        position = np.minimum(np.searchsorted(ids, wanted), self._size - 1)
        found = order[position]
        return found.astype(np.int64, copy=False), ids[position] == wanted


def message_rows(msg_id: I64, wanted: I64) -> tuple[npt.NDArray[np.int64], Bools]:
    """For each id in ``wanted``: the row of ``msg_id`` holding it, and whether one does
    (``RowLookup`` asked once)."""
    return RowLookup(msg_id).rows(wanted)


def run_t_end_ns(history: History) -> int:
    """The last time the target observed (0 for a history without a run row). A run that was
    cut off never wrote it: then the latest time any recorded row carries stands in."""
    if not history.cut_off:
        return int(history.run_info.get("t_end") or 0)
    latest = 0
    for table, name in (("messages", "t_intended"), ("messages", "t_committed"), ("events", "t"),
                        ("deliveries", "t_delivered")):
        values, present = history.ints(table, name)
        if present.any():
            latest = max(latest, int(values[present].max()))
    return latest


def scenario_section(history: History, name: str) -> dict[str, Any]:
    """One top-level section of the run's scenario ({} when absent)."""
    section = history.scenario.get(name)
    return dict(section) if isinstance(section, dict) else {}


def analysis_settings(history: History) -> tuple[float, float]:
    """(knee_latency_factor, throughput_fraction) from the scenario, defaults if absent."""
    spec = scenario_section(history, "analysis")
    factor = float(spec.get("knee_latency_factor", DEFAULT_KNEE_LATENCY_FACTOR))
    fraction = float(spec.get("throughput_fraction", DEFAULT_THROUGHPUT_FRACTION))
    return factor, fraction


def percentile(values: npt.NDArray[Any], q: float, scratch: bool = False) -> float:
    """Exact nearest-rank percentile of a non-empty array. ``scratch``: the caller's own
    array, which may be reordered in place (no copy; order statistics do not change)."""
    return percentiles(values, (q,), scratch)[0]


def percentiles(values: npt.NDArray[Any], qs: Sequence[float], scratch: bool = False) -> list[float]:
    """``[percentile(values, q) for q in qs]`` in one partition of the array: every rank asked
    for is selected in one pass, not one partition per percentile (docs/performance.md)."""
    positions = [nearest_rank_index(int(values.size), q) for q in qs]
    if scratch:
        values.partition(sorted(set(positions)))
        ordered = values
    else:
        ordered = np.partition(values, sorted(set(positions)))
    return [float(ordered[k]) for k in positions]


def ms(ns: float | None) -> float | None:
    """Nanoseconds as milliseconds rounded to 3 decimals (None stays None)."""
    if ns is None or math.isnan(ns):
        return None
    return round(float(ns) / NS_PER_MS, 3)


def rounded(value: float | None, digits: int = 3) -> float | None:
    """A plain float rounded for JSON (None and NaN become None)."""
    if value is None or math.isnan(value):
        return None
    return round(float(value), digits)


def seconds(ns: int | None) -> float | None:
    return None if ns is None else round(ns / NS_PER_S, 9)


def plain_number(value: float) -> int | float:
    """An integral float as int (queue depths, counts), otherwise the float."""
    return int(value) if float(value).is_integer() else float(value)
