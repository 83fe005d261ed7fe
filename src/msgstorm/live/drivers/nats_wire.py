"""A minimal core-NATS client on the wire protocol, for the generator's fast path.

Place in the pipeline: under ``drivers/nats.py``, which uses it for ``[live.nats] client =
"wire"`` (the default) and nats-py otherwise, and ``drivers/jetstream_wire.py`` (JetStream's
data path, ``[live.jetstream] client = "wire"``). Why by hand: nats-py spends about 10 us per
publish and 17 us per received message (a ``Msg`` object and a callback each), which caps
an open-loop generator in one Python thread near 20,000 messages/s, far below what
nats-server takes. Core NATS's text protocol is small (INFO, CONNECT, PING/PONG, PUB, SUB,
MSG, -ERR), so this client frames the PUBs of many messages into one buffer ahead of time
and writes each burst of them, bursts close together in one ``write``, and it reads MSGs
straight into a buffer of its own and parses a whole read in one pass. It speaks only what a
load run needs: plain TCP, no TLS, no credentials, no cluster discovery (use ``client =
"nats-py"`` for those; the driver refuses such a URL with wire), and headers only where
they are read (``FrameConnection``).

The per-frame work is compiled (numba): at a few hundred thousand messages a second, a
Python step per message (formatting a PUB, matching a MSG header, slicing a payload into a
``bytes``) costs more than everything else the generator does. ``pack_pubs`` frames payloads
laid back to back and says where each frame ends; ``scan_msgs`` walks a read and returns
where each MSG's payload starts and how long it is, stopping at anything that is not a MSG
(PING, PONG, INFO, +OK, -ERR are handled in Python: they are rare). ``pub_frames`` is the
same framing one ``bytes`` payload at a time, for publishes that come one by one; tests hold
the two to the same bytes. For JetStream: ``pack_request_pubs`` frames PUBs that each carry
a reply subject ending in the message's id (``request_frames`` one at a time), ``pack_replies``
frames the empty PUBs that answer many reply subjects (a consumer's acks), and
``scan_frames`` walks MSG and HMSG frames and says where each one's subject, reply subject,
headers and payload are (a frame table).

One ``WireConnection`` is one TCP connection (an ``asyncio.BufferedProtocol``). It hands
each read's MSGs to ``on_frames(data, starts, lengths)``: ``data`` is the connection's
read buffer and is valid only during the call (``payloads`` copies the payloads out). A
lost connection reports itself through ``on_lost``; the driver reconnects with a new one.
A ``FrameConnection`` asks the server for headers and hands each read over as a frame table.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Callable
from urllib.parse import urlsplit

import numpy as np

from msgstorm.jit import nb

__all__ = ["FrameConnection", "OnFrames", "OnTable", "WireConnection", "WireError", "check_url", "decimal",
           "frame_table", "pack_pubs", "pack_replies", "pack_request_pubs", "payloads", "pub_frames",
           "reply_frames", "request_frames", "scan_frames", "scan_msgs", "warm_up", "warm_up_frames"]

# (read buffer, payload starts, payload lengths): the MSGs of one read, valid during the call.
OnFrames = Callable[[np.ndarray, np.ndarray, np.ndarray], None]
# (read buffer, frame table): the MSG and HMSG frames of one read, valid during the call.
OnTable = Callable[[np.ndarray, np.ndarray], None]
_CRLF = b"\r\n"
_CR, _LF, _SPACE, _ZERO, _NINE = b"\r\n 09"
_M, _S, _G = b"MSG"
_H = b"H"[0]
_PUB_ = np.frombuffer(b"PUB ", dtype=np.uint8)
_EMPTY_TAIL = np.frombuffer(b" 0\r\n\r\n", dtype=np.uint8)
# Where ``scan_msgs`` stopped: the rest is not all here yet (or nothing is left); a line
# that is not a MSG (a control line, or too little to tell); a MSG header that does not
# parse; the output arrays are full.
NEED_MORE, CONTROL, BAD_HEADER, FULL = range(4)
# The rows of a frame table (``scan_frames``): per MSG or HMSG frame, where its subject and
# reply subject are in the read buffer, how long its headers are, where its payload is.
SUBJECT_START, SUBJECT_LENGTH, REPLY_START, REPLY_LENGTH, HEADER_LENGTH, PAYLOAD_START, PAYLOAD_LENGTH = range(7)
FRAME_ROWS = 7
# A payload size of more digits is not a size (it would overflow int64).
_MAX_SIZE_DIGITS = 18
# The read buffer's first size, and the least room offered to a read (it doubles when a
# frame does not fit); frames found in one read before the parser hands them over.
READ_BUFFER = 1024 * 1024
MIN_READ = 64 * 1024
MAX_FRAMES = 16 * 1024
# The transport's write buffer above which a publisher waits (a paused server fills it).
HIGH_WATER = 64 * 1024 * 1024
# Bursts published within this long go out in one write (one system call for several),
# or at once when this many bytes wait. At high rates a write per burst costs more than
# building it; the wait is part of the measured latency, as any client's buffering is.
COALESCE_S = 100e-6
COALESCE_BYTES = 64 * 1024


class WireError(Exception):
    """The server refused the connection or a command (-ERR), or never answered."""


def pub_frames(subject: str, payloads: list[bytes]) -> bytes:
    """PUB frames for ``payloads``, one buffer (sizes may differ)."""
    head = f"PUB {subject} ".encode()
    return b"".join([b"%s%d\r\n%s\r\n" % (head, len(p), p) for p in payloads])


def request_frames(subject: str, reply_prefix: str, msg_ids: list[int], payloads: list[bytes]) -> bytes:
    """PUB frames for ``payloads``, each with the reply subject ``reply_prefix`` + its id."""
    head, reply = f"PUB {subject} ".encode(), reply_prefix.encode()
    return b"".join([b"%s%s%d %d\r\n%s\r\n" % (head, reply, i, len(p), p) for i, p in zip(msg_ids, payloads)])


def reply_frames(subjects: list[bytes]) -> bytes:
    """An empty PUB to each of ``subjects`` (an empty subject: none)."""
    return b"".join([b"PUB %s 0\r\n\r\n" % subject for subject in subjects if subject])


@nb.njit(cache=True)
def _digits(value: int) -> int:
    count = 1
    while value >= 10:
        value //= 10
        count += 1
    return count


@nb.njit(cache=True)
def _put_digits(out: np.ndarray, position: int, value: int) -> int:
    """``value`` (not negative) in decimal at ``out[position:]``; where the digits end."""
    digits = _digits(value)
    for k in range(digits - 1, -1, -1):
        out[position + k] = _ZERO + value % 10
        value //= 10
    return position + digits


@nb.njit(cache=True)
def _pack_frames(head: np.ndarray, reply_head: np.ndarray, msg_ids: np.ndarray, data: np.ndarray,
                 ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The one framing of ``pack_pubs`` and ``pack_request_pubs``: ``head``, then (when
    ``reply_head`` is not empty) ``reply_head`` + ``msg_ids[i]`` and a space, then the size,
    CRLF, the payload, CRLF."""
    replies = reply_head.size > 0
    frame_ends = np.empty(ends.size, dtype=np.int64)
    total = 0
    start = 0
    for i in range(ends.size):
        length = ends[i] - start
        total += head.size + _digits(length) + 2 + length + 2
        if replies:
            total += reply_head.size + _digits(msg_ids[i]) + 1
        frame_ends[i] = total
        start = ends[i]
    out = np.empty(total, dtype=np.uint8)
    position = 0
    start = 0
    for i in range(ends.size):
        length = ends[i] - start
        out[position:position + head.size] = head
        position += head.size
        if replies:
            out[position:position + reply_head.size] = reply_head
            position = _put_digits(out, position + reply_head.size, msg_ids[i])
            out[position] = _SPACE
            position += 1
        position = _put_digits(out, position, length)
        out[position] = _CR
        out[position + 1] = _LF
        position += 2
        out[position:position + length] = data[start:ends[i]]
        position += length
        out[position] = _CR
        out[position + 1] = _LF
        position += 2
        start = ends[i]
    return out, frame_ends


@nb.njit(cache=True)
def pack_pubs(head: np.ndarray, data: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """PUB frames (``head`` is ``PUB <subject> ``) for the payloads laid back to back in
    ``data``, payload i ending at ``ends[i]`` (``pub_frames`` of the same payloads), and
    where each frame ends."""
    return _pack_frames(head, head[:0], ends[:0], data, ends)


@nb.njit(cache=True)
def pack_request_pubs(head: np.ndarray, reply_head: np.ndarray, msg_ids: np.ndarray, data: np.ndarray,
                      ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """As ``pack_pubs``, each frame with the reply subject ``reply_head`` + its message id
    (``request_frames`` of the same payloads), and where each frame ends."""
    return _pack_frames(head, reply_head, msg_ids, data, ends)


@nb.njit(cache=True)
def pack_replies(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """An empty PUB to each subject ``data[starts[i]:starts[i] + lengths[i]]`` (``reply_frames``
    of the same subjects); a subject of length 0 (a message without a reply) gets none."""
    total = 0
    for i in range(starts.size):
        if lengths[i] > 0:
            total += _PUB_.size + lengths[i] + _EMPTY_TAIL.size
    out = np.empty(total, dtype=np.uint8)
    position = 0
    for i in range(starts.size):
        length = lengths[i]
        if length == 0:
            continue
        out[position:position + _PUB_.size] = _PUB_
        position += _PUB_.size
        out[position:position + length] = data[starts[i]:starts[i] + length]
        position += length
        out[position:position + _EMPTY_TAIL.size] = _EMPTY_TAIL
        position += _EMPTY_TAIL.size
    return out


@nb.njit(cache=True)
def decimal(data: np.ndarray, first: int, last: int) -> int:
    """The decimal digits in ``data[first:last]`` as a number; -1 when they are not that."""
    if last <= first or last - first > _MAX_SIZE_DIGITS:
        return -1
    value = 0
    for k in range(first, last):
        byte = data[k]
        if byte < _ZERO or byte > _NINE:
            return -1
        value = value * 10 + (byte - _ZERO)
    return value


@nb.njit(cache=True)
def _split_fields(data: np.ndarray, first: int, line_end: int, field_starts: np.ndarray,
                  field_ends: np.ndarray) -> int:
    """Split a frame header's fields (``data[first:line_end]``, after ``MSG `` or ``HMSG ``:
    single spaces, none of the fields empty or holding CR or LF, at most as many as
    ``field_starts`` holds): how many there are, each one's start and end; -1 when the
    fields are not that."""
    fields = 0
    field_start = first
    for k in range(first, line_end + 1):
        if k < line_end:
            byte = data[k]
            if byte == _CR or byte == _LF:
                return -1
            if byte != _SPACE:
                continue
        if k == field_start or fields == field_starts.size:
            return -1  # an empty field, or too many
        field_starts[fields] = field_start
        field_ends[fields] = k
        fields += 1
        field_start = k + 1
    return fields


@nb.njit(cache=True)
def _msg_size(data: np.ndarray, first: int, line_end: int) -> int:
    """The payload size a MSG header's fields announce (``data[first:line_end]``, after
    ``MSG ``: ``<subject> <sid> [reply-to] <#bytes>``, as ``_split_fields`` reads them);
    -1 when the fields are not that."""
    field_starts = np.empty(4, dtype=np.int64)
    field_ends = np.empty(4, dtype=np.int64)
    fields = _split_fields(data, first, line_end, field_starts, field_ends)
    if fields < 3 or decimal(data, field_starts[1], field_ends[1]) < 0:
        return -1
    return decimal(data, field_starts[fields - 1], field_ends[fields - 1])


@nb.njit(cache=True, inline="always")
def _line_end(data: np.ndarray, start: int) -> int:
    """Where the CRLF that ends the line from ``start`` begins (``data.size - 1`` or more:
    the line is not all here yet)."""
    line_end = start
    while line_end + 1 < data.size and not (data[line_end] == _CR and data[line_end + 1] == _LF):
        line_end += 1
    return line_end


@nb.njit(cache=True)
def scan_msgs(data: np.ndarray, position: int, starts: np.ndarray,
              lengths: np.ndarray) -> tuple[int, int, int]:
    """Walk the MSG frames in ``data`` from ``position``: each one's payload start and
    length go into ``starts`` and ``lengths``. Returns (frames found, where the scan
    stopped, why: ``NEED_MORE``, ``CONTROL`` (a line that is not a MSG starts there),
    ``BAD_HEADER`` (a MSG header that does not parse starts there), ``FULL``)."""
    size = data.size
    count = 0
    while position < size:
        if count == starts.size:
            return count, position, FULL
        if (size - position < 4 or data[position] != _M or data[position + 1] != _S
                or data[position + 2] != _G or data[position + 3] != _SPACE):
            return count, position, CONTROL
        line_end = _line_end(data, position + 4)
        if line_end + 1 >= size:
            return count, position, NEED_MORE  # the header is not all here yet
        length = _msg_size(data, position + 4, line_end)
        if length < 0:
            return count, position, BAD_HEADER
        start = line_end + 2
        if start + length + 2 > size:
            return count, position, NEED_MORE  # the payload is not all here yet
        starts[count] = start
        lengths[count] = length
        count += 1
        position = start + length + 2
    return count, position, NEED_MORE


@nb.njit(cache=True)
def scan_frames(data: np.ndarray, position: int, table: np.ndarray) -> tuple[int, int, int]:
    """As ``scan_msgs``, for MSG and HMSG frames (``HMSG <subject> <sid> [reply-to]
    <#header bytes> <#total bytes>``): frame i's subject, reply subject (length 0: none),
    header length (0: a MSG) and payload (what follows the headers) go into column i of
    ``table`` (rows ``SUBJECT_START`` ... ``PAYLOAD_LENGTH``)."""
    size = data.size
    count = 0
    field_starts = np.empty(5, dtype=np.int64)
    field_ends = np.empty(5, dtype=np.int64)
    while position < size:
        if count == table.shape[1]:
            return count, position, FULL
        headers = position < size and data[position] == _H
        first = position + 1 if headers else position
        if (size - first < 4 or data[first] != _M or data[first + 1] != _S
                or data[first + 2] != _G or data[first + 3] != _SPACE):
            return count, position, CONTROL
        line_end = _line_end(data, first + 4)
        if line_end + 1 >= size:
            return count, position, NEED_MORE  # the header is not all here yet
        fields = _split_fields(data, first + 4, line_end, field_starts[:5 if headers else 4],
                               field_ends[:5 if headers else 4])
        sizes = 2 if headers else 1  # the last fields: [#header bytes] #total bytes
        if fields < 2 + sizes or decimal(data, field_starts[1], field_ends[1]) < 0:
            return count, position, BAD_HEADER
        total = decimal(data, field_starts[fields - 1], field_ends[fields - 1])
        header = decimal(data, field_starts[fields - 2], field_ends[fields - 2]) if headers else 0
        if total < 0 or header < 0 or header > total:
            return count, position, BAD_HEADER
        start = line_end + 2
        if start + total + 2 > size:
            return count, position, NEED_MORE  # the payload is not all here yet
        table[SUBJECT_START, count] = field_starts[0]
        table[SUBJECT_LENGTH, count] = field_ends[0] - field_starts[0]
        replied = fields == 3 + sizes
        table[REPLY_START, count] = field_starts[2] if replied else start
        table[REPLY_LENGTH, count] = field_ends[2] - field_starts[2] if replied else 0
        table[HEADER_LENGTH, count] = header
        table[PAYLOAD_START, count] = start + header
        table[PAYLOAD_LENGTH, count] = total - header
        count += 1
        position = start + total + 2
    return count, position, NEED_MORE


def frame_table(size: int = 0) -> np.ndarray:
    """An empty table for ``scan_frames`` (``MAX_FRAMES`` columns unless ``size``)."""
    return np.empty((FRAME_ROWS, size or MAX_FRAMES), dtype=np.int64)


def payloads(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> list[bytes]:
    """The payloads ``on_frames`` was handed, copied out as ``bytes``."""
    return [data[start:start + length].tobytes() for start, length in zip(starts.tolist(), lengths.tolist())]


def warm_up() -> None:
    """Compile (or load from numba's cache) the framing and the parser for the array types
    a run passes them, so that the first burst does not wait for the compiler."""
    frames, _ = pack_pubs(np.frombuffer(b"PUB s ", dtype=np.uint8).copy(), np.zeros(3, dtype=np.uint8),
                          np.array([1, 3], dtype=np.int64))
    scan_msgs(np.frombuffer(b"MSG s 1 0\r\n\r\n", dtype=np.uint8).copy(), 0, np.empty(1, dtype=np.int64),
              np.empty(1, dtype=np.int64))
    assert frames.size > 0


def warm_up_frames() -> None:
    """As ``warm_up``, for the JetStream framing and the frame parser."""
    head = np.frombuffer(b"PUB s ", dtype=np.uint8).copy()
    frames, _ = pack_request_pubs(head, np.frombuffer(b"r.", dtype=np.uint8).copy(), np.array([7], dtype=np.int64),
                                  np.zeros(3, dtype=np.uint8), np.array([3], dtype=np.int64))
    received = np.frombuffer(b"MSG s 1 r.7 3\r\nabc\r\n", dtype=np.uint8).copy()
    table = frame_table(1)
    assert scan_frames(received, 0, table)[0] == 1 and frames.size > 0
    assert pack_replies(received, table[REPLY_START], table[REPLY_LENGTH]).tobytes() == b"PUB r.7 0\r\n\r\n"


def check_url(url: str, section: str = "live.nats") -> None:
    """Raise ``WireError`` for a URL this client cannot serve (TLS, credentials), saying
    which setting (``[section] client``) chooses the client that can."""
    parts = urlsplit(url)
    if parts.scheme != "nats" or parts.username or parts.password:
        raise WireError(f"{url}: the wire client speaks plain nats:// without credentials; "
                        f"set [{section}] client = \"nats-py\" for TLS or authentication")


def _read_buffer(size: int, kept: np.ndarray | None = None) -> tuple[bytearray, np.ndarray]:
    """A read buffer of ``size`` bytes (and an array view of it) starting with ``kept``."""
    raw = bytearray(size)
    data = np.frombuffer(raw, dtype=np.uint8)
    if kept is not None:
        data[:kept.size] = kept
    return raw, data


class WireConnection(asyncio.BufferedProtocol):
    """One connection: ``await open()``; ``subscribe``; ``publish_frames``; ``close``.
    ``section`` names the scenario table whose ``client`` setting chooses this client (for
    the error that sends a URL it cannot serve to nats-py)."""

    headers = False  # CONNECT asks for no headers: every message arrives as a plain MSG

    def __init__(self, url: str, name: str, on_frames: OnFrames | None = None,
                 on_lost: Callable[[WireConnection], None] | None = None, section: str = "live.nats") -> None:
        check_url(url, section)
        parts = urlsplit(url)
        self.url = url
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 4222
        self.name = name
        self.on_frames = on_frames
        self.on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self.closing = False
        self.lost = False
        # What was read and not parsed yet: self._raw[:self._filled], which self._data views
        # as an array (the parser's input; the bytearray finds control lines' ends).
        self._raw, self._data = _read_buffer(READ_BUFFER)
        self._filled = 0
        self._starts = np.empty(MAX_FRAMES, dtype=np.int64)
        self._lengths = np.empty(MAX_FRAMES, dtype=np.int64)
        self._handshake: asyncio.Future[None] | None = None
        self._pongs: list[asyncio.Future[None]] = []
        self._writable = asyncio.Event()
        self._writable.set()
        self._pending: list[bytes | memoryview] = []
        self._pending_bytes = 0
        self._flush_timer: asyncio.TimerHandle | None = None
        self.errors: list[str] = []
        self.max_payload: int | None = None  # the largest message the server takes (its INFO)

    # --- connecting ----------------------------------------------------------------------

    async def open(self, timeout_s: float) -> None:
        loop = asyncio.get_running_loop()
        self._handshake = loop.create_future()
        await asyncio.wait_for(loop.create_connection(lambda: self, self.host, self.port), timeout_s)
        try:
            await asyncio.wait_for(asyncio.shield(self._handshake), timeout_s)
        except BaseException:
            self.close()
            raise

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.set_write_buffer_limits(high=HIGH_WATER)

    def _connect_line(self) -> bytes:
        options = {"verbose": False, "pedantic": False, "name": self.name, "lang": "python-msgstorm-wire",
                   "version": "1", "protocol": 1, "headers": self.headers, "no_responders": self.headers}
        return b"CONNECT " + json.dumps(options).encode() + b"\r\nPING\r\n"

    # --- commands ------------------------------------------------------------------------

    def subscribe(self, subject: str, sid: int) -> None:
        self._write(f"SUB {subject} {sid}\r\n".encode())

    async def ping(self, timeout_s: float) -> None:
        """Round trip to the server: everything written before has been processed."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pongs.append(future)
        self._flush_pending()
        self._write(b"PING\r\n")
        await asyncio.wait_for(future, timeout_s)

    @property
    def writable(self) -> bool:
        """Whether ``publish_frames`` would take frames now (else it waits for the socket to drain)."""
        return self._writable.is_set()

    async def drained(self) -> None:
        """Until ``publish_frames`` would take frames (the socket drained, or the connection is lost)."""
        await self._writable.wait()

    async def publish_frames(self, frames: bytes | memoryview) -> bool:
        """Write PUB frames (``bytes``, or the memory of ``pack_pubs``'s array; coalesced for
        up to ``COALESCE_S``); wait while the transport holds more than ``HIGH_WATER``. False
        when the connection is gone (nothing written)."""
        if not self._writable.is_set():
            await self._writable.wait()
        if self.transport is None or self.lost or self.transport.is_closing():
            return False
        self._pending.append(frames)
        self._pending_bytes += len(frames)
        if self._pending_bytes >= COALESCE_BYTES:
            self._flush_pending()
        elif self._flush_timer is None:
            self._flush_timer = asyncio.get_running_loop().call_later(COALESCE_S, self._flush_pending)
        return True

    def _flush_pending(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._pending_bytes = 0
            self._write(data)

    def write_now(self, frames: bytes | memoryview) -> bool:
        """Write ``frames`` at once, from a callback (no wait); False when the connection is gone."""
        return self._write(frames)

    def _write(self, data: bytes | memoryview) -> bool:
        if self.transport is None or self.lost or self.transport.is_closing():
            return False
        self.transport.write(data)
        return True

    def close(self) -> None:
        self.closing = True
        self._flush_pending()
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    # --- asyncio callbacks ---------------------------------------------------------------

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._writable.set()  # a waiting publisher finds the connection gone
        self._read_last_words()
        for future in [self._handshake, *self._pongs]:
            if future is not None and not future.done():
                future.set_exception(WireError(f"connection lost: {exc or 'closed by the server'}"))
        self._pongs.clear()
        if not self.closing and self.on_lost is not None:
            self.on_lost(self)

    def _read_last_words(self) -> None:
        """Parse what the server sent that was not read yet (its ``-ERR`` before it closed).
        A write that meets the server's reset ends the transport before its reader ran, and
        the socket, open until this callback returns, still holds the bytes that came before
        the reset (Linux hands queued data out before the error): on a busy machine the
        generator writes first far more often than the reader reads."""
        sock = self.transport.get_extra_info("socket") if self.transport is not None else None
        if sock is None or sock.fileno() < 0:
            return
        with socket.socket(fileno=os.dup(sock.fileno())) as own:
            for _ in range(READ_BUFFER // MIN_READ):  # bounded: a server that kept sending
                try:
                    nbytes = own.recv_into(self.get_buffer(-1), MIN_READ, socket.MSG_DONTWAIT)
                except OSError:
                    return  # nothing more (or the reset itself)
                if nbytes == 0:
                    return
                self.buffer_updated(nbytes)

    def lost_detail(self) -> dict[str, str]:
        """A ``disconnected`` event's detail: the client, and the errors the server sent
        before it closed the connection (taken: they are not reported again at close)."""
        said, self.errors = self.errors, []
        return {"client": self.name, **({"error": "; ".join(said)} if said else {})}

    def get_buffer(self, sizehint: int) -> memoryview:
        if len(self._raw) - self._filled < MIN_READ:
            self._raw, self._data = _read_buffer(2 * len(self._raw), self._data[:self._filled])
        return memoryview(self._raw)[self._filled:]

    def buffer_updated(self, nbytes: int) -> None:
        self._filled += nbytes
        data = self._data[:self._filled]
        position = 0
        while True:
            position, stopped = self._take_frames(data, position)
            if stopped == NEED_MORE:
                break
            if stopped == FULL:
                continue
            line_end = self._raw.find(_CRLF, position, self._filled)
            if line_end < 0:
                break  # the line is not all here yet
            line = bytes(self._raw[position:line_end])
            position = line_end + 2
            if stopped == CONTROL:
                self._control(line)
            else:
                self._protocol_error(line)
        left = self._filled - position
        self._data[:left] = self._data[position:self._filled]
        self._filled = left

    def _take_frames(self, data: np.ndarray, position: int) -> tuple[int, int]:
        """Parse the frames from ``position`` and hand them over; where the parser stopped and why."""
        count, position, stopped = scan_msgs(data, position, self._starts, self._lengths)
        if count and self.on_frames is not None:
            self.on_frames(data, self._starts[:count], self._lengths[:count])
        return position, stopped

    def feed(self, received: bytes) -> None:
        """Take ``received`` as if read from the socket (for tests: any split of a stream)."""
        offset = 0
        while offset < len(received):
            room = self.get_buffer(-1)
            chunk = min(len(room), len(received) - offset)
            room[:chunk] = received[offset:offset + chunk]
            offset += chunk
            self.buffer_updated(chunk)

    def _control(self, line: bytes) -> None:
        if line == b"PING":
            self._write(b"PONG\r\n")
        elif line == b"PONG":
            if self._pongs:
                future = self._pongs.pop(0)
                if not future.done():
                    future.set_result(None)
        elif line.startswith(b"INFO "):
            try:
                limit = json.loads(line[5:]).get("max_payload")
            except (ValueError, AttributeError):
                limit = None
            self.max_payload = int(limit) if isinstance(limit, int) and limit > 0 else self.max_payload
            if self._handshake is not None and not self._handshake.done():
                self._pongs.append(self._handshake)  # the handshake ends at the first PONG
                self._write(self._connect_line())
        elif line.startswith(b"-ERR"):
            self._protocol_error(line)
        # +OK (verbose is off) and anything unknown need no answer

    def _protocol_error(self, line: bytes) -> None:
        message = line.decode(errors="replace")
        self.errors.append(message)
        if self._handshake is not None and not self._handshake.done():
            self._handshake.set_exception(WireError(f"{self.host}:{self.port}: {message}"))


class FrameConnection(WireConnection):
    """A connection that takes headers (HMSG: a status such as a JetStream ack's 503, or
    flow control) and hands each read's frames over with their subjects and reply
    subjects: ``on_table(data, table)``, ``table`` a view of ``scan_frames``'s table with
    one column per frame, both valid only during the call."""

    headers = True

    def __init__(self, url: str, name: str, on_table: OnTable | None = None,
                 on_lost: Callable[[WireConnection], None] | None = None, section: str = "live.nats") -> None:
        super().__init__(url, name, None, on_lost, section)
        self.on_table = on_table
        self._table = frame_table()

    def _take_frames(self, data: np.ndarray, position: int) -> tuple[int, int]:
        count, position, stopped = scan_frames(data, position, self._table)
        if count and self.on_table is not None:
            self.on_table(data, self._table[:, :count])
        return position, stopped
