"""Reading a replay trace: the send times a ``replay`` arrival plays back.

traffic: scenario ``process = "replay"`` -> **read_replay_offsets_ns** -> ``ReplayProcess``.

The file is CSV or Parquet (chosen by suffix; read with pyarrow). One column holds send
times, as numbers in ``time_unit`` or as timestamps. They become integer ns offsets from
the first row's time, divided by ``speed`` (2.0 plays the trace twice as fast). Rows
earlier than the first row would fall before the agent starts, so they are dropped.

``read_column`` also reads the market's price and accounts files. A column once read is kept
(``kept_per_file``: a few, by file identity and column): validation reads a file and the run
reads it again, and a sweep's worker runs the same scenario seed after seed, so each file is
parsed once per process, not once per run and stage. Arrow arrays are immutable, so the
runs share one copy; the market's parsed accounts file is kept the same way.

An empirical link model (``sim/link_samples.py``) reads its delays with **read_delays_ns**,
from the same kinds of file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from msgstorm.scenario.file_cache import kept_per_file

__all__ = ["read_column", "read_delays_ns", "read_replay_offsets_ns"]

_UNIT_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_PARQUET_SUFFIXES = {".parquet", ".pq"}


def read_replay_offsets_ns(path: str, column: str, time_unit: str, speed: float) -> np.ndarray:
    """Sorted int64 ns offsets from the first row's time; ValueError naming path and column."""
    if time_unit not in _UNIT_NS:
        raise ValueError(f"replay time_unit must be one of {sorted(_UNIT_NS)}, got {time_unit!r}")
    if not speed > 0:
        raise ValueError(f"replay speed must be above 0, got {speed}")
    values = read_column(path, column)
    if len(values) == 0:
        raise ValueError(f"replay file {path}: column {column!r} has no rows")
    if values.null_count:
        raise ValueError(f"replay file {path}: column {column!r} has {values.null_count} empty values")

    unit_ns = _UNIT_NS[time_unit]
    kind = values.type
    if pa.types.is_timestamp(kind) or pa.types.is_duration(kind):
        # Timestamps carry their own unit, so time_unit does not apply.
        target = pa.timestamp("ns") if pa.types.is_timestamp(kind) else pa.duration("ns")
        raw = values.cast(target).cast(pa.int64()).to_numpy()
        unit_ns = 1
    elif pa.types.is_integer(kind) or pa.types.is_floating(kind):
        raw = values.to_numpy()
    else:
        raise ValueError(
            f"replay file {path}: column {column!r} holds {kind}, expected numbers or timestamps"
        )

    if raw.dtype.kind in "iu":
        # Subtract in integers first: epoch nanoseconds do not fit a float64 exactly.
        delta = raw.astype(np.int64) - np.int64(raw[0])
        if speed == 1.0:
            offsets = delta * np.int64(unit_ns)
        else:
            offsets = np.floor(delta * (unit_ns / speed)).astype(np.int64)
    else:
        delta_f = raw.astype(np.float64) - float(raw[0])
        if not np.all(np.isfinite(delta_f)):
            raise ValueError(f"replay file {path}: column {column!r} has non-finite values")
        offsets = np.floor(delta_f * (unit_ns / speed)).astype(np.int64)
    offsets = np.sort(offsets[offsets >= 0], kind="stable")
    return offsets


def read_delays_ns(path: str, column: str, unit: str) -> np.ndarray:
    """A column of delays as int64 ns (rounded); ValueError naming the file and column when
    it cannot be read, is empty, or holds a value that is not a finite number ≥ 0."""
    values = read_column(path, column)
    where = f"link samples {path}, column {column!r}"
    if len(values) == 0:
        raise ValueError(f"{where} has no rows")
    if values.null_count:
        raise ValueError(f"{where} has {values.null_count} empty values")
    raw = values.to_numpy()
    if raw.dtype.kind not in "iuf":
        raise ValueError(f"{where} holds {values.type}, expected numbers")
    delays = raw.astype(np.float64) * _UNIT_NS[unit]
    bad = ~np.isfinite(delays) | (delays < 0) | (delays >= 2.0**62)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{where}: row {first + 1} is {raw[first]!r}, expected a delay ≥ 0")
    return np.asarray(np.rint(delays), dtype=np.int64)


@kept_per_file
def read_column(path: str, column: str) -> pa.ChunkedArray:
    """One column of a CSV or Parquet file; ValueError naming the file and the column."""
    where = f"replay file {path}"
    try:
        if Path(path).suffix.lower() in _PARQUET_SUFFIXES:
            names = pq.read_schema(path).names
            if column not in names:
                raise ValueError(f"{where} has no column {column!r}; columns are {names}")
            return pq.read_table(path, columns=[column]).column(column)
        options = pa_csv.ConvertOptions(include_columns=[column])
        return pa_csv.read_csv(path, convert_options=options).column(column)
    except KeyError:
        # pyarrow.csv raises ArrowKeyError for a column missing from include_columns.
        raise ValueError(f"{where} has no column {column!r}{_csv_columns_hint(path)}") from None
    except (OSError, pa.ArrowException) as error:
        raise ValueError(f"{where}: cannot read column {column!r}: {error}") from None


def _csv_columns_hint(path: str) -> str:
    try:
        return f"; columns are {pa_csv.open_csv(path).schema.names}"
    except (OSError, pa.ArrowException):
        return ""
