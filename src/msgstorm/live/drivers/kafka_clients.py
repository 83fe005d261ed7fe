"""What librdkafka says about msgstorm's Kafka clients, in msgstorm's hands rather than on stderr.

Place in the pipeline: under ``drivers/kafka.py``, which gives every client it makes
(producer, consumers, the admin client, the read-back reader) ``config(client)``.

- Logs: librdkafka writes its own lines (``%3|...|FAIL|...``) to stderr, past ``-q``. Here
  each client's go to a ``logging.Logger`` of this object's (confluent-kafka's ``logger``),
  served when the client is polled, and from it to ``RUN_DIR/servers/kafka-clients.log``.
  ``log.connection.close`` is off: a broker closing an idle connection is no trouble (the
  client opens it again when it needs it), and its line would read as a disconnect.
- Disconnects: a run's clients (the producer and the consumers, ``counted``) send their
  statistics every ``STATS_MS``; for each broker (by node id, not the bootstrap address)
  they hold the connection's state and how many times it was lost. A count that grew is a
  disconnect of that client from that broker, told to ``Outages`` as client
  ``<client>/<broker>``; the state ``UP`` again is its reconnection. Those make the summary's
  ``disconnects`` and the time each client was down, as on every other target.

Not counted, and why: the admin client's and the read-back reader's connections (they are
msgstorm's own setup and audit, not the run's clients); anything before the run's clients
have connected (``begin``) or after they begin to close (the driver destroys them before it
stops the brokers, so no client sees the brokers stopped at the end go away); the bootstrap
connection a client drops once it knows the brokers by node id (librdkafka's own hand-over).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from msgstorm.live.drivers.base import Outages

__all__ = ["STATS_MS", "KafkaClients"]

STATS_MS = 250  # how often a counted client sends its statistics: the resolution of its down time
LOG_FILE = "kafka-clients.log"


class KafkaClients:
    """The logger every client writes to, and the connections the run's clients hold.
    ``broker_name(node_id, address)`` names a broker as the history does (``kafka-0``).
    Its life: ``config`` for each client, ``begin`` once they are connected, ``stop`` when
    they begin to close, ``close`` once they are gone."""

    def __init__(self, directory: Path, outages: Outages, broker_name: Callable[[int, str], str]) -> None:
        self.outages = outages
        self.broker_name = broker_name
        # Counted from ``begin`` (the clients connected, the run about to start) until ``close``;
        # reports before only set where each connection's count starts.
        self.counting = False
        self._lost: dict[tuple[str, int], int] = {}  # (client, node id) -> disconnects seen so far
        self.directory = directory
        self.path = directory / LOG_FILE
        # A logger of this object's own (not looked up by name: no two drivers share one), that
        # writes only to the file (opened at the first line).
        self.logger = logging.Logger(f"msgstorm.kafka.{id(self)}", logging.DEBUG)
        self._file = logging.FileHandler(self.path, encoding="utf-8", delay=True)
        self._file.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        self.logger.addHandler(self._file)
        # A line after ``close`` (a consumer still leaving its group) is dropped here: a logger
        # without a handler would hand a warning to Python's last resort, stderr.
        self.logger.addHandler(logging.NullHandler())

    def config(self, client: str, counted: bool = False) -> dict[str, Any]:
        """librdkafka settings for a client named ``client``: its logs here, and with
        ``counted`` (a run's client) its statistics read for disconnects."""
        self.directory.mkdir(parents=True, exist_ok=True)
        settings: dict[str, Any] = {"client.id": client, "logger": self.logger, "log.connection.close": False}
        if counted:
            settings |= {"statistics.interval.ms": STATS_MS, "stats_cb": lambda text: self.statistics(client, text)}
        return settings

    def begin(self) -> None:
        """The run's clients are connected: their disconnects count from now."""
        self.counting = True

    def statistics(self, client: str, text: str) -> None:
        """One statistics report of ``client`` (librdkafka's JSON): its brokers' connections."""
        for broker in json.loads(text).get("brokers", {}).values():
            node = int(broker.get("nodeid", -1))
            if node < 0:  # a bootstrap address, dropped once the brokers are known by id
                continue
            key = (client, node)
            lost = int(broker.get("disconnects", 0))
            name = f"{client}/{self.broker_name(node, str(broker.get('nodename', '')))}"
            before = self._lost.get(key)
            self._lost[key] = lost
            if not self.counting:
                continue
            if before is not None and lost > before:
                self.outages.down(name, {"broker_state": broker.get("state")})
            if broker.get("state") == "UP":
                self.outages.up(name)

    def stop(self) -> None:
        """The run's clients begin to close: nothing more is counted, and the outages still
        open are said (``Outages.close``)."""
        self.counting = False
        self.outages.close()

    def close(self) -> None:
        """The clients are gone: the log file is closed."""
        self.logger.removeHandler(self._file)
        self._file.close()
