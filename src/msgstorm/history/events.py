"""Event kinds: the names writers put in the ``events`` table and readers look for.

Place in the pipeline: part of the history contract (``history/schema.py``). Targets write
events through these constants, the history writer refuses a kind that is not one of them,
and the analysis selects events by the same constants, so a misspelt kind fails on write
instead of silently vanishing from a report.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["EVENT_KINDS", "EventKind"]


class EventKind(StrEnum):
    """``value`` carries the event's one number, ``height`` a block height, ``detail`` JSON."""

    RUN_START = "run_start"
    RUN_END = "run_end"  # value: messages generated
    FAULT_START = "fault_start"  # detail: the fault's spec and fault_id
    FAULT_END = "fault_end"
    # A sequencer outage's user went through L1 (sim/rollup/outage.py): value = the msg_id,
    # t = when it entered the L2 sequence; detail: {"t_l1", "forced"} (forced: one window after
    # its L1 inclusion; else the sequencer included it when it returned)
    FORCED_INCLUSION = "forced_inclusion"
    # A sequencer outage with lose_unposted lost what no batch on L1 held (sim/rollup/outage.py,
    # sim/rollup/unposted.py): value = how many, t = the outage's start; detail: {"fault_id",
    # "stage": "queued" (accepted, in no block) | "soft" (soft-confirmed, its batch not on L1),
    # "msg_ids"}; each of those messages ends dropped
    UNPOSTED_LOST = "unposted_lost"
    NODE_DOWN = "node_down"
    NODE_UP = "node_up"
    LEADER_CHANGE = "leader_change"  # node: the new leader; detail: {"from", "orphaned_blocks"}
    BLOCK_PRODUCED = "block_produced"  # value: messages; detail: {"gas", "bytes"}
    BLOCK_COMMITTED = "block_committed"
    # ``[blocks.producers]``: the canonical chain (the heaviest over every block made) moved
    # to another branch; value: blocks it dropped; detail: {"old_tip", "new_tip", "final"}
    # (final: a dropped block had already committed, ``confirmations`` was too few)
    CANONICAL_REORG = "canonical_reorg"
    QUEUE_DEPTH = "queue_depth"  # sampled current depth
    QUEUE_DEPTH_MAX = "queue_depth_max"  # max depth since the previous sample
    BLOCK_BACKLOG = "block_backlog"  # sampled: sequenced messages waiting for block space
    VALIDATION_BACKLOG = "validation_backlog"  # sampled per gossip node: receipts' worth of queued CPU work
    BACKPRESSURE = "backpressure"  # detail: {"state": "suspended" | "resumed" | ...}
    BASE_FEE = "base_fee"
    # Round-based consensus: ``node``'s mempool held ``blocks.producers.tendermint.mempool_size``
    # transactions (value) and turned an arrival away; once per node and height while full.
    MEMPOOL_FULL = "mempool_full"
    # live validators: a committed block holds evidence of a validator's misbehaviour (the
    # ``double_sign`` fault's duplicate votes); once per block, at its first commit; node = the
    # validator it names, height = the block holding it; detail {"type", "address",
    # "vote_height", "round", "vote_type"}
    EVIDENCE = "evidence"
    # live validators, once each before they stop: node = the validator, detail = its own
    # counters (live/chain/comet_counters.py: ABCI call times, rechecks, bytes received per
    # message type, consensus steps), what analysis/comet_costs.py reads the load's costs from
    VALIDATOR_COUNTERS = "validator_counters"
    DESYNC_START = "desync_start"
    DESYNC_END = "desync_end"
    SEND_LAG = "send_lag"  # live: sender could not keep the schedule
    # live: a server msgstorm started; detail: {"name", "pid", "url"}, or {"name", "pid",
    # "url": null, "started": false} for one spawned but stopped before it listened (a signal,
    # a cluster sibling that failed): every server_stop follows its server_start
    SERVER_START = "server_start"
    # detail: {"name", "returncode"}, and "exited_early": true and its "pid" when the server had
    # exited on its own (killed, crashed) before msgstorm stopped it, stamped when that was found
    SERVER_STOP = "server_stop"
    DISCONNECTED = "disconnected"  # live: a client lost its connection; detail: {"client"}
    RECONNECTED = "reconnected"
    CLIENT_ERROR = "client_error"  # live: detail: {"client", "error"}
    # live, every run.sample_interval: value = CPU seconds a process has used since it started;
    # node = the name of a server msgstorm started, or "publisher" (msgstorm's own process)
    CPU_SECONDS = "cpu_seconds"
    # live, beside each cpu_seconds sample: value = CPU seconds the machine's cores have spent
    # busy since it booted, summed over them, whoever used them (/proc/stat)
    MACHINE_CPU_SECONDS = "machine_cpu_seconds"
    # live, at the run's end, after everything msgstorm started was stopped: detail
    # {"servers_stopped", "proxies_closed", "resumed": [names], "left": [what still runs or listens]}
    CLEANUP = "cleanup"
    READ_BACK = "read_back"  # live, after the drain: value = messages the broker stored (null: cannot tell)
    # live Kafka, after the read-back: detail {"lost": acknowledged (partition, offset)s that do
    # not hold their message in the log read back (missing + replaced), "acked", "at_offset", "missing", "replaced",
    # "out_of_order", "duplicated", "partitions": {partition: {"stored", "missing", "replaced",
    # "out_of_order"}}, "lost_acks": [[partition, offset, msg_id] of each lost ack]} (drivers/kafka.py)
    LOG_AUDIT = "log_audit"
    INTERRUPTED = "interrupted"
    # live chain: transactions the node refused for one reason; value = how many, detail
    # {"reason", "error": the node's words for the first}
    TX_REJECTED = "tx_rejected"
    LANE_DEPTH = "lane_depth"  # sampled: messages waiting in the sequencer's reserved lane
    LANE_BLOCK_BACKLOG = "lane_block_backlog"  # sampled: the lane's sequenced messages waiting for a block
    # A self-healing controller's decision (sim/control.py): value = its new output (the
    # admitted share of non-essential kinds, or the block interval in ns); detail:
    # {"controller", "previous", "output", "strain"} and the controller's own terms
    CONTROL = "control"
    # At the start of a run with ``[security]``: value = the verification cost per message in
    # ns; detail: {"scheme", "verify", "chain_id", "verify_ns", "sign_ns", "source"}
    SECURITY = "security"
    # live, at the end of a signed run: value = payloads refused by the consumers' verification;
    # detail: {"consumers": [{"tampered", "replayed"}]}, one entry per consumer
    INTEGRITY = "integrity"
    # sim, at the run's end, when a relay protocol other than push is set ([network.relay]):
    # value = payload copies sent; detail {"payloads", "announcements", "requests", "fallbacks",
    # "duplicates_avoided", "compact": {"duplicates", "getblocktxn", "missing", "missing_bytes",
    # "held"}, "uploaded_bytes": {region: bytes}} (relay/summary.py reads it)
    RELAY = "relay"
    # sim, at the run's end, under ``network.relay.sample`` (sim/sampled_pool.py): value =
    # messages relayed receipt by receipt; detail {"stride", "region_firsts", "derived"}: the
    # sampled ones are the multiples of stride and the msg_ids in region_firsts (each
    # region's first message), the other ``derived`` messages took their arrivals from them
    RELAY_SAMPLE = "relay_sample"
    # sim, at the run's end, when a flood_invalid fault sent anything (sim/flood.py): value =
    # invalid messages its receivers validated and dropped; detail {"sent", "validated"}
    FLOOD = "flood"


EVENT_KINDS: tuple[str, ...] = tuple(kind.value for kind in EventKind)
