"""Plain plotly figure specifications: the JSON plotly.js draws, built as dicts.

Place in the pipeline: ``figures``, ``topology`` and ``compare_html`` build their plots with
this module's ``Figure``, ``Scatter``, ``Bar`` and ``Heatmap``; ``page`` embeds each as JSON
for plotly.js. Why by hand: plotly's graph objects validate and deep-copy every property on
every update (about a second for one report of a million messages, and a large import),
while the page needs only the JSON that plotly.js reads. The subset here is the one the
reports use, with plotly's meaning: ``update_layout(xaxis_title_text=...)`` nests on
underscores, ``update_xaxes``/``update_yaxes`` update every x/y axis present, ``add_vline``
draws a line across the plot with its label. ``tests/test_report_plotspec.py`` loads every
report figure into plotly's own ``Figure``, which rejects any property plotly.js does not know.
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from importlib.resources import files
from typing import Any

import numpy as np

__all__ = ["Bar", "Figure", "Heatmap", "Scatter", "Spec", "template"]

_AXIS = re.compile(r"^(x|y)axis\d*$")


class Spec(dict[str, Any]):
    """A dict whose keys read as attributes (``trace.y``, ``layout.yaxis2.overlaying``);
    a key not set reads as None, as in plotly."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return self.get(name)


def _spec(value: Any) -> Any:
    if isinstance(value, dict):
        return Spec({key: _spec(item) for key, item in value.items()})
    if isinstance(value, list):
        return [_spec(item) for item in value]
    return value


def _nested(properties: dict[str, Any]) -> Spec:
    """plotly's magic underscores: ``xaxis_title_text=v`` is ``{"xaxis": {"title": {"text": v}}}``."""
    out = Spec()
    for key, value in properties.items():
        path = key.split("_")
        _merge(out, Spec({path[-1]: _spec(value)}) if len(path) == 1 else _path(path, value))
    return out


def _path(path: list[str], value: Any) -> Spec:
    node: Any = _spec(value)
    for part in reversed(path):
        node = Spec({part: node})
    return Spec(node)


def _merge(target: Spec, update: dict[str, Any]) -> None:
    """Deep update: nested dicts merge, anything else replaces."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = _spec(value)


def _trace(kind: str, properties: dict[str, Any]) -> Spec:
    trace = Spec(type=kind)
    _merge(trace, _nested(properties))
    return trace


def Scatter(**properties: Any) -> Spec:  # noqa: N802 - named as plotly's trace types
    return _trace("scatter", properties)


def Bar(**properties: Any) -> Spec:  # noqa: N802
    return _trace("bar", properties)


def Heatmap(**properties: Any) -> Spec:  # noqa: N802
    return _trace("heatmap", properties)


@cache
def template(name: str) -> dict[str, Any]:
    """A plotly template, read from the JSON file the plotly package ships (no import of it)."""
    text = (files("plotly") / "package_data" / "templates" / f"{name}.json").read_text(encoding="utf-8")
    return dict(json.loads(text))


class Figure:
    """``data`` (traces) and ``layout``, built with plotly's method names."""

    def __init__(self, data: Spec | list[Spec] | None = None, layout: dict[str, Any] | None = None) -> None:
        self.data: list[Spec] = [] if data is None else [data] if isinstance(data, dict) else list(data)
        self.layout = Spec()
        if layout:
            _merge(self.layout, _nested(layout))

    def add_trace(self, trace: Spec) -> Figure:
        self.data.append(trace)
        return self

    def update_layout(self, properties: dict[str, Any] | None = None, **more: Any) -> Figure:
        update = {**(properties or {}), **more}
        if isinstance(update.get("template"), str):  # a name, as plotly takes it: the template itself
            update["template"] = template(update["template"])
        _merge(self.layout, _nested(update))
        return self

    def _update_axes(self, letter: str, properties: dict[str, Any]) -> Figure:
        names = [key for key in self.layout if _AXIS.match(key) and key[0] == letter] or [f"{letter}axis"]
        if f"{letter}axis" not in names:
            names.insert(0, f"{letter}axis")
        for name in names:
            axis = self.layout.setdefault(name, Spec())
            _merge(axis, _nested(properties))
        return self

    def update_xaxes(self, **properties: Any) -> Figure:
        return self._update_axes("x", properties)

    def update_yaxes(self, **properties: Any) -> Figure:
        return self._update_axes("y", properties)

    def add_annotation(self, **properties: Any) -> Figure:
        self.layout["annotations"] = [*(self.layout.get("annotations") or []), _nested(properties)]
        return self

    def add_vline(self, x: float, line: dict[str, Any] | None = None, annotation_text: str | None = None,
                  annotation_position: str = "top right") -> Figure:
        """A vertical line across the plot at ``x``, labelled at the top (as plotly's)."""
        shape = Spec(type="line", xref="x", yref="paper", x0=x, x1=x, y0=0, y1=1, line=_spec(line or {}))
        self.layout["shapes"] = [*(self.layout.get("shapes") or []), shape]
        if annotation_text is not None:
            left = "left" in annotation_position
            self.add_annotation(text=annotation_text, x=x, xref="x", y=1, yref="paper", showarrow=False,
                                xanchor="right" if left else "left",
                                yanchor="top" if "top" in annotation_position else "bottom")
        return self

    def to_plotly_json(self) -> dict[str, Any]:
        return {"data": self.data, "layout": self.layout}

    def to_dict(self) -> dict[str, Any]:
        return self.to_plotly_json()

    def to_json(self, validate: bool = False) -> str:
        """JSON for plotly.js: numpy values as numbers, NaN and infinities as null."""
        return json.dumps(_clean(self.to_plotly_json()), separators=(",", ":"), allow_nan=False)


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(item) for item in value]
    if isinstance(value, np.ndarray):
        return _clean(value.tolist())
    if isinstance(value, np.generic):
        return _clean(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
