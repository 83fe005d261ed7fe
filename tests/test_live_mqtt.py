"""Live target against a real MQTT broker (mosquitto, the OS package), at QoS 0, 1 and 2.

No mocks: msgstorm starts mosquitto itself, drives it open loop and checks every ack and
every receipt against what was sent; mosquitto keeps nothing to read back, so the accounting
is the receipts' (lost: acked, or sent at QoS 0, and never received; duplicated: received
twice). The framing is checked against the MQTT 3.1.1 specification's own examples.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import assert_checks_valid, require_program, sent_of

from msgstorm.errors import TargetError
from msgstorm.history import read_history
from msgstorm.live.drivers.mqtt import mosquitto_config
from msgstorm.live.drivers.mqtt_wire import (
    PUBACK,
    PUBLISH,
    SUBACK,
    MqttError,
    MqttStream,
    ack_packet,
    connect_packet,
    packets,
    publish_packet,
    remaining_length,
    subscribe_packet,
)
from msgstorm.live.payload import HEADER, payload
from msgstorm.live.servers import ManagedServer, free_port
from msgstorm.runner import RunResult, run
from msgstorm.scenario import Scenario, ScenarioError, load_scenario, parse_scenario

INSTALL = "apt-get install mosquitto"
LIVE = """
target = "mqtt"

[run]
name = "live-mqtt"
duration = "{duration}"
drain = "{drain}"

[live]
consumers = {consumers}

[live.mqtt]
qos = {qos}
clean_session = {clean}
{mqtt}
{faults}
[[agents]]
name = "traders"
arrival = {{ process = "constant", rate = "{rate}/s" }}
size = "64B"
"""
# The broker stopped gracefully (SIGTERM: mosquitto saves its sessions) 1.5 s into the run
# and started again on its port and data 1 s later.
RESTART = """
[[faults]]
kind = "restart"
node = "mosquitto"
at = "1.5s"
down = "1s"
"""


def _scenario(qos: int, duration: str = "2s", rate: int = 1000, consumers: int = 2, clean: bool = True,
              mqtt: str = "", faults: str = "", drain: str = "30s") -> Scenario:
    text = LIVE.format(qos=qos, duration=duration, rate=rate, consumers=consumers, clean=str(clean).lower(),
                       mqtt=mqtt, faults=faults, drain=drain)
    return parse_scenario(text, source="live-mqtt.toml")


def _receipts(result: RunResult) -> dict[str, list[int]]:
    """msg_ids per consumer, in receipt order."""
    by_node: dict[str, list[int]] = {}
    for row in sorted(result.history.deliveries.to_pylist(), key=lambda r: r["t_delivered"]):
        by_node.setdefault(row["node"], []).append(row["msg_id"])
    return by_node


def _kinds(result: RunResult) -> Counter[str]:
    return Counter(e["kind"] for e in result.history.events.to_pylist())


def assert_nothing_left(run_dir: Path) -> None:
    pid = int((run_dir / "servers" / "mosquitto.pid").read_text())
    start = next(e for e in read_history(run_dir).events.to_pylist() if e["kind"] == "server_start")
    port = int(json.loads(str(start["detail"]))["url"].rsplit(":", 1)[1])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still listens"


# --- the framing, against the specification ---------------------------------------------------


def test_remaining_length_is_the_specifications_table() -> None:
    # MQTT 3.1.1, section 2.2.3, table 2.4: the bounds of each encoded length.
    table = {0: "00", 127: "7f", 128: "8001", 16_383: "ff7f", 16_384: "808001", 2_097_151: "ffff7f",
             2_097_152: "80808001", 268_435_455: "ffffff7f"}
    assert {n: remaining_length(n).hex() for n in table} == table
    with pytest.raises(ValueError, match="0..268435455"):
        remaining_length(268_435_456)


def test_packets_are_framed_as_the_specification_says_and_cut_from_reads_of_any_size() -> None:
    # CONNECT: "MQTT", level 4, flags (clean session 0x02), keepalive, client id.
    assert connect_packet("c1", clean_session=True).hex() == "100e00044d5154540402000000026331"
    assert connect_packet("c1", clean_session=False)[9] == 0x00
    # PUBLISH QoS 1 to "a/b", packet id 10, payload "hi": 0x32, length 2+3+2+2 = 9.
    qos1 = publish_packet(b"a/b", b"hi", qos=1, packet_id=10)
    assert qos1.hex() == "3209" + "0003612f62" + "000a" + "6869"
    assert publish_packet(b"a/b", b"hi", qos=2, packet_id=10, dup=True)[0] == 0x3C  # DUP, QoS 2
    assert publish_packet(b"a/b", b"hi", qos=0).hex() == "3007" + "0003612f62" + "6869"  # no packet id
    assert ack_packet(6, 258).hex() == "62020102"  # PUBREL carries flags 0b0010
    assert ack_packet(4, 258).hex() == "40020102"
    big = publish_packet(b"t", bytes(200), qos=0)  # a two-byte remaining length
    stream = qos1 + big + ack_packet(7, 1)
    for piece in (1, 2, 3, 7, 64, len(stream)):
        buffer, found = bytearray(), []
        for at in range(0, len(stream), piece):
            buffer += stream[at:at + piece]
            found += packets(buffer)
        assert found == [(0x32, qos1[2:]), (PUBLISH << 4, big[3:]), (0x70, b"\x00\x01")], piece
        assert buffer == b""
    with pytest.raises(MqttError, match="malformed"):
        packets(bytearray(b"\x30\xff\xff\xff\xff\x01"))


def test_mosquitto_is_configured_for_the_run_directory(tmp_path: Path) -> None:
    config = mosquitto_config(20001, tmp_path / "data", tmp_path / "mosquitto.log").splitlines()
    assert "listener 20001 127.0.0.1" in config and "allow_anonymous true" in config
    assert f"persistence_location {tmp_path / 'data'}/" in config and "persistence true" in config
    # No cap on a client's messages in flight or queued: mosquitto's (20, 1000) would drop QoS 1/2.
    assert {"max_inflight_messages 0", "max_queued_messages 0"} <= set(config)


@pytest.mark.parametrize("old, new, field, words", [
    ("qos = 1", "qos = 3", "live.mqtt.qos", "0, 1 or 2"),
    ('topic = "orders"', 'topic = "orders/+"', "live.mqtt.topic", "should match pattern"),
    ('topic = "orders"', 'topic = "orders"\nshare_group = "a/b"', "live.mqtt.share_group", "should match pattern"),
    ('topic = "orders"', 'topic = "orders"\nmax_inflight = 70000', "live.mqtt.max_inflight", "less than or equal"),
])
def test_bad_mqtt_settings_name_file_line_and_field(tmp_path: Path, old: str, new: str, field: str,
                                                     words: str) -> None:
    good = 'target = "mqtt"\n[run]\nname = "m"\nduration = "1s"\n[live.mqtt]\nqos = 1\ntopic = "orders"\n' \
           '[[agents]]\nname = "t"\narrival = { process = "constant", rate = "10/s" }\n'
    path = tmp_path / "mqtt.toml"
    path.write_text(good.replace(old, new))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    issue = caught.value.issues[0]
    assert (issue.file, issue.field) == (str(path), field)
    assert issue.line == 1 + good.replace(old, new).splitlines().index(new.splitlines()[-1])
    assert words in issue.message, issue.message
    assert load_scenario(_write(tmp_path, good)).live.mqtt.qos == 1


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "good.toml"
    path.write_text(text)
    return path


# --- against mosquitto ------------------------------------------------------------------------


@pytest.fixture()
def _mosquitto() -> None:
    require_program("mosquitto", "/usr/sbin/mosquitto", install=INSTALL)


@pytest.mark.slow
@pytest.mark.usefixtures("_mosquitto")
@pytest.mark.parametrize("qos", [1, 2])
def test_every_acknowledged_message_is_received_once_by_every_consumer(tmp_path: Path, qos: int) -> None:
    result = run(_scenario(qos), tmp_path / "run")
    summary = result.summary
    assert summary["target"] == "mqtt"
    sent = sent_of(summary, 2000)
    assert summary["messages"]["committed"] == sent and summary["messages"]["lost"] == 0
    assert_checks_valid(summary, ["conservation", "ordering", "committed-implies-sequenced", "stage-order", "safety",
                                  "liveness", "delivery", "generator"])
    # One ack each for the messages sent; none (seq_no null) for those a generator behind at the end left unsent.
    seq_nos = result.history.messages.column("seq_no").to_pylist()
    assert seq_nos.count(None) == summary["messages"]["unsent"]
    assert sorted(n for n in seq_nos if n is not None) == list(range(sent)), "one ack each: PUBACK at QoS 1, PUBCOMP at QoS 2"
    receipts = _receipts(result)
    assert receipts["consumer-0"] == receipts["consumer-1"] == list(range(sent)), "each once, in send order"
    delivery = summary["delivery"]
    assert delivery["fanout"] is True and delivery["expected"] == delivery["received"] == 2 * sent
    assert delivery["lost"]["total"] == delivery["duplicated"] == delivery["reordered"] == 0
    assert delivery["stream"] is None and delivery["read_back"] is None  # mosquitto keeps nothing to read
    kinds = _kinds(result)
    assert kinds["disconnected"] == kinds["client_error"] == 0
    assert (result.run_dir / "servers" / "mosquitto.log").read_text().count("New client connected") == 3
    assert_nothing_left(result.run_dir)


@pytest.mark.slow
@pytest.mark.usefixtures("_mosquitto")
def test_a_shared_subscription_splits_the_messages_between_consumers_without_duplicates(tmp_path: Path) -> None:
    result = run(_scenario(1, mqtt='share_group = "desk"'), tmp_path / "run")
    sent = sent_of(result.summary, 2000)
    receipts = _receipts(result)
    first, second = receipts["consumer-0"], receipts["consumer-1"]
    assert first and second, "both consumers of the group took a share"
    assert not set(first) & set(second) and sorted(first + second) == list(range(sent))
    delivery = result.summary["delivery"]
    assert delivery["fanout"] is False and delivery["expected"] == delivery["received"] == sent
    assert delivery["duplicated"] == delivery["lost"]["total"] == 0


@pytest.mark.slow
@pytest.mark.usefixtures("_mosquitto")
def test_qos0_under_a_broker_restart_reports_exactly_the_messages_never_received(tmp_path: Path) -> None:
    """QoS 0 under a restart: what was published while the broker was down, or was in its
    hands when it stopped, is gone; the history counts it as lost, message by message."""
    result = run(_scenario(0, duration="4s", faults=RESTART, drain="2s"), tmp_path / "run")
    summary = result.summary
    receipts = _receipts(result)
    sent = sent_of(summary, 4000)
    received = set(receipts["consumer-0"]) | set(receipts["consumer-1"])
    never = sent - len(received)
    assert never >= 500, "a 1 s outage at 1000/s loses at least half a second's messages"
    assert summary["messages"]["lost"] == never and summary["messages"]["committed"] == len(received)
    lost = {m["msg_id"] for m in result.history.messages.to_pylist() if m["status"] == "lost"}
    assert lost == set(range(sent)) - received
    delivery = summary["delivery"]
    missing = sum(sent - len(set(ids)) for ids in receipts.values())
    assert delivery["lost"]["total"] == missing == delivery["expected"] - delivery["received"]
    assert delivery["duplicated"] == 0 and delivery["lost"]["acked"] == 0  # QoS 0: nothing is acked
    kinds = _kinds(result)
    assert kinds["disconnected"] == kinds["reconnected"] == 3  # the publisher and both consumers
    assert summary["checks"] and next(c for c in summary["checks"] if c["name"] == "delivery")["verdict"] == "invalid"
    assert_nothing_left(result.run_dir)


@pytest.mark.slow
@pytest.mark.usefixtures("_mosquitto")
def test_qos2_with_persistent_sessions_under_a_broker_restart_counts_each_duplicate_and_loss_exactly(
        tmp_path: Path) -> None:
    """QoS 2 and persistent sessions across a graceful restart: the publisher sends its
    unacknowledged publishes again and mosquitto keeps the consumers' subscriptions and queued
    messages. Every message is acked in the end. What mosquitto 2.0.11 does not carry across
    its restart is counted exactly, from the consumers' own receipts: a message a consumer got
    twice is a duplicate (0 in most runs, a few in some), an acked one it never got an acked
    loss; only what was in flight at the stop can be either."""
    result = run(_scenario(2, duration="4s", clean=False, faults=RESTART, drain="5s"), tmp_path / "run")
    summary = result.summary
    sent = sent_of(summary, 4000)
    assert summary["messages"]["committed"] == sent
    receipts = _receipts(result)
    delivery = summary["delivery"]
    twice = sum(len(ids) - len(set(ids)) for ids in receipts.values())
    assert delivery["duplicated"] == twice
    assert twice <= 100, "only what was in flight at the stop can come twice"
    missing = sum(sent - len(set(ids)) for ids in receipts.values())
    assert delivery["lost"]["total"] == delivery["lost"]["acked"] == missing
    assert missing <= 100, "only what was in flight at the stop can go (mosquitto 2.0.11 loses a few)"
    kinds = _kinds(result)
    assert kinds["disconnected"] == kinds["reconnected"] == 3
    reconnected = [json.loads(str(e["detail"])) for e in result.history.events.to_pylist()
                   if e["kind"] == "reconnected"]
    assert next(d for d in reconnected if d["client"] == "msgstorm-publisher")["sent_again"] >= 500
    assert_nothing_left(result.run_dir)


@pytest.fixture()
def user_broker(tmp_path: Path) -> Iterator[str]:
    """A mosquitto the test starts, playing a broker the user runs (``live.url``)."""
    binary = require_program("mosquitto", "/usr/sbin/mosquitto", install=INSTALL)
    port = free_port()
    directory = tmp_path / "user-broker"
    (directory / "data").mkdir(parents=True)
    config = directory / "mosquitto.conf"
    config.write_text(mosquitto_config(port, directory / "data", directory / "mosquitto.log"))
    server = ManagedServer("mosquitto", [binary, "-c", str(config)], port, directory, 10.0)
    server.start()
    try:
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        server.stop()


async def _leave_a_session(url: str) -> None:
    """A persistent session for msgstorm's first consumer's client id, subscribed to the run's
    topic, with a QoS 1 message queued in it (id 999,999): what an earlier run could leave."""
    consumer = MqttStream(url, "msgstorm-consumer-0", clean_session=False, timeout_s=5.0)
    await consumer.open()
    await consumer.subscribe("msgstorm", 1)
    await consumer.disconnect()
    publisher = MqttStream(url, "someone-else", clean_session=True, timeout_s=5.0)
    await publisher.open()
    publisher.write(publish_packet(b"msgstorm", payload(999_999, 0, 64), qos=1, packet_id=1))
    assert [first >> 4 for first, _ in await publisher.read()] == [PUBACK]
    await publisher.disconnect()


async def _retain(url: str, topics: list[bytes]) -> None:
    """A retained QoS 1 message on each of ``topics``, each PUBACKed."""
    publisher = MqttStream(url, "retainer", clean_session=True, timeout_s=5.0)
    await publisher.open()
    for packet_id, topic in enumerate(topics, 1):
        packet = bytearray(publish_packet(topic, payload(packet_id, 0, 64), qos=1, packet_id=packet_id))
        packet[0] |= 0x01  # RETAIN
        publisher.write(packet)
    acked = 0
    while acked < len(topics):
        acked += sum(first >> 4 == PUBACK for first, _ in await asyncio.wait_for(publisher.read(), 5.0))
    await publisher.disconnect()


async def _subscribe_in_one_read(url: str, topics: list[bytes]) -> list[bytes]:
    """Subscribe to ``retained/#`` with the socket readable only once the SUBACK and every
    retained PUBLISH mosquitto sends after it are in (SO_RCVLOWAT): the subscription's one
    read holds them all. The topics of the messages read afterwards, until all have come or
    5 s have passed."""
    consumer = MqttStream(url, "one-read", clean_session=True, timeout_s=5.0)
    await consumer.open()
    suback = 5  # fixed header, packet id, one return code
    publishes = sum(len(publish_packet(topic, payload(0, 0, 64), qos=1, packet_id=1)) for topic in topics)
    assert consumer.writer is not None
    sock = consumer.writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, suback + publishes)
    await consumer.subscribe("retained/#", 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 1)
    received: list[bytes] = []
    try:
        while len(received) < len(topics):
            for first, body in await asyncio.wait_for(consumer.read(), 5.0):
                if first >> 4 == PUBLISH:
                    received.append(body[2:2 + (body[0] << 8 | body[1])])
    except TimeoutError:
        pass  # what came is what the test compares
    await consumer.disconnect()
    return received


def test_messages_read_with_the_suback_are_kept_for_the_next_read(user_broker: str) -> None:
    """mosquitto sends a subscription's retained messages right after its SUBACK; read in
    the same buffer as the SUBACK they are the consumer's next packets, none dropped."""
    topics = [f"retained/{i}".encode() for i in range(20)]
    asyncio.run(_retain(user_broker, topics))
    assert sorted(asyncio.run(_subscribe_in_one_read(user_broker, topics))) == sorted(topics)


async def _subscribe_and_leave(url: str, client_id: str, topic_filter: str) -> None:
    stream = MqttStream(url, client_id, clean_session=False, timeout_s=5.0)
    await stream.open()
    await stream.subscribe(topic_filter, 1)
    await stream.disconnect()


async def _publish_acked(url: str, msg_ids: range) -> None:
    publisher = MqttStream(url, "publisher", clean_session=True, timeout_s=5.0)
    await publisher.open()
    for msg_id in msg_ids:
        publisher.write(publish_packet(b"orders", payload(msg_id, 0, 64), qos=1, packet_id=msg_id + 1))
    acked = 0
    while acked < len(msg_ids):
        acked += sum(first >> 4 == PUBACK for first, _ in await asyncio.wait_for(publisher.read(), 5.0))
    await publisher.disconnect()


async def _kept_for(url: str, client_id: str) -> list[int]:
    """The msg_ids mosquitto hands a persistent session when it connects again, before it
    answers the session's next packet (a SUBSCRIBE to a topic nobody publishes to)."""
    stream = MqttStream(url, client_id, clean_session=False, timeout_s=5.0)
    assert await stream.open(), "mosquitto kept the session"
    stream.write(subscribe_packet(1, "nobody-publishes-here", 1))
    kept: list[int] = []
    while True:
        for first, body in await asyncio.wait_for(stream.read(), 5.0):
            if first >> 4 == SUBACK:
                await stream.disconnect()
                return sorted(kept)
            if first >> 4 == PUBLISH:
                at = 2 + (body[0] << 8 | body[1])
                stream.write(ack_packet(PUBACK, body[at] << 8 | body[at + 1]))
                kept.append(HEADER.unpack_from(body, at + 2)[0])


def test_mosquitto_keeps_a_sessions_queued_messages_across_a_restart_but_not_its_shared_subscription(
        tmp_path: Path) -> None:
    """Two persistent sessions, one subscribed to ``orders``, one to ``$share/desk/orders``,
    both away; ten QoS 1 messages before a graceful restart (SIGTERM: mosquitto saves its
    database) and ten after it. The plain subscription is saved: it gets all twenty. The
    shared one is not (mosquitto's saved database holds a session's plain subscriptions
    only): it gets the ten queued in its session before the restart, and none published
    after it until it subscribes again."""
    binary = require_program("mosquitto", "/usr/sbin/mosquitto", install=INSTALL)
    port = free_port()
    (tmp_path / "data").mkdir()
    config = tmp_path / "mosquitto.conf"
    config.write_text(mosquitto_config(port, tmp_path / "data", tmp_path / "mosquitto.log"))
    server = ManagedServer("mosquitto", [binary, "-c", str(config)], port, tmp_path, 10.0)
    url = f"mqtt://127.0.0.1:{port}"
    server.start()
    try:
        asyncio.run(_subscribe_and_leave(url, "plain", "orders"))
        asyncio.run(_subscribe_and_leave(url, "shared", "$share/desk/orders"))
        asyncio.run(_publish_acked(url, range(10)))
        server.terminate()
        server.start()
        asyncio.run(_publish_acked(url, range(10, 20)))
        assert asyncio.run(_kept_for(url, "plain")) == list(range(20))
        assert asyncio.run(_kept_for(url, "shared")) == list(range(10))
    finally:
        server.stop()


@pytest.mark.slow
def test_on_a_users_broker_a_session_an_earlier_client_left_is_not_taken_over(tmp_path: Path,
                                                                             user_broker: str) -> None:
    asyncio.run(_leave_a_session(user_broker))
    scenario = _scenario(1, duration="1s", consumers=1, clean=False, drain="10s")
    result = run(scenario.model_copy(update={"live": scenario.live.model_copy(update={"url": user_broker})}),
                 tmp_path / "run")
    sent = sent_of(result.summary, 1000)
    assert _receipts(result)["consumer-0"] == list(range(sent)), "not the message queued before the run"
    delivery = result.summary["delivery"]
    assert delivery["unexpected"] == delivery["duplicated"] == delivery["lost"]["total"] == 0
    assert not (result.run_dir / "servers").exists() or not list((result.run_dir / "servers").glob("*.pid"))


def test_a_url_that_is_not_mqtt_is_refused_before_the_run(tmp_path: Path) -> None:
    scenario = _scenario(1, duration="1s")
    scenario = scenario.model_copy(update={"live": scenario.live.model_copy(update={"url": "redis://127.0.0.1:6379"})})
    with pytest.raises(TargetError, match=r"redis://127.0.0.1:6379: expected mqtt://host:port: live.url for "
                                          r"target \"mqtt\" is the broker's address"):
        run(scenario, tmp_path / "run")


@pytest.mark.slow
@pytest.mark.usefixtures("_mosquitto")
def test_a_paused_broker_delays_qos1_messages_and_loses_none(tmp_path: Path) -> None:
    """SIGSTOP mosquitto for 600 ms: the connections stay open, what is published meanwhile
    waits in the sockets and arrives once it runs again: latency, not loss or a reconnection."""
    pause = '\n[[faults]]\nkind = "pause"\nnode = "mosquitto"\nat = "700ms"\nduration = "600ms"\n'
    result = run(_scenario(1, faults=pause), tmp_path / "run")
    summary = result.summary
    sent = sent_of(summary, 2000)
    assert summary["messages"]["committed"] == sent
    receipts = _receipts(result)
    assert receipts["consumer-0"] == receipts["consumer-1"] == list(range(sent))
    # The first message held by the pause waited out most of it: of the window as it was applied
    # (each edge at its time or after; a loaded machine's stall of the run's loop sends one late).
    events = result.history.events.to_pylist()
    start, end = (next(e["t"] for e in events if e["kind"] == kind) for kind in ("fault_start", "fault_end"))
    assert start >= 700_000_000 and end >= 1_300_000_000
    assert summary["latency_ms"]["max"] >= 0.8 * (end - start) / 1e6, (start, end)
    kinds = _kinds(result)
    assert kinds["fault_start"] == kinds["fault_end"] == 1 and kinds["disconnected"] == 0
