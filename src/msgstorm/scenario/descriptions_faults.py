"""What each ``[[faults]]`` field means, where its model does not say it itself: part of
``scenario/descriptions.py``'s ``DESCRIPTIONS``, keyed ``"ModelName.field"``.
"""

from __future__ import annotations

__all__ = ["FAULT_DESCRIPTIONS"]

FAULT_DESCRIPTIONS: dict[str, str] = {
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
}
