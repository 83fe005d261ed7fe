"""The history contract: the four tables every target (sim or live) writes.

Analysis reads only these tables, so a run can be re-analysed offline and sim and live
runs are compared by the same code. On disk each table is a directory of Parquet parts
(``history/<table>/part-NNNNNN.parquet``, see ``writer``); the ``run`` table holds a row
written when the run starts and one written when it ends. Times are integer nanoseconds since the run's start
(virtual time in sim, monotonic wall time in live); null where a stage was not reached.

``messages.t_dequeued`` (service start at the sequencer) extends the columns listed in
DESIGN.md so that queue wait and service time can be told apart.
"""

from __future__ import annotations

import pyarrow as pa

__all__ = [
    "DELIVERIES",
    "EVENTS",
    "EVENT_KINDS",
    "MESSAGES",
    "RUN",
    "STATUSES",
    "TABLES",
]

STATUSES: tuple[str, ...] = ("committed", "dropped", "rejected", "lost", "pending")

MESSAGES = pa.schema(
    [
        pa.field("msg_id", pa.int64(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("agent", pa.string(), nullable=False),
        pa.field("node", pa.string(), nullable=False),  # the node the agent sends through
        pa.field("key", pa.int64(), nullable=False),
        pa.field("size", pa.int32(), nullable=False),  # bytes
        pa.field("fee", pa.float64(), nullable=False),  # max fee the sender will pay
        pa.field("t_intended", pa.int64(), nullable=False),
        pa.field("t_sent", pa.int64()),
        pa.field("t_received", pa.int64()),  # reached the sequencer's intake
        pa.field("t_dequeued", pa.int64()),  # service started
        pa.field("t_sequenced", pa.int64()),  # service done, seq_no assigned
        pa.field("seq_no", pa.int64()),
        pa.field("t_committed", pa.int64()),
        pa.field("block", pa.int64()),
        pa.field("status", pa.string(), nullable=False),
    ]
)

DELIVERIES = pa.schema(
    [
        pa.field("msg_id", pa.int64(), nullable=False),
        pa.field("node", pa.string(), nullable=False),
        pa.field("t_delivered", pa.int64(), nullable=False),
        pa.field("hops", pa.int32(), nullable=False),
    ]
)

# Event kinds written by targets. ``value`` carries the event's one number (queue depth,
# base fee, messages in a block, height gap), ``height`` a block height, ``detail`` JSON.
EVENT_KINDS: tuple[str, ...] = (
    "run_start",
    "run_end",
    "fault_start",
    "fault_end",
    "node_down",
    "node_up",
    "leader_change",
    "block_produced",
    "block_committed",
    "queue_depth",  # sampled current depth
    "queue_depth_max",  # max depth since the previous sample
    "block_backlog",  # sampled: sequenced messages waiting for block space
    "backpressure",  # detail: {"state": "suspended" | "resumed" | ...}
    "base_fee",
    "desync_start",
    "desync_end",
    "send_lag",  # live: sender could not keep the schedule
    "interrupted",
)

EVENTS = pa.schema(
    [
        pa.field("t", pa.int64(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("node", pa.string()),
        pa.field("value", pa.float64()),
        pa.field("height", pa.int64()),
        pa.field("detail", pa.string()),
    ]
)

RUN = pa.schema(
    [
        pa.field("scenario_name", pa.string(), nullable=False),
        pa.field("scenario_hash", pa.string(), nullable=False),
        pa.field("scenario_json", pa.string(), nullable=False),
        pa.field("seed", pa.int64(), nullable=False),
        pa.field("msgstorm_version", pa.string(), nullable=False),
        pa.field("target", pa.string(), nullable=False),
        pa.field("nodes_json", pa.string(), nullable=False),  # [{"name", "region"}] in index order
        pa.field("t_end", pa.int64(), nullable=False),  # last time the target observed
        pa.field("interrupted", pa.bool_(), nullable=False),
        pa.field("host", pa.string(), nullable=False),  # JSON host facts
        # False on the row written when the run starts, True on the one written when it ends:
        # a history whose last run row is not completed was cut off (killed, power lost).
        pa.field("completed", pa.bool_(), nullable=False),
    ]
)

TABLES: dict[str, pa.Schema] = {
    "messages": MESSAGES,
    "deliveries": DELIVERIES,
    "events": EVENTS,
    "run": RUN,
}
