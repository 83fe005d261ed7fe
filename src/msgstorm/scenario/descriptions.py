"""What each scenario field means, where its model does not say it itself.

Place in the pipeline: beside the schema, for people. ``scenario/reference.py`` renders
``docs/scenario.md`` from the pydantic models; a field's meaning is its
``Field(description=...)`` when the model gives one, else the entry here, keyed
``"ModelName.field"``. ``tests/test_docs.py`` fails when a shown field has neither and when an
entry names a field the schema no longer has. A ``{placeholder}`` (``{regions}``, the
built-in names of an extension point) is filled in when the reference is rendered. The
``[live]``, ``[[faults]]`` and ``[market]`` entries are in modules of their own beside this one
(``descriptions_live.py``, ``descriptions_faults.py``, ``descriptions_market.py``).
"""

from __future__ import annotations

from msgstorm.scenario.descriptions_faults import FAULT_DESCRIPTIONS
from msgstorm.scenario.descriptions_live import LIVE_DESCRIPTIONS
from msgstorm.scenario.descriptions_market import MARKET_DESCRIPTIONS

__all__ = ["DESCRIPTIONS"]

_GENERAL: dict[str, str] = {
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

DESCRIPTIONS: dict[str, str] = {**_GENERAL, **LIVE_DESCRIPTIONS, **FAULT_DESCRIPTIONS,
                                **MARKET_DESCRIPTIONS}
