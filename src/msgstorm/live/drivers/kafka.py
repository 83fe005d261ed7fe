"""Apache Kafka (KRaft mode) through confluent-kafka (librdkafka), with a read-back audit
of every partition's log.

Place in the pipeline: a live driver (``drivers/base.py``). Without ``live.url`` it starts
``live.kafka.brokers`` brokers (1 or 3) from the pinned release's jars (``kafka_broker.py``:
each broker and controller, its storage formatted under ``RUN_DIR/servers/``), and stops
them on every exit. With ``live.url`` (``kafka://host:port[,host:port...]``, the bootstrap
brokers) the cluster is the user's, and the topic must not exist yet.

``[live.kafka]``: msgstorm creates ``topic`` with ``partitions`` partitions, ``replication``
copies of each, ``min.insync.replicas`` and ``unclean.leader.election.enable`` as set. One
producer (librdkafka, ``acks``, ``enable.idempotence``, ``linger.ms``, ``batch.size``)
sends each message to partition ``key`` modulo ``partitions``, so one key's messages keep
their order in one partition. ``live.consumers`` consumers join one consumer group
(``group``): each message goes to one of them (``fanout`` False); ``connect`` returns once
the group has assigned every partition. Why librdkafka rather than a client of msgstorm's
own (as for NATS): its producer batches per partition in C threads, and handing it a message
costs about 3 us in Python, well under what a loopback broker on this machine takes.

Acks: the delivery report of each message, from the producer's ``poll``, with the broker's
(partition, offset) for it, which the read-back audit checks; ``order`` (``seq_no``) counts
the reports in the order they came (an offset orders one partition only). ``acks = "0"`` has no ack (``acks``
False): a message is committed by its first receipt. A delivery report with an error
(refused: too few in-sync replicas past ``message.timeout.ms``, a topic gone) is a lost
publish, counted in one ``client_error`` event at the end.

The read-back audit (``read_back``): after the run a consumer outside the group reads every
partition from its first offset to its high watermark (the offsets every in-sync replica
has); the ids read are the ``stream`` copy the delivery check counts (acked and not stored:
``acked_missing``; stored twice: ``duplicated``), and ``audit_log`` checks the log itself
against the acks: every acknowledged (partition, offset) holds its message (``at_offset``),
or is gone (``missing``: the log ends before it) or holds another message (``replaced``: an
unclean leader wrote over it), and each partition's messages are in send order. One
``log_audit`` event says it all, per partition.

Faults: the brokers are ``Servers`` (pause, crash, restart them by name, ``kafka-<i>``);
with ``replication`` above 1 a crash or a pause may name ``node = "leader"``, the leader of
partition 0 now, and a pause ``node = "followers"``, the brokers holding its other replicas
(``Servers.leader``), as the brokers not paused see them.

History mapping: ``t_sent`` the message was handed to the producer; ``t_sequenced`` =
``t_committed`` its delivery report arrived (acks 1 / all), ``seq_no`` the order of the
reports; at acks 0 both are the first receipt and ``seq_no`` the order
of first receipts. Consumer receipts are ``deliveries`` rows (``consumer-<i>``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from msgstorm.history.events import EventKind
from msgstorm.live.drivers.base import Callbacks, DriverState, OnAck, OnEvent, OnReceipt
from msgstorm.live.drivers.capabilities import Capabilities, Sending, Servers
from msgstorm.live.drivers.kafka_broker import kafka_brokers
from msgstorm.live.drivers.kafka_clients import KafkaClients
from msgstorm.live.payload import HEADER, StoredCopy, message_id, pack_payloads
from msgstorm.live.payload import warm_up as warm_up_payloads
from msgstorm.live.servers import ManagedServer, ServerError, require_loopback
from msgstorm.scenario.live import LiveSpec, OwnNames
from msgstorm.scenario.registry import LIVE_DRIVERS

__all__ = ["KafkaDriver", "audit_log", "bootstrap_servers"]

PUBLISHER = "msgstorm-producer"
ADMIN = "msgstorm-admin"
# A message the producer could not deliver within this long is reported failed (librdkafka's
# default, 300 s, would outlast any drain).
DELIVERY_TIMEOUT_MS = 30_000
# ``flush`` waits at most this for the last delivery reports; the target's drain waits on after it.
FLUSH_TIMEOUT_S = 5.0
# ``close`` waits at most this for each consumer to leave its group.
CLOSE_TIMEOUT_S = 5.0
POLL_IDLE_S = 0.0005  # an idle poller (producer's reports, a consumer's messages) sleeps this long
CONSUME_BATCH = 2048
ADMIN_TIMEOUT_S = 30.0
# The log_audit event lists at most this many lost acks one by one (its counts are exact past it).
LOST_LISTED = 100_000


def bootstrap_servers(url: str) -> str:
    """``kafka://host:port[,host:port...]`` -> librdkafka's ``host:port,...``; ValueError
    naming what is wrong."""
    parts = urlsplit(url)
    if parts.scheme != "kafka" or not parts.netloc:
        raise ValueError(f"{url!r} is not a kafka://host:port URL")
    hosts = parts.netloc.split(",")
    for host in hosts:
        name, _, port = host.rpartition(":")
        if not name or not port.isdigit():
            raise ValueError(f"{url!r}: {host!r} is not host:port")
    return ",".join(hosts)


def audit_log(acked: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]],
              logs: Mapping[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]) -> dict[str, Any]:
    """The acks against the log read back. ``acked``: (msg_ids, partitions, offsets) of every
    acknowledged message; ``logs``: {partition: (offsets, msg_ids)} as read, in log order.
    Each ack is ``at_offset`` (its offset holds it), ``missing`` (the log has no such offset)
    or ``replaced`` (the offset holds another message); ``out_of_order``: messages read after
    a later-sent one of the same partition (ids are given in send order); ``duplicated``:
    reads of an id beyond its first, over every partition; ``lost_acks``: the first
    ``LOST_LISTED`` acks missing or replaced, as [partition, offset, msg_id] in partition
    and offset order (a reader can check each against the log itself)."""
    ids, partitions, offsets = acked
    result: dict[str, Any] = {"acked": int(ids.size), "at_offset": 0, "missing": 0, "replaced": 0,
                              "out_of_order": 0, "duplicated": 0, "partitions": {}, "lost_acks": []}
    every = [log_ids for _, log_ids in logs.values()]
    read = np.concatenate(every) if every else np.zeros(0, dtype=np.int64)
    result["duplicated"] = int(read.size - np.unique(read).size)
    for partition in sorted(set(logs) | set(np.unique(partitions).tolist())):
        log_offsets, log_ids = logs.get(partition, (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)))
        mine = partitions == partition
        want_ids, want_offsets = ids[mine], offsets[mine]
        at = np.minimum(np.searchsorted(log_offsets, want_offsets), max(log_offsets.size - 1, 0))
        found = (log_offsets[at] == want_offsets) if log_offsets.size else np.zeros(want_offsets.size, dtype=bool)
        same = found & (log_ids[at] == want_ids) if log_offsets.size else found
        before = np.maximum.accumulate(log_ids)[:-1] if log_ids.size else log_ids
        out_of_order = int((log_ids[1:] < before).sum()) if log_ids.size else 0
        counts = {"stored": int(log_ids.size), "missing": int((~found).sum()), "replaced": int((found & ~same).sum()),
                  "out_of_order": out_of_order}
        result["partitions"][str(partition)] = counts
        gone = np.flatnonzero(~same)
        gone = gone[np.argsort(want_offsets[gone], kind="stable")][:max(LOST_LISTED - len(result["lost_acks"]), 0)]
        result["lost_acks"] += [[partition, offset, msg_id] for offset, msg_id in
                                zip(want_offsets[gone].tolist(), want_ids[gone].tolist(), strict=True)]
        result["at_offset"] += int(same.sum())
        result["missing"] += counts["missing"]
        result["replaced"] += counts["replaced"]
        result["out_of_order"] += out_of_order
    return result


def _describe(error: object) -> str:
    return f"{type(error).__name__}: {error}"


@LIVE_DRIVERS.register("kafka")
class KafkaDriver:
    capabilities = Capabilities(sending=Sending(bursts=True, bulk_acks=True), servers=Servers(leader=True), accounting=True)
    # ``--target SCHEME://host:port`` picks this driver (a bootstrap broker's host:port): the scheme
    # -> the scheme its client connects with.
    url_schemes: ClassVar[dict[str, str]] = {"kafka": "kafka"}

    @staticmethod
    def generator_names(live: LiveSpec, index: int) -> OwnNames:
        """Generator ``index`` of a distributed run (``live/distributed.py``): the topic
        ``live.kafka.topic`` + ``.gK`` and the consumer group ``live.kafka.group`` + ``.gK``
        (one group across topics would rebalance every generator's consumers whenever
        another's join)."""
        kafka = live.kafka
        return {"kafka": {"topic": f"{kafka.topic}.g{index}", "group": f"{kafka.group}.g{index}"}}

    fanout = False

    def __init__(self, spec: LiveSpec, run_dir: Path, on_event: OnEvent) -> None:
        self.spec = spec
        self.settings = spec.kafka  # [live.kafka]
        self.acks = self.settings.acks != "0"
        self.run_dir = run_dir
        self.on_event = on_event
        self.url = spec.url
        self.servers: list[ManagedServer] = []
        self.burst = self.settings.burst
        self._bootstrap = ""
        self._topic = self.settings.topic
        # A topic of its own for the producer's first message, before the run (``_warm_up``).
        self._warm_up_topic = f"{self.settings.topic}.msgstorm-warm-up"
        self._partitions = self.settings.partitions
        self._producer: Producer | None = None
        self._admin: AdminClient | None = None  # made with the topic
        self._consumers: list[Consumer] = []
        self._assigned: list[set[int] | None] = []
        self._staged: list[tuple[list[int], list[int], bytes, list[int]]] = []  # ids, partitions, data, ends
        self._staged_at = 0  # the next message of the first staged burst
        # The delivery reports one poll brought: ids, partitions, offsets.
        self._report_ids: list[int] = []
        self._report_partitions: list[int] = []
        self._report_offsets: list[int] = []
        self._acked: list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]] = []
        self._failed = 0
        self._last_failure = ""
        self._ack_count = 0  # delivery reports so far: the next one's order
        self._closing = False
        self._tasks: list[asyncio.Task[None]] = []
        # librdkafka's logs (to RUN_DIR/servers/kafka-clients.log) and the run's clients' disconnects.
        self.state = DriverState(on_event)  # counts, outages, callbacks
        self.clients = KafkaClients(run_dir / "servers", self.state.outages, self._broker_name)

    # --- the servers ----------------------------------------------------------------------

    @staticmethod
    def server_names(spec: LiveSpec) -> list[str]:
        return [] if spec.url is not None else [f"kafka-{k}" for k in range(spec.kafka.brokers)]

    def _broker_name(self, node_id: int, address: str) -> str:
        """A broker as the history names it: ``kafka-<i>`` for one msgstorm started (node id
        i + 1), else its address (a user's cluster)."""
        return f"kafka-{node_id - 1}" if self.servers else (address or f"node {node_id}")

    def server_url(self, server: ManagedServer) -> str:
        return f"kafka://127.0.0.1:{server.port}"

    @staticmethod
    def elects_leader(spec: LiveSpec) -> bool:
        return spec.url is None and spec.kafka.replication > 1

    def _answering(self) -> str:
        """The bootstrap brokers that can answer now: those msgstorm started that run and are
        not paused (a metadata request sent to a paused one waits out its timeout)."""
        running = [f"127.0.0.1:{server.port}" for server in self.servers
                   if not server.paused and server.process is not None and server.process.poll() is None]
        return ",".join(running) or self._bootstrap

    async def _partition_zero(self) -> tuple[int, list[int]]:
        """Partition 0 of the topic now, as the answering brokers see it: its leader's node
        id and its replicas' ids."""
        admin = AdminClient({"bootstrap.servers": self._answering(), **self.clients.config(ADMIN)})
        metadata = await asyncio.get_running_loop().run_in_executor(
            None, lambda: admin.list_topics(self._topic, timeout=10))
        admin.poll(0)  # its log lines, to the log file
        partition = metadata.topics[self._topic].partitions[0]
        if partition.leader < 1:
            raise ServerError(f"partition 0 of {self._topic} has no leader now")
        return partition.leader, list(partition.replicas)

    async def stream_leader(self) -> str:
        """The broker leading partition 0 of the topic now."""
        leader, _ = await self._partition_zero()
        return f"kafka-{leader - 1}"

    async def stream_followers(self) -> list[str]:
        """The brokers holding partition 0's other replicas (in its ISR or not)."""
        leader, replicas = await self._partition_zero()
        return [f"kafka-{node - 1}" for node in sorted(replicas) if node != leader]

    def start_servers(self) -> list[dict[str, Any]]:
        if self.url is not None:
            try:
                self._bootstrap = bootstrap_servers(self.url)
            except ValueError as error:
                raise ServerError(f"{error}: live.url for target \"kafka\" names the bootstrap brokers, e.g. "
                                  "kafka://127.0.0.1:9092") from error
            for host in self._bootstrap.split(","):
                require_loopback(f"kafka://{host}", self.spec.allow_remote)
            return []
        directory = self.run_dir / "servers"
        self.servers = kafka_brokers(self.settings.brokers, directory, self.spec.start_timeout / 1e9)
        for server in self.servers:  # every JVM at once: each takes seconds to start
            server.spawn()
        for server in self.servers:
            server.wait_listening()
        self._bootstrap = ",".join(f"127.0.0.1:{server.port}" for server in self.servers)
        self.url = f"kafka://{self._bootstrap}"
        return [{"name": server.name, "pid": server.pid, "url": self.server_url(server), "cpus": server.cpus}
                for server in self.servers]

    def stop_servers(self) -> None:
        # Every broker at once: each one's controlled shutdown goes on beside the others' (one
        # after another, a broker whose quorum left first waits out its timeout alone).
        if len(self.servers) > 1:
            with concurrent.futures.ThreadPoolExecutor(len(self.servers)) as pool:
                list(pool.map(lambda server: server.stop(), self.servers))
        for server in self.servers:
            server.stop()  # a no-op for one stopped above

    # --- connecting -----------------------------------------------------------------------

    def _create_topic(self) -> None:
        """The topic, made once every broker has joined (a topic made before has too few
        brokers to place its replicas on)."""
        admin = self._admin = AdminClient({"bootstrap.servers": self._bootstrap, **self.clients.config(ADMIN)})
        deadline = time.monotonic() + ADMIN_TIMEOUT_S
        while len(admin.list_topics(timeout=10).brokers) < self.settings.replication:
            if time.monotonic() > deadline:
                raise ServerError(f"fewer than {self.settings.replication} Kafka brokers joined within "
                                  f"{ADMIN_TIMEOUT_S:g} s")
            time.sleep(0.1)
        config = {"min.insync.replicas": str(self.settings.min_insync_replicas),
                  "unclean.leader.election.enable": str(self.settings.unclean_leader_election).lower()}
        topics = [NewTopic(self._topic, self._partitions, self.settings.replication, config=config),
                  NewTopic(self._warm_up_topic, 1, self.settings.replication)]
        made = admin.create_topics(topics, operation_timeout=ADMIN_TIMEOUT_S)
        for name, future in made.items():
            try:
                future.result(ADMIN_TIMEOUT_S)
            except KafkaException as error:
                raise ServerError(f"creating topic {name!r} ({self._partitions} partitions, replication "
                                  f"{self.settings.replication}) failed: {error.args[0]}") from error
        admin.poll(0)  # its log lines, to the log file

    def _warm_up(self, producer: Producer) -> None:
        """One message to the warm-up topic, its delivery report awaited: the producer has
        its connection and (idempotent) its producer id before the run's first message, whose
        latency would otherwise carry them (about a second on a broker just started)."""
        producer.produce(self._warm_up_topic, b"warm-up", on_delivery=lambda error, _: None)
        if producer.flush(ADMIN_TIMEOUT_S) != 0:
            raise ServerError(f"the producer's first message (to {self._warm_up_topic!r}) was not acknowledged "
                              f"within {ADMIN_TIMEOUT_S:g} s")

    def _producer_config(self) -> dict[str, Any]:
        return {"bootstrap.servers": self._bootstrap, "acks": self.settings.acks,
                "enable.idempotence": self.settings.idempotence, "linger.ms": self.settings.linger / 1e6,
                "batch.size": self.settings.batch_bytes, "queue.buffering.max.messages": 2_000_000,
                "queue.buffering.max.kbytes": 1_048_576, "message.timeout.ms": DELIVERY_TIMEOUT_MS,
                "on_delivery": self._delivered, **self.clients.config(PUBLISHER, counted=True)}

    async def connect(self, callbacks: Callbacks) -> None:
        self.state.callbacks = callbacks
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, self._create_topic)
        await loop.run_in_executor(None, warm_up_payloads)
        for index in range(self.spec.consumers):
            consumer = Consumer({"bootstrap.servers": self._bootstrap, "group.id": self.settings.group,
                                 "auto.offset.reset": "earliest", "fetch.wait.max.ms": 5, "enable.partition.eof": False,
                                 **self.clients.config(f"msgstorm-consumer-{index}", counted=True)})
            self._assigned.append(None)
            consumer.subscribe([self._topic], on_assign=self._on_assign(index), on_revoke=self._on_revoke(index))
            self._consumers.append(consumer)
        await self._group_formed(loop)
        self._producer = Producer(self._producer_config())
        await loop.run_in_executor(None, self._warm_up, self._producer)
        self._tasks = [asyncio.create_task(self._consume(index, consumer, callbacks.on_receipt))
                       for index, consumer in enumerate(self._consumers)]
        self._tasks.append(asyncio.create_task(self._poll_reports(callbacks.on_ack)))
        self.clients.begin()

    def _on_assign(self, index: int) -> Any:
        def assigned(_: Consumer, partitions: list[TopicPartition]) -> None:
            self._assigned[index] = {tp.partition for tp in partitions}
        return assigned

    def _on_revoke(self, index: int) -> Any:
        def revoked(_: Consumer, partitions: list[TopicPartition]) -> None:
            self._assigned[index] = None
        return revoked

    async def _group_formed(self, loop: asyncio.AbstractEventLoop) -> None:
        """Until every consumer has its assignment and together they hold every partition
        (``live.start_timeout``); no message is produced before, so none is read here."""
        deadline = loop.time() + max(self.spec.start_timeout / 1e9, ADMIN_TIMEOUT_S)
        everything = set(range(self._partitions))
        while True:
            for consumer in self._consumers:
                for message in consumer.consume(CONSUME_BATCH, timeout=0):
                    if message.error() is None:
                        raise ServerError(f"topic {self._topic!r} holds messages before the run: name a new topic "
                                          "in live.kafka.topic")
            held = self._assigned
            if all(part is not None for part in held) and set().union(*(p for p in held if p)) == everything:
                return
            if loop.time() > deadline:
                raise ServerError(f"consumer group {self.settings.group!r} did not assign every partition of "
                                  f"{self._topic!r} within {deadline:g} s")
            await asyncio.sleep(0.05)

    # --- producing ------------------------------------------------------------------------

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._failed += 1
            self._last_failure = str(error)
            return
        value = message.value()
        self._report_ids.append(HEADER.unpack_from(value)[0] if value is not None else -1)
        self._report_partitions.append(message.partition() or 0)
        self._report_offsets.append(message.offset() or 0)

    def _hand_over_reports(self, on_ack: OnAck) -> None:
        if not self._report_ids:
            return
        ids = np.array(self._report_ids, dtype=np.int64)
        partitions = np.array(self._report_partitions, dtype=np.int64)
        offsets = np.array(self._report_offsets, dtype=np.int64)
        self._report_ids, self._report_partitions, self._report_offsets = [], [], []
        if not self.acks:
            return  # acks 0: no offsets; committed by the first receipt
        self._acked.append((ids, partitions, offsets))
        order = np.arange(self._ack_count, self._ack_count + ids.size, dtype=np.int64)
        self._ack_count += ids.size
        if self.state.callbacks.on_acks is not None:
            self.state.callbacks.on_acks(ids, order)
        else:
            for msg_id, at in zip(ids.tolist(), order.tolist(), strict=True):
                on_ack(msg_id, at)

    async def _poll_reports(self, on_ack: OnAck) -> None:
        producer = self._producer
        assert producer is not None
        failed = 0
        while not self._closing:
            if producer.poll(0) == 0:
                await asyncio.sleep(POLL_IDLE_S)
            self._hand_over_reports(on_ack)
            if self._failed != failed:
                self.state.lost_publishes += self._failed - failed
                failed = self._failed

    def _produce(self, msg_id: int, partition: int, value: bytes) -> bool:
        """One message to the producer's queue; False when the queue is full."""
        assert self._producer is not None
        try:
            self._producer.produce(self._topic, value, partition=partition)
        except BufferError:
            return False
        self.state.handed_over += 1
        return True

    async def publish(self, msg_id: int, payload: bytes) -> None:
        partition = HEADER.unpack_from(payload)[1] % self._partitions
        while not self._produce(msg_id, partition, payload) and not self._closing:
            await asyncio.sleep(POLL_IDLE_S)

    def stage(self, msg_ids: np.ndarray, keys: np.ndarray, sizes: np.ndarray) -> None:
        """Messages to publish next (``Sending.bursts``): their payloads laid out now."""
        data, ends = pack_payloads(msg_ids, keys, sizes)
        self._staged.append((msg_ids.tolist(), (keys % self._partitions).tolist(), data.tobytes(), [0, *ends.tolist()]))

    async def publish_staged(self, count: int) -> int | None:
        """The next ``count`` staged messages to the producer; with its queue full it waits
        a moment and returns how many it took (the target stamps the rest anew)."""
        assert self._producer is not None
        produce, topic = self._producer.produce, self._topic
        done = 0
        while done < count:
            ids, partitions, data, ends = self._staged[0]
            first = self._staged_at
            last = min(len(ids), first + count - done)
            k = first
            try:
                while k < last:
                    produce(topic, data[ends[k]:ends[k + 1]], partition=partitions[k])
                    k += 1
            except BufferError:
                pass
            done += k - first
            self.state.handed_over += k - first
            if k == len(ids):
                self._staged.pop(0)
                self._staged_at = 0
            else:
                self._staged_at = k
            if k < last:  # the queue is full: let the reports drain it
                await asyncio.sleep(POLL_IDLE_S)
                return done
        return None

    async def flush(self) -> None:
        producer = self._producer
        if producer is None:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + FLUSH_TIMEOUT_S
        while len(producer) > 0 and loop.time() < deadline:
            await asyncio.sleep(0.001)

    # --- consuming ------------------------------------------------------------------------

    async def _consume(self, index: int, consumer: Consumer, on_receipt: OnReceipt) -> None:
        read = HEADER.unpack_from
        while not self._closing:
            messages = consumer.consume(CONSUME_BATCH, timeout=0)
            if not messages:
                await asyncio.sleep(POLL_IDLE_S)
                continue
            payloads = [value for message in messages
                        if message.error() is None and (value := message.value()) is not None]
            on_receipts = self.state.callbacks.on_receipts
            if on_receipts is None:
                for payload in payloads:
                    on_receipt(index, payload)
            else:
                ids = [read(p)[0] for p in payloads if len(p) >= HEADER.size]
                on_receipts(index, np.array(ids, dtype=np.int64), len(payloads) - len(ids))

    # --- after the run --------------------------------------------------------------------

    def _read_partitions(self) -> dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], int]]:
        """Every partition from its first offset to its high watermark: {partition: (offsets,
        ids, damaged)}; ``live.read_back_timeout`` for each next batch."""
        patience = self.spec.read_back_timeout / 1e9
        reader = Consumer({"bootstrap.servers": self._bootstrap, "group.id": f"{self.settings.group}-read-back",
                           "enable.auto.commit": False, **self.clients.config("msgstorm-read-back"),
                           "fetch.max.bytes": 16 << 20, "max.partition.fetch.bytes": 16 << 20})
        logs: dict[int, tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], int]] = {}
        try:
            for partition in range(self._partitions):
                low, high = _watermarks(reader, TopicPartition(self._topic, partition), patience)
                offsets: list[int] = []
                ids: list[int] = []
                damaged = 0
                if high > low:
                    reader.assign([TopicPartition(self._topic, partition, low)])
                    last = low - 1
                    while last < high - 1:
                        # consume waits for all it asks for: never more than is left
                        batch = reader.consume(min(10_000, high - 1 - last), timeout=patience)
                        if not batch:
                            raise TimeoutError(f"partition {partition}: read to offset {last} of {high - 1}, then "
                                               f"nothing for {patience:g} s (live.read_back_timeout)")
                        for message in batch:
                            if message.error() is not None:
                                continue
                            at = message.offset() or 0
                            if at >= high:
                                continue
                            msg_id = message_id(message.value() or b"")
                            if msg_id is None:
                                damaged += 1
                            else:
                                offsets.append(at)
                                ids.append(msg_id)
                            last = max(last, at)
                    reader.unassign()
                logs[partition] = (np.array(offsets, dtype=np.int64), np.array(ids, dtype=np.int64), damaged)
        finally:
            reader.close()
        return logs

    async def read_back(self) -> StoredCopy | None:
        try:
            logs = await asyncio.get_running_loop().run_in_executor(None, self._read_partitions)
        except (KafkaException, TimeoutError) as error:
            self.on_event(EventKind.CLIENT_ERROR, {"client": "read_back", "error": _describe(error)})
            return None
        stored = StoredCopy()
        for partition in sorted(logs):
            _, ids, damaged = logs[partition]
            stored.add_ids(ids, damaged)
        acked = self._acked
        empty = np.zeros(0, dtype=np.int64)
        columns = (np.concatenate([a[0] for a in acked]) if acked else empty,
                   np.concatenate([a[1] for a in acked]) if acked else empty,
                   np.concatenate([a[2] for a in acked]) if acked else empty)
        audit = audit_log(columns, {p: (offsets, ids) for p, (offsets, ids, _) in logs.items()})
        self.on_event(EventKind.LOG_AUDIT, {"lost": audit["missing"] + audit["replaced"], **audit})
        return stored

    async def close(self) -> None:
        self._closing = True
        for task in self._tasks:
            task.cancel()
        results = await asyncio.gather(*self._tasks, return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):  # a client bug, kept in the history
                self.on_event(EventKind.CLIENT_ERROR, {"client": "task", "error": _describe(result)})
        if self._producer is not None:
            self._producer.poll(0)
            outstanding = len(self._producer)
            if outstanding:
                self.state.unacked_publishes += outstanding
        self.clients.stop()
        if self._failed:
            self.on_event(EventKind.CLIENT_ERROR, {"client": PUBLISHER, "failed": self._failed,
                                                   "error": f"deliveries failed, the last: {self._last_failure}"})
            self._failed = 0
        for index, consumer in enumerate(self._consumers):
            await self._close_consumer(index, consumer)
        self._consumers = []
        # The producer and the admin client are destroyed with their last reference, now, while
        # the brokers still run: left until the process ends, they would see the brokers stopped
        # after the run go away, and try them again.
        self._producer = None
        self._admin = None
        self.clients.close()

    async def _close_consumer(self, index: int, consumer: Consumer) -> None:
        """``consumer.close`` on a thread of its own, waited for at most ``CLOSE_TIMEOUT_S``:
        with its group's coordinator gone (a broker killed and not back) librdkafka waits out
        the session timeout (45 s) to leave the group. A daemon thread, so one still waiting
        keeps neither the event loop's executor nor the process from ending."""
        loop = asyncio.get_running_loop()
        closed = loop.create_future()

        def done() -> None:
            if not closed.done():
                closed.set_result(None)

        def close() -> None:
            consumer.close()
            try:
                loop.call_soon_threadsafe(done)
            except RuntimeError:
                pass  # the loop has ended: nobody waits any more

        threading.Thread(target=close, name=f"msgstorm-consumer-{index}-close", daemon=True).start()
        try:
            await asyncio.wait_for(closed, CLOSE_TIMEOUT_S)
        except TimeoutError:
            self.on_event(EventKind.CLIENT_ERROR, {
                "client": f"msgstorm-consumer-{index}",
                "error": f"closing the consumer took over {CLOSE_TIMEOUT_S:g} s (its group's coordinator gone): left"})


def _watermarks(reader: Consumer, partition: TopicPartition, patience_s: float) -> tuple[int, int]:
    """A partition's low and high watermarks. Right after a leader change the new leader
    answers OFFSET_NOT_AVAILABLE until its high watermark has caught up: asked again every
    0.2 s for up to ``patience_s``, then the error stands."""
    deadline = time.monotonic() + patience_s
    while True:
        try:
            low, high = reader.get_watermark_offsets(partition, timeout=patience_s)
            return int(low), int(high)
        except KafkaException as error:
            code = error.args[0].code() if error.args and isinstance(error.args[0], KafkaError) else None
            if code != KafkaError.OFFSET_NOT_AVAILABLE or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
