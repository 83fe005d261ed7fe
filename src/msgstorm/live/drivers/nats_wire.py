"""A minimal core-NATS client on the wire protocol, for the generator's fast path.

Place in the pipeline: under ``drivers/nats.py``, which uses it for ``[live.nats] client =
"wire"`` (the default) and nats-py otherwise. Why by hand: nats-py spends about 10 us per
publish and 17 us per received message (a ``Msg`` object and a callback each), which caps
an open-loop generator in one Python thread near 20,000 messages/s, far below what
nats-server takes. Core NATS's text protocol is small (INFO, CONNECT, PING/PONG, PUB, SUB,
MSG, -ERR), so this client writes a whole burst of PUBs with one ``write`` and parses a
whole read of MSGs with one regular expression. It speaks only what a load run needs: plain
TCP, no TLS, no credentials, no headers, no cluster discovery (use ``client = "nats-py"``
for those; the driver refuses such a URL with wire).

One ``WireConnection`` is one TCP connection (an ``asyncio.Protocol``). A lost connection
reports itself through ``on_lost``; the driver reconnects with a new one.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from urllib.parse import urlsplit

__all__ = ["WireConnection", "WireError", "pub_frames"]

# One MSG frame's header: MSG <subject> <sid> [reply-to] <#bytes>\r\n (payload follows).
_MSG = re.compile(rb"MSG [^ \r\n]+ ([0-9]+) (?:[^ \r\n]+ )?([0-9]+)\r\n")
_CRLF = b"\r\n"
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


class WireConnection(asyncio.Protocol):
    """One connection: ``await open()``; ``subscribe``; ``publish_frames``; ``close``."""

    def __init__(self, url: str, name: str, on_messages: Callable[[list[bytes]], None] | None = None,
                 on_lost: Callable[[WireConnection], None] | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme != "nats" or parts.username or parts.password:
            raise WireError(f"{url}: the wire client speaks plain nats:// without credentials; "
                            "set [live.nats] client = \"nats-py\" for TLS or authentication")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 4222
        self.name = name
        self.on_messages = on_messages
        self.on_lost = on_lost
        self.transport: asyncio.Transport | None = None
        self.closing = False
        self.lost = False
        self._buffer = bytearray()
        self._handshake: asyncio.Future[None] | None = None
        self._pongs: list[asyncio.Future[None]] = []
        self._writable = asyncio.Event()
        self._writable.set()
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._flush_timer: asyncio.TimerHandle | None = None
        self.errors: list[str] = []

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
                   "version": "1", "protocol": 1, "headers": False, "no_responders": False}
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

    async def publish_frames(self, frames: bytes) -> bool:
        """Write PUB frames (coalesced for up to ``COALESCE_S``); wait while the transport
        holds more than ``HIGH_WATER``. False when the connection is gone (nothing written)."""
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

    def _write(self, data: bytes) -> bool:
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
        for future in [self._handshake, *self._pongs]:
            if future is not None and not future.done():
                future.set_exception(WireError(f"connection lost: {exc or 'closed by the server'}"))
        self._pongs.clear()
        if not self.closing and self.on_lost is not None:
            self.on_lost(self)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        payloads: list[bytes] = []
        position = 0
        size = len(buffer)
        while position < size:
            if buffer.startswith(b"MSG ", position):
                match = _MSG.match(buffer, position)
                if match is None:
                    if buffer.find(_CRLF, position) < 0:
                        break  # the header is not all here yet
                    self._protocol_error(bytes(buffer[position:buffer.find(_CRLF, position)]))
                    position = buffer.find(_CRLF, position) + 2
                    continue
                start = match.end()
                end = start + int(match.group(2))
                if end + 2 > size:
                    break  # the payload is not all here yet
                payloads.append(bytes(buffer[start:end]))
                position = end + 2
                continue
            line_end = buffer.find(_CRLF, position)
            if line_end < 0:
                break
            self._control(bytes(buffer[position:line_end]))
            position = line_end + 2
        del buffer[:position]
        if payloads and self.on_messages is not None:
            self.on_messages(payloads)

    def _control(self, line: bytes) -> None:
        if line == b"PING":
            self._write(b"PONG\r\n")
        elif line == b"PONG":
            if self._pongs:
                future = self._pongs.pop(0)
                if not future.done():
                    future.set_result(None)
        elif line.startswith(b"INFO "):
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
