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
from msgstorm.sweep.grid import grid_column, plan_sweep, value_label
from msgstorm.sweep.html import write_sweep_report
from msgstorm.sweep.results import write_results

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
        if f"surface-{metric}".replace(".", "-").replace("_", "-") not in figures:  # equal at every point
            assert len({p["metrics"][metric]["mean"] for p in document["points"]}) == 1, metric
            continue
        [surface] = figures[f"surface-{metric}".replace(".", "-").replace("_", "-")]["data"]
        for y, row in zip(surface["y"], surface["z"], strict=True):
            assert row == pytest.approx([mean_at(metric, {keys[0]: x, keys[1]: y}) for x in surface["x"]]), metric
    p99 = next(trace for trace in figures["tornado"]["data"] if trace["name"] == "latency_ms.p99")
    assert max(p99["x"]) > 0, p99


def _guard_sweep(tmp_path: Path, keys: list[tuple[str, list[Any]]], bad_debt: Any) -> dict[str, dict[str, Any]]:
    """A sweep's page from hand-made outcomes: each run's guard bad debt ``bad_debt(point, seed)``
    (None: the run failed)."""
    plan = plan_sweep(keys, zipped=False, seeds=2, base_seed=1)
    outcomes = {}
    for spec in plan.runs:
        debt = bad_debt(plan.points[spec.point], spec.seed)
        outcomes[spec.run_id] = ({"status": "ok", "summary": {"sentinel": {"bad_debt": debt, "blocked": 10}}}
                                 if debt is not None else {"status": "failed", "error": "boom"})
    table = write_results(tmp_path, plan, outcomes)
    return _figures(write_sweep_report(tmp_path, plan, table).read_text())


def test_a_surface_shows_each_pair_of_the_first_two_keys_mean_over_seeds(tmp_path: Path) -> None:
    """A guard's bad debt over its grace period and the outage's length: bad debt = grace (h) x
    1e6 + outage (min) x 1e3 + seed, so the mean over seeds 1 and 2 adds 1.5; the pair whose
    runs all failed is blank."""
    grace, outage = ("market.sentinel.grace", ["0s", "1h"]), ("faults.0.duration", ["30min", "78min"])

    def debt(point: dict[str, Any], seed: int) -> float | None:
        if point[grace[0]] == "1h" and point[outage[0]] == "30min":
            return None
        return (1e6 if point[grace[0]] == "1h" else 0.0) + int(point[outage[0]][:-3]) * 1e3 + seed

    figures = _guard_sweep(tmp_path, [grace, outage], debt)
    [surface] = figures["surface-sentinel-bad-debt"]["data"]
    assert surface["type"] == "heatmap" and surface["x"] == ["0s", "1h"] and surface["y"] == ["30min", "78min"]
    assert surface["z"] == [[30_001.5, None], [78_001.5, 1_078_001.5]]
    assert surface["text"] == [["30,001.5", ""], ["78,001.5", "1,078,002"]]  # as the terminal prints numbers
    # blocked is 10 in every run: a flat surface is left out
    assert "surface-sentinel-blocked" not in figures and "sentinel-blocked-faults-0-duration" in figures


def test_one_swept_key_draws_no_surface(tmp_path: Path) -> None:
    figures = _guard_sweep(tmp_path, [("market.sentinel.grace", ["0s", "1h"])], lambda point, seed: float(seed))
    assert "sentinel-bad-debt-market-sentinel-grace" in figures
    assert not any(name.startswith("surface-") for name in figures)


def test_a_long_latency_reads_in_its_unit_in_the_table_and_on_the_axis(tmp_path: Path) -> None:
    """p99 latencies of 28 and 29 minutes, as summary.json gives them in ms: the points table
    says "28.2 min", not "1.692e+06", the chart's axis is in min, and a count stays a count."""
    plan = plan_sweep([("sequencer.workers", [1, 2])], zipped=False, seeds=2, base_seed=1)
    outcomes = {}
    for spec in plan.runs:
        p99_ms = (1_692_000.0 if spec.point == 0 else 1_752_000.0) + 60_000.0 * (spec.seed - 1)
        outcomes[spec.run_id] = {"status": "ok", "summary": {"latency_ms": {"p99": p99_ms},
                                                             "messages": {"committed": 1_500_000 + spec.seed}}}
    table = write_results(tmp_path, plan, outcomes)
    page = write_sweep_report(tmp_path, plan, table).read_text()
    rows = re.search(r'<table id="points-table">(.*?)</table>', page, re.S)
    assert rows is not None
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", rows.group(1))
    assert "28.7 min [" in " ".join(cells) and "29.7 min [" in " ".join(cells), cells
    assert "1,500,002 [1,499,995, 1,500,008]" in cells and not any("e+" in cell for cell in cells), cells
    figure = _figures(page)["latency-ms-p99-sequencer-workers"]
    assert figure["layout"]["yaxis"]["title"]["text"] == "latency_ms.p99 (min)"
    means = next(trace for trace in figure["data"] if trace.get("mode") == "lines+markers")
    assert means["y"] == pytest.approx([28.7, 29.7]) and means["text"] == ["28.7 min", "29.7 min"]
