"""The report's self-healing section: each controller's state over time beside its strain.

Place in the pipeline: part of report.html (``html.render_run_report``), for a run whose
history holds ``control`` events (``[[controllers]]``, ``sim/control.py``). One plot per
controller: its output as a step line (the admitted share of the non-essential kinds for
``throttle``, the block interval for ``block_time``) and, on a second axis, the strain it
reacts to, read from the same history (the sequencer's queue depth, or the block backlog,
the lane's included).
Each decision's own strain reading is marked on the strain's axis.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from msgstorm.analysis.control import OUTPUTS, Decision, controller_decisions
from msgstorm.analysis.samples import grid_series
from msgstorm.history.events import EventKind
from msgstorm.history.reader import History
from msgstorm.report import figures
from msgstorm.report.page import Plot, esc, figure_block, table
from msgstorm.report.plotspec import Figure, figure
from msgstorm.report.text import duration_ms, number

__all__ = ["control_section"]

NS_PER_S = 1e9

# controller -> its output's name and unit (``analysis.control.OUTPUTS`` scales the values)
_OUTPUT_NAMES = {"throttle": "admitted share of the non-essential kinds", "block_time": "block interval (ms)"}
# The strain a decision's detail names (``signal``; block_time reads the backlog in blocks).
_STRAINS = {"queue_depth": "queue depth", "block_backlog": "block backlog (messages)",
            "height_gap": "height gap of the furthest-behind node (blocks)",
            "block_backlog_blocks": "block backlog (full blocks)"}


def _strain_series(history: History, signal: str, depth: tuple[list[float], list[float]],
                   block_messages: float) -> tuple[list[float], list[float]]:
    """The sampled series of the strain a controller reads (none sampled for the height gap:
    its decisions' readings show it)."""
    if signal == "queue_depth":
        return depth
    if signal in ("block_backlog", "block_backlog_blocks"):
        # The controller reads the whole backlog: the rest's (block_backlog) and, with a
        # lane's block share, the lane's (lane_block_backlog, sampled at the same times).
        # Every sample of each (``analysis/samples.py``), so the two meet at the same times.
        t, backlog = grid_series(history, EventKind.BLOCK_BACKLOG)
        backlog = backlog.copy()
        lane_t, lane = grid_series(history, EventKind.LANE_BLOCK_BACKLOG)
        if len(lane_t):
            at = np.searchsorted(t, lane_t)
            matched = (at < len(t)) & (t[np.minimum(at, len(t) - 1)] == lane_t)
            np.add.at(backlog, at[matched], lane[matched])
        scale = 1.0 / block_messages if signal == "block_backlog_blocks" else 1.0
        return (t / NS_PER_S).tolist(), (backlog * scale).tolist()
    return [], []


def _figure(name: str, signal: str, first: float, decisions: list[Decision],
            strain: tuple[list[float], list[float]], t_end_s: float) -> Figure:
    output_name = _OUTPUT_NAMES.get(name, f"{name} output")
    _, scale = OUTPUTS.get(name, ("", 1.0))
    strain_name = _STRAINS.get(signal, signal)
    times = [0.0] + [d.t_s for d in decisions] + [max(t_end_s, decisions[-1].t_s)]
    outputs = [first * scale] + [d.output * scale for d in decisions]
    outputs.append(outputs[-1])
    data: list[dict[str, Any]] = [
        {"type": "scatter", "x": times, "y": outputs, "name": f"{name}: {output_name}", "mode": "lines",
         "line": {"shape": "hv", "color": "#2ca02c", "width": 2}},
        {"type": "scatter", "x": strain[0], "y": strain[1], "name": strain_name, "mode": "lines", "yaxis": "y2",
         "line": {"color": "#1f77b4", "shape": "hv", "width": 1}},
        {"type": "scatter", "x": [d.t_s for d in decisions], "y": [d.strain for d in decisions],
         "name": f"{strain_name} the controller saw when it decided", "mode": "markers", "yaxis": "y2",
         "marker": {"size": 5, "color": "#d62728"}},
    ]
    more: dict[str, Any] = {"yaxis2": {"title": {"text": strain_name}, "overlaying": "y", "side": "right",
                                       "rangemode": "tozero", "showgrid": False}}
    layout = figures._layout(f"{name}: its state beside the strain it reacts to", "time (s)", output_name,
                             yaxis={"rangemode": "tozero"}, **more)
    return figures.round_axes(figure(data, layout))


def control_section(history: History, depth: tuple[list[float], list[float]], t_end_s: float,
                    block_messages: float) -> str:
    """The section's HTML (empty when the run had no controller decisions): a table of each
    controller's decisions and its plot. ``depth``: the queue depth series of the page;
    ``block_messages``: a full block's messages (``blocks.max_messages``)."""
    decisions = controller_decisions(history)
    if not decisions:
        return ""
    rows = []
    blocks = ""
    for name, of in decisions.items():
        output, scale = OUTPUTS.get(name, ("", 1.0))
        values = [d.output * scale for d in of.made]
        shed = of.made[-1].shed
        # A duration (the block interval) as every duration on the page reads; a share as a number.
        worded = duration_ms if output.endswith("_ms") else lambda value: number(value)
        rows.append([esc(name), f"{len(of.made):,}", *(esc(worded(v)) for v in (min(values), max(values), values[-1])),
                     f"{shed:,}" if shed is not None else "-"])
        fig = _figure(name, of.signal, of.first, of.made, _strain_series(history, of.signal, depth, block_messages),
                      t_end_s)
        figures.label_if_empty(fig)
        blocks += figure_block(Plot(f"control-{name}", fig,
                                    "Each step of the line is one decision (a control event); the markers are the "
                                    "strain the controller read when it made it."))
    head = table(["controller", "decisions", "lowest output", "highest output", "last output",
                  "shed by its last decision"], rows,
                 attrs='id="control-table"')
    return head + blocks
