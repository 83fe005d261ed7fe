"""How a live target's sending runs: the event loop with the interpreter set for open-loop sends.

Place in the pipeline: ``Lifecycle.run`` (``live/lifecycle.py``: brokers, an EVM node,
validators) -> **run_send_loop(main, traffic, handlers, interrupted)** -> ``Lifecycle._main``.
Every target sends the scenario's traffic at its intended times, so all need the same
interpreter settings around their loop, written here once:

- The first two windows are built before the clock starts: a batch can take a few hundred
  ms to build (a step ramp's first), and the first two windows compile the traffic draws'
  code paths on a fresh install (numba holds the GIL while it compiles: a 200 ms stall of the
  generator). On a worker thread: numba swallows an exception raised inside its compiler, so
  a SIGTERM or Ctrl-C (KeyboardInterrupt) would be lost if it came while the main thread
  compiled.
- The next window is generated on a worker thread: the GIL is handed back to the event loop
  within ``SWITCH_S`` (Python's default, 5 ms, would show in the latency).
- The cycle collector stops the interpreter while it walks every tracked object: in a process
  holding a large heap (a long test session, a notebook) a full collection takes tens of ms,
  which would show as send lag. Objects that exist now are frozen out of its reach and
  collection is off while the loop runs; what the run itself allocates is freed by reference
  counting (payloads, lists of ints).
- A cancellation the target's own signal handler caused is a KeyboardInterrupt to the
  caller; the handlers the loop replaced are put back (the loop's own are gone with it).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import itertools
import signal
import sys
import threading
from collections.abc import Callable, Coroutine, Iterable, Iterator
from typing import Any, TypeVar

__all__ = ["SWITCH_S", "run_send_loop"]

# The interpreter's thread switch interval during a live run.
SWITCH_S = 100e-6

Window = TypeVar("Window")


def run_send_loop(main: Callable[[Iterator[Window]], Coroutine[Any, Any, None]], traffic: Iterable[Window],
                  handlers: dict[int, Any], interrupted: Callable[[], bool]) -> None:
    """Run ``main(windows)`` to its end as the module docstring says. ``handlers``: the
    signal handlers the target's own replace while the loop runs (restored after);
    ``interrupted()``: whether a cancellation came from the target's signal handler."""
    windows = iter(traffic)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        ahead = pool.submit(lambda: list(itertools.islice(windows, 2))).result()
    switch, collecting = sys.getswitchinterval(), gc.isenabled()
    gc.collect()
    gc.freeze()
    gc.disable()
    sys.setswitchinterval(SWITCH_S)
    try:
        asyncio.run(main(itertools.chain(ahead, windows)))
    except asyncio.CancelledError:
        if not interrupted():  # not cancelled by a signal of the target's
            raise
        raise KeyboardInterrupt from None
    finally:
        sys.setswitchinterval(switch)
        gc.unfreeze()
        if collecting:
            gc.enable()
        if threading.current_thread() is threading.main_thread():
            for sig, handler in handlers.items():
                signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
