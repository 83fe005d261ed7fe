"""What each scenario field means, where its model does not say it itself.

Place in the pipeline: beside the schema, for people. ``scenario/reference.py`` renders
``docs/scenario.md`` from the pydantic models; a field's meaning is its
``Field(description=...)`` when the model gives one, else the entry here, keyed
``"ModelName.field"``. ``tests/test_docs.py`` fails when a shown field has neither and when an
entry names a field the schema no longer has. A ``{placeholder}`` (``{regions}``, the
built-in names of an extension point) is filled in when the reference is rendered.
"""

from __future__ import annotations

__all__ = ["DESCRIPTIONS"]

DESCRIPTIONS: dict[str, str] = {
    # [run]
    "RunSpec.name": "run name: letters, digits and `_.-`; the run directory is `runs/<UTC time>-<name>`",
    "RunSpec.seed": "root of every random stream; same scenario and seed, same history",
    "RunSpec.duration": "how long traffic is sent",
    "RunSpec.drain": "extra time for messages in flight after `duration`; the run stops earlier once every "
                     "message is settled or stranded (lost, nothing left that could deliver it)",
    "RunSpec.window": "analysis window (offered vs achieved, jitter, failure threshold); also the traffic "
                      "generation batch",
    "RunSpec.sample_interval": "queue-depth sampling period (live runs: CPU samples, at least 50 ms)",
    # target, top level
    "Scenario.run": "the run's name, seed and times: [`[run]`](#run)",
    "Scenario.target": "`sim` (the shadow network) or a live driver: "
                       "{live_drivers}; `--target` overrides it, also with a URL "
                       "(see [live targets](live.md))",
    "Scenario.live": "how a live target is reached: [`[live]`](#live)",
    "Scenario.network": "[`[network]`](#network)",
    "Scenario.gossip": "[`[gossip]`](#gossip)",
    "Scenario.sequencer": "[`[sequencer]`](#sequencer)",
    "Scenario.blocks": "[`[blocks]`](#blocks)",
    "Scenario.backpressure": "[`[backpressure]`](#backpressure)",
    "Scenario.desync": "[`[desync]`](#desync)",
    "Scenario.agents": "who sends what: [`[[agents]]`](#agents)",
    "Scenario.faults": "what goes wrong, and when (sim): [`[[faults]]`](#faults)",
    "Scenario.slo": "`\"metric\" = \"op value\"`, e.g. `\"latency.p99\" = \"< 250ms\"`: [`[slo]`](#slo)",
    "Scenario.analysis": "[`[analysis]`](#analysis)",
    "Scenario.history": "[`[history]`](#history)",
    "Scenario.limits": "[`[limits]`](#limits)",
    "Scenario.market": "prices, an oracle, accounts and keepers: what delay costs (sim): [`[market]`](#market)",
    # [live]
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
    # [network]
    "NetworkSpec.regions": "region names; built-in one-way latencies between {regions}",
    "NetworkSpec.nodes_per_region": "nodes in each region not named in `nodes`; nodes are named `<region>-<i>`",
    "NetworkSpec.nodes": "node count of each region named, `{ \"eu-west\" = 52, \"sa-east\" = 1 }` (0: none)",
    "NetworkSpec.shares": "each region's share of `total_nodes` (adding up to 1; regions not named get none), "
                          "rounded by largest remainder so the counts add up to the total",
    "NetworkSpec.total_nodes": "the network's node count, split by `shares`",
    "NetworkSpec.intra_region_latency": "one-way latency inside a region",
    "NetworkSpec.latency": "one-way overrides, `\"us-east/mars\" = \"40ms\"` (required for regions without "
                           "a built-in latency)",
    "NetworkSpec.links": "per-pair overrides of region or node pairs: [`links`](#networklinks)",
    "NetworkSpec.link": "how every link's delay varies: [`link`](#networklink)",
    "NetworkSpec.bandwidth": "per-node upload of regions not in `upload`; sending costs `size / bandwidth`",
    "NetworkSpec.upload": "upload bandwidth of each region's nodes, `{ \"eu-west\" = \"25Mbit/s\" }`; others: "
                          "`bandwidth`",
    "NetworkSpec.download": "download bandwidth of each region's nodes (others: unlimited); a copy takes "
                            "`size / min(sender's upload, receiver's download)`",
    "NetworkSpec.uplink": "`serial`: a node's copies leave one after another; `fair_share`: the copies one "
                          "forward sends share the upload equally and end together (k copies: k × the time of one); "
                          "`held`: serial, and the uplink stays busy until the copy has arrived (its link "
                          "delay included), as SimBlock's Node.sendNextBlockMessage",
    "NetworkSpec.processing": "validation time per receipt, on the node's single CPU",
    "NetworkSpec.relay": "how a node passes what it validated to its peers: [`relay`](#networkrelay)",
    "RelaySpec.protocol": "`push`: the payload to every peer (duplicates included); `announce`: an announcement, "
                          "the payload only to peers that ask (one request in flight per item and node); "
                          "`push_sqrt`: the payload to ceil(sqrt(peers)) peers, announcements to the rest (`compact`: "
                          "blocks only, in `kinds`)",
    "RelaySpec.kinds": "protocol per kind (message kinds and `block`), `{ block = \"announce\" }`; others take "
                       "`protocol`; `compact` (BIP 152 compact blocks) is for `block` only",
    "RelaySpec.timeout": "a node that asked for an item and has not received it after this asks the next of its "
                         "peers that validated it (or, if none has, the next peer that announces it)",
    "RelaySpec.compact_header": "bytes of a compact block besides its short ids (`compact` relay; 80-byte header "
                                "and 8-byte nonce)",
    "RelaySpec.short_id": "bytes per message in a compact block (`compact` relay; BIP 152's short ids are 6)",
    "RelaySpec.high_bandwidth": "peers a node sends a compact block unasked (`compact` relay's high-bandwidth "
                                "mode; BIP 152 allows 3); it announces it to the rest, who ask for it "
                                "(low-bandwidth mode)",
    "RelaySpec.rebuild_failure": "share of compact blocks a node cannot rebuild although it validated every "
                                 "message listed (mempool policy, short-id collisions): it asks the sender for "
                                 "one (getblocktxn), one more round trip; the default is SimBlock's "
                                 "`CBR_FAILURE_RATE_FOR_CONTROL_NODE` (from Imtiaz et al., ICBC 2019; churning "
                                 "nodes: 27%)",
    "RelaySpec.compact_share": "share of nodes that speak compact relay (`compact` relay; rounded half up to a "
                               "count of nodes, drawn from the run's seed): a link where either end does not "
                               "carries the full block, announced and then asked for (as a Bitcoin Core peer "
                               "that sent no `sendcmpct`); SimBlock's `CBR_USAGE_RATE` is 0.964",
    "RelaySpec.sample": "opt-in, with `[blocks.producers]`: the share of messages relayed receipt by receipt "
                        "(every n-th msg_id, n = round(1 / sample), the rule `history.delivery_sample` uses, and "
                        "each region's first message); each other message reaches each producer as long after its "
                        "sending as the last sampled message from its region reached it after that one's; its "
                        "load on the nodes is `sample_load`'s (docs/networks.md, \"A relay sample\"); none: every "
                        "message is relayed",
    "RelaySpec.sample_load": "with `sample`: `derate`: each traffic window's unsampled messages take their share "
                             "of every node's uplink, downlink and CPU (each node's share of the relaying as the "
                             "sample measures it) and the sample gets what is left, 1 / (1 - load) slower (a load "
                             "the nodes cannot carry at the scenario's mean rate is refused); `none`: they cost "
                             "no node anything (the sample's arrivals are then a floor)",
    "RelaySpec.control_overhead": "a fixed delay every announcement and request pays on top of its link delay "
                                  "(payloads do not); SimBlock's is 10 ms (AbstractMessageTask.getInterval)",
    "LinkModel.dist": "`constant`: base; `uniform`: base + U(0, jitter); `normal`: base + N(0, jitter), "
                      "truncated at 0; `lognormal`: base × LN(0, sigma); `pareto`: base × Pareto(1, alpha); "
                      "`empirical`: one of the delays in `samples`, drawn uniformly with the run's seed (base unused)",
    "LinkModel.samples": "`empirical`: a CSV or Parquet file (relative to the scenario file) of measured one-way "
                         "delays",
    "LinkModel.column": "`empirical`: the column of `samples` holding the delays (numbers ≥ 0)",
    "LinkModel.unit": "`empirical`: the unit of the delays in `column`",
    "LinkModel.jitter": "spread of `uniform` and `normal`",
    "LinkModel.sigma": "spread of `lognormal`",
    "LinkModel.alpha": "tail index of `pareto`",
    "LinkModel.overhead": "a fixed delay added to every transmission after the variation: the delay is "
                          "overhead + the model's draw around the base latency",
    "LinkOverride.between": "two region or node names",
    "LinkOverride.latency": "one-way base latency between them",
    "LinkOverride.dist": "their link model; none: `network.link`",
    "LinkOverride.one_way": "the latency and link model apply from the first of `between` to the second only "
                             "(an asymmetric pair: give the other direction its own entry)",
    # [gossip]
    "GossipSpec.mode": "`mesh` forwards over a degree-`degree` subgraph of the overlay; `flood` over every "
                       "connection",
    "GossipSpec.degree": "mesh degree D",
    "GossipSpec.peers": "overlay connections per node (each node opens `peers/2`)",
    "GossipSpec.outbound_cdf": "outbound connections per node drawn from this cumulative distribution: entry i is "
                               "P(outbound <= i + 1), ending at 1.0 (SimBlock's `DEGREE_DISTRIBUTION`); empty: "
                               "`peers/2` each",
    "GossipSpec.max_inbound": "no node accepts more inbound connections than this (a node that finds every peer "
                              "full opens fewer); none: no cap",
    # [sequencer]
    "SequencerSpec.node": "the leader; none: the first node",
    "SequencerSpec.workers": "parallel service slots",
    "SequencerSpec.service": "service time of one message",
    "SequencerSpec.policy": "queue policy: {queue_policies}",
    "SequencerSpec.standby": "failover candidates, in order",
    "SequencerSpec.failover_timeout": "after a leader crash, the first live standby takes over after this",
    "SequencerSpec.batch_auction": "settings of `policy = \"batch_auction\"` (`[sequencer.batch_auction]`)",
    "SequencerSpec.commit_reveal": "settings of `policy = \"commit_reveal\"` (`[sequencer.commit_reveal]`)",
    "SequencerSpec.fair_order": "settings of `policy = \"fair_order\"` (`[sequencer.fair_order]`)",
    "BatchAuctionSpec.interval": "a batch every this long (from 0); what arrived in it is served when it closes",
    "CommitRevealSpec.kinds": "the message kinds sent as commitments (others are served as they come)",
    "CommitRevealSpec.reveal_delay": "from a commitment's sequencing to its sender's reveal message",
    "CommitRevealSpec.window": "a commitment whose reveal is not sequenced within this of its own sequencing "
                               "expires (its order never takes effect)",
    "FairOrderSpec.gamma": "a before b when more than half and at least this share of the reporting nodes "
                           "received a first (1: all of them)",
    "FairOrderSpec.granularity": "the leader orders what is reported every this long (the batch granularity)",
    "FairOrderSpec.timeout": "a message some nodes have not reported after this is ordered with the reports "
                             "it has (a missing report counts as last)",
    "FairOrderSpec.nodes": "the reporting nodes (default: all)",
    "FairOrderSpec.batch_order": "order within a cycle of preferences: `median` receive time over the "
                                 "nodes, or the `leader`'s arrival order",
    # [blocks]
    "BlocksSpec.interval": "block time",
    "BlocksSpec.max_messages": "block capacity in messages",
    "BlocksSpec.max_gas": "block capacity in gas (EIP-1559 then targets gas); none: no gas limit",
    "BlocksSpec.gas": "gas per message kind, e.g. `{spam = 50000}`; a kind not named costs 21,000",
    "BlocksSpec.quorum": "share of all nodes whose votes commit a block: ceil(quorum × nodes), so with 3 "
                         "nodes 67% needs all 3 (use 60% for 2 of 3)",
    "BlocksSpec.header_size": "block bytes besides its messages",
    # [blocks.producers]
    "ProducersSpec.consensus": "`tendermint`: round-based BFT consensus among the producers (the validators, "
                               "their shares the voting power): CometBFT's proposer rotation, propose / prevote / "
                               "precommit rounds with 2/3 quorums and growing timeouts, votes gossiped as blocks are "
                               "([`[blocks.producers.tendermint]`](#blocksproducerstendermint)); none: `rule` makes "
                               "the blocks and `finality` finalises them",
    "ProducersSpec.tendermint": "the protocol's timeouts and costs (`consensus = \"tendermint\"`)",
    "TendermintSpec.timeout_propose": "how long a validator waits for round 0's proposal before it prevotes nil",
    "TendermintSpec.timeout_propose_delta": "added to `timeout_propose` per round",
    "TendermintSpec.timeout_prevote": "how long a validator waits, after 2/3 of any prevotes, before it precommits nil",
    "TendermintSpec.timeout_prevote_delta": "added to `timeout_prevote` per round",
    "TendermintSpec.timeout_precommit": "how long a validator waits, after 2/3 of any precommits, before the next round",
    "TendermintSpec.timeout_precommit_delta": "added to `timeout_precommit` per round",
    "TendermintSpec.timeout_commit": "the wait after a commit before the next height's round 0 (from the commit)",
    "TendermintSpec.prepare": "the proposer's application building its block (PrepareProposal) after its round starts",
    "TendermintSpec.execution": "a validator's application executing a proposal (ProcessProposal) before it prevotes",
    "TendermintSpec.execution_per_tx": "added to `execution` for each transaction of the proposal (a calibrated "
                                        "twin's per-transaction cost)",
    "TendermintSpec.finalize_per_tx": "after a commit, a node's application executing each transaction of the "
                                       "block (FinalizeBlock); the next height starts at the later of "
                                       "`timeout_commit` and this work plus the recheck",
    "TendermintSpec.recheck_per_tx": "after a commit, a node rechecking each transaction its mempool still holds "
                                     "(CometBFT's `recheck`), before its next height starts",
    "TendermintSpec.vote_size": "bytes of one prevote, precommit or proposal message on the wire",
    "TendermintSpec.mempool_size": "transactions a validator's mempool holds (CometBFT's mempool `size`); a full "
                                   "one turns arrivals away (a `mempool_full` event) until a commit makes room",
    "ProducersSpec.rule": "(without `consensus`) `pow`: proof of work, a Poisson process of blocks every `blocks.interval` on "
                          "average, each to a producer drawn by hash share; `pos`: proof-of-stake slots of "
                          "`blocks.interval`, each slot's leader drawn by stake from the run's seed (the leader "
                          "schedule), its block made at the slot's start",
    "ProducersSpec.nodes": "the producers by node name; empty: drawn (`count`)",
    "ProducersSpec.count": "producers drawn across the nodes (seeded); none: every node produces",
    "ProducersSpec.shares": "hash share (`pow`) or stake (`pos`) per producer, in the order of `nodes` (or of "
                            "the draw), any positive scale; empty: equal; or a distribution each producer's share is drawn "
                            "from (seeded, in producer order; a draw of 0 never produces)",
    "ProducersSpec.reach": "shares of the nodes to time each block's reach to (summary.json's "
                           "`forks.reach_ms`, keyed `\"50%\"` and so on)",
    "ProducersSpec.confirmations": "a block this deep on the canonical chain (itself and the blocks above it) "
                                   "commits its messages; a deeper reorg of the canonical chain is a "
                                   "`canonical_reorg` event marked final",
    "ProducersSpec.finality": "`depth`: a node finalises a block when its longest chain holds `confirmations` "
                              "blocks at and above it; `votes`: when it has seen votes for the block from more "
                              "than 2/3 of the producers' stake (each producer a validator voting once per "
                              "height for the first block it holds there, votes gossiped as blocks are)",
    "ProducersSpec.vote_size": "bytes of one vote on the wire (`finality = \"votes\"`)",
    "ProducersSpec.resend_votes": "when a partition (or a halting eclipse) ends, each validator gossips again the "
                                  "votes it cast while it lasted (`finality = \"votes\"`); false: votes lost to "
                                  "the cut stay lost",
    # [backpressure]
    "Unbounded.mode": "admit everything",
    "DropTail.mode": "drop arrivals while the queue is full",
    "DropTail.capacity": "queue length at which arrivals are dropped",
    "Suspend.mode": "suspend senders at `high`, resume at `low`; held messages are sent again on resume "
                    "as the queue has room",
    "Suspend.high": "queue length that suspends senders",
    "Suspend.low": "queue length that resumes them (below `high`)",
    "Eip1559.mode": "a base fee that moves each block toward a target use; a message whose fee is below it "
                    "waits or is rejected",
    "Eip1559.initial_base_fee": "base fee at the start",
    "Eip1559.min_base_fee": "the base fee never falls below this",
    "Eip1559.target": "block use the base fee steers toward",
    "Eip1559.max_change": "largest change of the base fee per block",
    "Eip1559.underpriced": "a message whose `fee` is below the base fee `wait`s or is `reject`ed",
    "Eip1559.base_fee_file": "or the base fee from a file (CSV or Parquet: `t`, seconds from the first row or "
                             "timestamps; `base_fee`, in the fee unit): from each block on, the last row's at or "
                             "before its time, instead of the rule ([fee market](model.md#the-fee-market-from-a-file))",
    "Shed.mode": "priority shedding: a kind is dropped above its level × capacity, others at capacity",
    "Shed.capacity": "queue length at which every unprotected kind is dropped",
    "Shed.levels": "per kind, the share of `capacity` above which it is dropped",
    "Shed.protect": "kinds always admitted",
    # [desync]
    "DesyncSpec.max_height_gap": "a node trailing the leader by more blocks than this ...",
    "DesyncSpec.min_duration": "... for at least this long is desynchronised",
    # [[agents]]
    "AgentSpec.name": "unique among the agents",
    "AgentSpec.role": "the default message mix: {roles}",
    "AgentSpec.count": "instances, each with its own random stream, spread round-robin over the candidate "
                       "nodes",
    "AgentSpec.region": "instances attach to nodes of this region (give `region` or `node`, or neither: "
                        "all nodes)",
    "AgentSpec.node": "instances attach to this node",
    "AgentSpec.arrival": "when each instance sends: [arrival processes](#arrival-processes)",
    "AgentSpec.mix": "message kind weights; none: the role's",
    "AgentSpec.size": "message size",
    "AgentSpec.fee": "the most a message pays (plain numbers); with `fee_file`, a multiplier of the file's fee",
    "AgentSpec.fee_file": "the fees through the day from a file (CSV or Parquet: `t`, seconds from the first row or "
                          "timestamps, and `fee`): a message's fee is the file's at its intended send time (the last "
                          "row's at or before it) times its drawn `fee`",
    "AgentSpec.keys": "distinct keys (instruments, accounts) drawn uniformly; the ordering check is per key",
    "AgentSpec.start": "the agent starts sending at this time",
    "AgentSpec.stop": "and stops at this one; none: `run.duration`",
    # arrivals
    "ConstantArrival.process": "evenly spaced, a random phase per instance",
    "ConstantArrival.rate": "per instance",
    "PoissonArrival.process": "exponential gaps",
    "PoissonArrival.rate": "per instance",
    "BurstArrival.process": "a batch at the start of each period, its messages `spacing` apart; a batch "
                            "still going at the period's end is cut there; instances send together",
    "BurstArrival.rate": "per instance, averaged over a period",
    "BurstArrival.every": "the period",
    "BurstArrival.spacing": "between a batch's messages (0: all at the period's start)",
    "HawkesArrival.process": "self-exciting: each event spawns Poisson(`branching`) children after "
                             "Exp(`decay`) delays; mean rate baseline / (1 − branching)",
    "HawkesArrival.baseline": "rate of events that have no parent",
    "HawkesArrival.branching": "children per event, n (n ≥ 1 would explode and is refused; ~0.9: a crash)",
    "HawkesArrival.decay": "mean delay of a child",
    "StepRampArrival.process": "levels `start + k × step`, each `every` long; nothing after the last; the "
                               "knee is measured on it",
    "StepRampArrival.start": "first level",
    "StepRampArrival.step": "added at each step",
    "StepRampArrival.every": "length of a step",
    "StepRampArrival.steps": "number of levels",
    "StepRampArrival.poisson": "Poisson arrivals at each level; false: evenly spaced",
    "LinearRampArrival.process": "rate goes linearly from `start` to `end` over the agent's window",
    "LinearRampArrival.start": "rate at the agent's start",
    "LinearRampArrival.end": "rate at its stop",
    "LinearRampArrival.poisson": "Poisson arrivals; false: evenly spaced",
    "ReplayArrival.process": "send times read from a file, relative to its first row",
    "ReplayArrival.path": "CSV or Parquet, relative to the scenario file",
    "ReplayArrival.column": "the column of times",
    "ReplayArrival.time_unit": "unit of the times",
    "ReplayArrival.speed": "2: twice as fast",
    "PhasesArrival.process": "consecutive phases, then nothing",
    "PhasesArrival.phases": "`[{duration, arrival}, ...]`; a phase's arrival is any process but `phases`",
    "Phase.duration": "length of the phase",
    "Phase.arrival": "its arrival process",
    # [[faults]]
    "PartitionFault.kind": "cut every link between groups; a message on a cut link is dropped at send time "
                           "(nothing is retransmitted, so a message stranded in a minority is `lost`; under "
                           "round-based consensus, peers send each other the proposals, votes and block parts "
                           "the cut dropped once it heals)",
    "PartitionFault.at": "start",
    "PartitionFault.duration": "how long; none: to the end of the run",
    "PartitionFault.groups": "groups of region or node names; unnamed nodes form one more group",
    "CrashFault.kind": "stop a node and drop what it holds; a crashed leader fails over to a standby",
    "CrashFault.at": "start",
    "CrashFault.node": "a node name, or `\"sequencer\"` (whoever leads then); live: a server msgstorm starts (SIGKILL), or `\"leader\"` (the JetStream stream's leader then; Kafka: partition 0's)",
    "CrashFault.restart_after": "restart after this; none: stays down",
    "TamperFault.kind": "sim: an adversary on the link into the sequencer alters messages' contents; a "
                        "`[security]` scheme that authenticates rejects each, `none` accepts them",
    "TamperFault.at": "start",
    "TamperFault.duration": "how long; none: to the end of the run",
    "TamperFault.kinds": "the message kinds it alters (all when not given)",
    "TamperFault.probability": "share of those messages it alters (drawn with the run's seed)",
    "ReplayFault.kind": "sim: an adversary sends copies of messages it saw reach the sequencer again; a "
                        "`[security]` scheme with nonces and the chain id rejects each, `none` accepts them",
    "ReplayFault.at": "start",
    "ReplayFault.duration": "how long; none: to the end of the run",
    "ReplayFault.kinds": "the message kinds it copies (all when not given)",
    "ReplayFault.probability": "share of those messages it copies (drawn with the run's seed)",
    "ReplayFault.delay": "how long after the original reached the sequencer the copy is sent, from the "
                         "original's node: it travels to the sequencer as any message does",
    "ReplayFault.chain": "`same`: the copy as signed on this chain (its nonce was seen); `other`: as signed "
                         "on another chain (another chain id)",
    "OracleFault.kind": "sim, with `[market]`: a byzantine oracle: its price messages within the window go "
                        "stale, are delayed or carry a price moved within a band (`market/oracle_attack.py`)",
    "OracleFault.at": "start",
    "OracleFault.duration": "how long",
    "OracleFault.mode": "`stale` (none published; the price then at the window's end), `delay` (each sent "
                        "`delay` late) or `manipulate` (each moved by `band`)",
    "OracleFault.instrument": "the instrument whose prices it changes (every one when not given)",
    "OracleFault.delay": "`delay` only: how late each message is sent",
    "OracleFault.band": "`manipulate` only: how far each price is moved",
    "OracleFault.bias": "`manipulate`: `down` (x (1 - band)) or `up` (x (1 + band))",
    "CensorFault.kind": "sim: a censoring producer: the sequencer's leader keeps messages of `kinds` that reach "
                        "it within the window out of its queue",
    "CensorFault.at": "start",
    "CensorFault.duration": "how long",
    "CensorFault.kinds": "the message kinds it censors",
    "CensorFault.mode": "`delay`: until the window ends (the wait is their queue wait); `drop`: dropped",
    "EquivocateFault.kind": "sim, `[blocks.producers]`: a byzantine producer makes two conflicting blocks at each "
                            "height in its window and sends each to a different half of its gossip peers (with "
                            "one peer, the second reaches no node: no conflict, even at `confirmations = 1`)",
    "EquivocateFault.at": "start",
    "EquivocateFault.duration": "how long (to the run's end when not given)",
    "EquivocateFault.node": "the producer (a node of `blocks.producers`)",
    "EquivocateVotesFault.kind": "sim, `finality = \"votes\"`: byzantine voters vote for every block made at "
                                 "each height (both of two conflicting blocks), their votes reaching every node "
                                 "over paths no partition cuts",
    "EquivocateVotesFault.at": "start",
    "EquivocateVotesFault.duration": "how long (to the run's end when not given)",
    "EquivocateVotesFault.nodes": "the byzantine voters by name (validators: nodes of `blocks.producers`)",
    "EquivocateVotesFault.count": "or: how many validators to draw with the run's seed (0 and up; a sweep's axis)",
    "WithholdVotesFault.kind": "sim, `finality = \"votes\"`: byzantine voters that cast no vote (liveness "
                               "then needs more than 2/3 of the stake among the others)",
    "WithholdVotesFault.at": "start",
    "WithholdVotesFault.duration": "how long (to the run's end when not given)",
    "WithholdVotesFault.nodes": "the withholding voters by name (validators: nodes of `blocks.producers`)",
    "WithholdVotesFault.count": "or: how many validators to draw with the run's seed (0 and up; a sweep's axis)",
    "CensorNodesFault.kind": "sim: censoring nodes validate messages of `kinds` (of `agents`, when given) but "
                             "forward none of them, and as producers include none in their blocks",
    "CensorNodesFault.at": "start",
    "CensorNodesFault.duration": "how long (to the run's end when not given)",
    "CensorNodesFault.nodes": "the censoring nodes by name",
    "CensorNodesFault.count": "or: how many nodes to draw with the run's seed",
    "CensorNodesFault.kinds": "the message kinds they censor",
    "CensorNodesFault.agents": "only the messages these agents send (names of `[[agents]]` or of `[market]`'s "
                               "oracle, keepers, topups and frontrunners); none: every agent's",
    "DelayNodesFault.kind": "sim: delaying nodes hold every item they validated (message, block, vote) `delay` "
                            "plus a uniform draw in [0, `jitter`) before they forward it",
    "DelayNodesFault.at": "start",
    "DelayNodesFault.duration": "how long (to the run's end when not given)",
    "DelayNodesFault.nodes": "the delaying nodes by name",
    "DelayNodesFault.count": "or: how many nodes to draw with the run's seed",
    "DelayNodesFault.delay": "the fixed hold",
    "DelayNodesFault.jitter": "the width of a drawn hold added to it (uniform; 0: none)",
    "ReorderNodesFault.kind": "sim: reordering nodes hold every item they validated a uniform draw in [0, `window`) "
                              "before they forward it: items validated less than `window` apart leave shuffled",
    "ReorderNodesFault.at": "start",
    "ReorderNodesFault.duration": "how long (to the run's end when not given)",
    "ReorderNodesFault.nodes": "the reordering nodes by name",
    "ReorderNodesFault.count": "or: how many nodes to draw with the run's seed",
    "ReorderNodesFault.window": "the reorder window: the width of the drawn hold",
    "FloodInvalidFault.kind": "sim: flooding nodes send invalid messages to their gossip peers at `rate`; each "
                              "receiver spends a validation on each and drops it (counted in summary.json's "
                              "`byzantine`)",
    "FloodInvalidFault.at": "start",
    "FloodInvalidFault.duration": "how long (to the run's end when not given)",
    "FloodInvalidFault.nodes": "the flooding nodes by name",
    "FloodInvalidFault.count": "or: how many nodes to draw with the run's seed",
    "FloodInvalidFault.rate": "invalid messages each flooding node sends per second (a run may send at most "
                              "5,000,000)",
    "FloodInvalidFault.size": "bytes of one invalid message",
    "SequencerOutageFault.kind": "sim, and anvil with `[rollup]`: the sequencer is down: it takes no message for "
    "`duration` (the ones it is executing finish); arrivals queue in order and its workers drain the backlog when it "
    "returns (anvil: the L2 node and the L1 go on; msgstorm holds what is sent and sends it at the return)",
    "SequencerOutageFault.at": "start",
    "SequencerOutageFault.duration": "how long it is down",
    "SequencerOutageFault.via_l1": "kinds whose senders go through L1 while it is down (Arbitrum's delayed inbox, "
    "OP's deposits): each lands in the next L1 block (`rollup.l1.slot`, 12 s without `[rollup]`) and enters the "
    "L2 sequence `window` later, or when the sequencer returns if that is first",
    "SequencerOutageFault.window": "the forced-inclusion window; default: `rollup.forced_inclusion_window` (the "
    "preset's: Arbitrum One 24h; OP Stack 12h, the sequencing window of 3,600 L1 blocks), 24h without `[rollup]`",
    "SequencerOutageFault.lose_unposted": "the sequencer loses what L1 does not hold when it goes down (needs "
    "`[rollup]`): the messages it accepted and had not sequenced, and those it soft-confirmed whose batch was not "
    "in an L1 block by `at`, end `dropped` (an `unposted_lost` event each group); false: kept in order",
    "EclipseFault.kind": "sim: an attacker holds every connection of `node`: it passes nothing either way (the "
                         "node's view halts) or, with `delay`, everything that late (its view lags)",
    "EclipseFault.at": "start",
    "EclipseFault.duration": "how long (to the run's end when not given)",
    "EclipseFault.node": "the eclipsed node",
    "EclipseFault.delay": "none: pass nothing; else the latency added to every link of the node, both ways "
                          "(surrounded: what each attacker holds every item it forwards)",
    "EclipseFault.attackers": "surround the node: these nodes replace its gossip peers for the window and pass "
                              "on only what they choose (see `kinds`, `delay`)",
    "EclipseFault.count": "or: how many attackers to draw with the run's seed (among the other nodes)",
    "EclipseFault.kinds": "surrounded: the message kinds the attackers withhold, to and from the node (none "
                          "when not given)",
    "TwinsFault.kind": "sim, `finality = \"votes\"`: a second instance of each validator of `nodes` runs at the "
                       "node of `hosts` in the same place, with its identity and stake; each instance votes "
                       "honestly on its own (the Twins method)",
    "TwinsFault.at": "start",
    "TwinsFault.duration": "how long (to the run's end when not given)",
    "TwinsFault.nodes": "the twinned validators by name (nodes of `blocks.producers.nodes`)",
    "TwinsFault.hosts": "where each one's twin runs, one node per validator (e.g. across a partition from it)",
    "DegradeFault.kind": "add latency, half-normal jitter and loss to some links",
    "DegradeFault.at": "start",
    "DegradeFault.duration": "how long; none: to the end of the run",
    "DegradeFault.between": "two groups (region or node names): the links between them",
    "DegradeFault.nodes": "or: every link touching these nodes (give exactly one of the two)",
    "DegradeFault.latency": "added one-way latency",
    "DegradeFault.jitter": "scale of the added half-normal jitter",
    "DegradeFault.loss": "probability that a transmission is lost",
    "BridgeFault.kind": "live: a JetStream cluster split in two sides that reach each other only through one "
                        "server (its routes to both stay)",
    "BridgeFault.at": "start",
    "BridgeFault.duration": "how long; none: to the end of the sending",
    "BridgeFault.groups": "the two sides (server names), the bridge in neither; with the bridge they name every server",
    "BridgeFault.bridge": "the server that sees both sides",
    "PauseFault.kind": "live: pause a server msgstorm started (SIGSTOP), resume it (SIGCONT) after `duration`",
    "PauseFault.at": "start",
    "PauseFault.duration": "how long the server stays paused",
    "PauseFault.node": "the server: `nats-server`, `nats-server-<i>` (a cluster), `redis-server`, `mosquitto`, `rabbitmq`, `rabbit-<i>` (a cluster), `kafka-<i>`; or `\"leader\"`, or `\"followers\"` (every server holding another replica), of the replicated stream (JetStream) or of partition 0 (Kafka) when the pause starts",
    "RestartFault.kind": "live: stop a server msgstorm started gracefully (SIGTERM) and start it again on its "
                         "port and data",
    "RestartFault.at": "when it is stopped",
    "RestartFault.node": "the server (as for `pause`)",
    "RestartFault.down": "how long it stays stopped before it starts again",
    "DoubleSignFault.kind": "live, target `cometbft`: a second node signs with a validator's key beside it (a "
                            "propose timeout of 1 ms: it prevotes nil where the validator prevotes the block), "
                            "so the validator double-signs and the others commit the evidence",
    "DoubleSignFault.at": "when the second signer starts",
    "DoubleSignFault.duration": "how long it runs; none: to the run's end",
    "DoubleSignFault.node": "the validator whose key it signs with: `validator-<i>`",
    "NemesisFault.kind": "faults drawn from a seeded mix, one every `every` (sim and live: each drawn fault must "
                         "suit the target)",
    "NemesisFault.at": "the first draw",
    "NemesisFault.every": "time between draws",
    "NemesisFault.until": "no draw at or after this; none: the run's duration",
    "NemesisFault.seed": "the draws' seed (the same seed draws the same faults)",
    "NemesisFault.mix": "the faults to draw from, each `{ weight = 2, fault = { kind = \"pause\", ... } }` "
                        "(`weight`: how likely against the others, 1 when unset; `fault`: any kind but `nemesis` and "
                        "`script`, its `at` an offset from its draw)",
    "ScriptFault.kind": "a compound script: faults at offsets from its start, run `times` times `every` apart",
    "ScriptFault.at": "the script's start",
    "ScriptFault.steps": "the faults (any kind but `nemesis` and `script`), each `at` an offset from the start",
    "ScriptFault.every": "between two runs of the script",
    "ScriptFault.times": "how many runs (more than 1 needs `every`)",
    "ToxicFault.kind": "live: a toxic on the links between msgstorm's clients and the broker, through the fault "
                       "proxy (targets nats and jetstream)",
    "ToxicFault.at": "start",
    "ToxicFault.duration": "how long; none: to the end of the sending",
    "ToxicFault.toxic": "one of the fault proxy's toxics: {toxics}",
    "ToxicFault.link": "whose connections: `publisher`, `consumers` or `clients` (both); `routes`: the links "
                       "between the servers of a cluster msgstorm starts (the validators of target `cometbft`)",
    "ToxicFault.between": "with `link = \"routes\"`: two groups of servers, the toxic on the links between them "
                          "only (one toxic a pair of regions: a latency matrix); none: every route",
    "ToxicFault.direction": "`upstream` (client to server), `downstream`, or `both`",
    "ToxicFault.probability": "share of reads it acts on (of connections, for {connection_toxics})",
    "ToxicFault.latency": "latency: added to every read",
    "ToxicFault.jitter": "latency: ± this, uniform",
    "ToxicFault.rate": "bandwidth: bits/s (\"1Mbit/s\")",
    "ToxicFault.timeout": "reset_peer: reset after this; timeout: close after this (0: hold until the end)",
    "ToxicFault.slice_size": "slicer: bytes a piece (64 when unset)",
    "ToxicFault.slice_delay": "slicer: time between pieces",
    "ToxicFault.close_delay": "slow_close: a close held this long",
    # [analysis], [history], [limits]
    "AnalysisSpec.knee_latency_factor": "k: the knee is the highest ramp step whose p99 is at most k × the "
                                        "first step's p99 ...",
    "AnalysisSpec.throughput_fraction": "... and whose throughput reaches this share of the offered rate",
    "HistorySpec.delivery_sample": "share of messages whose gossip deliveries are recorded (every n-th "
                                   "msg_id)",
    "HistorySpec.max_deliveries": "cap on delivery rows",
    "HistorySpec.row_group_size": "rows per Parquet part (one row group each)",
    "LimitsSpec.max_messages": "messages sent over the run",
    "LimitsSpec.max_window_messages": "messages in one traffic window (held in memory at once)",
    "LimitsSpec.max_instances": "agent instances (each has its own random stream)",
    "LimitsSpec.max_windows": "analysis windows (`run.window`) over the run and its drain",
    "LimitsSpec.max_samples": "queue-depth samples (`run.sample_interval`)",
    "LimitsSpec.max_blocks": "blocks (`blocks.interval`)",
    "LimitsSpec.max_receipts": "gossip receipts (about an hour of kernel time)",
    "LimitsSpec.memory": "share of the memory available when the run starts",
    "LimitsSpec.max_wall_time": "estimated wall time of the run (docs/performance.md, \"Wall time before the run\"); "
                                "`msgstorm run --max-time` sets it",
    "LimitsSpec.max_accounts": "`[market]` accounts",
    "LimitsSpec.max_price_steps": "`[market]` price steps over every instrument (`market.resolution`)",
    # [market]
    "MarketSpec.resolution": "the price paths' step: the oracle and the analysis look at the true price this often",
    "MarketSpec.instruments": "[`[[market.instruments]]`](#marketinstruments)",
    "MarketSpec.oracle": "[`[market.oracle]`](#marketoracle)",
    "MarketSpec.accounts": "[`[[market.accounts]]`](#marketaccounts)",
    "MarketSpec.keepers": "[`[[market.keepers]]`](#marketkeepers); none: nobody liquidates, and the run "
                          "shows what that costs",
    "MarketSpec.maintenance_margin": "an account may be liquidated when its equity is below this share of its "
                                     "notional",
    "MarketSpec.liquidation_penalty": "share of the notional a liquidation takes from the account",
    "MarketSpec.slippage_bps": "a liquidation's slippage: this many basis points for each `depth` of notional "
                               "it closes (on the linear book; [`[market.liquidity]`](#marketliquidity) curves "
                               "it and thins it under stress)",
    "MarketSpec.depth": "the notional that moves the price `slippage_bps`",
    "MarketSpec.currency": "what prices and money are counted in (`\"DAI\"`, `\"USD\"`): the report writes it beside "
                           "bad debt, open interest, the venue's losses and an auction's deficit, and an instrument's "
                           "`name` beside its units; none: amounts without a unit",
    "InstrumentSpec.name": "the instrument's name (the `key` of its oracle messages is its index)",
    "InstrumentSpec.price": "its price at the start",
    "InstrumentSpec.drift": "drift of the geometric Brownian motion, with its time unit: `\"5%/y\"`, `\"0.1/d\"`",
    "InstrumentSpec.volatility": "volatility, per square root of its time unit: `\"80%/y\"`",
    "InstrumentSpec.shocks": "crashes: `{at, fall, over}`, the price falls by `fall` over `over` from `at`",
    "InstrumentSpec.jumps": "compound Poisson jumps: `{rate = \"2/h\", mean = \"-5%\", stddev = \"3%\"}` "
                            "(normal log sizes)",
    "InstrumentSpec.replay": "a CSV or Parquet file of `t` (seconds from the start) and `price`: replaces the "
                             "model (the price at each step is the last row's at or before it)",
    "ShockSpec.at": "when the fall starts",
    "ShockSpec.fall": "how far the price falls (below 100%)",
    "ShockSpec.over": "over how long (log-linearly; 0: a gap)",
    "JumpsSpec.rate": "jumps per unit of time: `\"2/h\"`",
    "JumpsSpec.mean": "mean log size of a jump (`\"-5%\"`: mostly down)",
    "JumpsSpec.stddev": "standard deviation of a jump's log size",
    "OracleSpec.name": "the oracle's agent name in the history",
    "OracleSpec.node": "the node it publishes through (default: the network's first)",
    "OracleSpec.heartbeat": "it publishes at least this often ...",
    "OracleSpec.deviation": "... and whenever the price moved this much since its last update",
    "OracleSpec.size": "size of a `price` message",
    "OracleSpec.fee": "fee of a `price` message",
    "AccountsSpec.count": "accounts in this group",
    "AccountsSpec.instrument": "their instrument (default: the first)",
    "AccountsSpec.leverage_median": "leverage (notional / collateral at entry) is lognormal with this median ...",
    "AccountsSpec.leverage_sigma": "... this sigma ...",
    "AccountsSpec.leverage_cap": "... and at most this; the highest leverage drawn (this, or `leverage_median` when "
                                 "`leverage_sigma` is 0) must be below 1 / `maintenance_margin` (an account there "
                                 "would open on or past its liquidation line; the default, 50, needs a "
                                 "`maintenance_margin` above 2%), and this at least `leverage_median`",
    "AccountsSpec.leverage_floor": "... and at least this (a leverage drawn below it is raised to it; none: no "
                                   "floor); at most `leverage_median`. Below 1 a position is smaller than its "
                                   "collateral (a perpetual venue allows it); a lending market's vault borrows, so a "
                                   "book of vaults takes a floor above 1",
    "AccountsSpec.collateral": "each account's collateral",
    "AccountsSpec.long_share": "share of long positions (the rest are short)",
    "AccountsSpec.file": "or load the group from a CSV or Parquet file: `side` (long/short or 1/-1), `size`, "
                         "`entry`, `collateral`",
    "MarketSpec.frontrunners": "front-runners that race the orders they see: [`[[market.frontrunners]]`]"
                               "(#marketfrontrunners)",
    "MarketSpec.orders": "the limit orders behind the `order` messages, cleared by a batch auction: "
                         "[`[market.orders]`](#marketorders)",
    "MarketSpec.probes": "probe books riding along the run, bad debt at a grid of leverages from one run "
                         "(`msgstorm safe-leverage` sets it): [`[market.probes]`](#marketprobes)",
    "MarketSpec.liquidation": "the venue's liquidation mechanism and books (insurance fund, deleveraging, "
                              "socialised loss): [`[market.liquidation]`](#marketliquidation); without it, "
                              "positions are liquidated whole and the penalty goes to the keeper",
    "MarketSpec.funding": "funding paid between longs and shorts at an interval, settled on the index (the "
                          "on-chain oracle price): [`[market.funding]`](#marketfunding); without it, none",
    "FundingSpec.interval": "how often funding is paid (the first at one interval, none past `run.duration`)",
    "FundingSpec.rate": "`fixed` (`fixed_rate` of notional an interval) or `premium` (`fixed_rate` plus the "
                        "book's premium: the open-interest imbalance's price impact under `slippage_bps` and "
                        "`depth`, bounded by `clamp`) ([formulas](model.md#funding))",
    "FundingSpec.fixed_rate": "share of notional paid an interval (positive: longs pay shorts); with `premium`, "
                              "added to the premium",
    "FundingSpec.clamp": "`premium`: the bound on an interval's rate, either way",
    "MarketSpec.mark": "liquidations judged on a mark price (the index plus the book's bounded premium), "
                       "settled on the index: [`[market.mark]`](#marketmark); without it, judged on the index",
    "MarkSpec.premium_cap": "the bound on the mark's premium over the index, either way "
                            "([formula](model.md#mark-price))",
    "MarketSpec.liquidity": "the book's depth as a curve (linear, square-root or a power law), thinning as the "
                            "price's realised volatility rises: [`[market.liquidity]`](#marketliquidity); without "
                            "it, the linear, calm book",
    "LiquiditySpec.curve": "a close of notional x moves the price `slippage_bps` x (x / `depth`)^e: e = 1 "
                           "(`linear`), 0.5 (`sqrt`) or `exponent` (`power`) ([formulas](model.md#liquidity))",
    "LiquiditySpec.exponent": "`power`: the curve's exponent e",
    "LiquiditySpec.window": "the span over which the on-chain price's realised volatility is measured",
    "LiquiditySpec.sensitivity": "how fast the depth falls with the realised volatility sigma (per square root "
                                 "of a second): `depth` / (1 + this x sigma); 0: it never thins",
    "LiquidationSpec.mechanism": "`whole` (the position closed whole), `partial` (just enough closed to restore "
                                 "`restore_to`'s margin), `close_factor` (a call repays at most `close_factor` of "
                                 "the debt, repeated while the health factor is below 1), `dutch_auction` "
                                 "(Maker's clip: keepers take a decaying auction) or `english_auction` (Maker's "
                                 "flip: keepers' bids raise the quote paid, then lower the units taken) "
                                 "([formulas](model.md#liquidation-mechanisms))",
    "LiquidationSpec.restore_to": "`partial`: the margin a call restores, `maintenance` (`maintenance_margin`) "
                                  "or `initial` (`initial_margin`)",
    "LiquidationSpec.initial_margin": "`partial` with `restore_to = \"initial\"`: the margin restored (above "
                                      "`maintenance_margin`)",
    "LiquidationSpec.close_factor": "`close_factor`: the share of the debt one call repays at most",
    "LiquidationSpec.keeper_share": "share of a call's penalty (`liquidation_penalty`) paid to its keeper; the "
                                    "rest feeds the insurance fund",
    "LiquidationSpec.insurance_fund": "the insurance fund's balance at the start; it covers a bankrupt "
                                      "account's shortfall",
    "LiquidationSpec.on_empty": "what covers a shortfall the fund cannot: `none` (bad debt), `adl` (profitable "
                                "counterparties closed at the bankrupt position's price, highest profit x "
                                "leverage first) or `socialise` (the accounts in profit pay pro rata to profit)",
    "LiquidationSpec.buffer": "`dutch_auction`: an auction starts at the on-chain price x this (a short's: / this)",
    "LiquidationSpec.decay": "`dutch_auction`: how its price decays with its age: `linear` (to 0 at `tau`), "
                             "`stair_step` (x `cut` at each whole `step`) or `exponential` (x `cut` per `step`, "
                             "continuously)",
    "LiquidationSpec.tau": "`dutch_auction`, `linear`: the age at which the price reaches 0; `english_auction`: "
                           "the auction's longest life (Maker's flip `tau`; restarted if no bid stands then)",
    "LiquidationSpec.step": "`dutch_auction`, `stair_step` and `exponential`: the interval of one `cut`",
    "LiquidationSpec.cut": "`dutch_auction`: the multiplier of one `step`",
    "LiquidationSpec.cusp": "`dutch_auction`: an auction whose multiplier fell below this resets at the next take",
    "LiquidationSpec.tail": "`dutch_auction`: an auction older than this resets at the next take",
    "LiquidationSpec.take_at": "`dutch_auction`: keepers take once the price is at most the on-chain price at the "
                               "start x this for a long (at least it / this for a short)",
    "LiquidationSpec.published": "figures published for the day a run replays, printed beside its own: "
                                 "[`[market.liquidation.published]`](#marketliquidationpublished)",
    "PublishedSpec.zero_bid_share": "the share of the day's auctions that closed at a zero bid",
    "PublishedSpec.zero_bid_units": "the units of collateral sold at a zero bid",
    "PublishedSpec.returned_share": "the share of the auctioned collateral given back to its owners",
    "PublishedSpec.zero_bid_value": "the value (in the market's currency, at each close) of the collateral "
                                    "sold at a zero bid",
    "PublishedSpec.returned_share_won": "the share of the collateral given back to its owners in the auctions "
                                        "won at a bid above zero",
    "PublishedSpec.sources": "a figure's own source, by figure name (default: `source`)",
    "PublishedSpec.bands": "by figure name, the band `[low, high]` the run's value must fall in to agree",
    "PublishedSpec.fitted": "the figures the scenario's unknowns were fitted to: shown, never counted as "
                            "agreement",
    "PublishedSpec.checked": "the figures the run predicts (disjoint from `fitted`)",
    "PublishedSpec.deficit": "the venue's deficit: the debt the auctions left uncovered",
    "PublishedSpec.source": "where the figures were published",
    "LiquidationSpec.ttl": "`english_auction`: a standing bid wins when no other beats it within this (Maker's "
                           "flip `ttl`)",
    "LiquidationSpec.beg": "`english_auction`: a bid beats the standing one by at least this: a quote x (1 + "
                           "this), or the tab; a lot / (1 + this) (Maker's flip `beg`)",
    "ProbeSpec.leverages": "the grid: each account again at each of these leverages (increasing, each below "
                           "1 / `maintenance_margin`)",
    "ProbeSpec.traffic_share": "share of the probes' liquidations sent as messages of their own (they load the "
                               "network); the rest send nothing and commit with the first block holding a message the queue "
                               "policy ranks after them ([how](model.md#probe-books))",
    "AuctionOrdersSpec.instrument": "the instrument every order is on (default: the first)",
    "AuctionOrdersSpec.buy_share": "share of buys (the rest are sells)",
    "AuctionOrdersSpec.limit_offset_bps": "mean of a limit price's distance from the true price when the order "
                                          "is sent, in basis points towards the order's side (positive: buys "
                                          "above, sells below; more orders cross)",
    "AuctionOrdersSpec.limit_spread_bps": "standard deviation of that distance (normal), in basis points",
    "AuctionOrdersSpec.quantity": "each order's quantity (units of the instrument)",
    "FrontRunnerSpec.name": "the front-runner's agent name",
    "FrontRunnerSpec.node": "where its orders enter the network (default: the sequencer's node)",
    "FrontRunnerSpec.watch": "where it watches the validated messages for victims (default: `node`)",
    "FrontRunnerSpec.kind": "the victims' message kind",
    "FrontRunnerSpec.min_size": "a victim's message is at least this large",
    "FrontRunnerSpec.notional_per_byte": "a message's notional per byte of its size (the order flow's sizes "
                                         "stand for its orders' sizes)",
    "FrontRunnerSpec.share": "its order's notional as a share of the victim's",
    "FrontRunnerSpec.fee_multiple": "its order's fee: the victim's × this",
    "FrontRunnerSpec.reaction": "from seeing a victim at `watch` to sending from `node`",
    "FrontRunnerSpec.size": "size of its order message",
    "FrontRunnerSpec.sandwich": "also send the opposite order (the back-run) when the victim's reaches `node`; "
                                "won only with the victim's order between the two",
    "FrontRunnerSpec.back_fee_multiple": "the back-run's fee: the victim's × this (below 1: after it under fee "
                                         "priority)",
    "KeeperSpec.name": "the keepers' agent name (each keeper is `<name>-<i>` in the `triggers` table)",
    "KeeperSpec.count": "keepers in this group, spread over the nodes of `node` or `region` (default: all)",
    "KeeperSpec.region": "their region",
    "KeeperSpec.node": "or their node",
    "KeeperSpec.reaction": "from a price reaching a keeper's node to its liquidation message",
    "KeeperSpec.fee": "fee of a liquidation message (fixed)",
    "KeeperSpec.fee_aware": "pay `fee_multiple` × the base fee when sending instead (`eip1559`)",
    "KeeperSpec.fee_multiple": "the multiple of the base fee a fee-aware keeper pays",
    "KeeperSpec.fee_cap": "the most a fee-aware keeper pays",
    "KeeperSpec.cap_raised": "steps of its ceiling during the run, each from `at` on: "
                             "[`[[market.keepers.cap_raised]]`](#marketkeeperscap_raised)",
    "CapRaise.at": "from this run time (increasing, one step each)",
    "CapRaise.cap": "the keeper's ceiling from then on (replaces `fee_cap`)",
    "KeeperSpec.size": "size of a `liquidation` message",
    "KeeperSpec.discount": "`english_auction`: it bids at most the market's price when it bids x (1 - this) a "
                           "unit (100%: it bids zero)",
    "KeeperSpec.gas_budget": "each keeper's budget for the fees of its messages, paid when sent; it sends "
                             "nothing it cannot pay (none: without limit) ([budgets](model.md#keepers-budgets))",
    "KeeperSpec.capital": "each keeper's capital for `english_auction` bids: a bid locks its quote, freed when "
                          "outbid, spent when it wins; it does not bid beyond it (none: without limit)",
    "MarketSpec.topups": "traders who add collateral near their line: [`[market.topups]`](#markettopups)",
    "TopUpSpec.name": "their agent name in the history",
    "TopUpSpec.probability": "share of the accounts that top up (drawn once for each)",
    "TopUpSpec.near": "they top up when a price puts them within this share of their liquidation price",
    "TopUpSpec.reaction": "from that price reaching `node` to the top-up message",
    "TopUpSpec.to_leverage": "enough collateral to bring the leverage at the on-chain price back to this",
    "TopUpSpec.node": "the node they watch prices at and send through (default: the network's first)",
    "TopUpSpec.size": "size of a top-up message (kind `order`)",
    "TopUpSpec.fee": "fee of a top-up message",
    "KeeperSpec.race": "every keeper of the group goes for every account it sees past its line (a race: the "
                       "later liquidations are no-ops); false: the group splits the accounts among its keepers "
                       "(account number modulo `count`)",
    # distributions
    "Constant.value": "the value",
    "Uniform.low": "lowest value",
    "Uniform.high": "highest value",
    "Normal.mean_value": "mean (truncated at 0: a negative draw becomes 0)",
    "Normal.std": "standard deviation",
    "Lognormal.median": "median",
    "Lognormal.sigma": "sigma of the underlying normal",
    "Pareto.scale": "the minimum",
    "Pareto.alpha": "tail index (> 1 for a finite mean)",
    "Exponential.mean_value": "mean",
}
