"""sweep.html: the plotted values, read back from the page, are sweep.json's per-point means."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from msgstorm.cli import app
from msgstorm.sweep.grid import grid_column, value_label

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SHORT = ['run.duration="2s"', 'run.drain="1s"']


def _figures(page: str) -> dict[str, dict[str, Any]]:
    return {match.group(1): json.loads(match.group(2)) for match in
            re.finditer(r'<script type="application/json" id="fig-([^"]+)">(.*?)</script>', page, re.S)}


def test_grid_columns_keep_the_values_types() -> None:
    assert grid_column([1, 2]).type == "int64" and grid_column([1, 2]).to_pylist() == [1, 2]
    assert grid_column([1, 2.5]).to_pylist() == [1.0, 2.5]
    assert grid_column(["fifo", "fee_priority"]).to_pylist() == ["fifo", "fee_priority"]
    assert grid_column([True, False]).type == "bool"
    assert grid_column([[1, 2], {"a": "x"}]).to_pylist() == ["[1, 2]", '{"a" = "x"}']
    assert value_label("fifo") == "fifo" and value_label(1) == "1" and value_label(2.5) == "2.5"


@pytest.mark.slow
def test_every_chart_plots_the_points_means_of_sweep_json(tmp_path: Path) -> None:
    """An integer key and a string key (the values the page once failed to find in the table):
    each metric's line against each key passes through the means of sweep.json's points, and
    the tornado's bar of a key is the spread of the means over its values."""
    out = tmp_path / "sweep"
    result = CliRunner().invoke(app, [
        "sweep", str(EXAMPLES / "quickstart.toml"), "--grid", "sequencer.workers=1,2",
        "--grid", 'sequencer.policy="fifo","fee_priority"', "--seeds", "2", "--workers", "2", "--out", str(out), "-q",
        *[arg for item in SHORT for arg in ("--set", item)]])
    assert result.exit_code == 0, result.output
    document = json.loads((out / "sweep.json").read_text())
    figures = _figures((out / "sweep.html").read_text())
    rows = pq.read_table(out / "sweep.parquet").to_pylist()
    assert {(row["sequencer.workers"], row["sequencer.policy"]) for row in rows} == {
        (1, "fifo"), (1, "fee_priority"), (2, "fifo"), (2, "fee_priority")}
    keys = ["sequencer.workers", "sequencer.policy"]
    metrics = [metric for metric in document["points"][0]["metrics"] if f"{metric}-{keys[0]}".replace(".", "-")
               .replace("_", "-") in figures]
    assert "latency_ms.p99" in metrics and len(metrics) >= 5, metrics

    def mean_at(metric: str, values: dict[str, str]) -> float:
        (point,) = [p for p in document["points"]
                    if all(value_label(p["grid"][key]) == label for key, label in values.items())]
        return float(point["metrics"][metric]["mean"])

    for metric in metrics:
        for key, other in (keys, keys[::-1]):
            figure = figures[f"{metric}-{key}".replace(".", "-").replace("_", "-")]
            lines = [trace for trace in figure["data"] if trace.get("mode") == "lines+markers"]
            assert len(lines) == 2, figure["data"]
            for line in lines:
                series = line["name"].split(" = ", 1)[1]
                assert all(y is not None for y in line["y"]), (metric, key, line)
                assert line["y"] == pytest.approx([mean_at(metric, {key: x, other: series}) for x in line["x"]]), \
                    (metric, key, line)
        tornado = next(trace for trace in figures["tornado"]["data"] if trace["name"] == metric)
        assert tornado["y"] == keys
        for key, reach, spread in zip(keys, tornado["x"], tornado["customdata"], strict=True):
            means = []  # over the points at each value of the key (two points, same seeds each)
            for label in {value_label(p["grid"][key]) for p in document["points"]}:
                at = [p["metrics"][metric]["mean"] for p in document["points"] if value_label(p["grid"][key]) == label]
                means.append(sum(at) / len(at))
            assert spread == pytest.approx(max(means) - min(means)), (metric, key)
            largest = max(abs(mean) for mean in means)
            # one axis for metrics of different units: the bar is the reach as a share of the largest mean
            assert reach == pytest.approx(100 * (max(means) - min(means)) / largest if largest else 0.0), (metric, key)
    p99 = next(trace for trace in figures["tornado"]["data"] if trace["name"] == "latency_ms.p99")
    assert max(p99["x"]) > 0, p99
