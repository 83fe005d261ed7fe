"""MQTT 3.1.1 packets on asyncio streams: msgstorm's own client for the ``mqtt`` driver.

Place in the pipeline: under ``drivers/mqtt.py``, which keeps the sessions' state (packet
ids in flight, QoS 2 handshakes) and calls these to frame and parse packets. Written by hand
rather than through paho-mqtt (or aiomqtt, which wraps it): paho makes a message object, a
lock round and a wake-up of its network thread per publish, and at each PUBACK walks its
outgoing messages from the oldest, past every one in flight; its publish loop ran 1,000-10,300
QoS 1 messages/s end to end on this project's 2-core machine (``benchmarks/live_generator.py
--mqtt``, ``docs/performance.md``), far below what mosquitto takes. Here the PUBLISH packets of a burst
are framed together and written at once, and a read's packets are cut from one buffer. Only
what the driver uses is here: CONNECT / CONNACK, PUBLISH at QoS 0, 1 and 2, PUBACK, PUBREC, PUBREL, PUBCOMP,
SUBSCRIBE / SUBACK, DISCONNECT (no will, no credentials, no keepalive pings: keepalive 0).
``tests/test_live_mqtt.py`` checks the framing against the specification's examples and
against mosquitto itself.
"""

from __future__ import annotations

import asyncio
import struct
from urllib.parse import urlsplit

from msgstorm.live.drivers.framed import FramedStream

__all__ = [
    "CONNACK", "PUBACK", "PUBCOMP", "PUBLISH", "PUBREC", "PUBREL", "SUBACK", "MqttError", "MqttStream",
    "ack_packet", "connect_packet", "packets", "publish_packet", "remaining_length", "subscribe_packet",
    "url_address"]

# Control packet types (the high nibble of the first byte).
CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK = 1, 2, 3, 4, 5, 6, 7, 8, 9
DISCONNECT = 14
PROTOCOL_LEVEL = 4  # MQTT 3.1.1
_U16 = struct.Struct(">H")
# CONNACK return codes (3.1.1, section 3.2.2.3).
_REFUSED = {1: "unacceptable protocol version", 2: "identifier rejected", 3: "server unavailable",
            4: "bad user name or password", 5: "not authorized"}


class MqttError(ConnectionError):
    """The broker refused, or sent what this client cannot read: the connection is done."""


def remaining_length(length: int) -> bytes:
    """The variable-length "remaining length" of a fixed header (1 to 4 bytes, 7 bits each)."""
    if not 0 <= length <= 268_435_455:
        raise ValueError(f"an MQTT packet's remaining length is 0..268435455, not {length}")
    out = bytearray()
    while True:
        byte, length = length & 0x7F, length >> 7
        out.append(byte | (0x80 if length else 0))
        if not length:
            return bytes(out)


def _string(text: bytes) -> bytes:
    return _U16.pack(len(text)) + text


def connect_packet(client_id: str, clean_session: bool, keepalive_s: int = 0) -> bytes:
    body = _string(b"MQTT") + bytes((PROTOCOL_LEVEL, 0x02 if clean_session else 0x00)) + _U16.pack(keepalive_s)
    body += _string(client_id.encode())
    return bytes((CONNECT << 4,)) + remaining_length(len(body)) + body


def subscribe_packet(packet_id: int, topic_filter: str, qos: int) -> bytes:
    body = _U16.pack(packet_id) + _string(topic_filter.encode()) + bytes((qos,))
    return bytes((SUBSCRIBE << 4 | 0x02,)) + remaining_length(len(body)) + body


def publish_packet(topic: bytes, payload: bytes | memoryview, qos: int, packet_id: int = 0, dup: bool = False) -> bytes:
    """One PUBLISH (one message at a time; ``PublishFramer`` in the driver frames a burst)."""
    head = _string(topic) + (_U16.pack(packet_id) if qos else b"")
    first = PUBLISH << 4 | qos << 1 | (0x08 if dup else 0)
    return bytes((first,)) + remaining_length(len(head) + len(payload)) + head + bytes(payload)


def ack_packet(kind: int, packet_id: int) -> bytes:
    """PUBACK, PUBREC, PUBREL (whose fixed header carries flags 0b0010) or PUBCOMP."""
    return bytes((kind << 4 | (0x02 if kind == PUBREL else 0), 2)) + _U16.pack(packet_id)


def packets(buffer: bytearray) -> list[tuple[int, bytes]]:
    """The whole packets at the front of ``buffer`` as (first byte, body), removed from it;
    an incomplete last packet stays for the next read."""
    found: list[tuple[int, bytes]] = []
    at, end = 0, len(buffer)
    while at + 2 <= end:
        length, shift, k = 0, 0, at + 1
        while True:
            if k >= end:
                break
            byte = buffer[k]
            length |= (byte & 0x7F) << shift
            k += 1
            if not byte & 0x80:
                break
            shift += 7
            if shift > 21:
                raise MqttError("malformed remaining length")
        if byte & 0x80 or k + length > end:  # the header or the body is not all here yet
            break
        found.append((buffer[at], bytes(buffer[k:k + length])))
        at = k + length
    del buffer[:at]
    return found


def url_address(url: str) -> tuple[str, int]:
    """(host, port) of an ``mqtt://host:port`` URL (port 1883 when left out)."""
    parts = urlsplit(url)
    if parts.scheme != "mqtt" or not parts.hostname:
        raise ValueError(f"{url}: expected mqtt://host:port")
    return parts.hostname, parts.port or 1883


class MqttStream(FramedStream[tuple[int, bytes]]):
    """One connection to a broker: ``open`` connects, sends CONNECT and returns whether the
    broker kept a session for the client id; ``read`` returns the next packets, as (first byte,
    body bytes) (the end of the stream raises MqttError; packets read with the CONNACK or a
    SUBACK come first); ``close`` drops the connection (``open`` makes a new one)."""

    def __init__(self, url: str, client_id: str, clean_session: bool, timeout_s: float) -> None:
        super().__init__(packets, MqttError)
        self.host, self.port = url_address(url)
        self.client_id = client_id
        self.clean_session = clean_session
        self.timeout_s = timeout_s

    async def open(self, clean_session: bool | None = None) -> bool:
        """Connect and send CONNECT (``clean_session`` overrides the stream's own for this
        connection); True when the broker says it kept a session for this client id."""
        self.close()
        reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), self.timeout_s)
        self.reader, self.writer = reader, writer
        self._buffer.clear()
        clean = self.clean_session if clean_session is None else clean_session
        writer.write(connect_packet(self.client_id, clean))
        found = await asyncio.wait_for(self.read(), self.timeout_s)
        first, body = found[0]
        if first >> 4 != CONNACK or len(body) != 2:
            raise MqttError(f"expected CONNACK, got packet type {first >> 4}")
        if body[1]:
            raise MqttError(f"connection refused: {_REFUSED.get(body[1], f'code {body[1]}')}")
        session_present = bool(body[0] & 1)
        self._pending = found[1:]  # a kept session's messages may follow the CONNACK at once
        return session_present

    async def subscribe(self, topic_filter: str, qos: int) -> None:
        """SUBSCRIBE and wait for its SUBACK; the packets read with it, before it (a kept
        session's messages) and after it in the same read (messages the broker sent at once),
        are kept for the next ``read``."""
        assert self.writer is not None
        self.writer.write(subscribe_packet(1, topic_filter, qos))
        before: list[tuple[int, bytes]] = []
        while True:
            found = await asyncio.wait_for(self.read(), self.timeout_s)
            for at, (first, body) in enumerate(found):
                if first >> 4 == SUBACK:
                    if body[-1] == 0x80:
                        raise MqttError(f"subscription to {topic_filter!r} refused")
                    self._pending = before + found[at + 1:]
                    return
                before.append((first, body))

    async def disconnect(self) -> None:
        """A DISCONNECT, then the connection closed (the broker ends the session cleanly)."""
        writer = self.writer
        if writer is not None and not writer.is_closing():
            try:
                writer.write(bytes((DISCONNECT << 4, 0)))
                writer.close()
                await asyncio.wait_for(writer.wait_closed(), self.timeout_s)
            except (OSError, TimeoutError):
                pass  # the broker went first: closed either way
        self.close()
