"""Plain plotly.js figure specifications: the JSON the page draws, written as dicts.

Place in the pipeline: ``figures``, ``topology`` and ``compare_html`` write each plot as a
``Figure`` (``{"data": [traces], "layout": {...}}``, what ``Plotly.newPlot`` takes) from
series that are already aggregated and thinned; ``page`` embeds it with ``to_json``. Why not
plotly's graph objects: they validate and deep-copy every property on every update, and are
a large import (docs/performance.md), while the page needs only the JSON. The specs are
written in the form plotly's ``Figure`` turns its own into (titles as ``{"text": ...}``,
colour scales spelled out, ``add_vline``'s shape and label), so
``tests/test_report_plotspec.py`` checks that every report figure comes out of plotly's own
``Figure`` unchanged: valid for plotly.js, and what graph objects built.
"""

from __future__ import annotations

import json
import math
from functools import cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

__all__ = ["VIRIDIS", "Figure", "distinct_colours", "figure", "plotly_file", "title", "to_json", "template", "vline"]

# plotly's "Viridis" as its Figure spells the name out (ten stops): the region heatmap's colours.
VIRIDIS: list[list[float | str]] = [
    [0.0, "#440154"], [0.1111111111111111, "#482878"], [0.2222222222222222, "#3e4989"],
    [0.3333333333333333, "#31688e"], [0.4444444444444444, "#26828e"], [0.5555555555555556, "#1f9e89"],
    [0.6666666666666666, "#35b779"], [0.7777777777777778, "#6ece58"], [0.8888888888888888, "#b5de2b"],
    [1.0, "#fde725"],
]

# plotly's qualitative "Plotly" (its default colourway, ten colours) and "Dark24" palettes.
_PLOTLY_10 = ("#636EFA", "#EF553B", "#00CC96", "#AB63FA", "#FFA15A", "#19D3F3", "#FF6692", "#B6E880", "#FF97FF",
              "#FECB52")
_DARK_24 = ("#2E91E5", "#E15F99", "#1CA71C", "#FB0D0D", "#DA16FF", "#222A2A", "#B68100", "#750D86", "#EB663B",
            "#511CFB", "#00A08B", "#FB00D1", "#FC0080", "#B2828D", "#6C7C32", "#778AAE", "#862A16", "#A777F1",
            "#620042", "#1616A7", "#DA60CA", "#6C4516", "#0D2A63", "#AF0038")


def distinct_colours(count: int) -> list[str]:
    """``count`` colours, no two alike: plotly's default ten, its Dark24 up to 24, and past
    that hues spaced evenly around the colour wheel (plotly.js would cycle its ten)."""
    if count <= len(_PLOTLY_10):
        return list(_PLOTLY_10[:count])
    if count <= len(_DARK_24):
        return list(_DARK_24[:count])
    return [f"hsl({round(360 * index / count, 2):g}, {70 if index % 2 else 55}%, {42 if index % 2 else 55}%)"
            for index in range(count)]


class Figure(TypedDict):
    """One plot: its traces and its layout, as plotly.js reads them."""

    data: list[dict[str, Any]]
    layout: dict[str, Any]


def plotly_file(*parts: str) -> Path:
    """A file of the plotly package's ``package_data``, found without importing plotly (whose
    ``__init__`` the page does not need: it needs only the files)."""
    spec = find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("plotly is not installed: pip install plotly (report.html embeds its plotly.js)")
    return Path(next(iter(spec.submodule_search_locations)), "package_data", *parts)


@cache
def template(name: str) -> dict[str, Any]:
    """A plotly template, read from the JSON file the plotly package ships (plotly's Python
    side is not imported). Shared by every figure that uses it: read-only."""
    text = plotly_file("templates", f"{name}.json").read_text(encoding="utf-8")
    return dict(json.loads(text))


def figure(data: list[dict[str, Any]], layout: dict[str, Any], template_name: str = "plotly_white") -> Figure:
    """A figure of ``data`` and ``layout`` drawn with the named template."""
    return Figure(data=data, layout={**layout, "template": template(template_name)})


def title(text: str, **more: Any) -> dict[str, Any]:
    """A title as plotly.js reads it: ``{"text": ..., more}``."""
    return {"text": text, **more}


def vline(x: float, line: dict[str, Any], label: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A vertical line across the plot at ``x`` and its label at the top, to its left: the
    shape and annotation plotly's ``add_vline(annotation_position="top left")`` makes."""
    shape = {"type": "line", "x0": x, "x1": x, "xref": "x", "y0": 0, "y1": 1, "yref": "y domain", "line": line}
    annotation = {"showarrow": False, "text": label, "x": x, "xanchor": "right", "xref": "x",
                  "y": 1, "yanchor": "top", "yref": "y domain"}
    return shape, annotation


def to_json(spec: Figure) -> str:
    """JSON for plotly.js: numpy values as numbers, NaN and infinities as null."""
    try:  # the figures hold plain numbers already: one pass of the C encoder
        return json.dumps(spec, separators=(",", ":"), allow_nan=False, default=_numpy)
    except ValueError:  # a NaN or infinity somewhere: walk the figure once to null them
        return json.dumps(_finite(spec), separators=(",", ":"), allow_nan=False, default=_numpy)


def _numpy(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return _finite(value.tolist())
    if isinstance(value, np.generic):
        return _finite(value.item())
    raise TypeError(f"{type(value).__name__} is not JSON for plotly.js")


def _finite(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    if isinstance(value, np.ndarray):
        return _finite(value.tolist())
    if isinstance(value, np.generic):
        return _finite(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
