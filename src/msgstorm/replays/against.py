"""An "against the record" table: each published figure beside the run's, its band, whether
the run is inside it, and whether the figure was fitted or is predicted.

Place in the pipeline: after the runs a replay makes, read from their summaries; each replay
(``replays/cometbft_qa.py``) declares its ``Published`` figures and which of them it fitted.
A figure used to fit is never reported as agreement: the table says "fitted" beside it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["AgainstRow", "Published", "against", "format_against"]


@dataclass(frozen=True)
class Published:
    """One published figure: its value, the band a run must fall in, and where it was published."""

    name: str  # what it is, in words, with its unit
    value: float
    low: float  # the band
    high: float
    source: str

    @classmethod
    def within(cls, name: str, value: float, fraction: float, source: str) -> Published:
        """A band of ``fraction`` either side of ``value``."""
        return cls(name, value, value * (1 - fraction), value * (1 + fraction), source)


@dataclass(frozen=True)
class AgainstRow:
    figure: Published
    measured: float | None  # None: the run does not give it
    inside: bool
    kind: Literal["fitted", "predicted"]


def against(figures: Sequence[Published], measured: Mapping[str, float | None], fitted: Sequence[str],
            predicted: Sequence[str]) -> list[AgainstRow]:
    """A row for each figure, in the order given. Every figure is either fitted or predicted,
    not both and not neither (``ValueError`` otherwise)."""
    names = [figure.name for figure in figures]
    both = set(fitted) & set(predicted)
    if both:
        raise ValueError(f"figures both fitted and predicted: {sorted(both)}")
    unknown = (set(fitted) | set(predicted)) - set(names)
    left = set(names) - set(fitted) - set(predicted)
    if unknown or left:
        raise ValueError(f"not published: {sorted(unknown)}; neither fitted nor predicted: {sorted(left)}")
    rows = []
    for figure in figures:
        value = measured.get(figure.name)
        rows.append(AgainstRow(figure, value, value is not None and figure.low <= value <= figure.high,
                               "fitted" if figure.name in fitted else "predicted"))
    return rows


def _number(value: float) -> str:
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"


def format_against(rows: Sequence[AgainstRow], title: str) -> str:
    """The table as plain text, one row a figure."""
    header = ("figure", "measured", "published", "band", "within", "fitted or predicted", "source")
    lines = [(row.figure.name, "-" if row.measured is None else _number(row.measured), _number(row.figure.value),
              f"{_number(row.figure.low)} to {_number(row.figure.high)}", "yes" if row.inside else "no", row.kind,
              row.figure.source) for row in rows]
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *lines, strict=True)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([title, line(header), *(line(cells) for cells in lines)])
