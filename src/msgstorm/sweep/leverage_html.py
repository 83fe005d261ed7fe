"""safe_leverage.html, and the words of a safe-leverage answer the terminal prints too.

Place in the pipeline: the last file ``msgstorm safe-leverage`` writes
(``sweep/leverage.py``), from the ``safe_leverage.json`` document it has just written; the
page is built like report.html (``report/page.py``). The page, the terminal and the JSON
say one answer: a curve's ``safe_leverage`` (the highest leverage *shown* within budget) with
its boundary interval ``[shown within, shown over]``; ``headline`` and ``boundary_line`` are
the sentences both the page and the command line print.

- P(over budget) against leverage per curve, the one-sided Clopper-Pearson bounds that decide
  "shown within" and "shown over" as error bars (against the line 1 - confidence),
  on a log axis labelled with the leverages themselves (1, 2, 5, 10, 20, ...);
- with ``vary``: the safe leverage against the varied value, the bar reaching up to the
  lowest leverage shown over (no bar where none was);
- the table of the answers.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from msgstorm.report.page import Plot, esc, figure_block, page, table
from msgstorm.report.plotspec import figure
from msgstorm.sweep.grid import toml_value

__all__ = ["LEVERAGE_REPORT", "boundary_line", "headline", "leverage_text", "log_ticks", "vault_line",
           "write_leverage_report"]

LEVERAGE_REPORT = "safe_leverage.html"


def _label(value: Any) -> str:
    return value if isinstance(value, str) else toml_value(value)


def leverage_text(leverage: float | None) -> str:
    """``7.96x``; ``—`` where there is none."""
    return "—" if leverage is None else f"{leverage:g}x"


def headline(curve: dict[str, Any], confidence: float) -> str:
    """The answer: the highest leverage shown within budget and its count, or why none is."""
    at = curve["at_safe"]
    if curve["safe_leverage"] is None or at is None:
        return f"none shown within budget: {curve['note']}"
    return (f"{leverage_text(curve['safe_leverage'])} shown within budget: {at['exceed']}/{at['runs']} over budget "
            f"there, P(over budget) at most {at['bounds'][1]:.3f} with {confidence:.0%} confidence")


def vault_line(leverage: float, liquidation_ratio: float) -> str:
    """What a leverage means for a vault: its collateral over its debt, L / (L - 1)."""
    return (f"a vault at {leverage_text(leverage)}: collateral at {leverage / (leverage - 1.0):.0%} of "
            f"its debt (L / (L - 1); liquidated below {liquidation_ratio:.0%})")


def boundary_line(curve: dict[str, Any], confidence: float) -> str:
    within, over = curve["boundary"]
    return (f"boundary at {confidence:.0%}: between {leverage_text(within)} (shown within budget) and "
            f"{leverage_text(over)} (shown over)")


def margin_comparison(curves: list[dict[str, Any]]) -> list[str]:
    """Each curve of a --vary search beside the first: the initial margin its safe leverage
    needs (1 / leverage) against the first's, as a relative difference. A curve whose boundary
    lies above the range gives a bound, and the line says so; one with no answer, a dash."""
    if len(curves) < 2 or curves[0]["vary"] is None:
        return []
    first = curves[0]

    def name(curve: dict[str, Any]) -> str:
        return ", ".join(f"{key} = {_label(value)}" for key, value in curve["vary"].items())

    def bounded(curve: dict[str, Any]) -> bool:
        return curve["safe_leverage"] is not None and curve["bracket"][1] is None  # nothing tried above it

    lines = []
    for curve in curves[1:]:
        if first["safe_leverage"] is None or curve["safe_leverage"] is None:
            lines.append(f"{name(curve)} against {name(first)}: — (a curve without a safe leverage)")
            continue
        change = first["safe_leverage"] / curve["safe_leverage"] - 1.0  # margin 1/L against the first's
        word = "the same margin as" if abs(change) < 5e-4 else f"{abs(change):.1%} {'more' if change > 0 else 'less'} margin than"
        above = [name(c) for c in (first, curve) if bounded(c)]
        lines.append(f"{name(curve)} needs {word} {name(first)} (1 / {leverage_text(curve['safe_leverage'])} against "
                     f"1 / {leverage_text(first['safe_leverage'])})"
                     + (f"; a bound: the boundary of {' and '.join(above)} lies above the range" if above else ""))
    return lines


def log_ticks(low: float, high: float) -> list[float]:
    """Tick values for a log axis over [low, high] that are labelled in full (plotly's own
    log ticks label 20 as "2" when it shows only the leading digits): 1-2-5 steps, finer
    steps when the range is too short for three ticks, the ends themselves at the last."""
    for steps in ((1, 2, 5), (1, 1.5, 2, 3, 5, 7), (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9)):
        ticks = [round(step * 10.0**exponent, 10)
                 for exponent in range(math.floor(math.log10(low)) - 1, math.ceil(math.log10(high)) + 1)
                 for step in steps]
        shown = [tick for tick in ticks if low <= tick <= high]
        if len(shown) >= 3:
            return shown
    return [low, high] if low < high else [low]


def _error_bars(points: list[dict[str, Any]]) -> dict[str, Any]:
    """The one-sided bounds that decide (``bounds``): a bar's top at or under the line 1 -
    confidence is a leverage shown within budget, its bottom above the line one shown over
    (the two-sided interval at the same confidence is wider and would cross the line)."""
    return {"type": "data", "symmetric": False,
            "array": [None if p["p"] is None else p["bounds"][1] - p["p"] for p in points],
            "arrayminus": [None if p["p"] is None else p["p"] - p["bounds"][0] for p in points]}


def _critical_block(document: dict[str, Any]) -> str:
    """The probe search's seeds: each one's critical leverage (the highest of the grid within
    budget, at it and below), one histogram per curve over the grid; and the looks made."""
    grid = document["grid"]
    data = []
    rows = []
    for curve in document["curves"]:
        label = "scenario" if curve["vary"] is None else ", ".join(f"{k} = {_label(v)}" for k, v in curve["vary"].items())
        counts = [sum(1 for value in curve["critical"] if value == leverage) for leverage in grid]
        below = sum(1 for value in curve["critical"] if value is None)
        data.append({"type": "bar", "name": label, "x": [leverage_text(leverage) for leverage in grid], "y": counts})
        riding = ("at the leverage run (whole runs)" if curve.get("method") == "bisect"
                  else leverage_text(curve["accounts_at"]))
        reversed_seeds = curve.get("reversals")
        rows.append([esc(label), esc(riding), esc(curve["runs"]),
                     esc(curve.get("whole_runs", curve["runs"])),
                     esc("-" if reversed_seeds is None else len(reversed_seeds)), esc(below),
                     esc("; ".join(f"{look['seeds']} seeds at {look['confidence']:.2%}" for look in curve["looks"])),
                     esc(curve["stopped"])])
    fig = figure(data, {"title": {"text": "Seeds by their critical leverage (the highest of the grid within budget, "
                                          "with every lower one)"}, "height": 360, "barmode": "group",
                        "xaxis": {"title": {"text": "critical leverage"}, "type": "category"},
                        "yaxis": {"title": {"text": "seeds"}}})
    return (figure_block(Plot("critical-leverage", fig)) +
            table(["curve", "accounts at (pilot)", "seeds", "runs", "seeds reversed (bisection)",
                   "below the range", "looks (seeds, confidence)", "stopped"], rows,
                  attrs='id="looks-table"'))


def write_leverage_report(out_dir: Path, document: dict[str, Any]) -> Path:
    """safe_leverage.html: P(bad debt over budget) against leverage with its intervals, one
    curve per value of ``vary``; safe leverage against that value; the numbers."""
    budget = document["budget_pct_of_open_interest"]
    confidence = document["confidence"]
    alpha = 1 - confidence
    data: list[dict[str, Any]] = []
    rows = []
    for curve in document["curves"]:
        label = "scenario" if curve["vary"] is None else ", ".join(f"{k} = {_label(v)}" for k, v in curve["vary"].items())
        points = curve["points"]
        data.append({"type": "scatter", "mode": "lines+markers", "name": label,
                     "x": [p["leverage"] for p in points], "y": [p["p"] for p in points],
                     "error_y": _error_bars(points)})
        at = curve["at_safe"]
        rows.append([esc(label), esc(leverage_text(curve["safe_leverage"])),
                     esc("—" if at is None else f"{at['exceed']}/{at['runs']} (at most {at['bounds'][1]:.3f})"),
                     esc(f"[{leverage_text(curve['boundary'][0])}, {leverage_text(curve['boundary'][1])}]"),
                     esc(leverage_text(curve["bracket"][1])), esc(curve["unmeasured"]), esc(curve["note"] or "")])
    xs = [p["leverage"] for curve in document["curves"] for p in curve["points"]] or [1.0]
    data.append({"type": "scatter", "mode": "lines", "name": f"1 - confidence = {alpha:g}",
                 "x": [min(xs), max(xs)], "y": [alpha, alpha], "line": {"dash": "dash", "color": "#888"}})
    ticks = log_ticks(min(xs), max(xs))
    curve_fig = figure(data, {"title": {"text": f"P(bad debt > {budget:g}% of open interest) against leverage "
                                                f"(one-sided {confidence:.0%} Clopper-Pearson bounds)"},
                              "height": 420,
                              "xaxis": {"title": {"text": "leverage (every account)"}, "type": "log",
                                        "tickmode": "array", "tickvals": ticks, "ticktext": [f"{t:g}" for t in ticks]},
                              "yaxis": {"title": {"text": "probability"}, "range": [-0.05, 1.05]},
                              "legend": {"orientation": "h", "y": -0.25}})
    sections = [("curve", "Probability of exceeding the budget",
                 figure_block(Plot("leverage-curve", curve_fig,
                                   esc(f"Each bar reaches the one-sided {confidence:.0%} Clopper-Pearson bounds of "
                                       f"P(over budget): a leverage is shown within budget when its bar's top is at "
                                       f"or under the dashed line (1 - confidence = {alpha:g}), and shown over when "
                                       f"its bar's bottom is above it."))))]
    if document["vary"] is not None:
        curves = document["curves"]
        safe_fig = figure([{"type": "scatter", "mode": "markers", "x": [_label(curve["vary"][document["vary"]])
                                                                       for curve in curves],
                            "y": [curve["safe_leverage"] for curve in curves], "name": "safe leverage",
                            "text": [f"{headline(curve, confidence)}; {boundary_line(curve, confidence)}"
                                     for curve in curves],
                            "error_y": {"type": "data", "symmetric": False,
                                        "array": [None if None in curve["boundary"] else
                                                  curve["boundary"][1] - curve["boundary"][0] for curve in curves],
                                        "arrayminus": [None if curve["safe_leverage"] is None else 0.0
                                                       for curve in curves]}}],
                          {"title": {"text": f"Safe leverage against {document['vary']} (shown within budget at "
                                             f"{confidence:.0%}; bar: up to the lowest shown over)"}, "height": 380,
                           "xaxis": {"title": {"text": document["vary"]}, "type": "category"},
                           "yaxis": {"title": {"text": "safe leverage"}, "rangemode": "tozero"}})
        compared = "".join(f"<li>{esc(line)}</li>" for line in margin_comparison(curves))
        sections.append(("safe", "Safe leverage against the varied key",
                         figure_block(Plot("safe-leverage", safe_fig))
                         + (f'<ul id="margin-comparison">{compared}</ul>' if compared else "")))
    if document.get("method") in ("probes", "bisect"):
        sections.append(("critical", "Critical leverage per seed", _critical_block(document)))
    sections.append(("numbers", "Safe leverage",
                     table(["curve", "safe leverage (shown within budget)", "over budget there",
                            f"boundary at {confidence:.0%}", "next tried above", "unmeasured runs", "note"], rows,
                           attrs='id="leverage-table"')))
    runs = (f"probe books at {len(document['grid'])} leverages, "
            f"{', '.join(str(curve['runs']) for curve in document['curves'])} seeds a curve"
            if document.get("method") == "probes" else
            f"whole runs at {len(document['grid'])} leverages, each seed bisected: "
            f"{', '.join(str(curve['runs']) for curve in document['curves'])} seeds and "
            f"{', '.join(str(curve['whole_runs']) for curve in document['curves'])} runs a curve, "
            f"{', '.join(str(len(curve['reversals'])) for curve in document['curves'])} "
            "seed(s) reversed"
            if document.get("method") == "bisect" else f"{document['seeds']} seeds")
    meta = esc(f"{document['scenario']} · budget {budget:g}% of open interest · confidence "
               f"{confidence:.0%} · {runs} · {document['leverage_is']} · over budget: "
               f"{document['over_budget_is']}" + (f" · {document['method_note']}" if document.get("method_note") else ""))
    path = out_dir / LEVERAGE_REPORT
    path.write_text(page("msgstorm safe-leverage", meta, sections), encoding="utf-8")
    return path
