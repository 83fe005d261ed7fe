"""The run report's figures on hand-made data: what each shows, without a browser."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import msgstorm
from msgstorm.analysis.summary_model import Stages
from msgstorm.report.figures import (
    label_if_empty,
    latency_time_figure,
    merged_intervals,
    own_axis,
    queue_fee_figure,
    rollup_fees_figure,
    spectrum_figure,
    stages_figure,
    thinning_note,
    throughput_figure,
    validation_backlog_figure,
)
from msgstorm.report.plotspec import figure
from msgstorm.report.series import MAX_POINTS, Span
from msgstorm.runner import run

S = 1_000_000_000
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _windows(dropped: list[int], lost: list[int], p99_ms: list[float | None] | None = None) -> pa.Table:
    n = len(dropped)
    return pa.table({"t_start_ns": [i * S for i in range(n)], "t_end_ns": [(i + 1) * S for i in range(n)],
                     "offered_per_s": [100.0] * n, "throughput_per_s": [100.0] * n,
                     "p50_ms": [1.0] * n, "p99_ms": p99_ms or [2.0] * n, "max_ms": [3.0] * n,
                     "dropped": dropped, "rejected": [0] * n, "lost": lost, "pending": [0] * n})


def _traces(fig: dict, kind: str) -> dict[str, dict]:
    return {trace["name"]: trace for trace in fig["data"] if trace["type"] == kind}


def test_latency_chart_shows_what_was_not_committed_on_a_second_axis() -> None:
    fig = latency_time_figure(_windows([0, 5, 0], [0, 0, 7]), [])
    bars = _traces(fig, "bar")
    assert set(bars) == {"dropped", "lost"}  # rejected: none in any window, not drawn
    assert bars["dropped"]["y"] == [0, 5, 0] and bars["lost"]["y"] == [0, 0, 7]
    assert {trace["yaxis"] for trace in bars.values()} == {"y2"}
    assert fig["layout"]["yaxis2"]["overlaying"] == "y"
    quiet = latency_time_figure(_windows([0, 0], [0, 0]), [])
    assert not _traces(quiet, "bar") and "yaxis2" not in quiet["layout"]


def test_faults_stay_visible_under_desync_shading() -> None:
    spans = [Span("desync", "a", 1.0, 3.0), Span("desync", "b", 2.0, 4.0), Span("desync", "c", 6.0, 7.0),
             Span("fault", "f", 2.5, 3.5)]
    assert merged_intervals(spans) == [("desync", 1.0, 4.0), ("desync", 6.0, 7.0), ("fault", 2.5, 3.5)]
    fig = latency_time_figure(_windows([0], [0]), spans)
    shapes = fig["layout"]["shapes"]
    assert [shape["legendgroup"] for shape in shapes] == ["desync", "desync", "fault"]  # the fault drawn last
    fault = shapes[-1]
    assert fault["layer"] == "above" and fault["line"]["width"] > 0 and fault["line"]["dash"] == "dash"
    assert all(shape["layer"] == "below" for shape in shapes[:-1])


def test_validation_backlog_figure_draws_the_backlog_beside_the_queue() -> None:
    fig = validation_backlog_figure(([0.1, 0.2], [40.0, 12.0], [90.0, 12.0]), ([0.1, 0.2], [3.0, 4.0]), [])
    assert [trace["name"] for trace in fig["data"]] == ["largest node backlog", "sampled nodes together",
                                                        "sequencer queue"]
    assert fig["data"][0]["y"] == [40.0, 12.0]


def test_a_long_run_is_drawn_thinned_and_keeps_its_spikes() -> None:
    n = 10 * MAX_POINTS
    p99: list[float | None] = [2.0] * n
    p99[12_345] = 900.0  # one window's spike
    p99[777] = 0.5  # one window's dip
    dropped = [0] * n
    dropped[4_321] = 40
    fig = latency_time_figure(_windows(dropped, [0] * n, p99), [])
    lines = _traces(fig, "scatter")
    assert all(len(trace["x"]) <= MAX_POINTS for trace in lines.values())
    shown = dict(zip(lines["p99"]["x"], lines["p99"]["y"]))
    assert shown[12_345.5] == 900.0 and shown[777.5] == 0.5
    assert max(lines["p99"]["y"]) == 900.0 and min(lines["p99"]["y"]) == 0.5
    [bars] = _traces(fig, "bar").values()
    assert len(bars["y"]) <= MAX_POINTS and max(bars["y"]) == 40 and sum(bars["y"]) == 40
    # The bar of the span holding the loss covers that window.
    peak = bars["y"].index(40)
    half = bars["width"][peak] / 0.28 / 2
    assert bars["x"][peak] - half <= 4_321 and 4_322 <= bars["x"][peak] + half
    throughput = throughput_figure(_windows(dropped, [0] * n), [], None)
    offered = _traces(throughput, "scatter")["offered"]
    assert len(offered["x"]) <= MAX_POINTS + 1 and offered["x"][-1] == n  # the step ends at the run's end
    assert thinning_note(n) and not thinning_note(MAX_POINTS)


def test_a_short_run_is_drawn_window_by_window() -> None:
    fig = latency_time_figure(_windows([0, 1, 0], [0, 0, 0], [2.0, None, 4.0]), [])
    p99 = _traces(fig, "scatter")["p99"]
    assert p99["x"] == [0.5, 1.5, 2.5] and p99["y"] == [2.0, None, 4.0]


def test_a_day_long_runs_latencies_are_drawn_in_hours_not_millions_of_ms() -> None:
    """Windows whose max latency reaches 40,000,000 ms (11.1 h): the axis is in h and the
    lines are the same latencies in hours (plotly drew "40M" on an axis of ms); a run of
    milliseconds keeps its values as they are."""
    long = _windows([0, 0], [0, 0], [7_200_000.0, 36_000_000.0]).set_column(
        6, "max_ms", pa.array([10_800_000.0, 40_000_000.0]))
    fig = latency_time_figure(long, [])
    assert fig["layout"]["yaxis"]["title"]["text"] == "latency (h)"
    lines = _traces(fig, "scatter")
    assert lines["p99"]["y"] == pytest.approx([2.0, 10.0]) and lines["max"]["y"] == pytest.approx([3.0, 40 / 3.6])
    short = latency_time_figure(_windows([0, 0], [0, 0]), [])
    assert short["layout"]["yaxis"]["title"]["text"] == "latency (ms)" and _traces(short, "scatter")["p99"]["y"] == [2.0, 2.0]
    spectrum = spectrum_figure([50.0, 99.0], [2.0, 100.0], [90_000.0, 4_860_000.0])
    assert spectrum["layout"]["yaxis"]["title"]["text"] == "latency (min)"
    assert spectrum["data"][0]["y"] == pytest.approx([1.5, 81.0]) and " min" in spectrum["data"][0]["hovertemplate"]


def test_a_plot_with_no_data_says_so_and_drops_its_shading() -> None:
    """A live run has no queue samples: a disconnect's few ms of shading would otherwise set
    the empty plot's time axis and fill it."""
    spans = [Span("disconnected", "disconnected: c0", 3.03, 3.13)]
    empty = label_if_empty(queue_fee_figure(([], []), [], spans))
    assert "shapes" not in empty["layout"]
    assert [a["text"] for a in empty["layout"]["annotations"]] == ["no data in this run"]
    drawn = label_if_empty(queue_fee_figure(([0.0, 5.0], [1.0, 2.0]), [], spans))
    assert [shape["legendgroup"] for shape in drawn["layout"]["shapes"]] == ["disconnected"]
    assert "annotations" not in drawn["layout"]


def _plotted(page: str, slug: str) -> dict[str, Any]:
    """The figure ``slug`` as report.html carries it to plotly (what the chart draws)."""
    match = re.search(rf'<script type="application/json" id="fig-{slug}">(.*?)</script>', page, re.S)
    assert match, f"report.html has no figure {slug}"
    figure: dict[str, Any] = json.loads(match.group(1))
    return figure


def test_the_throughput_charts_bars_count_the_messages_left_pending(tmp_path: Path) -> None:
    """Blocks of 50 every 250 ms carry 200/s of the ~3,000/s offered: nothing is dropped,
    rejected or lost, and most of each window's messages are still pending at the end (as
    black-thursday's flood leaves 49,394). The bars are each window's messages intended and
    not committed, per second, pending ones too: read back from report.html, they are the
    history's count of such messages in the window, over its length."""
    scenario = msgstorm.load_scenario(EXAMPLES / "quickstart.toml",
                                      ['run.duration="3s"', 'run.drain="2s"', "blocks.max_messages=50"])
    result = run(scenario, tmp_path / "r")
    counts = result.summary["messages"]
    assert counts["dropped"] == counts["rejected"] == counts["lost"] == 0 and counts["pending"] > 5_000
    [bars] = _traces(_plotted((result.run_dir / "report.html").read_text(), "throughput"), "bar").values()
    assert bars["name"] == "dropped+rejected+lost+pending+unsent"
    messages = result.history.messages
    intended = messages["t_intended"].to_numpy()
    waiting = intended[np.asarray(messages["status"].to_pylist()) != "committed"]
    windows = result.analysis.windows
    starts, ends = windows["t_start_ns"].to_pylist(), windows["t_end_ns"].to_pylist()
    held = [int(np.count_nonzero((waiting >= start) & (waiting < end))) for start, end in zip(starts, ends)]
    assert sum(held) == counts["pending"]  # every pending message is in one window's bar
    expected = [count / ((end - start) / S) for count, start, end in zip(held, starts, ends)]
    assert bars["y"] == pytest.approx(expected)
    assert bars["x"] == pytest.approx([(start + end) / 2 / S for start, end in zip(starts, ends)])


def test_the_throughput_charts_bars_count_a_live_generators_unsent_messages() -> None:
    """A live run whose generator fell behind (live-redis: 1,596,099 unsent, nothing dropped or
    lost): each window's unsent messages are among its bars, per second of the window (a 2 s
    window's 3,000 unsent is 1,500/s), and the bars are drawn."""
    windows = _windows([0, 0, 0], [0, 0, 0]).append_column("unsent", pa.array([0, 3_000, 800]))
    windows = windows.set_column(1, "t_end_ns", pa.array([S, 3 * S, 4 * S]))
    windows = windows.set_column(0, "t_start_ns", pa.array([0, S, 3 * S]))
    [bars] = _traces(throughput_figure(windows, [], None), "bar").values()
    assert bars["name"] == "dropped+rejected+lost+pending+unsent"
    assert bars["y"] == [0.0, 1_500.0, 800.0]
    assert bars["x"] == pytest.approx([0.5, 2.0, 3.5])


def test_latency_vs_load_plots_the_throughput_committed_during_each_step(example_run: Any) -> None:
    """examples/ramp.toml's steps past its knee (about 5,000/s) commit near 5,000/s while
    their own messages miss the latency bar, so the knee credits them 0. The chart's
    throughput, read back from report.html, is every message committed while the step lasted
    per second of it, counted here from the history, and says so in its name."""
    result = example_run("ramp")  # the tour's run of it (tests/test_docs.py)
    traces = {trace["name"]: trace for trace in _plotted((result.run_dir / "report.html").read_text(),
                                                          "latency-load")["data"]}
    assert set(traces) == {"p99 per step", "throughput (committed/s during the step)"}
    plotted = traces["throughput (committed/s during the step)"]
    steps = result.analysis.steps
    assert steps is not None
    commits = result.history.messages["t_committed"].drop_null().to_numpy()
    counted = [int(np.count_nonzero((commits >= start) & (commits < end))) / ((end - start) / S)
               for start, end in zip(steps["t_start_ns"].to_pylist(), steps["t_end_ns"].to_pylist())]
    assert plotted["y"] == pytest.approx(counted, abs=1e-3)
    assert plotted["x"] == steps["offered_per_s"].to_pylist()
    knee_count = steps["throughput_per_s"].to_pylist()
    assert knee_count[-3:] == [0.0, 0.0, 0.0]  # the 8k .. 10k/s steps: none of their own within the bar
    assert all(4_500 < value < 5_500 for value in plotted["y"][-3:])  # while the layer commits ~5,000/s


def test_latency_vs_load_marks_no_knee_where_every_step_passed(tmp_path: Path) -> None:
    """examples/ramp.toml cut to its first three steps: every step passes, so the chart draws
    no knee line (there was none to draw) and its title says why."""
    scenario = msgstorm.load_scenario(EXAMPLES / "ramp.toml", ["agents[0].arrival.steps=3"])
    result = run(scenario, tmp_path / "r")
    plotted = _plotted((result.run_dir / "report.html").read_text(), "latency-load")
    assert "shapes" not in plotted["layout"] and "annotations" not in plotted["layout"]
    assert plotted["layout"]["title"]["text"].endswith("every step passed: no knee reached)")
    full = run(msgstorm.load_scenario(EXAMPLES / "ramp.toml", ["agents[0].arrival.steps=6"]), tmp_path / "full")
    knee = _plotted((full.run_dir / "report.html").read_text(), "latency-load")["layout"]["annotations"]
    assert [label["text"] for label in knee] == [f"knee {full.summary['capacity']['knee_rate_per_s']:,.0f}/s"]


def test_the_stage_bars_word_their_durations_as_the_stage_table_does() -> None:
    """report.html's stage bars beside its stage table: 2,185.311 ms reads 2.19 s on both."""
    none = {"p50": None, "p99": None}
    stages = Stages.model_validate({"propagation": none, "queue_wait": {"p50": 8.7, "p99": 2185.311},
                                    "service": {"p50": None, "p99": 0.25}, "block_wait": none})
    bars = stages_figure(stages)["data"]
    assert [bar["y"] for bar in bars] == [["propagation", "queue wait", "service", "block wait"]] * 2
    assert [bar["text"] for bar in bars] == [["—", "8.7 ms", "—", "—"], ["—", "2.19 s", "0.25 ms", "—"]]


def _round(step: float) -> bool:
    """1, 2, 2.5 or 5 times a power of ten."""
    mantissa = step / 10 ** math.floor(math.log10(step))
    return any(math.isclose(mantissa, nice) for nice in (1.0, 2.0, 2.5, 5.0))


def _axes_hold_their_values(fig: dict[str, Any]) -> dict[str, tuple[float, float, float]]:
    """Each y axis's (first tick, step, last tick), checked: round steps, whole ones for whole
    values, the same number on every axis (one set of grid lines), every value within."""
    layout, shown = fig["layout"], {}
    for key in [key for key in layout if key.startswith("yaxis")]:
        axis = layout[key]
        low, high = axis["range"]
        assert axis["tickmode"] == "linear" and axis["tick0"] == low and _round(axis["dtick"]), (key, axis)
        values = [y for trace in fig["data"] if (trace.get("yaxis") or "y") == "y" + key[5:]
                  for y in trace["y"] if y is not None]
        assert low <= min(values) and max(values) <= high, (key, low, high, min(values), max(values))
        if all(float(y).is_integer() for y in values):
            assert axis["dtick"] >= 1, (key, axis)
        shown[key] = (low, axis["dtick"], high)
    assert len({round((high - low) / step, 6) for low, step, high in shown.values()}) == 1, shown
    return shown


def test_axes_beside_one_another_take_round_steps_on_one_grid_and_hold_every_value() -> None:
    """Before, an overlaying axis took plotly.js's ticks at the first axis's grid lines:
    63.3k beside 50M, base fees of 0.675 and 2.025, a blob fee of 1 wei above its top tick
    0.819 on ticks from 0.053. Now each axis counts in round steps, the same number of them."""
    spans: list[Span] = []
    fig = queue_fee_figure(([0.0, 10.0, 20.0], [0.0, 66_900.0, 3.0]),
                           [{"t_ns": 0, "base_fee": 0.1}, {"t_ns": 10 * S, "base_fee": 2.141280263023515}], spans)
    shown = _axes_hold_their_values(fig)
    assert shown == {"yaxis": (0.0, 20_000.0, 100_000.0), "yaxis2": (0.0, 0.5, 2.5)}
    bad_debt = own_axis(figure([
        {"type": "scatter", "x": [0, 1, 2], "y": [0.0, 85_206_685.5, 158_633_889.9], "name": "bad debt"},
        {"type": "scatter", "x": [0, 1, 2], "y": [0.0, 66_900.0, 10.0], "name": "queue depth (peak)", "yaxis": "y2"},
        {"type": "scatter", "x": [0, 1, 2], "y": [0.1, 2.14, 1.0], "name": "base fee", "yaxis": "y2"}],
        {"yaxis": {"rangemode": "tozero"}, "yaxis2": {"overlaying": "y", "rangemode": "tozero"}}), "base fee", "base fee")
    assert _axes_hold_their_values(bad_debt) == {"yaxis": (0.0, 50_000_000.0, 250_000_000.0),
                                                 "yaxis2": (0.0, 20_000.0, 100_000.0), "yaxis3": (0.0, 0.5, 2.5)}
    blocks = pa.table({"t": [12 * S * k for k in range(1, 6)], "base_fee": [53_000_000, 200_000_000, 819_000_000,
                                                                           400_000_000, 100_000_000],
                       "batches": [0, 1, 0, 1, 0], "blob_base_fee": [1, 1, 1, 1, 1]})
    fees = rollup_fees_figure(blocks, spans, blobs=True)
    shown = _axes_hold_their_values(fees)
    assert shown["yaxis"][2] >= 0.819 and shown["yaxis2"][1] == 1.0  # the blob fee in whole wei, 1 within
    assert next(trace for trace in fees["data"] if trace["name"] == "blob base fee (wei)")["yaxis"] == "y2"
    near = own_axis(figure([{"type": "scatter", "x": [0, 1], "y": [10.0, 10.016], "name": "base fee (gwei)"},
                            {"type": "scatter", "x": [0, 1], "y": [1, 3], "name": "blob"}], {}), "blob", "blob")
    assert _axes_hold_their_values(near)["yaxis"][:2] == (10.0, 0.005)  # an axis not from 0 keeps its detail
