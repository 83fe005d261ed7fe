"""Data files a scenario names (replay traces, price and accounts files), read once per process.

Place in the pipeline: under the readers of those files (``scenario.replay``,
``market.accounts``). Validation reads a file and the run reads it again, and a sweep's
worker runs the same scenario seed after seed: a reader wrapped in ``kept_per_file`` parses
each file once per process instead of once per run and stage. The key is the file's
identity as the OS gives it (inode, modification time, size), so a file written again is
read again. Written by hand around ``functools.lru_cache`` because the key is the file's
state, not the reader's arguments.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import lru_cache, wraps
from typing import Any, TypeVar

__all__ = ["kept_per_file"]

_T = TypeVar("_T")

# Results kept per reader: a sweep's files (a trace, a price file, an accounts file's columns).
KEPT = 8


def kept_per_file(read: Callable[..., _T]) -> Callable[..., _T]:
    """``read(path, *args)``, its result kept for the file as it is, the ``KEPT`` latest. For
    readers whose result nobody changes (Arrow arrays; numpy arrays made read-only)."""

    @lru_cache(maxsize=KEPT)
    def kept(path: str, identity: tuple[int, int, int], *args: Any) -> _T:
        return read(path, *args)

    @wraps(read)
    def keep(path: str, *args: Any) -> _T:
        try:
            found = os.stat(path)
        except OSError:  # not there: the reader says so, as it would have
            return read(path, *args)
        return kept(path, (found.st_ino, found.st_mtime_ns, found.st_size), *args)

    return keep
