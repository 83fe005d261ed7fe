"""The scenario's ``[live]`` section: how a live target is reached, and each driver's
own settings (``[live.nats]``, ``[live.jetstream]``, ``[live.redis]``, ``[live.zmq]``,
``[live.mqtt]``, ``[live.rabbitmq]``, ``[live.kafka]``, ``[live.anvil]``, ``[live.cometbft]``).

Part of the scenario schema (``msgstorm.scenario.schema.Scenario`` holds ``live``); the
drivers under ``msgstorm.live`` read it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from msgstorm.scenario.distributions import DurationNs
from msgstorm.scenario.spec import Spec

__all__ = ["AnvilSpec", "CometbftSpec", "JetStreamSpec", "KafkaSpec", "LiveSpec", "MqttSpec", "NatsSpec", "OwnNames",
           "RabbitMqSpec", "RedisSpec", "ZmqSpec"]

# A generator's own names in a run spread over generators (``scenario/generators.py``): its
# ``[live]`` fields that change, each a value or a driver's section (its fields that change).
OwnNames = dict[str, str | dict[str, str]]


class NatsSpec(Spec):
    """``[live.nats]``: the client a ``target = "nats"`` run uses."""

    # "wire": msgstorm's own core-NATS client (PUB frames built and MSG reads parsed in
    # compiled passes, every message due at once sent as one burst; plain nats:// only);
    # "nats-py": the nats-py client (TLS, credentials).
    client: Literal["wire", "nats-py"] = "wire"
    # Messages due at once that go out as one burst (a slice of the staged frames), at most.
    burst: int = Field(default=1024, ge=1, le=100_000)
    # Each consumer reads in a process of its own (wire client only), so the generator's
    # thread only sends: for machines with a core to spare per consumer.
    consumer_processes: bool = False
    # Processes that publish (wire client only): process k sends the messages whose key is k
    # modulo this count, so each key's messages leave in order from one connection.
    generator_processes: int = Field(default=1, ge=1, le=64)

    @model_validator(mode="after")
    def _processes_need_wire(self) -> NatsSpec:
        for name, used in (("consumer_processes", self.consumer_processes),
                           ("generator_processes", self.generator_processes > 1)):
            if used and self.client != "wire":
                raise ValueError(f'{name} needs client = "wire" (the nats-py client runs in the generator\'s '
                                 "process)")
        return self


class JetStreamSpec(Spec):
    """``[live.jetstream]``: the stream a ``target = "jetstream"`` run publishes to."""

    stream: str = Field(default="MSGSTORM", pattern=r"^[A-Za-z0-9_-]+$")
    # 1: one server; 3 or 5: msgstorm starts a cluster of that many on loopback (R3 / R5 stream).
    replicas: int = Field(default=1, ge=1, le=5)
    storage: Literal["file", "memory"] = "file"
    # Publishes in flight (sent, ack not yet back); the publisher waits when the window is full.
    max_pending_acks: int = Field(default=4096, ge=1, le=1_000_000)
    # Consumers ack each message ("explicit") or not at all ("none").
    ack: Literal["explicit", "none"] = "explicit"
    # "wire": publishes, acks and consumers' messages on msgstorm's own client (framed and
    # parsed in compiled passes, every publish due sent as one burst; plain nats:// only);
    # "nats-py": one message at a time through nats-py (TLS, credentials). Either way nats-py
    # makes the stream and the consumers and reads the stream back.
    client: Literal["wire", "nats-py"] = "wire"


class RedisSpec(Spec):
    """``[live.redis]``: the Redis Stream a ``target = "redis"`` run XADDs to."""

    stream: str = Field(default="msgstorm", pattern=r"^[A-Za-z0-9_.:-]+$")
    group: str = Field(default="msgstorm", pattern=r"^[A-Za-z0-9_.:-]+$")
    # Consumers share the stream through one consumer group ("group") or each reads it all ("fanout").
    mode: Literal["group", "fanout"] = "group"
    read_count: int = Field(default=512, ge=1, le=100_000)  # XREADGROUP / XREAD COUNT
    maxlen: int | None = Field(default=None, ge=1)  # XADD MAXLEN ~ (None: the stream keeps everything)
    # XADDs sent in one pipelined round trip, at most (one round trip in flight at a time).
    pipeline: int = Field(default=1024, ge=1, le=100_000)
    # XADDs buffered or awaiting their reply; the publisher waits when this many are outstanding.
    max_pending: int = Field(default=8192, ge=1, le=10_000_000)
    # Messages due at once handed to the publisher together, at most: their XADDs are laid
    # out ahead of time and written on a connection of its own, replies parsed by hiredis
    # (plain redis:// only); 1: one publish per message through redis-py's pipeline.
    burst: int = Field(default=1024, ge=1, le=100_000)


class ZmqSpec(Spec):
    """``[live.zmq]``: brokerless ZeroMQ sockets on loopback for ``target = "zmq"``."""

    # PUSH/PULL shares messages among consumers; PUB/SUB gives every consumer every message.
    pattern: Literal["push-pull", "pub-sub"] = "push-pull"
    hwm: int = Field(default=1_000_000, ge=0)  # send and receive high-water marks (0: none)
    # PUSH at its high-water mark waits this long for a consumer to take a message, then
    # drops it (and drops at once until one does): the run stays bounded. PUB never waits.
    send_timeout: DurationNs = Field(default=1_000_000_000, gt=0)
    # Messages due at once that are sent in one pass (a frame each, payloads laid out ahead
    # of time, no future per message), at most; 1: one awaited send per message.
    burst: int = Field(default=1024, ge=1, le=100_000)


class MqttSpec(Spec):
    """``[live.mqtt]``: the MQTT topic a ``target = "mqtt"`` run publishes to (mosquitto)."""

    # A topic name, not a filter: no wildcard (+ #), no leading "$" (the broker's own topics).
    topic: str = Field(default="msgstorm", pattern=r"^[A-Za-z0-9_.-][A-Za-z0-9_./-]*$")
    # 0: at most once (no ack); 1: at least once (PUBACK); 2: exactly once (PUBREC, PUBREL,
    # PUBCOMP). The publisher's and the consumers' subscription QoS alike.
    qos: Literal[0, 1, 2] = 1
    # True: every connection starts a new session and the broker forgets it on a disconnect.
    # False: persistent sessions (the broker keeps each client's subscription, and its QoS 1
    # and 2 messages while it is away, across a restart too; the publisher sends its
    # unacknowledged publishes again after a reconnection).
    clean_session: bool = True
    # Consumers share the messages through one shared subscription ($share/<group>/<topic>):
    # each message goes to one of them. None: each consumer subscribes to the topic and gets
    # every message.
    share_group: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+$")
    # QoS 1 and 2 publishes awaiting their acknowledgement (each holds a packet id); the
    # publisher waits when this many are outstanding.
    max_inflight: int = Field(default=4096, ge=1, le=65_535)
    # Messages due at once that go out in one write, at most (their PUBLISH packets framed
    # together); 1: one write per message.
    burst: int = Field(default=1024, ge=1, le=100_000)
    # Appended to every client's id (``msgstorm-publisher``, ``msgstorm-consumer-<i>``): a
    # distributed run's generator k sets ``-gK``, so generators on one broker keep sessions
    # of their own (a second connection with a client's id takes its session over). Left
    # out of the scenario's dump when empty, so that scenarios without it keep their hash.
    client_id_suffix: str = Field(default="", pattern=r"^[A-Za-z0-9_-]{0,16}$", exclude_if=lambda suffix: not suffix)


class RabbitMqSpec(Spec):
    """``[live.rabbitmq]``: the queue a ``target = "rabbitmq"`` run publishes to (rabbitmq-server)."""

    # The queue's name; the publisher publishes to the fanout exchange ``<queue>.x`` bound to it.
    queue: str = Field(default="msgstorm", pattern=r"^[A-Za-z0-9_.-]+$")
    # quorum: replicated (Raft) and durable; classic: one node's queue, durable; stream: an
    # append-only log each consumer reads from its own offset (every consumer gets every message).
    queue_type: Literal["quorum", "classic", "stream"] = "quorum"
    # Consumers each get every message (a queue each bound to the exchange); false: they share
    # one queue (each message to one). A stream's consumers always each read it whole.
    fanout: bool = False
    # Publishes awaiting their publisher confirm; the publisher waits when this many are out.
    max_inflight: int = Field(default=1024, ge=1, le=65_535)
    # Messages a consumer may hold unacknowledged (basic.qos prefetch count).
    prefetch: int = Field(default=1000, ge=1, le=65_535)
    # "wire": the publisher is msgstorm's own (``drivers/rabbitmq_wire.py``: the publishes due
    # at once framed together, one write); "aiormq": aiormq's basic_publish, a task each. The
    # consumers are aiormq's either way.
    client: Literal["wire", "aiormq"] = "wire"

    # Nodes msgstorm starts on loopback: 1, or a cluster of 2 to 5 (joined with rabbitmqctl).
    # Left out of the scenario's dump when 1, so that scenarios without it keep their hash.
    nodes: int = Field(default=1, ge=1, le=5, exclude_if=lambda count: count == 1)
    # The cluster's cluster_partition_handling; unset: pause_minority with 3 or more nodes,
    # else ignore. Left out of the scenario's dump when unset.
    partition_handling: Literal["ignore", "pause_minority", "autoheal"] | None = Field(
        default=None, exclude_if=lambda mode: mode is None)

    # Classic queues mirrored on every node (the policy ha-mode all, ha-sync-mode automatic),
    # as RabbitMQ replicated queues before quorum queues; needs queue_type classic and a cluster.
    # Left out of the scenario's dump when false.
    mirrored: bool = Field(default=False, exclude_if=lambda mirrored: not mirrored)

    @property
    def handling(self) -> str:
        """The cluster_partition_handling in effect."""
        if self.partition_handling is not None:
            return self.partition_handling
        return "pause_minority" if self.nodes >= 3 else "ignore"

    @model_validator(mode="after")
    def _a_minority_exists(self) -> RabbitMqSpec:
        if self.partition_handling == "pause_minority" and self.nodes < 3:
            raise ValueError(f"partition_handling pause_minority needs 3 or more nodes (nodes is {self.nodes}): "
                             "with fewer, no side of a split is a majority and every node pauses; set nodes = 3 "
                             'or partition_handling = "ignore" or "autoheal"')
        if self.mirrored and (self.queue_type != "classic" or self.nodes < 2):
            raise ValueError(f'mirrored needs queue_type = "classic" and nodes of 2 or more (queue_type is '
                             f'"{self.queue_type}", nodes {self.nodes}): a mirror is a classic queue\'s copy on '
                             "another node")
        return self


class KafkaSpec(Spec):
    """``[live.kafka]``: the topic a ``target = "kafka"`` run produces to (Apache Kafka in
    KRaft mode, started by msgstorm from its jars, or named by a ``kafka://`` URL)."""

    topic: str = Field(default="msgstorm", pattern=r"^[A-Za-z0-9._-]{1,200}$")
    partitions: int = Field(default=1, ge=1, le=1000)
    # Brokers msgstorm starts (each broker and controller, on loopback): 1, or 3 for a
    # replicated topic; with live.url the cluster is the user's.
    brokers: Literal[1, 3] = 1
    # Copies of each partition (at most ``brokers``).
    replication: int = Field(default=1, ge=1, le=3)
    # The topic's min.insync.replicas: with acks = "all" a produce is refused (and retried)
    # while fewer replicas are in sync.
    min_insync_replicas: int = Field(default=1, ge=1, le=3)
    # The topic's unclean.leader.election.enable: a replica that was out of sync may become
    # leader, and what it lacked is gone.
    unclean_leader_election: bool = False
    # The producer's acks: "0" none (a message is committed by its first receipt), "1" the
    # leader wrote it, "all" every in-sync replica did.
    acks: Literal["0", "1", "all"] = "all"
    # The idempotent producer (enable.idempotence): no duplicate and no reordering on a
    # retry; needs acks = "all".
    idempotence: bool = True
    # The producer's linger.ms and batch.size (bytes): how long and how much it gathers
    # into one produce request.
    linger: DurationNs = Field(default=1_000_000, ge=0)
    batch_bytes: int = Field(default=1_048_576, ge=1, le=64 << 20)
    # The consumer group all consumers join (each message goes to one of them).
    group: str = Field(default="msgstorm", pattern=r"^[A-Za-z0-9._-]{1,200}$")
    # Messages due at once handed to the producer in one pass, at most.
    burst: int = Field(default=1024, ge=1, le=100_000)

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSpec:
        if self.replication > self.brokers:
            raise ValueError(f"replication {self.replication} needs as many brokers: brokers is {self.brokers}")
        if self.min_insync_replicas > self.replication:
            raise ValueError(f"min_insync_replicas {self.min_insync_replicas} is more than the topic's "
                             f"replication {self.replication}: every acks = \"all\" produce would be refused")
        if self.idempotence and self.acks != "all":
            raise ValueError(f'idempotence needs acks = "all" (acks is "{self.acks}"): set idempotence = false')
        return self


class AnvilSpec(Spec):
    """``[live.anvil]``: the EVM node a ``target = "anvil"`` run sends transactions to.

    The chain's own settings come from the scenario where they mean the same thing:
    ``blocks.interval`` is the node's block time, ``blocks.max_gas`` its block gas limit,
    ``backpressure.initial_base_fee`` (mode ``eip1559``) its first base fee, and
    ``sequencer.policy`` its pool order (``fifo``, or ``fee_priority`` for fee order). A fee
    (an agent's ``fee``, a base fee) is in units of ``fee_unit_wei`` wei: 1.0 is one gwei."""

    # Funded dev accounts that send, each with its own nonces: a message goes from one with
    # no transaction in the pool (rate x time to inclusion of them are busy at once).
    accounts: int = Field(default=1000, ge=1, le=10_000)
    # With ``[market]``: more dev accounts, the market's own (the oracle's, the keepers' and the
    # top-ups' transactions), so none waits behind a traffic transaction's nonce.
    market_accounts: int = Field(default=64, ge=1, le=10_000)
    balance_eth: int = Field(default=1_000_000, ge=1)  # each dev account's starting balance
    fee_unit_wei: int = Field(default=1_000_000_000, ge=1)
    # Transactions due at once sent in one JSON-RPC batch request, at most.
    batch: int = Field(default=256, ge=1, le=10_000)
    # Keep-alive connections the sends are pipelined on (another opened when every one waits
    # for an answer), and the chain's reads in flight at once.
    connections: int = Field(default=4, ge=1, le=64)
    # The node's block time when it is not the scenario's ``blocks.interval`` (whole
    # milliseconds; anvil takes it in seconds).
    block_time: DurationNs | None = Field(default=None, gt=0)


class CometbftSpec(Spec):
    """``[live.cometbft]``: the validator network a ``target = "cometbft"`` run sends
    transactions to (CometBFT validators on loopback, each with the built-in ``kvstore``
    application, their peer-to-peer links through msgstorm's fault proxy).

    ``blocks.interval`` is each validator's ``timeout_commit`` (the wait after a commit
    before the next height starts: the block time of an idle network); the round's own
    timeouts are below."""

    validators: int = Field(default=4, ge=1, le=7)
    # The validator every transaction is sent to (its index); unset: a message goes to
    # validator ``key`` modulo ``validators``, so each validator's mempool takes a share.
    entry: int | None = Field(default=None, ge=0)
    # Transactions due at once sent in one JSON-RPC batch request (broadcast_tx_async each), at most.
    batch: int = Field(default=256, ge=1, le=10_000)
    # consensus.timeout_propose, timeout_prevote and timeout_precommit of every validator
    # (each grows by half of itself per round, CometBFT's *_delta).
    timeout_propose: DurationNs = Field(default=1_000_000_000, gt=0)
    timeout_vote: DurationNs = Field(default=500_000_000, gt=0)
    # mempool.size: transactions a validator's mempool holds; a full one refuses more.
    mempool_size: int = Field(default=5000, ge=1, le=1_000_000)

    @model_validator(mode="after")
    def _entry_is_a_validator(self) -> CometbftSpec:
        if self.entry is not None and self.entry >= self.validators:
            raise ValueError(f"entry {self.entry} is not a validator: the network has validators 0 to "
                             f"{self.validators - 1}")
        return self


class LiveSpec(Spec):
    """How a live target is reached (``target`` other than "sim").

    Without ``url`` msgstorm starts the server itself on a free loopback port, with its data
    and log under the run directory, and stops it on every exit. With ``url`` it uses a
    server the user runs; load goes only to loopback addresses unless ``allow_remote``.
    """

    url: str | None = None
    allow_remote: bool = False
    subject: str = Field(default="msgstorm", pattern=r"^[A-Za-z0-9_.-]+$")  # subject / stream key prefix
    consumers: int = Field(default=1, ge=1, le=64)
    # Generators on a Ray cluster, one per node (``live/distributed.py``): 1 runs here, as
    # always. Left out of the scenario's dump when 1, so that scenarios without it keep their hash.
    generators: int = Field(default=1, ge=1, le=256, exclude_if=lambda count: count == 1)
    flush_interval: DurationNs = Field(default=1_000_000, gt=0)  # the publisher flushes at least this often
    start_timeout: DurationNs = Field(default=10_000_000_000, gt=0)  # a started server must listen within
    # Write messages and deliveries this often while the run goes (a SIGKILL then keeps the
    # rows settled up to about this long before it); unset: at the end of the run. Off by
    # default: on a small machine the rows made beside the generator cost it its headroom
    # (docs/live.md, "Recording while the run goes").
    record_every: DurationNs | None = Field(default=None, gt=0)
    # After the run, reading the stream back (JetStream) waits at most this for its
    # connection and for each next batch; a read-back that cannot finish is reported, and
    # the run ends.
    read_back_timeout: DurationNs = Field(default=10_000_000_000, gt=0)
    nats: NatsSpec = NatsSpec()
    jetstream: JetStreamSpec = JetStreamSpec()
    redis: RedisSpec = RedisSpec()
    zmq: ZmqSpec = ZmqSpec()
    # Left out of the scenario's dump when default, so that scenarios without it keep their hash.
    mqtt: MqttSpec = Field(default_factory=MqttSpec, exclude_if=lambda spec: spec == MqttSpec())
    # Left out of the scenario's dump when default, so that scenarios without it keep their hash.
    rabbitmq: RabbitMqSpec = Field(default_factory=RabbitMqSpec, exclude_if=lambda spec: spec == RabbitMqSpec())
    # Left out of the scenario's dump when default, so that scenarios without it keep their hash.
    kafka: KafkaSpec = Field(default_factory=KafkaSpec, exclude_if=lambda spec: spec == KafkaSpec())
    anvil: AnvilSpec = Field(default_factory=AnvilSpec, exclude_if=lambda spec: spec == AnvilSpec())
    cometbft: CometbftSpec = Field(default_factory=CometbftSpec, exclude_if=lambda spec: spec == CometbftSpec())
