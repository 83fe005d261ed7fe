"""What each ``[live]`` field means (its drivers' sections too), where its model does not say it
itself: part of ``scenario/descriptions.py``'s ``DESCRIPTIONS``, keyed ``"ModelName.field"``.
"""

from __future__ import annotations

__all__ = ["LIVE_DESCRIPTIONS"]

LIVE_DESCRIPTIONS: dict[str, str] = {
    "LiveSpec.url": "a server you run (`nats://`, `redis://`, `mqtt://`, `amqp://` for RabbitMQ, `kafka://`, `tcp://` "
                    "for ZeroMQ); without it msgstorm "
                    "starts one on a free loopback port and stops it on every way out",
    "LiveSpec.allow_remote": "load goes only to 127.0.0.0/8 or ::1; a `url` off this machine is refused "
                             "without this (`--allow-remote`)",
    "LiveSpec.subject": "NATS subject, stream key prefix",
    "LiveSpec.consumers": "consumer connections",
    "LiveSpec.generators": "generators, each with its consumers, on a Ray cluster (`msgstorm run --ray ADDRESS`), "
                           "one per node; a message whose key is k mod N is sent by generator k (targets nats, "
                           "jetstream, redis, kafka, rabbitmq)",
    "LiveSpec.flush_interval": "the publisher flushes at least this often",
    "LiveSpec.start_timeout": "a started server must listen, and a connection succeed, within this",
    "LiveSpec.read_back_timeout": "after the run, reading the stream back (JetStream) waits at most this for "
                                  "its connection and for each next batch; one that cannot finish is reported "
                                  "in delivery.read_back, and the run ends",
    "LiveSpec.record_every": "write messages and deliveries this often while the run goes (a SIGKILL keeps "
                             "the rows settled up to about this long before it); none: at the end (the "
                             "recorder's thread costs the generator headroom)",
    "LiveSpec.nats": "[`[live.nats]`](#livenats)",
    "LiveSpec.jetstream": "[`[live.jetstream]`](#livejetstream)",
    "LiveSpec.redis": "[`[live.redis]`](#liveredis)",
    "LiveSpec.zmq": "[`[live.zmq]`](#livezmq)",
    "LiveSpec.mqtt": "[`[live.mqtt]`](#livemqtt)",
    "LiveSpec.rabbitmq": "[`[live.rabbitmq]`](#liverabbitmq)",
    "LiveSpec.kafka": "[`[live.kafka]`](#livekafka)",
    "LiveSpec.anvil": "[`[live.anvil]`](#liveanvil)",
    "LiveSpec.cometbft": "[`[live.cometbft]`](#livecometbft)",
    "NatsSpec.client": "`wire`: msgstorm's own core-NATS client (compiled framing and parsing, plain "
                       "`nats://` only); `nats-py`: TLS and credentials, about 10 us a publish",
    "NatsSpec.burst": "messages due at once that leave in one write, at most",
    "NatsSpec.consumer_processes": "each consumer reads in a process of its own (wire client only)",
    "NatsSpec.generator_processes": "processes that publish (wire client only): process k sends the "
                                    "messages whose key is k modulo this",
    "JetStreamSpec.stream": "stream name (on a server you run it must not exist yet)",
    "JetStreamSpec.replicas": "1: one server; 3 or 5: a loopback cluster and an R3/R5 stream",
    "JetStreamSpec.storage": "stream storage",
    "JetStreamSpec.max_pending_acks": "publishes in flight; the publisher waits when the window is full",
    "JetStreamSpec.ack": "consumers ack each message (`explicit`) or not (`none`)",
    "JetStreamSpec.client": "`wire` or `nats-py` for the data; nats-py makes the stream and consumers and "
                            "reads the stream back either way",
    "RedisSpec.stream": "stream key (on a server you run it must not exist yet)",
    "RedisSpec.group": "consumer group",
    "RedisSpec.mode": "`group`: consumers share the stream (XREADGROUP + XACK); `fanout`: each XREADs it all",
    "RedisSpec.read_count": "XREADGROUP / XREAD COUNT",
    "RedisSpec.maxlen": "XADD MAXLEN ~ (trimming; no read-back check then); none: the stream keeps everything",
    "RedisSpec.pipeline": "XADDs in one round trip, at most (one round trip in flight)",
    "RedisSpec.max_pending": "XADDs buffered or unanswered before the publisher waits",
    "RedisSpec.burst": "messages due at once handed over together, their XADDs laid out ahead and replies "
                       "parsed by hiredis (plain `redis://` only); 1: redis-py's pipeline",
    "ZmqSpec.pattern": "`push-pull` shares messages among consumers; `pub-sub` gives each every message",
    "ZmqSpec.hwm": "send and receive high-water marks (0: none)",
    "ZmqSpec.send_timeout": "a full PUSH waits this long for room, then drops",
    "ZmqSpec.burst": "messages due at once sent in one pass over the socket; 1: one awaited send each",
    "MqttSpec.client_id_suffix": "appended to every client's id (`msgstorm-publisher`, `msgstorm-consumer-<i>`); a "
                                 "distributed run's generator k sets `-gK`",
    "MqttSpec.topic": "the topic published to (no wildcard, no leading `$`)",
    "MqttSpec.qos": "0: at most once, no ack; 1: at least once (PUBACK); 2: exactly once (PUBREC, PUBREL, PUBCOMP)",
    "MqttSpec.clean_session": "true: a new session every connection; false: persistent sessions (subscriptions "
                              "and QoS 1/2 messages kept across a disconnection or a restart, unacked publishes sent again)",
    "MqttSpec.share_group": "consumers share the messages through `$share/<group>/<topic>` (each to one); "
                            "none: each consumer gets every message",
    "MqttSpec.max_inflight": "QoS 1/2 publishes awaiting their ack before the publisher waits (packet ids)",
    "MqttSpec.burst": "messages due at once whose PUBLISH packets leave in one write, at most; 1: a write each",
    "RabbitMqSpec.queue": "the queue's name; the publisher publishes to the fanout exchange `<queue>.x` bound to it",
    "RabbitMqSpec.queue_type": "`quorum` (Raft, durable), `classic` (durable) or `stream` (a log each consumer "
                               "reads whole from its own offset)",
    "RabbitMqSpec.fanout": "true: each consumer gets every message (a queue each); false: they share one queue",
    "RabbitMqSpec.max_inflight": "publishes awaiting their publisher confirm before the publisher waits",
    "RabbitMqSpec.prefetch": "messages a consumer holds unacknowledged at most (basic.qos)",
    "RabbitMqSpec.nodes": "nodes msgstorm starts on loopback: 1, or a cluster of 2 to 5 (`rabbit-<i>`, joined with "
                          "rabbitmqctl; the publisher on `rabbit-0`, consumer `i` on `rabbit-<(i + 1) mod nodes>`)",
    "RabbitMqSpec.mirrored": "classic queues mirrored on every node (policy `ha-mode: all`, `ha-sync-mode: "
                             "automatic`), as before quorum queues; needs `queue_type = \"classic\"` and 2 or more nodes",
    "RabbitMqSpec.partition_handling": "the cluster's `cluster_partition_handling`: `ignore`, `pause_minority` or "
                                       "`autoheal`; unset: `pause_minority` with 3 or more nodes, else `ignore`",
    "RabbitMqSpec.client": "`wire`: msgstorm's own publisher (the publishes due at once framed together, one "
                           "write); `aiormq`: aiormq's basic_publish, a task each; consumers are aiormq's either way",
    "KafkaSpec.topic": "the topic produced to (made by msgstorm; on a cluster you run it must not exist yet)",
    "KafkaSpec.partitions": "the topic's partitions (a message's key picks its partition)",
    "KafkaSpec.brokers": "brokers msgstorm starts on loopback (KRaft, each broker and controller): 1 or 3",
    "KafkaSpec.replication": "copies of each partition (at most `brokers`)",
    "KafkaSpec.min_insync_replicas": "the topic's `min.insync.replicas` (acks `all` is refused below it)",
    "KafkaSpec.unclean_leader_election": "the topic's `unclean.leader.election.enable`",
    "KafkaSpec.acks": "the producer's acks: `0` none, `1` the leader, `all` every in-sync replica",
    "KafkaSpec.idempotence": "the idempotent producer (`enable.idempotence`; needs acks `all`)",
    "KafkaSpec.linger": "the producer's `linger.ms` (whole ms)",
    "KafkaSpec.batch_bytes": "the producer's `batch.size`",
    "KafkaSpec.group": "the consumer group every consumer joins (each message to one)",
    "KafkaSpec.burst": "messages due at once handed to the producer in one pass, at most",
    "AnvilSpec.accounts": "funded dev accounts that send, each from one with nothing in the pool",
    "AnvilSpec.market_accounts": "with `[market]`: more dev accounts, for the oracle's, keepers' and top-ups' transactions only",
    "AnvilSpec.balance_eth": "each dev account's starting balance (ether)",
    "AnvilSpec.fee_unit_wei": "wei in one fee unit (an agent's `fee`, a base fee): 1e9 is gwei",
    "AnvilSpec.batch": "transactions due at once sent in one JSON-RPC batch request, at most",
    "AnvilSpec.connections": "keep-alive connections the sends are pipelined on (another opened when each waits for an answer); the chain's reads in flight at once",
    "AnvilSpec.block_time": "the node's block time when not `blocks.interval` (whole ms)",
    "CometbftSpec.validators": "validators msgstorm starts on loopback (each its own home, ports and `kvstore`)",
    "CometbftSpec.entry": "the validator every transaction goes to; none: validator `key` modulo `validators`",
    "CometbftSpec.batch": "transactions due at once sent in one JSON-RPC batch request (`broadcast_tx_async` each), at most",
    "CometbftSpec.timeout_propose": "each validator's `consensus.timeout_propose` (grows by half of itself per round)",
    "CometbftSpec.timeout_vote": "each validator's `timeout_prevote` and `timeout_precommit` (grow by half of themselves per round)",
    "CometbftSpec.mempool_size": "transactions a validator's mempool holds (`mempool.size`); a full one refuses more",
}
