"""The run report's figures on hand-made data: what each shows, without a browser."""

from __future__ import annotations

import pyarrow as pa

from msgstorm.report.figures import latency_time_figure, merged_intervals, validation_backlog_figure
from msgstorm.report.series import Span

S = 1_000_000_000


def _windows(dropped: list[int], lost: list[int]) -> pa.Table:
    n = len(dropped)
    return pa.table({"t_start_ns": [i * S for i in range(n)], "t_end_ns": [(i + 1) * S for i in range(n)],
                     "p50_ms": [1.0] * n, "p99_ms": [2.0] * n, "max_ms": [3.0] * n,
                     "dropped": dropped, "rejected": [0] * n, "lost": lost})


def test_latency_chart_shows_what_was_not_committed_on_a_second_axis() -> None:
    fig = latency_time_figure(_windows([0, 5, 0], [0, 0, 7]), [])
    bars = {trace.name: trace for trace in fig.data if trace.type == "bar"}
    assert set(bars) == {"dropped", "lost"}  # rejected: none in any window, not drawn
    assert list(bars["dropped"].y) == [0, 5, 0] and list(bars["lost"].y) == [0, 0, 7]
    assert {trace.yaxis for trace in bars.values()} == {"y2"}
    assert fig.layout.yaxis2.overlaying == "y"
    quiet = latency_time_figure(_windows([0, 0], [0, 0]), [])
    assert not [trace for trace in quiet.data if trace.type == "bar"] and "yaxis2" not in quiet.to_dict()["layout"]


def test_faults_stay_visible_under_desync_shading() -> None:
    spans = [Span("desync", "a", 1.0, 3.0), Span("desync", "b", 2.0, 4.0), Span("desync", "c", 6.0, 7.0),
             Span("fault", "f", 2.5, 3.5)]
    assert merged_intervals(spans) == [("desync", 1.0, 4.0), ("desync", 6.0, 7.0), ("fault", 2.5, 3.5)]
    fig = latency_time_figure(_windows([0], [0]), spans)
    shapes = list(fig.layout.shapes)
    assert [shape.legendgroup for shape in shapes] == ["desync", "desync", "fault"]  # the fault drawn last
    fault = shapes[-1]
    assert fault.layer == "above" and fault.line.width > 0 and fault.line.dash == "dash"
    assert all(shape.layer == "below" for shape in shapes[:-1])


def test_validation_backlog_figure_draws_the_backlog_beside_the_queue() -> None:
    fig = validation_backlog_figure(([0.1, 0.2], [40.0, 12.0], [90.0, 12.0]), ([0.1, 0.2], [3.0, 4.0]), [])
    assert [trace.name for trace in fig.data] == ["largest node backlog", "sampled nodes together", "sequencer queue"]
    assert list(fig.data[0].y) == [40.0, 12.0]
