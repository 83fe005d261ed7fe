"""The run report's plots, one function each, as plain plotly.js figure specifications.

Place in the pipeline: Analysis + series -> **figures** -> html. Each function takes plain
data (the analysis' window and step tables, the summary, ``series`` views of the history)
and returns a ``plotspec.Figure`` (traces and layout as plotly.js reads them); the page
embeds plotly.js once and draws them all. Times are seconds since the run's start,
latencies in the unit their longest reads best in (``latency_unit``: ms, s, min or h; an
axis of a day-long run's latencies in h, never "40M" ms), rates per second. A run of more windows than a screen shows
(``series.MAX_POINTS``) is drawn thinned: each line keeps its lowest and highest points of
every span of windows, each set of bars the largest bar of every span (``thinning_note``
says so under the plot).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from msgstorm.analysis.summary_model import Capacity, FailureThreshold, Stages
from msgstorm.report import plotspec
from msgstorm.report.plotspec import Figure, figure, title, vline
from msgstorm.report.series import (
    F64,
    I64,
    MAX_POINTS,
    CpuLine,
    RegionMatrix,
    Span,
    bucket_peaks,
    bucket_starts,
    thin_lowest_highest,
)
from msgstorm.report.text import duration_ms, duration_unit

__all__ = [
    "rollup_batches_figure",
    "rollup_fees_figure",
    "base_fee_figure",
    "fee_title",
    "block_bars_note",
    "cpu_figure",
    "SPAN_COLOURS",
    "label_if_empty",
    "latency_load_figure",
    "latency_time_figure",
    "load_points",
    "merged_intervals",
    "own_axis",
    "percentile_ticks",
    "queue_fee_figure",
    "region_heatmap_figure",
    "round_axes",
    "spectrum_figure",
    "stages_figure",
    "thinning_note",
    "throughput_figure",
    "validation_backlog_figure",
]

NS_PER_S = 1e9
# The window table's columns of messages intended in a window and never committed: the
# throughput chart's bars add them all (pending too: a flood's queue left at the run's end;
# unsent: a live generator's shortfall, intended and never sent).
NOT_COMMITTED = ("dropped", "rejected", "lost", "pending", "unsent")
SPAN_COLOURS = {"fault": "#d62728", "recovery": "#e377c2", "backpressure": "#ff7f0e", "desync": "#9467bd",
                "disconnected": "#8c564b"}
_SPAN_NAMES = {"fault": "fault active", "recovery": "recovering after a fault", "backpressure": "backpressure engaged",
               "desync": "node desynced", "disconnected": "client disconnected"}


def _layout(title_text: str, x_title: str, y_title: str, height: int = 380, *,
            xaxis: dict[str, Any] | None = None, yaxis: dict[str, Any] | None = None,
            **more: Any) -> dict[str, Any]:
    """The layout every report plot shares; ``xaxis``/``yaxis``: more settings of the
    primary axes (a second y axis is passed whole in ``more``)."""
    return {
        "title": title(title_text, x=0.01, xanchor="left"),
        "height": height,
        "margin": {"l": 70, "r": 30, "t": 60, "b": 55},
        "legend": {"orientation": "h", "y": -0.22, "x": 0},
        "hovermode": "x unified",
        "xaxis": {**(xaxis or {}), "title": {"text": x_title}},
        "yaxis": {**(yaxis or {}), "title": {"text": y_title}},
        **more,
    }


def _with_shapes(layout: dict[str, Any], shapes: list[dict[str, Any]]) -> dict[str, Any]:
    if shapes:
        layout["shapes"] = [*layout.get("shapes", []), *shapes]
    return layout


def merged_intervals(spans: Sequence[Span]) -> list[tuple[str, float, float]]:
    """Each kind's spans as disjoint intervals (overlaps joined): one node's desync or ten
    nodes' at once shade alike instead of stacking to an opaque block."""
    out: list[tuple[str, float, float]] = []
    for kind in dict.fromkeys(span.kind for span in spans):
        current: list[float] | None = None
        for start, end in sorted((s.start_s, max(s.end_s, s.start_s)) for s in spans if s.kind == kind):
            if current is not None and start <= current[1]:
                current[1] = max(current[1], end)
                continue
            if current is not None:
                out.append((kind, current[0], current[1]))
            current = [start, end]
        if current is not None:
            out.append((kind, current[0], current[1]))
    return out


def _shading(spans: Sequence[Span]) -> list[dict[str, Any]]:
    """Each kind's spans shaded across the plot, one legend entry per kind. Faults are drawn
    last, on top, with a dashed outline and a light fill, so they stay visible where
    desync or backpressure shading covers the same time."""
    shown: set[str] = set()
    shapes = []
    for kind, start, end in sorted(merged_intervals(spans), key=lambda item: item[0] == "fault"):
        first = kind not in shown
        shown.add(kind)
        fault = kind == "fault"
        shapes.append({
            "type": "rect", "xref": "x", "yref": "paper", "x0": start, "x1": end,
            "y0": 0, "y1": 1, "layer": "above" if fault else "below",
            "line": {"width": 1.5, "dash": "dash", "color": SPAN_COLOURS["fault"]} if fault else {"width": 0},
            "fillcolor": SPAN_COLOURS.get(kind, "#7f7f7f"), "opacity": 0.10 if fault else 0.14,
            "name": _SPAN_NAMES.get(kind, kind), "legendgroup": kind, "showlegend": first,
        })
    return shapes


# The steps an axis may take, times a power of ten, and how many steps the axes of one plot share.
_ROUND_STEPS = (1.0, 2.0, 2.5, 5.0, 10.0)
_STEPS_A_PLOT = range(4, 8)


@dataclass(frozen=True)
class _Drawn:
    """What an axis must show: its lowest and highest value, and whether they are whole (wei, messages)."""

    low: float
    high: float
    whole: bool


def _drawn_on(fig: Figure, axis: str, from_zero: bool) -> _Drawn | None:
    """The values drawn against y axis ``axis`` (``y``, ``y2``, ...); None when one is a
    category (no number to tick)."""
    low, high, whole = math.inf, -math.inf, True
    for trace in fig["data"]:
        if (trace.get("yaxis") or "y") != axis or trace.get("orientation") == "h" or trace.get("y") is None:
            continue
        try:
            values = np.asarray(trace["y"], dtype=np.float64)
        except (TypeError, ValueError):
            return None
        values = values[np.isfinite(values)]
        if values.size:
            low, high = min(low, float(values.min())), max(high, float(values.max()))
            whole = whole and bool(np.all(values == np.round(values)))
    if low > high:  # nothing drawn on it
        low, high = 0.0, 1.0
    return _Drawn(min(low, 0.0) if from_zero else low, high, whole)


def _round_range(drawn: _Drawn, steps: int) -> tuple[float, float]:
    """(first tick, step): the smallest round step (1, 2, 2.5 or 5 times a power of ten; a
    whole number for whole values) whose ``steps`` steps from a multiple of it at or below
    the lowest value reach the highest."""
    span = drawn.high - drawn.low or abs(drawn.high) or 1.0
    power = 10.0 ** math.floor(math.log10(span / steps))
    for scale in (power, power * 10, power * 100):
        for step in (nice * scale for nice in _ROUND_STEPS):
            if drawn.whole and step < 1:
                continue
            first = math.floor(drawn.low / step + 1e-9) * step
            if first + steps * step >= drawn.high - 1e-9 * span:
                return first, step
    raise AssertionError(f"no round step for {drawn}")  # pragma: no cover: a hundredfold step always reaches


def round_axes(fig: Figure) -> Figure:
    """Round ticks on a plot whose y axes overlay one another. plotly.js puts an overlaying
    axis's ticks on the first axis's grid lines at whatever values fall there (63.3k, 2.025,
    0.053 to 0.819 wei on an axis of whole wei), and its top value may lie above its top
    tick. Here every axis takes round steps (whole ones for whole values) from a multiple of
    its step, and all take the same number of them (4 to 7: the count that leaves the least
    of the emptiest axis unused), so the ticks read as numbers, sit on one set of grid lines,
    and every value lies within the ticks. An axis with ``rangemode`` tozero starts at 0.
    A plot with stacked bars, a log axis or categories keeps plotly's own ticks on each axis."""
    layout = fig["layout"]
    overlaid = [key for key in layout if key.startswith("yaxis") and isinstance(layout[key], dict)
                and layout[key].get("overlaying") == "y"]
    if not overlaid:
        return fig
    axes = ["yaxis", *overlaid]
    drawn = {key: _drawn_on(fig, "y" + key[5:], layout.get(key, {}).get("rangemode") == "tozero") for key in axes}
    if (layout.get("barmode") in ("stack", "relative") or any(values is None for values in drawn.values())
            or any(layout.get(key, {}).get("type") == "log" for key in axes)):
        for key in overlaid:
            layout[key] = {**layout[key], "tickmode": "auto"}
        return fig
    shown = {key: values for key, values in drawn.items() if values is not None}

    def fill(steps: int) -> float:
        return min((values.high - values.low) / (steps * _round_range(values, steps)[1]) for values in shown.values())

    steps = max(_STEPS_A_PLOT, key=lambda count: (round(fill(count), 9), -count))
    for key, values in shown.items():
        first, step = _round_range(values, steps)
        layout[key] = {**layout.get(key, {}), "tickmode": "linear", "tick0": first, "dtick": step,
                       "range": [first, first + steps * step], "autorange": False}
    return fig


def own_axis(fig: Figure, trace_name: str, title_text: str, *, shared_title: str | None = None) -> Figure:
    """Give the traces named ``trace_name`` a right-hand y axis of their own, outside the
    plot, so a series of a different scale (a base fee of 1 to 3 beside a queue of
    thousands) is not drawn flat against another's axis. ``shared_title``: the new title of
    the axis they left."""
    layout = fig["layout"]
    taken = [int(key[5:] or 1) for key in layout if key.startswith("yaxis") and (key[5:] or "1").isdigit()]
    number = max(taken, default=1) + 1
    moved = [trace for trace in fig["data"] if trace.get("name") == trace_name]
    if not moved:
        return fig
    left = str(moved[0].get("yaxis") or "y")
    for trace in moved:
        trace["yaxis"] = f"y{number}"
    layout["xaxis"] = {**layout.get("xaxis", {}), "domain": [0.0, 0.9]}
    layout[f"yaxis{number}"] = {"title": {"text": title_text}, "overlaying": "y", "side": "right", "anchor": "free",
                                "position": 1.0, "rangemode": "tozero", "showgrid": False,
                                "tickfont": {"color": moved[0].get("line", {}).get("color", "#444")}}
    if shared_title is not None:
        key = "yaxis" + ("" if left == "y" else left[1:])
        layout[key] = {**layout.get(key, {}), "title": {"text": shared_title}}
    return round_axes(fig)


def _has_data(values: Any) -> bool:
    if values is None:
        return False
    if isinstance(values, (list, tuple)):
        return any(_has_data(v) for v in values)
    return not (isinstance(values, float) and math.isnan(values))


def _values(trace: dict[str, Any]) -> Any:
    """The trace's value axis: z of a heatmap, x of a horizontal bar, else y."""
    if trace.get("type") == "heatmap":
        return trace.get("z")
    if trace.get("type") == "bar" and trace.get("orientation") == "h":
        return trace.get("x")
    return trace.get("y")


def label_if_empty(fig: Figure, text: str = "no data in this run") -> Figure:
    """Say so on a plot none of whose traces has a value (an empty run, no deliveries, ...).
    Its shaded spans and marks on the time axis go: with no data beside them they would set
    the axis to their own few milliseconds and fill the plot."""
    if not any(_has_data(_values(trace)) for trace in fig["data"]):
        fig["layout"].pop("shapes", None)
        fig["layout"]["annotations"] = [*(a for a in fig["layout"].get("annotations", []) if a.get("xref") != "x"), {
            "font": {"color": "#888", "size": 16}, "showarrow": False, "text": text,
            "x": 0.5, "xref": "paper", "y": 0.5, "yref": "paper"}]
    return fig


def thinning_note(windows: int, max_points: int = MAX_POINTS, *, points: bool = False) -> str:
    """What a plot of ``windows`` windows drawn thinned shows ("" when it is not thinned);
    ``points``: a plot of one marker per window rather than lines and bars."""
    if windows <= max_points:
        return ""
    drawn = ("the windows with the lowest and the highest p99 of every span of windows are drawn" if points else
             "of every span of windows, each line keeps the lowest and the highest value, and bars the largest")
    return f"{windows:,} windows are more than a screen shows: {drawn}."


def _listed(values: F64 | I64) -> list[Any]:
    """Numbers for JSON, a missing value (NaN) as None."""
    return [None if value != value else value for value in values.tolist()]


def _column(windows: pa.Table, name: str) -> F64 | I64:
    """A window column as numpy (integers stay integers; a null is NaN); all NaN if absent."""
    if name not in windows.column_names:
        return np.full(windows.num_rows, np.nan)
    column = windows.column(name)
    if column.null_count == 0 and pa.types.is_integer(column.type):
        return np.asarray(column.to_numpy(), dtype=np.int64)
    return np.asarray(column.to_numpy(), dtype=np.float64)


def _window_ns(windows: pa.Table) -> tuple[I64, I64]:
    return (np.asarray(windows.column("t_start_ns").to_numpy(), dtype=np.int64),
            np.asarray(windows.column("t_end_ns").to_numpy(), dtype=np.int64))


def _step(starts_s: F64, ends_s: F64, values: F64 | I64) -> tuple[list[Any], list[Any]]:
    """A per-window value as a step line: held from each window's start to its end (thinned
    to the windows ``thin_lowest_highest`` keeps, the last one always among them)."""
    if starts_s.size == 0:
        return [], []
    keep = thin_lowest_highest(values.astype(np.float64))
    y = _listed(values[keep])
    return [*starts_s[keep].tolist(), float(ends_s[-1])], [*y, y[-1]]


def latency_unit(*values_ms: Sequence[float | None] | F64 | I64) -> tuple[str, float]:
    """The unit latencies given in ms are drawn in, from the longest of them, and its size in
    ms (``duration_unit``): ``("ms", 1.0)`` up to 2 s."""
    longest = 0.0
    for values in values_ms:
        finite = [float(v) for v in np.asarray(values, dtype=np.float64).ravel().tolist() if v == v]
        longest = max([longest, *finite])
    return duration_unit(longest)


def _in_unit(values_ms: F64 | I64, size: float) -> F64 | I64:
    """Latencies in ms as numbers of the chart's unit (unchanged in ms)."""
    return values_ms if size == 1.0 else values_ms / size


def _scatter(x: F64, values: F64 | I64) -> tuple[list[Any], list[Any]]:
    keep = thin_lowest_highest(values.astype(np.float64))
    return x[keep].tolist(), _listed(values[keep])


def throughput_figure(windows: pa.Table, spans: Sequence[Span], failure: FailureThreshold | None) -> Figure:
    """Offered vs achieved (committed) throughput per window, with the messages intended in each
    window that were not committed (dropped, rejected, lost, pending at the run's end, or never
    sent by a live generator behind its schedule) as bars."""
    start_ns, end_ns = _window_ns(windows)
    starts, ends = start_ns / NS_PER_S, end_ns / NS_PER_S
    data: list[dict[str, Any]] = []
    for name, column, colour in (("offered", "offered_per_s", "#1f77b4"),
                                 ("achieved (committed)", "throughput_per_s", "#2ca02c")):
        x, y = _step(starts, ends, _column(windows, column))
        data.append({"type": "scatter", "x": x, "y": y, "name": name, "mode": "lines",
                     "line": {"shape": "hv", "color": colour, "width": 2}})
    # A windows.csv written before a column was added lacks it: none counted there.
    not_committed = sum((_column(windows, name) for name in NOT_COMMITTED if name in windows.column_names),
                        np.zeros(windows.num_rows, dtype=np.int64))
    lost_per_s = not_committed / np.maximum(ends - starts, 1e-9)
    if np.any(lost_per_s > 0):
        first, last, peak = bucket_peaks(lost_per_s)
        data.append({"type": "bar", "x": ((starts[first] + ends[last]) / 2).tolist(), "y": peak.tolist(),
                     "name": "+".join(NOT_COMMITTED), "marker": {"color": "#d62728"}, "opacity": 0.45,
                     "width": ((ends[last] - starts[first]) * 0.9).tolist(),
                     "hovertemplate": "%{y:,.0f}/s not committed<extra></extra>"})
    shapes, annotations = [], []
    if failure and failure.t_ns is not None:
        shape, label = vline(failure.t_ns / NS_PER_S, {"dash": "dot", "color": "#444"},
                             f"failure threshold: {failure.reason}")
        shapes.append(shape)
        annotations.append(label)
    layout = _layout("Offered vs achieved throughput (bars: messages intended per second that were not committed: "
                     "dropped, rejected, lost, pending at the end or unsent)",
                     "time (s)", "messages/s", yaxis={"rangemode": "tozero"})
    if annotations:
        layout["annotations"] = annotations
    return figure(data, _with_shapes(layout, shapes + _shading(spans)))


def latency_time_figure(windows: pa.Table, spans: Sequence[Span]) -> Figure:
    """p50, p99 and max latency of the messages committed in each window; on a second axis,
    the messages of each window that were dropped, rejected or lost (bars)."""
    start_ns, end_ns = _window_ns(windows)
    mids = (start_ns + end_ns) / 2 / NS_PER_S
    data: list[dict[str, Any]] = []
    unit, size = latency_unit(*(_column(windows, column) for column in ("p50_ms", "p99_ms", "max_ms")))
    for name, column, colour in (("p50", "p50_ms", "#1f77b4"), ("p99", "p99_ms", "#ff7f0e"), ("max", "max_ms", "#7f7f7f")):
        x, y = _scatter(mids, _in_unit(_column(windows, column), size))
        data.append({"type": "scatter", "x": x, "y": y, "name": name, "mode": "lines+markers",
                     "line": {"color": colour, "dash": "dot" if name == "max" else "solid"}, "connectgaps": False})
    lost_any = False
    for offset, (name, colour) in zip((-1, 0, 1), (("dropped", "#d62728"), ("rejected", "#e377c2"), ("lost", "#8c564b"))):
        counts = _column(windows, name)
        if not np.any(counts > 0):
            continue
        lost_any = True
        first, last, peak = bucket_peaks(counts)
        bar_mids = (start_ns[first] + end_ns[last]) / 2 / NS_PER_S
        widths = (end_ns[last] - start_ns[first]) / NS_PER_S * 0.28
        data.append({"type": "bar", "x": (bar_mids + offset * widths).tolist(), "y": _listed(peak),
                     "width": widths.tolist(), "name": name, "yaxis": "y2", "marker": {"color": colour},
                     "opacity": 0.5, "hovertemplate": "%{y:,} " + name + "<extra></extra>"})
    more: dict[str, Any] = {}
    if lost_any:
        more["yaxis2"] = {"title": {"text": "messages not committed"}, "overlaying": "y", "side": "right",
                          "rangemode": "tozero", "showgrid": False}
    layout = _layout("Latency over time (bars: not committed; shaded: faults, recovery, backpressure, desync, "
                     "disconnects)",
                     "time (s)", f"latency ({unit})", yaxis={"rangemode": "tozero"}, **more)
    return round_axes(figure(data, _with_shapes(layout, _shading(spans))))


def validation_backlog_figure(backlog: tuple[list[float], list[float], list[float]],
                              depth: tuple[list[float], list[float]], spans: Sequence[Span]) -> Figure:
    """Gossip nodes' validation backlog per sample (largest node, and all sampled nodes
    together) beside the sequencer queue, in messages."""
    t, largest, total = backlog
    data = [
        {"type": "scatter", "x": t, "y": largest, "name": "largest node backlog", "mode": "lines",
         "line": {"color": "#9467bd", "width": 2}},
        {"type": "scatter", "x": t, "y": total, "name": "sampled nodes together", "mode": "lines",
         "line": {"color": "#9467bd", "dash": "dot"}},
        {"type": "scatter", "x": depth[0], "y": depth[1], "name": "sequencer queue", "mode": "lines",
         "line": {"color": "#1f77b4", "shape": "hv"}},
    ]
    layout = _layout("Validation backlog on gossip nodes vs the sequencer queue", "time (s)",
                     "messages (receipts' worth of CPU work)", yaxis={"rangemode": "tozero"})
    return figure(data, _with_shapes(layout, _shading(spans)))


def cpu_figure(lines: Sequence[CpuLine], spans: Sequence[Span]) -> Figure:
    """The CPUs each process of a live run kept busy, with each server's limit (dashed)."""
    palette = ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"]
    data: list[dict[str, Any]] = []
    for i, line in enumerate(lines):
        color = palette[i % len(palette)]
        label = line.name if line.cpus is not None else f"{line.name} (msgstorm)"
        data.append({"type": "scatter", "x": line.t, "y": line.cores, "name": label, "mode": "lines",
                     "line": {"color": color, "shape": "vh"}})
        if line.cpus is not None and line.t:
            data.append({"type": "scatter", "x": [0, line.t[-1]], "y": [line.cpus, line.cpus],
                         "name": f"{line.name}: may use {line.cpus} CPU" + ("s" if line.cpus != 1 else ""),
                         "mode": "lines", "line": {"color": color, "dash": "dash", "width": 1}})
    layout = _layout("CPU of the run's processes", "time (s)", "CPUs busy", yaxis={"rangemode": "tozero"})
    return figure(data, _with_shapes(layout, _shading(spans)))


def latency_load_figure(steps: pa.Table | None, windows: pa.Table, capacity: Capacity | None) -> Figure:
    """p99 latency against offered load: per ramp step with the knee marked, else per window."""
    data: list[dict[str, Any]] = []
    more: dict[str, Any] = {}
    if steps is not None and steps.num_rows:
        cols = {name: steps.column(name).to_pylist() for name in steps.column_names}
        passed = cols["passed"]
        unit, size = latency_unit(cols["p99_ms"])
        data.append({
            "type": "scatter", "x": cols["offered_per_s"],
            "y": cols["p99_ms"] if size == 1.0 else [None if v is None else v / size for v in cols["p99_ms"]],
            "name": "p99 per step",
            "mode": "lines+markers",
            "marker": {"size": 10, "color": ["#2ca02c" if ok else "#d62728" for ok in passed],
                       "line": {"width": 1, "color": "#333"}},
            "line": {"color": "#888"},
            "text": [f"step {s}: committed within the latency bar {t:,.0f}/s (the knee's count), "
                     f"{'passes' if ok else 'fails'}"
                     for s, t, ok in zip(cols["step"], cols["throughput_per_s"], passed)],
            "hovertemplate": f"offered %{{x:,.0f}}/s<br>p99 %{{y:,.3f}} {unit}<br>%{{text}}<extra></extra>",
        })
        # The layer's throughput: everything committed while the step lasted. Not the knee's
        # count (the step's own messages committed within the latency bar), which falls to 0
        # past the knee while the layer still commits at its capacity.
        data.append({"type": "scatter", "x": cols["offered_per_s"], "y": cols["committed_per_s"],
                     "name": "throughput (committed/s during the step)", "mode": "lines+markers", "yaxis": "y2",
                     "line": {"color": "#1f77b4", "dash": "dot"}})
        more["yaxis2"] = {"title": {"text": "throughput (messages/s)"}, "overlaying": "y", "side": "right",
                          "rangemode": "tozero", "showgrid": False}
        knee = capacity.knee_rate_per_s if capacity else None
        reached = capacity is not None and capacity.knee_reached
        if knee is not None and reached:  # no line where every step passed: the knee lies above the ramp
            shape, label = vline(knee, {"dash": "dash", "color": "#2ca02c", "width": 2}, f"knee {knee:,.0f}/s")
            more["shapes"], more["annotations"] = [shape], [label]
        title_text = ("Latency vs offered load (step ramp; green steps pass the knee criterion)" if reached or knee is None
                      else "Latency vs offered load (step ramp; every step passed: no knee reached)")
    else:
        offered = _column(windows, "offered_per_s")
        loaded = _loaded(offered)
        p99 = _column(windows, "p99_ms")[loaded]
        keep = loaded[thin_lowest_highest(p99.astype(np.float64))]
        start_s = _column(windows, "t_start_ns")[keep] / NS_PER_S
        unit, size = latency_unit(p99)
        data.append({
            "type": "scatter", "x": _listed(offered[keep]), "y": _listed(_in_unit(_column(windows, "p99_ms")[keep], size)),
            "name": "p99 per window", "mode": "markers", "marker": {"size": 9, "color": "#ff7f0e"},
            "text": [f"window at {t:.3g} s" for t in start_s.tolist()],
            "hovertemplate": f"offered %{{x:,.0f}}/s<br>p99 %{{y:,.3f}} {unit}<br>%{{text}}<extra></extra>",
        })
        title_text = "Latency vs offered load (no step ramp: one point per window with traffic; no knee)"
    layout = _layout(title_text, "offered load (messages/s)", f"p99 latency ({unit})", yaxis={"rangemode": "tozero"},
                     **more)
    layout["hovermode"] = "closest"
    return round_axes(figure(data, layout))


def _loaded(offered: F64 | I64) -> I64:
    return np.flatnonzero(offered != 0)  # not the drain


def load_points(windows: pa.Table) -> int:
    """How many windows the latency-vs-load plot of a run without a step ramp has a point
    for (those with traffic), before thinning."""
    return int(_loaded(_column(windows, "offered_per_s")).size)


def percentile_ticks(max_inverse: float) -> tuple[list[float], list[str]]:
    """Ticks at 0%, 50%, 90%, 99%, ... up to the spectrum's end (x = 1/(1-p))."""
    values, labels = [1.0, 2.0], ["0%", "50%"]
    nines = 1
    while 10.0**nines <= max(max_inverse, 10.0) * 1.0001:
        values.append(10.0**nines)
        labels.append(f"{100 - 100 / 10.0**nines:.{max(nines - 2, 0)}f}%")
        nines += 1
    return values, labels


def spectrum_figure(percentiles: list[float], inverse: list[float], latency_ms: list[float]) -> Figure:
    """Latency by percentile, x = 1/(1-p) on a log scale so the tail spreads out (HdrHistogram)."""
    unit, size = latency_unit(latency_ms)
    data = [{"type": "scatter", "x": inverse, "y": latency_ms if size == 1.0 else [v / size for v in latency_ms],
             "mode": "lines", "name": "latency",
             "line": {"shape": "hv", "color": "#1f77b4", "width": 2}, "customdata": percentiles,
             "hovertemplate": f"p%{{customdata:.4f}}: %{{y:,.3f}} {unit}<extra></extra>"}]
    tickvals, ticktext = percentile_ticks(max(inverse) if inverse else 10.0)
    layout = _layout("Latency by percentile (committed messages; x axis 1/(1−p), log)", "percentile",
                     f"latency ({unit})", xaxis={"type": "log", "tickvals": tickvals, "ticktext": ticktext},
                     yaxis={"rangemode": "tozero"}, showlegend=False)
    layout["hovermode"] = "closest"
    return figure(data, layout)


def stages_figure(stages: Stages) -> Figure:
    """Where the time goes: p50 and p99 of each latency stage (the summary's typed stages)."""
    each = {"propagation": stages.propagation, "queue_wait": stages.queue_wait, "service": stages.service,
            "block_wait": stages.block_wait}
    names = list(each)
    data = []
    unit, size = latency_unit([value for name in names for value in (each[name].p50, each[name].p99)])
    for key, colour in (("p50", "#1f77b4"), ("p99", "#ff7f0e")):
        values = [each[name].p50 if key == "p50" else each[name].p99 for name in names]
        data.append({"type": "bar", "y": [n.replace("_", " ") for n in names],
                     "x": values if size == 1.0 else [None if v is None else v / size for v in values], "name": key,
                     "orientation": "h", "marker": {"color": colour},
                     "text": [duration_ms(v) for v in values], "textposition": "auto"})
    layout = _layout("Latency stages: propagation, queue wait, service, block wait", f"latency ({unit})", "",
                     height=320, yaxis={"autorange": "reversed"}, barmode="group")
    layout["hovermode"] = "closest"
    return figure(data, layout)


# The queue depth's name wherever it is drawn: every message in the queue-wait stage.
QUEUE_DEPTH_NAME = "queue depth: messages in queue_wait"


def queue_fee_figure(depth: tuple[list[float], list[float]], base_fee: list[dict[str, Any]],
                     spans: Sequence[Span], fee_unit: str = "") -> Figure:
    """Queue depth, the messages waiting in the queue-wait stage (``queue_depth_series``:
    the summary's queue depth; its peak over each run of points past ``MAX_POINTS``) and,
    when recorded, the base fee (in ``fee_unit``, the summary's ``base_fee.unit``)."""
    data: list[dict[str, Any]] = [{"type": "scatter", "x": depth[0], "y": depth[1], "name": QUEUE_DEPTH_NAME,
                                   "mode": "lines", "line": {"color": "#1f77b4", "shape": "hv"}, "fill": "tozeroy"}]
    more: dict[str, Any] = {}
    if base_fee:
        fee = np.array([e["base_fee"] for e in base_fee], dtype=np.float64)
        keep = thin_lowest_highest(fee).tolist()
        data.append({"type": "scatter", "x": [base_fee[i]["t_ns"] / NS_PER_S for i in keep],
                     "y": [base_fee[i]["base_fee"] for i in keep], "name": "base fee", "mode": "lines",
                     "yaxis": "y2", "line": {"color": "#8c564b", "shape": "hv"}})
        more["yaxis2"] = {"title": {"text": fee_title(fee_unit)}, "overlaying": "y", "side": "right",
                          "rangemode": "tozero", "showgrid": False}
    title_text = "Queue depth and base fee" if base_fee else "Queue depth (no base fee recorded)"
    layout = _layout(title_text, "time (s)", "messages waiting (queue_wait)", yaxis={"rangemode": "tozero"}, **more)
    return round_axes(figure(data, _with_shapes(layout, _shading(spans))))


def block_bars_note(blocks: int) -> str:
    """What the base fee chart's bars are, for its caption: each block's messages, or past
    ``MAX_POINTS`` blocks the largest block of each run of consecutive blocks."""
    if blocks <= MAX_POINTS:
        return "Bars: each block's messages."
    sizes = np.diff(np.append(bucket_starts(blocks, MAX_POINTS), blocks))
    runs = f"{int(sizes.min())}" if sizes.min() == sizes.max() else f"{int(sizes.min())} or {int(sizes.max())}"
    return (f"Bars: the messages of the fullest block of each run of {runs} consecutive blocks ({MAX_POINTS:,} bars "
            f"for {blocks:,} blocks).")


def fee_title(unit: str) -> str:
    """A base fee's axis title, with its unit: ``base fee (gwei)``."""
    return f"base fee ({unit})" if unit else "base fee"


def base_fee_figure(base_fee: list[dict[str, Any]], block_t_ns: Sequence[int], block_messages: Sequence[float],
                    spans: Sequence[Span], fee_unit: str = "") -> Figure:
    """A chain run's base fee in force in each block (a step line), and each block's
    messages (bars, on the right axis); past ``MAX_POINTS`` blocks one bar for each run of
    consecutive blocks, as tall as its fullest block and as wide as the run."""
    fee = np.array([e["base_fee"] for e in base_fee], dtype=np.float64)
    keep = thin_lowest_highest(fee).tolist()
    data: list[dict[str, Any]] = [{"type": "scatter", "x": [base_fee[i]["t_ns"] / NS_PER_S for i in keep],
                                   "y": [base_fee[i]["base_fee"] for i in keep], "name": "base fee",
                                   "mode": "lines", "line": {"color": "#8c564b", "shape": "hv"}}]
    more: dict[str, Any] = {}
    if len(block_t_ns):
        t_s = np.asarray(block_t_ns, dtype=np.float64) / NS_PER_S
        first, _, peak = bucket_peaks(np.asarray(block_messages, dtype=np.float64))
        bars: dict[str, Any] = {"type": "bar", "y": _listed(peak), "yaxis": "y2",
                                "marker": {"color": "#1f77b4", "opacity": 0.35}}
        if len(block_t_ns) <= MAX_POINTS:
            bars |= {"x": t_s.tolist(), "name": "messages in the block"}
        else:  # each bar spans its run of blocks, up to the next run's first block
            edges = np.append(t_s[first], t_s[-1] + (t_s[-1] - t_s[-2]))
            widths = np.diff(edges)
            bars |= {"x": (edges[:-1] + widths / 2).tolist(), "width": (widths * 0.9).tolist(),
                     "name": "messages in the fullest block of the run"}
        data.append(bars)
        more["yaxis2"] = {"title": {"text": "messages in a block"}, "overlaying": "y", "side": "right",
                          "rangemode": "tozero", "showgrid": False}
    layout = _layout("Base fee per block", "time (s)", fee_title(fee_unit), yaxis={"rangemode": "tozero"}, **more)
    return round_axes(figure(data, _with_shapes(layout, _shading(spans))))


def region_heatmap_figure(matrix: RegionMatrix) -> Figure:
    """Gossip propagation p50 by origin region (rows) and receiving region (columns)."""
    text = [
        [f"p50 {duration_ms(a)}<br>p99 {duration_ms(b)}<br>{c:,} deliveries" if a is not None and b is not None
         else "no data"
         for a, b, c in zip(row50, row99, counts)]
        for row50, row99, counts in zip(matrix.p50_ms, matrix.p99_ms, matrix.count)
    ]
    data = [{"type": "heatmap", "z": [list(row) for row in matrix.p50_ms], "x": matrix.destinations,
             "y": matrix.origins, "text": text, "texttemplate": "%{text}",
             "hovertemplate": "%{y} → %{x}<br>%{text}<extra></extra>", "colorscale": plotspec.VIRIDIS,
             "colorbar": {"title": {"text": "p50 ms"}}}]
    height = max(300, 110 + 70 * len(matrix.origins))
    layout = _layout("Gossip propagation by region (origin → receiver, p50 colour)", "receiving region",
                     "origin region", height=height, yaxis={"autorange": "reversed"})
    layout["hovermode"] = "closest"
    return figure(data, layout)


def _thinned_rows(table: pa.Table, values: F64) -> I64:
    """Rows of a per-batch or per-block table to draw: every row up to ``MAX_POINTS``, else
    each run's lowest and highest of ``values`` (a day's L1 blocks: 7,200)."""
    return thin_lowest_highest(values) if table.num_rows > MAX_POINTS else np.arange(table.num_rows, dtype=np.int64)


def rollup_batches_figure(batches: pa.Table, spans: Sequence[Span]) -> Figure:
    """Each batch at the time it closed: how long after its first L2 block it was safe (its
    L1 block) and final, on the left; its compressed size on a right-hand axis. A sequencer
    outage is shaded as the fault it is."""
    closed_s = _column(batches, "t_closed") / 1e9
    opened = _column(batches, "t_opened")
    to_safe_s = (_column(batches, "t_safe") - opened) / 1e9
    rows = _thinned_rows(batches, to_safe_s)
    x = closed_s[rows].tolist()
    # Points, not lines: no batch closes while the sequencer is down, and a line across the
    # gap would draw batches that never were.
    data = [
        {"type": "scatter", "mode": "markers", "name": "first block to safe (s)", "x": x,
         "y": to_safe_s[rows].tolist(), "marker": {"size": 5}},
        {"type": "scatter", "mode": "markers", "name": "first block to final (s)", "x": x,
         "y": ((_column(batches, "t_final") - opened) / 1e9)[rows].tolist(), "marker": {"size": 5}},
        {"type": "scatter", "mode": "markers", "name": "compressed bytes", "x": x,
         "y": _column(batches, "compressed_bytes")[rows].tolist(), "marker": {"size": 4, "symbol": "diamond"},
         "opacity": 0.6},
    ]
    layout = _layout("Batches: when each was safe and final, and its size", "batch closed at (s)",
                     "from its first L2 block (s)")
    fig = own_axis(figure(data, _with_shapes(layout, _shading(spans))), "compressed bytes", "compressed bytes")
    return label_if_empty(fig, "no batch was posted in this run")


def rollup_fees_figure(l1_blocks: pa.Table, spans: Sequence[Span], blobs: bool) -> Figure:
    """The L1 under the rollup, block by block: its base fee (gwei) and, when the batches
    went as blobs (``blobs``), its blob base fee (wei, a right-hand axis), with each block's
    batches in the hover text."""
    base_gwei = _column(l1_blocks, "base_fee") / 1e9
    rows = _thinned_rows(l1_blocks, base_gwei)
    x = (_column(l1_blocks, "t") / 1e9)[rows].tolist()
    data = [
        {"type": "scatter", "mode": "lines", "name": "base fee (gwei)", "x": x, "y": base_gwei[rows].tolist(),
         "customdata": _column(l1_blocks, "batches")[rows].tolist(),
         "hovertemplate": "%{y:,.4g} gwei, %{customdata} batches"},
    ]
    if blobs:  # what a calldata rollup pays does not depend on the blob fee
        data.append({"type": "scatter", "mode": "lines", "name": "blob base fee (wei)", "x": x,
                     "y": _column(l1_blocks, "blob_base_fee")[rows].tolist(), "line": {"dash": "dot"}})
    layout = _layout("The L1 under the rollup: base fee" + (" and blob base fee" if blobs else ""),
                     "L1 block time (s)", "base fee (gwei)")
    fig = figure(data, _with_shapes(layout, _shading(spans)))
    if blobs:
        fig = own_axis(fig, "blob base fee (wei)", "blob base fee (wei)")
    return label_if_empty(fig, "no L1 block in this run")
