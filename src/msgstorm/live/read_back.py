"""A read-back's bounded retry: the run's own read of what a broker stored, started again
when its connection drops.

Place in the pipeline: under the drivers' ``read_back`` (RabbitMQ's audit queue or stream,
Redis Streams' pages, JetStream's stream and each node's copy), after the run and before
the history is written (``live/target.py``). A read-back is the measurement's audit: a
connection reset while it reads (a loaded machine, a node still settling after a fault)
must not turn into a failed audit. So a read that fails on a dropped connection is made
again, from its beginning or from the page it had reached, at most ``READ_BACK_ATTEMPTS``
times, ``RETRY_PAUSE_S`` apart; any other failure (a timeout too), or the last attempt's,
is raised for the driver to say (a ``client_error`` of client ``read_back``). Each read must
be one that can be made twice: a queue read without acks (what it took goes back when its connection
closes), a stream read from an offset, a range read by id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

__all__ = ["READ_BACK_ATTEMPTS", "RETRY_PAUSE_S", "dropped_connection", "read_with_retries"]

READ_BACK_ATTEMPTS = 3
RETRY_PAUSE_S = 0.2

Read = TypeVar("Read")


def dropped_connection(error: BaseException, dropped: tuple[type[BaseException], ...]) -> bool:
    """Whether ``error`` (one of the ``dropped`` types) says the read's connection went: not
    a timeout (a server that does not answer would cost each attempt the whole wait; the
    builtin TimeoutError is an OSError), nor a cancellation of the task itself (a signal
    stopping the run; aiormq cancels what waits on a lost connection)."""
    task = asyncio.current_task()
    cancelled = (isinstance(error, asyncio.CancelledError) and task is not None
                 and task.cancelling() > 0)
    return isinstance(error, dropped) and not isinstance(error, TimeoutError) and not cancelled


async def read_with_retries(read: Callable[[], Awaitable[Read]],
                            dropped: tuple[type[BaseException], ...],
                            attempts: int = READ_BACK_ATTEMPTS) -> Read:
    """``await read()``, made again (a new call) after a dropped connection (an error of a
    ``dropped`` type, ``dropped_connection``), at most ``attempts`` calls in all; the last
    error, or any other, is raised as it came."""
    for attempt in range(1, attempts + 1):
        try:
            return await read()
        except dropped as error:
            if attempt == attempts or not dropped_connection(error, dropped):
                raise
        await asyncio.sleep(RETRY_PAUSE_S)
    raise AssertionError("unreachable: the last attempt returns or raises")
