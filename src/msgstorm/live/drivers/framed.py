"""A broker connection read as whole frames: the socket's bytes kept until a frame is whole.

Place in the pipeline: under the hand-written wire clients (``mqtt_wire.MqttStream``,
``rabbitmq_wire.AmqpConnection``). Each protocol says how its bytes split into frames (a
``parse`` that takes the whole frames off the front of a buffer) and what the end of the stream
is called (its ``closed`` error); the reading, the frames read ahead of a handshake's reply and
kept for the next ``read``, the writes and the close are the same for both, and written here once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["FramedStream"]

# A read asks the kernel for up to this many bytes at once.
READ_SIZE = 1 << 18

F = TypeVar("F")


class FramedStream(Generic[F]):
    """The reading and writing half of a wire client: ``read`` returns the frames of the next
    read (at least one; the end of the stream raises ``closed``), frames a handshake read ahead
    first."""

    def __init__(self, parse: Callable[[bytearray], list[F]], closed: Callable[[str], Exception]) -> None:
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._parse = parse
        self._closed = closed
        self._buffer = bytearray()
        self._pending: list[F] = []  # frames read ahead of a handshake's reply, for the next read

    async def read(self) -> list[F]:
        if self._pending:
            found, self._pending = self._pending, []
            return found
        assert self.reader is not None
        while True:
            data = await self.reader.read(READ_SIZE)
            if not data:
                raise self._closed("connection closed by the broker")
            self._buffer += data
            found = self._parse(self._buffer)
            if found:
                return found

    def write(self, data: bytes | bytearray | memoryview) -> None:
        assert self.writer is not None
        self.writer.write(data)

    async def drain(self) -> None:
        assert self.writer is not None
        await self.writer.drain()

    def buffered(self) -> int:
        """Bytes written and not yet taken by the kernel."""
        return self.writer.transport.get_write_buffer_size() if self.writer is not None else 0

    def close(self) -> None:
        """Drop the connection and whatever was read of it (``open`` makes a new one)."""
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None
        self._buffer.clear()
        self._pending = []
