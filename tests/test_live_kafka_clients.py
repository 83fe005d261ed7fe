"""What librdkafka says about msgstorm's Kafka clients: its lines in the run directory, never on
stderr, and a run client's lost connections counted as disconnects (``drivers/kafka_clients.py``).

The connections are read from librdkafka's statistics, written here by hand as it writes them
(a broker by node id, its state and its count of disconnects); the logs from a real client of
librdkafka's trying a port where nothing listens.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer

from msgstorm.live.drivers.base import Outages
from msgstorm.live.drivers.kafka import KafkaDriver
from msgstorm.live.drivers.kafka_clients import KafkaClients
from msgstorm.scenario import parse_scenario

SCENARIO = """
target = "kafka"

[run]
name = "kafka-clients"
duration = "1s"

[[agents]]
name = "traders"
arrival = { process = "constant", rate = "10/s" }
"""


def _stats(state: str, disconnects: int, bootstrap_disconnects: int = 0) -> str:
    """A statistics report as librdkafka writes one (the fields read here): broker 1 by node id,
    and the bootstrap address the client started from."""
    return json.dumps({"name": "msgstorm-producer#producer-1", "brokers": {
        "127.0.0.1:9092/1": {"name": "127.0.0.1:9092/1", "nodeid": 1, "nodename": "127.0.0.1:9092",
                             "state": state, "disconnects": disconnects},
        "127.0.0.1:9092/bootstrap": {"name": "127.0.0.1:9092/bootstrap", "nodeid": -1,
                                     "nodename": "127.0.0.1:9092", "state": "INIT",
                                     "disconnects": bootstrap_disconnects}}})


def test_a_lost_connection_is_one_disconnect_until_the_broker_is_up_again(tmp_path: Path) -> None:
    """Counted from ``begin`` to ``stop``: a count of disconnects that grew opens one outage of
    ``client/broker`` however many tries follow, the state UP again closes it; the bootstrap
    address's hand-over is no disconnect; one open at ``stop`` is said as such."""
    events: list[tuple[str, dict[str, Any]]] = []
    clients = KafkaClients(tmp_path, Outages(lambda kind, detail: events.append((str(kind), detail))),
                           lambda node, address: f"kafka-{node - 1}")
    clients.statistics("msgstorm-producer", _stats("UP", 0))
    clients.statistics("msgstorm-producer", _stats("TRY_CONNECT", 1))  # before the run: not counted
    clients.begin()
    clients.statistics("msgstorm-producer", _stats("UP", 1, bootstrap_disconnects=1))
    assert events == []
    clients.statistics("msgstorm-producer", _stats("TRY_CONNECT", 2))
    clients.statistics("msgstorm-producer", _stats("CONNECT", 3))
    clients.statistics("msgstorm-producer", _stats("UP", 3))
    assert [kind for kind, _ in events] == ["disconnected", "reconnected"], events
    assert events[0][1] == {"broker_state": "TRY_CONNECT", "client": "msgstorm-producer/kafka-0"}
    assert events[1][1]["client"] == "msgstorm-producer/kafka-0"
    clients.statistics("msgstorm-producer", _stats("INIT", 4))
    clients.stop()
    clients.statistics("msgstorm-producer", _stats("UP", 5))  # after the run: not counted
    assert [kind for kind, _ in events] == ["disconnected", "reconnected", "disconnected", "client_error"], events
    assert events[-1][1]["error"] == "still disconnected at the run's end"
    clients.close()


def test_librdkafka_lines_go_to_the_run_directory_not_stderr(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """The driver's producer, as it configures it, tries a port where nothing listens: what
    librdkafka says of it ("Connect to ... failed") is in servers/kafka-clients.log, and
    nothing reaches stderr (it did, past -q)."""
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    driver = KafkaDriver(parse_scenario(SCENARIO).live, tmp_path, lambda kind, detail: None)
    driver._bootstrap = f"127.0.0.1:{port}"
    producer = Producer(driver._producer_config())
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        producer.poll(0.05)
    del producer
    driver.clients.close()
    assert capfd.readouterr().err == ""
    said = (tmp_path / "servers" / "kafka-clients.log").read_text()
    assert f"Connect to ipv4#127.0.0.1:{port} failed" in said and "msgstorm-producer" in said, said
