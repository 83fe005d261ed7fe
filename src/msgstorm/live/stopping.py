"""How a live run stops on SIGINT and SIGTERM: one rule for every live target.

Place in the pipeline: called by the one live run loop (``live/lifecycle.py``'s
``Lifecycle._main``, which ``LiveTarget``, ``ChainTarget`` and ``CometTarget`` share) as its
task starts on the event loop.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Mapping
from typing import Any, Protocol

__all__ = ["STOP_SIGNALS", "Interruptible", "stop_on_signals"]

# Signals that stop a run.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interruptible(Protocol):
    """A run that records whether a signal stopped it."""

    interrupted: bool


def stop_on_signals(run: Interruptible, handlers: Mapping[int, Any] | None = None) -> None:
    """SIGINT and SIGTERM, while the loop runs, cancel the current task (the run's): every
    await it is in ends with CancelledError and the ``finally`` blocks stop what was started.
    A handler that raises KeyboardInterrupt wherever the interpreter happens to be (the command
    line's) can land inside the event loop's own bookkeeping and lose the wake-up of the very
    task it stops, which then waits forever. A second signal goes to the handler ``handlers``
    held for it before the run (if any), else does nothing more. Off the main thread (signals
    reach the main thread's loop only), nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        return
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None

    def stop(sig: int) -> None:
        if not run.interrupted:
            run.interrupted = True
            task.cancel()
            return
        handler = (handlers or {}).get(sig)
        if callable(handler):
            handler(sig, None)

    for sig in STOP_SIGNALS:
        loop.add_signal_handler(sig, stop, sig)
