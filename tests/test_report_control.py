"""report.html's self-healing section (report/control.py): each controller's decisions as a
step line beside the strain it read, drawn without script errors; absent without controllers."""

from __future__ import annotations

import json
import re

import numpy as np
import pyarrow.compute as pc
import pytest
from control_scenarios import OVERLOAD_TOML
from test_report_html import _plot_states, _status, open_in_chromium

from msgstorm.analysis.samples import grid_series
from msgstorm.history.events import EventKind
from msgstorm.report.html import render_run_report


def _figure(page: str, slug: str) -> dict:  # type: ignore[type-arg]
    match = re.search(rf'<script type="application/json" id="fig-{slug}">(.*?)</script>', page, re.S)
    assert match, f"no figure {slug}"
    return dict(json.loads(match.group(1)))


@pytest.mark.slow
def test_report_plots_the_throttle_beside_the_queue(scenario_from, run_scenario, tmp_path) -> None:
    result = run_scenario(scenario_from(OVERLOAD_TOML.format(duration_s=10, bots_stop="")))
    page = render_run_report(result.history, result.analysis)
    events = result.history.events.filter(pc.equal(result.history.events["kind"], "control"))
    shares = events["value"].to_pylist()
    assert len(shares) >= 5
    figure = _figure(page, "control-throttle")
    line, strain, marks = figure["data"]
    assert line["y"][1:-1] == shares  # one step per decision, after the starting share of 1
    assert line["x"][1:-1] == [t / 1e9 for t in events["t"].to_pylist()]
    assert strain["name"] == "queue depth" and max(strain["y"]) > 200
    assert marks["y"] == [json.loads(detail)["strain"] for detail in events["detail"].to_pylist()]
    assert f"<td>throttle</td><td>{len(shares):,}</td>" in page
    shed = json.loads(events["detail"][-1].as_py())["shed"]
    assert shed > 1_000 and re.search(rf"<td>throttle</td>(<td>[^<]*</td>){{4}}<td>{shed:,}</td>", page)
    (tmp_path / "report.html").write_text(page, encoding="utf-8")
    dom, console = open_in_chromium(tmp_path / "report.html", tmp_path / "profile")
    status = _status(dom)
    assert status.get("done") == "yes" and status.get("errors") == "0", status
    assert not [line for line in console if "Uncaught" in line or "Error" in line]
    assert _plot_states(dom)["control-throttle"] == "yes"  # (a one-node run draws no overlay or regions)


def test_no_controller_no_section(scenario_from, run_scenario) -> None:
    text = OVERLOAD_TOML.split("[[controllers]]")[0].format(duration_s=1, bots_stop="")
    result = run_scenario(scenario_from(text))
    page = render_run_report(result.history, result.analysis)
    assert 'id="control"' not in page and "control-table" not in page


def test_report_plots_the_block_interval_from_where_it_started(scenario_from, run_scenario) -> None:
    text = OVERLOAD_TOML.split("[[controllers]]")[0].replace('max_messages = 1000000', 'max_messages = 50')
    text = text.replace("{bots_stop}", 'start = "2s"\nstop = "6s"').replace('rate = "1500/s"', 'rate = "500/s"')
    text += '\n[[controllers]]\nkind = "block_time"\nmin_interval = "20ms"\nmax_interval = "100ms"\nevery = "500ms"\n'
    result = run_scenario(scenario_from(text.format(duration_s=12)))
    page = render_run_report(result.history, result.analysis)
    line, strain, _ = _figure(page, "control-block_time")["data"]
    assert line["y"][0] == 100.0  # blocks.interval, in ms, before the first decision
    assert min(line["y"]) < 100.0 and line["y"][-1] == 100.0
    assert strain["name"] == "block backlog (full blocks)" and max(strain["y"]) > 1


def test_the_block_backlog_plotted_is_the_one_the_throttle_read(scenario_from, run_scenario) -> None:
    # With a block share the lane's sequenced messages wait apart (lane_block_backlog); the
    # throttle reads both, and so does its strain curve.
    text = OVERLOAD_TOML.replace('max_messages = 1000000', 'max_messages = 50').replace(
        "target = 200", 'target = 500\nsignal = "block_backlog"').replace(
        "[sequencer]\n", '[sequencer]\nlane = {{ kinds = ["order"], block_share = "20%" }}\n')
    result = run_scenario(scenario_from(text.format(duration_s=10, bots_stop="")))
    page = render_run_report(result.history, result.analysis)
    _, strain, _ = _figure(page, "control-throttle")["data"]
    # Each series at every sample (written as they change): the two meet at every sample.
    (t_rest, rest), (t_lane, lane) = (grid_series(result.history, kind) for kind in
                                      (EventKind.BLOCK_BACKLOG, EventKind.LANE_BLOCK_BACKLOG))
    assert np.array_equal(t_rest, t_lane) and t_rest.size == 100  # every 100 ms of 10 s
    assert lane.max() > 0 and strain["y"] == (rest + lane).tolist()
