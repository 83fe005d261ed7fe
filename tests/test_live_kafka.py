"""Live target against real Apache Kafka (KRaft mode), started from the pinned release's jars.

No mocks: msgstorm formats and starts the brokers itself, produces through librdkafka,
consumes in one consumer group and, after the run, reads every partition back and checks
each acknowledged (partition, offset) against the log. The tests that need the jars skip
outside CI with the fetch command as the reason (under ``CI=true`` a missing jar fails:
``.ci/run`` fetches them); the audit itself is checked on hand-made logs.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import assert_checks_valid, sent_of

from msgstorm.errors import TargetError
from msgstorm.history import read_history
from msgstorm.live.drivers.kafka import audit_log, bootstrap_servers
from msgstorm.live.drivers.kafka_broker import (
    FETCH,
    broker_properties,
    find_kafka_libs,
    java_command,
)
from msgstorm.live.servers import ServerError
from msgstorm.progress import ProgressSnapshot
from msgstorm.runner import RunResult, run
from msgstorm.scenario import Scenario, ScenarioError, load_scenario, parse_scenario

LIVE = """
target = "kafka"

[run]
name = "live-kafka"
duration = "{duration}"
drain = "20s"

[live]
consumers = {consumers}

[live.kafka]
{kafka}
{faults}
[[agents]]
name = "traders"
arrival = {{ process = "constant", rate = "{rate}/s" }}
size = "64B"
keys = 8
"""


def _scenario(kafka: str, duration: str = "2s", rate: int = 1000, consumers: int = 2, faults: str = "") -> Scenario:
    return parse_scenario(LIVE.format(kafka=kafka, duration=duration, rate=rate, consumers=consumers, faults=faults),
                          source="live-kafka.toml")


def _ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require_kafka() -> None:
    """The jars and a JVM, else skip naming how to get them (fail under CI=true)."""
    reason = None
    if shutil.which("java") is None:
        reason = "java is not installed (install a JDK 17+, e.g. apt-get install openjdk-17-jre-headless)"
    else:
        try:
            find_kafka_libs()
        except ServerError as error:
            reason = str(error)
    if reason is not None:
        if _ci():
            pytest.fail(f"{reason}; CI must fetch them in .ci/run")
        pytest.skip(reason)


@pytest.fixture()
def _kafka() -> None:
    require_kafka()


def _event(result: RunResult, kind: str) -> list[dict[str, Any]]:
    return [json.loads(str(e["detail"])) for e in result.history.events.to_pylist() if e["kind"] == kind]


def assert_nothing_left(run_dir: Path) -> None:
    for start in (e for e in read_history(run_dir).events.to_pylist() if e["kind"] == "server_start"):
        detail = json.loads(str(start["detail"]))
        with pytest.raises(ProcessLookupError):
            os.kill(int(detail["pid"]), 0)
        port = int(detail["url"].rsplit(":", 1)[1])
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still listens"


# --- without a broker -------------------------------------------------------------------------


def _ids(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def test_the_audit_classes_every_ack_against_the_log_read_back() -> None:
    # Acks: partition 0 offsets 0, 1, 2 hold msgs 10, 12, 14; partition 1 offsets 0, 1 hold 11, 13.
    acked = (_ids(10, 11, 12, 13, 14), _ids(0, 1, 0, 1, 0), _ids(0, 0, 1, 1, 2))
    # Partition 0 read back as acked. Partition 1 lost its offset 1 (an unclean leader had only
    # offset 0), then took msg 15 and msg 13 again at offsets 1 and 2: offset 1 holds another
    # message (replaced), and 15 before 13 is out of send order.
    logs = {0: (_ids(0, 1, 2), _ids(10, 12, 14)), 1: (_ids(0, 1, 2), _ids(11, 15, 13))}
    audit = audit_log(acked, logs)
    assert audit["acked"] == 5 and audit["at_offset"] == 4
    assert (audit["missing"], audit["replaced"], audit["out_of_order"], audit["duplicated"]) == (0, 1, 1, 0)
    assert audit["partitions"]["0"] == {"stored": 3, "missing": 0, "replaced": 0, "out_of_order": 0}
    assert audit["partitions"]["1"] == {"stored": 3, "missing": 0, "replaced": 1, "out_of_order": 1}
    assert audit["lost_acks"] == [[1, 1, 13]]


def test_the_audit_counts_offsets_past_the_log_end_as_missing_and_second_copies_as_duplicated() -> None:
    acked = (_ids(1, 2, 3), _ids(0, 0, 0), _ids(5, 6, 7))
    # The log ends at offset 6 (offset 7 gone: missing); msg 1 sits at its offset 5 and a second
    # copy of it in partition 1 (duplicated once).
    logs = {0: (_ids(5, 6), _ids(1, 2)), 1: (_ids(0,), _ids(1))}
    audit = audit_log(acked, logs)
    assert (audit["at_offset"], audit["missing"], audit["replaced"], audit["duplicated"]) == (2, 1, 0, 1)
    assert audit["partitions"]["1"] == {"stored": 1, "missing": 0, "replaced": 0, "out_of_order": 0}
    assert audit["lost_acks"] == [[0, 7, 3]]
    empty = audit_log((_ids(), _ids(), _ids()), {})
    assert (empty["acked"], empty["at_offset"], empty["partitions"], empty["lost_acks"]) == (0, 0, {}, [])


def test_a_broker_is_configured_as_broker_and_controller_on_loopback(tmp_path: Path) -> None:
    lines = set(broker_properties(2, 20001, {1: 21001, 2: 21002, 3: 21003}, tmp_path / "d", 3).splitlines())
    assert {"process.roles=broker,controller", "node.id=2",
            "controller.quorum.voters=1@127.0.0.1:21001,2@127.0.0.1:21002,3@127.0.0.1:21003",
            "listeners=PLAINTEXT://127.0.0.1:20001,CONTROLLER://127.0.0.1:21002",
            "advertised.listeners=PLAINTEXT://127.0.0.1:20001", f"log.dirs={tmp_path / 'd'}",
            "offsets.topic.replication.factor=3", "auto.create.topics.enable=false"} <= lines


def test_kafka_urls_name_the_bootstrap_brokers() -> None:
    assert bootstrap_servers("kafka://127.0.0.1:9092") == "127.0.0.1:9092"
    assert bootstrap_servers("kafka://127.0.0.1:9092,127.0.0.1:9093") == "127.0.0.1:9092,127.0.0.1:9093"
    for bad in ("nats://127.0.0.1:4222", "kafka://127.0.0.1", "kafka://"):
        with pytest.raises(ValueError, match="kafka://host:port|is not host:port"):
            bootstrap_servers(bad)


def test_missing_jars_are_reported_with_the_fetch_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MSGSTORM_KAFKA_LIBS", str(tmp_path))
    with pytest.raises(ServerError, match="no kafka_2.13 jar there") as caught:
        find_kafka_libs()
    assert FETCH in str(caught.value) and isinstance(caught.value, TargetError)


def test_a_machine_without_java_is_told_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "kafka_2.13-4.1.1.jar").write_bytes(b"")
    monkeypatch.setenv("MSGSTORM_KAFKA_LIBS", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))  # no java on it
    from msgstorm.live.drivers.kafka_broker import kafka_brokers

    with pytest.raises(ServerError, match="java not found: Apache Kafka needs Java 17"):
        kafka_brokers(1, tmp_path / "servers", 10.0)
    assert not (tmp_path / "servers").exists(), "nothing written before the check"


def test_the_storage_tool_runs_with_the_quick_jit_and_a_broker_with_the_full_one(tmp_path: Path) -> None:
    tool = java_command(tmp_path, "kafka.tools.StorageTool", "format", heap="-Xmx256m", tool=True)
    assert tool[:4] == ["java", "-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"]
    assert tool[-2:] == ["kafka.tools.StorageTool", "format"]
    broker = java_command(tmp_path, "kafka.Kafka", "server.properties")
    assert broker[:3] == ["java", "-Xmx512m", "-XX:+UseG1GC"] and not any("Tiered" in arg for arg in broker)


@pytest.mark.slow
@pytest.mark.usefixtures("_kafka")
def test_every_brokers_storage_is_formatted_at_once_for_one_cluster(tmp_path: Path) -> None:
    from msgstorm.live.drivers.kafka_broker import kafka_brokers

    servers = kafka_brokers(3, tmp_path / "servers", 60.0)
    assert [server.name for server in servers] == ["kafka-0", "kafka-1", "kafka-2"]
    metas = [dict(line.split("=", 1) for line in (tmp_path / "servers" / f"kafka-{k}-data" / "meta.properties")
                  .read_text().splitlines() if "=" in line and not line.startswith("#")) for k in range(3)]
    assert [meta["node.id"] for meta in metas] == ["1", "2", "3"]
    assert len({meta["cluster.id"] for meta in metas}) == 1, "one cluster id for the three"
    assert all(server.pid is None for server in servers), "formatted, not started"


@pytest.mark.parametrize("old, new, field, words", [
    ('acks = "all"', 'acks = "2"', "live.kafka.acks", "'0', '1' or 'all'"),
    ('acks = "all"', 'acks = "1"', "live.kafka", 'idempotence needs acks = "all"'),
    ("partitions = 2", "partitions = 2\nreplication = 3", "live.kafka", "needs as many brokers"),
    ("partitions = 2", "partitions = 2\nbrokers = 3\nreplication = 2\nmin_insync_replicas = 3", "live.kafka",
     "more than the topic's replication 2"),
    ("partitions = 2", "partitions = 0", "live.kafka.partitions", "greater than or equal to 1"),
])
def test_bad_kafka_settings_name_file_line_and_field(tmp_path: Path, old: str, new: str, field: str,
                                                      words: str) -> None:
    good = 'target = "kafka"\n[run]\nname = "k"\nduration = "1s"\n[live.kafka]\nacks = "all"\npartitions = 2\n' \
           '[[agents]]\nname = "t"\narrival = { process = "constant", rate = "10/s" }\n'
    path = tmp_path / "kafka.toml"
    path.write_text(good.replace(old, new))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    issue = caught.value.issues[0]
    assert (issue.file, issue.field) == (str(path), field)
    assert issue.line is not None and issue.line >= 5, issue
    assert words in issue.message, issue.message
    good_path = tmp_path / "good.toml"
    good_path.write_text(good)
    assert load_scenario(good_path).live.kafka.partitions == 2


# --- on real brokers ----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("_kafka")
def test_every_acknowledged_offset_holds_its_message_once_and_the_group_shares_them(tmp_path: Path) -> None:
    result = run(_scenario('partitions = 3\nacks = "all"\nidempotence = true'), tmp_path / "run")
    summary = result.summary
    assert summary["target"] == "kafka"
    sent = sent_of(summary, 2000)
    assert summary["messages"]["committed"] == sent and summary["messages"]["lost"] == 0
    assert_checks_valid(summary, ["conservation", "ordering", "committed-implies-sequenced", "stage-order", "safety",
                                  "liveness", "delivery", "generator"])
    # One ack each for the messages sent; none for those a generator behind at the end left unsent.
    seq_nos = result.history.messages.column("seq_no").to_pylist()
    assert seq_nos.count(None) == summary["messages"]["unsent"]
    assert sorted(n for n in seq_nos if n is not None) == list(range(sent)), "one ack each"
    by_consumer: dict[str, list[int]] = {}
    for row in result.history.deliveries.to_pylist():
        by_consumer.setdefault(row["node"], []).append(row["msg_id"])
    stream = by_consumer.pop("stream")
    assert sorted(stream) == list(range(sent)), "the log holds every message once"
    first, second = by_consumer["consumer-0"], by_consumer["consumer-1"]
    assert first and second and not set(first) & set(second), "the group split the partitions"
    assert sorted(first + second) == list(range(sent))
    delivery = summary["delivery"]
    assert delivery["fanout"] is False and delivery["expected"] == delivery["received"] == sent
    assert delivery["stream"] == {"stored": sent, "acked_missing": 0, "duplicated": 0, "unexpected": 0}
    [audit] = _event(result, "log_audit")
    assert audit["acked"] == audit["at_offset"] == sent
    assert audit["lost"] == audit["missing"] == audit["replaced"] == audit["out_of_order"] == audit["duplicated"] == 0
    # keys 8 over 3 partitions: key k to partition k % 3, so partitions 0 and 1 take keys
    # {0, 3, 6} and {1, 4, 7}, partition 2 keys {2, 5}: 3/8, 3/8 and 2/8 of the messages.
    # Of the messages sent: those a generator behind at the end left unsent never reached a partition.
    keys = [m["key"] for m in result.history.messages.to_pylist() if m["status"] != "unsent"]
    assert len(keys) == sent
    expected = [sum(1 for key in keys if key % 3 == p) for p in range(3)]
    assert [audit["partitions"][str(p)]["stored"] for p in range(3)] == expected
    assert_nothing_left(result.run_dir)


@pytest.mark.slow
@pytest.mark.usefixtures("_kafka")
def test_acks_0_commits_on_receipt_and_still_reads_the_log_back(tmp_path: Path) -> None:
    result = run(_scenario('partitions = 1\nacks = "0"\nidempotence = false', consumers=1, duration="1s"),
                 tmp_path / "run")
    summary = result.summary
    sent = sent_of(summary, 1000)
    assert summary["messages"]["committed"] == sent
    assert summary["delivery"]["stream"]["stored"] == sent
    [audit] = _event(result, "log_audit")
    assert audit["acked"] == 0 and audit["partitions"]["0"]["stored"] == sent
    assert_nothing_left(result.run_dir)


# The leader of partition 0 SIGKILLed 1.5 s in, started again on its port and data 2 s later.
CRASH_LEADER = """
[[faults]]
kind = "crash"
node = "leader"
at = "1.5s"
restart_after = "2s"
"""


@pytest.mark.slow
@pytest.mark.usefixtures("_kafka")
def test_a_killed_leader_loses_no_acknowledged_message_at_acks_all_and_min_insync_2(tmp_path: Path) -> None:
    kafka = 'partitions = 2\nbrokers = 3\nreplication = 3\nmin_insync_replicas = 2\nacks = "all"\nidempotence = true'
    scenario = _scenario(kafka, duration="4s", rate=500, faults=CRASH_LEADER)
    scenario = scenario.model_copy(update={"live": scenario.live.model_copy(update={"start_timeout": 90_000_000_000})})
    result = run(scenario, tmp_path / "run")
    summary = result.summary
    sent = sent_of(summary, 2000)
    [crash] = [e for e in _event(result, "fault_start") if e["kind"] == "crash"]
    assert crash["server"] in {"kafka-0", "kafka-1", "kafka-2"} and crash["signal"] == "SIGKILL"
    # Every acknowledged message is in the log at its offset, once, in send order.
    [audit] = _event(result, "log_audit")
    committed = summary["messages"]["committed"]
    assert audit["acked"] == audit["at_offset"] == committed == sent
    assert audit["lost"] == audit["missing"] == audit["replaced"] == 0
    assert audit["out_of_order"] == audit["duplicated"] == 0
    delivery = summary["delivery"]
    assert delivery["stream"] == {"stored": sent, "acked_missing": 0, "duplicated": 0, "unexpected": 0}
    assert delivery["lost"]["total"] == delivery["duplicated"] == 0
    stops = {e["name"]: e for e in _event(result, "server_stop")}
    assert set(stops) == {"kafka-0", "kafka-1", "kafka-2"}
    assert_nothing_left(result.run_dir)


@pytest.mark.slow
@pytest.mark.usefixtures("_kafka")
def test_a_broker_killed_from_outside_is_stamped_when_it_died_not_at_the_runs_end(tmp_path: Path) -> None:
    """The one broker SIGKILLed by the test once the run's clock has passed 1 s of a 4 s
    run: its ``server_stop`` (``exited_early``) is in the history at the time its exit was
    found, within a poll of the kill, not at the run's end; the run still ends with its summary."""
    run_dir = tmp_path / "run"
    killed_at: list[int] = []

    def kill_once_a_second_in(snapshot: ProgressSnapshot) -> None:
        if not killed_at and not snapshot.final and snapshot.t_ns >= 1_000_000_000 and snapshot.sent > 0:
            os.kill(int((run_dir / "servers" / "kafka-0.pid").read_text()), signal.SIGKILL)
            killed_at.append(snapshot.t_ns)  # the run's clock at or before the kill

    scenario = _scenario('partitions = 1\nacks = "1"\nidempotence = false', duration="4s", consumers=1)
    scenario = scenario.model_copy(update={
        "run": scenario.run.model_copy(update={"drain": 2_000_000_000}),
        "live": scenario.live.model_copy(update={"read_back_timeout": 2_000_000_000})})
    result = run(scenario, run_dir, kill_once_a_second_in)
    assert killed_at, "the run never reached 1 s"
    events = result.history.events.to_pylist()
    [stop] = [e for e in events if e["kind"] == "server_stop"]
    detail = json.loads(str(stop["detail"]))
    assert detail["name"] == "kafka-0" and detail["exited_early"] is True and detail["returncode"] == -9
    run_end = next(e["t"] for e in events if e["kind"] == "run_end")
    assert killed_at[0] <= stop["t"] < killed_at[0] + 1_000_000_000 < run_end, (killed_at, stop["t"], run_end)
    assert result.summary["connections"]["servers_exited"] == [{"name": "kafka-0", "returncode": -9}]
    assert_nothing_left(result.run_dir)


def test_a_pause_may_name_the_followers_of_partition_0_only_on_a_replicated_topic(tmp_path: Path) -> None:
    pause = '\n[[faults]]\nkind = "pause"\nnode = "followers"\nat = "1s"\nduration = "1s"\n'
    crash = '\n[[faults]]\nkind = "crash"\nnode = "leader"\nat = "1.5s"\n'
    replicated = _scenario("partitions = 1\nbrokers = 3\nreplication = 3", faults=pause + crash)
    assert [f.node for f in replicated.faults] == ["followers", "leader"]
    with pytest.raises(ScenarioError) as caught:
        _scenario("partitions = 1\nbrokers = 3\nreplication = 1", faults=pause)
    [issue] = caught.value.issues
    assert issue.field == "faults[0].node" and issue.file == "live-kafka.toml" and issue.line is not None, issue
    assert "'followers' (the followers) names a server of a replicated stream" in issue.message
    assert "live.kafka.replication above 1" in issue.message


# --- the acks = "1" loss (examples/live-kafka-acks1-loss.toml) ---------------------------------


def _watermarks(reader: Any, partition: Any) -> tuple[int, int]:
    """The low and high watermarks of ``partition``, asked again while the restarted brokers are
    still electing its leader (NOT_LEADER_FOR_PARTITION, LEADER_NOT_AVAILABLE) or its new leader's
    high watermark has not caught up (OFFSET_NOT_AVAILABLE), for 90 s at most."""
    from confluent_kafka import KafkaError, KafkaException

    electing = {KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE,
                KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError.OFFSET_NOT_AVAILABLE}
    deadline = time.monotonic() + 90.0
    while True:
        try:
            low, high = reader.get_watermark_offsets(partition, timeout=30)
            return int(low), int(high)
        except KafkaException as error:
            if error.args[0].code() not in electing or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _survivors_log(run_dir: Path, names: list[str]) -> dict[int, int]:
    """Partition 0 of the example's topic as the brokers ``names`` hold it: each started again
    from its data and properties as the run left them (the third was killed for good), read
    with a consumer of its own from offset 0 to the high watermark: {offset: msg_id}."""
    from confluent_kafka import Consumer, TopicPartition

    from msgstorm.live.payload import message_id
    from msgstorm.live.servers import ManagedServer

    servers = []
    for name in names:
        config = run_dir / "servers" / f"{name}.properties"
        listeners = next(line for line in config.read_text().splitlines() if line.startswith("listeners="))
        port = int(listeners.split(",")[0].rsplit(":", 1)[1])
        servers.append(ManagedServer(f"{name}-again", java_command(find_kafka_libs(), "kafka.Kafka", str(config)),
                                     port, run_dir / "servers", 90.0))
    try:
        for server in servers:
            server.spawn()
        for server in servers:
            server.wait_listening()
        reader = Consumer({"bootstrap.servers": ",".join(f"127.0.0.1:{s.port}" for s in servers),
                           "group.id": "test-read", "enable.auto.commit": False})
        try:
            low, high = _watermarks(reader, TopicPartition("orders", 0))
            assert low == 0, "nothing was deleted: the log starts at offset 0"
            reader.assign([TopicPartition("orders", 0, 0)])
            log: dict[int, int] = {}
            while len(log) < high:
                # No more than are left to read: consume returns once it has as many as asked
                # for, and waits out its whole timeout for a batch the log cannot fill.
                batch = reader.consume(min(1000, high - len(log)), timeout=30)
                assert batch, f"partition 0 read to {len(log)} of {high}, then nothing for 30 s"
                for message in batch:
                    if message.error() is None and (message.offset() or 0) < high:
                        msg_id = message_id(message.value() or b"")
                        assert msg_id is not None
                        log[message.offset() or 0] = msg_id
        finally:
            reader.close()
        return log
    finally:
        # Killed, not stopped: their log is read and nothing more is wanted of them, and a
        # graceful stop of the last would wait out its timeout for the quorum gone with the others.
        for server in servers:
            server.kill()
            server.stop()  # what ``kill`` leaves for the end of a run: the server is done with


# At acks = "1" the writes lost never arrive, so the drain lasts its whole length (the
# example's 20 s): 10 s is still twice what the consumer takes to read the survivors' log to
# its end after the sending (the new leader's election first: about 4 s on a loaded machine).
# At acks = "all" everything arrives and the drain ends as soon as it has.
LOSS_DRAIN = 'run.drain="10s"'


def _loss_run(tmp_path: Path, acks: str) -> tuple[RunResult, dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The example's schedule at ``acks``: the run, its pause and crash ``fault_start``s."""
    scenario = load_scenario(Path(__file__).parents[1] / "examples" / "live-kafka-acks1-loss.toml",
                             [LOSS_DRAIN] if acks == "1" else [])
    if acks == "all":
        kafka = scenario.live.kafka.model_copy(update={"acks": "all", "idempotence": True})
        scenario = scenario.model_copy(update={"live": scenario.live.model_copy(update={"kafka": kafka})})
    result = run(scenario, tmp_path / "run")
    [pause] = [e for e in _event(result, "fault_start") if e["kind"] == "pause"]
    [crash] = [e for e in _event(result, "fault_start") if e["kind"] == "crash"]
    # The pause stopped the two followers of partition 0; the crash then killed its leader, the third.
    assert len(pause["servers"]) == 2 and crash["server"] not in pause["servers"]
    assert set(pause["servers"]) | {crash["server"]} == {"kafka-0", "kafka-1", "kafka-2"}
    return result, pause, crash, [e for e in _event(result, "fault_end") if e["kind"] == "pause"][0]


@pytest.mark.slow
@pytest.mark.usefixtures("_kafka")
def test_acks_1_loses_acknowledged_writes_when_the_leader_dies_alone_and_the_audit_counts_them_exactly(
        tmp_path: Path) -> None:
    result, pause, crash, _ = _loss_run(tmp_path, "1")
    summary = result.summary
    sent = sent_of(summary, 4000)
    messages = result.history.messages.to_pylist()
    acked = {row["msg_id"] for row in messages if row["t_committed"] is not None}
    assert len(acked) == summary["messages"]["committed"] == sent, "acks = 1: every message sent was acked"
    # The log as the two survivors hold it, read by this test alone.
    log = _survivors_log(result.run_dir, sorted(pause["servers"]))
    held = set(log.values())
    assert len(held) == len(log), "no message is stored twice"
    lost_ids = acked - held
    [audit] = _event(result, "log_audit")
    assert len(lost_ids) > 0, "acks = 1 with the followers paused: the dead leader's own writes are gone"
    assert audit["lost"] == audit["missing"] + audit["replaced"] == len(lost_ids)
    assert audit["acked"] == sent and audit["at_offset"] == sent - len(lost_ids)
    # Each (partition, offset) the audit lists as lost is missing from the log or holds another message.
    assert len(audit["lost_acks"]) == len(lost_ids)
    assert {msg_id for _, _, msg_id in audit["lost_acks"]} == lost_ids
    for partition, offset, msg_id in audit["lost_acks"]:
        assert partition == 0 and log.get(offset) != msg_id
    replaced = sum(1 for _, offset, _ in audit["lost_acks"] if offset in log)
    assert (audit["replaced"], audit["missing"]) == (replaced, len(lost_ids) - replaced)
    # The lost writes were acked while the followers were paused (2 s, before the crash).
    acked_at = {row["msg_id"]: row["t_committed"] for row in messages}
    t_pause = next(e["t"] for e in result.history.events.to_pylist()
                   if e["kind"] == "fault_start" and json.loads(str(e["detail"]))["kind"] == "pause")
    assert all(t_pause - 1_000_000_000 < acked_at[msg_id] for msg_id in lost_ids)
    # The history agrees: the lost messages are acked (committed) yet never received by the
    # consumer nor in the stream read back; the delivery check says so and fails.
    received = {row["msg_id"] for row in result.history.deliveries.to_pylist() if row["node"] == "consumer-0"}
    stream = {row["msg_id"] for row in result.history.deliveries.to_pylist() if row["node"] == "stream"}
    assert stream == held and not lost_ids & received
    delivery = summary["delivery"]
    assert delivery["stream"]["acked_missing"] == len(lost_ids) and delivery["stream"]["stored"] == len(held)
    assert delivery["lost"]["total"] == delivery["lost"]["acked"] == len(lost_ids) == sent - len(received)
    verdicts = {check["name"]: check for check in summary["checks"]}
    assert verdicts["delivery"]["verdict"] == "invalid"
    assert f"{len(lost_ids)} acked messages missing from the stream read back" in verdicts["delivery"]["detail"]
    assert crash["signal"] == "SIGKILL"
    assert_nothing_left(result.run_dir)


@pytest.mark.slow
@pytest.mark.usefixtures("_kafka")
def test_the_same_schedule_at_acks_all_and_min_insync_2_loses_nothing_acknowledged(tmp_path: Path) -> None:
    result, pause, _, resumed = _loss_run(tmp_path, "all")
    summary = result.summary
    sent = sent_of(summary, 4000)
    [audit] = _event(result, "log_audit")
    assert audit["lost"] == audit["missing"] == audit["replaced"] == audit["duplicated"] == 0 and audit["lost_acks"] == []
    assert audit["acked"] == audit["at_offset"] == summary["messages"]["committed"] == sent
    # No ack while the followers were paused: the leader could not copy a write to a second
    # in-sync replica (a fetch sent just before the SIGSTOP may still move the watermark in
    # the first moments, hence the 0.5 s); the writes of the pause were acked by the new leader.
    events = result.history.events.to_pylist()
    t_pause = next(e["t"] for e in events if e["kind"] == "fault_start" and json.loads(str(e["detail"]))["kind"] == "pause")
    t_resumed = next(e["t"] for e in events if e["kind"] == "fault_end" and json.loads(str(e["detail"]))["kind"] == "pause")
    acked_at = [row["t_committed"] for row in result.history.messages.to_pylist() if row["t_committed"] is not None]
    assert not [t for t in acked_at if t_pause + 500_000_000 < t < t_resumed]
    assert resumed["servers"] == pause["servers"]
    log = _survivors_log(result.run_dir, sorted(pause["servers"]))
    assert sorted(log.values()) == list(range(sent)), "every message acked is in the survivors' log, once"
    delivery = summary["delivery"]
    assert delivery["stream"] == {"stored": sent, "acked_missing": 0, "duplicated": 0, "unexpected": 0}
    assert_nothing_left(result.run_dir)


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """One UUID in 64 encodes to a leading "-", which the storage tool read as an option
    ("argument --cluster-id/-t: expected one argument"): such a draw is drawn again."""
    import uuid

    from msgstorm.live.drivers import kafka_broker

    dash_first = uuid.UUID(bytes=bytes([0xF8]) + bytes(15))  # base64 "-A..."
    draws = iter([dash_first, uuid.UUID(int=1)])
    monkeypatch.setattr(kafka_broker.uuid, "uuid4", lambda: next(draws))
    drawn = kafka_broker.cluster_id()
    assert drawn == "AAAAAAAAAAAAAAAAAAAAAQ" and len(drawn) == 22
