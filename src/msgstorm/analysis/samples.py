"""Sampled series read back: each row's value held until the next row, to the series' last.

Place in the pipeline: under the analysis steps and report series that read sampled state
(``queue_depth``, ``queue_depth_max``, ``block_backlog``, ``lane_block_backlog``). The
simulator writes a series' row only when its value changes, at most once a
``run.sample_interval``, and once more at its last sample (``sim/changes.py``;
docs/history.md, "Sampled series"), so an idle hour costs it no rows; a live sampler
writes every sample. ``grid_series`` gives a series back as it was sampled, one value at
every sample time from its first row to its last, each row held over the samples it did
not write: a figure read from it is the figure every sample gives (a chart thinned by
index, a peak per window, a sum of two series taken at the same times).
"""

from __future__ import annotations

import numpy as np

from msgstorm.analysis._common import F64, I64, events_of, scenario_section
from msgstorm.history.events import EventKind
from msgstorm.history.reader import History
from msgstorm.history.schema import is_simulated

__all__ = ["DEFAULT_SAMPLE_INTERVAL_NS", "grid_series", "on_grid", "sample_interval_ns"]

DEFAULT_SAMPLE_INTERVAL_NS = 100_000_000  # run.sample_interval's default


def sample_interval_ns(history: History) -> int | None:
    """The grid a simulated run sampled on (``run.sample_interval``); None for a live run,
    whose samplers write every sample they take (their rows are their grid)."""
    if not is_simulated(history.scenario.get("target")):
        return None
    interval = scenario_section(history, "run").get("sample_interval")
    return int(interval or DEFAULT_SAMPLE_INTERVAL_NS)


def on_grid(t: I64, value: F64, interval_ns: int) -> tuple[I64, F64]:
    """Rows written as they changed (times on a grid of ``interval_ns``, in order) as the
    samples they stand for: each row repeated at every grid time up to the next row; the
    last row stands for itself only (it is the last sample)."""
    if t.size < 2:
        return t, value
    counts = np.ones(t.size, dtype=np.int64)
    counts[:-1] = np.maximum((np.diff(t) + interval_ns // 2) // interval_ns, 1)
    held = np.repeat(value, counts)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    times = np.repeat(t, counts) + (np.arange(held.size, dtype=np.int64) - starts) * interval_ns
    return times, held


def grid_series(history: History, kind: EventKind) -> tuple[I64, F64]:
    """Series ``kind`` (rows with a value) at every sample its run took (``on_grid``), in
    time order; as written for a live run."""
    rows = events_of(history, kind)
    keep = ~np.isnan(rows.value)
    t, value = rows.t[keep], rows.value[keep]
    interval = sample_interval_ns(history)
    return (t, value) if interval is None else on_grid(t, value, interval)
