"""The plain figure specifications are what plotly itself makes of them.

Every figure of real reports (a multi-region run with faults, a step ramp, a one-node run,
a run of more windows than a screen shows) is loaded into plotly's own ``Figure``, which
rejects any property or value plotly.js does not know and writes the figure out in its own
normal form. That form is the spec as written, key for key and number for number: the page
holds what plotly's graph objects would have built, without building them.
"""

from __future__ import annotations

import json
from pathlib import Path

import plotly.graph_objects as plotly_go
import pytest

from msgstorm.history import read_history
from msgstorm.report import plotspec
from msgstorm.report.html import _labelled, _plots
from msgstorm.runner import run
from msgstorm.scenario import load_scenario

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SHORT = ['run.duration="2s"', 'run.drain="1s"']
OVERRIDES = {
    "quickstart": SHORT,
    "flash-crash": SHORT,
    "ramp": [],
    "matching-engine": SHORT,
    "quickstart-long": ['run.duration="3s"', 'run.drain="1s"', 'run.window="1ms"'],  # 4,000 windows
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(OVERRIDES))
def test_every_report_figure_is_what_plotlys_figure_makes_of_it(tmp_path: Path, case: str) -> None:
    example = case.removesuffix("-long")
    result = run(load_scenario(EXAMPLES / f"{example}.toml", OVERRIDES[case]), tmp_path / "run")
    plots = _labelled(_plots(read_history(result.run_dir), result.analysis))
    assert len(plots) >= 9
    for name, plot in plots.items():
        spec = json.loads(plotspec.to_json(plot.figure))
        normalised = json.loads(plotly_go.Figure(spec).to_json())  # raises on what plotly.js does not know
        assert normalised == spec, name
        assert spec["layout"]["template"] == plotspec.template("plotly_white"), name


def test_a_vertical_line_is_the_shape_and_label_of_plotlys_add_vline() -> None:
    shape, label = plotspec.vline(1.5, {"dash": "dot", "color": "#444"}, "knee 1,500/s")
    reference = plotly_go.Figure()
    reference.add_vline(x=1.5, line={"dash": "dot", "color": "#444"}, annotation_text="knee 1,500/s",
                        annotation_position="top left")
    layout = reference.to_plotly_json()["layout"]
    assert layout["shapes"] == [shape] and layout["annotations"] == [label]


def test_the_heatmap_colours_are_plotlys_viridis() -> None:
    heatmap = plotly_go.Figure(plotly_go.Heatmap(z=[[1]], colorscale="Viridis")).to_plotly_json()["data"][0]
    assert [list(stop) for stop in heatmap["colorscale"]] == plotspec.VIRIDIS


def test_json_for_plotly_js_has_no_nan() -> None:
    fig = plotspec.figure([{"type": "scatter", "x": [0, 1], "y": [float("nan"), 2.0]}], {})
    assert json.loads(plotspec.to_json(fig))["data"][0]["y"] == [None, 2.0]
