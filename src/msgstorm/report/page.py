"""The HTML page shell shared by report.html and compare.html: self-contained, works offline.

Place in the pipeline: html / compare -> **page** -> a file. plotly.js is embedded once (no
CDN, no network); each figure travels as JSON in a ``<script type="application/json">`` and
one script draws them all. The page checks itself: it collects script errors, and after
drawing it marks every plot container ``data-drawn="yes"`` when it holds a non-empty SVG
with at least one trace, and fills ``#report-status`` (``data-plots``, ``data-drawn``,
``data-errors``, ``data-overlaps``: plots whose title runs under plotly's mode bar,
``data-done``) so a headless browser test can read the outcome from the DOM.

Every figure's title sits in a row of its own below the mode bar (``below_the_mode_bar``):
plotly draws the bar in the top right corner, over the end of a long title otherwise.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from msgstorm.report.plotspec import Figure, plotly_file, to_json

__all__ = ["Plot", "below_the_mode_bar", "esc", "figure_block", "page", "table"]

_CSS = """
:root { --fg: #1d2330; --muted: #5b6474; --line: #e3e6eb; --pass: #1a7f37; --fail: #c62828; --unknown: #a86b00; }
* { box-sizing: border-box; }
body { font: 14px/1.45 -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: var(--fg);
       margin: 0; background: #f6f7f9; }
header { background: #1d2330; color: #fff; padding: 16px 28px; }
header h1 { margin: 0 0 4px; font-size: 20px; font-weight: 600; }
header .meta { color: #c5cad3; font-size: 13px; }
nav { padding: 8px 28px; background: #fff; border-bottom: 1px solid var(--line); position: sticky; top: 0; z-index: 5; }
nav a { color: var(--muted); margin-right: 14px; text-decoration: none; font-size: 13px; }
nav a:hover { color: var(--fg); }
main { padding: 8px 28px 40px; max-width: 1400px; }
section { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 14px 18px; margin: 16px 0; }
section h2 { font-size: 16px; margin: 0 0 10px; }
.note { color: var(--muted); font-size: 13px; margin: 4px 0 8px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(170px, 1fr)); gap: 10px; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; }
.card .label { color: var(--muted); font-size: 12px; }
.card .value { font-size: 18px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .sub { color: var(--muted); font-size: 12px; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 12px 5px 0; text-align: left; vertical-align: top; }
th { font-weight: 600; color: var(--muted); font-size: 12px; }
td.num { text-align: right; }
.verdict { font-weight: 600; text-transform: uppercase; font-size: 12px; }
.verdict-pass, .verdict-valid, .verdict-ok { color: var(--pass); }
.verdict-fail, .verdict-invalid, .verdict-regression { color: var(--fail); }
.verdict-unknown { color: var(--unknown); }
.verdict-improved { color: var(--pass); }
.plot { width: 100%; min-height: 300px; }
.plot-row { display: grid; grid-template-columns: repeat(auto-fit, minmax(460px, 1fr)); gap: 0 12px; }
.plot-row .plot { min-width: 0; }
pre { background: #f6f7f9; border: 1px solid var(--line); padding: 10px; overflow: auto; max-height: 520px; font-size: 12px; }
#report-status { display: none; }
"""

# Before plotly.js: collect every script error so the page (and a test) can report them.
_ERROR_TRAP = """
window.__reportErrors = [];
window.addEventListener('error', function (e) { window.__reportErrors.push(String(e.message || e)); });
window.addEventListener('unhandledrejection', function (e) { window.__reportErrors.push('unhandled rejection: ' + e.reason); });
(function () {
  var original = console.error;
  console.error = function () {
    window.__reportErrors.push(Array.prototype.map.call(arguments, String).join(' '));
    return original.apply(console, arguments);
  };
})();
"""

# After the page: draw every figure, then check each container really drew something.
_RENDER = """
(function () {
  var errors = window.__reportErrors;
  var status = document.getElementById('report-status');
  var plots = Array.prototype.slice.call(document.querySelectorAll('.plot[data-figure]'));
  var drawing = plots.map(function (div) {
    try {
      var figure = JSON.parse(document.getElementById(div.getAttribute('data-figure')).textContent);
      return Plotly.newPlot(div, figure.data, figure.layout,
                            {responsive: true, displaylogo: false}).catch(function (e) { errors.push(div.id + ': ' + e); });
    } catch (e) {
      errors.push(div.id + ': ' + e);
      return Promise.resolve();
    }
  });
  Promise.all(drawing).then(function () {
    var drawn = 0, overlaps = 0;
    plots.forEach(function (div) {
      var svg = div.querySelector('svg.main-svg');
      var box = svg ? svg.getBoundingClientRect() : null;
      var traces = div.querySelectorAll('g.trace, g.hm, .heatmaplayer image').length;
      var ok = !!box && box.width > 0 && box.height > 0 && traces > 0;
      div.setAttribute('data-drawn', ok ? 'yes' : 'no');
      div.setAttribute('data-traces', String(traces));
      if (ok) { drawn += 1; }
      var title = div.querySelector('.g-gtitle'), bar = div.querySelector('.modebar');
      if (title && bar) {
        var t = title.getBoundingClientRect(), b = bar.getBoundingClientRect();
        if (t.width > 0 && b.width > 0 && t.left < b.right && b.left < t.right
            && t.top < b.bottom && b.top < t.bottom) {
          overlaps += 1;
        }
      }
    });
    status.setAttribute('data-overlaps', String(overlaps));
    status.setAttribute('data-plots', String(plots.length));
    status.setAttribute('data-drawn', String(drawn));
    status.setAttribute('data-errors', String(errors.length));
    status.textContent = JSON.stringify(errors);
    status.setAttribute('data-done', 'yes');
  });
})();
"""


def esc(value: object) -> str:
    """Text for HTML (None shows as an em dash)."""
    return "—" if value is None else html.escape(str(value), quote=True)


@lru_cache(maxsize=1)
def _plotly_js() -> str:
    # The plotly.js bundle the plotly package ships, read as a file (plotly's Python side is
    # not imported: the page needs only this file).
    return plotly_file("plotly.min.js").read_text(encoding="utf-8")


def _script_json(payload: str) -> str:
    # "<" only occurs inside JSON strings, where \\u003c is the same character: no "</script>"
    # or "<!--" can end the script element early.
    return payload.replace("<", "\\u003c")


class Plot:
    """One figure on the page: ``slug`` names its container (``plot-<slug>``)."""

    def __init__(self, slug: str, figure: Figure, caption: str = "") -> None:
        self.slug = slug
        self.figure = figure
        self.caption = caption

    def json(self) -> str:
        return _script_json(to_json(below_the_mode_bar(self.figure)))


# The mode bar's row at the top of a figure (its buttons are 22 px, 2 px from the top, plus
# their padding), and where a title starts below it.
_MODE_BAR_PX = 32
# A title longer than this (about the width of a figure on a laptop's page) goes on two lines,
# its parenthesis on the second: plotly never wraps a title and clips it at the figure's edge.
_TITLE_LINE_CHARS = 100
_TITLE_LINE_PX = 22


def below_the_mode_bar(figure: Figure) -> Figure:
    """``figure`` with its title in a row of its own under the mode bar: anchored by its top,
    ``_MODE_BAR_PX`` below the figure's top, and the top margin grown by as much as the title
    moved down (from the middle of the margin), so the plot area keeps its room; a long
    title's parenthesis on a second line."""
    layout = figure.get("layout") or {}
    heading = layout.get("title")
    if isinstance(heading, str):
        heading = {"text": heading}
    if not isinstance(heading, dict) or not heading.get("text"):
        return figure
    margin = {"t": 60, **(layout.get("margin") or {})}
    margin["t"] += _MODE_BAR_PX // 2
    text, below = str(heading["text"]), _MODE_BAR_PX
    if len(text) > _TITLE_LINE_CHARS and " (" in text and "<br>" not in text:
        heading = {**heading, "text": text.replace(" (", "<br>(", 1)}
        margin["t"] += _TITLE_LINE_PX
        # plotly anchors a title's top by its first line's: each more line rises by one
        below += _TITLE_LINE_PX
    placed = {"y": 1, "yref": "container", "yanchor": "top", "pad": {"t": below}, **heading}
    return {**figure, "layout": {**layout, "title": placed, "margin": margin}}


def figure_block(plot: Plot) -> str:
    """The container, its figure data and its caption."""
    caption = f'<p class="note">{plot.caption}</p>' if plot.caption else ""
    return (f'<div class="plot" id="plot-{plot.slug}" data-figure="fig-{plot.slug}"></div>'
            f'<script type="application/json" id="fig-{plot.slug}">{plot.json()}</script>{caption}')


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], *, attrs: str = "") -> str:
    """An HTML table; cells are HTML already (escape text with ``esc``)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(cell if cell.startswith("<td") else f"<td>{cell}</td>" for cell in row) + "</tr>"
                   for row in rows)
    return f"<table {attrs}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def page(title: str, meta: str, sections: Sequence[tuple[str, str, str]], extra: dict[str, Any] | None = None) -> str:
    """A whole page: ``sections`` are (anchor, heading, inner HTML). ``extra`` becomes a JSON
    ``#report-data`` element (e.g. the summary) for tools that read the page."""
    nav = "".join(f'<a href="#{anchor}">{esc(heading)}</a>' for anchor, heading, _ in sections)
    body = "".join(f'<section id="{anchor}"><h2>{esc(heading)}</h2>{inner}</section>'
                   for anchor, heading, inner in sections)
    data = ""
    if extra is not None:
        data = f'<script type="application/json" id="report-data">{_script_json(json.dumps(extra))}</script>'
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{esc(title)}</title>"
        f"<style>{_CSS}</style><script>{_ERROR_TRAP}</script>"
        f"<script>{_plotly_js()}</script></head><body>"
        f"<header><h1>{esc(title)}</h1><div class=\"meta\">{meta}</div></header>"
        f"<nav>{nav}</nav><main>{body}</main>"
        f'<div id="report-status" data-done="no"></div>{data}'
        f"<script>{_RENDER}</script></body></html>\n"
    )
