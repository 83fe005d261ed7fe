"""The messages waiting for the base fee to fall: a sorted list that sorts only when read.

Place in the pipeline: inside the simulator, one part of the ``Sequencer`` (``waiting``).
Under a priced backpressure mode (EIP-1559, ``underpriced = "wait"``) a message under the
base fee waits here as ``(-fee, arrival, msg)``; a block that lowers the base fee lets in
every one it now admits, highest fee first, then arrival (``admitted``); a crashed leader
empties it (``drain``).

Written by hand, in place of a general sorted container, because of how this one is used:
under a base fee that swings around a flood's fees, the whole queue (tens of thousands of
messages) joins the waiting list at once and comes back a few blocks later, while the
arrivals priced out in between join one at a time. A sorted container pays an insertion
(a bisect and a list insert, with its bookkeeping) for each of them; here an entry is
appended to an unsorted tail, and the list is sorted only when the base fee lets some in:
Python's sort (timsort) finds the sorted head and the sorted runs a moved queue brings, and
merges them in about linear time. The entries are unique (``arrival`` counts every entry),
so the order read is the one total order whatever the way in: the same history as any
sorted container (``tests/test_sim_fee_wait.py`` compares it with ``sortedcontainers``'
``SortedList`` on random operations).
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator
from math import inf

__all__ = ["FeeWaitList"]

Entry = tuple[float, int, int]  # (-fee, arrival, msg)


class FeeWaitList:
    """``(-fee, arrival, msg)`` entries, read in ascending order (highest fee first)."""

    __slots__ = ("_best", "_sorted", "_tail")

    def __init__(self) -> None:
        self._sorted: list[Entry] = []  # in order
        self._tail: list[Entry] = []  # in no order, sorted into ``_sorted`` when read
        self._best: Entry | None = None  # the least entry of both

    def add(self, entry: Entry) -> None:
        self._tail.append(entry)
        if self._best is None or entry < self._best:
            self._best = entry

    def update(self, entries: Iterable[Entry]) -> None:
        """Every entry of ``entries`` (a moved queue: in order, so one run for the sort)."""
        tail = self._tail
        start = len(tail)
        tail.extend(entries)
        if len(tail) > start:
            least = min(tail[start:]) if start else min(tail)
            if self._best is None or least < self._best:
                self._best = least

    def best_fee(self) -> float | None:
        """The highest fee waiting; None when none waits."""
        return None if self._best is None else -self._best[0]

    def admitted(self, base_fee: float) -> list[Entry]:
        """Remove and return, in order, every entry whose fee is at least ``base_fee``."""
        entries = self._sorted
        if self._tail:
            entries.extend(self._tail)
            self._tail.clear()
            entries.sort()
        cut = bisect_right(entries, (-base_fee, inf))
        taken = entries[:cut]
        del entries[:cut]
        self._best = entries[0] if entries else None
        return taken

    def drain(self) -> list[Entry]:
        """Remove and return every entry, in order."""
        entries = self._sorted
        entries.extend(self._tail)
        entries.sort()
        self._sorted, self._tail, self._best = [], [], None
        return entries

    def __iter__(self) -> Iterator[Entry]:
        return iter(sorted([*self._sorted, *self._tail]))

    def __len__(self) -> int:
        return len(self._sorted) + len(self._tail)

    def __bool__(self) -> bool:
        return self._best is not None
