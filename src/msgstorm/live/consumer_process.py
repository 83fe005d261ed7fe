"""Core-NATS consumers in processes of their own, for a generator whose one thread cannot
also read every message.

Place in the pipeline: under ``drivers/nats.py``. With ``[live.nats] consumer_processes =
true`` each consumer runs as ``python -m msgstorm.live.consumer_process URL SUBJECT NAME
TIMEOUT_S PARENT_PID``: it subscribes with the wire client (``nats_wire.WireConnection``), stamps each
read with ``time.monotonic_ns()`` (CLOCK_MONOTONIC: one clock for every process of the host,
the generator's included, so end-to-end latency still needs no clock sync) and streams what it
received to its parent on its stdout, in frames:

- ``READY``: subscribed (the server has answered a PING after the SUB), nothing sent yet;
- ``RECEIPTS``: ``<reads> <ids> <unreadable>`` (uint32 each), then each read's time and how
  many ids it brought (int64 each), then the ids (int64): every ``FLUSH_S``, its last read
  one of no ids stamped when the frame is made (so the parent knows every read before that
  time has come, even from a consumer that receives nothing: ``ConsumerProcess.reported_until``);
- ``EVENT``: JSON ``{"kind", "detail"}`` (disconnected, reconnected, client_error), the
  detail's ``at_wall_ns`` when it happened (``time.time_ns``);
- ``DONE``: everything received has been sent.

The parent (``ConsumerProcess``) closes the child's stdin to stop it; the child then sends what
it still holds, ``DONE``, and exits. Ctrl-C, which a terminal sends to the whole process
group, and a SIGTERM sent to the group are the parent's to act on: the child ignores both
and is stopped through its stdin like at any other end. The kernel kills a child whose parent dies (``PR_SET_PDEATHSIG``, set
by the child itself, which then checks that its parent is still the one that started it), so
even a SIGKILLed run leaves none behind. A child that ends without ``DONE`` loses what it had
not sent yet (at most its last ``FLUSH_S``), and the parent reports it as a ``client_error``
event. Why frames by hand: they carry numpy arrays as they are, a few bytes
of header per read, where a pickle per message would cost the consumer more than the read.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from msgstorm.live.drivers.base import OnTimedReceipts
from msgstorm.live.drivers.nats_wire import WireConnection
from msgstorm.live.drivers.nats_wire import warm_up as warm_up_wire
from msgstorm.live.payload import read_ids
from msgstorm.live.payload import warm_up as warm_up_payloads
from msgstorm.processes import die_with_parent

__all__ = ["ENDED", "FLUSH_S", "START", "ChildLink", "ConsumerProcess", "OnTimedReceipts", "become_child", "finish", "open_pipes"]

OnEvent = Callable[[str, dict[str, Any]], None]

READY, RECEIPTS, EVENT, DONE = range(4)
_HEADER = struct.Struct("<BI")  # frame kind, payload bytes
_COUNTS = struct.Struct("<III")  # reads, ids, unreadable
START = struct.Struct("<q")  # the run's start, CLOCK_MONOTONIC ns (the parent to a generator process)
# The child sends what it received at least this often (and a child that dies loses at most this).
FLUSH_S = 0.02
# The child tries a lost connection again this often.
RECONNECT_S = 0.1
# A frame's payload is at most this large: a flush of more ids is split.
_MAX_IDS = 1 << 20
_NO_IDS = np.zeros(0, dtype=np.int64)
# ``ConsumerProcess.reported_until`` of a process that has ended: nothing more will come.
ENDED = np.iinfo(np.int64).max


def _frame(kind: int, payload: bytes = b"") -> bytes:
    return _HEADER.pack(kind, len(payload)) + payload


def _receipts_frame(times: list[int], chunks: list[np.ndarray], unreadable: int) -> bytes:
    counts = np.fromiter((chunk.size for chunk in chunks), dtype=np.int64, count=len(chunks))
    ids = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
    payload = b"".join((_COUNTS.pack(len(times), ids.size, unreadable), np.asarray(times, dtype=np.int64).tobytes(),
                        counts.tobytes(), ids.tobytes()))
    return _frame(RECEIPTS, payload)


def parse_receipts(payload: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """A ``RECEIPTS`` frame's payload as (ids, each read's time, each read's count of ids,
    unreadable); the arrays are read-only views of ``payload``."""
    reads, count, unreadable = _COUNTS.unpack_from(payload)
    at = _COUNTS.size
    times = np.frombuffer(payload, dtype=np.int64, count=reads, offset=at)
    counts = np.frombuffer(payload, dtype=np.int64, count=reads, offset=at + 8 * reads)
    ids = np.frombuffer(payload, dtype=np.int64, count=count, offset=at + 16 * reads)
    return ids, times, counts, unreadable


# --- the child ---------------------------------------------------------------------------------


class _Stdin(asyncio.Protocol):
    """What the parent says on the child's stdin: ``START`` (when ``started`` is given: its
    value, -1 if the pipe closed first), then the pipe closed (``closed``), which ends it."""

    def __init__(self, closed: asyncio.Future[None], started: asyncio.Future[int] | None) -> None:
        self.closed, self.started = closed, started
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.started is not None and len(self.buffer) >= START.size and not self.started.done():
            self.started.set_result(START.unpack_from(self.buffer)[0])

    def connection_lost(self, exc: Exception | None) -> None:
        if self.started is not None and not self.started.done():
            self.started.set_result(-1)
        if not self.closed.done():
            self.closed.set_result(None)


class ChildLink:
    """A child process's connection to the server and its stdout to the parent: what it
    recorded (a time and ids per read or burst) goes up as ``RECEIPTS`` frames, connection
    trouble as ``EVENT`` frames, and a lost connection is opened again every
    ``RECONNECT_S``, one attempt at a time, until ``close_connection``. ``open`` makes a
    connection ready for use."""

    def __init__(self, url: str, name: str, timeout_s: float, out: asyncio.WriteTransport) -> None:
        self.url, self.name, self.timeout_s = url, name, timeout_s
        self.out = out
        self.times: list[int] = []
        self.chunks: list[np.ndarray] = []
        self.unreadable = 0
        self.closing = False
        self.connection: WireConnection | None = None
        self.reconnect: asyncio.Task[None] | None = None

    async def open(self) -> WireConnection:
        raise NotImplementedError

    def record(self, t: int, ids: np.ndarray) -> None:
        self.times.append(t)
        self.chunks.append(ids)

    def flush(self) -> None:
        if self.chunks or self.unreadable:
            self.out.write(_receipts_frame(self.times, self.chunks, self.unreadable))
            self.times, self.chunks, self.unreadable = [], [], 0

    def event(self, kind: str, detail: dict[str, Any]) -> None:
        self.flush()  # what was recorded before the event, as it happened
        # Stamped here (``at_wall_ns``), not when the parent reads the frame: a parent behind
        # reads a disconnect and its reconnection together, and would stamp both alike.
        detail = {"client": self.name, **detail, "at_wall_ns": time.time_ns()}
        self.out.write(_frame(EVENT, json.dumps({"kind": kind, "detail": detail}).encode()))

    def on_lost(self, connection: WireConnection) -> None:
        # A connection still being opened that drops makes its open() raise, and the loop
        # that opened it tries again: only the connection in use starts a reconnection.
        if self.closing or connection is not self.connection:
            return
        detail = connection.lost_detail()
        detail.pop("client")  # ``event`` names this process's client
        self.event("disconnected", detail)
        if self.reconnect is None or self.reconnect.done():
            self.reconnect = asyncio.get_running_loop().create_task(self._reconnect())

    async def _reconnect(self) -> None:
        while not self.closing:
            await asyncio.sleep(RECONNECT_S)
            try:
                connection = await self.open()
            except Exception:  # noqa: BLE001 - any failure: try again until the run ends
                continue
            if self.closing:
                connection.close()
                return
            self.connection = connection
            self.event("reconnected", {})
            return

    def close_connection(self) -> None:
        """No more reconnecting; the connection closed and its errors reported."""
        self.closing = True
        if self.reconnect is not None:
            self.reconnect.cancel()
        if self.connection is not None:
            self.connection.close()
            for error in self.connection.errors:
                self.event("client_error", {"error": error})


class _Child(ChildLink):
    def __init__(self, url: str, subject: str, name: str, timeout_s: float, out: asyncio.WriteTransport) -> None:
        super().__init__(url, name, timeout_s, out)
        self.subject = subject
        self.held = 0

    def on_frames(self, data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> None:
        t = time.monotonic_ns()
        ids = read_ids(data, starts, lengths)
        self.unreadable += starts.size - ids.size
        if ids.size:
            self.record(t, ids)
            self.held += ids.size
            if self.held >= _MAX_IDS:
                self.flush()

    def flush(self) -> None:
        super().flush()
        self.held = 0

    async def open(self) -> WireConnection:
        connection = WireConnection(self.url, self.name, self.on_frames, self.on_lost)
        try:
            await connection.open(timeout_s=self.timeout_s)
            connection.subscribe(self.subject, 1)
            await connection.ping(timeout_s=self.timeout_s)  # subscribed before the parent sends anything
        except BaseException:
            connection.close()  # half open (subscribed, no PONG): it must not deliver beside a later one
            raise
        return connection

    def close(self) -> None:
        self.close_connection()
        self.flush()


async def open_pipes(out_fd: int, started: asyncio.Future[int] | None = None
                     ) -> tuple[asyncio.WriteTransport, asyncio.Future[None]]:
    """A child's frames out (``out_fd``, its original stdout) and its stdin in; the future
    returned is done once the parent closes stdin (or dies), ``started`` once it says START."""
    loop = asyncio.get_running_loop()
    out, _ = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(out_fd, "wb", buffering=0))
    closed: asyncio.Future[None] = loop.create_future()
    await loop.connect_read_pipe(lambda: _Stdin(closed, started), sys.stdin.buffer)
    return out, closed


async def finish(out: asyncio.WriteTransport) -> None:
    """``DONE``, once everything written before has left for the parent."""
    out.write(_frame(DONE))
    while out.get_write_buffer_size():
        await asyncio.sleep(0.001)
    out.close()


def become_child(parent: str) -> int | None:
    """What a child process does first: ask the kernel to end it with its parent (None if
    the parent has already died), leave Ctrl-C and SIGTERM to the parent (which stops it
    through its stdin, so that nothing it holds is lost), and keep its original stdout for
    the frames (returned) while anything else printed goes to stderr (its log)."""
    die_with_parent()
    if os.getppid() != int(parent):  # the parent died before the kernel was asked to say so
        return None
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.SIG_IGN)
    out_fd = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return out_fd


async def _consume(url: str, subject: str, name: str, timeout_s: float, out_fd: int) -> None:
    warm_up_wire()  # compiled (loaded from numba's cache) before anything arrives
    warm_up_payloads()
    out, closed = await open_pipes(out_fd)
    child = _Child(url, subject, name, timeout_s, out)
    child.connection = await child.open()
    out.write(_frame(READY))
    print(f"{name}: subscribed to {subject} on {url}", file=sys.stderr, flush=True)
    while not closed.done():
        await asyncio.wait([closed], timeout=FLUSH_S)
        child.record(time.monotonic_ns(), _NO_IDS)  # every read before now is in this frame
        child.flush()
    child.close()
    await finish(out)


def main(argv: list[str]) -> int:
    url, subject, name, timeout_s, parent = argv
    out_fd = become_child(parent)
    if out_fd is None:
        return 1
    asyncio.run(_consume(url, subject, name, float(timeout_s), out_fd))
    return 0


# --- the parent --------------------------------------------------------------------------------


class _Frames(asyncio.Protocol):
    """The parent's end of a child's stdout: frames in, calls out."""

    def __init__(self, owner: ConsumerProcess) -> None:
        self.owner = owner
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        at = 0
        while len(buffer) - at >= _HEADER.size:
            kind, size = _HEADER.unpack_from(buffer, at)
            if len(buffer) - at - _HEADER.size < size:
                break
            start = at + _HEADER.size
            self.owner.on_frame(kind, bytes(buffer[start:start + size]))
            at = start + size
        del buffer[:at]

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.on_end()


class ConsumerProcess:
    """One consumer process, as the driver sees it: ``start`` returns once it is subscribed;
    its receipts arrive through ``on_receipts`` while the parent's loop runs; ``stop`` asks
    it to finish and waits for everything it received; ``kill`` ends it at once."""

    def __init__(self, index: int, name: str, url: str, subject: str, log_dir: Path,
                 on_receipts: OnTimedReceipts, on_event: OnEvent) -> None:
        self.index, self.name, self.url, self.subject = index, name, url, subject
        self.log_dir = log_dir
        self.on_receipts = on_receipts
        self.on_event = on_event
        self.process: subprocess.Popen[bytes] | None = None
        self.ready: asyncio.Future[None] | None = None
        self.done: asyncio.Future[None] | None = None
        self.received = 0
        # Every read the child stamped before this (CLOCK_MONOTONIC ns) has been handed over
        # (-1: nothing yet; ``ENDED`` once the child is done).
        self.reported_until = -1

    EARLY_END = "consumer process ended early, without sending all it received"

    def command(self, timeout_s: float) -> list[str]:
        """The child's command line."""
        return [sys.executable, "-m", "msgstorm.live.consumer_process", self.url, self.subject, self.name,
                str(timeout_s), str(os.getpid())]

    async def start(self, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        self.ready, self.done = loop.create_future(), loop.create_future()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"{self.name}.log", "ab") as log:
            self.process = subprocess.Popen(self.command(timeout_s), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=log)
        assert self.process.stdout is not None
        await loop.connect_read_pipe(lambda: _Frames(self), self.process.stdout)
        try:
            # Starting Python, numpy and the compiled parser in a fresh process takes a while.
            await asyncio.wait_for(asyncio.shield(self.ready), timeout_s + 30.0)
        except TimeoutError:
            self.kill()
            raise RuntimeError(f"{self.name}: the process did not get ready within "
                               f"{timeout_s + 30.0:g} s; see {self.log_dir / (self.name + '.log')}") from None

    def on_frame(self, kind: int, payload: bytes) -> None:
        if kind == RECEIPTS:
            ids, times, counts, unreadable = parse_receipts(payload)
            self.received += ids.size
            self.on_receipts(self.index, ids, times, counts, unreadable)
            if times.size:
                self.reported_until = max(self.reported_until, int(times[-1]))
        elif kind == EVENT:
            event = json.loads(bytes(payload))
            self.on_event(event["kind"], event["detail"])
        elif kind == READY and self.ready is not None and not self.ready.done():
            self.ready.set_result(None)
        elif kind == DONE and self.done is not None and not self.done.done():
            self.reported_until = ENDED
            self.done.set_result(None)

    def on_end(self) -> None:
        """The child's stdout closed: after DONE, or because the child died."""
        finished = self.done is not None and self.done.done()
        self.reported_until = ENDED  # a dead child sends nothing more
        if not finished:
            # Its stdout can close before the process is reaped: the exit code may not be known yet.
            code = self.process.poll() if self.process is not None else None
            self.on_event("client_error", {
                "client": self.name, "error": self.EARLY_END
                + ("" if code is None else f" (exit code {code})")})
            if self.done is not None:
                self.done.set_result(None)
        if self.ready is not None and not self.ready.done():
            self.ready.set_exception(RuntimeError(f"{self.name}: the process ended before it got ready; "
                                                  f"see {self.log_dir / (self.name + '.log')}"))

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Close the child's stdin; wait for its last receipts and its exit."""
        process = self.process
        if process is None:
            return
        if process.stdin is not None and not process.stdin.closed:
            try:
                process.stdin.close()
            except OSError:
                pass
        if self.done is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self.done), timeout_s)
            except TimeoutError:
                pass
        deadline = time.monotonic() + timeout_s
        while process.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        self.kill()

    def kill(self) -> None:
        """End the child now (a no-op once it has exited); reaps it."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdin is not None and not process.stdin.closed:
            try:
                process.stdin.close()
            except OSError:
                pass


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
