"""compare.html: the ``msgstorm compare`` table on a self-contained page, with overlaid plots.

Place in the pipeline: Comparison -> **compare_html** -> a file. The table is the terminal's
(regressions in red); the plots overlay the runs: latency percentiles, the percentile
spectrum (from each run's messages, when its history is there), and throughput and p99 over
time (from each run's windows.csv, when there; a run of more windows than a screen shows is
thinned as report.html thins it).

Without ``--html`` the page goes into the first side's directory as
``compare-<digest>.html``, the digest of every run directory compared, in order: the same
comparison rewrites its own page, and no other comparison (another group, another order,
another run against the same baseline) overwrites it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from msgstorm.history.reader import read_table
from msgstorm.report.compare import Comparison, RunSummary, format_delta, format_value
from msgstorm.report.figures import latency_unit, percentile_ticks
from msgstorm.report.page import Plot, esc, figure_block, page, table
from msgstorm.report.plotspec import Figure, figure, title
from msgstorm.report.series import latency_ns_of, percentile_spectrum, thin_lowest_highest
from msgstorm.report.windows_csv import WINDOWS_FILE, read_windows_csv

__all__ = ["default_html_path", "digest_path", "render_compare", "render_sweep_compare", "write_compare_html"]

_COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def _layout(title_text: str, x_title: str, y_title: str, **more: Any) -> dict[str, Any]:
    xaxis = more.pop("xaxis", {})
    yaxis = more.pop("yaxis", {})
    return {"title": title(title_text, x=0.01), "height": 380, "margin": {"l": 70, "r": 30, "t": 60, "b": 55},
            "legend": {"orientation": "h", "y": -0.22}, "hovermode": "x unified",
            "xaxis": {**xaxis, "title": {"text": x_title}}, "yaxis": {**yaxis, "title": {"text": y_title}}, **more}


def _colour(index: int) -> str:
    return _COLOURS[index % len(_COLOURS)]


_PERCENTILES = ["p50", "p90", "p99", "p99.9", "max"]


def _percentile_bars(comparison: Comparison) -> Figure:
    """Each side's latency percentiles as the table gives them (a group's: its runs' mean)."""
    values = {metric.name: [base, *(delta.value for delta in deltas)] for metric, base, deltas in comparison.rows}
    bars = [[values.get(f"latency {label}", [None] * len(comparison.runs))[index] for label in _PERCENTILES]
            for index in range(len(comparison.runs))]
    unit, size = latency_unit(*bars)
    data = []
    for index, run in enumerate(comparison.runs):
        data.append({"type": "bar", "x": _PERCENTILES, "y": _scaled(bars[index], size),
                     "name": run.name, "marker": {"color": _colour(index)}})
    grouped = any(run.replicas for run in comparison.runs)
    return figure(data, _layout("Latency percentiles" + (" (a group of runs: their mean)" if grouped else ""),
                                "percentile", f"latency ({unit})", barmode="group"))


def _scaled(values_ms: list[Any], size: float) -> list[Any]:
    """Latencies in ms as numbers of the chart's unit (``latency_unit``), None kept."""
    return values_ms if size == 1.0 else [None if v is None else v / size for v in values_ms]


def _spectra(runs: list[RunSummary]) -> Figure | None:
    data: list[dict[str, Any]] = []
    longest = 10.0
    for index, run in enumerate(runs):
        try:
            messages = read_table(run.path / "history", "messages", ["status", "t_intended", "t_committed"])
        except (FileNotFoundError, OSError, pa.ArrowException):  # a run without its history
            continue
        percentiles, inverse, values = percentile_spectrum(latency_ns_of(messages))
        if not inverse:
            continue
        longest = max(longest, inverse[-1])
        data.append({"type": "scatter", "x": inverse, "y": values, "name": run.name, "mode": "lines",
                     "customdata": percentiles, "line": {"shape": "hv", "color": _colour(index)}})
    if not data:
        return None
    unit, size = latency_unit(*(trace["y"] for trace in data))
    for trace in data:
        trace["y"] = _scaled(trace["y"], size)
        trace["hovertemplate"] = f"p%{{customdata:.4f}}: %{{y:,.3f}} {unit}"
    tickvals, ticktext = percentile_ticks(longest)
    layout = _layout("Latency by percentile (x axis 1/(1−p), log)", "percentile", f"latency ({unit})",
                     xaxis={"type": "log", "tickvals": tickvals, "ticktext": ticktext})
    layout["hovermode"] = "closest"
    return figure(data, layout)


def _over_time(runs: list[RunSummary], column: str, title_text: str, y_title: str) -> Figure | None:
    """One line per run through its windows (a long run thinned as report.html thins it); a
    column of latencies (``_ms``) in the unit its longest reads best in, named after
    ``y_title``."""
    data = []
    for index, run in enumerate(runs):
        path = run.path / WINDOWS_FILE
        if not path.is_file():
            continue
        windows = read_windows_csv(path)
        if not windows.get("t_start_ns"):
            continue
        mids = np.array([((a or 0) + (b or 0)) / 2e9 for a, b in zip(windows["t_start_ns"], windows["t_end_ns"])])
        values = np.array([np.nan if v is None else v for v in windows.get(column, [])], dtype=np.float64)
        keep = thin_lowest_highest(values)
        data.append({"type": "scatter", "x": mids[keep].tolist(),
                     "y": [None if v != v else v for v in values[keep].tolist()], "name": run.name,
                     "mode": "lines+markers", "line": {"color": _colour(index)}})
    if not data:
        return None
    if column.endswith("_ms"):
        unit, size = latency_unit(*(trace["y"] for trace in data))
        for trace in data:
            trace["y"] = _scaled(trace["y"], size)
        y_title = f"{y_title} ({unit})"
    return figure(data, _layout(title_text, "time (s)", y_title, yaxis={"rangemode": "tozero"}))


def _table(comparison: Comparison) -> str:
    runs = comparison.runs
    headers = ["metric", runs[0].name]
    for run in runs[1:]:
        headers += [run.name, f"Δ {run.label}"]
    rows = []
    for metric, base, deltas in comparison.rows:
        cells = [esc(metric.name), f'<td class="num">{esc(format_value(base, metric.unit))}</td>']
        for delta in deltas:
            label = {"regression": " regression", "improved": " improved"}.get(delta.status, "")
            judged = (f'<td class="num" data-status="{delta.status}"><span class="verdict-{delta.status}">'
                      f'{esc(format_delta(metric, delta))}{esc(label)}</span></td>')
            cells += [f'<td class="num">{esc(format_value(delta.value, metric.unit))}</td>', judged]
        rows.append(cells)
    return table(headers, rows, attrs='id="compare-table"')


def render_compare(comparison: Comparison) -> str:
    """The whole compare page as HTML text."""
    runs = comparison.runs
    tolerance = f"{comparison.tolerance * 100:g}%"
    regressions = comparison.regressions
    verdict = (f'<p id="compare-verdict" data-regressions="{len(regressions)}"><span class="verdict verdict-fail">'
               f'{len(regressions)} regression{"s" if len(regressions) != 1 else ""}</span> beyond {esc(tolerance)}: '
               + "; ".join(esc(f"{m.name} in {r.name}") for m, r, _ in regressions) + "</p>"
               if regressions else
               f'<p id="compare-verdict" data-regressions="0"><span class="verdict verdict-pass">no regression</span>'
               f' beyond {esc(tolerance)}</p>')
    verdict = _headline(comparison) + verdict
    legend = table(["run", "directory", "scenario", "seed"],
                   [[esc(r.label), esc(r.where), esc(r.summary.scenario), esc(r.summary.seed)] for r in runs])
    candidates = [
        ("percentiles", _percentile_bars(comparison)),
        ("spectrum", _spectra(runs)),
        ("throughput", _over_time(runs, "throughput_per_s", "Achieved throughput per window", "messages/s")),
        ("p99", _over_time(runs, "p99_ms", "p99 latency per window", "latency")),
    ]
    plots = "".join(figure_block(Plot(slug, figure)) for slug, figure in candidates if figure is not None)
    sections = [
        ("metrics", "Metrics against the baseline", verdict + _table(comparison)
         + '<p class="note">Lower is better for latency, jitter, losses, queue depth, desync, failing SLOs and '
           'invalid checks; higher for throughput, capacity and the failure threshold. Offered rate and wall '
           'time are not judged.</p>'),
        ("runs", "Runs", legend),
        ("plots", "Plots", plots),
    ]
    return page("msgstorm compare", esc(f"baseline {runs[0].name} · tolerance {tolerance}"), sections)


def _headline(comparison: Comparison) -> str:
    """What the runs measure first (money, with a market), and its changes beyond the
    tolerance, improvements too (``Comparison.headline``); nothing when only details differ."""
    concern = comparison.first_concern
    if concern is None or concern == "detail":
        return ""
    changes = "; ".join(esc(f"{metric.name} in {run.name}: {format_delta(metric, delta)} ")
                        + f'<span class="verdict-{delta.status}">{esc(delta.status)}</span>'
                        for metric, run, delta in comparison.headline)
    tolerance = f"{comparison.tolerance * 100:g}%"
    return (f'<p id="compare-headline" data-concern="{esc(concern)}"><b>{esc(concern)}</b>: '
            f"{changes or esc(f'no change beyond {tolerance}')}</p>")


def _verdict(comparison: Comparison, slug: str) -> str:
    regressions = comparison.regressions
    tolerance = f"{comparison.tolerance * 100:g}%"
    if not regressions:
        return (f'<p id="{slug}" data-regressions="0"><span class="verdict verdict-pass">no regression</span>'
                f' beyond {esc(tolerance)}</p>')
    return (f'<p id="{slug}" data-regressions="{len(regressions)}"><span class="verdict verdict-fail">'
            f'{len(regressions)} regression{"s" if len(regressions) != 1 else ""}</span> beyond {esc(tolerance)}: '
            + "; ".join(esc(f"{m.name} {format_delta(m, d)}") for m, _, d in regressions) + "</p>")


def render_sweep_compare(title_line: str, notes: list[str], points: list[tuple[str, Comparison]]) -> str:
    """Two sweeps point by point (``msgstorm compare SWEEP_A SWEEP_B``): the p99 latency of
    each point's two groups (their runs' mean, the tables' values), then each point's table."""
    def p99(comparison: Comparison, side: int) -> float | None:
        for metric, base, deltas in comparison.rows:
            if metric.name == "latency p99":
                return base if side == 0 else deltas[0].value
        return None

    labels = [label for label, _ in points]
    sides = [[p99(comparison, side) for _, comparison in points] for side in (0, 1)]
    unit, size = latency_unit(*sides)
    data = [{"type": "bar", "x": labels, "y": _scaled(sides[side], size),
             "name": "AB"[side], "marker": {"color": _colour(side)}} for side in (0, 1)]
    plot = figure(data, _layout("Latency p99 per point (each side's runs: their mean)", "point",
                                f"latency p99 ({unit})", barmode="group", xaxis={"type": "category"}))
    sections = [("points", "Points", "".join(f"<p>{esc(line)}</p>" for line in [title_line, *notes])
                 + figure_block(Plot("sweep-p99", plot)))]
    for index, (label, comparison) in enumerate(points):
        sections.append((f"point-{index}", label, _verdict(comparison, f"verdict-{index}") + _table(comparison)))
    return page("msgstorm compare (sweeps)", esc(title_line), sections)


def digest_path(directory: Path, sides: list[list[Path]]) -> Path:
    """``directory/compare-<digest>.html``, the digest of every directory compared, in order."""
    resolved = [[str(path.resolve()) for path in side] for side in sides]
    return directory / f"compare-{hashlib.sha256(json.dumps(resolved).encode()).hexdigest()[:12]}.html"


def default_html_path(comparison: Comparison) -> Path:
    """Where the page goes without ``--html`` (see the module docstring)."""
    return digest_path(comparison.runs[0].path, [list(run.sources or (run.path,)) for run in comparison.runs])


def write_compare_html(comparison: Comparison, path: str | Path) -> Path:
    target = Path(path)
    target.write_text(render_compare(comparison), encoding="utf-8")
    return target
