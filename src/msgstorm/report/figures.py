"""The run report's plots, one function each, as plotly figures.

Place in the pipeline: Analysis + series -> **figures** -> html. Each function takes plain
data (the analysis' window and step tables, the summary, ``series`` views of the history)
and returns a ``plotly.graph_objects.Figure``; the page embeds plotly.js once and draws
them all. Times are seconds since the run's start, latencies milliseconds, rates per second.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from msgstorm.report import plotspec as go
from msgstorm.report.series import RegionMatrix, Span

__all__ = [
    "SPAN_COLOURS",
    "label_if_empty",
    "latency_load_figure",
    "latency_time_figure",
    "merged_intervals",
    "percentile_ticks",
    "queue_fee_figure",
    "region_heatmap_figure",
    "spectrum_figure",
    "stages_figure",
    "throughput_figure",
    "validation_backlog_figure",
]

NS_PER_S = 1e9
SPAN_COLOURS = {"fault": "#d62728", "backpressure": "#ff7f0e", "desync": "#9467bd"}
_SPAN_NAMES = {"fault": "fault active", "backpressure": "backpressure engaged", "desync": "node desynced"}


def _layout(fig: go.Figure, title: str, x_title: str, y_title: str, height: int = 380) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left"},
        template="plotly_white",
        height=height,
        margin={"l": 70, "r": 30, "t": 60, "b": 55},
        legend={"orientation": "h", "y": -0.22, "x": 0},
        hovermode="x unified",
    )
    fig.update_xaxes(title_text=x_title)
    fig.update_layout(yaxis_title_text=y_title)  # the primary axis only: a second one has its own
    return fig


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


def _shade(fig: go.Figure, spans: Sequence[Span]) -> None:
    """Shade each kind's spans across the plot, one legend entry per kind. Faults are drawn
    last, on top, with a dashed outline and a light fill, so they stay visible where
    desync or backpressure shading covers the same time."""
    shown: set[str] = set()
    shapes = []
    intervals = merged_intervals(spans)
    for kind, start, end in sorted(intervals, key=lambda item: item[0] == "fault"):
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
    fig.update_layout(shapes=[*(fig.layout.shapes or ()), *shapes])


def _has_data(values: Any) -> bool:
    if values is None:
        return False
    if isinstance(values, (list, tuple)):
        return any(_has_data(v) for v in values)
    return not (isinstance(values, float) and math.isnan(values))


def _values(trace: Any) -> Any:
    """The trace's value axis: z of a heatmap, x of a horizontal bar, else y."""
    if trace.type == "heatmap":
        return trace.z
    if trace.type == "bar" and trace.orientation == "h":
        return trace.x
    return trace.y


def label_if_empty(fig: go.Figure, text: str = "no data in this run") -> go.Figure:
    """Say so on a plot none of whose traces has a value (an empty run, no deliveries, ...)."""
    if not any(_has_data(_values(trace)) for trace in fig.data):
        fig.add_annotation(text=text, xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False,
                           font={"size": 16, "color": "#888"})
    return fig


def _window_columns(windows: pa.Table) -> dict[str, list[Any]]:
    return {name: windows.column(name).to_pylist() for name in windows.column_names}


def _step_xy(starts_s: list[float], ends_s: list[float], values: list[Any]) -> tuple[list[float], list[Any]]:
    """A per-window value as a step line: held from each window's start to its end."""
    if not starts_s:
        return [], []
    return [*starts_s, ends_s[-1]], [*values, values[-1]]


def throughput_figure(windows: pa.Table, spans: Sequence[Span], failure: dict[str, Any] | None) -> go.Figure:
    """Offered vs achieved (committed) throughput per window, with losses on a second axis."""
    cols = _window_columns(windows)
    starts = [t / NS_PER_S for t in cols.get("t_start_ns", [])]
    ends = [t / NS_PER_S for t in cols.get("t_end_ns", [])]
    fig = go.Figure()
    for name, column, colour in (("offered", "offered_per_s", "#1f77b4"),
                                 ("achieved (committed)", "throughput_per_s", "#2ca02c")):
        x, y = _step_xy(starts, ends, cols.get(column, []))
        fig.add_trace(go.Scatter(x=x, y=y, name=name, mode="lines", line={"shape": "hv", "color": colour, "width": 2}))
    lost = [(d + r + lo) / max(b - a, 1e-9) for d, r, lo, a, b in
            zip(cols.get("dropped", []), cols.get("rejected", []), cols.get("lost", []), starts, ends)]
    if any(lost):
        fig.add_trace(go.Bar(x=[(a + b) / 2 for a, b in zip(starts, ends)], y=lost, name="dropped+rejected+lost",
                             marker={"color": "#d62728"}, opacity=0.45, width=[(b - a) * 0.9 for a, b in zip(starts, ends)],
                             hovertemplate="%{y:,.0f}/s not committed<extra></extra>"))
    if failure and failure.get("t_ns") is not None:
        fig.add_vline(x=failure["t_ns"] / NS_PER_S, line={"dash": "dot", "color": "#444"},
                      annotation_text=f"failure threshold: {failure.get('reason')}", annotation_position="top left")
    _shade(fig, spans)
    fig.update_yaxes(rangemode="tozero")
    return _layout(fig, "Offered vs achieved throughput (bars: messages intended per second that were not committed)", "time (s)", "messages/s")


def latency_time_figure(windows: pa.Table, spans: Sequence[Span]) -> go.Figure:
    """p50, p99 and max latency of the messages committed in each window; on a second axis,
    the messages of each window that were dropped, rejected or lost (bars)."""
    cols = _window_columns(windows)
    starts = cols.get("t_start_ns", [])
    ends = cols.get("t_end_ns", [])
    mids = [(a + b) / 2 / NS_PER_S for a, b in zip(starts, ends)]
    widths = [(b - a) / NS_PER_S * 0.28 for a, b in zip(starts, ends)]
    fig = go.Figure()
    for name, column, colour in (("p50", "p50_ms", "#1f77b4"), ("p99", "p99_ms", "#ff7f0e"), ("max", "max_ms", "#7f7f7f")):
        fig.add_trace(go.Scatter(x=mids, y=cols.get(column, []), name=name, mode="lines+markers",
                                 line={"color": colour, "dash": "dot" if name == "max" else "solid"}, connectgaps=False))
    lost_any = False
    for offset, (name, column, colour) in zip((-1, 0, 1), (("dropped", "dropped", "#d62728"),
                                                          ("rejected", "rejected", "#e377c2"),
                                                          ("lost", "lost", "#8c564b"))):
        counts = cols.get(column, [])
        if not any(counts):
            continue
        lost_any = True
        fig.add_trace(go.Bar(x=[m + offset * w for m, w in zip(mids, widths)], y=counts, width=widths, name=name,
                             yaxis="y2", marker={"color": colour}, opacity=0.5,
                             hovertemplate="%{y:,} " + name + "<extra></extra>"))
    if lost_any:
        fig.update_layout(yaxis2={"title": {"text": "messages not committed"}, "overlaying": "y", "side": "right",
                                  "rangemode": "tozero", "showgrid": False})
    _shade(fig, spans)
    fig.update_yaxes(rangemode="tozero")
    return _layout(fig, "Latency over time (bars: not committed; shaded: faults, backpressure, desync)",
                   "time (s)", "latency (ms)")


def validation_backlog_figure(backlog: tuple[list[float], list[float], list[float]],
                              depth: tuple[list[float], list[float]], spans: Sequence[Span]) -> go.Figure:
    """Gossip nodes' validation backlog per sample (largest node, and all sampled nodes
    together) beside the sequencer queue, in messages."""
    t, largest, total = backlog
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=t, y=largest, name="largest node backlog", mode="lines",
                             line={"color": "#9467bd", "width": 2}))
    fig.add_trace(go.Scatter(x=t, y=total, name="sampled nodes together", mode="lines",
                             line={"color": "#9467bd", "dash": "dot"}))
    fig.add_trace(go.Scatter(x=depth[0], y=depth[1], name="sequencer queue", mode="lines",
                             line={"color": "#1f77b4", "shape": "hv"}))
    _shade(fig, spans)
    fig.update_yaxes(rangemode="tozero")
    return _layout(fig, "Validation backlog on gossip nodes vs the sequencer queue", "time (s)",
                   "messages (receipts' worth of CPU work)")


def latency_load_figure(steps: pa.Table | None, windows: pa.Table, capacity: dict[str, Any] | None) -> go.Figure:
    """p99 latency against offered load: per ramp step with the knee marked, else per window."""
    fig = go.Figure()
    if steps is not None and steps.num_rows:
        cols = _window_columns(steps)
        passed = cols["passed"]
        fig.add_trace(go.Scatter(
            x=cols["offered_per_s"], y=cols["p99_ms"], name="p99 per step", mode="lines+markers",
            marker={"size": 10, "color": ["#2ca02c" if ok else "#d62728" for ok in passed],
                    "line": {"width": 1, "color": "#333"}},
            line={"color": "#888"},
            text=[f"step {s}: throughput {t:,.0f}/s, {'passes' if ok else 'fails'}"
                  for s, t, ok in zip(cols["step"], cols["throughput_per_s"], passed)],
            hovertemplate="offered %{x:,.0f}/s<br>p99 %{y:,.3f} ms<br>%{text}<extra></extra>",
        ))
        fig.add_trace(go.Scatter(x=cols["offered_per_s"], y=cols["throughput_per_s"], name="throughput per step",
                                 mode="lines+markers", yaxis="y2", line={"color": "#1f77b4", "dash": "dot"}))
        fig.update_layout(yaxis2={"title": "throughput (messages/s)", "overlaying": "y", "side": "right",
                                  "rangemode": "tozero", "showgrid": False, "tickmode": "auto"})
        knee = (capacity or {}).get("knee_rate_per_s")
        if knee is not None:
            fig.add_vline(x=knee, line={"dash": "dash", "color": "#2ca02c", "width": 2},
                          annotation_text=f"knee {knee:,.0f}/s", annotation_position="top left")
        title = "Latency vs offered load (step ramp; green steps pass the knee criterion)"
    else:
        cols = _window_columns(windows)
        loaded = [i for i, offered in enumerate(cols.get("offered_per_s", [])) if offered]  # not the drain
        fig.add_trace(go.Scatter(
            x=[cols["offered_per_s"][i] for i in loaded], y=[cols["p99_ms"][i] for i in loaded],
            name="p99 per window", mode="markers", marker={"size": 9, "color": "#ff7f0e"},
            text=[f"window at {cols['t_start_ns'][i] / NS_PER_S:.3g} s" for i in loaded],
            hovertemplate="offered %{x:,.0f}/s<br>p99 %{y:,.3f} ms<br>%{text}<extra></extra>",
        ))
        title = "Latency vs offered load (no step ramp: one point per window with traffic; no knee)"
    fig.update_yaxes(rangemode="tozero")
    fig = _layout(fig, title, "offered load (messages/s)", "p99 latency (ms)")
    fig.update_layout(hovermode="closest")
    return fig


def percentile_ticks(max_inverse: float) -> tuple[list[float], list[str]]:
    """Ticks at 0%, 50%, 90%, 99%, ... up to the spectrum's end (x = 1/(1-p))."""
    values, labels = [1.0, 2.0], ["0%", "50%"]
    nines = 1
    while 10.0**nines <= max(max_inverse, 10.0) * 1.0001:
        values.append(10.0**nines)
        labels.append(f"{100 - 100 / 10.0**nines:.{max(nines - 2, 0)}f}%")
        nines += 1
    return values, labels


def spectrum_figure(percentiles: list[float], inverse: list[float], latency_ms: list[float]) -> go.Figure:
    """Latency by percentile, x = 1/(1-p) on a log scale so the tail spreads out (HdrHistogram)."""
    fig = go.Figure(go.Scatter(
        x=inverse, y=latency_ms, mode="lines", name="latency", line={"shape": "hv", "color": "#1f77b4", "width": 2},
        customdata=percentiles, hovertemplate="p%{customdata:.4f}: %{y:,.3f} ms<extra></extra>",
    ))
    tickvals, ticktext = percentile_ticks(max(inverse) if inverse else 10.0)
    fig.update_xaxes(type="log", tickvals=tickvals, ticktext=ticktext)
    fig.update_yaxes(rangemode="tozero")
    fig = _layout(fig, "Latency by percentile (committed messages; x axis 1/(1−p), log)", "percentile", "latency (ms)")
    fig.update_layout(hovermode="closest", showlegend=False)
    return fig


def stages_figure(stages: dict[str, dict[str, float | None]]) -> go.Figure:
    """Where the time goes: p50 and p99 of each latency stage."""
    names = list(stages)
    fig = go.Figure()
    for key, colour in (("p50", "#1f77b4"), ("p99", "#ff7f0e")):
        values = [(stages[name] or {}).get(key) for name in names]
        fig.add_trace(go.Bar(y=[n.replace("_", " ") for n in names], x=values, name=key, orientation="h",
                             marker={"color": colour},
                             text=[f"{v:,.3f} ms" if v is not None else "—" for v in values], textposition="auto"))
    fig.update_yaxes(autorange="reversed")
    fig = _layout(fig, "Latency stages: propagation, queue wait, service, block wait", "latency (ms)", "", height=320)
    fig.update_layout(barmode="group", hovermode="closest")
    return fig


def queue_fee_figure(depth: tuple[list[float], list[float]], base_fee: list[dict[str, Any]],
                     spans: Sequence[Span]) -> go.Figure:
    """Sequencer queue depth (peak between samples) and, when recorded, the base fee."""
    fig = go.Figure(go.Scatter(x=depth[0], y=depth[1], name="queue depth (peak)", mode="lines",
                               line={"color": "#1f77b4", "shape": "hv"}, fill="tozeroy"))
    if base_fee:
        fig.add_trace(go.Scatter(x=[e["t_ns"] / NS_PER_S for e in base_fee], y=[e["base_fee"] for e in base_fee],
                                 name="base fee", mode="lines", yaxis="y2", line={"color": "#8c564b", "shape": "hv"}))
        fig.update_layout(yaxis2={"title": "base fee", "overlaying": "y", "side": "right",
                                  "rangemode": "tozero", "showgrid": False, "tickmode": "auto"})
    _shade(fig, spans)
    fig.update_yaxes(rangemode="tozero")
    title = "Queue depth and base fee" if base_fee else "Queue depth (no base fee recorded)"
    return _layout(fig, title, "time (s)", "messages queued")


def region_heatmap_figure(matrix: RegionMatrix) -> go.Figure:
    """Gossip propagation p50 by origin region (rows) and receiving region (columns)."""
    text = [
        [f"p50 {a:,.2f} ms<br>p99 {b:,.2f} ms<br>{c:,} deliveries" if a is not None and b is not None else "no data"
         for a, b, c in zip(row50, row99, counts)]
        for row50, row99, counts in zip(matrix.p50_ms, matrix.p99_ms, matrix.count)
    ]
    z = [list(row) for row in matrix.p50_ms]
    fig = go.Figure(go.Heatmap(
        z=z, x=matrix.destinations, y=matrix.origins, text=text, texttemplate="%{text}",
        hovertemplate="%{y} → %{x}<br>%{text}<extra></extra>", colorscale="Viridis",
        colorbar={"title": {"text": "p50 ms"}},
    ))
    fig.update_yaxes(autorange="reversed")
    height = max(300, 110 + 70 * len(matrix.origins))
    fig = _layout(fig, "Gossip propagation by region (origin → receiver, p50 colour)", "receiving region",
                  "origin region", height=height)
    fig.update_layout(hovermode="closest")
    return fig
