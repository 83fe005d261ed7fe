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

import json
from typing import Any

import numpy as np

from msgstorm.analysis._common import events_of
from msgstorm.history.reader import History
from msgstorm.report import figures
from msgstorm.report.page import Plot, esc, figure_block, table
from msgstorm.report.plotspec import Figure, figure

__all__ = ["control_section"]

NS_PER_S = 1e9

# controller -> (its output's name and unit, how output values are shown)
_OUTPUTS: dict[str, tuple[str, float]] = {
    "throttle": ("admitted share of the non-essential kinds", 1.0),
    "block_time": ("block interval (ms)", 1e-6),
}
# The strain a decision's detail names (``signal``; block_time reads the backlog in blocks).
_STRAINS = {"queue_depth": "queue depth", "block_backlog": "block backlog (messages)",
            "height_gap": "height gap of the furthest-behind node (blocks)",
            "block_backlog_blocks": "block backlog (full blocks)"}


def _decisions(history: History) -> dict[str, tuple[str, float, list[tuple[float, float, float]]]]:
    """controller -> (its signal, its output before the first decision, [(t seconds, output,
    strain)] of its decisions in time order)."""
    rows = events_of(history, "control")
    details = rows.events.column("detail").to_pylist()
    out: dict[str, tuple[str, float, list[tuple[float, float, float]]]] = {}
    for t, value, row in zip(rows.t.tolist(), rows.value.tolist(), rows.rows.tolist(), strict=True):
        detail = json.loads(details[row] or "{}")
        name = str(detail.get("controller"))
        signal = str(detail.get("signal") or ("block_backlog_blocks" if name == "block_time" else "queue_depth"))
        first = float(detail.get("previous", value))
        out.setdefault(name, (signal, first, []))[2].append((t / NS_PER_S, value, float(detail.get("strain", 0.0))))
    return out


def _shed(history: History) -> dict[str, int]:
    """controller -> the arrivals it had shed (``dropped``, like backpressure's drops) by its
    last decision, for a controller whose decisions count them (``shed`` in the detail)."""
    rows = events_of(history, "control")
    details = rows.events.column("detail").to_pylist()
    shed: dict[str, int] = {}
    for row in rows.rows.tolist():
        detail = json.loads(details[row] or "{}")
        if "shed" in detail:
            shed[str(detail.get("controller"))] = int(detail["shed"])
    return shed


def _strain_series(history: History, signal: str, depth: tuple[list[float], list[float]],
                   block_messages: float) -> tuple[list[float], list[float]]:
    """The sampled series of the strain a controller reads (none sampled for the height gap:
    its decisions' readings show it)."""
    if signal == "queue_depth":
        return depth
    if signal in ("block_backlog", "block_backlog_blocks"):
        # The controller reads the whole backlog: the rest's (block_backlog) and, with a
        # lane's block share, the lane's (lane_block_backlog, sampled at the same times).
        rows = events_of(history, "block_backlog")
        backlog = rows.value.astype(float)
        lane = events_of(history, "lane_block_backlog")
        if len(lane.t):
            at = np.searchsorted(rows.t, lane.t)
            matched = (at < len(rows.t)) & (rows.t[np.minimum(at, len(rows.t) - 1)] == lane.t)
            np.add.at(backlog, at[matched], lane.value[matched])
        scale = 1.0 / block_messages if signal == "block_backlog_blocks" else 1.0
        return (rows.t / NS_PER_S).tolist(), (backlog * scale).tolist()
    return [], []


def _figure(name: str, signal: str, first: float, decisions: list[tuple[float, float, float]],
            strain: tuple[list[float], list[float]], t_end_s: float) -> Figure:
    output_name, scale = _OUTPUTS.get(name, (f"{name} output", 1.0))
    strain_name = _STRAINS.get(signal, signal)
    times = [0.0] + [t for t, _, _ in decisions] + [max(t_end_s, decisions[-1][0])]
    outputs = [first * scale] + [value * scale for _, value, _ in decisions]
    outputs.append(outputs[-1])
    data: list[dict[str, Any]] = [
        {"type": "scatter", "x": times, "y": outputs, "name": f"{name}: {output_name}", "mode": "lines",
         "line": {"shape": "hv", "color": "#2ca02c", "width": 2}},
        {"type": "scatter", "x": strain[0], "y": strain[1], "name": strain_name, "mode": "lines", "yaxis": "y2",
         "line": {"color": "#1f77b4", "shape": "hv", "width": 1}},
        {"type": "scatter", "x": [t for t, _, _ in decisions], "y": [s for _, _, s in decisions],
         "name": f"{strain_name} the controller saw when it decided", "mode": "markers", "yaxis": "y2",
         "marker": {"size": 5, "color": "#d62728"}},
    ]
    more: dict[str, Any] = {"yaxis2": {"title": {"text": strain_name}, "overlaying": "y", "side": "right",
                                       "rangemode": "tozero", "showgrid": False}}
    layout = figures._layout(f"{name}: its state beside the strain it reacts to", "time (s)", output_name,
                             yaxis={"rangemode": "tozero"}, **more)
    return figure(data, layout)


def control_section(history: History, depth: tuple[list[float], list[float]], t_end_s: float,
                    block_messages: float) -> str:
    """The section's HTML (empty when the run had no controller decisions): a table of each
    controller's decisions and its plot. ``depth``: the queue depth series of the page;
    ``block_messages``: a full block's messages (``blocks.max_messages``)."""
    decisions = _decisions(history)
    if not decisions:
        return ""
    shed = _shed(history)
    rows = []
    blocks = ""
    for name, (signal, first, made) in decisions.items():
        _, scale = _OUTPUTS.get(name, ("", 1.0))
        values = [value * scale for _, value, _ in made]
        shed_cell = f"{shed[name]:,}" if name in shed else "-"
        rows.append([esc(name), f"{len(made):,}", f"{min(values):,.3f}", f"{max(values):,.3f}", f"{values[-1]:,.3f}",
                     shed_cell])
        fig = _figure(name, signal, first, made, _strain_series(history, signal, depth, block_messages), t_end_s)
        figures.label_if_empty(fig)
        blocks += figure_block(Plot(f"control-{name}", fig,
                                    "Each step of the line is one decision (a control event); the markers are the "
                                    "strain the controller read when it made it."))
    head = table(["controller", "decisions", "lowest output", "highest output", "last output",
                  "shed by its last decision"], rows,
                 attrs='id="control-table"')
    return head + blocks
