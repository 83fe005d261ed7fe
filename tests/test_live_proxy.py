"""The fault proxy's toxics, in one event loop, between a client and an echo server on loopback."""

from __future__ import annotations

import asyncio
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

from msgstorm.live.adversary_toxics import Replay, Tamper
from msgstorm.live.proxy import FaultProxy, _End, sleep_until
from msgstorm.live.toxics import (
    TOXICS,
    Bandwidth,
    Blackhole,
    Corrupt,
    Latency,
    ResetPeer,
    Slicer,
    SlowClose,
    Timeout,
    Toxic,
)


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


def test_bytes_read_before_the_upstream_socket_opened_are_passed_on(monkeypatch: pytest.MonkeyPatch) -> None:
    # Some Python versions (3.11.2) start reading a new connection even when it was paused
    # before the transport began: the client's first bytes then wait in the pipe until the
    # upstream socket opens. Reading early is forced here so every version checks it.
    monkeypatch.setattr(_End, "pause", lambda self: None)
    received, _, ended = asyncio.run(_through_proxy(None, b"early" * 1000, 5000))
    assert received == b"early" * 1000 and not ended


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
    # never act (their timers go with them). Cleared 0.1 s in, 0.9 s before they would act: a
    # stall of this process shorter than that still clears first (after a longer one, both
    # timers are due at once and the toxic's runs before the clear's task).
    for kind in (ResetPeer, Timeout):
        ended, received = asyncio.run(_echo_after(kind("both", timeout_ns=1_000_000_000), 0.1, 1.5))
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


def test_a_planned_port_another_process_holds_is_named_when_the_proxy_exits() -> None:
    """A link's port planned ahead (a cluster's route) that is taken: the proxy exits with
    one line naming 127.0.0.1:PORT and the link, not a traceback."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ran = subprocess.run([sys.executable, "-m", "msgstorm.live.proxy", f"route=127.0.0.1:4222@{port}"],
                             capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert ran.returncode == 1, ran.stderr
    assert ran.stderr.strip() == (f"msgstorm.live.proxy: cannot listen on 127.0.0.1:{port} for route: in use "
                                  "(another process listens on it)"), ran.stderr


def test_sleep_until_returns_once_its_clock_has_reached_the_time() -> None:
    # A clock of its own, a millisecond a reading: the wait ends at the time, not before.
    readings = iter(range(0, 10**9, 1_000_000))
    clock_ns = [0]

    def clock() -> int:
        clock_ns[0] = next(readings)
        return clock_ns[0]

    asyncio.run(sleep_until(20_000_000, clock))
    assert 20_000_000 <= clock_ns[0] <= 21_000_000


# --- the window a toxic is active is where the link changed --------------------------------

_MAGIC = b"MSGSTORM"
_RECORD_BYTES = 10_000  # a record: the magic, its send time (monotonic ns), zeros
_EVERY_NS = 10_000_000  # one record every 10 ms: 1 MB/s offered
_BEFORE_NS, _WINDOW_NS, _AFTER_NS = 200_000_000, 800_000_000, 1_000_000_000
_PROMPT_NS = 250_000_000  # a record through within this of its send went through promptly
# Each kind as harsh as it comes (a new toxic must be given here: the test is per kind).
_HARSH: dict[str, Toxic] = {
    "latency": Latency("upstream", latency_ns=800_000_000, jitter_ns=50_000_000),
    "bandwidth": Bandwidth("upstream", rate_bytes_per_s=200_000),
    "blackhole": Blackhole("upstream"),
    "reset_peer": ResetPeer("upstream"),
    "timeout": Timeout("upstream"),
    "slicer": Slicer("upstream", slice_bytes=64, slice_delay_ns=1_000_000),
    "slow_close": SlowClose("upstream", close_delay_ns=2_000_000_000),
    "corrupt": Corrupt("upstream"),
    # No NATS publishes on this link: they pass every read through unchanged.
    "tamper": Tamper("upstream"),
    "replay": Replay("upstream"),
}
# Kinds that lose what was sent while they act.
_LOSES = {"blackhole", "reset_peer"}


@dataclass
class _Window:
    """A steady sender through the proxy to a sink, a toxic active for a window: what was
    sent (send times), what arrived (send time, arrival time), the window's edges."""

    sent_ns: list[int]
    arrived_ns: list[tuple[int, int]]
    start_ns: int
    end_ns: int

    def sent_in(self, first_ns: int, last_ns: int) -> int:
        return sum(first_ns <= t < last_ns for t in self.sent_ns)

    def prompt_bytes_after(self) -> int:
        """Bytes sent in the second after the window that went through promptly."""
        return _RECORD_BYTES * sum(self.end_ns <= sent < self.end_ns + _AFTER_NS and arrived - sent <= _PROMPT_NS
                                   for sent, arrived in self.arrived_ns)

    def held_back_released_within_ns(self, slack_ns: int) -> tuple[int, int]:
        """Of the records sent before the window ended: how many, and how many had arrived
        ``slack_ns`` after it ended."""
        before = [t for t in self.sent_ns if t < self.end_ns]
        through = sum(sent < self.end_ns and arrived <= self.end_ns + slack_ns for sent, arrived in self.arrived_ns)
        return len(before), through


async def _window(toxic: Toxic | None) -> _Window:
    arrived: list[tuple[int, int]] = []

    async def sink(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        buffer = b""
        try:
            while data := await reader.read(1 << 16):
                now = time.monotonic_ns()
                buffer += data
                while (at := buffer.find(_MAGIC)) >= 0:
                    following = buffer.find(_MAGIC, at + 1)
                    if 0 <= following < at + _RECORD_BYTES:
                        buffer = buffer[following:]  # a record cut short (bytes dropped)
                    elif len(buffer) - at >= _RECORD_BYTES:
                        arrived.append((struct.unpack_from("<q", buffer, at + len(_MAGIC))[0], now))
                        buffer = buffer[at + _RECORD_BYTES:]
                    else:
                        buffer = buffer[at:]
                        break
        except OSError:
            pass  # reset by the toxic
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass

    server = await asyncio.start_server(sink, "127.0.0.1", 0)
    proxy = FaultProxy()
    port = await proxy.listen("clients", "127.0.0.1", server.sockets[0].getsockname()[1])
    padding = bytes(_RECORD_BYTES - len(_MAGIC) - 8)
    sent: list[int] = []
    writers: list[asyncio.StreamWriter] = []
    start_ns = time.monotonic_ns()
    toggles = [(start_ns + _BEFORE_NS, "set"), (start_ns + _BEFORE_NS + _WINDOW_NS, "clear")]
    edges: dict[str, int] = {}
    until_ns = start_ns + _BEFORE_NS + _WINDOW_NS + _AFTER_NS
    k = 0
    while (due_ns := start_ns + k * _EVERY_NS) < until_ns:
        k += 1
        await asyncio.sleep(max(0, due_ns - time.monotonic_ns()) / 1e9)
        while toggles and toggles[0][0] <= time.monotonic_ns():
            _, op = toggles.pop(0)
            if toxic is not None:
                edges[op] = (proxy.set(1, "clients", toxic, seed=1) if op == "set" else proxy.clear(1))["t_ns"]
            else:
                edges[op] = time.monotonic_ns()
        if not writers or writers[-1].transport.is_closing():  # reset: connect again
            try:
                writers.append((await asyncio.open_connection("127.0.0.1", port))[1])
            except OSError:
                continue
        sent_ns = time.monotonic_ns()
        writers[-1].write(_MAGIC + struct.pack("<q", sent_ns) + padding)
        sent.append(sent_ns)
    await asyncio.sleep(0.3)  # the last records' way through
    for writer in writers:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass  # reset by the toxic
    await proxy.close()
    server.close()
    await server.wait_closed()
    await asyncio.sleep(0.05)  # the sink's handlers see their ends
    return _Window(sent, arrived, edges["set"], edges["clear"])


@pytest.fixture(scope="module")
def untoxic_window() -> _Window:
    return asyncio.run(_window(None))


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(TOXICS))
def test_the_second_after_a_toxic_the_link_is_as_fast_as_one_never_toxic(kind: str, untoxic_window: _Window) -> None:
    window = asyncio.run(_window(_HARSH[kind]))
    # The link without a toxic carries what is sent in that second promptly.
    sent_after = untoxic_window.sent_in(untoxic_window.end_ns, untoxic_window.end_ns + _AFTER_NS)
    assert untoxic_window.prompt_bytes_after() >= 0.8 * sent_after * _RECORD_BYTES
    # After the toxic, the same, within a generous tolerance: no new byte queues behind what it held.
    ratio = window.prompt_bytes_after() / untoxic_window.prompt_bytes_after()
    assert 0.7 <= ratio <= 1.3, (kind, window.prompt_bytes_after(), untoxic_window.prompt_bytes_after())
    # What it held back went when it ended (all of it, unless it drops bytes).
    if kind not in _LOSES:
        before, through = window.held_back_released_within_ns(300_000_000)
        assert through >= 0.97 * before, (kind, through, before)


def test_a_close_a_slow_close_held_goes_when_the_toxic_ends() -> None:
    async def scenario() -> float:
        closed = asyncio.Event()

        async def server_side(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while await reader.read(65536):
                pass
            closed.set()  # the proxy closed the upstream connection
            writer.close()

        server = await asyncio.start_server(server_side, "127.0.0.1", 0)
        proxy = FaultProxy()
        port = await proxy.listen("clients", "127.0.0.1", server.sockets[0].getsockname()[1])
        proxy.set(1, "clients", SlowClose("both", close_delay_ns=5_000_000_000), seed=1)
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"a")
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.close()  # the client closes: the proxy holds the close towards the server
        await asyncio.sleep(0.2)
        assert not closed.is_set()
        ended_s = time.monotonic()
        proxy.clear(1)
        try:
            await asyncio.wait_for(closed.wait(), 3)
        except TimeoutError:
            pass
        waited_s = time.monotonic() - ended_s
        await proxy.close()
        server.close()
        await server.wait_closed()
        await asyncio.sleep(0.05)
        return waited_s

    # Held 5 s, the close goes as the toxic ends, as the link without it would have closed.
    assert asyncio.run(scenario()) < 0.5
