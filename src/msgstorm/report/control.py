"""The report's self-healing section: each controller's state over time beside its strain.

Place in the pipeline: part of report.html (``html.render_run_report``), for a run whose
history holds ``control`` events (``[[controllers]]``, ``sim/control.py``). One plot per
controller: its output as a step line (the admitted share of the non-essential kinds for
``throttle``, the block interval for ``block_time``) and, on a second axis, the strain it
reacts to, read from the same history (the sequencer's queue depth, or the block backlog).
Each decision's own strain reading is marked on the strain's axis.
"""

from __future__ import annotations

import json
from typing import Any

from msgstorm.analysis._common import events_of
from msgstorm.history.reader import History
from msgstorm.report import figures
from msgstorm.report.page import Plot, esc, figure_block, table
from msgstorm.report.plotspec import Figure, figure

__all__ = ["control_section"]

NS_PER_S = 1e9

# controller -> (its output's name and unit, how output values are shown, its strain's name)
_AXES: dict[str, tuple[str, float, str]] = {
    "throttle": ("admitted share of the non-essential kinds", 1.0, "queue depth"),
    "block_time": ("block interval (ms)", 1e-6, "block backlog (full blocks)"),
}


def _decisions(history: History) -> dict[str, list[tuple[float, float, float]]]:
    """controller -> [(t seconds, output, strain)] of its decisions, in time order."""
    rows = events_of(history, "control")
    details = rows.events.column("detail").to_pylist()
    out: dict[str, list[tuple[float, float, float]]] = {}
    for t, value, row in zip(rows.t.tolist(), rows.value.tolist(), rows.rows.tolist(), strict=True):
        detail = json.loads(details[row] or "{}")
        out.setdefault(str(detail.get("controller")), []).append((t / NS_PER_S, value, float(detail.get("strain", 0.0))))
    return out


def _backlog_series(history: History) -> tuple[list[float], list[float]]:
    rows = events_of(history, "block_backlog")
    return (rows.t / NS_PER_S).tolist(), rows.value.tolist()


def _figure(name: str, decisions: list[tuple[float, float, float]], strain: tuple[list[float], list[float]],
            t_end_s: float) -> Figure:
    output_name, scale, strain_name = _AXES.get(name, (f"{name} output", 1.0, "strain"))
    times = [0.0] + [t for t, _, _ in decisions] + [t_end_s]
    first = 1.0 if name == "throttle" else decisions[0][1] * scale
    outputs = [first] + [value * scale for _, value, _ in decisions]
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


def control_section(history: History, depth: tuple[list[float], list[float]], t_end_s: float) -> str:
    """The section's HTML (empty when the run had no controller decisions): a table of each
    controller's decisions and its plot. ``depth``: the queue depth series of the page."""
    decisions = _decisions(history)
    if not decisions:
        return ""
    rows = []
    blocks = ""
    for name, made in decisions.items():
        _, scale, _ = _AXES.get(name, ("", 1.0, ""))
        values = [value * scale for _, value, _ in made]
        rows.append([esc(name), f"{len(made):,}", f"{min(values):,.3f}", f"{max(values):,.3f}", f"{values[-1]:,.3f}"])
        strain = depth if name == "throttle" else _backlog_series(history)
        fig = _figure(name, made, strain, t_end_s)
        figures.label_if_empty(fig)
        blocks += figure_block(Plot(f"control-{name}", fig,
                                    "Each step of the line is one decision (a control event); the markers are the "
                                    "strain the controller read when it made it."))
    head = table(["controller", "decisions", "lowest output", "highest output", "last output"], rows,
                 attrs='id="control-table"')
    return head + blocks
