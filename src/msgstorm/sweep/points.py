"""The points of a sweep at a glance: each point's grid values, runs and headline metrics.

Place in the pipeline: after ``results`` wrote ``sweep.json``; read from that document. The
same cells make sweep.html's points table and the table ``msgstorm sweep`` prints at its
end: per point its values, its runs (and failed runs), and the mean over its seeds of the
headline metrics (``results.headline_metrics``: throughput, p99 latency, messages lost, bad
debt), each worded as the run's own terminal words it (``report.text``). The terminal's
table names each key by the shortest end of its dotted path that no other key shares
(``grace`` for ``market.sentinel.grace``), with the whole key under the table, so that two
keys and four metrics fit in 80 columns.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from msgstorm.report.cells import KeptTable
from msgstorm.report.text import duration_ms, metric_value, number
from msgstorm.sweep.grid import value_label
from msgstorm.sweep.results import POINTS_FILE, headline_metrics

__all__ = ["HEADLINE_LABELS", "flat_metrics", "point_means", "points_table", "read_points", "short_keys",
           "shown_metrics", "worded"]

HEADLINE_LABELS = {"throughput_per_s": "throughput", "latency_ms.p99": "p99", "messages.lost": "lost",
                   "market.bad_debt.absolute": "bad debt", "sentinel.bad_debt": "bad debt (guard)"}

_WORDED: dict[str, Callable[[float], str]] = {
    "throughput_per_s": lambda mean: number(mean, "/s"),
    "latency_ms.p99": duration_ms,
    "market.bad_debt.absolute": lambda mean: number(mean, digits=0),
    "sentinel.bad_debt": lambda mean: number(mean, digits=0),
}


def _measured(point: dict[str, Any]) -> bool:
    """Whether the point has a run that finished ok (a point whose runs all failed shows nothing)."""
    return int(point["runs"]) > int(point["failed"])


def read_points(out_dir: Path) -> dict[str, Any]:
    """``sweep.json`` of the sweep in ``out_dir``."""
    return dict(json.loads((out_dir / POINTS_FILE).read_text(encoding="utf-8")))


def point_means(document: dict[str, Any], metric: str) -> list[float | None]:
    """The metric's mean at each point of ``sweep.json`` (None where no ok run has it)."""
    return [(point["metrics"].get(metric) or {}).get("mean") for point in document["points"]]


def flat_metrics(document: dict[str, Any]) -> dict[str, float | None]:
    """The metrics whose mean is the same at every point with an ok run, with that mean: a
    line or a surface of them says nothing, so the page names them instead. A metric some
    points have and others lack is not flat. None with no point measured."""
    measured = [point for point in document["points"] if _measured(point)]
    if not measured:
        return {}
    names = dict.fromkeys(name for point in measured for name in point["metrics"])
    flat: dict[str, float | None] = {}
    for name in names:
        means = {(point["metrics"].get(name) or {}).get("mean") for point in measured}
        if len(means) == 1:
            flat[name] = means.pop()
    return flat


def shown_metrics(document: dict[str, Any]) -> list[str]:
    """The headline metrics the sweep's runs have (``results.headline_metrics``), in order."""
    present = {name for point in document["points"] for name, stats in point["metrics"].items()
               if stats.get("mean") is not None}
    return headline_metrics(present)


def worded(metric: str, mean: float | None) -> str:
    """A headline metric's mean as the run's terminal words it; any other metric in the unit
    its name carries (``metric_value``: ``28.2 min``, ``0.1%``)."""
    if mean is None:
        return number(None)
    rule = _WORDED.get(metric)
    return metric_value(metric, mean) if rule is None else rule(mean)


def short_keys(keys: list[str]) -> dict[str, str]:
    """Each key's shortest end of its dotted path that no other key ends with."""
    parts = {key: key.split(".") for key in keys}
    short = {}
    for key, pieces in parts.items():
        for length in range(1, len(pieces) + 1):
            end = pieces[-length:]
            if not any(other != key and other_pieces[-length:] == end for other, other_pieces in parts.items()):
                short[key] = ".".join(end)
                break
        else:
            short[key] = key
    return short


def points_table(document: dict[str, Any]) -> Table:
    """The terminal's table of the points: values, runs and the headline metrics' means."""
    keys: list[str] = list(document["keys"])
    metrics = shown_metrics(document)
    short = short_keys(keys)
    seeds = len(document["seeds"])
    table = KeptTable(title=f"points: mean over {seeds} seed{'s' if seeds != 1 else ''}"
                            + (" (95% intervals in sweep.json)" if seeds > 1 else ""), header_style="bold",
                       title_justify="left", caption_justify="left")
    table.add_column("point", justify="right")
    for key in keys:
        table.add_column(escape(short[key]))
    table.add_column("runs", justify="right")
    for metric in metrics:
        table.add_column(HEADLINE_LABELS[metric], justify="right")
    for point in document["points"]:
        runs = f"{point['runs']}" + (f", {point['failed']} failed" if point["failed"] else "")
        means = [(point["metrics"].get(metric) or {}).get("mean") for metric in metrics]
        table.add_row(str(point["point"]), *(escape(value_label(point["grid"][key])) for key in keys), runs,
                      *(worded(metric, mean) for metric, mean in zip(metrics, means, strict=True)))
    renamed = [f"{short[key]}: {key}" for key in keys if short[key] != key]
    if renamed:
        table.caption = escape("; ".join(renamed))
    return table
