"""The fee market from a file: a base fee (or gas price) series that the ``eip1559`` mode
follows instead of its rule (``[sequencer.backpressure] base_fee_file``).

Place in the pipeline: read by ``sim/backpressure.py``'s ``FeeEscalation`` when the run
builds the sequencer. The file is CSV or Parquet (by suffix) with columns ``t`` (seconds
from the first row, or timestamps: the first row is the run's start, as a price file's) and
``base_fee`` (in the scenario's fee unit; gwei in examples/black-thursday-2020.toml). The
base fee from a block at time t on is the last row's at or before t (the first row's before
it): every message's fee competes against the day's fees as the file gives them, and a
message whose fee is below waits (or is rejected) as under the rule.

The same reader gives an agent's fees from a file (``[[agents]] fee_file``, column ``fee``):
the fees other senders pay through the day (a gas price or priority fee series), read by
``traffic/generate.py``; each message's fee is the file's at its intended send time times its
drawn ``fee`` (1 unless the agent says otherwise).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from msgstorm.errors import DataFileError
from msgstorm.scenario.replay import read_column, read_replay_offsets_ns

__all__ = ["FeeSeries", "read_fee_series"]


class FeeSeries:
    """A base-fee series: ``at(t)`` is the last row's fee at or before ``t`` ns."""

    def __init__(self, times_ns: np.ndarray, fees: np.ndarray) -> None:
        self.times = times_ns
        self.fees = fees

    def at(self, t_ns: int) -> float:
        row = int(np.searchsorted(self.times, t_ns, side="right")) - 1
        return float(self.fees[max(row, 0)])

    def at_many(self, times_ns: np.ndarray) -> np.ndarray:
        """``at`` for each of ``times_ns`` (float64)."""
        rows = np.maximum(np.searchsorted(self.times, times_ns, side="right") - 1, 0)
        return np.asarray(self.fees[rows], dtype=np.float64)


def read_fee_series(path: str, field: str = "base_fee", what: str = "base fee file", zero: bool = False) -> FeeSeries:
    """The file's series of ``field`` (above 0, or 0 too with ``zero``: a priority fee may be
    nothing); DataFileError naming the file (as ``what``), the line (a CSV's header is line
    1) and the field of the first bad value."""
    line_of = 2 if Path(path).suffix.lower() not in {".parquet", ".pq"} else 1
    try:
        column = read_column(path, field)
        times_column = read_column(path, "t")
    except ValueError as error:
        raise DataFileError(f"{what} {path}: {error}") from None
    if len(column) == 0:
        raise DataFileError(f"{what} {path}: no rows (columns t, {field})")
    raw_times = times_column.to_pylist()
    for row, value in enumerate(raw_times):
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            raise DataFileError(f"{what} {path}, line {row + line_of}, field t: {value!r} is not a time "
                                f"(seconds from the first row, or a timestamp)")
    for row, value in enumerate(column.to_pylist()):
        if (not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value)
                or value < 0 or (value == 0 and not zero)):
            raise DataFileError(f"{what} {path}, line {row + line_of}, field {field}: {value!r} is not a "
                                f"number {'of 0 or more' if zero else 'above 0'}")
    for row in range(1, len(raw_times)):
        if raw_times[row] < raw_times[row - 1]:
            raise DataFileError(f"{what} {path}, line {row + line_of}, field t: {raw_times[row]!r} is before "
                                f"the line above's {raw_times[row - 1]!r} (rows in time order)")
    try:
        times = read_replay_offsets_ns(path, "t", "s", 1.0)
    except ValueError as error:
        raise DataFileError(f"{what} {path}: field t: {error}") from None
    return FeeSeries(times, np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float64))
