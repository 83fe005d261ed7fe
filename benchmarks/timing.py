"""Timers shared by the benchmark scripts (imported from their own folder)."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Iterator
from time import perf_counter, process_time, thread_time
from types import FunctionType
from typing import Any


def timed_batches(batches: Iterator[Any], clock: dict[str, float], key: str = "traffic",
                  now: Callable[[], float] = perf_counter) -> Iterator[Any]:
    """Yield from ``batches``, adding the time spent producing each to ``clock[key]``, as
    ``now`` tells it (wall time by default)."""
    while True:
        start = now()
        batch = next(batches, None)
        clock[key] += now() - start
        if batch is None:
            return
        yield batch


class CpuSplit:
    """This thread's CPU time split by the part of the simulator that spends it, for one run.

    ``patch(category, classes)`` wraps every function defined on each class (its own
    ``__dict__``, so a mixin's methods go to the category the mixin is listed under) so that
    the thread's CPU time (``time.thread_time``) from entering until leaving it is charged to
    ``category``, less what calls into another category inside it take (a stack). A call
    within the category it is already in reads no clock, so the patch costs a Python call
    per method call and two clock reads per change of category. ``unpatch()`` puts the
    originals back. Only the thread that patched is timed (the history writer's background
    thread calls some of the same methods). What runs outside every wrapped method (the event loop, traffic
    generation, the compiled one-node loop's Python driver) is ``other``; CPU time of other
    threads (the history writer's background thread) is the process's CPU time
    (``time.process_time``) less this thread's. A benchmark-only patch: the simulator has
    no timers of its own.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {"other": 0.0}
        self._stack: list[str] = ["other"]
        self._since = 0.0
        self._patched: list[tuple[type, str, Any]] = []

    def patch(self, category: str, classes: Iterable[type]) -> None:
        self.seconds.setdefault(category, 0.0)
        for cls in classes:
            for name, value in list(vars(cls).items()):
                if isinstance(value, FunctionType) and name not in ("__init__", "__repr__"):
                    self._patched.append((cls, name, value))
                    setattr(cls, name, self._wrap(category, value))

    def unpatch(self) -> None:
        for cls, name, original in reversed(self._patched):
            setattr(cls, name, original)
        self._patched.clear()

    def _wrap(self, category: str, function: Callable[..., Any]) -> Callable[..., Any]:
        stack, seconds, clock, thread = self._stack, self.seconds, thread_time, threading.get_ident()

        @functools.wraps(function)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if stack[-1] == category or threading.get_ident() != thread:
                return function(*args, **kwargs)
            now = clock()
            seconds[stack[-1]] += now - self._since
            self._since = now
            stack.append(category)
            try:
                return function(*args, **kwargs)
            finally:
                now = clock()
                seconds[category] += now - self._since
                self._since = now
                stack.pop()
        return timed

    def measure(self, run: Callable[[], Any]) -> dict[str, float]:
        """Run ``run()`` and return {category: CPU seconds}, with ``other threads``."""
        for key in self.seconds:
            self.seconds[key] = 0.0
        process_started = process_time()
        self._since = thread_time()
        run()
        self.seconds["other"] += thread_time() - self._since
        split = dict(self.seconds)
        split["other threads"] = max(process_time() - process_started - sum(split.values()), 0.0)
        return split
