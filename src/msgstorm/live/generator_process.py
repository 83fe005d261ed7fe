"""Generator processes: shares of the traffic published by processes of their own, for a
load one Python thread cannot send.

Place in the pipeline: under ``live/target.py``. With ``[live.nats] generator_processes = N``
(core NATS, wire client) the generator's own process publishes the messages whose key is 0
modulo N, and process k (1 .. N-1), ``python -m msgstorm.live.generator_process SPEC K N URL
NAME TIMEOUT_S PARENT_PID``, those whose key is k modulo N. Each key's messages thus leave
from one connection, in order: the per-key order the delivery check judges is the broker's,
not a race between publishers. Every process makes the whole traffic from the scenario and
the run's seed (``SPEC``: both, pickled by the generator), so its share has the same ids,
keys and intended times as in the generator, and keeps the same schedule: it connects, says
``READY``, and starts when the generator writes the run's start (``START``: its
CLOCK_MONOTONIC time, the clock every process of the host shares). It stamps each burst's
send time on that clock and streams (ids, send times) back in ``consumer_process``'s
``RECEIPTS`` frames (a time and a count per burst), at least every ``FLUSH_S``. It stops at
the end of the schedule, or at once when its stdin closes (the run was interrupted), and
sends ``DONE`` once the server has had everything it sent (a PING answered) and all of it is
reported. Publishes made while its connection is down are dropped and counted in a
``client_error`` event, as the generator's own are. SIGINT and SIGTERM are the generator's
to act on (the process ignores them and is stopped through its stdin); the kernel ends the
process with its parent.
"""

from __future__ import annotations

import asyncio
import bisect
import concurrent.futures
import os
import pickle
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from msgstorm.live.consumer_process import (
    _NO_IDS,
    FLUSH_S,
    READY,
    START,
    ChildLink,
    ConsumerProcess,
    _frame,
    become_child,
    finish,
    open_pipes,
)
from msgstorm.live.drivers.base import STOP_GRACE_NS
from msgstorm.live.drivers.nats_wire import WireConnection, pack_pubs
from msgstorm.live.drivers.nats_wire import warm_up as warm_up_wire
from msgstorm.live.pacing import SPIN_NS
from msgstorm.live.payload import pack_payloads, slice_ends
from msgstorm.live.payload import warm_up as warm_up_payloads

__all__ = ["GeneratorProcess", "share_of", "write_spec"]

# Messages are staged (their PUB frames built) a slice at a time, as the generator's own
# loop (``payload.slice_ends``); the spin before a send time is ``live/pacing.py``'s ``SPIN_NS``.


def share_of(keys: np.ndarray, index: int, count: int) -> np.ndarray:
    """Positions of the messages (by key) that process ``index`` of ``count`` publishes."""
    return np.flatnonzero(keys % count == index)


def write_spec(path: Path, scenario: Any, seed: np.random.SeedSequence) -> None:
    """The scenario and the traffic seed the processes make their traffic from."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps((scenario, seed)))


# --- the process -------------------------------------------------------------------------------


class _Publisher(ChildLink):
    """The process's connection: each burst it sent is recorded (time, ids) for the parent."""

    def __init__(self, url: str, name: str, timeout_s: float, out: asyncio.WriteTransport) -> None:
        super().__init__(url, name, timeout_s, out)
        self.dropped = 0

    async def open(self) -> WireConnection:
        connection = WireConnection(self.url, self.name, None, self.on_lost)
        await connection.open(timeout_s=self.timeout_s)  # closes what it opened if it fails
        return connection

    async def publish(self, frames: memoryview, ids: np.ndarray, t: int) -> None:
        """Send one burst. One dropped while the connection is down is recorded as sent all
        the same (the generator's own are: they show as lost, and are counted)."""
        connection = self.connection
        if connection is None or not await connection.publish_frames(frames):
            self.dropped += ids.size
        self.record(t, ids)

    async def close(self) -> None:
        connection = self.connection
        if connection is not None and not connection.lost:
            try:
                await connection.ping(timeout_s=10.0)  # the server has had every publish
            except Exception:  # noqa: BLE001 - what was sent is reported either way
                pass
        self.close_connection()
        if self.dropped:
            self.event("client_error", {"dropped": self.dropped, "error": "publishes dropped while disconnected"})
        self.flush()


def _next_window(batches: Any) -> Any:
    return next(batches, None)


async def _generate(spec: Path, index: int, count: int, url: str, name: str, timeout_s: float,
                    out_fd: int) -> None:
    from msgstorm.traffic.generate import generate_traffic

    scenario, seed = pickle.loads(spec.read_bytes())
    warm_up_wire()
    warm_up_payloads()
    loop = asyncio.get_running_loop()
    started: asyncio.Future[int] = loop.create_future()
    out, closed = await open_pipes(out_fd, started)
    publisher = _Publisher(url, name, timeout_s, out)
    publisher.connection = await publisher.open()
    batches = iter(generate_traffic(scenario, seed, window_ns=scenario.run.window))
    # Windows are made on one worker thread, in order (the traffic is one generator); the
    # first is made before READY and the second is on its way, as the generator has them when
    # its clock starts: the first sends are not late.
    with concurrent.futures.ThreadPoolExecutor(1) as windows:
        first = await loop.run_in_executor(windows, _next_window, batches)
        upcoming = loop.run_in_executor(windows, _next_window, batches)
        out.write(_frame(READY))
        print(f"{name}: connected to {url}, share {index} of {count}", file=sys.stderr, flush=True)
        t0 = await started
        try:
            if t0 >= 0 and first is not None:
                await _send(scenario, index, count, t0, publisher, closed, batches, windows, first, upcoming)
        finally:
            upcoming.cancel()
    await publisher.close()
    await finish(out)


async def _send(scenario: Any, index: int, count: int, t0: int, publisher: _Publisher, closed: asyncio.Future[None],
                batches: Any, windows: concurrent.futures.Executor, batch: Any, upcoming: asyncio.Future[Any]) -> None:
    """The share's messages at their intended times, as ``LiveSender._send_bursts`` sends;
    returns at the end of the schedule or as soon as ``closed`` is done (stdin closed)."""
    loop = asyncio.get_running_loop()
    head = np.frombuffer(f"PUB {scenario.live.subject} ".encode(), dtype=np.uint8).copy()
    stop_at = scenario.run.duration
    burst = scenario.live.nats.burst
    now = time.monotonic_ns
    last_flush = now()
    while batch is not None:
        mine = share_of(batch.key, index, count)
        mine = mine[batch.t_intended[mine] < stop_at]
        start = 0
        for end in slice_ends(batch.size[mine]):
            chosen = mine[start:end]
            start = end
            ids = batch.msg_id[chosen]
            frames, ends = pack_pubs(head, *pack_payloads(ids, batch.key[chosen], batch.size[chosen]))
            edges = [0, *ends.tolist()]
            times = (batch.t_intended[chosen] + t0).tolist()
            data = frames.data
            i, n = 0, chosen.size
            while i < n:
                wait = times[i] - now()
                while wait > 0:
                    if wait > SPIN_NS:
                        if publisher.chunks or now() - last_flush > FLUSH_S * 1e9:
                            # A gap in the share: report what was sent, and every FLUSH_S that
                            # nothing more was (a marker without ids: the parent holds receipts
                            # it cannot place yet until this process has reported past them).
                            publisher.record(now(), _NO_IDS)
                            publisher.flush()
                            last_flush = now()
                        await asyncio.wait([closed], timeout=min(wait - SPIN_NS, FLUSH_S * 1e9) / 1e9)
                    else:
                        await asyncio.sleep(0)
                    if closed.done():
                        return
                    wait = times[i] - now()
                if closed.done():
                    return
                connection = publisher.connection
                if connection is not None and not connection.writable:
                    await connection.drained()  # before the stamp: the wait is send lag, not transport
                t = now()
                if t - t0 >= stop_at + STOP_GRACE_NS:
                    return  # the run has ended: the rest is the generator's shortfall (unsent), never sent late
                j = min(n, i + burst, max(i + 1, bisect.bisect_right(times, t, i, n)))
                await publisher.publish(data[edges[i]:edges[j]], ids[i:j], t)
                i = j
                if t - last_flush > FLUSH_S * 1e9:
                    publisher.flush()
                    last_flush = t
                    await asyncio.sleep(0)
        batch = await upcoming
        upcoming = loop.run_in_executor(windows, _next_window, batches)


def main(argv: list[str]) -> int:
    spec, index, count, url, name, timeout_s, parent = argv
    out_fd = become_child(parent)
    if out_fd is None:
        return 1
    asyncio.run(_generate(Path(spec), int(index), int(count), url, name, float(timeout_s), out_fd))
    return 0


# --- the generator's side -------------------------------------------------------------------------


class GeneratorProcess(ConsumerProcess):
    """One generator process, as the generator sees it: ``start`` returns once it is
    connected; ``begin`` gives it the run's start; what it sent arrives through
    ``on_receipts`` (index, ids, each burst's send time, each burst's count, 0); ``stop``
    ends it early, ``finished`` waits for the end of its schedule."""

    EARLY_END = "generator process ended early, without reporting all it sent"

    def __init__(self, index: int, count: int, name: str, url: str, spec: Path, log_dir: Path,
                 on_sent: Any, on_event: Any) -> None:
        super().__init__(index, name, url, "", log_dir, on_sent, on_event)
        self.count = count
        self.spec = spec

    def command(self, timeout_s: float) -> list[str]:
        return [sys.executable, "-m", "msgstorm.live.generator_process", str(self.spec), str(self.index),
                str(self.count), self.url, self.name, str(timeout_s), str(os.getpid())]

    def begin(self, t0: int) -> None:
        process = self.process
        if process is not None and process.stdin is not None and not process.stdin.closed:
            try:
                process.stdin.write(START.pack(t0))
                process.stdin.flush()
            except OSError:
                pass  # it has ended: on_end reports it

    async def finished(self) -> None:
        """Until it has sent its whole share and reported it (or ended)."""
        if self.done is not None:
            await asyncio.shield(self.done)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
