"""The plain figure specifications are what plotly itself would build.

Every figure of real reports (a multi-region run with faults, a step ramp, a one-node run)
is loaded into plotly's own ``Figure``, which rejects any property or value plotly.js does
not know; and the building calls the reports make give the same JSON as plotly's graph
objects do (the template aside, which plotly resolves from the same file).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import plotly.graph_objects as plotly_go
import pytest

from msgstorm.history import read_history
from msgstorm.report import plotspec
from msgstorm.report.html import _labelled, _plots
from msgstorm.runner import run
from msgstorm.scenario import load_scenario

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SHORT = ['run.duration="2s"', 'run.drain="1s"']


@pytest.mark.parametrize("example", ["quickstart", "flash-crash", "ramp", "matching-engine"])
def test_every_report_figure_is_a_valid_plotly_figure(tmp_path: Path, example: str) -> None:
    overrides = SHORT if example != "ramp" else []
    result = run(load_scenario(EXAMPLES / f"{example}.toml", overrides), tmp_path / "run")
    plots = _labelled(_plots(read_history(result.run_dir), result.analysis))
    assert len(plots) >= 9
    for name, plot in plots.items():
        spec = json.loads(plot.figure.to_json())
        plotly_go.Figure(spec)  # raises on anything plotly.js would not understand
        assert spec["layout"]["template"] == plotspec.template("plotly_white"), name


def _both(build: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    ours = plotspec.Figure()
    theirs = plotly_go.Figure()
    build(ours, plotspec)
    build(theirs, plotly_go)
    # Through plotly's Figure, ours is normalised as plotly normalises its own (named colour
    # scales spelled out, ...): what is left to differ is what plotly.js would draw.
    mine = json.loads(plotly_go.Figure(json.loads(ours.to_json())).to_json())
    reference = json.loads(theirs.to_json())
    mine["layout"].pop("template", None)
    reference["layout"].pop("template", None)
    return mine, reference


def test_traces_layout_and_axes_come_out_as_plotly_builds_them() -> None:
    def build(fig: Any, go: Any) -> None:
        fig.add_trace(go.Scatter(x=[0, 1, 2], y=[1.5, float("nan"), 3], name="p99", mode="lines+markers",
                                 line={"shape": "hv", "width": 2}, hovertemplate="%{y} ms"))
        fig.add_trace(go.Bar(x=[0.5, 1.5], y=[3, 4], name="lost", yaxis="y2", marker={"color": "#d62728"}))
        fig.add_trace(go.Heatmap(z=[[1, 2], [3, None]], x=["a", "b"], y=["a", "b"], colorscale="Viridis"))
        fig.update_layout(title={"text": "t", "x": 0.01, "xanchor": "left"}, height=380,
                          margin={"l": 70, "r": 30, "t": 60, "b": 55}, hovermode="x unified")
        fig.update_layout(yaxis2={"title": {"text": "lost"}, "overlaying": "y", "side": "right"})
        fig.update_xaxes(title_text="time (s)")
        fig.update_layout(yaxis_title_text="latency (ms)")
        fig.update_yaxes(rangemode="tozero")
        fig.update_layout(shapes=[{"type": "rect", "xref": "x", "yref": "paper", "x0": 1, "x1": 2, "y0": 0,
                                   "y1": 1, "fillcolor": "#9467bd", "opacity": 0.14, "line": {"width": 0}}])
        fig.add_annotation(text="no data", xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False)

    mine, reference = _both(build)
    assert mine == reference


def test_a_vertical_line_is_a_valid_shape_with_its_label() -> None:
    fig = plotspec.Figure(plotspec.Scatter(x=[1, 2], y=[1, 2]))
    fig.add_vline(x=1.5, line={"dash": "dot", "color": "#444"}, annotation_text="knee 1,500/s",
                  annotation_position="top left")
    spec = json.loads(fig.to_json())
    plotly_go.Figure(spec)
    [shape] = spec["layout"]["shapes"]
    assert (shape["x0"], shape["x1"], shape["y0"], shape["y1"]) == (1.5, 1.5, 0, 1)
    [label] = spec["layout"]["annotations"]
    assert label["text"] == "knee 1,500/s" and label["x"] == 1.5 and label["xanchor"] == "right"
