"""``RUN_DIR/windows.csv``: the per-window metrics table for spreadsheets and other tools.

Place in the pipeline: Analysis -> **windows_csv** -> a file next to summary.json. One row per
window, the columns of ``analysis.WINDOW_SCHEMA`` in order (times in ns since the run's start,
rates per second, latencies in ms); an empty cell is a null (e.g. no message committed in the
window, so no latency).
"""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa

__all__ = ["WINDOWS_FILE", "read_windows_csv", "write_windows_csv"]

WINDOWS_FILE = "windows.csv"


def write_windows_csv(run_dir: str | Path, windows: pa.Table) -> Path:
    """Write the window table as ``RUN_DIR/windows.csv``; returns its path."""
    path = Path(run_dir) / WINDOWS_FILE
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(windows.column_names)
        for row in windows.to_pylist():
            writer.writerow(["" if value is None else value for value in row.values()])
    return path


def read_windows_csv(path: str | Path) -> dict[str, list[float | None]]:
    """The columns of a windows.csv as numbers (None for empty cells)."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    names = list(rows[0]) if rows else []
    return {name: [float(row[name]) if row[name] != "" else None for row in rows] for name in names}
