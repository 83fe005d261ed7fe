"""The Redis publisher's own connection for staged bursts: XADD frames written as laid out,
replies parsed by hiredis.

Place in the pipeline: under ``drivers/redis.py`` (``[live.redis] burst`` above 1). redis-py
builds a Python command object per XADD of a pipeline and encodes its arguments one by one:
about 20 us a message, the Redis target's limit on 2 cores. Here the XADD commands of a
whole slice of staged messages are laid out in one compiled pass (the framing of
``nats_wire.pack_pubs``: a constant head, the payload's length, CRLF, the payload, CRLF) and
written as one buffer; the replies are parsed by ``hiredis.Reader`` (C), one read of the
socket for many replies. The consumers use the same kind of connection for XREADGROUP (or
XREAD) and XACK (``RedisDriver._read_wire``). redis-py keeps the control plane (the group,
pings while the server is down, the read-back).

Plain ``redis://`` only: the connection says AUTH (the URL's user and password), SELECT (its
database; both read as redis-py reads them) and CLIENT SETNAME itself; ``rediss://`` (TLS) and unix sockets use redis-py's
path (``burst = 1``).
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import hiredis
import numpy as np
from redis.connection import parse_url

from msgstorm.jit import nb
from msgstorm.live.drivers.nats_wire import pack_pubs

__all__ = ["SEQ_BITS", "RespPublisher", "command", "entry_orders", "wire_supported", "xadd_frames", "xadd_head"]

_READ_BYTES = 1 << 18


def wire_supported(url: str) -> bool:
    """Whether a URL is one this connection can reach (plain TCP, no TLS)."""
    return urlsplit(url).scheme == "redis"


def command(*args: bytes) -> bytes:
    """One RESP command (an array of bulk strings)."""
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(arg), arg) for arg in args)


def xadd_head(stream: bytes, field: bytes, maxlen: int | None) -> np.ndarray:
    """Everything of ``XADD stream [MAXLEN ~ n] * field <payload>`` before the payload's
    length, ending in the ``$`` of its bulk string (uint8)."""
    args = [b"XADD", stream, *([b"MAXLEN", b"~", b"%d" % maxlen] if maxlen is not None else []), b"*", field]
    head = command(*args).replace(b"*%d\r\n" % len(args), b"*%d\r\n" % (len(args) + 1), 1) + b"$"
    return np.frombuffer(head, dtype=np.uint8).copy()


def xadd_frames(head: np.ndarray, data: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The XADD commands of the payloads laid back to back in ``data`` (payload i ending at
    ``ends[i]``), and where each command ends."""
    frames, frame_ends = pack_pubs(head, data, ends)
    return frames, frame_ends


# An entry id "<ms>-<seq>" is ordered as ms * 2**SEQ_BITS + seq, exact while seq < 2**20 (a
# million XADDs in one millisecond) and ms < 2**43 (the year 2248), so it fits an int64.
SEQ_BITS = 20
_DASH, _NEWLINE, _ZERO = ord("-"), ord("\n"), ord("0")


@nb.njit(cache=True)
def _orders(data: np.ndarray, count: int) -> np.ndarray:
    """Orders of ``count`` newline-ended ids in ``data``; -1 for one that is not an id Redis
    makes (no dash, milliseconds past 2**43 or a sequence past 2**20: it would not fit)."""
    orders = np.full(count, -1, dtype=np.int64)
    position, end = 0, data.size
    for k in range(count):
        ms, seq, dash, fits = 0, 0, False, True
        while position < end and data[position] != _NEWLINE:
            byte = data[position]
            if byte == _DASH:
                dash = True
            elif dash:
                seq = seq * 10 + (byte - _ZERO)
                fits = fits and seq < (1 << SEQ_BITS)
            else:
                ms = ms * 10 + (byte - _ZERO)
                fits = fits and ms < (1 << 43)
            position += 1
        position += 1
        if dash and fits:
            orders[k] = (ms << SEQ_BITS) + seq
    return orders


def entry_orders(entry_ids: list[bytes]) -> np.ndarray:
    """The orders of entry ids ``b"<ms>-<seq>"`` (as ``entry_order`` each), in one compiled
    pass over them joined (a Python ``int()`` pair per id cost a microsecond a message)."""
    if not entry_ids:
        return np.zeros(0, dtype=np.int64)
    joined = b"\n".join(entry_ids) + b"\n"
    return _orders(np.frombuffer(joined, dtype=np.uint8), len(entry_ids))


class RespPublisher:
    """One TCP connection to ``url`` that writes ready-made commands and reads their replies:
    a reply is the bytes of a bulk string (an XADD's entry id), or a ``hiredis.ReplyError``."""

    def __init__(self, url: str, name: str, timeout_s: float) -> None:
        # redis-py's own reading of the URL (user and password in it or in the query, the
        # database in the path or ?db=), so this connection reaches what its clients reach.
        settings = parse_url(url)  # type: ignore[no-untyped-call]
        self.host, self.port = str(settings.get("host") or "127.0.0.1"), int(settings.get("port") or 6379)
        self.user: str | None = settings.get("username")
        self.password: str | None = settings.get("password")
        self.db = int(settings.get("db") or 0)
        self.name = name
        self.timeout_s = timeout_s
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._replies = hiredis.Reader()

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    async def open(self) -> None:
        """Connect and say who it is; a refusal (a wrong password) raises ConnectionError."""
        self.close()
        self._reader, self._writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port),
                                                            self.timeout_s)
        self._replies = hiredis.Reader()
        hello = []
        if self.password is not None:
            hello.append(command(b"AUTH", *([self.user.encode()] if self.user else []), self.password.encode()))
        if self.db:
            hello.append(command(b"SELECT", b"%d" % self.db))
        hello.append(command(b"CLIENT", b"SETNAME", self.name.encode()))
        for reply in await self.round_trip(b"".join(hello), len(hello)):
            if isinstance(reply, hiredis.ReplyError):
                self.close()
                raise ConnectionError(f"redis refused the publisher's connection: {reply}")

    async def round_trip(self, frames: bytes | memoryview, count: int) -> list[Any]:
        """Write ``count`` commands and read their ``count`` replies, in order. A lost
        connection or a reply later than the timeout raises (and closes the connection)."""
        reader, writer = self._reader, self._writer
        if reader is None or writer is None:
            raise ConnectionError("the publisher's connection is closed")
        try:
            writer.write(frames)
            replies: list[Any] = []
            gets = self._replies.gets
            while len(replies) < count:
                try:
                    reply = gets()
                except hiredis.ProtocolError as error:  # not RESP: the stream cannot be followed
                    raise ConnectionError(f"the publisher's connection is out of step: {error}") from error
                if reply is False:
                    data = await asyncio.wait_for(reader.read(_READ_BYTES), self.timeout_s)
                    if not data:
                        raise ConnectionError("the server closed the publisher's connection")
                    self._replies.feed(data)
                    continue
                replies.append(reply)
            return replies
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None
