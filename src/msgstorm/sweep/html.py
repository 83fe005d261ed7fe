"""sweep.html: each key metric against each swept key with 95% bands, surfaces, a table, a tornado chart.

Place in the pipeline: the last file ``msgstorm sweep`` writes, from ``sweep.parquet``'s
table and the plan; the page is built like report.html (``report/page.py``). A row is joined
to its point by the point's index (the table's ``point`` column), and the point's values are
the plan's own typed values (``grid``): no value is matched by its text.

- per metric and swept key: the metric's mean over the seeds at each value of the key (the
  other keys at each of their values: one line per value of a second key, points of a third
  averaged), with its 95% Student-t band;
- per metric, with two or more swept keys: a surface, the metric's mean over the first two
  keys' values (a heatmap; points of a third key averaged), such as a guard's bad debt over
  its grace period and the outage's length;
- a tornado chart: for each metric, how far each key moves it (the largest minus the
  smallest mean over that key's values, the others averaged, as a share of the largest mean so
  metrics of different units share its axis);
- a table of every point: its values, runs, failures and the key metrics' means and intervals.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from msgstorm.report.page import Plot, esc, figure_block, page, table
from msgstorm.report.plotspec import figure
from msgstorm.report.text import duration_unit, metric_unit, metric_value
from msgstorm.sweep.grid import Plan, toml_value, value_label
from msgstorm.sweep.results import KEY_METRICS, point_stats

__all__ = ["SWEEP_REPORT", "write_sweep_report"]

SWEEP_REPORT = "sweep.html"


def _label(value: Any) -> str:
    return value if isinstance(value, str) else toml_value(value)


def _ok_rows(table: pa.Table) -> dict[str, list[Any]]:
    ok = [status == "ok" for status in table.column("status").to_pylist()]
    return {name: [v for v, keep in zip(table.column(name).to_pylist(), ok, strict=True) if keep]
            for name in table.column_names}


def _values_of(plan: Plan, key: str) -> list[str]:
    """The labels of ``key``'s values over the plan's points, in their first order."""
    return list(dict.fromkeys(value_label(point[key]) for point in plan.points))


def _mean_over(rows: dict[str, list[Any]], plan: Plan, metric: str, where: dict[str, str]) -> list[float]:
    """The metric of every ok run whose point has the values ``where`` (key -> label)."""
    return [value for value, index in zip(rows[metric], rows["point"], strict=True)
            if value is not None and all(value_label(plan.points[index][key]) == label for key, label in where.items())]


def _axis(metric: str, values: list[Any]) -> tuple[str, float]:
    """A metric's axis title and the size of its unit: a duration (``_ms``) in the unit its
    longest value reads best in (``28.2`` min, not ``1.692e+06`` ms), anything else as it is."""
    if metric_unit(metric) != "ms":
        return metric, 1.0
    unit, size = duration_unit(max((abs(v) for v in values if v is not None), default=0.0))
    return f"{metric} ({unit})", size


def _scaled(values: list[Any], size: float) -> list[Any]:
    return values if size == 1.0 else [None if v is None else v / size for v in values]


def _metric_figure(rows: dict[str, list[Any]], plan: Plan, metric: str, key: str) -> dict[str, Any]:
    xs = _values_of(plan, key)
    others = [k for k in plan.keys if k != key]
    series_key = others[0] if others else None
    series = _values_of(plan, series_key) if series_key else [None]
    data: list[dict[str, Any]] = []
    for colour, name in enumerate(series):
        means, lows, highs = [], [], []
        for x in xs:
            where = {key: x} if series_key is None or name is None else {key: x, series_key: name}
            stats = point_stats(_mean_over(rows, plan, metric, where))
            means.append(stats["mean"])
            lows.append(stats["ci95"][0] if stats["ci95"] else stats["mean"])
            highs.append(stats["ci95"][1] if stats["ci95"] else stats["mean"])
        label = metric if name is None else f"{series_key} = {name}"
        group = f"g{colour}"
        data += [
            {"type": "scatter", "x": xs, "y": highs, "mode": "lines", "line": {"width": 0}, "showlegend": False,
             "legendgroup": group, "hoverinfo": "skip"},
            {"type": "scatter", "x": xs, "y": lows, "mode": "lines", "line": {"width": 0}, "fill": "tonexty",
             "opacity": 0.2, "showlegend": False, "legendgroup": group, "hoverinfo": "skip"},
            {"type": "scatter", "x": xs, "y": means, "mode": "lines+markers", "name": label, "legendgroup": group,
             "text": [metric_value(metric, mean) for mean in means], "hovertemplate": "%{x}: %{text}"}]
    axis, size = _axis(metric, [v for trace in data for v in trace["y"]])
    for trace in data:
        trace["y"] = _scaled(trace["y"], size)
    layout = {"title": {"text": f"{metric} against {key} (mean over seeds, 95% band)"}, "height": 360,
              "xaxis": {"title": {"text": key}, "type": "category"}, "yaxis": {"title": {"text": axis}},
              "legend": {"orientation": "h", "y": -0.25}}
    return dict(figure(data, layout))


def _surface(rows: dict[str, list[Any]], plan: Plan, metric: str) -> dict[str, Any]:
    """The metric's mean over the seeds (and a third key's values) at each pair of values of
    the first two keys: x the first key, y the second; a pair with no ok run is left blank."""
    across, up = plan.keys[0], plan.keys[1]
    xs, ys = _values_of(plan, across), _values_of(plan, up)
    z = [[float(np.mean(values)) if (values := _mean_over(rows, plan, metric, {across: x, up: y})) else None
          for x in xs] for y in ys]
    axis, size = _axis(metric, [value for row in z for value in row])
    data = [{"type": "heatmap", "x": xs, "y": ys, "z": [_scaled(row, size) for row in z], "colorscale": "Viridis",
             "name": metric, "colorbar": {"title": {"text": axis, "side": "right"}},
             "text": [["" if value is None else metric_value(metric, value) for value in row] for row in z],
             "texttemplate": "%{text}",
             "hovertemplate": f"{across} = %{{x}}<br>{up} = %{{y}}<br>{metric} %{{text}}<extra></extra>"}]
    layout = {"title": {"text": f"{metric} over {across} and {up} (mean over seeds)"}, "height": max(320, 160 + 60 * len(ys)),
              "xaxis": {"title": {"text": across}, "type": "category"},
              "yaxis": {"title": {"text": up}, "type": "category"}}
    return dict(figure(data, layout))


def _slug(*parts: str) -> str:
    return "-".join(parts).replace(".", "-").replace("_", "-")


def _tornado(rows: dict[str, list[Any]], plan: Plan, metrics: list[str]) -> dict[str, Any]:
    """Each key's reach on each metric as a share of that metric's largest mean: metrics of
    different units (throughput per second, queue depth, milliseconds) share one axis, so a
    bar in the metric's own units would compare nothing. The reach in the metric's units is
    the bar's hover text."""
    data = []
    for metric in metrics:
        shares, spreads = [], []
        for key in plan.keys:
            means = [float(np.mean(values)) for value in _values_of(plan, key)
                     if (values := _mean_over(rows, plan, metric, {key: value}))]
            spread = (max(means) - min(means)) if means else 0.0
            largest = max((abs(mean) for mean in means), default=0.0)
            spreads.append(spread)
            shares.append(100.0 * spread / largest if largest > 0 else 0.0)
        data.append({"type": "bar", "orientation": "h", "name": metric, "y": plan.keys, "x": shares,
                     "customdata": spreads, "text": [metric_value(metric, spread) for spread in spreads],
                     "hovertemplate": "%{x:.3g}% (%{text})"})
    layout = {"title": {"text": "How far each key moves each metric (largest minus smallest mean, as a share "
                                "of the largest)"},
              "barmode": "group", "height": 160 + 60 * len(plan.keys) * max(1, len(metrics)) // 2,
              "xaxis": {"title": {"text": "reach (% of the metric's largest mean)"}},
              "legend": {"orientation": "h", "y": -0.3}}
    return dict(figure(data, layout))


def write_sweep_report(out_dir: Path, plan: Plan, sweep_table: pa.Table) -> Path:
    rows = _ok_rows(sweep_table)
    metrics = [metric for metric in KEY_METRICS if metric in rows and any(v is not None for v in rows[metric])]
    sections: list[tuple[str, str, str]] = []
    blocks = []
    if plan.keys and rows.get("run_id"):
        for metric in metrics:
            for key in plan.keys:
                blocks.append(figure_block(Plot(_slug(metric, key), _metric_figure(rows, plan, metric, key))))  # type: ignore[arg-type]
        sections.append(("metrics", "Metrics against the swept keys", "".join(blocks)))
        if len(plan.keys) >= 2:
            # A metric equal at every point has a flat surface, which says nothing: left out.
            surfaces = [figure_block(Plot(_slug("surface", metric), _surface(rows, plan, metric)))  # type: ignore[arg-type]
                        for metric in metrics if len({v for v in rows[metric] if v is not None}) > 1]
            if surfaces:
                sections.append(("surfaces", f"Surfaces over {plan.keys[0]} and {plan.keys[1]} (metrics that "
                                 "differ between points)", "".join(surfaces)))
        sections.append(("tornado", "What moves what",
                         figure_block(Plot("tornado", _tornado(rows, plan, metrics)))))  # type: ignore[arg-type]
    document = json.loads((out_dir / "sweep.json").read_text(encoding="utf-8"))
    shown = metrics[:6]
    body = []
    for point in document["points"]:
        cells = [esc(point["point"]), *(esc(value_label(point["grid"][key])) for key in plan.keys),
                 esc(point["runs"]), esc(point["failed"])]
        for metric in shown:
            stats = point["metrics"].get(metric) or {}
            mean, ci = stats.get("mean"), stats.get("ci95")
            cells.append(esc(metric_value(metric, mean) + (f" [{metric_value(metric, ci[0])}, "
                                                           f"{metric_value(metric, ci[1])}]" if ci and mean is not None
                                                           else "")))
        body.append(cells)
    sections.append(("points", "Points", table(["point", *plan.keys, "runs", "failed", *shown], body,
                                                attrs='id="points-table"')))
    failures = [[esc(r), esc(s), esc(e)] for r, s, st, e in zip(
        sweep_table.column("run_id").to_pylist(), sweep_table.column("seed").to_pylist(),
        sweep_table.column("status").to_pylist(), sweep_table.column("error").to_pylist(), strict=True) if st != "ok"]
    if failures:
        sections.append(("failures", "Failed runs", table(["run", "seed", "error"], failures)))
    meta = esc(f"{len(plan.points)} points × {len(plan.seeds)} seeds; keys {', '.join(plan.keys) or '(none)'}")
    path = out_dir / SWEEP_REPORT
    path.write_text(page("msgstorm sweep", meta, sections), encoding="utf-8")
    return path
