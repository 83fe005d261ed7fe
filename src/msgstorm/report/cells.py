"""Table cells that wrap without parting a number from its unit.

Place in the pipeline: under the terminal summary and ``compare``'s table. rich wraps a cell
at any whitespace, a no-break space too, so a value at the end of a line could read
``2.93`` with ``s`` below it. ``Kept`` wraps at the spaces ``report.text`` does not mark as
a number's gap to its unit (``UNIT_GAP``), and otherwise renders as rich renders a string
cell (markup, the console's highlighting, the column's justification).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType
from rich.measure import Measurement
from rich.style import StyleType
from rich.table import Table
from rich.text import Text

from msgstorm.report.text import UNIT_GAP

__all__ = ["Kept", "KeptTable"]

_JOINED = "\u00a0"  # held in place of a unit's gap while the cell is laid out
_WORD = re.compile(r"[^ ]+")


class Kept:
    """A string cell (rich markup) whose lines break only where a number keeps its unit."""

    def __init__(self, markup: str) -> None:
        self.markup = UNIT_GAP.sub(_JOINED, markup)

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        plain = console.render_str(self.markup).plain
        longest = max((cell_len(word) for word in _WORD.findall(plain)), default=0)
        return Measurement(longest, cell_len(plain))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Text]:
        text = console.render_str(self.markup)
        breaks: list[int] = []
        start = 0
        for word in _WORD.finditer(text.plain):  # greedy, at ordinary spaces only
            if word.start() > start and cell_len(text.plain[start:word.end()]) > options.max_width:
                breaks.append(word.start())
                start = word.start()
        lines = text.divide(breaks)
        for line in lines:
            line.rstrip()
        laid = Text("\n").join(lines)
        laid.plain = laid.plain.replace(_JOINED, " ")  # same length: the styles stay where they were
        yield laid


class KeptTable(Table):
    """A rich ``Table`` whose string cells are ``Kept``."""

    def add_row(self, *renderables: RenderableType | None, style: StyleType | None = None, end_section: bool = False) -> None:
        super().add_row(*(Kept(cell) if isinstance(cell, str) else cell for cell in renderables), style=style,
                        end_section=end_section)
