"""The fault proxy's toxics, in one event loop, between a client and an echo server on loopback."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time

import pytest

from msgstorm.live.proxy import FaultProxy, sleep_until
from msgstorm.live.toxics import Bandwidth, Blackhole, Corrupt, Latency, ResetPeer, Slicer, SlowClose, Timeout, Toxic


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


async def _through_proxy(toxic: Toxic | None, payload: bytes, expect: int,
                         stats: dict[str, int] | None = None) -> tuple[bytes, float, bool]:
    """Send ``payload`` through the proxy to an echo server with ``toxic`` active; what
    came back within 2 s, how long the first byte took, and whether the connection ended
    (and into ``stats``, what the toxic said it did)."""
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    proxy = FaultProxy()
    port = await proxy.listen("clients", "127.0.0.1", server.sockets[0].getsockname()[1])
    if toxic is not None:
        proxy.set(1, "clients", toxic, seed=1)
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
    if toxic is not None and stats is not None:
        stats.update(proxy.clear(1)["stats"])
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
    received, first_s, _ = asyncio.run(_through_proxy(Latency("both", latency_ns=50_000_000), b"x" * 10, 10))
    assert received == b"x" * 10 and 0.09 <= first_s < 1.0  # 50 ms up, 50 ms down
    received, _, _ = asyncio.run(_through_proxy(Blackhole( "upstream"), b"y" * 10, 10))
    assert received == b""


def test_corrupt_changes_one_byte_and_reset_peer_ends_the_connection() -> None:
    stats: dict[str, int] = {}
    received, _, _ = asyncio.run(_through_proxy(Corrupt( "upstream"), bytes(1000), 1000, stats))
    # One byte changed in each chunk the proxy read (the 1000 bytes may come in more than one).
    changed = sum(b != 0 for b in received)
    assert len(received) == 1000 and changed >= 1 and changed == stats["corrupted_chunks"]
    received, _, ended = asyncio.run(_through_proxy(ResetPeer("both"), b"z" * 10, 10))
    assert ended and received == b""


def test_bandwidth_and_slicer_pace_the_bytes() -> None:
    # 20,000 B at 100,000 B/s each way: about 0.2 s up before the echo starts coming back.
    received, first_s, _ = asyncio.run(_through_proxy(Bandwidth( "upstream", rate_bytes_per_s=100_000),
                                                      bytes(20_000), 20_000))
    assert len(received) == 20_000 and first_s >= 0.15
    received, first_s, _ = asyncio.run(_through_proxy(
        Slicer( "upstream", slice_bytes=10, slice_delay_ns=10_000_000), b"s" * 100, 100))
    assert received == b"s" * 100


async def _echo_after(proxy_toxic: Toxic, clear_after_s: float, wait_s: float) -> tuple[bool, bytes]:
    """A connection through the proxy; ``proxy_toxic`` set on it, cleared ``clear_after_s``
    later; ``wait_s`` after the start a message is sent: did the connection end, and what
    came back."""
    server = await asyncio.start_server(_echo, "127.0.0.1", 0)
    proxy = FaultProxy()
    port = await proxy.listen("clients", "127.0.0.1", server.sockets[0].getsockname()[1])
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"a")
    assert await asyncio.wait_for(reader.read(1), 2) == b"a"  # the upstream side is open
    started = time.monotonic()
    proxy.set(1, "clients", proxy_toxic, seed=1)
    await asyncio.sleep(clear_after_s)
    proxy.clear(1)
    await asyncio.sleep(max(0.0, wait_s - (time.monotonic() - started)))
    received, ended = b"", False
    try:
        writer.write(b"after")
        while len(received) < 5:
            chunk = await asyncio.wait_for(reader.read(65536), 2)
            if not chunk:
                ended = True
                break
            received += chunk
    except (TimeoutError, ConnectionResetError, BrokenPipeError):
        ended = True
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    await proxy.close()
    server.close()
    await server.wait_closed()
    await asyncio.sleep(0.05)
    return ended, received


def test_a_connection_toxic_cleared_before_its_timeout_does_nothing_after_it_ended() -> None:
    # reset_peer and timeout act ``timeout`` after they start: cleared before that, they
    # never act (their timers go with them).
    for kind in (ResetPeer, Timeout):
        ended, received = asyncio.run(_echo_after(kind("both", timeout_ns=500_000_000), 0.1, 1.0))
        assert not ended and received == b"after", kind


def test_a_slow_close_is_state_of_its_connection_and_goes_with_it() -> None:
    async def scenario() -> tuple[int, set[int]]:
        server = await asyncio.start_server(_echo, "127.0.0.1", 0)
        proxy = FaultProxy()
        port = await proxy.listen("clients", "127.0.0.1", server.sockets[0].getsockname()[1])
        proxy.set(1, "clients", SlowClose("both", close_delay_ns=1_000_000), seed=1)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"a")
        await asyncio.wait_for(reader.read(1), 2)
        (connection,) = proxy.links["clients"].connections
        closing = set(connection.slow_closing)
        writer.close()
        await asyncio.sleep(0.2)
        left = len(proxy.links["clients"].connections)
        await proxy.close()
        server.close()
        await server.wait_closed()
        return left, closing

    left, closing = asyncio.run(scenario())
    assert closing == {1} and left == 0


def test_the_proxy_forwards_to_loopback_only() -> None:
    async def listen(host: str) -> None:
        await FaultProxy().listen("clients", host, 4222)

    with pytest.raises(ValueError, match="'10.0.0.1' is not a loopback address"):
        asyncio.run(listen("10.0.0.1"))
    ran = subprocess.run([sys.executable, "-m", "msgstorm.live.proxy", "clients=192.0.2.1:4222"],
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert ran.returncode != 0 and "'192.0.2.1' is not a loopback address" in ran.stderr, ran.stderr


def test_sleep_until_returns_once_its_clock_has_reached_the_time() -> None:
    # A clock of its own, a millisecond a reading: the wait ends at the time, not before.
    readings = iter(range(0, 10**9, 1_000_000))
    clock_ns = [0]

    def clock() -> int:
        clock_ns[0] = next(readings)
        return clock_ns[0]

    asyncio.run(sleep_until(20_000_000, clock))
    assert 20_000_000 <= clock_ns[0] <= 21_000_000
