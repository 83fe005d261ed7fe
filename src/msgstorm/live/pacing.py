"""When an open-loop sender sends: how it waits for a send time, and which rows leave together.

Place in the pipeline: under the live targets' send loops (``live/chain/target.py``), between
the traffic's intended times and the writes. Kept apart from the I/O so that the rule can be
checked on a fake clock (``tests/test_live_pacing.py``).

Waiting (``wait_until``), in three stretches before a send time:

- far from it, the sender sleeps until ``SPIN_NS`` before it: asyncio's timers wake up to
  about a millisecond late (they round to the loop's clock, and the kernel hands the
  thread a core when it can);
- within ``SPIN_NS``, it yields to the event loop, turn after turn, so the answers of
  earlier sends and the chain's reads run meanwhile;
- within ``HOLD_NS``, it holds the thread without yielding: a callback that starts then
  (parsing a block) would run past the send time. The cost is bounded: at most ``HOLD_NS``
  of CPU a send (``HOLD_NS`` x the send rate a second: 5% of a core at 500 sends/s).

Which rows (``due_through``): every row due by the time the sender woke leaves in one
request, at most ``batch`` of them and at least the one it waited for.
"""

from __future__ import annotations

import bisect
from collections.abc import Awaitable, Callable

__all__ = ["HOLD_NS", "SPIN_NS", "due_through", "wait_step", "wait_until"]

SPIN_NS = 1_200_000
HOLD_NS = 100_000


def wait_step(wait_ns: int) -> float | None:
    """What a sender ``wait_ns`` before its send time does now: sleep that many seconds
    (0.0: a yield to the event loop), or None: hold the thread (check the clock again)."""
    if wait_ns > SPIN_NS:
        return (wait_ns - SPIN_NS) / 1e9
    return 0.0 if wait_ns > HOLD_NS else None


async def wait_until(due_ns: int, now: Callable[[], int], sleep: Callable[[float], Awaitable[None]]) -> int:
    """Wait until ``now()`` reaches ``due_ns`` (``wait_step``'s stretches); the time it did."""
    t = now()
    while t < due_ns:
        step = wait_step(due_ns - t)
        if step is not None:
            await sleep(step)
        t = now()
    return t


def due_through(times: list[int], i: int, end: int, now_ns: int, batch: int) -> int:
    """The end (exclusive) of the rows sent together from row ``i`` at ``now_ns``: those of
    ``times[i:end]`` (sorted) due by then, at most ``batch``, at least row ``i``."""
    return min(end, i + batch, max(i + 1, bisect.bisect_right(times, now_ns, i, end)))
