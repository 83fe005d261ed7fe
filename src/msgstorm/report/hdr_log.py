"""``RUN_DIR/latency.hlog``: a live run's latencies as an HdrHistogram interval log.

Place in the pipeline: History -> **hdr_log** -> a file next to summary.json, for people
whose tools read HdrHistogram logs (HistogramLogProcessor, HdrHistogram plotters). One
interval histogram per analysis window (``run.window``) of the end-to-end
latency ``t_committed - t_intended`` in microseconds, of the messages intended in that
window; timestamps are seconds since the run's start. msgstorm's own percentiles stay
exact (from the history); the log is HdrHistogram's 3-significant-digit view of the same.
Written for live runs (the simulator's history is the exact record already).

Recording goes through the ``hdrhistogram`` package; values are counted first with numpy
(one ``record_value(value, count)`` per distinct microsecond), because recording millions
of values one Python call each would take longer than the run.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogWriter

from msgstorm.analysis._common import nullable_ints
from msgstorm.history.reader import History

__all__ = ["HDR_FILE", "HIGHEST_US", "write_hdr_log"]

HDR_FILE = "latency.hlog"
HIGHEST_US = 3_600_000_000  # an hour: a latency beyond it is clamped (and the max says so)
_SIGNIFICANT = 3


_CHUNK = 1 << 20  # messages counted at a time: the temporaries stay a few MB whatever the run's length


def _counts_by_window(history: History, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(window index, latency in us, messages) of every distinct pair, sorted by window then
    latency: the messages counted a Parquet part at a time (and at most ``_CHUNK`` at a
    time within one), as pairs packed into one integer, so memory is a part's two columns
    and the distinct pairs, not the run's columns nor a latency a message."""
    span = HIGHEST_US + 1
    keys: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    held = 0
    for part in history.parts("messages", ["t_intended", "t_committed"]):
        intended_all = nullable_ints(part.column("t_intended"))[0]
        done_all, valid_all = nullable_ints(part.column("t_committed"))
        for start in range(0, intended_all.size, _CHUNK):
            valid = valid_all[start:start + _CHUNK]
            intended = intended_all[start:start + _CHUNK][valid]
            latency_us = np.clip((done_all[start:start + _CHUNK][valid] - intended) // 1000, 0, HIGHEST_US)
            packed, count = np.unique(intended // window * span + latency_us, return_counts=True)
            keys.append(packed)
            counts.append(count)
            held += packed.size
        if held > _CHUNK:  # the parts' pairs merged as they go: many small parts repeat pairs
            merged, total = _merged(keys, counts)
            keys, counts, held = [merged], [total], merged.size
    if not keys:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, empty
    packed, total = _merged(keys, counts)
    return packed // span, packed % span, total


def _merged(keys: list[np.ndarray], counts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The distinct packed pairs of ``keys`` (sorted) and their summed ``counts``."""
    packed, inverse = np.unique(np.concatenate(keys), return_inverse=True)
    total = np.bincount(inverse, weights=np.concatenate(counts), minlength=packed.size).astype(np.int64)
    return packed, total


def write_hdr_log(run_dir: str | Path, history: History) -> Path | None:
    """Write ``RUN_DIR/latency.hlog`` for a live run; None for a simulated one."""
    if history.is_simulated:
        return None
    window = int(history.scenario.get("run", {}).get("window", 1_000_000_000))
    slot, value_us, count = _counts_by_window(history, window)
    path = Path(run_dir) / HDR_FILE
    with path.open("w", encoding="utf-8") as handle:
        log = HistogramLogWriter(handle)
        handle.write(f"#[msgstorm {history.run_info.get('scenario_name', '')}: end-to-end latency "
                     f"(t_committed - t_intended) in microseconds, one interval per {window / 1e9:g} s window]\n")
        log.output_base_time(0)
        log.output_legend()
        slots, starts = np.unique(slot, return_index=True)
        ends = np.r_[starts[1:], slot.size]
        for index, start, end in zip(slots.tolist(), starts.tolist(), ends.tolist()):
            histogram = HdrHistogram(1, HIGHEST_US, _SIGNIFICANT)
            for value, times in zip(value_us[start:end].tolist(), count[start:end].tolist()):
                histogram.record_value(value, times)
            begin = index * window / 1e9
            # Stamped on the histogram too: the writer falls back to them for a start of 0.
            histogram.set_start_time_stamp(int(begin * 1000))
            histogram.set_end_time_stamp(int((begin + window / 1e9) * 1000))
            log.output_interval_histogram(histogram, begin, begin + window / 1e9, max_value_unit_ratio=1000.0)
    return path
