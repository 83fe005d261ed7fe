"""Timers shared by the benchmark scripts (imported from their own folder)."""

from __future__ import annotations

from collections.abc import Iterator
from time import perf_counter
from typing import Any


def timed_batches(batches: Iterator[Any], clock: dict[str, float], key: str = "traffic") -> Iterator[Any]:
    """Yield from ``batches``, adding the time spent producing each to ``clock[key]``."""
    while True:
        start = perf_counter()
        batch = next(batches, None)
        clock[key] += perf_counter() - start
        if batch is None:
            return
        yield batch
