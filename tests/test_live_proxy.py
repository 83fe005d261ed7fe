"""The fault proxy's toxics, in one event loop, between a client and an echo server on loopback."""

from __future__ import annotations

import asyncio
import time

from msgstorm.live.proxy import FaultProxy, Toxic


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass  # reset by the toxic
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass


async def _through_proxy(toxic: Toxic | None, payload: bytes, expect: int) -> tuple[bytes, float, bool]:
    """Send ``payload`` through the proxy to an echo server with ``toxic`` active; what
    came back within 2 s, how long the first byte took, and whether the connection ended."""
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    proxy = FaultProxy()
    port = await proxy.listen("clients", "127.0.0.1", server.sockets[0].getsockname()[1])
    if toxic is not None:
        proxy.set(1, "clients", toxic)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    writer.write(payload)
    received, first_s, ended = b"", -1.0, False
    try:
        while len(received) < expect:
            chunk = await asyncio.wait_for(reader.read(65536), 2)
            if not chunk:
                ended = True
                break
            first_s = time.monotonic() - started if first_s < 0 else first_s
            received += chunk
    except (TimeoutError, ConnectionResetError):
        ended = True
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass  # reset by the toxic
    await proxy.close()
    server.close()
    await server.wait_closed()
    await asyncio.sleep(0.05)  # the echo handlers see their ends
    return received, first_s, ended


def test_no_toxic_passes_every_byte() -> None:
    received, _, _ = asyncio.run(_through_proxy(None, bytes(range(256)) * 100, 25_600))
    assert received == bytes(range(256)) * 100


def test_latency_holds_each_direction_and_blackhole_drops() -> None:
    received, first_s, _ = asyncio.run(_through_proxy(Toxic("latency", "both", latency_ns=50_000_000), b"x" * 10, 10))
    assert received == b"x" * 10 and 0.09 <= first_s < 1.0  # 50 ms up, 50 ms down
    received, _, _ = asyncio.run(_through_proxy(Toxic("blackhole", "upstream"), b"y" * 10, 10))
    assert received == b""


def test_corrupt_changes_one_byte_and_reset_peer_ends_the_connection() -> None:
    received, _, _ = asyncio.run(_through_proxy(Toxic("corrupt", "upstream"), bytes(1000), 1000))
    assert len(received) == 1000 and sum(b != 0 for b in received) == 1
    received, _, ended = asyncio.run(_through_proxy(Toxic("reset_peer", "both"), b"z" * 10, 10))
    assert ended and received == b""


def test_bandwidth_and_slicer_pace_the_bytes() -> None:
    # 20,000 B at 100,000 B/s each way: about 0.2 s up before the echo starts coming back.
    received, first_s, _ = asyncio.run(_through_proxy(Toxic("bandwidth", "upstream", rate_bytes_per_s=100_000),
                                                      bytes(20_000), 20_000))
    assert len(received) == 20_000 and first_s >= 0.15
    received, first_s, _ = asyncio.run(_through_proxy(
        Toxic("slicer", "upstream", slice_bytes=10, slice_delay_ns=10_000_000), b"s" * 100, 100))
    assert received == b"s" * 100
