"""Traffic made ahead on a worker thread while the compiled loop runs.

Place in the pipeline: between ``traffic.generate_traffic`` and ``SoloDriver``. The
one-node loop (``sim/solo_loop.py``) runs without the interpreter lock (numba ``nogil``),
so while it works through one piece of traffic a second core can make the next: the
traffic's draws and arrays are numpy and numba work, the same either way. Nothing about
the result depends on it: traffic is a pure function of the scenario and seed, and the
loop takes the pieces in the order they were made.

Lifecycle: ``Ahead(pieces)`` starts a daemon thread that takes items from ``pieces`` and
keeps at most ``depth`` of them waiting; iterating an ``Ahead`` yields them in order and
re-raises an exception the thread met, where the loop asks for the item. ``close()`` stops
the thread (it checks between items and while waiting for room, every ``_POLL_S``) and
joins it; ``SoloDriver`` closes it on every exit path (end, error, Ctrl-C). Each item is
made by one thread only, so generators need no locking.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Generic, TypeVar

__all__ = ["Ahead"]

T = TypeVar("T")

_POLL_S = 0.05


class _End:
    """The source ran out (``error`` None) or failed."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class Ahead(Generic[T]):
    """Items of ``source`` made on a worker thread, ``depth`` ahead of the consumer."""

    def __init__(self, source: Iterator[T], depth: int = 1) -> None:
        self._source = source
        self._queue: queue.Queue[T | _End] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._make, name="msgstorm-traffic-ahead", daemon=True)
        self._thread.start()

    def _make(self) -> None:
        end = _End(None)
        try:
            for item in self._source:
                if not self._put(item):
                    return
        except BaseException as error:  # handed to the consumer, raised where it asks
            end = _End(error)
        self._put(end)

    def _put(self, item: T | _End) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        item = self._queue.get()
        if isinstance(item, _End):
            self._done = True
            self._thread.join()
            if item.error is not None:
                raise item.error
            raise StopIteration
        return item

    def close(self) -> None:
        """Stop making items and wait for the thread (at most the item it is making)."""
        self._stop.set()
        self._done = True
        self._thread.join()
