"""The process's heap: freed memory kept for reuse instead of handed back to the kernel.

Place in the pipeline: the first thing the ``msgstorm`` command does, before any stage
allocates. The simulator, the history writer and every analysis step work on arrays of a
few MB to a few hundred MB (a column of a million messages is 8 MB), allocated and freed
one after another. glibc's allocator serves such blocks with ``mmap`` and unmaps them on
``free``, so the next array of the same size is new memory again: the kernel zeroes every
page of it on first touch. Kept in the heap, freed blocks are reused by the next array,
for fewer page faults and the same peak RSS (docs/dev/performance-log.md, "Costs the docstrings
name").

So blocks up to ``_MMAP_THRESHOLD`` come from the heap, and the heap keeps up to
``_TRIM_THRESHOLD`` of free memory at its top rather than trimming it. Peak RSS is what
the program holds at its largest moment either way, give or take the holes a heap leaves
(which is why the largest blocks are mapped on their own, see ``_MMAP_THRESHOLD``); only
the memory a finished stage freed stays mapped until the process exits or reuses it.

Between stages that share nothing (a live run's recording, then its analysis, where both
run in one process: see ``live/apart.py``; the simulator, then the analysis; the analysis'
steps, one after another, at millions of messages: ``analysis/summary.py``), the kept
memory is handed back (``release_freed_memory``): the recording frees arrays of sizes the
analysis never asks for, so kept, they would only sit under the analysis's own, and a live
run's peak would be the two added up rather than the larger.

A live recording's process (``live/apart.py``) is set the other way round
(``map_large_blocks``): what it allocates by the MB (windows of traffic, the transport's
write buffer) grows with the send rate and is short-lived, so each block is mapped on its
own and handed back when freed, and that process's peak is what it holds. Arrow's buffers
come from this same heap (``ARROW_POOL_VARIABLE``), so the settings above cover them too.

Written against ``mallopt(3)`` and ``malloc_trim(3)`` through ctypes: no library sets allocator parameters, and
the environment variable that does (``GLIBC_TUNABLES``) is read only when a process starts.
On a C library without ``mallopt`` (musl, macOS) nothing changes.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable

__all__ = ["ARROW_POOL_VARIABLE", "keep_freed_memory", "map_large_blocks", "release_freed_memory"]

# Arrow's buffers (the history's Parquet columns, read and written) come from this heap, the
# C library's ``malloc`` that ``keep_freed_memory`` sets, rather than pyarrow's bundled
# mimalloc: once loaded, mimalloc held tens of MB more than Arrow ever had allocated
# (``msgstorm report`` of a ``live-nats-ramp`` history of 3.0M messages sent peaked at
# 403-423 MB with it, 355-369 MB without, the same CPU time; ``docs/performance.md``).
# Arrow reads the variable once, when pyarrow is first imported, and ``set_memory_pool``
# afterwards does not reach the pool its C++ readers use; so it is set here, on import, which
# the command does before anything loads pyarrow. A pool the environment names is kept.
ARROW_POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"
os.environ.setdefault(ARROW_POOL_VARIABLE, "system")

# mallopt(3) parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# Blocks below this come from the heap: every array the pipeline allocates up to a column
# of 4M messages (a million messages' columns are 8 MB). Larger ones (the columns of the
# longest runs) are mapped on their own and handed back when freed: kept in the heap, they
# left holes that later steps' arrays of other sizes did not fill, so the heap's extent, and
# with it the RSS, grew past what was ever held at once (``msgstorm report`` of a live run
# of 4.9M messages: 386-410 MB peak with 256 MB here, 348-358 MB with 32 MB, the same
# system time). glibc takes any value up to HEAP_MAX (32 MB on its dynamic path) here.
_MMAP_THRESHOLD = 32 * 2**20
# Free memory at the top of the heap kept rather than handed back.
_TRIM_THRESHOLD = 1 << 30
# A live recording's process (``map_large_blocks``): blocks from this size on are mapped on
# their own. What it allocates by the MB is short-lived and grows with the send rate (a
# window of traffic, 5 MB a column at a million messages a second; the transport's write
# buffer): kept in the heap, each window larger than the last left the last one's blocks
# as holes, and the heap held 140 MB free at the recording's peak (``live-nats-ramp``).
_RECORDING_MMAP_THRESHOLD = 1 << 20


def _mallopt() -> Callable[[int, int], int] | None:
    """glibc's ``mallopt``; None on another C library."""
    try:
        libc = ctypes.CDLL(None)  # the C library this interpreter runs on
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # noqa: B018 - only glibc has these parameters
    except (OSError, AttributeError, TypeError):  # TypeError: Windows takes no CDLL(None)
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt


def keep_freed_memory() -> bool:
    """Set the allocator to keep freed blocks for reuse; whether it took (glibc only)."""
    mallopt = _mallopt()
    if mallopt is None:
        return False
    mmap_set = bool(mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD))
    trim_set = bool(mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD))
    return mmap_set and trim_set


def map_large_blocks() -> bool:
    """Set the allocator, in a live recording's process, to map blocks of a MB or more on
    their own and hand them back when freed (``_RECORDING_MMAP_THRESHOLD``); whether it took
    (glibc only). The recording's RSS then follows what it holds, not the largest extent its
    heap ever reached."""
    mallopt = _mallopt()
    return mallopt is not None and bool(mallopt(_M_MMAP_THRESHOLD, _RECORDING_MMAP_THRESHOLD))


def release_freed_memory() -> bool:
    """Hand the heap's free memory back to the kernel (``malloc_trim(0)``: its top and the
    free pages inside it); whether it could (glibc only)."""
    try:
        libc = ctypes.CDLL(None)
        trim = libc.malloc_trim
    except (OSError, AttributeError, TypeError):
        return False
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return bool(trim(0))
