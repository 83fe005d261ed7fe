"""Scenario errors that name file, line and field, and the TOML line locator behind them.

``tomllib`` gives values without positions, so ``TomlLocator`` scans the source once and
maps every table header and key to its line. A validation error's location
(``("agents", 0, "arrival", "rate")``) is matched to the deepest path the file spells out,
so a missing field points at its table and an unknown one at its own line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["ScenarioError", "ScenarioIssue", "TomlLocator", "format_field"]

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class ScenarioIssue:
    """One thing wrong with a scenario: where it is and what would be right."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


class ScenarioError(Exception):
    """A scenario that cannot run; ``issues`` lists every problem found."""

    def __init__(self, issues: Sequence[ScenarioIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(issue) for issue in self.issues))


def format_field(loc: Loc) -> str:
    """``("agents", 0, "arrival", "rate")`` -> ``agents[0].arrival.rate``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + part
    return text


_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(r"""^\s*((?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)(?:\s*\.\s*(?:"[^"]*"|'[^']*'|[A-Za-z0-9_\-]+))*)\s*=""")
_INLINE_KEY = re.compile(r"""(?:^|[{,])\s*("[^"]*"|'[^']*'|[A-Za-z0-9_\-]+)\s*=""")


def _split_key(dotted: str) -> tuple[str, ...]:
    parts = re.findall(r""""[^"]*"|'[^']*'|[^.\s]+""", dotted)
    return tuple(part.strip("\"'") for part in parts)


class TomlLocator:
    """Map key paths of a TOML document to the line numbers (1-based) that define them."""

    def __init__(self, text: str) -> None:
        self.lines: dict[Loc, int] = {}
        array_counts: dict[Loc, int] = {}
        table: Loc = ()
        for number, line in enumerate(text.splitlines(), start=1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            header = _HEADER.match(line)
            if header and not _KEY.match(line):
                parts = _split_key(header.group(2))
                if header.group(1) == "[[":
                    # [[a.b]]: the parent resolves to its latest element, "b" is counted.
                    path = (*self._resolve(parts[:-1], array_counts), parts[-1])
                    index = array_counts.get(path, -1) + 1
                    array_counts[path] = index
                    table = (*path, index)
                else:
                    table = self._resolve(parts, array_counts)
                self.lines.setdefault(table, number)
                continue
            key = _KEY.match(line)
            if key:
                path = (*table, *_split_key(key.group(1)))
                self.lines.setdefault(path, number)
                rest = line[key.end():]
                if "{" in rest:
                    for inner in _INLINE_KEY.finditer(rest[rest.index("{"):]):
                        self.lines.setdefault((*path, inner.group(1).strip("\"'")), number)

    def _resolve(self, path: tuple[str, ...], array_counts: dict[Loc, int]) -> Loc:
        """A header like [agents.arrival] refers to the latest [[agents]] element."""
        resolved: Loc = ()
        for part in path:
            resolved = (*resolved, part)
            if resolved in array_counts:
                resolved = (*resolved, array_counts[resolved])
        return resolved

    def line_of(self, loc: Loc) -> int | None:
        """The line of the deepest prefix of ``loc`` that appears in the file."""
        best: int | None = None
        path: Loc = ()
        for part in loc:
            candidate = (*path, part)
            if any(known[: len(candidate)] == candidate for known in self.lines):
                path = candidate
                if path in self.lines:
                    best = self.lines[path]
        return best
