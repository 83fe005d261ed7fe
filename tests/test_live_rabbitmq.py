"""Live target against a real RabbitMQ node (the OS package rabbitmq-server).

No mocks: msgstorm starts a node of its own (its node name, ports, database and cookie under
the run directory), publishes with publisher confirms, and after the run reads the broker's
own copy back (the audit queue, or the stream from its first offset): every confirmed message
must be there exactly once, and the receipts must account for it too.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections import Counter
from pathlib import Path
from typing import Any

import aiormq
import pytest
from conftest import (
    assert_none_left,
    report_in_process,
    require_program,
    run_in_process,
    sent_of,
    sigkill_mid_run,
)
from pamqp import body, commands, frame, header
from pamqp.base import Frame

from msgstorm.errors import TargetError
from msgstorm.history import read_history
from msgstorm.live.drivers.base import Callbacks, DriverState
from msgstorm.live.drivers.rabbitmq import RabbitMqDriver, erlang_args, rabbitmq_config, url_address
from msgstorm.live.drivers.rabbitmq_wire import (
    PROTOCOL_HEADER,
    AmqpClosed,
    Confirms,
    PublishFramer,
    WirePublisher,
    declarations,
    frames,
    read_confirm,
)
from msgstorm.live.payload import payload as message_payload
from msgstorm.runner import RunResult, run
from msgstorm.scenario import Scenario, ScenarioError, load_scenario, parse_scenario
from msgstorm.scenario.target_option import target_overrides

INSTALL = "apt-get install rabbitmq-server"
LIVE = """
target = "rabbitmq"

[run]
name = "live-rabbitmq"
duration = "{duration}"
drain = "3s"

[live]
consumers = {consumers}

[live.rabbitmq]
queue = "orders"
queue_type = "{queue_type}"
fanout = {fanout}
client = "{client}"
{faults}
[[agents]]
name = "traders"
arrival = {{ process = "constant", rate = "{rate}/s" }}
size = "64B"
"""


def _scenario(queue_type: str = "quorum", duration: str = "2s", rate: int = 500, consumers: int = 2,
              fanout: bool = False, faults: str = "", client: str = "wire") -> Scenario:
    text = LIVE.format(queue_type=queue_type, duration=duration, rate=rate, consumers=consumers,
                       fanout=str(fanout).lower(), faults=faults, client=client)
    return parse_scenario(text, source="live-rabbitmq.toml")


def _receipts(result: RunResult) -> dict[str, list[int]]:
    """msg_ids per consumer, in receipt order."""
    by_node: dict[str, list[int]] = {}
    for row in sorted(result.history.deliveries.to_pylist(), key=lambda r: r["t_delivered"]):
        by_node.setdefault(row["node"], []).append(row["msg_id"])
    return by_node


def assert_nothing_left(run_dir: Path) -> None:
    """The node's process group is gone and its AMQP port closed."""
    pid = int((run_dir / "servers" / "rabbitmq" / "rabbitmq.pid").read_text())
    start = next(e for e in read_history(run_dir).events.to_pylist() if e["kind"] == "server_start")
    port = int(json.loads(str(start["detail"]))["url"].rsplit(":", 1)[1])
    with pytest.raises(ProcessLookupError):
        os.killpg(pid, 0)
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still listens"


# --- without a broker ---------------------------------------------------------------------------


def test_the_node_is_configured_for_loopback_and_leaves_the_generator_a_core() -> None:
    config = rabbitmq_config(20001).splitlines()
    assert "listeners.tcp.default = 127.0.0.1:20001" in config and "loopback_users = none" in config
    assert erlang_args(1) == "+S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none"
    assert erlang_args(3).startswith("+S 3:3 ")


def test_amqp_and_rabbitmq_urls_name_the_rabbitmq_target() -> None:
    assert target_overrides("amqp://127.0.0.1:5672") == ['target="rabbitmq"', 'live.url="amqp://127.0.0.1:5672"']
    assert target_overrides("rabbitmq://127.0.0.1:5673") == ['target="rabbitmq"', 'live.url="amqp://127.0.0.1:5673"']
    assert target_overrides("rabbitmq") == ['target="rabbitmq"']
    assert url_address("amqp://127.0.0.1:5673") == "amqp://guest:guest@127.0.0.1:5673/"
    assert url_address("amqp://u:p@127.0.0.1") == "amqp://u:p@127.0.0.1:5672/"
    with pytest.raises(ValueError, match="not an amqp://host:port URL"):
        url_address("redis://127.0.0.1:6379")


def test_a_persistent_publish_is_framed_as_method_header_and_body_frames() -> None:
    hello = PublishFramer("orders.x").publish(b"hello")
    # Basic.Publish (class 60, method 40): ticket 0, exchange "orders.x", routing key "", no flags.
    method = "01" "0001" "00000011" "003c" "0028" "0000" "08" + b"orders.x".hex() + "00" "00" "ce"
    # Content header: class 60, weight 0, body size 5, property flags 0x1000 (delivery mode), 2.
    content = "02" "0001" "0000000f" "003c" "0000" "0000000000000005" "1000" "02" "ce"
    content_body = "03" "0001" "00000005" + b"hello".hex() + "ce"
    assert hello.hex() == method + content + content_body
    # The same frames as pamqp makes them.
    properties = commands.Basic.Properties(delivery_mode=2)
    assert hello == (frame.marshal(commands.Basic.Publish(exchange="orders.x"), 1)
                     + frame.marshal(header.ContentHeader(0, 5, properties), 1)
                     + frame.marshal(body.ContentBody(b"hello"), 1))
    # A frame_max of 16 leaves 8 bytes of body a frame: 20 bytes go as 8, 8 and 4.
    split = PublishFramer("x", frame_max=16).publish(bytes(range(20)))
    found = frames(bytearray(split))
    assert [(kind, len(payload)) for kind, _, payload in found] == [(1, 10), (2, 15), (3, 8), (3, 8), (3, 4)]
    assert b"".join(payload for kind, _, payload in found if kind == 3) == bytes(range(20))


def test_an_ack_with_multiple_confirms_every_tag_up_to_its_own() -> None:
    # Basic.Ack (60, 80), delivery tag 5, multiple: hand-framed, then cut in two reads.
    ack = bytes.fromhex("01" "0001" "0000000d" "003c" "0050" "0000000000000005" "01" "ce")
    buffer = bytearray(ack[:9])
    assert frames(buffer) == [] and len(buffer) == 9, "an incomplete frame waits for the rest"
    buffer += ack[9:] + bytes.fromhex("08" "0000" "00000000" "ce")  # and a heartbeat
    found = frames(buffer)
    assert [(kind, channel) for kind, channel, _ in found] == [(1, 1), (8, 0)] and not buffer
    assert read_confirm(found[0][2]) == (True, 5, True)
    nack = frame.marshal(commands.Basic.Nack(delivery_tag=7, multiple=False), 1)
    assert read_confirm(frames(bytearray(nack))[0][2]) == (False, 7, False)
    assert read_confirm(frames(bytearray(frame.marshal(commands.Basic.Qos(), 1)))[0][2]) is None
    confirms = Confirms()
    confirms.sent([100, 101, 102, 103, 104, 105, 106])  # tags 1..7
    assert confirms.settle(2, False) == [101] and confirms.outstanding == 6
    assert confirms.settle(5, True) == [100, 102, 103, 104], "tags 1..5 but 2, already settled"
    assert confirms.settle(7, False) == [106] and confirms.settle(7, False) == []
    assert confirms.settle(6, True) == [105] and confirms.outstanding == 0
    confirms.sent([200])
    assert confirms.reset() == 1 and confirms.outstanding == 0
    confirms.sent([300])
    assert confirms.settle(1, True) == [300], "a new channel numbers its publishes from 1 again"
    with pytest.raises(AmqpClosed, match="without its end octet"):
        frames(bytearray(ack[:-1] + b"\x00"))


async def _scripted_node(connections: list[list[str]], reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
    """A server speaking just enough AMQP 0-9-1: the handshake (frame_max 4096, a heartbeat
    sent once open), each declaration answered; it notes each method and frame kind it gets.
    On the first connection, at the fifth body frame: tags 1 and 2 acked at once, tag 3
    nacked, then Channel.Close 404. On the next ones: each body acked alone."""
    seen: list[str] = []
    connections.append(seen)
    assert await reader.readexactly(8) == PROTOCOL_HEADER

    def send(method: Frame, channel: int = 0) -> None:
        writer.write(frame.marshal(method, channel))

    send(commands.Connection.Start(server_properties={}, mechanisms="PLAIN AMQPLAIN", locales="en_US"))
    replies: dict[type[Frame], Frame] = {
        commands.Connection.StartOk: commands.Connection.Tune(channel_max=2047, frame_max=4096, heartbeat=0),
        commands.Channel.Open: commands.Channel.OpenOk(), commands.Confirm.Select: commands.Confirm.SelectOk(),
        commands.Exchange.Declare: commands.Exchange.DeclareOk(),
        commands.Queue.Declare: commands.Queue.DeclareOk(queue="orders", message_count=0, consumer_count=0),
        commands.Queue.Bind: commands.Queue.BindOk()}
    buffer = bytearray()
    while data := await reader.read(65536):
        buffer += data
        for kind, channel, payload in frames(buffer):
            if kind != 1:
                seen.append({2: "header", 3: "body", 8: "heartbeat"}[kind])
                bodies = seen.count("body")
                if kind == 3 and len(connections) > 1:
                    send(commands.Basic.Ack(delivery_tag=bodies), 1)
                elif kind == 3 and bodies == 5:
                    send(commands.Basic.Ack(delivery_tag=2, multiple=True), 1)
                    send(commands.Basic.Nack(delivery_tag=3), 1)
                    send(commands.Channel.Close(reply_code=404, reply_text="NOT_FOUND - no exchange 'orders.x'",
                                                class_id=60, method_id=40), 1)
                continue
            method = frame.unmarshal(b"\x01" + channel.to_bytes(2, "big") + len(payload).to_bytes(4, "big")
                                     + payload + b"\xce")[2]
            seen.append(method.name)
            if isinstance(method, commands.Connection.Open):
                send(commands.Connection.OpenOk())
                writer.write(bytes.fromhex("08" "0000" "00000000" "ce"))  # a heartbeat: to be answered
            elif type(method) in replies:
                send(replies[type(method)], channel)
    writer.close()


def test_the_wire_publisher_maps_confirms_and_takes_a_channel_close_as_a_lost_connection() -> None:
    """Against a scripted server: tags 1 and 2 acked at once (multiple), tag 3 nacked, a body
    over frame_max split in two; then the server closes the channel (404): the publisher
    reports the connection lost, counts the publish left unconfirmed, connects again (its
    tags from 1 again) and publishes on."""

    async def main() -> tuple[list[tuple[int, int]], DriverState, list[tuple[str, dict[str, Any]]], list[list[str]]]:
        connections: list[list[str]] = []
        server = await asyncio.start_server(lambda r, w: _scripted_node(connections, r, w), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        acks: list[tuple[int, int]] = []
        events: list[tuple[str, dict[str, Any]]] = []

        def on_event(kind: str, detail: dict[str, Any]) -> None:
            events.append((kind, detail))

        counts = DriverState(on_event)
        counts.callbacks = Callbacks(lambda index, data: None, lambda msg_id, order: acks.append((msg_id, order)))
        publisher = WirePublisher(f"amqp://u:p@127.0.0.1:{port}", "orders.x", declarations("orders.x", ["orders"], {}),
                                  8, 2.0, counts, "msgstorm-publisher", 0.05)
        await publisher.open()
        assert publisher.connection.frame_max == 4096 and publisher.framer.body_max == 4088
        for msg_id, size in ((10, 16), (11, 5000), (12, 16), (13, 16)):
            await publisher.publish(msg_id, bytes(size))
        for _ in range(200):
            if any(kind == "reconnected" for kind, _ in events):
                break
            await asyncio.sleep(0.01)
        await publisher.publish(14, bytes(16))
        for _ in range(200):
            if len(acks) == 3:
                break
            await asyncio.sleep(0.01)
        await publisher.close(on_event)
        server.close()
        return acks, counts, events, connections

    acks, counts, events, connections = asyncio.run(main())
    first, second = connections
    assert first.count("heartbeat") == 1, "the server's heartbeat answered"
    first.remove("heartbeat")
    assert first[:8] == ["Connection.StartOk", "Connection.TuneOk", "Connection.Open", "Channel.Open",
                         "Confirm.Select", "Exchange.Declare", "Queue.Declare", "Queue.Bind"]
    assert first.count("Basic.Publish") == 4 and first.count("body") == 5, "5,000 bytes go as 4,088 + 912"
    assert first[-1] == "Channel.CloseOk"
    assert acks == [(10, 0), (11, 1), (14, 2)], "tags 1-2 at once, then tag 1 of the new channel"
    assert (counts.handed_over, counts.lost_publishes, counts.unacked_publishes) == (5, 1, 1)  # 12 nacked, 13 unknown
    kinds = [kind for kind, _ in events]
    assert kinds == ["disconnected", "reconnected", "client_error"], events
    assert events[0][1]["error"] == "AmqpClosed: Channel.Close 404: NOT_FOUND - no exchange 'orders.x'"
    assert events[2][1]["refused"] == 1 and events[2][1]["dropped"] == 0
    assert second[-1] == "Connection.Close" and second.count("Basic.Publish") == 1


@pytest.mark.parametrize("old, new, field, words", [
    ('queue_type = "quorum"', 'queue_type = "mirrored"', "live.rabbitmq.queue_type", "'quorum', 'classic' or 'stream'"),
    ('queue = "orders"', 'queue = "orders x"', "live.rabbitmq.queue", "should match pattern"),
    ('queue = "orders"', 'queue = "orders"\nmax_inflight = 0', "live.rabbitmq.max_inflight", "greater than or equal"),
    ('queue = "orders"', 'queue = "orders"\nprefetch = 70000', "live.rabbitmq.prefetch", "less than or equal"),
])
def test_bad_rabbitmq_settings_name_file_line_and_field(tmp_path: Path, old: str, new: str, field: str,
                                                         words: str) -> None:
    good = 'target = "rabbitmq"\n[run]\nname = "r"\nduration = "1s"\n[live.rabbitmq]\nqueue_type = "quorum"\n' \
           'queue = "orders"\n[[agents]]\nname = "t"\narrival = { process = "constant", rate = "10/s" }\n'
    path = tmp_path / "rabbitmq.toml"
    path.write_text(good.replace(old, new))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    issue = caught.value.issues[0]
    assert (issue.file, issue.field) == (str(path), field)
    assert issue.line == 1 + good.replace(old, new).splitlines().index(new.splitlines()[-1])
    assert words in issue.message, issue.message
    path.write_text(good)
    assert load_scenario(path).live.rabbitmq.queue_type == "quorum"


def test_a_url_that_is_not_amqp_is_refused_before_the_run(tmp_path: Path) -> None:
    scenario = _scenario(duration="1s")
    scenario = scenario.model_copy(update={"live": scenario.live.model_copy(update={"url": "redis://127.0.0.1:6379"})})
    with pytest.raises(TargetError, match=r"redis://127.0.0.1:6379: not an amqp://host:port URL: live.url for "
                                          r"target \"rabbitmq\" is the broker's address"):
        run(scenario, tmp_path / "run")


# --- against rabbitmq-server --------------------------------------------------------------------


@pytest.fixture()
def _rabbitmq() -> None:
    require_program("/usr/lib/rabbitmq/bin/rabbitmq-server", "rabbitmq-server", install=INSTALL)


@pytest.mark.slow
@pytest.mark.usefixtures("_rabbitmq")
def test_a_quorum_queue_holds_every_confirmed_message_once_and_consumers_share_them(tmp_path: Path) -> None:
    result = run(_scenario("quorum"), tmp_path / "run")
    summary = result.summary
    assert summary["target"] == "rabbitmq"
    sent = sent_of(summary, 1000)
    assert summary["messages"]["committed"] == sent and summary["messages"]["lost"] == 0
    # One confirm each, numbered as the channel numbered the publishes; an unsent message (a
    # generator behind at the run's end) has none.
    seq_nos = result.history.messages.column("seq_no").to_pylist()
    assert seq_nos.count(None) == summary["messages"]["unsent"]
    assert sorted(s for s in seq_nos if s is not None) == list(range(sent))
    receipts = _receipts(result)
    first, second = receipts.get("consumer-0", []), receipts.get("consumer-1", [])
    assert not set(first) & set(second) and sorted(first + second) == list(range(sent))
    delivery = summary["delivery"]
    assert delivery["fanout"] is False and delivery["expected"] == delivery["received"] == sent
    assert delivery["lost"]["total"] == delivery["duplicated"] == 0
    # The audit queue, read back after the run: every confirmed message, once.
    assert delivery["stream"] == {"stored": sent, "acked_missing": 0, "duplicated": 0, "unexpected": 0}
    assert delivery["read_back"]["done"] is True and delivery["read_back"]["stored"] == sent
    checks = {c["name"]: c["verdict"] for c in summary["checks"]}
    assert checks["delivery"] == checks["conservation"] == checks["safety"] == "valid"
    assert_nothing_left(result.run_dir)


@pytest.mark.slow
@pytest.mark.usefixtures("_rabbitmq")
def test_classic_queues_in_fanout_give_each_consumer_every_message_and_the_audit_queue_all(tmp_path: Path) -> None:
    # On aiormq's publisher (the other runs here are on msgstorm's own): the same accounting.
    result = run(_scenario("classic", fanout=True, client="aiormq"), tmp_path / "run")
    summary = result.summary
    sent = sent_of(summary, 1000)
    receipts = _receipts(result)
    # A queue each (orders.0, orders.1), one publisher channel: each queue in publish order.
    assert receipts["consumer-0"] == receipts["consumer-1"] == list(range(sent))
    delivery = summary["delivery"]
    assert delivery["fanout"] is True and delivery["expected"] == delivery["received"] == 2 * sent
    assert delivery["stream"] == {"stored": sent, "acked_missing": 0, "duplicated": 0, "unexpected": 0}
    assert_nothing_left(result.run_dir)


@pytest.mark.slow
@pytest.mark.usefixtures("_rabbitmq")
def test_a_stream_is_read_whole_by_every_consumer_and_read_back_from_its_first_offset(tmp_path: Path) -> None:
    result = run(_scenario("stream"), tmp_path / "run")
    summary = result.summary
    sent = sent_of(summary, 1000)
    receipts = _receipts(result)
    assert receipts["consumer-0"] == receipts["consumer-1"] == list(range(sent)), "each whole, in send order"
    delivery = summary["delivery"]
    assert delivery["fanout"] is True and delivery["expected"] == delivery["received"] == 2 * sent
    assert delivery["stream"] == {"stored": sent, "acked_missing": 0, "duplicated": 0, "unexpected": 0}
    assert_nothing_left(result.run_dir)


@pytest.mark.slow
@pytest.mark.usefixtures("_rabbitmq")
def test_a_quorum_queue_with_confirms_loses_no_confirmed_message_across_a_node_crash(tmp_path: Path) -> None:
    """SIGKILL the node (its whole process group) 1 s in and start it again on its port and
    data: publishes made while it is down are dropped and counted, those awaiting a confirm at
    the crash are unknown, and every message confirmed before or after is in the queue read
    back after the run."""
    crash = '\n[[faults]]\nkind = "crash"\nnode = "rabbitmq"\nat = "1s"\nrestart_after = "500ms"\n'
    # A node restarted after a crash recovers its quorum queue before it listens: seconds here,
    # 26 s at load average 10 on two cores; the run sends long enough for it to be back meanwhile.
    result = run(_scenario("quorum", duration="50s", rate=20, consumers=1, faults=crash), tmp_path / "run")
    summary = result.summary
    kinds = Counter(e["kind"] for e in result.history.events.to_pylist())
    assert kinds["fault_start"] == kinds["fault_end"] == 1
    assert kinds["disconnected"] == kinds["reconnected"] == 2, "the publisher and the consumer, once each"
    messages = result.history.messages.to_pylist()
    acked = {m["msg_id"] for m in messages if m["seq_no"] is not None}
    assert min(acked) == 0 and len(acked) < summary["messages"]["sent"], "confirms before; none while down"
    # Once it is back (whenever that was: its start-up's time is the machine's load), every
    # message sent is confirmed.
    events = result.history.events.to_pylist()
    back = next(e["t"] for e in events if e["kind"] == "reconnected"
                and json.loads(str(e["detail"]))["client"] == "msgstorm-publisher")
    assert back < 50_000_000_000 - 5_000_000_000, f"the node was back {back / 1e9:.1f} s in, too late to send to"
    after = [m for m in messages if m["t_sent"] is not None and m["t_sent"] > back]
    assert len(after) >= 50 and all(m["seq_no"] is not None for m in after), "confirms again once it is back"
    # Every message sent is confirmed, dropped while down, or left unknown at the crash: the
    # drain waits for none of them past the run.
    assert summary["messages"]["pending"] == 0
    delivery = summary["delivery"]
    assert delivery["stream"]["acked_missing"] == 0, "no confirmed message lost"
    assert delivery["stream"]["duplicated"] == 0
    assert delivery["stream"]["stored"] >= len(acked)
    assert_nothing_left(result.run_dir)


async def _publish_and_read_back_twice(driver: RabbitMqDriver, count: int) -> tuple[list[int], list[int], int]:
    """``count`` messages published and confirmed, then the audit queue read back twice;
    the ids each read-back found, and the messages the queue holds after both."""
    acked: list[int] = []
    await driver.connect(Callbacks(lambda index, data: None, lambda msg_id, order: acked.append(msg_id)))
    for msg_id in range(count):
        await driver.publish(msg_id, message_payload(msg_id, 0, 64))
    await driver.flush()
    deadline = asyncio.get_running_loop().time() + 60
    while len(acked) < count:
        assert asyncio.get_running_loop().time() < deadline, f"{len(acked)} of {count} confirmed"
        await asyncio.sleep(0.01)
    reads = []
    for _ in range(2):
        copy = await driver.read_back()
        assert copy is not None
        reads.append(sorted(copy.ids.tolist()))
    assert driver.url is not None and driver.audit_queue is not None
    connection = await aiormq.connect(url_address(driver.url))
    channel = await connection.channel()
    held = 0
    while held < count and asyncio.get_running_loop().time() < deadline:  # returned as the reads' channels close
        held = int((await channel.queue_declare(driver.audit_queue, passive=True)).message_count or 0)
        await asyncio.sleep(0.01)
    await connection.close()
    await driver.close()
    return reads[0], reads[1], held


@pytest.mark.slow
@pytest.mark.usefixtures("_rabbitmq")
def test_the_read_back_takes_nothing_from_the_audit_queue(tmp_path: Path) -> None:
    """The audit queue read back twice: each read finds every confirmed message, and the
    queue still holds them all after (the read-back acks none: they go back to the queue when
    its connection closes)."""
    scenario = _scenario("quorum", consumers=1)
    driver = RabbitMqDriver(scenario.live, tmp_path / "run", lambda kind, detail: None)
    driver.start_servers()
    try:
        first, second, held = asyncio.run(_publish_and_read_back_twice(driver, 200))
    finally:
        driver.stop_servers()
    assert first == second == list(range(200))
    assert held == 200


@pytest.mark.slow
@pytest.mark.usefixtures("_rabbitmq")
def test_a_node_dead_for_good_ends_the_run_with_its_history_and_summary_and_a_failed_slo(tmp_path: Path) -> None:
    """The node SIGKILLed 1 s in and never started again: the read-back after the run finds
    no node, which the history says (a ``client_error`` of ``read_back``) beside the crash
    that named the node; the run ends with its summary, and exits 1 for the SLO the lost
    messages fail, not 2 (a bad path) for the refused connection."""
    crash = '\n[[faults]]\nkind = "crash"\nnode = "rabbitmq"\nat = "1s"\n'
    text = LIVE.format(queue_type="quorum", duration="2s", rate=100, consumers=1, fanout="false", faults=crash,
                       client="wire").replace('drain = "3s"', 'drain = "1s"').replace(
        "[live]\n", '[live]\nread_back_timeout = "2s"\n') + '\n[slo]\n"delivery.lost" = "== 0"\n'
    scenario = tmp_path / "dead.toml"
    scenario.write_text(text, encoding="utf-8")
    run_dir = tmp_path / "run"
    process = run_in_process(scenario, run_dir)
    try:
        _, stderr = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1, stderr.decode()
    assert "Connect call failed" not in stderr.decode() and "Traceback" not in stderr.decode()
    events = [(e["kind"], json.loads(str(e["detail"])) if e["detail"] else {})
              for e in read_history(run_dir).events.to_pylist()]
    [crashed] = [detail for kind, detail in events if kind == "fault_start"]
    assert crashed["kind"] == "crash" and crashed["server"] == "rabbitmq"
    [read_back] = [detail for kind, detail in events if kind == "client_error" and detail["client"] == "read_back"]
    assert "Connect call failed" in read_back["error"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["delivery"]["read_back"]["done"] is False and summary["delivery"]["read_back"]["error"]
    assert summary["delivery"]["lost"]["total"] > 0
    assert_nothing_left(run_dir)


@pytest.mark.slow
@pytest.mark.usefixtures("_rabbitmq")
def test_a_sigkilled_run_leaves_no_node_and_no_port_mapper_and_report_reads_its_history(tmp_path: Path) -> None:
    """msgstorm SIGKILLed a second into a run: the node is the Erlang VM itself (the script
    ``exec``s it, so the parent-death signal reaches it), and it, its helper processes and the
    run's own ``epmd`` (not a ``-daemon``, which would leave the tree) are gone within 5 s;
    ``msgstorm report`` reads what the run left (cut off: exit 3)."""
    scenario = tmp_path / "rabbitmq.toml"
    scenario.write_text(LIVE.format(queue_type="quorum", duration="60s", rate=100, consumers=1, fanout="false",
                                    faults="", client="wire"), encoding="utf-8")
    run_dir = tmp_path / "run"
    processes = sigkill_mid_run(scenario, run_dir, settle_s=1.0)
    servers = run_dir / "servers" / "rabbitmq"
    node, epmd = (int((servers / f"{name}.pid").read_text()) for name in ("rabbitmq", "epmd"))
    assert processes[node].split()[0].endswith("/beam.smp"), processes[node]
    epmd_argv = processes[epmd].split()
    assert epmd_argv[0].endswith("/epmd") and "-daemon" not in epmd_argv
    assert epmd_argv[epmd_argv.index("-port") + 1] != "4369", "the run's own, not the machine's"
    assert "erl_child_setup" in " ".join(processes.values()), "the VM's helpers are among the run's processes"
    assert_none_left(processes)
    done = report_in_process(run_dir)
    assert done.returncode == 3 and "Traceback" not in done.stderr + done.stdout, done.stderr
    assert json.loads((run_dir / "summary.json").read_text())["cut_off"] is True
    starts = [e for e in read_history(run_dir).events.to_pylist() if e["kind"] == "server_start"]
    assert [json.loads(str(e["detail"]))["pid"] for e in starts] == [node], "the history names the VM"
