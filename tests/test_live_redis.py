"""Live target against a real Redis server (redis-server, the OS package), Redis Streams.

No mocks: msgstorm starts redis-server itself (or the test starts one to play a user's
server), drives it open loop, checks every ack and every receipt against what was sent and
reads the stream back; after each test no server msgstorm started is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest
import redis
from conftest import assert_checks_valid, require_program, run_in_process
from typer.testing import CliRunner

from msgstorm.cli import app
from msgstorm.errors import ExitCode, TargetError
from msgstorm.history import read_history
from msgstorm.live.drivers.base import Callbacks
from msgstorm.live.drivers.redis import SEQ_BITS, entry_order
from msgstorm.live.drivers.redis_orphans import orphans_read
from msgstorm.live.drivers.redis_wire import entry_orders
from msgstorm.live.servers import ManagedServer, free_port
from msgstorm.runner import RunResult, run
from msgstorm.scenario import Scenario, parse_scenario

INSTALL = "apt-get install redis-server"
LIVE = """
target = "redis"

[run]
name = "live-redis"
duration = "{duration}"
drain = "{drain}"

[live]
consumers = {consumers}
{live}

[live.redis]
mode = "{mode}"
burst = {burst}
stream = "{stream}"

[[agents]]
name = "traders"
arrival = {{ process = "constant", rate = "{rate}/s" }}
size = "64B"
"""


@pytest.fixture(autouse=True)
def _redis_server() -> None:
    require_program("redis-server", install=INSTALL)


def _scenario(mode: str = "group", duration: str = "2s", rate: int = 1000, consumers: int = 2,
              live: str = "", burst: int = 1024, drain: str = "30s", stream: str = "msgstorm") -> Scenario:
    # The drain ends as soon as every message is in: long only for a slow machine.
    text = LIVE.format(mode=mode, duration=duration, rate=rate, consumers=consumers, live=live, burst=burst,
                       drain=drain, stream=stream)
    return parse_scenario(text, source="live-redis.toml")


def _events(result: RunResult) -> list[dict[str, object]]:
    return result.history.events.to_pylist()


def assert_nothing_left(run_dir: Path) -> None:
    pid = int((run_dir / "servers" / "redis-server.pid").read_text())
    start = next(e for e in read_history(run_dir).events.to_pylist() if e["kind"] == "server_start")
    port = int(json.loads(str(start["detail"]))["url"].rsplit(":", 1)[1])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still listens"


def _port_of(pid: int) -> int:
    """The port of redis-server ``pid``: "redis-server ... --port N ..." as started,
    "redis-server 127.0.0.1:N" once it renames itself."""
    command = Path(f"/proc/{pid}/cmdline").read_bytes().decode().replace("\0", " ")
    found = re.search(r"--port (\d+)|:(\d+)", command)
    assert found is not None, command
    return int(found.group(1) or found.group(2))


def _receipts(result: RunResult) -> dict[str, list[int]]:
    """msg_ids per deliveries node, in receipt order."""
    deliveries = result.history.deliveries.to_pylist()
    by_node: dict[str, list[int]] = {}
    for row in sorted(deliveries, key=lambda r: r["t_delivered"]):
        by_node.setdefault(row["node"], []).append(row["msg_id"])
    return by_node


def test_entry_order_increases_with_the_entry_id() -> None:
    ids = [b"5-0", b"5-1", b"5-1048575", b"6-0", b"1795392471632-7"]
    orders = [entry_order(i) for i in ids]
    assert orders == sorted(orders) and len(set(orders)) == len(orders)
    assert entry_order(b"6-3") == 6 * 2**SEQ_BITS + 3
    assert entry_order(b"1795392471632-7") < 2**63  # fits the history's int64 seq_no
    # The compiled form used on bursts' replies gives the same numbers.
    rng = np.random.default_rng(7)
    many = [b"%d-%d" % (ms, seq) for ms, seq in zip(rng.integers(0, 2**43, 500), rng.integers(0, 2**20, 500))]
    assert entry_orders(ids + many).tolist() == [entry_order(i) for i in ids + many]
    assert entry_orders([]).size == 0
    assert entry_orders([b"8796093022207-1048575", b"8796093022208-0", b"5", b"5-1048576"]).tolist() == [
        2**63 - 1, -1, -1, -1]  # the largest that fits; past it, and not an id: -1, no wrap


def _client_killer(url: str, stream: str, entries: int, name: str) -> threading.Thread:
    """A thread, started, that CLIENT KILLs the connections named ``name`` on the server at
    ``url`` once ``stream`` holds ``entries`` entries (at most 20 s on)."""
    def kill() -> None:
        client = redis.Redis.from_url(url)
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and client.xlen(stream) < entries:
                time.sleep(0.005)
            for entry in client.client_list():
                if entry["name"] == name:
                    client.client_kill_filter(_id=entry["id"])
        finally:
            client.close()

    killer = threading.Thread(target=kill)
    killer.start()
    return killer


def test_an_orphaned_xadd_is_acked_by_the_read_that_finds_its_entry() -> None:
    """Messages 7 and 9 lost their XADD replies; a read brings 5, 7 and 9 (7 twice, as a
    fan-out's two consumers would): 7 and 9 are acked with their entries' orders, once, and
    only 4 (never read) is left an orphan; a read without orphans in it acks nothing."""
    orphans = np.array([4, 7, 9], dtype=np.int64)
    ids = np.array([5, 7, 9, 7], dtype=np.int64)
    entries = [b"10-0", b"10-1", b"11-0", b"10-1"]
    read_ids, orders, left = orphans_read(orphans, ids, entries)
    assert read_ids.tolist() == [7, 9]
    assert orders.tolist() == [entry_order(b"10-1"), entry_order(b"11-0")]
    assert left.tolist() == [4]
    read_ids, orders, left = orphans_read(left, np.array([5, 6], dtype=np.int64), [b"12-0", b"12-1"])
    assert read_ids.size == orders.size == 0 and left.tolist() == [4]


@pytest.mark.slow
def test_messages_a_consumer_read_after_their_replies_died_are_committed_in_order(tmp_path: Path, user_server: str,
                                                                               own_name: str) -> None:
    """CLIENT KILL on the publisher's connections while staged XADDs are in flight (the
    server up; redis-py's pipeline, ``burst`` 1, may find its connection dead before it
    writes and reconnect unseen):
    the entries Redis appended before the kill, whose replies died, are read by the
    consumers; each message a consumer received is committed with its entry's order, so the
    history keeps its own invariants (committed implies sequenced, seq_no in time order)."""
    killer = _client_killer(user_server, own_name, 20_000, "msgstorm-publisher")
    result = run(_scenario(duration="3s", rate=40_000, live=f'url = "{user_server}"', burst=1024, drain="5s",
                           stream=own_name), tmp_path / "run")
    killer.join()
    summary = result.summary
    counts = summary["messages"]
    assert counts["committed"] + counts["lost"] == counts["sent"] > 20_000
    assert any(e["kind"] == "disconnected" for e in _events(result))
    messages = result.history.messages
    status = dict(zip(messages.column("msg_id").to_pylist(), messages.column("status").to_pylist(), strict=True))
    received = set(result.history.deliveries.filter(pc.field("node") != "stream").column("msg_id").to_pylist())
    assert {status[m] for m in received} == {"committed"}
    verdicts = {check["name"]: check for check in summary["checks"]}
    for name in ("conservation", "ordering", "committed-implies-sequenced", "stage-order"):
        assert verdicts[name]["verdict"] == "valid", verdicts[name]


@pytest.mark.slow
@pytest.mark.parametrize("burst", [1, 1024])  # redis-py's pipeline; staged XADDs on msgstorm's connection
def test_a_group_shares_every_message_once_and_the_stream_keeps_them_in_order(tmp_path: Path, burst: int) -> None:
    result = run(_scenario(mode="group", burst=burst), tmp_path / "run")
    summary = result.summary
    assert summary["target"] == "redis"
    # A generator behind on a loaded machine leaves the schedule's last few unsent (never sent
    # late): every message sent, a prefix of the ids, is committed and read.
    sent = summary["messages"]["sent"]
    assert sent + summary["messages"]["unsent"] == 2000 and sent > 0
    assert summary["messages"]["committed"] == sent and summary["messages"]["lost"] == 0
    assert_checks_valid(summary, ["conservation", "ordering", "committed-implies-sequenced", "stage-order", "safety", "liveness",
                                  "delivery", "generator"])
    messages = result.history.messages.sort_by("msg_id")
    seq_no = np.asarray(messages["seq_no"].to_numpy(zero_copy_only=False))
    assert (np.diff(seq_no) > 0).all(), "entry order follows send order"
    assert messages["t_received"].null_count == 2000  # the XADD reply is the commit (none for the unsent)
    receipts = _receipts(result)
    consumed = receipts["consumer-0"] + receipts["consumer-1"]
    assert sorted(consumed) == list(range(sent)), "each message to exactly one consumer of the group"
    assert receipts["consumer-0"] and receipts["consumer-1"], "both consumers of the group took a share"
    assert receipts["stream"] == list(range(sent)), "read back: every message, in send order"
    delivery = summary["delivery"]
    assert delivery["fanout"] is False and delivery["duplicated"] == 0 and delivery["reordered"] == 0
    assert delivery["stream"] == {"stored": sent, "acked_missing": 0, "duplicated": 0, "unexpected": 0}
    kinds = [e["kind"] for e in _events(result)]
    assert {"server_start", "server_stop", "read_back"} <= set(kinds)
    assert "disconnected" not in kinds and "client_error" not in kinds
    assert (result.run_dir / "servers" / "redis-server.log").is_file()
    assert_nothing_left(result.run_dir)


@pytest.mark.slow
@pytest.mark.parametrize("burst", [1, 1024])
def test_in_fanout_every_consumer_reads_every_message(tmp_path: Path, burst: int) -> None:
    result = run(_scenario(mode="fanout", duration="1s", burst=burst), tmp_path / "run")
    receipts = _receipts(result)
    sent = result.summary["messages"]["sent"]  # a loaded generator's unsent tail is never sent
    assert sent + result.summary["messages"]["unsent"] == 1000 and sent > 0
    assert receipts["consumer-0"] == receipts["consumer-1"] == list(range(sent))
    delivery = result.summary["delivery"]
    assert delivery["fanout"] is True and delivery["expected"] == delivery["received"] == 2 * sent
    assert result.summary["messages"]["committed"] == sent
    assert_nothing_left(result.run_dir)


def _killer(run_dir: Path, entries: int) -> threading.Thread:
    """A thread, started, that SIGKILLs the run's redis-server once ``entries`` messages are in
    its stream (however long the start took)."""
    pid_file = run_dir / "servers" / "redis-server.pid"

    def kill() -> None:
        deadline = time.monotonic() + 60
        while not pid_file.is_file() and time.monotonic() < deadline:
            time.sleep(0.01)
        pid = int(pid_file.read_text())
        port = _port_of(pid)
        # Sending for a while (a few hundred entries in the stream), however long the start took.
        with redis.Redis(port=port, socket_timeout=1) as client:
            while time.monotonic() < deadline:
                try:
                    if client.xlen("msgstorm") >= entries:
                        break
                except redis.RedisError:
                    pass  # not yet listening
                time.sleep(0.01)
        os.kill(pid, signal.SIGKILL)

    killer = threading.Thread(target=kill)
    killer.start()
    return killer


@pytest.mark.slow
def test_strict_fails_a_run_whose_server_was_killed(tmp_path: Path) -> None:
    """redis-server SIGKILLed mid-run from outside (no scheduled fault): without --strict the
    run is a finding (exit 0, the kill in its history); with --strict it exits SERVER_EXITED,
    naming the server and its exit code."""
    scenario = tmp_path / "live-redis.toml"
    scenario.write_text(LIVE.format(mode="group", duration="4s", rate=500, consumers=2, live="", burst=1024,
                                    drain="2s", stream="msgstorm"), encoding="utf-8")
    for strict, code in ((False, ExitCode.OK), (True, ExitCode.SERVER_EXITED)):
        run_dir = tmp_path / f"run-{strict}"
        killer = _killer(run_dir, entries=300)
        outcome = CliRunner().invoke(app, ["run", str(scenario), "--out", str(run_dir), "-q",
                                           *(["--strict"] if strict else [])])
        killer.join()
        assert outcome.exit_code == code, outcome.output
        said = [line for line in outcome.output.splitlines() if line.startswith("error: --strict:")]
        assert said == ([f"error: --strict: redis-server (exit code {-signal.SIGKILL}) exited before the run's end, "
                         "not stopped by msgstorm or a scheduled fault: the run measured a server that went away "
                         f"(report: {run_dir / 'report.html'})"] if strict else []), outcome.output
        assert_nothing_left(run_dir)


@pytest.mark.slow
@pytest.mark.parametrize("burst", [1, 1024])
def test_a_killed_server_is_a_fault_the_history_reports_not_a_crash(tmp_path: Path, burst: int) -> None:
    """SIGKILL redis-server once 300 of a 4 s run's 2000 messages are in its stream: the run still ends by itself (drain bounded),
    the disconnections are events, and what was never acked shows as lost."""
    run_dir = tmp_path / "run"
    killer = _killer(run_dir, entries=300)
    started = time.monotonic()
    result = run(_scenario(duration="4s", rate=500, burst=burst, drain="2s"), run_dir)
    elapsed_s = time.monotonic() - started
    killer.join()
    assert elapsed_s < 30, "duration 4 s + drain 2 s + flush and close bounds"
    messages = result.summary["messages"]
    # A generator behind on a loaded machine leaves the schedule's last few unsent (counted
    # apart, never sent late); what was sent is either committed or lost.
    sent = messages["sent"]
    assert sent + messages["unsent"] == 2000 and sent > 300
    assert 0 < messages["committed"] < sent and messages["committed"] + messages["lost"] == sent
    events = _events(result)
    kinds = Counter(e["kind"] for e in events)
    assert kinds["disconnected"] >= 3  # the publisher and both consumers
    clients = {json.loads(str(e["detail"]))["client"] for e in events if e["kind"] == "disconnected"}
    assert clients == {"msgstorm-publisher", "msgstorm-consumer-0", "msgstorm-consumer-1"}
    assert kinds["client_error"] >= 1  # the read-back failed; publishes were dropped
    read_back = next(e for e in events if e["kind"] == "read_back")
    assert read_back["value"] is None  # nothing could be read back
    stop = next(e for e in events if e["kind"] == "server_stop")
    assert json.loads(str(stop["detail"]))["returncode"] == -signal.SIGKILL
    lost_ids = [m["msg_id"] for m in result.history.messages.to_pylist() if m["status"] == "lost"]
    assert min(lost_ids) > 0 and max(lost_ids) == sent - 1, "the tail after the kill is lost"
    reread = read_history(run_dir)  # the history on disk is whole and readable
    assert reread.messages.num_rows == 2000
    assert_nothing_left(run_dir)


@pytest.mark.slow
@pytest.mark.parametrize("burst", [1, 1024])
def test_an_interruption_while_the_publisher_waits_for_room_stamps_only_what_was_sent(tmp_path: Path,
                                                                                   burst: int) -> None:
    """SIGSTOP redis-server during a 10 s run at 1000/s with 300 XADDs allowed outstanding,
    so that they fill and the publisher waits for room with the next message due; then
    SIGINT the run. That message was never sent: no send time, no row. Every message with
    one is acked or one of the 300 outstanding (the server is continued only as msgstorm
    stops it, after its clients are closed: no reply comes later)."""
    scenario = tmp_path / "live.toml"
    text = LIVE.format(mode="group", duration="10s", rate=1000, consumers=1, burst=burst, drain="5s", live="", stream="msgstorm")
    scenario.write_text(text.replace("[live.redis]\n", "[live.redis]\nmax_pending = 300\n"), encoding="utf-8")
    run_dir = tmp_path / "run"
    process = run_in_process(scenario, run_dir)
    pid_file = run_dir / "servers" / "redis-server.pid"
    try:
        deadline = time.monotonic() + 60
        while not pid_file.is_file():
            assert time.monotonic() < deadline and process.poll() is None, "redis-server did not start"
            time.sleep(0.01)
        pid = int(pid_file.read_text())
        with redis.Redis(port=_port_of(pid), socket_timeout=1) as client:
            while True:  # sending for a while, however long the start took
                assert time.monotonic() < deadline and process.poll() is None, "nothing was sent"
                with contextlib.suppress(redis.RedisError):  # not yet listening
                    if client.xlen("msgstorm") >= 100:
                        break
                time.sleep(0.01)
        os.kill(pid, signal.SIGSTOP)
        try:
            time.sleep(1.5)  # the 300 fill in 0.3 s
            process.send_signal(signal.SIGINT)
            _, stderr = process.communicate(timeout=60)
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
    # The stream held 100 entries before the stop: each was sent. Not each was acked: a
    # pipeline the server had read only part of when it stopped is never answered in full.
    assert sent.num_rows >= 100
    assert sent.num_rows - acked.num_rows == 300, (sent.num_rows, acked.num_rows)
    assert messages.num_rows == sent.num_rows  # a message never sent has no row
    assert_nothing_left(run_dir)


@pytest.fixture
def user_server(shared_server: Callable[[str], str]) -> str:
    """The session's redis-server (``shared_server``), playing a server the user runs: its
    URL. Each test on it XADDs to its own stream (``own_name``); none kills it."""
    return shared_server("redis")


@pytest.mark.slow
def test_a_user_server_is_used_as_is_and_an_existing_stream_is_refused(tmp_path: Path, user_server: str,
                                                                       own_name: str) -> None:
    scenario = _scenario(duration="1s", live=f'url = "{user_server}"', stream=own_name)
    first = run(scenario, tmp_path / "first")
    counts = first.summary["messages"]  # on a loaded machine the generator may leave a few unsent
    assert counts["sent"] + counts["unsent"] == 1000 and counts["committed"] == counts["sent"] >= 500
    assert not (tmp_path / "first" / "servers").exists()
    assert "server_start" not in {e["kind"] for e in _events(first)}
    client = redis.Redis.from_url(user_server)
    try:
        assert client.xlen(own_name) == counts["sent"]  # the stream is left for the user
        assert client.xpending(own_name, "msgstorm")["pending"] == 0  # every read was acked, the last too
    finally:
        client.close()
    with pytest.raises(TargetError, match=rf"key '{own_name}' already exists .*DEL {own_name}.*live\.redis\.stream"):
        run(scenario, tmp_path / "second")


@pytest.fixture
def password_server(tmp_path: Path) -> Iterator[int]:
    """A redis-server of the user's with the password "s3cret": its port."""
    binary = ManagedServer.program("redis-server", install=INSTALL)
    port = free_port()
    server = ManagedServer("redis-server", [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                                            "--appendonly", "no", "--requirepass", "s3cret"],
                           port, tmp_path / "password-server", 10.0)
    server.start()
    try:
        yield port
    finally:
        server.stop()


@pytest.mark.slow
def test_a_user_server_with_a_password_and_a_database_is_reached_by_both_publishers(tmp_path: Path,
                                                                                   password_server: int) -> None:
    """msgstorm's own publisher connection says AUTH and SELECT itself; a wrong password is
    an error before the run, not a run of lost messages."""
    port = password_server
    for burst in (1, 1024):
        database = 3 if burst == 1 else 4
        url = f"redis://:s3cret@127.0.0.1:{port}/{database}"
        result = run(_scenario(duration="1s", live=f'url = "{url}"', burst=burst), tmp_path / f"run-{burst}")
        messages = result.summary["messages"]  # a loaded generator's unsent tail is never sent
        assert messages["sent"] + messages["unsent"] == 1000 and messages["sent"] > 0
        assert messages["committed"] == messages["sent"] and messages["lost"] == 0
        client = redis.Redis.from_url(url)
        try:
            assert client.xlen("msgstorm") == messages["sent"], "the stream is in the URL's database"
            assert client.dbsize() == 1
        finally:
            client.close()
    with pytest.raises(TargetError, match=r"(?i)auth|password|WRONGPASS|invalid"):
        run(_scenario(duration="1s", live=f'url = "redis://:wrong@127.0.0.1:{port}/9"'), tmp_path / "wrong")


def test_an_unreachable_url_is_an_error_not_a_run(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nobody listens once closed
    url = f"redis://127.0.0.1:{port}"
    with pytest.raises(TargetError, match=rf"{url}: cannot connect: ConnectionError"):
        run(_scenario(live=f'url = "{url}"'), tmp_path / "run")


@pytest.mark.parametrize("maxlen", [None, 100_000])
def test_staged_bursts_of_any_size_are_acked_in_order_with_their_payloads(tmp_path: Path, maxlen: int | None) -> None:
    """The burst path driven as the target drives it, with payloads from empty to 120 KiB,
    pipelines of 300 split across staged slices and a max_pending (700) below the burst
    (1024), so calls hand over part of what they are given or wait and hand over nothing."""
    from msgstorm.live.drivers.redis import RedisDriver
    from msgstorm.live.payload import HEADER
    from msgstorm.scenario.live import LiveSpec, RedisSpec

    spec = LiveSpec(consumers=1, redis=RedisSpec(pipeline=300, max_pending=700, burst=1024, maxlen=maxlen))
    driver = RedisDriver(spec, tmp_path, lambda kind, detail: None)
    count = 3000
    sizes = np.array([[0, 16, 17, 1000, 120_000, 9, 4096][i % 7] for i in range(count)], dtype=np.int32)
    acks: dict[int, int] = {}
    returned: list[int | None] = []

    async def go() -> list[tuple[int, int]]:
        await driver.connect(Callbacks(lambda consumer, data: None, lambda msg_id, order: acks.__setitem__(msg_id, order)))
        ids = np.arange(count, dtype=np.int64)
        for first in range(0, count, 2048):
            driver.stage(ids[first:first + 2048], ids[first:first + 2048], sizes[first:first + 2048])
        left = count
        while left:
            published = await driver.publish_staged(min(1024, left))
            returned.append(published)
            left -= min(1024, left) if published is None else published
        await driver.flush()
        assert driver.publisher is not None
        stored = await driver.publisher.xrange("msgstorm", count=count + 1)
        await driver.close()
        return [(HEADER.unpack_from(fields[b"p"])[0] if len(fields[b"p"]) >= HEADER.size else -1, len(fields[b"p"]))
                for _, fields in stored]

    driver.start_servers()
    try:
        stored = asyncio.run(go())
    finally:
        driver.stop_servers()
    assert sorted(acks) == list(range(count))
    orders = [acks[i] for i in range(count)]
    assert orders == sorted(orders) and len(set(orders)) == count, "entry ids in send order"
    # Every payload carries its id (a size below the 16-byte header is padded up to it).
    assert stored == [(i, max(int(sizes[i]), 16)) for i in range(count)]
    assert 0 in returned or any(r is not None and r > 0 for r in returned), "max_pending held a call back"
    assert driver.state.lost_publishes == driver.state.unacked_publishes == 0


def test_msgstorms_own_publisher_connection_reads_the_url_as_redis_py_does(password_server: int) -> None:
    """Password and database in the query string or in the URL's user part and path; a wrong
    password is refused when the connection opens (ConnectionError), not at the first XADD."""
    from msgstorm.live.drivers.redis_wire import RespPublisher, command

    port = password_server

    async def xadd(url: str) -> list[object]:
        publisher = RespPublisher(url, "msgstorm-test", 5.0)
        await publisher.open()
        try:
            return await publisher.round_trip(command(b"XADD", b"s", b"*", b"p", b"x") * 2, 2)
        finally:
            publisher.close()

    for url, database in ((f"redis://127.0.0.1:{port}?db=5&password=s3cret", 5),
                          (f"redis://default:s3cret@127.0.0.1:{port}/6", 6)):
        replies = asyncio.run(xadd(url))
        assert len(replies) == 2 and all(isinstance(r, bytes) and b"-" in r for r in replies)
        client = redis.Redis(port=port, password="s3cret", db=database)
        try:
            assert client.xlen("s") == 2
        finally:
            client.close()
    with pytest.raises(ConnectionError, match="refused"):
        asyncio.run(xadd(f"redis://:wrong@127.0.0.1:{port}"))


@pytest.mark.slow
@pytest.mark.parametrize("burst", [1, 1024])
def test_a_consumer_whose_connections_are_killed_reads_on_without_a_duplicate(tmp_path: Path, user_server: str,
                                                                           burst: int, own_name: str) -> None:
    """CLIENT KILL on consumer-0's connections mid-run, the server up: it reconnects, re-reads
    what it was given but had not acked, and acks what it had read before, so every message
    is received once and the group has nothing pending at the end."""
    killer = _client_killer(user_server, own_name, 1500, "msgstorm-consumer-0")
    result = run(_scenario(duration="3s", live=f'url = "{user_server}"', burst=burst,
                           stream=own_name), tmp_path / "run")
    killer.join()
    summary = result.summary
    # A generator behind on a loaded machine leaves the schedule's last few unsent (counted
    # apart): every message sent is committed and read once.
    sent = summary["messages"]["sent"]
    assert sent + summary["messages"]["unsent"] == 3000 and sent >= 1500
    assert summary["messages"]["committed"] == sent and summary["messages"]["lost"] == 0
    delivery = summary["delivery"]
    assert delivery["duplicated"] == 0 and delivery["received"] == sent
    kinds = Counter(e["kind"] for e in _events(result))
    assert 1 <= kinds["disconnected"] <= 3 and kinds["reconnected"] == kinds["disconnected"]
    client = redis.Redis.from_url(user_server)
    try:
        assert client.xpending(own_name, "msgstorm")["pending"] == 0
    finally:
        client.close()
