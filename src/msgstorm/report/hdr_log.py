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

from msgstorm.history.reader import History

__all__ = ["HDR_FILE", "HIGHEST_US", "write_hdr_log"]

HDR_FILE = "latency.hlog"
HIGHEST_US = 3_600_000_000  # an hour: a latency beyond it is clamped (and the max says so)
_SIGNIFICANT = 3


def write_hdr_log(run_dir: str | Path, history: History) -> Path | None:
    """Write ``RUN_DIR/latency.hlog`` for a live run; None for a simulated one."""
    if history.run_info.get("target", "sim") == "sim":
        return None
    messages = history.columns("messages", ["t_intended", "t_committed"])
    committed = messages.column("t_committed")
    valid = np.asarray(committed.is_valid().to_numpy(zero_copy_only=False), dtype=np.bool_)
    intended = np.asarray(messages.column("t_intended").to_numpy(), dtype=np.int64)[valid]
    done = np.asarray(committed.fill_null(0).to_numpy(), dtype=np.int64)[valid]
    latency_us = np.clip((done - intended) // 1000, 0, HIGHEST_US)
    window = int(history.scenario.get("run", {}).get("window", 1_000_000_000))
    slot = intended // window
    path = Path(run_dir) / HDR_FILE
    with path.open("w", encoding="utf-8") as handle:
        log = HistogramLogWriter(handle)
        handle.write(f"#[msgstorm {history.run_info.get('scenario_name', '')}: end-to-end latency "
                     f"(t_committed - t_intended) in microseconds, one interval per {window / 1e9:g} s window]\n")
        log.output_base_time(0)
        log.output_legend()
        order = np.argsort(slot, kind="stable")
        slots, starts = np.unique(slot[order], return_index=True)
        ends = np.r_[starts[1:], order.size]
        for index, start, end in zip(slots.tolist(), starts.tolist(), ends.tolist()):
            histogram = HdrHistogram(1, HIGHEST_US, _SIGNIFICANT)
            values, counts = np.unique(latency_us[order[start:end]], return_counts=True)
            for value, count in zip(values.tolist(), counts.tolist()):
                histogram.record_value(value, count)
            begin = index * window / 1e9
            # Stamped on the histogram too: the writer falls back to them for a start of 0.
            histogram.set_start_time_stamp(int(begin * 1000))
            histogram.set_end_time_stamp(int((begin + window / 1e9) * 1000))
            log.output_interval_histogram(histogram, begin, begin + window / 1e9, max_value_unit_ratio=1000.0)
    return path
