"""ZeroMQ sockets, brokerless, through pyzmq's asyncio API.

Place in the pipeline: a live driver (``drivers/base.py``). There is no server: the
publisher socket binds ``live.url`` (a ``tcp://host:port`` on this machine; loopback only
unless ``live.allow_remote``), or without it ``tcp://127.0.0.1:*``, a port the kernel picks
free at bind time (``endpoint`` says which). ``live.consumers`` sockets in this process
connect to it. ``[live.zmq].pattern`` chooses how they share the messages:

- ``push-pull``: PUSH binds, PULLs connect; each message goes to one consumer, round robin
  over those not full (``fanout`` False).
- ``pub-sub``: PUB binds, SUBs subscribe to everything; every consumer gets every message
  (``fanout`` True).

``connect`` returns only once every consumer has received a probe (an empty frame, which no
message is: payloads start with the target's 16-byte header), so no consumer joins late (the
slow-joiner problem) and no probe reaches the history.

At the high-water mark (``[live.zmq].hwm`` on the publisher's send and each consumer's
receive queue; 0 = unlimited; TCP's socket buffers hold more on top of it) the two patterns
part ways, and the history shows each:

- PUB drops the message, silently: it is ``lost`` in the history, as the delivery check sees.
- PUSH waits (the publish awaits, the event loop and the consumers run on), so the generator
  falls behind its schedule and the wait shows as send lag and latency, not loss. A PUSH no
  consumer drains for ``[live.zmq].send_timeout`` drops that message, reports a
  ``client_error``, and drops at once until a send gets through: a run stays bounded. The
  cause is said once a run: consumers that stop reading stall a PUSH again and again as
  sockets' buffers free a little room now and then (often on a busy machine), and each
  dropped message is counted (``lost`` in the history) without a report of its own.

History mapping (what each column means on this target): ``t_sent`` the send call began,
``t_received`` = ``t_sequenced`` = ``t_committed`` the first consumer's receipt, ``seq_no``
the order of first receipts, ``t_dequeued`` and ``block`` null. ZeroMQ keeps nothing and acks
nothing (``acks`` False; ``read_back`` returns None): a message dropped at a high-water mark
leaves no trace but its missing receipts. Publisher and consumers share one event loop, so a
receipt's time includes the wait for the loop.

Bursts (``[live.zmq] burst`` above 1, the default 1024): the target stages the messages it
sends next as columns, their payloads are laid out back to back in one compiled pass
(``live/payload.py``), and every message due when the generator wakes is sent in one pass
over the publisher's socket through pyzmq's blocking API without waiting (a frame each; no
future, no Python bytes object per message). A PUSH at its high-water mark falls back to the
awaited send for that message (the wait, the timeout and the drop are as above); a PUB drops
at its mark either way. A consumer hands what one wake-up took to the target as one array
of ids with one receipt time.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

# Absolute imports: ``zmq`` here is pyzmq, not this module (msgstorm.live.drivers.zmq).
import numpy as np
import zmq
import zmq.asyncio

from msgstorm.history.events import EventKind
from msgstorm.live.drivers.base import Callbacks, DriverState, OnEvent, OnReceipt
from msgstorm.live.drivers.capabilities import Capabilities, Sending
from msgstorm.live.payload import HEADER, StoredCopy, pack_payloads
from msgstorm.live.payload import warm_up as warm_up_payloads
from msgstorm.live.servers import ServerError, cannot_bind, require_loopback
from msgstorm.scenario.live import LiveSpec
from msgstorm.scenario.registry import LIVE_DRIVERS

__all__ = ["PROBE", "ZmqDriver"]

# Every payload carries the target's 16-byte header, so an empty frame is never a message.
PROBE = b""
BIND_ANY_PORT = "tcp://127.0.0.1:*"
# While connecting, a probe goes out this often until every consumer has seen one.
_PROBE_INTERVAL_S = 0.005
# A full PUSH in a burst looks for room this often (at most its send_timeout).
_ROOM_POLL_S = 0.0005
# A consumer taking what is queued never yields on its own: it yields after this many
# frames so the publisher keeps its schedule.
_YIELD_EVERY = 256


@dataclass
class _Staged:
    """Payloads laid out back to back; message i is ``data[ends[i]:ends[i + 1]]``."""

    count: int
    data: memoryview
    ends: list[int]
    taken: int = 0


@LIVE_DRIVERS.register("zmq")
class ZmqDriver:
    """One publisher socket and ``spec.consumers`` consumer sockets in one context;
    ``close`` closes them all (linger 0) and terminates the context, unbinding the port."""

    capabilities = Capabilities(sending=Sending(bursts=True), accounting=True)
    # ``--target tcp://host:port``: the endpoint msgstorm's publisher binds (there is no server).
    # No ``generator_names``: brokerless, it has no server a distributed run's generators share.
    url_schemes: ClassVar[dict[str, str]] = {"tcp": "tcp"}

    acks = False

    def __init__(self, spec: LiveSpec, run_dir: Path, on_event: OnEvent) -> None:
        self.spec = spec
        self.run_dir = run_dir
        self.on_event = on_event
        self.fanout = spec.zmq.pattern == "pub-sub"
        self.endpoint: str | None = None  # where the publisher is bound, once connected
        self.state = DriverState(on_event)  # counts, callbacks
        self._stalled = False  # a PUSH send timed out and none has gone through since
        self._said_stalled = False  # the stall's client_error is written (once a run)
        self._context: zmq.asyncio.Context | None = None
        self._publisher: zmq.asyncio.Socket | None = None
        self._sockets: list[zmq.asyncio.Socket] = []
        self._receivers: list[asyncio.Task[None]] = []
        self._probed: set[int] = set()
        self.burst = spec.zmq.burst
        self._staged: deque[_Staged] = deque()
        self._sender: zmq.Socket[bytes] | None = None  # the publisher through the blocking API

    def start_servers(self) -> list[dict[str, Any]]:
        url = self.spec.url
        if url is not None:
            try:
                port = urlsplit(url).port
            except ValueError:  # a port that is not a number
                port = None
            if urlsplit(url).scheme != "tcp" or port is None:
                raise ServerError(f"{url}: live.url for target \"zmq\" is the address the publisher binds: "
                                  "tcp://host:port, e.g. tcp://127.0.0.1:5555")
            require_loopback(url, self.spec.allow_remote)
        return []  # brokerless: the publisher binds in ``connect``

    def stop_servers(self) -> None:
        return None

    def _socket(self, kind: int) -> zmq.asyncio.Socket:
        assert self._context is not None
        sock = self._context.socket(kind)
        self._sockets.append(sock)
        sock.setsockopt(zmq.LINGER, 0)  # close drops what is queued: the run is over
        sock.setsockopt(zmq.IPV6, 1)  # so tcp://[::1]:port binds too
        return sock

    async def connect(self, callbacks: Callbacks) -> None:
        self.state.callbacks = callbacks
        hwm = self.spec.zmq.hwm
        self._context = zmq.asyncio.Context()
        publisher = self._publisher = self._socket(zmq.PUB if self.fanout else zmq.PUSH)
        publisher.setsockopt(zmq.SNDHWM, hwm)
        if not self.fanout:
            publisher.setsockopt(zmq.SNDTIMEO, max(self.spec.zmq.send_timeout // 1_000_000, 1))
        address = self.spec.url or BIND_ANY_PORT
        try:
            publisher.bind(address)
        except zmq.ZMQError as error:
            raise cannot_bind(address, error) from error
        self.endpoint = publisher.getsockopt_string(zmq.LAST_ENDPOINT)
        self._sender = zmq.Socket.shadow(publisher.underlying)
        if self.burst > 1:
            warm_up_payloads()
        for index in range(self.spec.consumers):
            consumer = self._socket(zmq.SUB if self.fanout else zmq.PULL)
            consumer.setsockopt(zmq.RCVHWM, hwm)
            if self.fanout:
                consumer.setsockopt(zmq.SUBSCRIBE, b"")
            consumer.connect(self.endpoint)
            self._receivers.append(asyncio.create_task(self._receive(index, consumer, callbacks.on_receipt)))
        await self._probe(publisher)

    async def _probe(self, publisher: zmq.asyncio.Socket) -> None:
        """Send probes until every consumer has received one: a SUB gets nothing published
        before its subscription reaches the PUB, a PULL nothing before it is connected."""
        timeout_s = self.spec.start_timeout / 1e9
        deadline = time.monotonic() + timeout_s
        while len(self._probed) < self.spec.consumers:
            if time.monotonic() > deadline:
                raise ServerError(f"{self.endpoint}: {self.spec.consumers - len(self._probed)} of "
                                  f"{self.spec.consumers} consumers received nothing within {timeout_s:g} s")
            try:
                await publisher.send(PROBE, zmq.DONTWAIT)
            except zmq.Again:
                pass  # PUSH with no consumer connected yet
            await asyncio.sleep(_PROBE_INTERVAL_S)

    async def _receive(self, index: int, consumer: zmq.asyncio.Socket, on_receipt: OnReceipt) -> None:
        # The same socket through the blocking API: once a receive wakes, what is queued is
        # taken without a future per frame (2.5 to 5 times the receipts per second, measured).
        queued: zmq.Socket[bytes] = zmq.Socket.shadow(consumer.underlying)
        read = HEADER.unpack_from
        try:
            while True:
                payload = await consumer.recv()
                taken = 0
                on_receipts = self.state.callbacks.on_receipts
                ids: list[int] = []
                unreadable = 0
                while True:
                    if payload == PROBE:
                        self._probed.add(index)
                    elif on_receipts is None:
                        on_receipt(index, payload)
                    elif len(payload) >= HEADER.size:
                        ids.append(read(payload)[0])
                    else:
                        unreadable += 1
                    taken += 1
                    if taken == _YIELD_EVERY:
                        break
                    try:
                        payload = queued.recv(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                if on_receipts is not None and (ids or unreadable):
                    on_receipts(index, np.array(ids, dtype=np.int64), unreadable)
                if taken == _YIELD_EVERY:
                    await asyncio.sleep(0)  # more may be queued: the publisher's turn first
        except Exception as error:  # noqa: BLE001 - reported: the history says why receipts stopped
            self.on_event(EventKind.CLIENT_ERROR, {"client": f"consumer-{index}",
                                                   "error": f"{type(error).__name__}: {error}"})

    async def publish(self, msg_id: int, payload: bytes) -> None:
        await self._send(payload)
        self.state.handed_over += 1  # sent or dropped: cancelled in its wait, it is neither

    async def _send(self, payload: bytes) -> None:
        assert self._publisher is not None
        try:
            # PUB never waits (it drops at the HWM); PUSH waits at most send_timeout.
            await self._publisher.send(payload, zmq.DONTWAIT if self._stalled else 0)
        except zmq.Again:
            self._drop_at_mark()
        else:
            self._stalled = False

    async def _room_within(self, timeout_s: float) -> bool:
        """Whether the publisher can take a message within ``timeout_s`` (its ZMQ_EVENTS, read
        every ``_ROOM_POLL_S``: pyzmq's asyncio poll for POLLOUT raises Again on a socket with
        a send timeout)."""
        publisher = self._publisher
        assert publisher is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        await asyncio.sleep(0)  # always a turn for the loop: a call that returns 0 never spins
        while not int(publisher.getsockopt(zmq.EVENTS)) & zmq.POLLOUT:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(_ROOM_POLL_S)
        return True

    def _drop_at_mark(self) -> None:
        """A PUSH send given up at the high-water mark; the first of the run is said."""
        self.state.lost_publishes += 1  # a PUSH send given up (a PUB drops at its mark unseen)
        self._stalled = True
        if not self._said_stalled:
            self._said_stalled = True
            self.on_event(EventKind.CLIENT_ERROR, {
                "client": "publisher",
                "error": f"no consumer took a message for {self.spec.zmq.send_timeout / 1e9:g} s at the "
                         f"high-water mark ({self.spec.zmq.hwm}); dropping until one does"})

    def stage(self, msg_ids: np.ndarray, keys: np.ndarray, sizes: np.ndarray) -> None:
        """Messages to publish next (``Sending.bursts``): their payloads are laid out now."""
        data, ends = pack_payloads(msg_ids, keys, sizes)
        self._staged.append(_Staged(msg_ids.size, memoryview(data.data), [0, *ends.tolist()]))

    async def publish_staged(self, count: int) -> int | None:
        """Send the next ``count`` staged messages, a frame each, without waiting while the
        socket takes them. A PUSH at its high-water mark waits for room (at most
        ``send_timeout``) and returns how many it took: the one that waited is sent when the
        target hands it over again (with a send time after the wait), or, when no room came,
        dropped and counted. A PUSH that is dropping (timed out) tries each once, no wait."""
        sender = self._sender
        assert sender is not None
        send, again = sender.send, zmq.Again
        done = 0
        while count > 0:
            staged = self._staged[0]
            first = staged.taken
            last = min(staged.count, first + count)
            data, ends = staged.data, staged.ends
            i = first
            waited = False
            try:
                while i < last:
                    if self._stalled:  # tried once each, without a wait, until one goes through
                        await self._send(bytes(data[ends[i]:ends[i + 1]]))  # it goes, or is dropped
                        i += 1
                        continue
                    try:
                        while i < last:
                            send(data[ends[i]:ends[i + 1]], zmq.NOBLOCK)
                            i += 1
                    except again:
                        # PUSH at its high-water mark: wait for room, as ``publish`` does.
                        if not await self._room_within(self.spec.zmq.send_timeout / 1e9):
                            self._drop_at_mark()
                            i += 1
                        waited = True
                        break
            finally:
                self.state.handed_over += i - first  # cancelled in a wait too: what went, or was dropped
            staged.taken = i
            if i == staged.count:
                self._staged.popleft()
            done += i - first
            count -= i - first
            if waited:
                return done
        return None

    async def flush(self) -> None:
        return None  # nothing is buffered in the client: the sockets' queues are ZeroMQ's

    async def read_back(self) -> StoredCopy | None:
        return None  # ZeroMQ stores nothing

    async def close(self) -> None:
        for task in self._receivers:
            task.cancel()
        await asyncio.gather(*self._receivers, return_exceptions=True)
        self._receivers = []
        for sock in self._sockets:
            sock.close(linger=0)
        self._sockets = []
        self._publisher = None
        if self._context is not None:
            self._context.term()  # returns at once: every socket is closed with linger 0
            self._context = None
