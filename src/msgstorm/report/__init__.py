"""Reports: what a run leaves for people and tools, all read from the history and analysis.

Place in the pipeline: the last stage. ``terminal`` (rich tables), ``html`` (report.html),
``windows_csv`` (windows.csv), ``hdr_log`` (a live run's latency.hlog), ``schema`` (the JSON Schema of summary.json), ``compare``
(runs side by side, regressions flagged), ``live`` (the progress bar) and ``prometheus``
(metrics exported while a run goes). Submodules import their heavy dependencies
(prometheus-client, rich) themselves, so importing this package stays cheap; plotly's
Python side is not imported at all (report.html embeds the plotly.js file it ships).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from msgstorm.analysis import Analysis
    from msgstorm.history.reader import History

__all__ = ["write_run_files"]


def write_run_files(run_dir: str | Path, history: History, analysis: Analysis,
                    wall_s: float | None = None) -> list[Path]:
    """Write ``report.html``, ``windows.csv`` and, for a live run, ``latency.hlog`` next to
    summary.json; returns their paths."""
    from msgstorm.analysis.summary import HANDED_BACK_FROM_MESSAGES
    from msgstorm.heap import release_freed_memory
    from msgstorm.report.hdr_log import write_hdr_log
    from msgstorm.report.html import write_run_report
    from msgstorm.report.windows_csv import write_windows_csv

    large = history.num_rows("messages") >= HANDED_BACK_FROM_MESSAGES

    def step_done() -> None:
        """What a file's writing freed handed back before the next, as between the analysis' steps."""
        if large:
            release_freed_memory()

    step_done()
    written = [write_run_report(run_dir, history, analysis, wall_s)]
    step_done()
    written.append(write_windows_csv(run_dir, analysis.windows))
    step_done()
    hdr = write_hdr_log(run_dir, history)
    return written + ([hdr] if hdr is not None else [])
