"""sweep.html: the plotted values, read back from the page, are sweep.json's per-point means."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from msgstorm.cli import app
from msgstorm.report.plotspec import distinct_colours
from msgstorm.sweep.grid import Plan, grid_column, plan_sweep, value_label
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
    flat = {item.group(1) for item in re.finditer(r'<li data-metric="([^"]+)">', (out / "sweep.html").read_text())}
    assert set(document["points"][0]["metrics"]) == set(metrics) | flat  # each drawn, or named as the same everywhere
    for metric in flat:
        assert len({p["metrics"][metric]["mean"] for p in document["points"]}) == 1, metric

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
        bars = {trace["name"]: trace for trace in figures["tornado"]["data"]}  # one trace a key, a row a metric
        assert list(bars) == keys
        for key in keys:
            row = bars[key]["y"].index(metric)
            reach, spread = bars[key]["x"][row], bars[key]["customdata"][row]
            means = []  # over the points at each value of the key (two points, same seeds each)
            for label in {value_label(p["grid"][key]) for p in document["points"]}:
                at = [p["metrics"][metric]["mean"] for p in document["points"] if value_label(p["grid"][key]) == label]
                means.append(sum(at) / len(at))
            assert spread == pytest.approx(max(means) - min(means)), (metric, key)
            largest = max(abs(mean) for mean in means)
            # one axis for metrics of different units: the bar is the reach as a share of the largest mean
            assert reach == pytest.approx(100 * (max(means) - min(means)) / largest if largest else 0.0), (metric, key)
        [surface] = figures[f"surface-{metric}".replace(".", "-").replace("_", "-")]["data"]
        for y, row in zip(surface["y"], surface["z"], strict=True):
            assert row == pytest.approx([mean_at(metric, {keys[0]: x, keys[1]: y}) for x in surface["x"]]), metric
    p99 = [trace["x"][trace["y"].index("latency_ms.p99")] for trace in figures["tornado"]["data"]]
    assert max(p99) > 0, p99


def _flat_named(page: str) -> dict[str, str]:
    """The page's list of metrics equal at every point: name -> the value it shows."""
    return {match.group(1): html.unescape(match.group(2)) for match in
            re.finditer(r'<li data-metric="([^"]+)"><code>[^<]*</code> = ([^<]*)</li>', page)}


def _hand_sweep(tmp_path: Path, keys: list[tuple[str, list[Any]]], summary: Any, seeds: int = 2) -> Plan:
    """A sweep's tables and page from hand-made outcomes: each run's summary ``summary(point,
    seed)`` (None: the run failed)."""
    plan = plan_sweep(keys, zipped=False, seeds=seeds, base_seed=1)
    outcomes = {}
    for spec in plan.runs:
        made = summary(plan.points[spec.point], spec.seed)
        outcomes[spec.run_id] = ({"status": "ok", "summary": made} if made is not None
                                 else {"status": "failed", "error": "boom"})
    write_sweep_report(tmp_path, plan, write_results(tmp_path, plan, outcomes))
    return plan


def _guard_sweep(tmp_path: Path, keys: list[tuple[str, list[Any]]], bad_debt: Any) -> dict[str, dict[str, Any]]:
    """A sweep's page from hand-made outcomes: each run's guard bad debt ``bad_debt(point, seed)``
    (None: the run failed)."""
    def summary(point: dict[str, Any], seed: int) -> dict[str, Any] | None:
        debt = bad_debt(point, seed)
        return None if debt is None else {"sentinel": {"bad_debt": debt, "blocked": 10}}

    _hand_sweep(tmp_path, keys, summary)
    return _figures((tmp_path / "sweep.html").read_text())


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
    # blocked is 10 in every run: named with its value, not drawn
    assert not any(name.startswith(("surface-sentinel-blocked", "sentinel-blocked")) for name in figures)
    assert _flat_named((tmp_path / "sweep.html").read_text()) == {"sentinel.blocked": "10"}


def test_one_swept_key_draws_no_surface(tmp_path: Path) -> None:
    figures = _guard_sweep(tmp_path, [("market.sentinel.grace", ["0s", "1h"])],
                           lambda point, seed: seed + 10.0 * (point["market.sentinel.grace"] == "1h"))
    assert "sentinel-bad-debt-market-sentinel-grace" in figures
    assert not any(name.startswith("surface-") for name in figures)


def test_a_long_latency_reads_in_its_unit_in_the_table_and_on_the_axis(tmp_path: Path) -> None:
    """p99 latencies of 28 and 29 minutes, as summary.json gives them in ms: the points table
    says "28.7 min", not "1.692e+06", the chart's axis is in min, and a count stays a count
    (the same at every point here: named with its value under the table)."""
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
    assert not any("e+" in cell for cell in cells), cells
    assert _flat_named(page)["messages.committed"] == "1,500,002"
    figure = _figures(page)["latency-ms-p99-sequencer-workers"]
    assert figure["layout"]["yaxis"]["title"]["text"] == "latency_ms.p99 (min)"
    means = next(trace for trace in figure["data"] if trace.get("mode") == "lines+markers")
    assert means["y"] == pytest.approx([28.7, 29.7]) and means["text"] == ["28.7 min", "29.7 min"]


# A guard's sweep as docs/examples.md's: bad debt rises with the grace period and the outage's
# length, p99 with the outage alone; throughput, loss and what the guard let through the same
# everywhere. Seeds 1 and 2: each point's mean adds 1.5 to a bad debt and 0.5 ms to a p99.
GRACE, OUTAGE = ("market.sentinel.grace", ["0s", "30min", "1h"]), ("faults.0.duration", ["30min", "78min"])
HOURS = {"0s": 0.0, "30min": 0.5, "1h": 1.0}


def _guard_summary(point: dict[str, Any], seed: int) -> dict[str, Any]:
    outage_min = int(point[OUTAGE[0]][:-3])
    debt = HOURS[point[GRACE[0]]] * 1e6 + outage_min * 1e3 + seed
    return {"throughput_per_s": 5.335, "latency_ms": {"p50": 160.0, "p99": outage_min * 60_000.0 + seed},
            "messages": {"lost": 0, "committed": 57_621}, "market": {"bad_debt": {"absolute": debt}},
            "sentinel": {"bad_debt": debt, "let_through": 25}}


def test_the_headline_metrics_come_first_and_metrics_that_never_move_are_named_not_drawn(tmp_path: Path) -> None:
    """Before: 46 line charts came before the guard's bad-debt heatmap, throughput and loss
    drawn as flat lines. Now the page opens on p99 and bad debt against each key, then bad
    debt's surface; the metrics equal at every point are a list of names and values."""
    _hand_sweep(tmp_path, [GRACE, OUTAGE], _guard_summary)
    page = (tmp_path / "sweep.html").read_text()
    sections = re.findall(r'<section id="([^"]+)">', page)
    assert sections == ["key", "points", "flat", "metrics", "surfaces", "tornado"]
    figures = list(_figures(page))
    assert figures[:5] == ["latency-ms-p99-market-sentinel-grace", "latency-ms-p99-faults-0-duration",
                           "market-bad-debt-absolute-market-sentinel-grace", "market-bad-debt-absolute-faults-0-duration",
                           "surface-market-bad-debt-absolute"]
    [surface] = _figures(page)["surface-market-bad-debt-absolute"]["data"]
    assert surface["x"] == GRACE[1] and surface["y"] == OUTAGE[1]
    assert surface["z"] == [[30_001.5, 530_001.5, 1_030_001.5], [78_001.5, 578_001.5, 1_078_001.5]]
    assert _flat_named(page) == {"throughput_per_s": "5.33/s", "latency_ms.p50": "160 ms", "messages.committed": "57,621",
                                 "messages.lost": "0", "sentinel.let_through": "25"}
    for metric in _flat_named(page):
        assert not any(metric.replace(".", "-").replace("_", "-") in name for name in figures), metric
    key = page[page.index('<section id="key">'):page.index('<section id="points">')]
    assert "the same at every point (not drawn): throughput_per_s, messages.lost." in key
    tornado = _figures(page)["tornado"]["data"]
    assert tornado[0]["y"] == ["latency_ms.p99", "market.bad_debt.absolute", "sentinel.bad_debt"]


def test_the_points_table_has_a_bad_debt_column(tmp_path: Path) -> None:
    """Each point's mean bad debt, with its interval over the seeds, beside throughput, p99 and loss."""
    plan = _hand_sweep(tmp_path, [GRACE, OUTAGE], _guard_summary)
    page = (tmp_path / "sweep.html").read_text()
    points = page[page.index('id="points-table"'):page.index("</table>", page.index('id="points-table"'))]
    headers = [html.unescape(cell) for cell in re.findall(r"<th>([^<]*)</th>", points)]
    assert headers == ["point", GRACE[0], OUTAGE[0], "runs", "failed", "throughput (throughput_per_s)",
                       "p99 (latency_ms.p99)", "lost (messages.lost)", "bad debt (market.bad_debt.absolute)"]
    debts = [html.unescape(cell) for cell in
             re.findall(r'<td class="num" data-metric="market.bad_debt.absolute">([^<]*)</td>', points)]
    # the interval of seeds 1 and 2: 1.5 ± t(0.975, 1) x 0.5 (12.706 x 0.5 = 6.35)
    assert debts == ["30,002 [29,995, 30,008]", "78,002 [77,995, 78,008]", "530,002 [529,995, 530,008]",
                     "578,002 [577,995, 578,008]", "1,030,002 [1,029,995, 1,030,008]",
                     "1,078,002 [1,077,995, 1,078,008]"]
    assert len(plan.points) == len(debts)
    p99 = re.findall(r'<td class="num" data-metric="latency_ms.p99">([^<]*)</td>', points)
    assert p99[:2] == ["30 min [30 min, 30 min]", "78 min [78 min, 78 min]"]


def test_every_chart_gives_each_line_and_each_key_a_colour_of_its_own(tmp_path: Path) -> None:
    """Twelve values of the second key (plotly cycles ten colours) and three keys: no colour twice."""
    keys = [("sequencer.workers", [1, 2]), ("agents.0.count", list(range(1, 13))), ("run.seed", [7, 8, 9])]
    _hand_sweep(tmp_path, keys, lambda point, seed: {
        "latency_ms": {"p99": point["sequencer.workers"] * 100.0 + point["agents.0.count"] + point["run.seed"] + seed}},
        seeds=1)
    figures = _figures((tmp_path / "sweep.html").read_text())
    lines = [trace for trace in figures["latency-ms-p99-sequencer-workers"]["data"] if trace.get("mode") == "lines+markers"]
    assert len(lines) == 12 and len({line["line"]["color"] for line in lines}) == 12
    for line in figures["latency-ms-p99-sequencer-workers"]["data"]:  # each band the colour of its line
        assert line["line"]["color"] == next(mean["line"]["color"] for mean in lines
                                             if mean["legendgroup"] == line["legendgroup"])
    bars = figures["tornado"]["data"]
    assert [bar["name"] for bar in bars] == [key for key, _ in keys]
    assert len({bar["marker"]["color"] for bar in bars}) == 3
    assert all(len(set(distinct_colours(count))) == count for count in (3, 12, 24, 25, 40))
