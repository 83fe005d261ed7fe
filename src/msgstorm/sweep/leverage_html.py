"""safe_leverage.html: P(bad debt over budget) against leverage, safe leverage against a varied key.

Place in the pipeline: the last file ``msgstorm safe-leverage`` writes
(``sweep/leverage.py``), from the ``safe_leverage.json`` document it has just written; the
page is built like report.html (``report/page.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from msgstorm.report.page import Plot, esc, figure_block, page, table
from msgstorm.report.plotspec import figure
from msgstorm.sweep.grid import toml_value

__all__ = ["LEVERAGE_REPORT", "write_leverage_report"]

LEVERAGE_REPORT = "safe_leverage.html"


def _label(value: Any) -> str:
    return value if isinstance(value, str) else toml_value(value)


def _reach(curve: dict[str, Any], end: int) -> float:
    """How far the boundary interval's end ``end`` (0: low, 1: high) lies from the safe
    leverage (0 where that end is not shown)."""
    safe, bound = curve["safe_leverage"], curve["boundary"][end]
    return 0.0 if safe is None or bound is None else abs(bound - safe)


def write_leverage_report(out_dir: Path, document: dict[str, Any]) -> Path:
    """safe_leverage.html: P(bad debt over budget) against leverage with its intervals, one
    curve per value of ``vary``; safe leverage against that value; the numbers."""
    budget = document["budget_pct_of_open_interest"]
    alpha = 1 - document["confidence"]
    data: list[dict[str, Any]] = []
    rows = []
    for curve in document["curves"]:
        label = "scenario" if curve["vary"] is None else ", ".join(f"{k} = {_label(v)}" for k, v in curve["vary"].items())
        points = curve["points"]
        data.append({"type": "scatter", "mode": "lines+markers", "name": label,
                     "x": [p["leverage"] for p in points], "y": [p["p"] for p in points],
                     "error_y": {"type": "data", "symmetric": False,
                                 "array": [p["ci"][1] - p["p"] for p in points],
                                 "arrayminus": [p["p"] - p["ci"][0] for p in points]}})
        bracket = curve["bracket"]
        boundary = curve["boundary"]
        rows.append([esc(label), esc(curve["safe_leverage"]),
                     esc(f"[{bracket[0]}, {bracket[1]}]"),
                     esc(f"[{'—' if boundary[0] is None else boundary[0]}, {'—' if boundary[1] is None else boundary[1]}]"),
                     esc("—" if curve["at_safe"] is None else
                         f"{curve['at_safe']['exceed']}/{curve['at_safe']['runs']} "
                         f"[{curve['at_safe']['ci'][0]:.3f}, {curve['at_safe']['ci'][1]:.3f}]")])
    xs = [p["leverage"] for curve in document["curves"] for p in curve["points"]] or [1.0]
    data.append({"type": "scatter", "mode": "lines", "name": f"1 - confidence = {alpha:g}",
                 "x": [min(xs), max(xs)], "y": [alpha, alpha], "line": {"dash": "dash", "color": "#888"}})
    curve_fig = figure(data, {"title": {"text": f"P(bad debt > {budget:g}% of open interest) against leverage "
                                                f"({document['confidence']:.0%} Clopper-Pearson intervals)"},
                              "height": 420, "xaxis": {"title": {"text": "leverage (every account)"}, "type": "log"},
                              "yaxis": {"title": {"text": "probability"}, "range": [-0.05, 1.05]},
                              "legend": {"orientation": "h", "y": -0.25}})
    sections = [("curve", "Probability of exceeding the budget",
                 figure_block(Plot("leverage-curve", curve_fig)))]
    if document["vary"] is not None:
        values = [_label(curve["vary"][document["vary"]]) for curve in document["curves"]]
        safe_fig = figure([{"type": "scatter", "mode": "lines+markers", "x": values,
                            "y": [curve["safe_leverage"] for curve in document["curves"]], "name": "safe leverage",
                            "error_y": {"type": "data", "symmetric": False,
                                        "array": [_reach(curve, 1) for curve in document["curves"]],
                                        "arrayminus": [_reach(curve, 0) for curve in document["curves"]]}}],
                          {"title": {"text": f"Safe leverage against {document['vary']}"}, "height": 380,
                           "xaxis": {"title": {"text": document["vary"]}, "type": "category"},
                           "yaxis": {"title": {"text": "safe leverage (bars: the boundary interval)"}}})
        sections.append(("safe", "Safe leverage against the varied key",
                         figure_block(Plot("safe-leverage", safe_fig))))
    sections.append(("numbers", "Safe leverage", table(["curve", "safe leverage", "bracket", f"boundary at {document['confidence']:.0%}",
                                                         "exceeding there"], rows,
                                                        attrs='id="leverage-table"')))
    meta = esc(f"{document['scenario']} · budget {budget:g}% of open interest · confidence "
               f"{document['confidence']:.0%} · {document['seeds']} seeds · {document['leverage_is']}")
    path = out_dir / LEVERAGE_REPORT
    path.write_text(page("msgstorm safe-leverage", meta, sections), encoding="utf-8")
    return path
