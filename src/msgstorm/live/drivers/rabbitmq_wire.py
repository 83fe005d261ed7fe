"""AMQP 0-9-1 publishing on asyncio streams: msgstorm's own publisher for the ``rabbitmq`` driver.

Place in the pipeline: under ``drivers/rabbitmq.py`` (``[live.rabbitmq] client = "wire"``),
which keeps the consumers on aiormq and hands its publishes to ``WirePublisher``. aiormq's
``basic_publish`` makes a task per message, with a lock, a frame queue and a confirmation
future each: a plain aio-pika publish loop moved 1,500-2,500 persistent messages/s to a quorum
queue on this project's 2-core machine, and msgstorm on aiormq 1.5-1.6x that
(``docs/performance.md``). Here the publishes due at once are framed together (Basic.Publish
method, content header, body frames) and leave in one write; confirms are cut from one read
buffer and mapped to the publishes by delivery tag (tag 1 is the channel's first publish).

What is framed by hand and what by pamqp (installed with aiormq), measured on the 2-core
machine (``timeit``, a 128-byte persistent publish): pamqp's ``frame.marshal`` of the three
frames of a publish takes 13 us (load average 2.6), and its ``frame.unmarshal`` of a
Basic.Ack 3.7 us; the publish framed here (a method frame made once per exchange, a content
header once per body size, the body frame's 7-byte head) takes about 1 us with its share of
the burst's join, and an ack is read in 0.4 us with one ``struct`` unpack (both at load
average 14). At 10,000 publishes a second pamqp's framing alone would take 13% of the core
the generator's loop runs on, its send-lag budget included: so the publish and the confirms
(and heartbeats) are framed here; the handshake, declarations and closes, a few frames a
connection, go through pamqp.

Only what the driver uses is here: the protocol header, Connection.Start / StartOk (PLAIN,
the URL's user and password, ``guest`` otherwise) / Tune / TuneOk (the server's frame_max
and heartbeat, heartbeats sent every half interval and answered) / Open / OpenOk,
Channel.Open, Confirm.Select, Exchange.Declare, Queue.Declare, Queue.Bind, Basic.Publish,
Basic.Ack and Basic.Nack (the ``multiple`` flag), Connection.Close and Channel.Close either
way (one from the server ends the connection: ``AmqpClosed`` names its code and text).
``tests/test_live_rabbitmq.py`` checks the framing byte by byte and against a node.
"""

from __future__ import annotations

import asyncio
import struct
from collections import deque
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np
from pamqp import commands, frame
from pamqp.base import Frame
from pamqp.common import FieldTable

from msgstorm.history.events import EventKind
from msgstorm.live.drivers.base import DriverState, OnEvent
from msgstorm.live.drivers.framed import FramedStream
from msgstorm.live.payload import Staged, pack_payloads
from msgstorm.live.payload import warm_up as warm_up_payloads

__all__ = [
    "FRAME_END", "PROTOCOL_HEADER", "AmqpClosed", "Confirms", "PublishFramer", "WirePublisher", "declarations",
    "frames", "read_confirm"]

FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT = 1, 2, 3, 8
FRAME_END = 0xCE
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
CHANNEL = 1  # the publisher's one channel
HEARTBEAT_FRAME = bytes((FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END))
# A frame_max of 0 (no limit) from the server: frames of at most this.
DEFAULT_FRAME_MAX = 131_072
# The publisher waits for the kernel to take its writes once this much is buffered.
WRITE_HIGH_BYTES = 4 << 20
_FRAME_HEAD = struct.Struct(">BHI")  # type, channel, payload size
_METHOD_ID = struct.Struct(">HH")  # class, method
_CONFIRM = struct.Struct(">HHQB")  # class, method, delivery tag, bits
_BODY_HEAD = struct.Struct(">BHI")
_BASIC, _ACK, _NACK = 60, 80, 120
_CONNECTION_CLOSE, _CHANNEL_CLOSE = (10, 50), (20, 40)
_PERSISTENT_FLAGS = 0x1000  # Basic property flags: delivery-mode only


class AmqpClosed(ConnectionError):
    """The server closed the connection or the channel, or sent what this client cannot read:
    the connection is done."""


def _frame(kind: int, channel: int, payload: bytes) -> bytes:
    return _FRAME_HEAD.pack(kind, channel, len(payload)) + payload + bytes((FRAME_END,))


def _shortstr(text: str) -> bytes:
    data = text.encode()
    if len(data) > 255:
        raise ValueError(f"an AMQP short string is at most 255 bytes, not {len(data)}: {text[:40]!r}...")
    return bytes((len(data),)) + data


class PublishFramer:
    """The frames of persistent publishes to ``exchange`` on ``channel``: the Basic.Publish
    method frame (made once), a content header per body size (delivery mode 2; made once per
    size) and the body, in frames of at most ``frame_max`` bytes (the server's, from Tune)."""

    def __init__(self, exchange: str, routing_key: str = "", channel: int = CHANNEL,
                 frame_max: int = DEFAULT_FRAME_MAX) -> None:
        self.channel = channel
        # ticket 0, exchange, routing key, mandatory and immediate off.
        self.method = _frame(FRAME_METHOD, channel, _METHOD_ID.pack(_BASIC, 40) + b"\x00\x00"
                             + _shortstr(exchange) + _shortstr(routing_key) + b"\x00")
        self.body_max = (frame_max or DEFAULT_FRAME_MAX) - 8  # a frame's head and end are 8 bytes
        self._headers: dict[int, bytes] = {}

    def header(self, size: int) -> bytes:
        """The content header frame of a body of ``size`` bytes."""
        head = self._headers.get(size)
        if head is None:
            head = self._headers[size] = _frame(FRAME_HEADER, self.channel, struct.pack(
                ">HHQHB", _BASIC, 0, size, _PERSISTENT_FLAGS, 2))
        return head

    def add(self, parts: list[bytes | memoryview], body: bytes | memoryview) -> None:
        """Append one publish's frames to ``parts`` (to be joined and written at once)."""
        size = len(body)
        parts += (self.method, self.header(size))
        step, at = self.body_max, 0
        while at < size:
            chunk = body[at:at + step]
            parts += (_BODY_HEAD.pack(FRAME_BODY, self.channel, len(chunk)), chunk, b"\xce")
            at += step

    def publish(self, body: bytes | memoryview) -> bytes:
        """One publish's frames."""
        parts: list[bytes | memoryview] = []
        self.add(parts, body)
        return b"".join(parts)


def frames(buffer: bytearray) -> list[tuple[int, int, bytes]]:
    """The whole frames at the front of ``buffer`` as (type, channel, payload), removed from
    it; an incomplete last frame stays for the next read. AmqpClosed when a frame does not
    end with its end octet (the stream is out of step)."""
    found: list[tuple[int, int, bytes]] = []
    at, end = 0, len(buffer)
    head = _FRAME_HEAD.unpack_from
    while at + 8 <= end:
        kind, channel, size = head(buffer, at)
        stop = at + 7 + size
        if stop >= end:
            break
        if buffer[stop] != FRAME_END:
            raise AmqpClosed(f"a frame (type {kind}, {size} B) without its end octet: the stream is out of step")
        found.append((kind, channel, bytes(buffer[at + 7:stop])))
        at = stop + 1
    del buffer[:at]
    return found


def read_confirm(payload: bytes) -> tuple[bool, int, bool] | None:
    """(acked, delivery tag, multiple) of a Basic.Ack or Basic.Nack method payload; None for
    any other method."""
    if len(payload) < _CONFIRM.size:
        return None
    class_id, method_id, tag, bits = _CONFIRM.unpack_from(payload)
    if class_id != _BASIC or method_id not in (_ACK, _NACK):
        return None
    return method_id == _ACK, tag, bool(bits & 1)


class Confirms:
    """Publishes awaiting their confirm, by delivery tag: the channel numbers its publishes
    1, 2, ... in the order written (Confirm.Select starts the count), so ``sent`` appends and
    a confirm of tag t settles the publish t - 1 places after the channel's first."""

    def __init__(self) -> None:
        self._ids: deque[int] = deque()  # msg_id of tag ``_base``, ``_base`` + 1, ...; -1 once settled
        self._base = 1
        self.outstanding = 0

    def reset(self) -> int:
        """A new channel (a new connection): its tags start at 1 again. Returns how many were
        still awaiting their confirm (they will not get one)."""
        lost = self.outstanding
        self._ids.clear()
        self._base = 1
        self.outstanding = 0
        return lost

    def sent(self, msg_ids: Sequence[int]) -> None:
        self._ids.extend(msg_ids)
        self.outstanding += len(msg_ids)

    def settle(self, tag: int, multiple: bool) -> list[int]:
        """The msg_ids a confirm of ``tag`` settles, in tag order (those already settled and
        tags never sent are skipped)."""
        ids = self._ids
        settled: list[int] = []
        if multiple:
            while ids and self._base <= tag:
                msg_id = ids.popleft()
                self._base += 1
                if msg_id >= 0:
                    settled.append(msg_id)
        else:
            at = tag - self._base
            if 0 <= at < len(ids) and ids[at] >= 0:
                settled.append(ids[at])
                ids[at] = -1
            while ids and ids[0] < 0:
                ids.popleft()
                self._base += 1
        self.outstanding -= len(settled)
        return settled


def declarations(exchange: str, queues: Sequence[str], arguments: dict[str, Any]) -> list[Frame]:
    """The methods that make the fanout ``exchange`` and each durable queue bound to it (as
    the aiormq path's ``_declare``)."""
    methods: list[Frame] = [commands.Exchange.Declare(exchange=exchange, exchange_type="fanout", durable=True)]
    for name in queues:
        methods += [commands.Queue.Declare(queue=name, durable=True, arguments=arguments),
                    commands.Queue.Bind(queue=name, exchange=exchange)]
    return methods


def _credentials(url: str) -> tuple[str, int, str, str, str]:
    """(host, port, user, password, virtual host) of an ``amqp://`` URL (guest/guest, port
    5672 and ``/`` unless it names others)."""
    parts = urlsplit(url)
    if parts.scheme not in ("amqp", "rabbitmq") or not parts.hostname:
        raise ValueError(f"{url}: not an amqp://host:port URL")
    vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
    return (parts.hostname, parts.port or 5672, unquote(parts.username or "guest"),
            unquote(parts.password or "guest"), vhost)


def _closed_reason(method: Frame) -> str:
    code = getattr(method, "reply_code", 0)
    text = getattr(method, "reply_text", "")
    return f"{method.name} {code}: {text}"


class AmqpConnection(FramedStream[tuple[int, int, bytes]]):
    """One connection with one channel in confirm mode. ``open`` connects and sets it up;
    ``read`` returns the next frames, as (type, channel, payload) (the end of the stream raises
    AmqpClosed)."""

    def __init__(self, url: str, timeout_s: float) -> None:
        super().__init__(frames, AmqpClosed)
        self.host, self.port, self.user, self.password, self.vhost = _credentials(url)
        self.timeout_s = timeout_s
        self.frame_max = DEFAULT_FRAME_MAX
        self.heartbeat_s = 0

    async def open(self, methods: Sequence[Frame] = ()) -> None:
        """Connect, negotiate, open channel 1, select confirms, then send ``methods`` (each
        awaiting its -Ok)."""
        self.close()
        reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), self.timeout_s)
        self.reader, self.writer = reader, writer
        writer.write(PROTOCOL_HEADER)
        start = await self._expect(commands.Connection.Start, 0)
        assert isinstance(start, commands.Connection.Start)
        if b"PLAIN" not in start.mechanisms.encode().split():
            raise AmqpClosed(f"the server offers no PLAIN login (it offers {start.mechanisms})")
        properties: FieldTable = {"product": "msgstorm", "capabilities": {"publisher_confirms": True,
                                                             "connection.blocked": False}}
        self.send(commands.Connection.StartOk(client_properties=properties, mechanism="PLAIN",
                                              response=f"\0{self.user}\0{self.password}", locale="en_US"))
        tune = await self._expect(commands.Connection.Tune, 0)
        assert isinstance(tune, commands.Connection.Tune)
        self.frame_max = tune.frame_max or DEFAULT_FRAME_MAX
        self.heartbeat_s = tune.heartbeat
        self.send(commands.Connection.TuneOk(channel_max=tune.channel_max, frame_max=tune.frame_max,
                                             heartbeat=tune.heartbeat))
        self.send(commands.Connection.Open(virtual_host=self.vhost))
        await self._expect(commands.Connection.OpenOk, 0)
        self.send(commands.Channel.Open(), CHANNEL)
        await self._expect(commands.Channel.OpenOk, CHANNEL)
        self.send(commands.Confirm.Select(), CHANNEL)
        await self._expect(commands.Confirm.SelectOk, CHANNEL)
        for method in methods:
            self.send(method, CHANNEL)
            await self._expect(_REPLIES[type(method)], CHANNEL)

    def send(self, method: Frame, channel: int = 0) -> None:
        assert self.writer is not None
        self.writer.write(frame.marshal(method, channel))

    async def _expect(self, kind: type[Frame], channel: int) -> Frame:
        """The next method frame, which must be a ``kind`` (a Close is said as AmqpClosed);
        heartbeats are answered, other frames before it are kept for ``read``."""
        kept: list[tuple[int, int, bytes]] = []
        while True:
            read = await asyncio.wait_for(self.read(), self.timeout_s)
            for at, found in enumerate(read):
                frame_type, on_channel, payload = found
                if frame_type == FRAME_HEARTBEAT:
                    self.write(HEARTBEAT_FRAME)
                    continue
                if frame_type != FRAME_METHOD:
                    kept.append(found)
                    continue
                method = _unmarshal(on_channel, payload)
                if isinstance(method, (commands.Connection.Close, commands.Channel.Close)):
                    raise AmqpClosed(_closed_reason(method))
                if isinstance(method, kind) and on_channel == channel:
                    self._pending.extend([*kept, *read[at + 1:]])  # what came with it, for the next read
                    return method
                kept.append(found)

    async def disconnect(self) -> None:
        """Connection.Close, then the socket closed without waiting for the CloseOk (the
        server takes the Close as a clean end either way)."""
        writer = self.writer
        if writer is not None and not writer.is_closing():
            try:
                self.send(commands.Connection.Close(reply_code=200, reply_text="Normal shutdown", class_id=0, method_id=0))
                writer.close()
                await asyncio.wait_for(writer.wait_closed(), self.timeout_s)
            except (OSError, TimeoutError):
                pass  # the server went first: closed either way
        self.close()


_REPLIES: dict[type[Frame], type[Frame]] = {
    commands.Exchange.Declare: commands.Exchange.DeclareOk, commands.Queue.Declare: commands.Queue.DeclareOk,
    commands.Queue.Bind: commands.Queue.BindOk}


def _unmarshal(channel: int, payload: bytes) -> Frame:
    """A method frame's payload decoded by pamqp (the frame rebuilt around it)."""
    try:
        _, _, method = frame.unmarshal(_frame(FRAME_METHOD, channel, payload))
    except Exception as error:  # noqa: BLE001 - pamqp raises several kinds on a bad frame
        raise AmqpClosed(f"an AMQP method the client cannot read: {error}") from error
    if not isinstance(method, Frame):
        raise AmqpClosed(f"expected an AMQP method, got {type(method).__name__}")
    return method


_CONNECTION_ERRORS = (OSError, AmqpClosed, EOFError, asyncio.IncompleteReadError, TimeoutError)


class WirePublisher:
    """The publisher's connection: publishes framed in bulk, confirms read back on the same
    connection and handed to the driver's callbacks (``on_acks``, else ``on_ack``) in the
    order they arrive, ``order`` counting confirms from 0; counted in the driver's ``state``
    (``DriverState``). At most ``max_inflight`` await their confirm; a lost connection is
    reported through the state's ``outages`` and reconnected every
    ``reconnect_interval_s`` (the publishes it left unconfirmed counted as unacked, those made
    while down dropped and lost), as the aiormq path does."""

    def __init__(self, url: str, exchange: str, methods: Sequence[Frame], max_inflight: int, timeout_s: float,
                 state: DriverState, name: str, reconnect_interval_s: float) -> None:
        self.connection = AmqpConnection(url, timeout_s)
        self.exchange = exchange
        self.methods = list(methods)
        self.max_inflight = max_inflight
        self.state = state
        self.outages = state.outages
        self.name = name
        self.reconnect_interval_s = reconnect_interval_s
        self.confirms = Confirms()
        self.framer = PublishFramer(exchange)
        self.connected = False
        self.closing = False
        self.dropped = 0  # publishes dropped while disconnected
        self.refused = 0  # nacks
        self._acked = 0  # confirms so far: the next one's order
        self._room = asyncio.Event()
        self._staged: deque[Staged] = deque()
        self._parts: list[bytes | memoryview] = []  # publishes of this loop turn, written at its end
        self._write_scheduled = False
        self._tasks: list[asyncio.Task[None]] = []

    async def open(self) -> None:
        # The compiled payload layout loaded (or compiled) now, off the loop: not in the first burst.
        await asyncio.get_running_loop().run_in_executor(None, warm_up_payloads)
        await self._open()
        self.connected = True
        self._tasks = [asyncio.create_task(self._read_confirms())]
        if self.connection.heartbeat_s:
            self._tasks.append(asyncio.create_task(self._beat()))

    async def _open(self) -> None:
        await self.connection.open(self.methods)
        self.framer = PublishFramer(self.exchange, frame_max=self.connection.frame_max)

    # --- publishing ------------------------------------------------------------------------

    async def _wait_for_room(self) -> None:
        while self.confirms.outstanding >= self.max_inflight and self.connected and not self.closing:
            self._room.clear()
            await self._room.wait()

    async def publish(self, msg_id: int, payload: bytes) -> None:
        """One publish, written with the others of this event-loop turn."""
        if self.confirms.outstanding >= self.max_inflight:
            await self._wait_for_room()
        self.state.handed_over += 1
        if not self.connected:
            self._drop(1)
            return
        self.confirms.sent((msg_id,))
        self.framer.add(self._parts, payload)
        if not self._write_scheduled:
            self._write_scheduled = True
            asyncio.get_running_loop().call_soon(self._write_parts)

    def _write_parts(self) -> None:
        self._write_scheduled = False
        parts, self._parts = self._parts, []
        if parts and self.connected:
            try:
                self.connection.write(b"".join(parts))
            except (OSError, AssertionError):
                pass  # the reader sees the loss and counts these as unacked

    def stage(self, msg_ids: np.ndarray, keys: np.ndarray, sizes: np.ndarray) -> None:
        """Messages to publish next (``Sending.bursts``): their payloads are laid out now."""
        data, ends = pack_payloads(msg_ids, keys, sizes)
        self._staged.append(Staged(msg_ids.tolist(), memoryview(data.data), [0, *ends.tolist()]))

    async def publish_staged(self, count: int) -> int | None:
        """Publish the next ``count`` staged messages in one write. With the window full it
        waits for room and returns 0 (the target stamps them anew); with room for fewer it
        publishes those and returns how many."""
        if self.confirms.outstanding >= self.max_inflight and self.connected:
            await self._wait_for_room()
            return 0
        requested, done = count, 0
        parts: list[bytes | memoryview] = []
        while count > 0:
            staged = self._staged[0]
            first = staged.taken
            last = min(len(staged.msg_ids), first + count)
            if self.connected:
                last = min(last, first + self.max_inflight - self.confirms.outstanding)
            if last <= first:
                break
            staged.taken = last
            if last == len(staged.msg_ids):
                self._staged.popleft()
            self.state.handed_over += last - first
            done += last - first
            count -= last - first
            if not self.connected:
                self._drop(last - first)
                continue
            self.confirms.sent(staged.msg_ids[first:last])
            data, ends, add = staged.data, staged.ends, self.framer.add
            for k in range(first, last):
                add(parts, data[ends[k]:ends[k + 1]])
        if parts:
            await self._write(parts)
        return None if done == requested else done

    async def _write(self, parts: list[bytes | memoryview]) -> None:
        connection = self.connection
        try:
            if self._parts:  # single publishes of this turn first: tags are in write order
                self._write_parts()
            connection.write(b"".join(parts))
            if connection.buffered() > WRITE_HIGH_BYTES:
                await connection.drain()
        except (*_CONNECTION_ERRORS, AssertionError):
            pass  # the reader sees the loss and counts these as unacked

    def _drop(self, count: int) -> None:
        self.dropped += count
        self.state.lost_publishes += count

    # --- confirms and losses ---------------------------------------------------------------

    def _settle(self, acked: bool, tag: int, multiple: bool) -> None:
        settled = self.confirms.settle(tag, multiple)
        if not settled:
            return
        self._room.set()
        if not acked:
            self.refused += len(settled)
            self.state.lost_publishes += len(settled)
            return
        order = self._acked
        self._acked += len(settled)
        callbacks = self.state.callbacks
        if callbacks.on_acks is not None:
            callbacks.on_acks(np.array(settled, dtype=np.int64), np.arange(order, order + len(settled), dtype=np.int64))
        else:
            for k, msg_id in enumerate(settled):
                callbacks.on_ack(msg_id, order + k)

    async def _read_confirms(self) -> None:
        """The publisher's reader: confirms settle publishes, heartbeats are answered, a
        Close from the server ends the connection; a lost connection is reconnected here."""
        connection = self.connection
        while not self.closing:
            try:
                found = await connection.read()
                for kind, channel, payload in found:
                    if kind == FRAME_METHOD:
                        confirm = read_confirm(payload)
                        if confirm is not None:
                            self._settle(*confirm)
                            continue
                        self._method(channel, payload)
                    elif kind == FRAME_HEARTBEAT:
                        connection.write(HEARTBEAT_FRAME)
            except _CONNECTION_ERRORS as error:
                if self.closing:
                    return
                await self._lost(error)

    def _method(self, channel: int, payload: bytes) -> None:
        """A method other than a confirm: a Close from the server is answered and ends the
        connection; anything else (Connection.Blocked, say) is let be."""
        if _METHOD_ID.unpack_from(payload) not in (_CONNECTION_CLOSE, _CHANNEL_CLOSE):
            return
        method = _unmarshal(channel, payload)
        try:
            self.connection.send(commands.Connection.CloseOk() if channel == 0 else commands.Channel.CloseOk(),
                                 channel)
        except (OSError, AssertionError):
            pass
        raise AmqpClosed(_closed_reason(method))

    async def _lost(self, error: BaseException) -> None:
        self.connected = False
        self._parts = []  # never written: their confirms will not come either
        self.connection.close()
        self.outages.down(self.name, {"error": f"{type(error).__name__}: {error}"})
        self.state.unacked_publishes += self.confirms.reset()
        self._room.set()
        while not self.closing:
            await asyncio.sleep(self.reconnect_interval_s)
            try:
                await self._open()
            except (*_CONNECTION_ERRORS, ValueError) as attempt:
                self.outages.error(self.name, f"{type(attempt).__name__}: {attempt}")
                continue
            self.connected = True
            self.outages.up(self.name)
            return

    async def _beat(self) -> None:
        """A heartbeat every half of the negotiated interval (the server closes a connection
        that sent nothing for two intervals)."""
        while not self.closing:
            await asyncio.sleep(max(self.connection.heartbeat_s / 2, 0.5))
            if self.connected:
                try:
                    self.connection.write(HEARTBEAT_FRAME)
                except (OSError, AssertionError):
                    pass

    async def flush(self, timeout_s: float) -> None:
        """Send what is buffered and wait (at most ``timeout_s``) for the confirms outstanding."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        if self._parts:
            self._write_parts()
        while self.connected and self.confirms.outstanding and loop.time() < deadline:
            await asyncio.sleep(0.001)

    async def close(self, on_event: OnEvent) -> None:
        """Stop the reader, close the connection; publishes dropped while disconnected and
        nacks are said in one ``client_error`` event."""
        self.closing = True
        self._room.set()
        for task in self._tasks:
            task.cancel()
        for result in await asyncio.gather(*self._tasks, return_exceptions=True):
            if isinstance(result, Exception):  # a client bug, kept in the history
                on_event(EventKind.CLIENT_ERROR, {"client": "task", "error": f"{type(result).__name__}: {result}"})
        self._tasks = []
        if self.dropped or self.refused:
            on_event(EventKind.CLIENT_ERROR, {"client": self.name, "dropped": self.dropped, "refused": self.refused,
                                              "error": "publishes dropped while disconnected" if self.dropped
                                              else "publishes refused (nacked)"})
            self.dropped = self.refused = 0
        await self.connection.disconnect()

